"""The lab's kube-proxy-compatible health server: precomputed answers on the node's ports.

Run inside a node's namespace (``ip netns exec NS python -m sourceip.lab.health_server
--responses FILE --owner-pid PID``). ``FILE`` holds the answers that
``sourceip.kubeproxy.healthcheck`` computed for this node (``HealthResponse.to_dict()``)::

    {"listen": [
       {"port": 32000, "responses": {"*": {"status": 503, "headers": {...}, "body": "..."}}},
       {"port": 10256, "address": "0.0.0.0",
        "responses": {"/healthz": {...}, "/livez": {...}}}]}

A request for a path (query string ignored) gets that path's answer, else the ``"*"`` answer
(kube-proxy's per-Service server answers every path alike), else Go's 404. The bytes on the
wire are Go's ``net/http``: ``HTTP/1.1 <status> <reason>``, the handler's headers plus
``Date`` and ``Content-Length``, in Go's sorted order, then the body; each connection is
closed after one answer (``Connection: close``). A request that does not parse gets Go's
``400 Bad Request`` and the server carries on. ``SIGHUP`` re-reads the file.

Prints ``{"ready": true, ...}`` once every port is bound; exits when its owner process is
gone (as ``echo_server`` does). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
           503: "Service Unavailable"}
NOT_FOUND: dict[str, Any] = {
    "status": 404,
    "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    "body": "404 page not found\n",
}
MAX_HEAD = 8192
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"}


def render(response: dict[str, Any], *, head: bool = False, date: str | None = None) -> bytes:
    """The bytes Go's net/http writes for ``response`` (``{"status", "headers", "body"}``)."""
    status = int(response["status"])
    body = str(response.get("body", "")).encode()
    headers = {str(k): str(v) for k, v in dict(response.get("headers", {})).items()}
    headers["Date"] = date if date is not None else formatdate(usegmt=True)
    headers["Content-Length"] = str(len(body))
    headers["Connection"] = "close"
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in sorted(headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


def bad_request() -> bytes:
    """Go's answer to a request it cannot parse."""
    return (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\n\r\n400 Bad Request")


def parse_request_line(head: bytes) -> tuple[str, str] | None:
    """(method, path without query) from the request head, or None if it is not HTTP/1.x."""
    line, _, _ = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    try:
        method, target, version = (p.decode("ascii") for p in parts)
    except UnicodeDecodeError:
        return None
    if method not in METHODS or not version.startswith("HTTP/1.") or not target:
        return None
    path = target.split("?", 1)[0]
    if path.startswith(("http://", "https://")):
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
    return method, path


def choose(responses: dict[str, Any], path: str) -> dict[str, Any]:
    """The answer for ``path``: exact match, else ``"*"``, else Go's 404."""
    if path in responses:
        return dict(responses[path])
    if "*" in responses:
        return dict(responses["*"])
    return NOT_FOUND


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(2.0)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            parsed = parse_request_line(data) if b"\r\n" in data else None
            if parsed is None:
                if data:
                    conn.sendall(bad_request())
                return
            method, path = parsed
            conn.sendall(render(choose(self.server.responses(), path), head=method == "HEAD"))
        except OSError:
            return  # a peer that resets or stalls must not stop the server


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], table: _Table) -> None:
        self.table = table
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # "::" takes both families
        super().__init__(address, _Handler)

    def responses(self) -> dict[str, Any]:
        return self.table.get(self.server_address[1])


class _Table:
    """The answers per port, swapped as a whole on reload."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.by_port: dict[int, dict[str, Any]] = {}
        self.listen: list[tuple[str, int]] = []
        self.load()

    def load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            spec = json.load(f)
        by_port: dict[int, dict[str, Any]] = {}
        listen: list[tuple[str, int]] = []
        for entry in spec.get("listen", []):
            port = int(entry["port"])
            by_port[port] = dict(entry.get("responses", {}))
            listen.append((str(entry.get("address", "0.0.0.0")), port))
        with self.lock:
            self.by_port = by_port
            self.listen = listen

    def get(self, port: int) -> dict[str, Any]:
        with self.lock:
            return self.by_port.get(port, {})


def serve(responses_file: str, owner_pid: int) -> int:
    """Serve until the owner process is gone (or forever with ``owner_pid`` 0)."""
    table = _Table(responses_file)
    servers: list[_Server] = []
    try:
        for address, port in table.listen:
            srv = _Server((address, port), table)
            servers.append(srv)
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             daemon=True).start()
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: table.load())
        print(json.dumps({"ready": True, "pid": os.getpid(),
                          "ports": [p for _, p in table.listen]}), flush=True)
        while True:
            time.sleep(0.3)
            if owner_pid and os.getppid() != owner_pid:
                return 0  # the lab that started us is gone
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sourceip.lab.health_server")
    parser.add_argument("--responses", required=True, help="JSON file of ports and answers")
    parser.add_argument("--owner-pid", type=int, default=0,
                        help="exit when this parent process is gone (0: never)")
    args = parser.parse_args(argv)
    if args.owner_pid and os.getppid() != args.owner_pid:
        return 0
    try:
        return serve(args.responses, args.owner_pid)
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError, KeyError) as exc:
        print(f"health_server: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
