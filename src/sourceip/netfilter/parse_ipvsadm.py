"""IPVS state (virtual servers and their real servers) and ``ipvsadm`` text, both ways.

kube-proxy's ipvs mode programs the kernel's IP Virtual Server table over netlink; ``ipvsadm``
shows it. This module owns that table as values and its two text forms:

* ``ipvsadm -Sn`` (``--save --numeric``): one ``-A`` line per virtual server, one ``-a`` line per
  real server, the form ``ipvsadm -R`` restores::

    -A -t 10.96.0.10:53 -s rr
    -a -t 10.96.0.10:53 -r 10.244.1.3:53 -m -w 1
    -A -u 10.96.0.10:53 -s rr -p 10800

* ``ipvsadm -Ln`` (``--list --numeric``), the listing people paste::

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
    TCP  10.96.0.1:443 rr persistent 10800
      -> 172.18.0.2:6443              Masq    1      0          0

``parse_ipvsadm`` reads either (detected per line), ``render_ipvsadm_save`` writes the first.
Options ipvsadm(8) documents for ``-A``/``-a`` that do not change where a packet goes (timeouts,
``-M`` netmask, ``--pe``, thresholds ``-x``/``-y``) are accepted and kept as text in ``extra``.
A line that is neither form raises ``RulesetParseError`` with ``file:line``; a virtual server
with no real servers is valid (kube-proxy keeps the virtual server of a Service without
endpoints): tracing reports it, the parser does not.

Semantics used by the tracer (``dataplane/ipvs.py``): a virtual server is keyed by (protocol,
address, port); fwmark services (``-f``) are kept but never match a packet here (kube-proxy
does not create them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from sourceip.errors import RulesetParseError
from sourceip.net.addr import IPAddress

__all__ = [
    "FORWARD_METHODS",
    "IPVSTable",
    "RealServer",
    "VirtualServer",
    "parse_ipvsadm",
    "render_ipvsadm_save",
]

# ipvsadm's forwarding methods: -m masquerading (NAT, what kube-proxy uses), -g gatewaying
# (direct routing), -i ipip tunnelling. The -Ln column names them Masq / Route / Tunnel.
FORWARD_METHODS = {"m": "Masq", "g": "Route", "i": "Tunnel"}
_FORWARD_BY_WORD = {v.lower(): k for k, v in FORWARD_METHODS.items()} | {"local": "g"}
_PROTO_FLAG = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
_FLAG_PROTO = {"-t": "tcp", "--tcp-service": "tcp", "-u": "udp", "--udp-service": "udp",
               "--sctp-service": "sctp", "-f": "fwmark", "--fwmark-service": "fwmark"}


@dataclass(frozen=True, slots=True)
class RealServer:
    """One destination of a virtual server: ``forward`` is ``m`` (masquerading: DNAT), ``g``
    or ``i``; ``weight`` 0 means quiesced (no new connections)."""

    addr: IPAddress
    port: int
    weight: int = 1
    forward: str = "m"

    def __str__(self) -> str:
        host = f"[{self.addr}]" if self.addr.version == 6 else str(self.addr)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class VirtualServer:
    """One IPVS service. ``proto`` is ``tcp``/``udp``/``sctp`` (``fwmark``: ``addr`` is None and
    ``port`` the mark); ``persistent`` the ``-p`` timeout in seconds (ClientIP affinity) or
    None; ``flags`` the ``-b`` scheduler flags (``mh-port`` for kube-proxy's ``mh``)."""

    proto: str
    addr: IPAddress | None
    port: int
    scheduler: str = "rr"
    persistent: int | None = None
    flags: tuple[str, ...] = ()
    real_servers: tuple[RealServer, ...] = ()
    extra: tuple[str, ...] = ()
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple[str, IPAddress | None, int]:
        return (self.proto, self.addr, self.port)

    def service_text(self) -> str:
        """``-t 10.96.0.10:53`` as ipvsadm writes the service."""
        if self.proto == "fwmark":
            return f"-f {self.port}"
        assert self.addr is not None
        host = f"[{self.addr}]" if self.addr.version == 6 else str(self.addr)
        return f"{_PROTO_FLAG[self.proto]} {host}:{self.port}"

    def describe(self) -> str:
        """``TCP 10.96.0.10:53 rr persistent 10800`` (the -Ln header line)."""
        if self.proto == "fwmark":
            head = f"FWM  {self.port} {self.scheduler}"
        else:
            assert self.addr is not None
            host = f"[{self.addr}]" if self.addr.version == 6 else str(self.addr)
            head = f"{self.proto.upper()}  {host}:{self.port} {self.scheduler}"
        if self.flags:
            head += f" ({','.join(self.flags)})"
        if self.persistent is not None:
            head += f" persistent {self.persistent}"
        return head


@dataclass(frozen=True, slots=True)
class IPVSTable:
    """Every virtual server of one node (the kernel's IPVS table), with a lookup by key."""

    virtual_servers: tuple[VirtualServer, ...] = ()
    source: str = field(default="", compare=False)
    _index: dict[tuple[str, IPAddress | None, int], VirtualServer] = field(
        default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        idx = self._index
        for vs in self.virtual_servers:
            idx.setdefault(vs.key, vs)

    def lookup(self, proto: str, addr: IPAddress, port: int) -> VirtualServer | None:
        return self._index.get((proto, addr, port))

    @property
    def addresses(self) -> frozenset[IPAddress]:
        """The addresses of the virtual servers (a superset of what is bound on kube-ipvs0:
        NodePort virtual servers use the node's own addresses)."""
        return frozenset(vs.addr for vs in self.virtual_servers if vs.addr is not None)


# ----------------------------------------------------------------------------- rendering


def render_ipvsadm_save(table: IPVSTable | Iterable[VirtualServer]) -> str:
    """``ipvsadm -Sn`` text: each ``-A`` line followed by its ``-a`` lines."""
    vss = table.virtual_servers if isinstance(table, IPVSTable) else tuple(table)
    out: list[str] = []
    for vs in vss:
        svc = vs.service_text()
        line = f"-A {svc} -s {vs.scheduler}"
        if vs.flags:
            line += f" -b {','.join(vs.flags)}"
        if vs.persistent is not None:
            line += f" -p {vs.persistent}"
        if vs.extra:
            line += " " + " ".join(vs.extra)
        out.append(line)
        for rs in vs.real_servers:
            out.append(f"-a {svc} -r {rs} -{rs.forward} -w {rs.weight}")
    return "\n".join(out) + ("\n" if out else "")


# ----------------------------------------------------------------------------- parsing


def _addr_port(text: str, what: str) -> tuple[IPAddress, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{what} {text!r} is not ADDRESS:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{what} {text!r}: {host!r} is not a numeric address (use ipvsadm "
                         "-n)") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what} {text!r}: port {port!r} is not 0-65535")
    return ip, int(port)


class _Builder:
    def __init__(self) -> None:
        self.order: list[tuple[str, IPAddress | None, int]] = []
        self.heads: dict[tuple[str, IPAddress | None, int], VirtualServer] = {}
        self.reals: dict[tuple[str, IPAddress | None, int], list[RealServer]] = {}

    def service(self, vs: VirtualServer) -> None:
        if vs.key in self.heads:
            raise ValueError(f"virtual server {vs.describe()} is defined twice")
        self.order.append(vs.key)
        self.heads[vs.key] = vs
        self.reals[vs.key] = []

    def real(self, key: tuple[str, IPAddress | None, int], rs: RealServer) -> None:
        if key not in self.heads:
            raise ValueError("a real server before its virtual server (-a without -A)")
        vaddr = self.heads[key].addr
        if vaddr is not None and rs.addr.version != vaddr.version:
            raise ValueError(f"real server {rs} is not of the virtual server's IP family")
        if rs.port == 0:
            raise ValueError(f"real server {rs}: port 0 is not traced")
        if any(r.addr == rs.addr and r.port == rs.port for r in self.reals[key]):
            raise ValueError(f"real server {rs} is listed twice")
        self.reals[key].append(rs)

    def table(self, source: str) -> IPVSTable:
        vss = []
        for key in self.order:
            head = self.heads[key]
            vss.append(VirtualServer(proto=head.proto, addr=head.addr, port=head.port,
                                     scheduler=head.scheduler, persistent=head.persistent,
                                     flags=head.flags, extra=head.extra,
                                     real_servers=tuple(self.reals[key]), line=head.line))
        return IPVSTable(virtual_servers=tuple(vss), source=source)


def _service_of(words: list[str], i: int) -> tuple[tuple[str, IPAddress | None, int], int]:
    flag = words[i]
    proto = _FLAG_PROTO[flag]
    if i + 1 >= len(words):
        raise ValueError(f"{flag} needs an argument")
    arg = words[i + 1]
    if proto == "fwmark":
        if not arg.isdigit():
            raise ValueError(f"fwmark {arg!r} is not a number")
        return (proto, None, int(arg)), i + 2
    ip, port = _addr_port(arg, "service")
    return (proto, ip, port), i + 2


def _save_line(words: list[str], b: _Builder, lineno: int) -> None:
    """One ``ipvsadm -S`` / ``ipvsadm`` command line (``-A ...`` or ``-a ...``)."""
    cmd = words[0]
    key: tuple[str, IPAddress | None, int] | None = None
    scheduler, persistent = "rr", None
    flags: tuple[str, ...] = ()
    extra: list[str] = []
    real: tuple[IPAddress, int] | None = None
    forward, weight = "m" if cmd in ("-a", "--add-server") else "", 1
    i = 1
    while i < len(words):
        w = words[i]
        if w in _FLAG_PROTO:
            key, i = _service_of(words, i)
            continue
        arg = words[i + 1] if i + 1 < len(words) else None
        if w in ("-s", "--scheduler") and arg is not None:
            scheduler, i = arg, i + 2
        elif w in ("-p", "--persistent"):
            if arg is not None and arg.isdigit():
                persistent, i = int(arg), i + 2
            else:
                persistent, i = 300, i + 1  # ipvsadm's default persistence timeout
        elif w in ("-b", "--sched-flags") and arg is not None:
            flags, i = tuple(arg.split(",")), i + 2
        elif w in ("-r", "--real-server") and arg is not None:
            real, i = _addr_port(arg, "real server"), i + 2
        elif w in ("-m", "--masquerading"):
            forward, i = "m", i + 1
        elif w in ("-g", "--gatewaying"):
            forward, i = "g", i + 1
        elif w in ("-i", "--ipip"):
            forward, i = "i", i + 1
        elif w in ("-w", "--weight") and arg is not None:
            if not arg.lstrip("-").isdigit():
                raise ValueError(f"weight {arg!r} is not a number")
            weight, i = int(arg), i + 2
        elif w in ("-M", "--netmask", "--pe", "-x", "--u-threshold", "-y", "--l-threshold",
                   "--tun-type", "--tun-port") and arg is not None:
            extra += [w, arg]
            i += 2
        elif w in ("--tun-nocsum", "--tun-csum", "--tun-remcsum"):
            extra.append(w)
            i += 1
        else:
            raise ValueError(f"unknown option {w!r}")
    if key is None:
        raise ValueError(f"{cmd} without a service (-t/-u/--sctp-service/-f)")
    if cmd in ("-A", "--add-service"):
        b.service(VirtualServer(proto=key[0], addr=key[1], port=key[2], scheduler=scheduler,
                                persistent=persistent, flags=flags, extra=tuple(extra),
                                line=lineno))
    else:
        if real is None:
            raise ValueError("-a without -r REAL-SERVER")
        b.real(key, RealServer(addr=real[0], port=real[1], weight=weight,
                               forward=forward or "m"))


def _list_service(words: list[str], b: _Builder, lineno: int
                  ) -> tuple[str, IPAddress | None, int]:
    """``TCP  10.96.0.1:443 rr persistent 10800`` (an ``ipvsadm -Ln`` virtual server line)."""
    proto = words[0].lower()
    if len(words) < 3:
        raise ValueError(f"virtual server line needs PROT ADDRESS:PORT SCHEDULER: {words}")
    if proto == "fwm":
        if not words[1].isdigit():
            raise ValueError(f"fwmark {words[1]!r} is not a number")
        key: tuple[str, IPAddress | None, int] = ("fwmark", None, int(words[1]))
    else:
        ip, port = _addr_port(words[1], "service")
        key = (proto, ip, port)
    scheduler = words[2]
    persistent: int | None = None
    flags: tuple[str, ...] = ()
    rest = words[3:]
    j = 0
    while j < len(rest):
        w = rest[j]
        if w == "persistent" and j + 1 < len(rest) and rest[j + 1].isdigit():
            persistent = int(rest[j + 1])
            j += 2
        elif w.startswith("(") and w.endswith(")"):
            flags = tuple(w[1:-1].split(","))
            j += 1
        else:  # mask, pe, ops: kept, not used
            j += 1
    b.service(VirtualServer(proto=key[0], addr=key[1], port=key[2], scheduler=scheduler,
                            persistent=persistent, flags=flags, extra=tuple(rest), line=lineno))
    return key


def parse_ipvsadm(text: str, *, source: str = "<ipvsadm>") -> IPVSTable:
    """An ``ipvsadm -Sn`` or ``ipvsadm -Ln`` dump (numeric: names are not resolved) as an
    ``IPVSTable``. Raises ``RulesetParseError`` (with ``source:line``) on a line that is neither
    form, a name instead of an address, or a real server without its virtual server."""
    b = _Builder()
    current: tuple[str, IPAddress | None, int] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        try:
            if words[0] in ("-A", "--add-service", "-a", "--add-server"):
                _save_line(words, b, lineno)
            elif line.startswith("IP Virtual Server version") or words[0] == "Prot" or (
                    words[0] == "->" and len(words) > 1 and words[1].startswith("Remote")):
                continue
            elif words[0] == "->":
                if current is None:
                    raise ValueError("a real server line before any virtual server")
                ip, port = _addr_port(words[1], "real server")
                fwd = _FORWARD_BY_WORD.get(words[2].lower()) if len(words) > 2 else "m"
                if fwd is None:
                    raise ValueError(f"forwarding method {words[2]!r} is not Masq, Route, "
                                     "Local or Tunnel")
                weight = int(words[3]) if len(words) > 3 and words[3].isdigit() else 1
                b.real(current, RealServer(addr=ip, port=port, weight=weight, forward=fwd))
            elif words[0].upper() in ("TCP", "UDP", "SCTP", "FWM"):
                current = _list_service(words, b, lineno)
            else:
                raise ValueError(f"not an ipvsadm -Sn or -Ln line: {line!r}")
        except ValueError as exc:
            raise RulesetParseError(str(exc), file=source, line=lineno) from None
    return b.table(source)
