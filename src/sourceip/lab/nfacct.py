"""Create nfacct counters in the current network namespace, as kube-proxy does at start-up.

kube-proxy's iptables rules use ``-m nfacct --nfacct-name NAME`` only after it has ensured the
counter exists (``pkg/proxy/iptables/proxier.go``: ``nfacctRunner.Ensure``); iptables-restore
fails with ENOENT otherwise. The lab does the same before loading the rules::

    ip netns exec NODE python -m sourceip.lab.nfacct ct_state_invalid_dropped_pkts ...
    python -m sourceip.lab.nfacct --netns NODE1 --netns NODE2 -- NAME ...   # one process

With ``--netns`` the process enters each namespace by ``setns`` and checks that it got there
(``/proc/self/ns/net`` against ``/run/netns/NAME``) before creating anything.

Talks nfnetlink directly (``NFNL_SUBSYS_ACCT``/``NFNL_MSG_ACCT_NEW``): no ``nfacct`` tool is
needed. An existing counter is fine. Standard library only.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections.abc import Sequence

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ACCT = 7
NFNL_MSG_ACCT_NEW = 0
NFACCT_NAME = 1
NFACCT_NAME_MAX = 32
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2


def ensure(name: str) -> None:
    """Create the counter ``name`` unless it exists; raises ``OSError`` otherwise."""
    raw = name.encode() + b"\0"
    if len(raw) > NFACCT_NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, f"nfacct name {name!r} is too long")
    attr = struct.pack("=HH", 4 + len(raw), NFACCT_NAME) + raw
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0) + attr
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    msg_type = (NFNL_SUBSYS_ACCT << 8) | NFNL_MSG_ACCT_NEW
    header = struct.pack("=IHHII", 16 + len(body), msg_type, flags, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as s:
        s.bind((0, 0))
        s.settimeout(2.0)
        s.send(header + body)
        reply = s.recv(65536)
    _len, rtype, _flags, _seq, _pid = struct.unpack("=IHHII", reply[:16])
    if rtype != NLMSG_ERROR:
        return
    (code,) = struct.unpack("=i", reply[16:20])
    if code not in (0, -errno.EEXIST):
        raise OSError(-code, f"nfacct {name}: {os.strerror(-code)}")


CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


def enter_netns(name: str) -> None:
    """Move this (single-threaded) process into the named network namespace, and check that it
    got there: counters must never be created anywhere else."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    path = os.path.join(NETNS_DIR, name)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)
    want = os.stat(path).st_ino
    got = os.readlink("/proc/self/ns/net")
    if got != f"net:[{want}]":
        raise OSError(errno.EINVAL, f"setns {name}: still in {got}")


def main(argv: Sequence[str] | None = None) -> int:
    """``NAME...`` creates the counters here; ``--netns NS ... -- NAME...`` creates them in
    each named namespace in turn (one process for a whole lab)."""
    args = list(sys.argv[1:] if argv is None else argv)
    namespaces: list[str] = []
    while args and args[0] == "--netns":
        namespaces.append(args[1])
        args = args[2:]
    if args and args[0] == "--":
        args = args[1:]
    try:
        for ns in namespaces or [""]:
            if ns:
                enter_netns(ns)
            for name in args:
                ensure(name)
    except OSError as exc:
        print(f"nfacct: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
