"""ASGI middleware: a thin shell over a strategy.

For ``http`` and ``websocket`` scopes it reads ``scope["client"]`` and the strategy's headers
(all lines, in order, decoded as latin-1), calls ``strategy.resolve`` and stores:

* ``scope["sourceip.client"]`` and ``scope["state"]["sourceip_client"]`` (Starlette/FastAPI:
  ``request.state.sourceip_client``): the :class:`~.strategies.ClientIP` result,
* ``scope["sourceip.peer"]``: the original ``scope["client"]``,
* ``scope["sourceip.forwarded"]``: the :class:`~.strategies.ForwardedInfo` (when configured).

``scope["client"]`` is rewritten only with ``rewrite_client=True`` (and only when an IP was
resolved); ``scope["scheme"]``, the ``host`` header and ``scope["server"]`` only with
``rewrite_forwarded=True``. Other scope types pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import ConfigError
from .strategies import Strategy, TrustedForwardedInfo

__all__ = ["ClientIPASGIMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ClientIPASGIMiddleware:
    """Wrap an ASGI ``app``; see the module docstring for what is stored and rewritten."""

    __slots__ = ("app", "strategy", "forwarded_info", "rewrite_client", "rewrite_forwarded",
                 "_names", "_fnames")

    def __init__(self, app: ASGIApp, strategy: Strategy, *,
                 forwarded_info: TrustedForwardedInfo | None = None,
                 rewrite_client: bool = False, rewrite_forwarded: bool = False) -> None:
        if not callable(app):
            raise ConfigError("app: not callable", code="bad-config")
        if not callable(getattr(strategy, "resolve", None)):
            raise ConfigError(f"strategy: {strategy!r} has no resolve()", code="bad-config")
        if rewrite_forwarded and forwarded_info is None:
            raise ConfigError("rewrite_forwarded needs forwarded_info", code="bad-config")
        self.app = app
        self.strategy = strategy
        self.forwarded_info = forwarded_info
        self.rewrite_client = rewrite_client
        self.rewrite_forwarded = rewrite_forwarded
        self._names = {n.encode("latin-1"): n for n in strategy.header_names}
        self._fnames = {n.encode("latin-1"): n for n in (
            forwarded_info.header_names if forwarded_info else ())}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = client[0] if client else None
        names = self._names
        fnames = self._fnames
        headers: dict[str, list[str]] = {}
        fheaders: dict[str, list[str]] = {}
        for key, value in scope.get("headers") or ():
            name = names.get(key)
            if name is not None:
                headers.setdefault(name, []).append(value.decode("latin-1"))
            fname = fnames.get(key)
            if fname is not None:
                fheaders.setdefault(fname, []).append(value.decode("latin-1"))
        result = self.strategy.resolve(peer, headers)
        scope["sourceip.client"] = result
        scope["sourceip.peer"] = client
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["sourceip_client"] = result
        if self.rewrite_client and result.ip is not None:
            port = result.port
            if port is None:  # the socket peer keeps its port; a header entry without one: 0
                port = client[1] if client and result.from_peer else 0
            scope["client"] = (result.ip, port)
        if self.forwarded_info is not None:
            info = self.forwarded_info.resolve(peer, fheaders)
            scope["sourceip.forwarded"] = info
            if self.rewrite_forwarded:
                if info.scheme is not None:
                    scheme = info.scheme
                    if kind == "websocket":
                        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
                    elif scheme in ("ws", "wss"):
                        scheme = "https" if scheme == "wss" else "http"
                    scope["scheme"] = scheme
                if info.host is not None:
                    scope["headers"] = [(k, v) for k, v in scope.get("headers") or ()
                                        if k != b"host"] + [(b"host",
                                                             info.host.encode("latin-1"))]
                if info.port is not None:
                    server = scope.get("server")
                    scope["server"] = ((server[0] if server else info.host or ""), info.port)
        await self.app(scope, receive, send)
