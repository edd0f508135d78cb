"""The lab's health server on 127.0.0.1: the bytes on the wire are the HealthResponse."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sourceip.cluster import Cluster, Node
from sourceip.kubeproxy.healthcheck import HealthResponse, proxy_health, service_response
from sourceip.lab.health_server import choose, parse_request_line, render

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SVC_OK = service_response("default", "web", 2)
SVC_DOWN = service_response("default", "web", 0)
HEALTHZ = proxy_health(Cluster(nodes=(Node(name="n1"),)), "n1", now=NOW)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[int, int, Path, int]]:
    hc, healthz = _free_port(), _free_port()
    spec = {"listen": [
        {"port": hc, "address": "127.0.0.1", "responses": {"*": SVC_OK.to_dict()}},
        {"port": healthz, "address": "127.0.0.1",
         "responses": {"/healthz": HEALTHZ.to_dict()}},
    ]}
    path = tmp_path / "responses.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sourceip.lab.health_server", "--responses", str(path),
         "--owner-pid", str(os.getpid())],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] and ready["ports"] == [hc, healthz]
        yield hc, healthz, path, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _request(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _split(wire: bytes) -> tuple[str, dict[str, str], str]:
    head, _, body = wire.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body.decode()


def _expect(wire: bytes, resp: HealthResponse) -> None:
    status, headers, body = _split(wire)
    assert status == f"HTTP/1.1 {resp.status} {resp.reason}"
    for name, value in resp.headers:
        assert headers[name] == value
    assert headers["Content-Length"] == str(len(resp.body.encode()))
    assert body == resp.body


def test_answers_match_health_responses(server: tuple[int, int, Path, int]) -> None:
    hc, healthz, _, _ = server
    _expect(_request(hc, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), SVC_OK)
    _expect(_request(hc, b"GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n"), SVC_OK)
    _expect(_request(healthz, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), HEALTHZ)
    wire = _request(healthz, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _split(wire)[0] == "HTTP/1.1 404 Not Found"
    assert _split(wire)[2] == "404 page not found\n"


def test_bad_requests_do_not_kill_it(server: tuple[int, int, Path, int]) -> None:
    hc, _, _, _ = server
    assert _request(hc, b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert _request(hc, b"GET\r\n\r\n").startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", hc), timeout=5):
        pass  # connect and close without a byte (a TCP health check)
    head = _request(hc, b"HEAD / HTTP/1.1\r\n\r\n")
    assert head.endswith(b"\r\n\r\n")
    _expect(_request(hc, b"GET / HTTP/1.0\r\n\r\n"), SVC_OK)


def test_sighup_reloads(server: tuple[int, int, Path, int]) -> None:
    hc, _, path, pid = server
    spec = json.loads(path.read_text())
    spec["listen"][0]["responses"] = {"*": SVC_DOWN.to_dict()}
    path.write_text(json.dumps(spec))
    os.kill(pid, 1)  # SIGHUP, to the server this test started
    time.sleep(0.3)
    _expect(_request(hc, b"GET / HTTP/1.1\r\n\r\n"), SVC_DOWN)


def test_exits_when_owner_dies(tmp_path: Path) -> None:
    port = _free_port()
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"listen": [
        {"port": port, "address": "127.0.0.1", "responses": {"*": SVC_OK.to_dict()}}]}))
    # An intermediate process starts the server as its child, then exits.
    code = (
        "import os, subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'sourceip.lab.health_server', "
        f"'--responses', {str(path)!r}, '--owner-pid', str(os.getpid())], "
        "stdout=subprocess.PIPE, text=True)\n"
        "p.stdout.readline()\n"
        "print(p.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 15)
        pytest.fail("health_server outlived its owner")


def test_pure_helpers() -> None:
    assert parse_request_line(b"GET /a?b HTTP/1.1\r\n") == ("GET", "/a")
    assert parse_request_line(b"GET http://h/x HTTP/1.1\r\n") == ("GET", "/x")
    assert parse_request_line(b"BREW /pot HTCPCP/1.0\r\n") is None
    assert choose({"/healthz": {"status": 200}}, "/")["status"] == 404
    wire = render(SVC_OK.to_dict(), date="Sun, 01 Mar 2026 12:00:00 GMT")
    assert wire == (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "
        + str(len(SVC_OK.body)).encode()
        + b"\r\nContent-Type: application/json\r\nDate: Sun, 01 Mar 2026 12:00:00 GMT\r\n"
        b"X-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: 2\r\n\r\n"
        + SVC_OK.body.encode()
    )
