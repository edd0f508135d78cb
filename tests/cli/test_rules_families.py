"""``sourceip rules`` per IP family: a dual-stack node's IPv4 then IPv6 rules (kube-proxy runs
one proxier per family), ``--family 4|6`` for one, and each part loads in its real tool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import in_netns


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                          text=True, timeout=120)


DS = ("rules", "--example", "dual-stack", "--node", "node1")


def sections(text: str) -> dict[str, str]:
    """The parts under '### <command>' lines."""
    out: dict[str, list[str]] = {}
    cur = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("### "):
            cur = line[4:].strip()
            out[cur] = []
        else:
            out.setdefault(cur, []).append(line)
    return {k: "".join(v) for k, v in out.items()}


def test_iptables_dual_stack_prints_ipv4_then_ipv6() -> None:
    res = run(*DS)
    assert res.returncode == 0, res.stderr
    parts = sections(res.stdout)
    assert list(parts) == ["iptables-restore", "ip6tables-restore"]
    v4, v6 = parts["iptables-restore"], parts["ip6tables-restore"]
    assert v4.startswith("# kube-proxy 1.36, iptables mode, node node1, IPv4\n*filter")
    assert v6.startswith("# kube-proxy 1.36, iptables mode, node node1, IPv6\n*filter")
    assert "fd00:" not in v4 and "! -d ::1 -j KUBE-NODEPORTS" in v6
    # --family picks one part, the same text
    for fam, part in (("4", v4), ("6", v6)):
        one = run(*DS, "--family", fam)
        assert one.returncode == 0, one.stderr
        assert one.stdout == part


def test_nftables_dual_stack_is_one_script_with_both_tables() -> None:
    res = run(*DS, "--mode", "nftables")
    assert res.returncode == 0, res.stderr
    tables = [ln for ln in res.stdout.splitlines() if ln.startswith("add table")]
    assert [t.split()[2] for t in tables] == ["ip", "ip6"]
    assert "###" not in res.stdout
    doc = json.loads(run(*DS, "--mode", "nftables", "-o", "json").stdout)["nftables"]
    assert sum("metainfo" in i for i in doc) == 1
    assert [i["table"]["family"] for i in doc if "table" in i] == ["ip", "ip6"]


def test_single_stack_output_has_no_family_sections() -> None:
    res = run("rules", "--example", "seed", "--node", "node1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# kube-proxy 1.36, iptables mode, node node1\n*filter")
    assert "###" not in res.stdout and "ip6" not in res.stdout


def test_ipvs_refuses_ipv6() -> None:
    res = run(*DS, "--mode", "ipvs")
    assert res.returncode == 2
    assert "ipvs mode is modelled for IPv4 only: use --family 4" in res.stderr
    assert run(*DS, "--mode", "ipvs", "--family", "4").returncode == 0
    assert run(*DS, "--mode", "ipvs", "--family", "6").returncode == 2


# ---- the real tools ----

@pytest.mark.tools
def test_each_iptables_part_loads_in_its_tool(scratch_netns: str) -> None:
    parts = sections(run(*DS).stdout)
    for tool in ("iptables-restore", "ip6tables-restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
        res = in_netns(scratch_netns, tool, "--test", stdin=parts[tool])
        assert res.returncode == 0, f"{tool}: {res.stderr}"
    # the other tool refuses the other family's part: the check can fail
    assert in_netns(scratch_netns, "iptables-restore", "--test",
                 stdin=parts["ip6tables-restore"]).returncode != 0


@pytest.mark.tools
def test_nftables_dual_stack_script_passes_nft_check(scratch_netns: str, tmp_path: Path) -> None:
    if shutil.which("nft") is None:
        pytest.skip("the nft binary is not installed")
    f = tmp_path / "ds.nft"
    f.write_text(run(*DS, "--mode", "nftables").stdout)
    res = in_netns(scratch_netns, "nft", "-c", "-f", str(f))
    assert res.returncode == 0, res.stderr
