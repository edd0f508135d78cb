"""Parsers for X-Forwarded-For, X-Real-IP, RFC 7239 Forwarded and the X-Forwarded-Proto/Host/Port
family. Sans-IO: they take header *field lines* (``str`` or a sequence of ``str`` in the order
received) and return frozen values, or raise their own :class:`ParseError` subclass.

Multiple field lines of a list header are joined in order with ``,`` (RFC 9110 §5.3), so a line
appended by a proxy (HAProxy ``option forwardfor``) is the rightmost part. Empty lines contribute
nothing.

List entries are kept in order with their position; an entry that is not a valid address is kept
as an invalid hop (``address is None``, ``error`` says why) rather than failing the whole header,
so the trusted right-hand part can still be used ("Forwarded header sabotage").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .addr import Address, error_message, parse_token_fast
from .errors import AddressError, HeaderError

__all__ = [
    "DEFAULT_MAX_HOPS",
    "DEFAULT_MAX_LENGTH",
    "ForwardedElement",
    "Hop",
    "Node",
    "join_lines",
    "parse_forwarded",
    "parse_forwarded_node",
    "parse_x_forwarded_for",
    "parse_x_forwarded_host",
    "parse_x_forwarded_port",
    "parse_x_forwarded_proto",
    "parse_x_real_ip",
    "split_forwarded",
    "valid_host",
    "valid_proto",
]

DEFAULT_MAX_LENGTH = 8192
"""Longest joined header value accepted (characters)."""

DEFAULT_MAX_HOPS = 64
"""Most list entries accepted in one header."""

Lines = str | Iterable[str]

_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
# No possessive quantifiers or atomic groups: CPython 3.11.0-3.11.4 matches them wrongly
# (fixed in 3.11.5). Quoted strings are written as "unrolled loops" (a run of plain
# characters, then escape + run, ...): every character has one way to match, so a failed match
# gives back at most one quoted string's characters, each once (linear time, no nesting blow-up).
_QTEXT = r"[\t !#-\[\]-~\x80-\xff]"
_QUOTED = '"' + _QTEXT + r"*(?:\\[\t -~\x80-\xff]" + _QTEXT + '*)*"'
# one list element: runs of anything but commas/quotes, and whole quoted strings; a quoted
# string still open at the end of the value sets group 1 (so that the caller need not rescan).
# The pattern always matches (maybe empty), so the engine never backtracks into the outer loop.
_ELEMENT_RE = re.compile(r'(?:[^",]+|"[^"\\]*(?:\\.[^"\\]*)*(?:"|(\Z)))*', re.S)
_PAIR_RE = re.compile(
    r"[ \t]*(" + _TCHAR + r"+)=(?:(" + _TCHAR + r"+)|(" + _QUOTED + r"))[ \t]*")
_UNESCAPE_RE = re.compile(r"\\(.)", re.S)
_OBF_RE = re.compile(r"_[A-Za-z0-9._-]+\Z")
_PROTO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}\Z")
_HOST_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]{1,253})(?::([0-9]{1,5}))?\Z")
_HEADER_NAME_RE = re.compile(_TCHAR + r"+\Z")
WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})


def join_lines(lines: Lines, *, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Join the field lines of a list header in order with ``,``; raise HeaderError if too long.

    A ``str`` is one line. Lines that are empty or only whitespace are dropped.
    """
    if isinstance(lines, str):
        joined = lines
    else:
        try:
            parts = [line for line in lines if line.strip(" \t")]
        except (TypeError, AttributeError):
            raise HeaderError("header lines must be strings", code="bad-type") from None
        joined = ",".join(parts)
    if not isinstance(joined, str):
        raise HeaderError("header lines must be strings", code="bad-type")
    if len(joined) > max_length:
        raise HeaderError(f"header is {len(joined)} characters, longer than {max_length}",
                          code="too-long")
    return joined


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """One entry of a list header, counted from the left (``index``) as received.

    ``address`` is the parsed address, or None with ``error`` set to the address error code.
    """

    index: int
    text: str
    address: Address | None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.address is None) == (self.error is None):
            raise HeaderError("hop: exactly one of address and error must be set",
                              code="bad-hop")


def _address(r: tuple[int, int, str, int | None]) -> Address:
    return Address(ip=r[2], version=r[0], value=r[1], port=r[3])


def parse_x_forwarded_for(lines: Lines, *, max_length: int = DEFAULT_MAX_LENGTH,
                          max_hops: int = DEFAULT_MAX_HOPS) -> tuple[Hop, ...]:
    """Parse X-Forwarded-For field lines into hops, leftmost first.

    Each comma-separated entry (OWS trimmed) is a strict address token (see :mod:`.addr`);
    invalid entries are kept as hops with ``error`` set. Raises :class:`HeaderError` when the
    joined value exceeds ``max_length`` characters or ``max_hops`` entries.
    """
    joined = join_lines(lines, max_length=max_length)
    parts = joined.split(",")
    if len(parts) > max_hops:
        raise HeaderError(f"{len(parts)} entries, more than {max_hops}", code="too-many-hops")
    hops = []
    for i, part in enumerate(parts):
        tok = part.strip(" \t")
        r = parse_token_fast(tok)
        if isinstance(r, str):
            hops.append(Hop(index=i, text=tok, address=None, error=r))
        else:
            hops.append(Hop(index=i, text=tok, address=_address(r)))
    return tuple(hops)


def parse_x_real_ip(lines: Lines) -> Address:
    """Parse X-Real-IP (or any single-address header): the **last** field line is used.

    Raises :class:`HeaderError` (``code="missing"`` / ``"list"``) or :class:`AddressError`.
    """
    if isinstance(lines, str):
        last = lines
    else:
        try:
            seq = [line for line in lines if line.strip(" \t")]
        except (TypeError, AttributeError):
            raise HeaderError("header lines must be strings", code="bad-type") from None
        if not seq:
            raise HeaderError("header is absent or empty", code="missing")
        last = seq[-1]
    if not isinstance(last, str):
        raise HeaderError("header lines must be strings", code="bad-type")
    if "," in last:
        raise HeaderError("a single-address header holds a list", code="list")
    r = parse_token_fast(last.strip(" \t"))
    if isinstance(r, str):
        if r == "empty":
            raise HeaderError("header is absent or empty", code="missing")
        raise AddressError(f"{last[:80]!r}: {error_message(r)}", code=r)
    return _address(r)


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """An RFC 7239 node: ``kind`` is ``"ip"``, ``"unknown"`` or ``"obfuscated"``.

    ``address`` is set for ``ip``; ``name`` is the node name as written (``unknown``,
    ``_hidden``, or the address text); ``port`` is a numeric port, ``obfport`` an
    obfuscated one (``_abc``).
    """

    kind: str
    name: str
    address: Address | None = None
    port: int | None = None
    obfport: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("ip", "unknown", "obfuscated"):
            raise HeaderError(f"kind: {self.kind!r} is not ip/unknown/obfuscated",
                              code="bad-node")
        if (self.kind == "ip") != (self.address is not None):
            raise HeaderError("address: set exactly when kind is 'ip'", code="bad-node")
        if self.port is not None and self.obfport is not None:
            raise HeaderError("port and obfport are exclusive", code="bad-node")


def _split_node(value: str) -> tuple[str, str | None] | None:
    """Split ``nodename[:port]`` into (nodename, port text or None); None if malformed."""
    if value[:1] == "[":
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if not rest:
            return name, None
        if rest[0] != ":":
            return None
        return name, rest[1:]
    name, colon, port = value.partition(":")
    if colon and ":" in port:
        return None  # RFC 7239: an IPv6 node must be in brackets
    return name, (port if colon else None)


def _node_port_ok(port: str) -> bool:
    if port[:1] == "_":
        return _OBF_RE.match(port) is not None
    return 0 < len(port) <= 5 and port.isascii() and port.isdigit() and int(port) <= 65535


def _node_fast(value: str) -> tuple[int, int, str, int | None] | str:
    """Fast path for strategies: parse a ``for=`` value; tuple for an IP node, else a code.

    Codes: ``unknown``, ``obfuscated`` (valid nodes that are not IPs) or an address error.
    """
    split = _split_node(value)
    if split is None:
        return "not-an-ip"
    name, port = split
    if port is not None and not _node_port_ok(port):
        return "bad-port"
    if name[:1] == "_":
        return "obfuscated" if _OBF_RE.match(name) else "not-an-ip"
    if name.lower() == "unknown":
        return "unknown"
    r = parse_token_fast(name)
    if isinstance(r, str):
        return r
    if r[3] is not None:
        return "not-an-ip"
    if port is not None and port[:1] != "_":
        return (r[0], r[1], r[2], int(port))
    return r


def parse_forwarded_node(value: str) -> Node:
    """Parse an RFC 7239 node (the unquoted value of ``for=``/``by=``).

    Accepts ``IPv4[:port]``, ``"[" IPv6 "]"[:port]``, ``unknown[:port]`` and
    ``_obfuscated[:port]`` where port is 1-5 digits or ``_obfport``. Raises :class:`ParseError`
    (an :class:`AddressError` whose ``code`` says why).
    """
    if not isinstance(value, str):
        raise HeaderError("node must be a string", code="bad-type")
    r = _node_fast(value)
    if isinstance(r, str) and r not in ("unknown", "obfuscated"):
        raise AddressError(f"{value[:80]!r}: {error_message(r)}", code=r)
    split = _split_node(value)
    assert split is not None
    name, port_text = split
    port = int(port_text) if port_text is not None and port_text[:1] != "_" else None
    obfport = port_text if port_text is not None and port_text[:1] == "_" else None
    if isinstance(r, str):
        return Node(kind=r, name=name, port=port, obfport=obfport)
    return Node(kind="ip", name=name,
                address=Address(ip=r[2], version=r[0], value=r[1], port=port),
                port=port, obfport=obfport)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardedElement:
    """One RFC 7239 element (one proxy's view), counted from the left.

    ``params`` holds every pair with lower-cased names and unquoted values in order. When the
    element is malformed, ``error`` says why and the typed fields are None.
    """

    index: int
    text: str
    params: tuple[tuple[str, str], ...] = ()
    for_: Node | None = None
    by: Node | None = None
    proto: str | None = None
    host: str | None = None
    error: str | None = None


def split_forwarded(joined: str) -> list[tuple[str, bool]]:
    """Split a joined Forwarded value into elements ``(text, unterminated_quote)``.

    Commas inside quoted strings do not split. When a quoted string is left open, the rest of
    the value from that element on is split on plain commas instead, so a stray quote sent by a
    client cannot swallow the elements that proxies appended after it.
    """
    if '"' not in joined:
        return [(p, False) for p in joined.split(",")]
    out: list[tuple[str, bool]] = []
    pos, n = 0, len(joined)
    match = _ELEMENT_RE.match
    while True:
        m = match(joined, pos)
        assert m is not None  # the pattern matches the empty string
        end = m.end()
        if m.group(1) is not None or (end < n and joined[end] == '"'):
            out.extend((p, True) for p in joined[pos:].split(","))
            return out
        out.append((joined[pos:end], False))
        if end >= n:
            return out
        pos = end + 1


def _parse_pairs(text: str) -> list[tuple[str, str]] | str:
    """Pairs of one element (names lower-cased, values unquoted) or an error code."""
    pairs: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    seen: set[str] = set()
    while pos < n:
        if text[pos] == ";" or not text[pos:].strip(" \t"):
            pos += 1
            continue
        m = _PAIR_RE.match(text, pos)
        if m is None:
            return "syntax"
        name = m.group(1).lower()
        if name in seen:
            return "duplicate-parameter"
        seen.add(name)
        value = m.group(2)
        if value is None:
            value = _UNESCAPE_RE.sub(r"\1", m.group(3)[1:-1])
        pairs.append((name, value))
        pos = m.end()
        if pos < n and text[pos] != ";":
            return "syntax"
    return pairs


def parse_forwarded(lines: Lines, *, max_length: int = DEFAULT_MAX_LENGTH,
                    max_hops: int = DEFAULT_MAX_HOPS) -> tuple[ForwardedElement, ...]:
    """Parse RFC 7239 Forwarded field lines into elements, leftmost first.

    A malformed element (syntax, duplicate parameter, bad ``for``/``by`` node, bad ``proto`` or
    ``host``) is kept with ``error`` set; the others are still returned. Raises
    :class:`HeaderError` only for the limits (``too-long``, ``too-many-hops``).
    """
    joined = join_lines(lines, max_length=max_length)
    parts = split_forwarded(joined)
    if len(parts) > max_hops:
        raise HeaderError(f"{len(parts)} elements, more than {max_hops}", code="too-many-hops")
    return tuple(_element(i, text, broken) for i, (text, broken) in enumerate(parts))


def _element(index: int, raw: str, broken: bool) -> ForwardedElement:
    text = raw.strip(" \t")
    if broken and text.count('"') % 2:
        return ForwardedElement(index=index, text=text, error="unterminated-quote")
    pairs = _parse_pairs(text)
    if isinstance(pairs, str):
        return ForwardedElement(index=index, text=text, error=pairs)
    fields: dict[str, object] = {}
    for name, value in pairs:
        try:
            if name in ("for", "by"):
                fields["for_" if name == "for" else "by"] = parse_forwarded_node(value)
            elif name == "proto":
                if not valid_proto(value):
                    return ForwardedElement(index=index, text=text, error="bad-proto")
                fields["proto"] = value.lower()
            elif name == "host":
                if not valid_host(value):
                    return ForwardedElement(index=index, text=text, error="bad-host")
                fields["host"] = value
        except AddressError as exc:
            return ForwardedElement(index=index, text=text, error=f"bad-{name}:{exc.code}")
    return ForwardedElement(index=index, text=text, params=tuple(pairs), **fields)  # type: ignore[arg-type]


def valid_proto(value: str) -> bool:
    """True for a URI scheme (RFC 3986: ALPHA *(ALPHA / DIGIT / + - .), at most 32 chars)."""
    return _PROTO_RE.match(value) is not None


def valid_host(value: str) -> bool:
    """True for ``uri-host [":" port]`` with a reg-name, IPv4 or bracketed IPv6 and port <=65535."""
    m = _HOST_RE.match(value)
    if m is None:
        return False
    return m.group(1) is None or int(m.group(1)) <= 65535


def _last_entry(lines: Lines) -> str:
    joined = join_lines(lines, max_length=DEFAULT_MAX_LENGTH)
    if not joined.strip(" \t"):
        raise HeaderError("header is absent or empty", code="missing")
    return joined.rsplit(",", 1)[-1].strip(" \t")


def parse_x_forwarded_proto(lines: Lines) -> str:
    """The rightmost X-Forwarded-Proto entry, lower-cased; must be http, https, ws or wss.

    Raises :class:`HeaderError` (``missing``, ``bad-proto``).
    """
    value = _last_entry(lines).lower()
    if value not in WEB_SCHEMES:
        raise HeaderError(f"{value[:40]!r} is not http, https, ws or wss", code="bad-proto")
    return value


def parse_x_forwarded_host(lines: Lines) -> str:
    """The rightmost X-Forwarded-Host entry, validated as ``host[:port]``; raises HeaderError."""
    value = _last_entry(lines)
    if not valid_host(value):
        raise HeaderError(f"{value[:80]!r} is not a valid host", code="bad-host")
    return value


def parse_x_forwarded_port(lines: Lines) -> int:
    """The rightmost X-Forwarded-Port entry as an int in 1-65535; raises HeaderError."""
    value = _last_entry(lines)
    if not (0 < len(value) <= 5 and value.isascii() and value.isdigit()) or not (
        0 < int(value) <= 65535
    ):
        raise HeaderError(f"{value[:40]!r} is not a port in 1-65535", code="bad-port")
    return int(value)


def valid_header_name(name: str) -> bool:
    """True for an HTTP field name (RFC 9110 token)."""
    return isinstance(name, str) and _HEADER_NAME_RE.match(name) is not None


def lines_of(headers: object, name: str) -> Sequence[str] | None:
    """Field lines of ``name`` (lower-case) in a ``Mapping[str, str | Sequence[str]]``."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    value = get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return value  # type: ignore[no-any-return]
