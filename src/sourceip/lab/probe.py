"""The lab's probe client: many probes at once from one namespace, one JSON line each.

Run inside the client's namespace (``ip netns exec NS python -m sourceip.lab.probe``) with a
JSON document on stdin::

    {"timeout": 1.0,
     "probes": [{"id": "...", "attempt": 0, "proto": "tcp", "dst_ip": "10.96.0.10",
                 "dst_port": 80, "sport_range": [20000, 20099] | null}, ...]}

Every probe runs in its own thread; each answers one line as soon as it is done::

    {"id": "...", "attempt": 0, "disposition": "delivered", "seen_source": "10.244.2.5",
     "seen_port": 41234, "endpoint": "10.244.1.5:8080", "pod": "default/server",
     "elapsed_ms": 1.3}

An ``http`` probe (``"proto": "http"`` with ``"http": {"host", "path", "headers": [[n, v]]}``)
sends ``GET <path> HTTP/1.1`` with ``Host``, the extra headers and ``Connection: close`` over
TCP, and reads the whole response. When the echo server behind the proxy answered, the line is
``delivered`` with the backend's ``seen_source`` and the ``headers`` it received; when the proxy
answered by itself (an error status) or closed the connection, it is ``failed`` with
``http_status`` (or none) and ``error``.

``delivered``: the echo server answered (what it saw is in the line); ``dropped``: no answer
within ``timeout`` (TCP connect or UDP reply); ``rejected``: connection refused or an ICMP
unreachable came back; ``error``: the probe itself failed (``error`` says how). A
``sport_range`` binds the client socket to a source port in it (the lab's router uses the
source port to choose the node an external packet goes to). Standard library only.
"""

from __future__ import annotations

import errno
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# A TCP probe waits this long for the echo server's line; then it asks over HTTP (a real
# ingress controller in front answers requests for this Host with what it saw).
SPEAK_AFTER = 0.3
STATUS_REQUEST = (b"GET / HTTP/1.1\r\nHost: sourceip-lab.invalid\r\n"
                  b"User-Agent: sourceip-lab-probe\r\nConnection: close\r\n\r\n")
REJECT_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES,
                 errno.EPERM}


def _family(dst: str) -> socket.AddressFamily:
    """The address family of ``dst`` (an IPv6 address contains a colon)."""
    return socket.AF_INET6 if ":" in dst else socket.AF_INET


# TCP over IPv6: a SYN refused by an ICMPv6 error (a kube-proxy REJECT) fails connect() only
# when the SYN is sent again after the initial retransmission timeout (1 s): the error to the
# first SYN is taken as a soft error (measured in the lab on Linux 6.18, from a node and from a
# pod; IPv4's ICMP error fails the first SYN). A connect waits this long before "dropped".
IPV6_TCP_CONNECT_TIMEOUT = 2.5


def _connect_timeout(dst: str, timeout: float) -> float:
    """How long a TCP connect to ``dst`` may take before the probe calls it dropped."""
    return max(timeout, IPV6_TCP_CONNECT_TIMEOUT) if ":" in dst else timeout


def _bind(sock: socket.socket, sport_range: list[int] | None) -> None:
    """Bind to a free port of ``sport_range`` (no SO_REUSEADDR: two probes never share one)."""
    if not sport_range:
        return
    lo, hi = int(sport_range[0]), int(sport_range[1])
    ports = list(range(lo, hi + 1))
    random.shuffle(ports)
    last: OSError | None = None
    for port in ports[:50]:
        try:
            sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", port))
            return
        except OSError as exc:
            last = exc
    raise OSError(f"no free source port in {lo}-{hi}: {last}")


def _parse_reply(data: bytes) -> dict[str, Any]:
    line = data.split(b"\n", 1)[0]
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError("reply is not a JSON object")
    return reply


def _delivered(reply: dict[str, Any]) -> dict[str, Any]:
    out = {
        "disposition": "delivered",
        "seen_source": reply.get("seen_source"),
        "seen_port": reply.get("seen_port"),
        "endpoint": reply.get("local"),
        "pod": reply.get("pod"),
    }
    for key in ("headers", "proxy"):
        if key in reply:
            out[key] = reply[key]
    return out


def _oserror(exc: OSError) -> dict[str, Any]:
    if exc.errno in REJECT_ERRNOS or isinstance(exc, ConnectionRefusedError):
        return {"disposition": "rejected", "error": exc.strerror or str(exc)}
    return {"disposition": "error", "error": str(exc), "errno": exc.errno}


def probe_tcp(dst: str, port: int, timeout: float, sport_range: list[int] | None) -> dict[str, Any]:
    with socket.socket(_family(dst), socket.SOCK_STREAM) as s:
        s.settimeout(_connect_timeout(dst, timeout))
        try:
            _bind(s, sport_range)
            s.connect((dst, port))
        except TimeoutError:
            return {"disposition": "dropped"}
        except OSError as exc:
            return _oserror(exc)
        buf = b""
        try:
            s.settimeout(SPEAK_AFTER)
            try:
                buf = s.recv(4096)
            except TimeoutError:
                # Silent: a real proxy (an ingress controller) waits for a request. Ask it
                # what it saw of this connection (the lab adds that answer to its config).
                s.settimeout(timeout)
                s.sendall(STATUS_REQUEST)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                result = _parse_response(data)
                result.pop("http_status", None)
                if not data:
                    # Closed without a word: a listener that expects PROXY protocol (nginx
                    # "broken header"). Ask once more, announcing no addresses.
                    result = _ask_with_proxy_unknown(dst, port, timeout, sport_range)
                if result["disposition"] != "delivered":
                    return {"disposition": "error",
                            "error": f"connected, no reply line; asked over HTTP: "
                                     f"{result.get('error')}"}
                return result
            s.settimeout(timeout)
            while buf and b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            return {"disposition": "error", "error": "connected, but no reply line"}
        except OSError as exc:
            return {"disposition": "error", "error": f"connected, then {exc}"}
        try:
            return _delivered(_parse_reply(buf))
        except ValueError as exc:
            return {"disposition": "error", "error": f"connected, unreadable reply: {exc}"}


def _ask_with_proxy_unknown(dst: str, port: int, timeout: float,
                            sport_range: list[int] | None) -> dict[str, Any]:
    with socket.socket(_family(dst), socket.SOCK_STREAM) as s:
        s.settimeout(_connect_timeout(dst, timeout))
        try:
            _bind(s, sport_range)
            s.connect((dst, port))
            s.sendall(b"PROXY UNKNOWN\r\n" + STATUS_REQUEST)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            return {"disposition": "failed", "error": f"asked with PROXY UNKNOWN: {exc}"}
    result = _parse_response(data)
    result.pop("http_status", None)
    if result["disposition"] == "delivered":
        result["proxy"] = ("sent by the probe: PROXY UNKNOWN (the listener closes connections "
                           "without a PROXY header)")
    return result


def probe_udp(dst: str, port: int, timeout: float, sport_range: list[int] | None) -> dict[str, Any]:
    with socket.socket(_family(dst), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            _bind(s, sport_range)
            s.connect((dst, port))
            try:
                s.send(b'{"probe": true}\n')
            except PermissionError:
                # A datagram the node itself sends fails with EPERM whether netfilter DROPs
                # or REJECTs it; only the next recv tells them apart (refused vs timeout).
                pass
            data = s.recv(4096)
        except TimeoutError:
            return {"disposition": "dropped"}
        except OSError as exc:
            return _oserror(exc)
        try:
            return _delivered(_parse_reply(data))
        except ValueError as exc:
            return {"disposition": "error", "error": f"unreadable reply: {exc}"}


def _request(http: dict[str, Any]) -> bytes:
    host = str(http.get("host") or "localhost")
    path = str(http.get("path") or "/")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{n}: {v}" for n, v in http.get("headers", [])]
    lines += ["User-Agent: sourceip-lab-probe", "Accept: */*", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _parse_response(data: bytes) -> dict[str, Any]:
    if not data:
        return {"disposition": "failed",
                "error": "the connection was closed without an HTTP response"}
    head, _sep, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        try:  # no HTTP in front: an echo server answered the TCP connection itself
            return _delivered(_parse_reply(data))
        except ValueError:
            return {"disposition": "failed", "error": f"not an HTTP response: {status_line!r}"}
    status = int(parts[1])
    if status == 200:
        try:
            reply = json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            reply = None
        if isinstance(reply, dict) and "pod" in reply:
            out = _delivered(reply)
            out["http_status"] = status
            return out
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return {"disposition": "failed", "http_status": status,
            "error": f"{status_line}" + (f": {text[:120]}" if text else "")}


def probe_http(dst: str, port: int, timeout: float, sport_range: list[int] | None,
               http: dict[str, Any] | None = None) -> dict[str, Any]:
    with socket.socket(_family(dst), socket.SOCK_STREAM) as s:
        s.settimeout(_connect_timeout(dst, timeout))
        try:
            _bind(s, sport_range)
            s.connect((dst, port))
        except TimeoutError:
            return {"disposition": "dropped"}
        except OSError as exc:
            return _oserror(exc)
        buf = b""
        try:
            s.sendall(_request(http or {}))
            s.settimeout(timeout * 2)  # the proxy makes a connection of its own first
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            if not buf:
                return {"disposition": "failed", "error": "connected, but no HTTP response"}
        except OSError as exc:
            if not buf:
                return {"disposition": "failed", "error": f"connected, then {exc}"}
        return _parse_response(buf)


PROBERS: dict[str, Callable[[str, int, float, list[int] | None], dict[str, Any]]] = {
    "tcp": probe_tcp,
    "udp": probe_udp,
}


LOCAL_RETRY_ERRNOS = {errno.EADDRNOTAVAIL, errno.EADDRINUSE}


def run_one(probe: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One probe; never raises (a failure is an ``error`` disposition). A local port clash
    (the chosen source port still in use for that destination) is retried with another."""
    t0 = time.monotonic()
    try:
        proto = str(probe.get("proto", "tcp"))
        for _ in range(5):
            if proto == "http":
                result = probe_http(str(probe["dst_ip"]), int(probe["dst_port"]), timeout,
                                    probe.get("sport_range"), probe.get("http"))
            else:
                result = PROBERS[proto](str(probe["dst_ip"]), int(probe["dst_port"]), timeout,
                                        probe.get("sport_range"))
            if result.get("errno") not in LOCAL_RETRY_ERRNOS:
                break
        result.pop("errno", None)
    except Exception as exc:  # noqa: BLE001 - report, never crash the batch
        result = {"disposition": "error", "error": f"{type(exc).__name__}: {exc}"}
    result["id"] = probe.get("id")
    result["attempt"] = probe.get("attempt", 0)
    result["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    return result


def main() -> int:
    request = json.load(sys.stdin)
    probes = request.get("probes", [])
    timeout = float(request.get("timeout", 1.0))
    lock = threading.Lock()

    def work(probe: dict[str, Any]) -> None:
        line = json.dumps(run_one(probe, timeout))
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    if probes:
        with ThreadPoolExecutor(max_workers=min(64, len(probes))) as pool:
            list(pool.map(work, probes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
