"""The fuzz targets in fuzz/: driven by hypothesis here (always), and by atheris for a few
seconds each in a ``slow`` test (CI installs the ``fuzz`` extra and sets
SOURCEIP_REQUIRE_ATHERIS=1, so there a missing atheris fails; elsewhere it skips)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = ["fuzz_addr", "fuzz_headers", "fuzz_proxyproto"]


def _load(name: str) -> ModuleType:
    os.environ["SOURCEIP_FUZZ_NO_ATHERIS"] = "1"  # no instrumentation inside pytest
    sys.path.insert(0, str(FUZZ))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(FUZZ))


prefixes = st.sampled_from([b"", b"PROXY ", b"PROXY TCP4 ", b"\r\n\r\n\x00\r\nQUIT\n!\x11",
                            b"for=", b'for="[', b"10.0.0.1, ", b"[2001:db8::1]:"])


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_with_hypothesis(name: str) -> None:
    target = _load(name).TestOneInput

    @settings(max_examples=150, deadline=None)
    @given(prefix=prefixes, data=st.binary(max_size=200))
    def check(prefix: bytes, data: bytes) -> None:
        target(prefix + data)

    check()


@pytest.mark.slow
def test_fuzz_targets_short_atheris_run() -> None:
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("SOURCEIP_REQUIRE_ATHERIS") == "1":  # set by .ci/run
            pytest.fail("atheris is not importable although the fuzz extra was installed")
        pytest.skip("atheris is not importable (pip install -e '.[fuzz]'); the targets "
                    "still run above via hypothesis and via fuzz/run_short.sh")
    env = {k: v for k, v in os.environ.items() if k != "SOURCEIP_FUZZ_NO_ATHERIS"}
    env["PYTHON"] = sys.executable
    proc = subprocess.run(["bash", str(FUZZ / "run_short.sh"), "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Done") == len(TARGETS), proc.stdout
