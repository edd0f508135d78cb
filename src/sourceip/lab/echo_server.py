"""The lab's echo server: one process per pod, every TCP and UDP port the pod serves.

Run inside the pod's namespace (``ip netns exec NS python -m sourceip.lab.echo_server
--run RUNID --pod NS/NAME --owner-pid PID --tcp 80,8080 --udp 53``). Each TCP connection gets
one JSON line and is closed; each UDP datagram gets one JSON datagram back, sent from the
address it was sent to (``IP_PKTINFO``) so that conntrack un-NATs the reply. The line says
what the pod saw::

    {"pod": "default/server", "proto": "tcp", "seen_source": "10.244.1.1",
     "seen_port": 40522, "local": "10.244.1.5:8080"}

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
from collections.abc import Sequence

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_PKTINFO = struct.Struct("@i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def _reply(pod: str, proto: str, peer: tuple[str, int], local: tuple[str, int]) -> bytes:
    return (json.dumps({
        "pod": pod,
        "proto": proto,
        "seen_source": peer[0],
        "seen_port": peer[1],
        "local": f"{local[0]}:{local[1]}",
    }) + "\n").encode()


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


def _answer_udp(sock: socket.socket, pod: str, port: int) -> None:
    try:
        _data, ancdata, _flags, peer = sock.recvmsg(4096, socket.CMSG_SPACE(_PKTINFO.size))
    except BlockingIOError:
        return
    local_ip = "0.0.0.0"
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            _ifindex, _spec_dst, addr = _PKTINFO.unpack(data[: _PKTINFO.size])
            local_ip = socket.inet_ntoa(addr)
    cmsg = [(socket.IPPROTO_IP, IP_PKTINFO,
             _PKTINFO.pack(0, socket.inet_aton(local_ip), b"\0\0\0\0"))]
    try:
        sock.sendmsg([_reply(pod, "udp", peer, (local_ip, port))], cmsg, 0, peer)
    except OSError as exc:
        print(f"echo_server {pod}: udp reply to {peer}: {exc}", file=sys.stderr)


def serve(pod: str, tcp_ports: Sequence[int], udp_ports: Sequence[int], owner_pid: int,
          *, runid: str = "") -> int:
    """Serve until the owner process is gone (or forever with ``owner_pid`` 0)."""
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    for port in tcp_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("tcp", port))
        socks.append(s)
    for port in udp_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.bind(("0.0.0.0", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("udp", port))
        socks.append(s)
    print(json.dumps({"ready": True, "pod": pod, "pid": os.getpid(), "run": runid,
                      "tcp": list(tcp_ports), "udp": list(udp_ports)}), flush=True)
    try:
        while True:
            for key, _mask in sel.select(timeout=0.5):
                proto, port = key.data
                if proto == "tcp":
                    _answer_tcp(key.fileobj, pod)  # type: ignore[arg-type]
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
    args = parser.parse_args(argv)
    if args.owner_pid and os.getppid() != args.owner_pid:
        return 0
    try:
        return serve(args.pod, args.tcp, args.udp, args.owner_pid, runid=args.run)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"echo_server {args.pod}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
