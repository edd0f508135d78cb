"""asyncio helper for servers that must accept PROXY protocol headers.

Enable it only on listeners that sit behind a proxy or load balancer configured to send PROXY
headers: the first bytes of every connection must be the header (there is no auto-detection,
which would let direct clients spoof their address).
"""

from __future__ import annotations

import asyncio

from .errors import ConfigError, ProxyProtocolEOF, ProxyProtocolError, ProxyProtocolTimeout
from .proxyproto import V2_MAX_LENGTH, NeedData, ProxyHeader, ProxyProtocolParser

__all__ = ["DEFAULT_TIMEOUT", "read_proxy_header"]

DEFAULT_TIMEOUT = 3.0
"""Seconds allowed for the header to arrive (the spec recommends at least 3 s)."""

_CHUNK = 512


async def read_proxy_header(reader: asyncio.StreamReader, *, timeout: float = DEFAULT_TIMEOUT,
                            v1: bool = True, v2: bool = True,
                            max_v2_length: int = V2_MAX_LENGTH) -> tuple[ProxyHeader, bytes]:
    """Read one PROXY header from ``reader``.

    Returns ``(header, rest)`` where ``rest`` holds the bytes already read past the header
    (the start of the application stream; process it before reading ``reader`` again).
    Raises :class:`ProxyProtocolTimeout` when the whole header has not arrived within
    ``timeout`` seconds, :class:`ProxyProtocolEOF` when the peer closes first, and
    :class:`ProxyProtocolError` for an invalid header (checked as bytes arrive, so a v1 line
    without CRLF is rejected after 107 bytes and a v2 header above ``max_v2_length`` as soon as
    its length field is read). Never buffers more than ``max(107, max_v2_length) + 512`` bytes.
    """
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"timeout: {timeout!r} is not a positive number", code="bad-config")
    parser = ProxyProtocolParser(v1=v1, v2=v2, max_v2_length=max_v2_length)
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = parser.next_header()
                if not isinstance(result, NeedData):
                    return result, parser.trailing
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    raise ProxyProtocolEOF(
                        f"eof: connection closed after {parser.buffered} bytes, before a "
                        "complete PROXY header", code="eof")
                parser.feed(chunk)
    except TimeoutError:
        raise ProxyProtocolTimeout(
            f"timeout: no complete PROXY header within {timeout:g} s "
            f"({parser.buffered} bytes received)", code="timeout") from None
    except ProxyProtocolError:
        raise
