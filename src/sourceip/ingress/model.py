"""The values every controller model shares: the connection a controller receives, what the
backend gets (:class:`Forwarded`), the advice for the app behind it (:class:`Recommendation`),
and small helpers (header lists, trusted-CIDR lists, nginx-style address tokens).

Nothing here knows a particular controller; each controller module (``nginx.py``,
``traefik.py``, ``envoy.py``, ``haproxy.py``) owns its own settings and semantics.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sourceip.clientip import Strategy
from sourceip.errors import ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderPairs = tuple[tuple[str, str], ...]

# Headers whose values carry client addresses, scheme, host or port: the ones `forward` reports.
# A controller adds its own (a custom forwarded-for header, Envoy Gateway's customHeader).
RELEVANT_HEADERS: frozenset[str] = frozenset({
    "host", "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host",
    "x-forwarded-port", "x-forwarded-scheme", "x-scheme", "x-original-forwarded-for",
    "x-original-forwarded-host", "forwarded", "x-envoy-external-address", "x-envoy-internal",
    "x-forwarded-server", "via", "true-client-ip", "cf-connecting-ip", "x-client-ip",
    "x-cluster-client-ip", "fastly-client-ip",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """The TCP connection a controller accepts.

    ``peer``/``peer_port``: the socket peer as the controller pod sees it (after the L4 path:
    the client, a node IP after SNAT, or a proxying load balancer). ``proxy``: the source
    ``(address, port)`` carried by a PROXY protocol header on this connection, None when no
    header is sent. ``proxy_version`` 1 or 2. ``proxy_dest``: the PROXY header's destination
    ``(address, port)`` (default: the controller's own address and listen port).
    """

    peer: str
    peer_port: int = 0
    proxy: tuple[str, int] | None = None
    proxy_version: int = 2
    proxy_dest: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        _check_ip(self.peer, "peer")
        _check_port(self.peer_port, "peer_port", allow_zero=True)
        if self.proxy_version not in (1, 2):
            raise ValidationError(f"{self.proxy_version!r} is not 1 or 2", field="proxy_version")
        for name in ("proxy", "proxy_dest"):
            v = getattr(self, name)
            if v is None:
                continue
            if not (isinstance(v, tuple) and len(v) == 2):
                raise ValidationError(f"{v!r} is not an (address, port) pair", field=name)
            _check_ip(v[0], name)
            _check_port(v[1], name, allow_zero=True)


def _check_ip(v: object, what: str) -> None:
    try:
        ipaddress.ip_address(v)  # type: ignore[arg-type]
    except ValueError:
        raise ValidationError(f"{v!r} is not an IP address", field=what) from None


def _check_port(v: object, what: str, *, allow_zero: bool) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not (0 if allow_zero else 1) <= v <= 65535:
        raise ValidationError(f"{v!r} is not a port (0-65535)", field=what)


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarded:
    """One request after one controller: what the backend pod receives.

    ``ok`` False means the controller refused the connection (``error`` says how); ``peer`` is
    the backend's socket peer (the controller pod); ``headers`` are the client-IP-relevant
    header lines in the order the backend gets them; ``controller_client`` is the controller's
    own idea of the client; ``provenance`` maps each header name to the setting / template line
    that produced its value.
    """

    ok: bool
    error: str | None
    peer: str
    headers: HeaderPairs = ()
    controller_client: str | None = None
    provenance: HeaderPairs = ()

    def header(self, name: str) -> list[str]:
        """Every line of header ``name`` (case-insensitive), in order."""
        low = name.lower()
        return [v for n, v in self.headers if n.lower() == low]

    def to_dict(self) -> dict[str, Any]:
        """``{"ok","error","peer","headers","controller_client","provenance"}``; a header sent
        as several lines appears once, its lines joined with ``", "`` (same list meaning)."""
        hdrs: dict[str, str] = {}
        for n, v in self.headers:
            hdrs[n] = f"{hdrs[n]}, {v}" if n in hdrs else v
        return {"ok": self.ok, "error": self.error, "peer": self.peer, "headers": hdrs,
                "controller_client": self.controller_client,
                "provenance": dict(self.provenance)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingChange:
    """One controller setting to change: ``setting: value``, what it does, what it costs."""

    setting: str
    value: str
    effect: str
    cost: str

    def to_dict(self) -> dict[str, str]:
        return {"setting": self.setting, "value": self.value, "effect": self.effect,
                "cost": self.cost}


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """The :mod:`sourceip.clientip` strategy the app behind the controller should use.

    ``strategy_code`` is an exact constructor call importable from ``sourceip.clientip``;
    :meth:`build` evaluates it. ``header`` is the header the strategy reads (empty for the
    socket peer). ``forgeable``: with the current settings a client can choose the address the
    strategy resolves. ``settings_changes`` fix that or get the real client; ``notes`` say
    what else to know.
    """

    strategy_code: str
    header: str
    forgeable: bool
    settings_changes: tuple[SettingChange, ...] = ()
    notes: tuple[str, ...] = ()

    def build(self) -> Strategy:
        """The strategy object (``eval`` of :attr:`strategy_code` in ``sourceip.clientip``)."""
        import sourceip.clientip as ci

        namespace = {name: getattr(ci, name) for name in ci.__all__}
        obj: Strategy = eval(self.strategy_code, {"__builtins__": {}}, namespace)  # noqa: S307
        return obj

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy_code, "header": self.header,
                "forgeable": self.forgeable,
                "settings_changes": [c.to_dict() for c in self.settings_changes],
                "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------
# header lists
# ---------------------------------------------------------------------------------------------

def lines(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """Every value of ``name`` (case-insensitive), in order."""
    low = name.lower()
    return [v for n, v in headers if n.lower() == low]


def first(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    got = lines(headers, name)
    return got[0] if got else None


def joined(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """All lines joined with ``", "`` (nginx >= 1.23 ``$http_*``; Go's ``Values`` joined)."""
    got = lines(headers, name)
    return ", ".join(got) if got else None


def passthrough(headers: Sequence[tuple[str, str]], relevant: Iterable[str],
                replaced: Iterable[str], *, drop_underscore: bool) -> list[tuple[str, str]]:
    """Incoming relevant headers the controller forwards untouched (not in ``replaced``)."""
    rel = {r.lower() for r in relevant}
    rep = {r.lower() for r in replaced}
    out = []
    for n, v in headers:
        low = n.lower()
        if drop_underscore and "_" in low:
            continue
        if low in rel and low not in rep:
            out.append((n, v))
    return out


# ---------------------------------------------------------------------------------------------
# trusted CIDR lists
# ---------------------------------------------------------------------------------------------

def parse_network(text: str) -> IPNetwork | None:
    """``text`` as a network (an IP alone is a /32 or /128); host bits are masked away as Go's
    ``net.ParseCIDR`` and nginx do. None when it is neither."""
    t = text.strip()
    try:
        if "/" in t:
            return ipaddress.ip_network(t, strict=False)
        return ipaddress.ip_network(ipaddress.ip_address(t))
    except ValueError:
        return None


def in_networks(addr: str | None, nets: Sequence[IPNetwork]) -> bool:
    """``addr`` inside one of ``nets`` (IPv4-mapped IPv6 matched as IPv4, as nginx does)."""
    if addr is None:
        return False
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in nets)


def catch_all(nets: Sequence[IPNetwork]) -> list[IPNetwork]:
    """The networks that contain every address of their family (``0.0.0.0/0``, ``::/0``)."""
    return [n for n in nets if n.prefixlen == 0]


def non_catch_all(nets: Sequence[IPNetwork]) -> list[str]:
    return [str(n) for n in nets if n.prefixlen != 0]


def split_list(value: str) -> list[str]:
    """Comma-separated list, items trimmed, empties dropped (ingress-nginx splitAndTrimSpace)."""
    return [p.strip() for p in value.split(",") if p.strip()]


# ---------------------------------------------------------------------------------------------
# nginx address tokens (ngx_parse_addr_port / ngx_inet_addr), used by the realip walk
# ---------------------------------------------------------------------------------------------

_NGX_DIGITS = re.compile(r"[0-9]+")


def _ngx_inet_addr(text: str) -> str | None:
    """ngx_inet_addr: decimal octets (leading zeros read as decimal), exactly 3 dots."""
    octet, n, addr = 0, 0, 0
    for c in text:
        if "0" <= c <= "9":
            octet = octet * 10 + (ord(c) - 48)
            if octet > 255:
                return None
            continue
        if c == ".":
            addr = (addr << 8) + octet
            octet = 0
            n += 1
            continue
        return None
    if n != 3:
        return None
    return str(ipaddress.IPv4Address((addr << 8) + octet))


def _ngx_parse_addr(text: str) -> str | None:
    if not text:
        return None
    v4 = _ngx_inet_addr(text)
    if v4 is not None:
        return v4
    if "%" in text or not all(c in "0123456789abcdefABCDEF:." for c in text):
        return None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def ngx_parse_addr_port(token: str) -> str | None:
    """The address of one realip token (``ip``, ``ip:port``, ``[v6]:port``), None if nginx
    would refuse it (ngx_parse_addr_port in src/core/ngx_inet.c)."""
    addr = _ngx_parse_addr(token)
    if addr is not None:
        return addr
    if token.startswith("["):
        end = token.find("]")
        if end < 0 or end == len(token) - 1 or token[end + 1] != ":":
            return None
        host, port = token[1:end], token[end + 2:]
    else:
        colon = token.find(":")
        if colon < 0:
            return None
        host, port = token[:colon], token[colon + 1:]
    if not _NGX_DIGITS.fullmatch(port) or not 1 <= int(port) <= 65535:
        return None
    return _ngx_parse_addr(host)


def realip_walk(peer: str, value: str | None, trusted: Sequence[IPNetwork]) -> str:
    """nginx realip with ``real_ip_recursive on`` (ngx_http_get_forwarded_addr_internal): while
    the current address is trusted, take the next token from the right (tokens are separated
    by spaces or commas); stop at an unparsable token. All trusted: the leftmost token."""
    addr = peer
    if value is None:
        return addr
    tokens = [t for t in re.split(r"[ ,]", value) if t]
    for tok in reversed(tokens):
        if not in_networks(addr, trusted):
            break
        parsed = ngx_parse_addr_port(tok)
        if parsed is None:
            break
        addr = parsed
    return addr


def bool_field(value: Any, field_path: str, *, controller: str, parser: str,
               on_error: str, extra_true: Iterable[str] = (),
               extra_false: Iterable[str] = ()) -> bool:
    """A boolean as Go's strconv.ParseBool reads it (``1 t T TRUE true True`` / ``0 f F FALSE
    false False``), plus ``extra_*`` spellings; YAML booleans accepted as is."""
    if isinstance(value, bool):
        return value
    text = str(value)
    if text in ("1", "t", "T", "TRUE", "true", "True") or text in set(extra_true):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False") or text in set(extra_false):
        return False
    raise ValidationError(
        f"{text!r} is not a boolean: {controller} reads it with {parser}; {on_error}",
        field=field_path)


def str_map(source: Mapping[str, Any] | Sequence[str], what: str) -> Mapping[str, Any]:
    if not isinstance(source, Mapping):
        raise ValidationError(f"{what} must be a mapping, not {type(source).__name__}")
    return source
