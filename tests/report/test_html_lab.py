"""``sourceip lab run --report FILE``: the report of the paths the lab probed, the address
observed beside each prediction (needs root and the lab's tools; skips saying why)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sourceip.cli.main import main


def _run(args: list[str]) -> tuple[int, str, str]:
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")
def test_lab_run_writes_the_report_with_observations(tmp_path: Path) -> None:
    report = tmp_path / "lab.html"
    code, out, err = _run(["lab", "run", "--example", "seed", "--report", str(report)])
    if code == 3:
        pytest.skip(f"a lab precondition is missing: {err.strip()}")
    assert code == 0, out + err
    html = report.read_text()
    assert "Lab evidence" in html and "7 of 7 probed paths agree" in html
    assert "Observed in the lab" in html
    # every probed path: observed beside predicted, agreeing
    assert html.count("✓ agrees") >= 2 * 7  # the verdict table and each path's lab table
    assert "DISAGREES" not in html
    # node2's NodePort: the lab saw node2's address, as predicted
    art = re.search(r'<article class="path[^"]*" id="[^"]*-p6".*?</article>', html, re.S)
    assert art is not None and "NodePort on node2" in art.group(0)
    assert re.search(r'<td class="addr">10\.0\.0\.12</td><td class="addr">10\.0\.0\.12 ',
                     art.group(0))
    assert not re.search(r"https?://", html)
