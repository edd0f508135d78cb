"""Fuzz strict address tokens and PrefixSet lookups."""

from __future__ import annotations

import sys

from _common import HAVE_ATHERIS, atheris

if HAVE_ATHERIS:
    with atheris.instrument_imports():
        from sourceip.clientip import ClientIPError, PrefixSet, parse_address
else:
    from sourceip.clientip import ClientIPError, PrefixSet, parse_address

PS = PrefixSet(["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"])


def TestOneInput(data: bytes) -> None:  # noqa: N802 - libFuzzer's name
    text = data.decode("latin-1")
    try:
        a = parse_address(text)
    except ClientIPError:
        return
    assert parse_address(a.ip if a.port is None or a.version == 4 else f"[{a.ip}]").ip == a.ip
    _ = text in PS


if __name__ == "__main__":
    from _common import run

    run(TestOneInput, sys.argv)
