"""Shared runner for the fuzz targets: atheris when importable, else a random-bytes loop.

Every target checks one promise: the code under test returns or raises its own
``ClientIPError``; any other exception is a bug and crashes the run.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable

atheris = None
HAVE_ATHERIS = False
if not os.environ.get("SOURCEIP_FUZZ_NO_ATHERIS"):
    try:  # pragma: no cover - depends on the environment
        import atheris

        HAVE_ATHERIS = True
    except ImportError:  # pragma: no cover
        pass


def run(target: Callable[[bytes], None], argv: list[str] | None = None) -> None:
    """Fuzz ``target`` with atheris (libFuzzer flags in argv), or with random bytes.

    Without atheris, ``-max_total_time=N`` (default 5) bounds the loop and the seed corpus of
    interesting prefixes is mixed with random bytes.
    """
    args = list(sys.argv if argv is None else argv)
    if HAVE_ATHERIS:
        atheris.Setup(args, target)
        atheris.Fuzz()
        return
    budget = 5.0
    for a in args:
        if a.startswith("-max_total_time="):
            budget = float(a.split("=", 1)[1])
    rnd = random.Random(int(os.environ.get("SOURCEIP_FUZZ_SEED", "0")))
    seeds = [b"", b"PROXY TCP4 ", b"PROXY UNKNOWN\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11",
             b"for=", b'for="[', b"1.2.3.4, ", b"[::1]:", b"::ffff:"]
    deadline = time.monotonic() + budget
    n = 0
    while time.monotonic() < deadline:
        data = rnd.choice(seeds) + rnd.randbytes(rnd.randint(0, 120))
        target(data)
        n += 1
    print(f"random-bytes fuzzing: {n} inputs in {budget:g}s, no crash")
