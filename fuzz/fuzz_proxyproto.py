"""Fuzz the PROXY protocol parser: own errors only; accepted frames rebuild identically when
canonical, and reparse to the same header."""

from __future__ import annotations

import sys

from _common import HAVE_ATHERIS, atheris

if HAVE_ATHERIS:
    with atheris.instrument_imports():
        from sourceip.clientip import ClientIPError, build_proxy_header, parse_proxy_header
        from sourceip.clientip.proxyproto import NeedData
else:
    from sourceip.clientip import ClientIPError, build_proxy_header, parse_proxy_header
    from sourceip.clientip.proxyproto import NeedData


def TestOneInput(data: bytes) -> None:  # noqa: N802 - libFuzzer's name
    try:
        r = parse_proxy_header(data, max_v2_length=4096)
    except ClientIPError:
        return
    if isinstance(r, NeedData):
        return
    header, used = r
    frame = build_proxy_header(header)
    again = parse_proxy_header(frame)
    assert not isinstance(again, NeedData) and again[0] == header, (data[:used], frame)


if __name__ == "__main__":
    from _common import run

    run(TestOneInput, sys.argv)
