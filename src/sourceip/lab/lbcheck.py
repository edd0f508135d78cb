"""The lab load balancer's health checker: every node checked at once, one JSON line each.

Run inside the router namespace (``ip netns exec NS python -m sourceip.lab.lbcheck``) with a
JSON document on stdin::

    {"timeout": 1.0,
     "checks": [{"id": "default/web node1", "ip": "10.0.0.11", "port": 32000,
                 "kind": "http", "path": "/healthz"}, ...]}

``http``: ``GET path`` with ``Host: ip:port``, the answer's status code (``"200"``, ``"503"``)
or ``"error: ..."``; ``tcp``: ``"open"`` when the connection is accepted, else ``"closed"``
(refused, unreachable or no answer within ``timeout``) — what a cloud load balancer's checks
do. Standard library only.
"""

from __future__ import annotations

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def check_http(ip: str, port: int, path: str, timeout: float) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.sendall(f"GET {path or '/'} HTTP/1.1\r\nHost: {ip}:{port}\r\n"
                      "User-Agent: sourceip-lab-lb\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return f"error: {exc.strerror or exc}"
    parts = data.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return parts[1].decode()
    return "error: not an HTTP answer"


def check_tcp(ip: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return "open"
    except OSError:
        return "closed"


def run_one(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    kind = check.get("kind")
    ip, port = str(check["ip"]), int(check.get("port") or 0)
    if kind == "http":
        result = check_http(ip, port, str(check.get("path") or "/"), timeout)
    elif kind == "tcp":
        result = check_tcp(ip, port, timeout)
    else:
        result = "-"
    return {"id": check.get("id"), "observed": result}


def main() -> int:
    request = json.load(sys.stdin)
    checks = request.get("checks", [])
    timeout = float(request.get("timeout", 1.0))
    if checks:
        with ThreadPoolExecutor(max_workers=min(64, len(checks))) as pool:
            for line in pool.map(lambda c: run_one(c, timeout), checks):
                sys.stdout.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
