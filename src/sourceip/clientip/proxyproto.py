"""PROXY protocol v1 and v2 (HAProxy spec): a strict sans-IO parser, a builder, TLVs, CRC32C.

The parser never touches a socket: feed it bytes, ask for the header, get :data:`NEED_DATA`
until a whole header has arrived, then a :class:`ProxyHeader` plus the bytes that followed it.
Anything invalid raises :class:`ProxyProtocolError` whose ``code`` names the rule broken; the
connection must then be dropped. Strictness (spec references are to ``proxy-protocol.txt``):

* Enabled by configuration only (``v1=``/``v2=``); the first bytes must be a PROXY header
  (``not-proxy`` otherwise) -- there is no auto-detection fallback to plain traffic.
* v1: ``PROXY`` SP (``TCP4``|``TCP6``|``UNKNOWN``) SP src SP dst SP sport SP dport CRLF,
  single spaces, at most 107 bytes including CRLF, strict addresses of the announced family
  (no leading-zero octets, no zone ids), ports 0-65535 without leading zeros or signs.
  ``UNKNOWN`` ignores the rest of the line.
* v2: the 12-byte signature, version 2, command LOCAL or PROXY, family/transport byte one of
  00 11 12 21 22 31 32, the header is exactly ``16 + len`` bytes, the address block fits,
  TLVs are framed exactly, CRC32C (type 0x03) has 4 bytes, appears at most once and matches,
  UNIQUE_ID is at most 128 bytes, SSL sub-TLVs are framed exactly, AUTHORITY is UTF-8.
* LOCAL (v2) and UNSPEC/UNKNOWN mean "use the socket peer": see :attr:`ProxyHeader.use_peer`.

Limitation kept on purpose: a v2 LOCAL header whose block is shorter than its family's address
block is accepted (the spec says LOCAL must be accepted and its block ignored) and parsed as
having no addresses and no TLVs.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address
from typing import Final

from .errors import ProxyProtocolError

__all__ = [
    "NEED_DATA",
    "SIGNATURE_V2",
    "V1_MAX_LENGTH",
    "V2_MAX_LENGTH",
    "Command",
    "Family",
    "NeedData",
    "ProxyHeader",
    "ProxyProtocolParser",
    "SSLInfo",
    "TLV",
    "TLVType",
    "Transport",
    "build",
    "crc32c",
    "parse",
]

SIGNATURE_V2: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_LENGTH: Final = 107
"""Longest v1 line including CRLF (spec §2.1)."""
V2_MAX_LENGTH: Final = 16 + 65535
"""Longest possible v2 header."""


class Command(IntEnum):
    """v2 command (low nibble of byte 13). v1 headers are always PROXY."""

    LOCAL = 0x0
    PROXY = 0x1


class Family(IntEnum):
    """Address family (high nibble of byte 14); v1 ``UNKNOWN`` is UNSPEC."""

    UNSPEC = 0x0
    INET = 0x1
    INET6 = 0x2
    UNIX = 0x3


class Transport(IntEnum):
    """Transport protocol (low nibble of byte 14); v1 TCP4/TCP6 are STREAM."""

    UNSPEC = 0x0
    STREAM = 0x1
    DGRAM = 0x2


class TLVType(IntEnum):
    """Registered and well-known vendor TLV types."""

    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    SSL_VERSION = 0x21
    SSL_CN = 0x22
    SSL_CIPHER = 0x23
    SSL_SIG_ALG = 0x24
    SSL_KEY_ALG = 0x25
    SSL_GROUP = 0x26
    SSL_SIG_SCHEME = 0x27
    SSL_CLIENT_CERT = 0x28
    NETNS = 0x30
    GCP = 0xE0
    AWS = 0xEA
    AZURE = 0xEE


AWS_VPCE_ID_SUBTYPE: Final = 0x01
AZURE_LINK_ID_SUBTYPE: Final = 0x01
_ADDR_LEN = {Family.UNSPEC: 0, Family.INET: 12, Family.INET6: 36, Family.UNIX: 216}
_VALID_FAM = frozenset({0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32})
_OCTETS: dict[bytes, int] = {str(i).encode(): i for i in range(256)}
_PORT_RE = re.compile(rb"(?:0|[1-9][0-9]{0,4})\Z")
_V6_CHARS = frozenset(b"0123456789abcdefABCDEF:.")
_FAMILIES = (Family.UNSPEC, Family.INET, Family.INET6, Family.UNIX)
_TRANSPORTS = (Transport.UNSPEC, Transport.STREAM, Transport.DGRAM)
_COMMANDS = (Command.LOCAL, Command.PROXY)


# --- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven ----------------------

def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE: Final = _make_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data`` (continuing from ``crc``), as in RFC 4960 Appendix B and iSCSI."""
    t = _CRC_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --- values ---------------------------------------------------------------------------------


class NeedData:
    """Sentinel type: the parser needs more bytes (like h11's ``NEED_DATA``)."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


def _err(code: str, message: str) -> ProxyProtocolError:
    return ProxyProtocolError(f"{code}: {message}", code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class TLV:
    """One v2 type-length-value record; ``value`` is at most 65535 bytes."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.type, int) or not 0 <= self.type <= 255:
            raise _err("bad-tlv", f"type: {self.type!r} is not 0-255")
        if not isinstance(self.value, bytes):
            raise _err("bad-tlv", f"value: expected bytes, got {type(self.value).__name__}")
        if len(self.value) > 0xFFFF:
            raise _err("bad-tlv", f"value: {len(self.value)} bytes, more than 65535")

    def encode(self) -> bytes:
        """The wire form: type, 16-bit big-endian length, value."""
        return struct.pack("!BH", self.type, len(self.value)) + self.value

    @classmethod
    def alpn(cls, protocol: bytes) -> TLV:
        """PP2_TYPE_ALPN, e.g. ``b"h2"``."""
        return cls(type=TLVType.ALPN, value=protocol)

    @classmethod
    def authority(cls, host: str) -> TLV:
        """PP2_TYPE_AUTHORITY: the host name (SNI) as UTF-8."""
        return cls(type=TLVType.AUTHORITY, value=host.encode("utf-8"))

    @classmethod
    def unique_id(cls, value: bytes) -> TLV:
        """PP2_TYPE_UNIQUE_ID: an opaque id of at most 128 bytes."""
        if len(value) > 128:
            raise _err("v2-tlv-unique-id-too-long", f"{len(value)} bytes, more than 128")
        return cls(type=TLVType.UNIQUE_ID, value=value)

    @classmethod
    def noop(cls, length: int = 0) -> TLV:
        """PP2_TYPE_NOOP padding of ``length`` zero bytes."""
        return cls(type=TLVType.NOOP, value=bytes(length))

    @classmethod
    def ssl(cls, *, client: int, verify: int, sub_tlvs: Iterable[TLV] = ()) -> TLV:
        """PP2_TYPE_SSL with its client flags, verify result and sub-TLVs."""
        body = struct.pack("!BI", client, verify) + b"".join(t.encode() for t in sub_tlvs)
        return cls(type=TLVType.SSL, value=body)

    @classmethod
    def aws_vpce_id(cls, vpce_id: str) -> TLV:
        """AWS PrivateLink (0xEA) subtype 0x01: the VPC endpoint id, e.g. ``vpce-0123...``."""
        return cls(type=TLVType.AWS, value=bytes([AWS_VPCE_ID_SUBTYPE]) + vpce_id.encode("ascii"))

    @classmethod
    def azure_link_id(cls, link_id: int) -> TLV:
        """Azure Private Link (0xEE) subtype 0x01: LINKID as a 32-bit little-endian integer."""
        return cls(type=TLVType.AZURE, value=struct.pack("<BI", AZURE_LINK_ID_SUBTYPE, link_id))

    @classmethod
    def gcp_psc_connection_id(cls, connection_id: int) -> TLV:
        """Google Private Service Connect (0xE0): the connection id as a 64-bit big-endian int."""
        return cls(type=TLVType.GCP, value=struct.pack("!Q", connection_id))


@dataclass(frozen=True, slots=True, kw_only=True)
class SSLInfo:
    """The decoded PP2_TYPE_SSL TLV: client flags, verify result and sub-TLVs."""

    client: int
    verify: int
    tlvs: tuple[TLV, ...] = ()

    @property
    def ssl(self) -> bool:
        """The client connected over SSL/TLS (PP2_CLIENT_SSL)."""
        return bool(self.client & 0x01)

    @property
    def cert_conn(self) -> bool:
        """The client sent a certificate on this connection (PP2_CLIENT_CERT_CONN)."""
        return bool(self.client & 0x02)

    @property
    def cert_sess(self) -> bool:
        """The client sent a certificate on this TLS session (PP2_CLIENT_CERT_SESS)."""
        return bool(self.client & 0x04)

    @property
    def verified(self) -> bool:
        """The client certificate (if any) was verified (``verify == 0``)."""
        return self.verify == 0

    def _text(self, t: int) -> str | None:
        for tlv in self.tlvs:
            if tlv.type == t:
                return tlv.value.decode("utf-8", "replace")
        return None

    @property
    def version(self) -> str | None:
        """PP2_SUBTYPE_SSL_VERSION, e.g. ``TLSv1.3``."""
        return self._text(TLVType.SSL_VERSION)

    @property
    def cn(self) -> str | None:
        """PP2_SUBTYPE_SSL_CN: the client certificate's Common Name."""
        return self._text(TLVType.SSL_CN)

    @property
    def cipher(self) -> str | None:
        """PP2_SUBTYPE_SSL_CIPHER."""
        return self._text(TLVType.SSL_CIPHER)

    @property
    def sig_alg(self) -> str | None:
        """PP2_SUBTYPE_SSL_SIG_ALG."""
        return self._text(TLVType.SSL_SIG_ALG)

    @property
    def key_alg(self) -> str | None:
        """PP2_SUBTYPE_SSL_KEY_ALG."""
        return self._text(TLVType.SSL_KEY_ALG)

    @property
    def group(self) -> str | None:
        """PP2_SUBTYPE_SSL_GROUP."""
        return self._text(TLVType.SSL_GROUP)

    @property
    def sig_scheme(self) -> str | None:
        """PP2_SUBTYPE_SSL_SIG_SCHEME."""
        return self._text(TLVType.SSL_SIG_SCHEME)

    @property
    def client_cert(self) -> bytes | None:
        """PP2_SUBTYPE_SSL_CLIENT_CERT: the DER certificate."""
        for tlv in self.tlvs:
            if tlv.type == TLVType.SSL_CLIENT_CERT:
                return tlv.value
        return None


def _canonical_ip(family: Family, text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        if family == Family.INET:
            return socket.inet_ntoa(socket.inet_aton(text)) == text and text.count(".") == 3
        return "%" not in text and str(IPv6Address(text)) == text
    except (OSError, ValueError):
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyHeader:
    """A PROXY protocol header, v1 or v2.

    ``source``/``destination`` are canonical IP text for INET/INET6 (dotted quad; RFC 5952 as
    printed by :mod:`ipaddress`), the socket path for UNIX (str, undecodable bytes kept as
    surrogate escapes, trailing NULs removed), None for UNSPEC and for a LOCAL header without
    addresses. ``tlvs`` are all TLVs in wire order, including NOOP and CRC32C.
    """

    version: int
    command: Command = Command.PROXY
    family: Family
    transport: Transport = Transport.STREAM
    source: str | None = None
    source_port: int | None = None
    destination: str | None = None
    destination_port: int | None = None
    tlvs: tuple[TLV, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "command", Command(self.command))
            object.__setattr__(self, "family", Family(self.family))
            object.__setattr__(self, "transport", Transport(self.transport))
        except ValueError as exc:
            raise _err("bad-header", str(exc)) from None
        object.__setattr__(self, "tlvs", tuple(self.tlvs))
        fam = self.family
        if self.version == 1:
            if self.command != Command.PROXY:
                raise _err("bad-header", "command: v1 has no LOCAL command")
            if fam == Family.UNIX:
                raise _err("bad-header", "family: v1 cannot carry UNIX addresses")
            want = Transport.UNSPEC if fam == Family.UNSPEC else Transport.STREAM
            if self.transport != want:
                raise _err("bad-header", f"transport: v1 {fam.name} implies {want.name}")
            if self.tlvs:
                raise _err("bad-header", "tlvs: v1 has no TLVs")
        elif self.version != 2:
            raise _err("bad-header", f"version: {self.version!r} is not 1 or 2")
        if fam == Family.UNSPEC and self.transport != Transport.UNSPEC:
            raise _err("bad-header", "transport: UNSPEC family needs UNSPEC transport")
        if fam != Family.UNSPEC and self.transport == Transport.UNSPEC:
            raise _err("bad-header", f"transport: {fam.name} needs STREAM or DGRAM")
        addrs = (self.source, self.source_port, self.destination, self.destination_port)
        if fam == Family.UNSPEC or (self.command == Command.LOCAL and addrs == (None,) * 4):
            if addrs != (None,) * 4:
                raise _err("bad-header", "source/destination: UNSPEC carries no addresses")
            if fam != Family.UNSPEC and self.tlvs:
                raise _err("bad-header", "tlvs: a LOCAL header without addresses has no TLVs")
        elif fam == Family.UNIX:
            for label in ("source", "destination"):
                v = getattr(self, label)
                if not isinstance(v, str):
                    raise _err("bad-header", f"{label}: UNIX family needs a path")
                raw = v.encode("utf-8", "surrogateescape")
                if len(raw) > 108 or raw.endswith(b"\0"):
                    raise _err("bad-header", f"{label}: path longer than 108 bytes or "
                                             "ending in NUL")
            if self.source_port is not None or self.destination_port is not None:
                raise _err("bad-header", "ports: UNIX family has no ports")
        else:
            for label in ("source", "destination"):
                if not _canonical_ip(fam, getattr(self, label)):
                    raise _err("bad-header", f"{label}: {getattr(self, label)!r} is not the "
                                             f"canonical text of an {fam.name} address")
            for label in ("source_port", "destination_port"):
                v = getattr(self, label)
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 65535:
                    raise _err("bad-header", f"{label}: {v!r} is not 0-65535")
        for i, t in enumerate(self.tlvs):
            if not isinstance(t, TLV):
                raise _err("bad-header", f"tlvs[{i}]: not a TLV")
        if sum(3 + len(t.value) for t in self.tlvs) + _ADDR_LEN[fam] > 0xFFFF:
            raise _err("bad-header", "tlvs: the header would exceed 65535 bytes")

    # -- convenience -------------------------------------------------------------------------

    @property
    def use_peer(self) -> bool:
        """True when the socket peer must be used: LOCAL, UNSPEC (v1 UNKNOWN) or no address."""
        return (self.command == Command.LOCAL or self.family == Family.UNSPEC
                or self.source is None)

    def tlv(self, type: int) -> bytes | None:
        """Value of the first TLV of ``type``, or None."""
        for t in self.tlvs:
            if t.type == type:
                return t.value
        return None

    @property
    def alpn(self) -> bytes | None:
        """PP2_TYPE_ALPN value."""
        return self.tlv(TLVType.ALPN)

    @property
    def authority(self) -> str | None:
        """PP2_TYPE_AUTHORITY (SNI / host name), decoded from UTF-8."""
        v = self.tlv(TLVType.AUTHORITY)
        return None if v is None else v.decode("utf-8")

    @property
    def unique_id(self) -> bytes | None:
        """PP2_TYPE_UNIQUE_ID value."""
        return self.tlv(TLVType.UNIQUE_ID)

    @property
    def crc32c(self) -> int | None:
        """The PP2_TYPE_CRC32C value (already verified by the parser), or None."""
        v = self.tlv(TLVType.CRC32C)
        return None if v is None else int.from_bytes(v, "big")

    @property
    def netns(self) -> str | None:
        """PP2_TYPE_NETNS: the network namespace name."""
        v = self.tlv(TLVType.NETNS)
        return None if v is None else v.decode("ascii", "replace")

    @property
    def ssl(self) -> SSLInfo | None:
        """The decoded PP2_TYPE_SSL TLV, or None."""
        v = self.tlv(TLVType.SSL)
        if v is None:
            return None
        client, verify = struct.unpack_from("!BI", v)
        return SSLInfo(client=client, verify=verify, tlvs=_parse_tlvs(v, 5, len(v), ssl=True))

    @property
    def aws_vpce_id(self) -> str | None:
        """AWS PrivateLink VPC endpoint id (TLV 0xEA subtype 0x01), or None."""
        for t in self.tlvs:
            if t.type == TLVType.AWS and t.value[:1] == b"\x01":
                return t.value[1:].decode("ascii", "replace")
        return None

    @property
    def azure_link_id(self) -> int | None:
        """Azure Private Link LINKID (TLV 0xEE subtype 0x01, uint32 little-endian), or None."""
        for t in self.tlvs:
            if t.type == TLVType.AZURE and len(t.value) == 5 and t.value[0] == 0x01:
                return int.from_bytes(t.value[1:], "little")
        return None

    @property
    def gcp_psc_connection_id(self) -> int | None:
        """Google PSC connection id (TLV 0xE0, uint64 big-endian), or None."""
        for t in self.tlvs:
            if t.type == TLVType.GCP and len(t.value) == 8:
                return int.from_bytes(t.value, "big")
        return None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready description (TLV values hex-encoded, known TLVs decoded)."""
        d: dict[str, object] = {
            "version": self.version, "command": self.command.name,
            "family": self.family.name, "transport": self.transport.name,
            "source": self.source, "source_port": self.source_port,
            "destination": self.destination, "destination_port": self.destination_port,
            "use_peer": self.use_peer,
            "tlvs": [{"type": t.type, "value": t.value.hex()} for t in self.tlvs],
        }
        for key in ("authority", "aws_vpce_id", "azure_link_id", "gcp_psc_connection_id",
                    "crc32c"):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        if self.alpn is not None:
            d["alpn"] = self.alpn.decode("ascii", "replace")
        if self.unique_id is not None:
            d["unique_id"] = self.unique_id.hex()
        ssl = self.ssl
        if ssl is not None:
            d["ssl"] = {"client": ssl.client, "verify": ssl.verify, "version": ssl.version,
                        "cn": ssl.cn, "cipher": ssl.cipher}
        return d


_HEADER_SETTERS = tuple(
    ProxyHeader.__dict__[name].__set__
    for name in ("version", "command", "family", "transport", "source", "source_port",
                 "destination", "destination_port", "tlvs"))
_TLV_SET_TYPE = TLV.__dict__["type"].__set__
_TLV_SET_VALUE = TLV.__dict__["value"].__set__
_new = object.__new__


def _fast_header(version: int, command: Command, family: Family, transport: Transport,
                 source: str | None, source_port: int | None, destination: str | None,
                 destination_port: int | None, tlvs: tuple[TLV, ...]) -> ProxyHeader:
    """Build a ProxyHeader from fields the parser has already validated (skips re-checks).

    Writes the slots directly (the frozen dataclass ``__init__`` costs twice as much); the
    parser's checks are a superset of ``ProxyHeader.__post_init__``, which the property tests
    verify by rebuilding every parsed header through the validating constructor.
    """
    h = _new(ProxyHeader)
    a, b, c, d, e, f, g, i, j = _HEADER_SETTERS
    a(h, version)
    b(h, command)
    c(h, family)
    d(h, transport)
    e(h, source)
    f(h, source_port)
    g(h, destination)
    i(h, destination_port)
    j(h, tlvs)
    return h


def _fast_tlv(t: int, value: bytes) -> TLV:
    tlv = _new(TLV)
    _TLV_SET_TYPE(tlv, t)
    _TLV_SET_VALUE(tlv, value)
    return tlv


# --- parsing --------------------------------------------------------------------------------


def _v1_port(raw: bytes) -> int:
    if _PORT_RE.match(raw) is None or int(raw) > 65535:
        raise _err("v1-bad-port", f"{raw[:8]!r} is not a port 0-65535 without leading zeros")
    return int(raw)


def _v1_ipv4(raw: bytes) -> str:
    parts = raw.split(b".")
    if len(parts) == 4:
        o = _OCTETS
        if all(p in o for p in parts):
            return raw.decode("ascii")
    raise _err("v1-bad-address", f"{raw[:46]!r} is not a strict IPv4 address")


def _v1_ipv6(raw: bytes) -> str:
    if raw and _V6_CHARS.issuperset(raw):
        try:
            return str(IPv6Address(raw.decode("ascii")))
        except ValueError:
            pass
    raise _err("v1-bad-address", f"{raw[:46]!r} is not a strict IPv6 address (no zone ids)")


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | NeedData:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        lf = data.find(b"\n", 0, V1_MAX_LENGTH)
        cr = data.find(b"\r", 0, V1_MAX_LENGTH)
        if lf >= 0 or (0 <= cr < min(len(data), V1_MAX_LENGTH) - 1):
            raise _err("v1-bad-crlf", "a lone CR or LF before CRLF")
        if len(data) >= V1_MAX_LENGTH:
            raise _err("v1-too-long", f"no CRLF within the first {V1_MAX_LENGTH} bytes")
        return NEED_DATA
    line = data[:end]
    if b"\n" in line or b"\r" in line:
        raise _err("v1-bad-crlf", "a lone CR or LF before CRLF")
    parts = line.split(b" ")
    proto = parts[1] if len(parts) > 1 else b""
    if proto == b"UNKNOWN":
        return _fast_header(1, Command.PROXY, Family.UNSPEC, Transport.UNSPEC,
                            None, None, None, None, ()), end + 2
    if proto not in (b"TCP4", b"TCP6"):
        raise _err("v1-bad-protocol", f"{proto[:16]!r} is not TCP4, TCP6 or UNKNOWN")
    if len(parts) != 6:
        raise _err("v1-bad-fields", f"{len(parts)} space-separated fields, expected 6 "
                                    "(exactly one space between fields)")
    if proto == b"TCP4":
        src, dst = _v1_ipv4(parts[2]), _v1_ipv4(parts[3])
        family = Family.INET
    else:
        src, dst = _v1_ipv6(parts[2]), _v1_ipv6(parts[3])
        family = Family.INET6
    return _fast_header(1, Command.PROXY, family, Transport.STREAM, src, _v1_port(parts[4]),
                        dst, _v1_port(parts[5]), ()), end + 2


_TLV_HDR = struct.Struct("!BH").unpack_from


def _parse_tlvs(data: bytes, pos: int, end: int, *, ssl: bool = False) -> tuple[TLV, ...]:
    out = []
    unpack = _TLV_HDR
    while pos < end:
        if end - pos < 3:
            raise _err("v2-tlv-ssl-truncated" if ssl else "v2-tlv-truncated",
                       f"{end - pos} bytes left, a TLV needs 3")
        t, n = unpack(data, pos)
        pos += 3
        if pos + n > end:
            raise _err("v2-tlv-ssl-truncated" if ssl else "v2-tlv-truncated",
                       f"TLV 0x{t:02x} claims {n} bytes, {end - pos} left")
        tlv = _new(TLV)
        _TLV_SET_TYPE(tlv, t)
        _TLV_SET_VALUE(tlv, data[pos : pos + n])
        out.append(tlv)
        pos += n
    return tuple(out)


_CHECKED_TLVS = frozenset({0x02, 0x03, 0x05, 0x20})


def _check_tlvs(tlvs: tuple[TLV, ...], data: bytes, total: int) -> None:
    crc_seen = False
    for t in tlvs:
        tt = t.type
        if tt not in _CHECKED_TLVS:
            continue
        if tt == 0x03:
            if len(t.value) != 4:
                raise _err("v2-tlv-bad-crc32c-length", f"CRC32C TLV has {len(t.value)} bytes")
            if crc_seen:
                raise _err("v2-tlv-duplicate-crc32c", "more than one CRC32C TLV")
            crc_seen = True
        elif tt == 0x05:
            if len(t.value) > 128:
                raise _err("v2-tlv-unique-id-too-long", f"{len(t.value)} bytes, max 128")
        elif tt == 0x20:
            if len(t.value) < 5:
                raise _err("v2-tlv-ssl-truncated", "SSL TLV shorter than 5 bytes")
            _parse_tlvs(t.value, 5, len(t.value), ssl=True)
        else:  # 0x02 AUTHORITY
            try:
                t.value.decode("utf-8")
            except UnicodeDecodeError:
                raise _err("v2-tlv-bad-authority", "AUTHORITY is not UTF-8") from None
    if crc_seen:
        _verify_crc(tlvs, data[:total])


def _verify_crc(tlvs: tuple[TLV, ...], frame: bytes) -> None:
    # find the CRC TLV's value offset in the frame: walk TLVs from the end of the frame
    offset = len(frame)
    for t in reversed(tlvs):
        offset -= len(t.value) + 3
        if t.type == 0x03:
            expected = int.from_bytes(t.value, "big")
            zeroed = frame[: offset + 3] + b"\0\0\0\0" + frame[offset + 7 :]
            actual = crc32c(zeroed)
            if actual != expected:
                raise _err("v2-bad-crc32c", f"CRC32C is 0x{expected:08x}, computed "
                                            f"0x{actual:08x}")
            return


_V2_FIXED = struct.Struct("!BBH").unpack_from
_V2_INET = struct.Struct("!4s4sHH").unpack_from
_V2_INET6 = struct.Struct("!16s16sHH").unpack_from
_ADDR_LENS = (0, 12, 36, 216)
_ntoa = socket.inet_ntoa


def _ntop6(packed: bytes) -> str:
    """RFC 5952 text of a packed IPv6 address, identical to ``str(IPv6Address(packed))``.

    ``inet_ntop`` is ten times faster; it only differs for embedded-IPv4 forms (it prints a
    dotted quad), where ipaddress is used instead.
    """
    text = socket.inet_ntop(socket.AF_INET6, packed)
    if "." in text:
        return str(IPv6Address(packed))
    return text


def _check_v2_byte12(vc: int) -> None:
    if vc >> 4 != 2:
        raise _err("v2-bad-version", f"version nibble {vc >> 4}, expected 2")
    if vc & 0x0F > 1:
        raise _err("v2-bad-command", f"command 0x{vc & 0x0F:x} is neither LOCAL nor PROXY")


def _check_v2_byte13(fam: int) -> None:
    if fam not in _VALID_FAM:
        raise _err("v2-bad-family", f"family/transport byte 0x{fam:02x} is not one of "
                                    "00 11 12 21 22 31 32")


def _parse_v2(data: bytes, max_length: int) -> tuple[ProxyHeader, int] | NeedData:
    if len(data) < 16:
        # bytes are checked as they arrive: a bad version/command or family byte is refused
        # before the length field is complete
        if len(data) > 12:
            _check_v2_byte12(data[12])
            if len(data) > 13:
                _check_v2_byte13(data[13])
        return NEED_DATA
    vc, fam, length = _V2_FIXED(data, 12)
    if vc & 0xFE != 0x20:  # version 2, command LOCAL (0) or PROXY (1)
        _check_v2_byte12(vc)
    cmd = vc & 0x0F
    if fam not in _VALID_FAM:
        _check_v2_byte13(fam)
    total = 16 + length
    if total > max_length:
        raise _err("v2-too-long", f"header of {total} bytes exceeds the limit {max_length}")
    if len(data) < total:
        return NEED_DATA
    fi = fam >> 4
    alen = _ADDR_LENS[fi]
    if length < alen:
        if cmd == 0:
            return _fast_header(2, Command.LOCAL, _FAMILIES[fi], _TRANSPORTS[fam & 0x0F],
                                None, None, None, None, ()), total
        raise _err("v2-short-address-block", f"len {length} is shorter than the "
                                             f"{_FAMILIES[fi].name} address block "
                                             f"({alen} bytes)")
    src: str | None
    dst: str | None
    sport: int | None
    dport: int | None
    if fi == 1:
        s4, d4, sport, dport = _V2_INET(data, 16)
        src = _ntoa(s4)
        dst = _ntoa(d4)
    elif fi == 2:
        s6, d6, sport, dport = _V2_INET6(data, 16)
        src = _ntop6(s6)
        dst = _ntop6(d6)
    elif fi == 3:
        src = data[16:124].rstrip(b"\0").decode("utf-8", "surrogateescape")
        dst = data[124:232].rstrip(b"\0").decode("utf-8", "surrogateescape")
        sport = dport = None
    else:
        src = dst = sport = dport = None
    if total > 16 + alen:
        tlvs = _parse_tlvs(data, 16 + alen, total)
        _check_tlvs(tlvs, data, total)
    else:
        tlvs = ()
    # inlined _fast_header (this is the hot path)
    h = _new(ProxyHeader)
    a, b, c, d, e, f, g, i, j = _HEADER_SETTERS
    a(h, 2)
    b(h, _COMMANDS[cmd])
    c(h, _FAMILIES[fi])
    d(h, _TRANSPORTS[fam & 0x0F])
    e(h, src)
    f(h, sport)
    g(h, dst)
    i(h, dport)
    j(h, tlvs)
    return h, total


def parse(data: bytes | bytearray | memoryview, *, v1: bool = True, v2: bool = True,
          max_v2_length: int = V2_MAX_LENGTH) -> tuple[ProxyHeader, int] | NeedData:
    """Parse a PROXY header at the start of ``data``.

    Returns ``(header, consumed_bytes)``, or :data:`NEED_DATA` when ``data`` is a valid but
    incomplete prefix. Raises :class:`ProxyProtocolError` (and nothing else, for any input)
    as soon as the bytes cannot start a valid header of an enabled version.
    """
    if data.__class__ is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _err("bad-input", f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if v2 and data.startswith(SIGNATURE_V2):  # fast paths for complete signatures
        return _parse_v2(data, max_v2_length)
    if v1 and data.startswith(b"PROXY "):
        return _parse_v1(data)
    if not data:
        return NEED_DATA
    first = data[0]
    if first == 0x50 and v1:  # "P"
        head = data[:6]
        if b"PROXY "[: len(head)] != head:
            raise _err("not-proxy", "data does not start with a PROXY protocol signature")
        if len(data) < 6:
            return NEED_DATA
        return _parse_v1(data)
    if first == 0x0D and v2:
        head = data[:12]
        if SIGNATURE_V2[: len(head)] != head:
            raise _err("not-proxy", "data does not start with a PROXY protocol signature")
        return _parse_v2(data, max_v2_length)
    enabled = " and ".join(v for v, on in (("v1", v1), ("v2", v2)) if on) or "no version"
    raise _err("not-proxy", f"data does not start with a PROXY protocol signature "
                            f"({enabled} enabled)")


class ProxyProtocolParser:
    """Sans-IO PROXY protocol reader for one connection.

    ``feed(data)`` then ``next_header()`` -> :data:`NEED_DATA` or the :class:`ProxyHeader`;
    after the header, :attr:`trailing` holds the bytes that followed it (application data).
    Errors raise :class:`ProxyProtocolError` and are sticky.
    """

    __slots__ = ("_buf", "_header", "_error", "_consumed", "v1", "v2", "max_v2_length")

    def __init__(self, *, v1: bool = True, v2: bool = True,
                 max_v2_length: int = V2_MAX_LENGTH) -> None:
        from .errors import ConfigError

        if not (v1 or v2):
            raise ConfigError("enable at least one of v1 and v2", code="bad-config")
        if not isinstance(max_v2_length, int) or not 16 <= max_v2_length <= V2_MAX_LENGTH:
            raise ConfigError(f"max_v2_length: {max_v2_length!r} is not in 16-{V2_MAX_LENGTH}",
                              code="bad-config")
        self.v1 = v1
        self.v2 = v2
        self.max_v2_length = max_v2_length
        self._buf = bytearray()
        self._header: ProxyHeader | None = None
        self._error: ProxyProtocolError | None = None
        self._consumed = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes (also allowed after the header: they join ``trailing``)."""
        self._buf += data

    def next_header(self) -> ProxyHeader | NeedData:
        """The header once complete, :data:`NEED_DATA` before; raises ProxyProtocolError."""
        if self._header is not None:
            return self._header
        if self._error is not None:
            raise self._error
        try:
            r = parse(bytes(self._buf), v1=self.v1, v2=self.v2,
                      max_v2_length=self.max_v2_length)
        except ProxyProtocolError as exc:
            self._error = exc
            raise
        if isinstance(r, NeedData):
            return r
        self._header, self._consumed = r
        return self._header

    @property
    def buffered(self) -> int:
        """Bytes held so far."""
        return len(self._buf)

    @property
    def trailing(self) -> bytes:
        """Bytes received after the header (empty until the header is complete)."""
        if self._header is None:
            return b""
        return bytes(self._buf[self._consumed :])


# --- building -------------------------------------------------------------------------------


def build(header: ProxyHeader, *, add_crc32c: bool = False) -> bytes:
    """Encode ``header`` in its version's wire format.

    v2: TLVs are written in order; a CRC32C TLV present in ``header.tlvs`` gets its value
    recomputed, and ``add_crc32c=True`` appends one when absent. v1: the text line with CRLF.
    ``parse(build(h))`` returns ``h`` for every valid header (with ``add_crc32c``, ``h`` plus
    the CRC TLV).
    """
    if header.version == 1:
        if add_crc32c:
            raise _err("bad-header", "v1 has no CRC32C")
        if header.family == Family.UNSPEC:
            return b"PROXY UNKNOWN\r\n"
        proto = "TCP4" if header.family == Family.INET else "TCP6"
        return (f"PROXY {proto} {header.source} {header.destination} "
                f"{header.source_port} {header.destination_port}\r\n").encode("ascii")
    fam = header.family
    if header.source is None:
        addr = b""
    elif fam == Family.INET:
        addr = (socket.inet_aton(header.source) + socket.inet_aton(header.destination or "")
                + struct.pack("!HH", header.source_port, header.destination_port))
    elif fam == Family.INET6:
        addr = (IPv6Address(header.source).packed + IPv6Address(header.destination).packed
                + struct.pack("!HH", header.source_port, header.destination_port))
    elif fam == Family.UNIX:
        addr = (header.source.encode("utf-8", "surrogateescape").ljust(108, b"\0")
                + (header.destination or "").encode("utf-8", "surrogateescape").ljust(108, b"\0"))
    else:
        addr = b""
    tlvs = list(header.tlvs)
    if add_crc32c and not any(t.type == TLVType.CRC32C for t in tlvs):
        tlvs.append(TLV(type=TLVType.CRC32C, value=b"\0\0\0\0"))
    body = bytearray(addr)
    crc_at = -1
    for t in tlvs:
        if t.type == TLVType.CRC32C and crc_at < 0:
            crc_at = 16 + len(body) + 3
            body += b"\x03\x00\x04\0\0\0\0"
        else:
            body += t.encode()
    if len(body) > 0xFFFF:
        raise _err("bad-header", "header exceeds 65535 bytes")
    frame = bytearray(SIGNATURE_V2)
    frame += bytes([0x20 | int(header.command), (int(fam) << 4) | int(header.transport)])
    frame += struct.pack("!H", len(body))
    frame += body
    if crc_at >= 0:
        frame[crc_at : crc_at + 4] = struct.pack("!I", crc32c(frame))
    return bytes(frame)
