"""The echo server on 127.0.0.1 (ephemeral ports, loopback only), real requests with and
without PROXY headers, and the ``sourceip echo`` command."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sourceip.clientip import TLV, Family, ProxyHeader, build_proxy_header
from sourceip.echo.server import EchoConfig, EchoServer

LOOPBACK = "127.0.0.1"


@contextmanager
def running(**kwargs: Any) -> Iterator[int]:
    """Run an EchoServer on 127.0.0.1:<ephemeral> in a thread; yield the port; stop it."""
    server = EchoServer(EchoConfig(host=LOOPBACK, port=0, **kwargs))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def main() -> None:
        _, p = await server.start()
        port.append(p)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(main(), loop).result(timeout=5)
    assert started.wait(5)
    try:
        yield port[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def exchange(port: int, payload: bytes) -> tuple[int, dict[str, Any]]:
    """Send raw bytes to the loopback server, read until close, return (status, json)."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


def request(extra: str = "") -> bytes:
    return (f"GET /hello?x=1 HTTP/1.1\r\nHost: echo\r\n{extra}Connection: close\r\n\r\n"
            ).encode("latin-1")


def test_plain_request_reports_the_socket_peer() -> None:
    with running() as port:
        status, body = exchange(port, request("X-Forwarded-For: 6.6.6.6\r\n"))
    assert status == 200
    assert body["peer"]["ip"] == LOOPBACK and body["proxy_protocol"] is None
    assert body["client"]["ip"] == LOOPBACK and body["client"]["code"] == "peer"
    assert ["X-Forwarded-For", "6.6.6.6"] in body["headers"]
    assert body["request"] == {"method": "GET", "target": "/hello?x=1", "version": "HTTP/1.1"}


def test_trusted_cidrs_resolve_the_forwarded_client() -> None:
    with running(trust=("127.0.0.0/8",)) as port:
        _, body = exchange(port, request("X-Forwarded-For: 6.6.6.6, 203.0.113.5\r\n"
                                         "X-Forwarded-For: 127.0.0.9\r\n"))
    assert body["client"]["ip"] == "203.0.113.5"
    assert body["client"]["hop"] == 1 and "rightmost" in body["client"]["reason"]


def test_trusted_hops() -> None:
    with running(trusted_hops=2) as port:
        _, body = exchange(port, request("X-Forwarded-For: 6.6.6.6, 203.0.113.5, 10.0.0.1\r\n"))
    assert (body["client"]["ip"], body["client"]["code"]) == ("203.0.113.5", "trusted-count")


def test_proxy_protocol_v1_header_sets_the_effective_peer() -> None:
    with running(proxy_protocol=True) as port:
        _, body = exchange(port, b"PROXY TCP4 198.51.100.7 10.0.0.5 40000 8080\r\n" + request())
    assert body["proxy_protocol"]["version"] == 1
    assert body["effective_peer"] == "198.51.100.7"
    assert body["client"]["ip"] == "198.51.100.7"
    assert body["peer"]["ip"] == LOOPBACK


def test_proxy_protocol_v2_with_tlvs_and_crc_then_headers() -> None:
    frame = build_proxy_header(ProxyHeader(
        version=2, family=Family.INET6, source="2001:db8::42", source_port=5000,
        destination="2001:db8::1", destination_port=80,
        tlvs=(TLV.aws_vpce_id("vpce-0123456789abcdef0"), TLV.authority("echo.example"))),
        add_crc32c=True)
    with running(proxy_protocol=True, trust=("2001:db8::42/128",)) as port:
        _, body = exchange(port, frame + request("X-Forwarded-For: 203.0.113.8\r\n"))
    pp = body["proxy_protocol"]
    assert pp["version"] == 2 and pp["aws_vpce_id"] == "vpce-0123456789abcdef0"
    assert pp["authority"] == "echo.example" and "crc32c" in pp
    # the PROXY source is a trusted proxy, so its X-Forwarded-For entry is believed
    assert body["client"]["ip"] == "203.0.113.8"


def test_proxy_protocol_local_uses_the_socket_peer() -> None:
    with running(proxy_protocol=True) as port:
        _, body = exchange(port, b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00" + request())
    assert body["proxy_protocol"]["command"] == "LOCAL"
    assert body["client"]["ip"] == LOOPBACK


def test_invalid_proxy_header_is_rejected_with_its_reason() -> None:
    with running(proxy_protocol=True) as port:
        status, body = exchange(port, request())
        status2, body2 = exchange(port, b"PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n" + request())
    assert (status, body["code"]) == (400, "not-proxy")
    assert (status2, body2["code"]) == (400, "v1-bad-port")


def test_keep_alive_serves_several_requests() -> None:
    with running() as port, socket.create_connection((LOOPBACK, port), timeout=5) as s:
        req = b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        s.sendall(req + req.replace(b"/a", b"/b"))
        buf = b""
        while buf.count(b'"target"') < 2:
            data = s.recv(65536)
            assert data
            buf += data
    assert b'"/a"' in buf and b'"/b"' in buf


def test_malformed_request_gets_400() -> None:
    with running() as port:
        status, body = exchange(port, b"NONSENSE\r\n\r\n")
    assert status == 400 and "request line" in body["error"]


# --- the command ------------------------------------------------------------------------------


def test_cli_bad_cidr_is_a_usage_error_without_traceback(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from sourceip.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["echo", "--host", LOOPBACK, "--port", "0", "--trust", "10.0.0.0/33"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--trust" in err and "10.0.0.0/33" in err and "Traceback" not in err


def test_cli_bad_combination_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from sourceip.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["echo", "--port", "0", "--header", "x-real-ip", "--trusted-hops", "2"])
    assert exc.value.code == 2
    assert "x-real-ip" in capsys.readouterr().err


def test_cli_end_to_end_subprocess() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sourceip", "echo", "--host", LOOPBACK, "--port", "0",
         "--proxy-protocol", "--trust", "127.0.0.0/8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr
                                                          else "")
        port = int(line.rsplit(":", 1)[1])
        _, body = exchange(port, b"PROXY TCP4 127.0.0.2 127.0.0.1 1 2\r\n"
                           + request("X-Forwarded-For: 203.0.113.99\r\n"))
        assert body["client"]["ip"] == "203.0.113.99"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
