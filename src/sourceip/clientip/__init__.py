"""sourceip.clientip: the real client IP behind proxies, load balancers and CDNs.

Standard library only; imports nothing else of sourceip. Pieces:

* :mod:`.addr` -- strict address tokens (:func:`parse_address`, :class:`Address`).
* :mod:`.prefixset` -- :class:`PrefixSet`, CIDR membership at constant cost.
* :mod:`.headers` -- X-Forwarded-For, X-Real-IP, RFC 7239 Forwarded, X-Forwarded-Proto/Host/Port.
* :mod:`.strategies` -- what to trust: :class:`RemoteAddress`, :class:`SingleIPHeader`,
  :class:`RightmostTrustedCount`, :class:`RightmostTrustedRange`, :class:`Chain`,
  :class:`UnsafeLeftmostNonPrivate`; scheme/host/port via :class:`TrustedForwardedInfo`.
* :mod:`.proxyproto` -- PROXY protocol v1/v2: sans-IO parser, builder, TLVs, CRC32C.
* :mod:`.aio` -- :func:`read_proxy_header` for asyncio servers.
* :mod:`.wsgi` / :mod:`.asgi` -- middleware shells.

Quick start::

    from sourceip.clientip import RightmostTrustedRange, Chain, RemoteAddress
    strategy = Chain(RightmostTrustedRange(trusted_proxies=["10.0.0.0/8"]), RemoteAddress())
    result = strategy.resolve("10.0.0.7", {"x-forwarded-for": "203.0.113.9, 10.1.2.3"})
    result.ip, result.code, result.reason
"""

from __future__ import annotations

from .addr import Address, parse_address, parse_ip
from .aio import read_proxy_header
from .asgi import ClientIPASGIMiddleware
from .errors import (
    AddressError,
    ClientIPError,
    ConfigError,
    HeaderError,
    ParseError,
    ProxyProtocolEOF,
    ProxyProtocolError,
    ProxyProtocolTimeout,
)
from .headers import (
    ForwardedElement,
    Hop,
    Node,
    parse_forwarded,
    parse_forwarded_node,
    parse_x_forwarded_for,
    parse_x_forwarded_host,
    parse_x_forwarded_port,
    parse_x_forwarded_proto,
    parse_x_real_ip,
)
from .prefixset import PrefixSet
from .proxyproto import (
    NEED_DATA,
    TLV,
    Command,
    Family,
    ProxyHeader,
    ProxyProtocolParser,
    SSLInfo,
    TLVType,
    Transport,
    crc32c,
)
from .proxyproto import (
    build as build_proxy_header,
)
from .proxyproto import (
    parse as parse_proxy_header,
)
from .strategies import (
    NON_PUBLIC,
    Chain,
    ClientIP,
    ForwardedInfo,
    RemoteAddress,
    RightmostTrustedCount,
    RightmostTrustedRange,
    SingleIPHeader,
    Strategy,
    TrustedForwardedInfo,
    UnsafeLeftmostNonPrivate,
    headers_from_pairs,
)
from .wsgi import ClientIPMiddleware

__all__ = [
    "NEED_DATA",
    "NON_PUBLIC",
    "TLV",
    "Address",
    "AddressError",
    "Chain",
    "ClientIP",
    "ClientIPASGIMiddleware",
    "ClientIPError",
    "ClientIPMiddleware",
    "Command",
    "ConfigError",
    "Family",
    "ForwardedElement",
    "ForwardedInfo",
    "HeaderError",
    "Hop",
    "Node",
    "ParseError",
    "PrefixSet",
    "ProxyHeader",
    "ProxyProtocolEOF",
    "ProxyProtocolError",
    "ProxyProtocolParser",
    "ProxyProtocolTimeout",
    "RemoteAddress",
    "RightmostTrustedCount",
    "RightmostTrustedRange",
    "SSLInfo",
    "SingleIPHeader",
    "Strategy",
    "TLVType",
    "Transport",
    "TrustedForwardedInfo",
    "UnsafeLeftmostNonPrivate",
    "build_proxy_header",
    "crc32c",
    "headers_from_pairs",
    "parse_address",
    "parse_forwarded",
    "parse_forwarded_node",
    "parse_ip",
    "parse_proxy_header",
    "parse_x_forwarded_for",
    "parse_x_forwarded_host",
    "parse_x_forwarded_port",
    "parse_x_forwarded_proto",
    "parse_x_real_ip",
    "read_proxy_header",
]
