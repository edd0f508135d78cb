"""The exceptions of :mod:`sourceip.clientip` (stdlib only, independent of ``sourceip.errors``).

Tree::

    ClientIPError                      root; every error this package raises on purpose
    ├── ConfigError (ValueError)       a strategy, PrefixSet, parser or middleware was built wrong;
    │                                  raised at construction, never while serving a request
    ├── ParseError (ValueError)        a header value or address token is malformed
    │   ├── AddressError               one address token (``1.2.3.4:80``, ``[::1]``, ...)
    │   └── HeaderError                a whole header (X-Forwarded-For, Forwarded, X-Real-IP)
    └── ProxyProtocolError             a PROXY protocol v1/v2 header is invalid
        ├── ProxyProtocolTimeout       (asyncio helper) the header did not arrive in time
        └── ProxyProtocolEOF           (asyncio helper) the peer closed before a full header

Every error carries ``code``: a short, stable, machine-readable reason (``"leading-zero"``,
``"v2-bad-crc32c"``, ...); ``str(error)`` is the human sentence.
"""

from __future__ import annotations

__all__ = [
    "AddressError",
    "ClientIPError",
    "ConfigError",
    "HeaderError",
    "ParseError",
    "ProxyProtocolEOF",
    "ProxyProtocolError",
    "ProxyProtocolTimeout",
]


class ClientIPError(Exception):
    """Root of the clientip error tree; ``code`` is a stable machine-readable reason."""

    code: str

    def __init__(self, message: str, *, code: str = "error") -> None:
        super().__init__(message)
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code!r})"


class ConfigError(ClientIPError, ValueError):
    """A configuration value is invalid (raised when a strategy or middleware is built)."""


class ParseError(ClientIPError, ValueError):
    """Input from a request (header or address token) is malformed."""


class AddressError(ParseError):
    """One address token is not a strict IPv4/IPv6 literal (with optional port/zone)."""


class HeaderError(ParseError):
    """A header as a whole is unusable (too long, too many hops, bad syntax)."""


class ProxyProtocolError(ClientIPError):
    """A PROXY protocol header is invalid; the connection must be dropped."""


class ProxyProtocolTimeout(ProxyProtocolError):
    """The PROXY protocol header did not arrive within the configured time."""


class ProxyProtocolEOF(ProxyProtocolError):
    """The connection closed before a complete PROXY protocol header arrived."""
