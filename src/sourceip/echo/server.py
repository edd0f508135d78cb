"""``sourceip echo``: a tiny HTTP/1.1 server on asyncio streams that answers every request with
JSON describing where it came from: the socket peer, the PROXY protocol header (if enabled),
the request headers, and the client IP resolved by a :mod:`sourceip.clientip` strategy with
its reason.

It is a diagnostic tool like the Kubernetes source-IP tutorial's ``echoserver``: run it behind
the Service / load balancer / ingress you are debugging and curl it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sourceip.clientip import (
    Chain,
    ClientIPError,
    ConfigError,
    ProxyHeader,
    RemoteAddress,
    RightmostTrustedCount,
    RightmostTrustedRange,
    SingleIPHeader,
    Strategy,
    headers_from_pairs,
    read_proxy_header,
)

__all__ = ["EchoConfig", "EchoServer", "build_strategy"]

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoConfig:
    """Echo server settings; invalid values raise ConfigError when the server is built."""

    host: str = "0.0.0.0"
    port: int = 8080
    proxy_protocol: bool = False
    proxy_timeout: float = 3.0
    trust: tuple[str, ...] = ()
    trusted_hops: int | None = None
    header: str = "x-forwarded-for"

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port!r} is outside 0-65535", code="bad-config")
        if self.header not in HEADERS:
            raise ConfigError(f"header: {self.header!r} is not one of {', '.join(HEADERS)}",
                              code="bad-config")
        if self.proxy_timeout <= 0:
            raise ConfigError("proxy_timeout: must be positive", code="bad-config")
        object.__setattr__(self, "trust", tuple(self.trust))


def build_strategy(config: EchoConfig) -> Strategy:
    """The strategy the flags describe (always falling back to the socket peer).

    * nothing: the peer only;
    * ``--trust``: rightmost entry outside the trusted CIDRs (X-Real-IP: set by a trusted peer);
    * ``--trusted-hops N``: the entry N-1 from the right (peer checked against ``--trust`` if
      also given).

    Raises :class:`ConfigError` for a bad CIDR or an impossible combination.
    """
    if config.trusted_hops is not None:
        if config.header == "x-real-ip":
            raise ConfigError("--trusted-hops needs a list header (x-forwarded-for or "
                              "forwarded), not x-real-ip", code="bad-config")
        return Chain(RightmostTrustedCount(header=config.header,
                                           trusted_hops=config.trusted_hops,
                                           trusted_proxies=config.trust or None),
                     RemoteAddress())
    if config.trust:
        if config.header == "x-real-ip":
            return Chain(SingleIPHeader(header="x-real-ip", trusted_proxies=config.trust),
                         RemoteAddress())
        return Chain(RightmostTrustedRange(header=config.header, trusted_proxies=config.trust),
                     RemoteAddress())
    return RemoteAddress()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EchoServer:
    """The echo server. Build it (validates the config), then ``await start()``/``serve()``."""

    def __init__(self, config: EchoConfig) -> None:
        self.config = config
        self.strategy = build_strategy(config)
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        """Bind and start accepting; returns the bound (host, port)."""
        self._server = await asyncio.start_server(self._handle, self.config.host,
                                                  self.config.port, limit=MAX_HEAD)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def serve(self, ready: Callable[[str, int], None] | None = None) -> None:
        """Start, report the bound address to ``ready``, then serve until cancelled."""
        host, port = await self.start()
        if ready is not None:
            ready(host, port)
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting and wait for the listener to close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- per connection ----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer_ip = peername[0] if isinstance(peername, tuple) else None
        peer_port = peername[1] if isinstance(peername, tuple) else None
        proxy: ProxyHeader | None = None
        buf = b""
        if self.config.proxy_protocol:
            try:
                proxy, buf = await read_proxy_header(reader, timeout=self.config.proxy_timeout)
            except ClientIPError as exc:
                # An invalid header means the connection must be dropped (spec); say why for
                # humans testing with curl, then close.
                await self._respond(writer, 400, {"error": "invalid PROXY protocol header",
                                                  "code": exc.code, "detail": str(exc)}, True)
                return
        effective = peer_ip
        if proxy is not None and not proxy.use_peer:
            effective = proxy.source
        while True:
            try:
                request, buf = await self._read_request(reader, buf)
            except _BadRequest as exc:
                await self._respond(writer, exc.status, {"error": str(exc)}, True)
                return
            if request is None:
                return
            method, target, version, pairs = request
            headers = headers_from_pairs(pairs, self.strategy.header_names)
            result = self.strategy.resolve(effective, headers)
            body = {
                "peer": {"ip": peer_ip, "port": peer_port},
                "proxy_protocol": proxy.as_dict() if proxy is not None else None,
                "effective_peer": effective,
                "request": {"method": method, "target": target, "version": version},
                "headers": [[k, v] for k, v in pairs],
                "client": result.as_dict(),
            }
            conn = next((v.lower() for k, v in pairs if k.lower() == "connection"), "")
            close = version == "HTTP/1.0" and "keep-alive" not in conn or "close" in conn
            await self._respond(writer, 200, body, close, head=method == "HEAD")
            if close:
                return

    async def _read_request(self, reader: asyncio.StreamReader, buf: bytes
                            ) -> tuple[tuple[str, str, str, list[tuple[str, str]]] | None,
                                       bytes]:
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEAD:
                raise _BadRequest(431, "request head too large")
            chunk = await reader.read(65536)
            if not chunk:
                if buf.strip():
                    raise _BadRequest(400, "connection closed mid-request")
                return None, b""
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise _BadRequest(431, "request head too large")
        lines = head.decode("latin-1").split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)  # tolerate leading CRLFs (RFC 9112 §2.2)
        parts = lines[0].split(" ") if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "malformed request line")
        pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or line[:1] in " \t":
                raise _BadRequest(400, "malformed header line")
            pairs.append((name, value.strip(" \t")))
        if any(k.lower() == "transfer-encoding" for k, _ in pairs):
            raise _BadRequest(501, "chunked request bodies are not supported")
        lengths = {v for k, v in pairs if k.lower() == "content-length"}
        length = 0
        if lengths:
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise _BadRequest(400, "bad Content-Length")
            length = int(next(iter(lengths)))
            if length > MAX_BODY:
                raise _BadRequest(413, "request body too large")
        while len(rest) < length:
            chunk = await reader.read(min(65536, length - len(rest)))
            if not chunk:
                raise _BadRequest(400, "connection closed mid-body")
            rest += chunk
        return (parts[0], parts[1], parts[2], pairs), rest[length:]

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: int, body: dict[str, Any],
                       close: bool, head: bool = False) -> None:
        payload = (json.dumps(body, indent=2, sort_keys=False) + "\n").encode("utf-8")
        reason = {200: "OK", 400: "Bad Request", 413: "Payload Too Large",
                  431: "Request Header Fields Too Large", 501: "Not Implemented"}[status]
        head_lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close" if close else "Connection: keep-alive",
            "", "",
        ]
        writer.write("\r\n".join(head_lines).encode("ascii") + (b"" if head else payload))
        await writer.drain()
