"""`sourceip rules --mode ipvs` output loads in the real tools: `ipset restore` then
`iptables-restore` (the iptables rules use the sets) inside a throwaway network namespace
(ipsets are per network namespace); `ipvsadm -R` cannot load without the kernel's IP_VS, so
the ipvsadm part is checked by a parser round trip (and loaded with `ipvsadm -R` where
/proc/net/ip_vs exists)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest
from click.testing import CliRunner

from sourceip.cli.main import main
from sourceip.kubeproxy.ipvs import build_ipvs_node, render_ipvs_node, split_ipvs_dump
from sourceip.netfilter.parse_ipvsadm import parse_ipvsadm, render_ipvsadm_save
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


pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    for tool in ("ip", "ipset", "iptables-restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    name = f"sip-ipvs-{secrets.token_hex(4)}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _in(ns: str, argv: list[str], text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], input=text, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("example", ["design-table", "loadbalancer", "metallb-l2"])
@pytest.mark.parametrize("masq_all", [False, True])
def test_rules_load(netns: str, example: str, masq_all: bool) -> None:
    c = load_example(example)
    cfg = replace(c.kube_proxy, mode="ipvs", masquerade_all=masq_all)
    n = build_ipvs_node(c, c.nodes[0], cfg)
    parts = split_ipvs_dump(render_ipvs_node(n))
    assert set(parts) == {"ipvsadm", "ip", "ipset", "iptables-save"}
    _in(netns, ["ipset", "flush"], "")
    _in(netns, ["iptables", "-t", "nat", "-F"], "")
    _in(netns, ["iptables", "-F"], "")
    _in(netns, ["ipset", "destroy"], "")
    r = _in(netns, ["ipset", "restore"], parts["ipset"])
    assert r.returncode == 0, r.stderr
    r = _in(netns, ["iptables-restore"], parts["iptables-save"])
    assert r.returncode == 0, r.stderr
    table = parse_ipvsadm(parts["ipvsadm"])
    assert table == n.table and render_ipvsadm_save(table) == parts["ipvsadm"]
    if os.path.exists("/proc/net/ip_vs") and shutil.which("ipvsadm"):
        r = _in(netns, ["ipvsadm", "-R"], parts["ipvsadm"])
        assert r.returncode == 0, r.stderr


def test_cli_rules_ipvs() -> None:
    code, out = run(["rules", "--example", "design-table", "--node", "node1", "--mode", "ipvs"])
    assert code == 0, out
    heads = [ln.split()[1] for ln in out.splitlines() if ln.startswith("### ")]
    assert heads == ["ipvsadm", "ip", "ipset", "iptables-save"]
    code, out = run(["rules", "--example", "design-table", "--node", "node1", "--mode", "ipvs",
                     "-o", "json"])
    assert code == 2
