"""``sourceip echo``: run the JSON echo server (see :mod:`sourceip.echo.server`)."""

from __future__ import annotations

import click


@click.command("echo")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0 picks a free one; the bound port is printed).")
@click.option("--proxy-protocol", is_flag=True,
              help="Require a PROXY protocol v1/v2 header on every connection. Enable only "
                   "behind a load balancer that sends it.")
@click.option("--trust", "trust", multiple=True, metavar="CIDR",
              help="A trusted proxy CIDR (repeatable). Enables header-based resolution: the "
                   "rightmost entry outside these CIDRs.")
@click.option("--trusted-hops", type=click.IntRange(min=1), default=None, metavar="N",
              help="Number of trusted proxies in front: take the entry N-1 from the right.")
@click.option("--header", type=click.Choice(["x-forwarded-for", "forwarded", "x-real-ip"]),
              default="x-forwarded-for", show_default=True,
              help="Which header carries the client address.")
def echo(host: str, port: int, proxy_protocol: bool, trust: tuple[str, ...],
         trusted_hops: int | None, header: str) -> None:
    """Answer every HTTP request with JSON: peer, PROXY header, headers, resolved client IP."""
    import asyncio

    from sourceip.clientip import ConfigError
    from sourceip.echo.server import EchoConfig, EchoServer

    try:
        server = EchoServer(EchoConfig(host=host, port=port, proxy_protocol=proxy_protocol,
                                       trust=trust, trusted_hops=trusted_hops, header=header))
    except ConfigError as exc:
        hint = "--trust" if exc.code == "bad-cidr" else None
        raise click.BadParameter(str(exc), param_hint=hint) from None

    def ready(bound_host: str, bound_port: int) -> None:
        click.echo(f"sourceip echo listening on {bound_host}:{bound_port}", err=False)

    try:
        asyncio.run(server.serve(ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") \
            from None
