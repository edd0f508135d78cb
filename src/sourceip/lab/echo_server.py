"""The lab's echo server: one process per pod, every TCP and UDP port the pod serves.

Run inside the pod's namespace (``ip netns exec NS python -m sourceip.lab.echo_server
--run RUNID --pod NS/NAME --owner-pid PID --tcp 80,8080 --udp 53``). Each TCP connection gets
one JSON line and is closed; each UDP datagram gets one JSON datagram back, sent from the
address it was sent to (``IP_PKTINFO`` / ``IPV6_PKTINFO``) so that conntrack un-NATs the reply.
Every port is served on both families: an IPv4 socket and an IPv6-only one (``IPV6_V6ONLY``,
so an IPv4 client is never reported as ``::ffff:a.b.c.d``); where the kernel has no IPv6 the
IPv4 sockets alone. The line says what the pod saw (``local`` is ``[addr]:port`` for IPv6)::

    {"pod": "default/server", "proto": "tcp", "seen_source": "10.244.1.1",
     "seen_port": 40522, "local": "10.244.1.5:8080"}

Ports given with ``--http`` (the backends of Ingress routes, and targets of a load balancer
that sends PROXY protocol) wait up to ~100 ms per connection, in a thread of their own, for the
client to speak first:

* a PROXY protocol v1/v2 header is decoded (``sourceip.clientip.proxyproto``) and reported as
  ``"proxy": {...}`` in whatever answer follows;
* an HTTP request line is answered ``HTTP/1.1 200`` with a JSON body: the fields above with
  ``"proto": "http"``, the request ``method``/``target`` and ``"headers": [[name, value], ...]``
  exactly as received (order and case kept);
* no bytes (an L4 probe): the JSON line as on any other port.

Once every socket is bound it prints ``{"ready": true, ...}`` on stdout (the lab waits for it).
It exits when its owner (the lab process that started it) is gone, so a killed lab never
leaves servers behind. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_PKTINFO = struct.Struct("@i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_PKTINFO6 = struct.Struct("@16sI")  # struct in6_pktinfo: addr, ifindex


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


FIRST_BYTES_WAIT = 0.1  # how long an --http port waits for the client to speak first
REQUEST_TIMEOUT = 2.0  # the whole request head must arrive within this
MAX_HEAD = 65536
_HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")


def _fields(pod: str, proto: str, peer: tuple[str, int],
            local: tuple[str, int]) -> dict[str, Any]:
    return {
        "pod": pod,
        "proto": proto,
        "seen_source": peer[0],
        "seen_port": peer[1],
        "local": f"[{local[0]}]:{local[1]}" if ":" in local[0] else f"{local[0]}:{local[1]}",
    }


def _reply(pod: str, proto: str, peer: tuple[str, int], local: tuple[str, int]) -> bytes:
    return (json.dumps(_fields(pod, proto, peer, local)) + "\n").encode()


def _answer_tcp(listener: socket.socket, pod: str) -> None:
    try:
        conn, peer = listener.accept()
    except BlockingIOError:
        return
    with conn:
        conn.settimeout(1.0)
        try:
            conn.sendall(_reply(pod, "tcp", peer, conn.getsockname()))
            conn.shutdown(socket.SHUT_WR)
        except OSError as exc:
            print(f"echo_server {pod}: tcp reply to {peer}: {exc}", file=sys.stderr)


def _recv_some(conn: socket.socket, timeout: float) -> bytes | None:
    """Bytes the client sent within ``timeout`` (``b""`` when it closed), ``None`` when it
    sent nothing."""
    conn.settimeout(timeout)
    try:
        return conn.recv(MAX_HEAD)
    except TimeoutError:
        return None


def _read_proxy(conn: socket.socket, data: bytes) -> tuple[dict[str, Any] | str, bytes]:
    """Decode the PROXY header at the start of ``data`` (reading more as needed): its
    description and the bytes after it, or an error text."""
    from sourceip.clientip.errors import ProxyProtocolError
    from sourceip.clientip.proxyproto import NEED_DATA, parse

    deadline = time.monotonic() + REQUEST_TIMEOUT
    while True:
        try:
            got = parse(data)
        except ProxyProtocolError as exc:
            return f"bad PROXY header: {exc}", b""
        if got is not NEED_DATA:
            assert isinstance(got, tuple)
            header, used = got
            return header.as_dict(), data[used:]
        more = _recv_some(conn, max(0.01, deadline - time.monotonic()))
        if not more:
            return "incomplete PROXY header", b""
        data += more


def _read_head(conn: socket.socket, data: bytes) -> bytes | None:
    """The request head (up to the blank line), reading more as needed."""
    deadline = time.monotonic() + REQUEST_TIMEOUT
    while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < MAX_HEAD:
        more = _recv_some(conn, max(0.01, deadline - time.monotonic()))
        if not more:
            return None
        data += more
    return data


def _parse_head(head: bytes) -> tuple[str, str, list[list[str]]]:
    text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    method, target = parts[0], parts[1] if len(parts) > 1 else ""
    headers: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            break
        name, sep, value = line.partition(":")
        if sep:
            headers.append([name, value.strip()])
    return method, target, headers


def _answer_http_conn(conn: socket.socket, peer: tuple[str, int], pod: str) -> None:
    """One connection on an --http port (runs in its own thread)."""
    with conn:
        try:
            local = conn.getsockname()
            fields = _fields(pod, "tcp", peer, local)
            data = _recv_some(conn, FIRST_BYTES_WAIT)
            if data and (data.startswith(b"PROXY ") or data.startswith(b"\r\n\r\n\0")):
                proxy, data = _read_proxy(conn, data)
                fields["proxy"] = proxy
                if not data and not isinstance(proxy, str):
                    data = _recv_some(conn, FIRST_BYTES_WAIT)
            if data and data.startswith(_HTTP_METHODS):
                head = _read_head(conn, data)
                if head is not None:
                    method, target, headers = _parse_head(head)
                    fields.update(proto="http", method=method, target=target, headers=headers)
                    body = json.dumps(fields).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 + f"Content-Length: {len(body)}\r\n".encode()
                                 + b"Connection: close\r\n\r\n" + body)
                    conn.shutdown(socket.SHUT_WR)
                    return
            conn.settimeout(1.0)
            conn.sendall((json.dumps(fields) + "\n").encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError as exc:
            print(f"echo_server {pod}: http reply to {peer}: {exc}", file=sys.stderr)


def _accept_http(listener: socket.socket, pod: str) -> None:
    try:
        conn, peer = listener.accept()
    except BlockingIOError:
        return
    conn.setblocking(True)
    threading.Thread(target=_answer_http_conn, args=(conn, peer, pod), daemon=True).start()


def _answer_udp(sock: socket.socket, pod: str, port: int) -> None:
    v6 = sock.family == socket.AF_INET6
    try:
        _data, ancdata, _flags, peer = sock.recvmsg(
            4096, socket.CMSG_SPACE((_PKTINFO6 if v6 else _PKTINFO).size))
    except BlockingIOError:
        return
    local_ip = "::" if v6 else "0.0.0.0"
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            _ifindex, _spec_dst, addr = _PKTINFO.unpack(data[: _PKTINFO.size])
            local_ip = socket.inet_ntoa(addr)
        elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
            addr6, _ifindex6 = _PKTINFO6.unpack(data[: _PKTINFO6.size])
            local_ip = socket.inet_ntop(socket.AF_INET6, addr6)
    if v6:
        cmsg = [(socket.IPPROTO_IPV6, IPV6_PKTINFO,
                 _PKTINFO6.pack(socket.inet_pton(socket.AF_INET6, local_ip), 0))]
    else:
        cmsg = [(socket.IPPROTO_IP, IP_PKTINFO,
                 _PKTINFO.pack(0, socket.inet_aton(local_ip), b"\0\0\0\0"))]
    try:
        sock.sendmsg([_reply(pod, "udp", peer, (local_ip, port))], cmsg, 0, peer)
    except OSError as exc:
        print(f"echo_server {pod}: udp reply to {peer}: {exc}", file=sys.stderr)


def _has_ipv6() -> bool:
    """Whether this namespace can bind IPv6 sockets (the kernel may have IPv6 disabled)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _socket(family: int, kind: int, port: int) -> socket.socket:
    """A bound, non-blocking socket on every address of ``family`` (IPv6: IPv6 only; UDP:
    told each datagram's destination address)."""
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_DGRAM:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        s.bind(("::", port))
    else:
        if kind == socket.SOCK_DGRAM:
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.bind(("0.0.0.0", port))
    s.setblocking(False)
    return s


def serve(pod: str, tcp_ports: Sequence[int], udp_ports: Sequence[int], owner_pid: int,
          *, runid: str = "", http_ports: Sequence[int] = ()) -> int:
    """Serve until the owner process is gone (or forever with ``owner_pid`` 0). ``http_ports``
    (a subset of, or in addition to, ``tcp_ports``) wait for the client to speak first."""
    tcp_ports = list(dict.fromkeys([*tcp_ports, *http_ports]))
    http = set(http_ports)
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    families = [socket.AF_INET] + ([socket.AF_INET6] if _has_ipv6() else [])
    for family in families:
        for port in tcp_ports:
            s = _socket(family, socket.SOCK_STREAM, port)
            s.listen(128)
            sel.register(s, selectors.EVENT_READ, ("http" if port in http else "tcp", port))
            socks.append(s)
        for port in udp_ports:
            s = _socket(family, socket.SOCK_DGRAM, port)
            sel.register(s, selectors.EVENT_READ, ("udp", port))
            socks.append(s)
    print(json.dumps({"ready": True, "pod": pod, "pid": os.getpid(), "run": runid,
                      "tcp": list(tcp_ports), "udp": list(udp_ports),
                      "http": sorted(http)}), flush=True)
    try:
        while True:
            for key, _mask in sel.select(timeout=0.5):
                proto, port = key.data
                if proto == "tcp":
                    _answer_tcp(key.fileobj, pod)  # type: ignore[arg-type]
                elif proto == "http":
                    _accept_http(key.fileobj, pod)  # type: ignore[arg-type]
                else:
                    _answer_udp(key.fileobj, pod, port)  # type: ignore[arg-type]
            if owner_pid and os.getppid() != owner_pid:
                return 0  # the lab that started us is gone
    finally:
        for s in socks:
            s.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sourceip.lab.echo_server")
    parser.add_argument("--run", default="", help="the lab run id (for identification)")
    parser.add_argument("--pod", required=True, help="NS/NAME reported in every reply")
    parser.add_argument("--owner-pid", type=int, default=0,
                        help="exit when this parent process is gone (0: never)")
    parser.add_argument("--tcp", type=_ports, default=[])
    parser.add_argument("--udp", type=_ports, default=[])
    parser.add_argument("--http", type=_ports, default=[],
                        help="TCP ports that wait ~100 ms for an HTTP request or PROXY header")
    args = parser.parse_args(argv)
    if args.owner_pid and os.getppid() != args.owner_pid:
        return 0
    try:
        return serve(args.pod, args.tcp, args.udp, args.owner_pid, runid=args.run,
                     http_ports=args.http)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"echo_server {args.pod}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
