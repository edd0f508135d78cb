"""The lab and ipvs mode: this kernel has no IP_VS, so the lab refuses ipvs mode with exit 3
and a message naming /proc/net/ip_vs; IPVS lab tests skip with that reason where it is
absent."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from sourceip.cli.main import main
from sourceip.lab.plan import IPVS_PROC, ipvs_lab_refusal, plan_lab
from sourceip.sources import load_example


def run(args: list[str]) -> tuple[int, str]:
    """``sourceip ARGS`` through ``main`` (errors mapped to exit codes): (code, stdout+stderr)."""
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().decode() + err.getvalue().decode()


NO_IPVS = not os.path.exists(IPVS_PROC)


def test_refusal_names_proc_when_absent(tmp_path: object) -> None:
    msg = ipvs_lab_refusal(str(tmp_path) + "/no-such-file")
    assert "/no-such-file is absent" in msg and "IP_VS" in msg
    assert "not built by the lab yet" in ipvs_lab_refusal(__file__)


def test_lab_run_mode_ipvs_exits_3() -> None:
    code, out = run(["lab", "run", "--example", "design-table", "--mode", "ipvs"])
    assert code == 3, out
    assert ("/proc/net/ip_vs" in out) == NO_IPVS


def test_topology_without_rules_still_plans() -> None:
    c = load_example("design-table")
    assert plan_lab(c, mode="ipvs", rules=False).namespaces


@pytest.mark.lab
@pytest.mark.skipif(NO_IPVS, reason=f"{IPVS_PROC} is absent: this kernel has no IP_VS, the "
                                    "lab cannot load IPVS virtual servers")
def test_ipvs_lab_where_ip_vs_exists() -> None:  # pragma: no cover - needs IP_VS
    # Where IP_VS exists the lab still refuses (virtual servers are not loaded yet): the
    # refusal must say so rather than claim the kernel lacks IP_VS.
    code, out = run(["lab", "run", "--example", "design-table", "--mode", "ipvs"])
    assert code == 3 and "not built by the lab yet" in out
