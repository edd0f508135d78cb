"""docs/clientip.md, "Dual-stack clusters": the example block runs as written (its asserts are
the documented answers for IPv4 and IPv6 clients behind a dual-stack ingress)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "clientip.md"


def _block() -> str:
    text = DOC.read_text()
    section = text.split("### Dual-stack clusters", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the dual-stack section has no python block"
    return match.group(1)


def test_dual_stack_example_runs_as_documented() -> None:
    code = _block()
    assert "fd00:10:244::/56" in code and "assert" in code
    exec(compile(code, f"{DOC}:dual-stack", "exec"), {})  # our own docs, our own asserts
