"""WSGI middleware: a thin shell over a strategy.

Per request it reads ``REMOTE_ADDR`` and the strategy's headers from the environ, calls
``strategy.resolve`` and stores:

* ``environ["sourceip.client"]``: the :class:`~.strategies.ClientIP` result,
* ``environ["sourceip.peer"]``: the original ``REMOTE_ADDR``,
* ``environ["sourceip.forwarded"]``: the :class:`~.strategies.ForwardedInfo` (when configured).

It rewrites ``REMOTE_ADDR`` only with ``rewrite_remote_addr=True`` (and only when an IP was
resolved), and ``wsgi.url_scheme`` / ``HTTP_HOST`` / ``SERVER_NAME`` / ``SERVER_PORT`` only with
``rewrite_forwarded=True``; originals are kept in ``environ["sourceip.orig"]``.

WSGI servers join repeated header lines with ``,``, which keeps their order. CGI-style servers
map ``X_Forwarded_For`` to the same key as ``X-Forwarded-For``; run behind a proxy that drops
header names containing ``_`` (nginx and werkzeug's server do by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import ConfigError
from .strategies import ClientIP, HeaderMap, Strategy, TrustedForwardedInfo

__all__ = ["ClientIPMiddleware"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _environ_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


class ClientIPMiddleware:
    """Wrap a WSGI ``app``; see the module docstring for what is stored and rewritten."""

    __slots__ = ("app", "strategy", "forwarded_info", "rewrite_remote_addr",
                 "rewrite_forwarded", "_keys", "_fkeys")

    def __init__(self, app: WSGIApp, strategy: Strategy, *,
                 forwarded_info: TrustedForwardedInfo | None = None,
                 rewrite_remote_addr: bool = False, rewrite_forwarded: bool = False) -> None:
        if not callable(app):
            raise ConfigError("app: not callable", code="bad-config")
        if not callable(getattr(strategy, "resolve", None)):
            raise ConfigError(f"strategy: {strategy!r} has no resolve()", code="bad-config")
        if rewrite_forwarded and forwarded_info is None:
            raise ConfigError("rewrite_forwarded needs forwarded_info", code="bad-config")
        self.app = app
        self.strategy = strategy
        self.forwarded_info = forwarded_info
        self.rewrite_remote_addr = rewrite_remote_addr
        self.rewrite_forwarded = rewrite_forwarded
        self._keys = tuple((n, _environ_key(n)) for n in sorted(strategy.header_names))
        self._fkeys = tuple((n, _environ_key(n)) for n in sorted(
            forwarded_info.header_names if forwarded_info else ()))

    def resolve(self, environ: dict[str, Any]) -> ClientIP:
        """The strategy's result for this environ (does not modify it)."""
        headers: HeaderMap = {n: environ[k] for n, k in self._keys if k in environ}
        return self.strategy.resolve(environ.get("REMOTE_ADDR"), headers)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR")
        keys = self._keys
        headers: HeaderMap
        if len(keys) == 1:  # the common case, without a comprehension frame
            name, key = keys[0]
            value = environ.get(key)
            headers = {} if value is None else {name: value}
        else:
            headers = {n: environ[k] for n, k in keys if k in environ}
        result = self.strategy.resolve(peer, headers)
        environ["sourceip.client"] = result
        environ["sourceip.peer"] = peer
        if self.rewrite_remote_addr and result.ip is not None:
            environ.setdefault("sourceip.orig", {})["REMOTE_ADDR"] = peer
            environ["REMOTE_ADDR"] = result.ip
        if self.forwarded_info is not None:
            fheaders: HeaderMap = {n: environ[k] for n, k in self._fkeys if k in environ}
            info = self.forwarded_info.resolve(peer, fheaders)
            environ["sourceip.forwarded"] = info
            if self.rewrite_forwarded:
                orig = environ.setdefault("sourceip.orig", {})
                if info.scheme is not None:
                    orig["wsgi.url_scheme"] = environ.get("wsgi.url_scheme")
                    environ["wsgi.url_scheme"] = info.scheme
                if info.host is not None:
                    orig["HTTP_HOST"] = environ.get("HTTP_HOST")
                    orig["SERVER_NAME"] = environ.get("SERVER_NAME")
                    environ["HTTP_HOST"] = info.host
                    host, port = _split_host(info.host)
                    environ["SERVER_NAME"] = host
                    if port is not None:
                        orig["SERVER_PORT"] = environ.get("SERVER_PORT")
                        environ["SERVER_PORT"] = str(port)
                if info.port is not None:
                    orig.setdefault("SERVER_PORT", environ.get("SERVER_PORT"))
                    environ["SERVER_PORT"] = str(info.port)
                    # frameworks build URLs from HTTP_HOST: its port must agree
                    host_header = environ.get("HTTP_HOST")
                    if host_header:
                        orig.setdefault("HTTP_HOST", host_header)
                        environ["HTTP_HOST"] = _with_port(
                            _host_name(host_header), info.port, environ.get("wsgi.url_scheme"))
        return self.app(environ, start_response)


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _with_port(host: str, port: int, scheme: object) -> str:
    """``host:port``, or ``host`` alone when ``port`` is the scheme's default (as browsers
    send Host)."""
    return host if _DEFAULT_PORTS.get(str(scheme)) == port else f"{host}:{port}"


def _host_name(host: str) -> str:
    """``host[:port]`` without the port (any text after the last colon outside brackets)."""
    colon = host.rfind(":")
    return host[:colon] if colon > host.rfind("]") else host


def _split_host(host: str) -> tuple[str, int | None]:
    """Split a validated ``host[:port]`` into name and port."""
    bracket = host.rfind("]")
    colon = host.rfind(":")
    if colon > bracket:
        return host[:colon], int(host[colon + 1 :])
    return host, None
