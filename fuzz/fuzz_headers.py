"""Fuzz the X-Forwarded-For, X-Real-IP and Forwarded parsers and the strategies over them."""

from __future__ import annotations

import sys

from _common import HAVE_ATHERIS, atheris

if HAVE_ATHERIS:
    with atheris.instrument_imports():
        from sourceip.clientip import (
            ClientIPError,
            RightmostTrustedCount,
            RightmostTrustedRange,
            parse_forwarded,
            parse_x_forwarded_for,
            parse_x_real_ip,
        )
else:
    from sourceip.clientip import (
        ClientIPError,
        RightmostTrustedCount,
        RightmostTrustedRange,
        parse_forwarded,
        parse_x_forwarded_for,
        parse_x_real_ip,
    )

STRATEGIES = [
    RightmostTrustedRange(header=h, trusted_proxies=["10.0.0.0/8"])
    for h in ("x-forwarded-for", "forwarded")
] + [RightmostTrustedCount(header="forwarded", trusted_hops=2)]


def TestOneInput(data: bytes) -> None:  # noqa: N802 - libFuzzer's name
    lines = data.decode("latin-1").split("\n")
    for parser in (parse_x_forwarded_for, parse_forwarded, parse_x_real_ip):
        try:
            parser(lines)
        except ClientIPError:
            pass
    for s in STRATEGIES:
        r = s.resolve("10.0.0.1", {s.header: lines})
        assert r.ip is None or isinstance(r.ip, str)


if __name__ == "__main__":
    from _common import run

    run(TestOneInput, sys.argv)
