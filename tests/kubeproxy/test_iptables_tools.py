"""The rendered rulesets load in the real tools: ``iptables-restore --test`` with both the legacy
and the nft back end, run inside a throwaway network namespace (the root namespace is never
touched). ``--test`` parses every rule and resolves every match and target extension, but does
not commit."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from iptables_helpers import CONFIGS, FAKE_CFG, N1, TEST_NODE, feature_cluster
from test_iptables_golden import overall_cluster

from sourceip.kubeproxy.iptables import build_iptables_ruleset
from sourceip.netfilter.render_iptables import render_iptables

pytestmark = pytest.mark.tools

TOOLS = {
    (4, "legacy"): "iptables-legacy-restore",
    (4, "nft"): "iptables-nft-restore",
    (6, "legacy"): "ip6tables-legacy-restore",
    (6, "nft"): "ip6tables-nft-restore",
}
_NFACCT = re.compile(r" -m nfacct --nfacct-name \S+")


@pytest.fixture(scope="module")
def netns(scratch_netns: str) -> str:
    """The shared throwaway namespace (tests/conftest.py)."""
    return scratch_netns


def restore_test(ns: str, tool: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, tool, "--test"], input=text,
                          capture_output=True, text=True, timeout=60)


def check_loads(ns: str, family: int, backend: str, text: str) -> None:
    """Assert that ``text`` passes ``--test``; skip (saying why) when the only failure is the
    nfacct match, which needs xt_nfacct/libxt_nfacct on the machine."""
    tool = TOOLS[(family, backend)]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    res = restore_test(ns, tool, text)
    if res.returncode == 0:
        return
    if "nfacct" in text:
        retry = restore_test(ns, tool, _NFACCT.sub("", text))
        if retry.returncode == 0:
            pytest.skip(
                f"{tool} rejects only the nfacct match here (xt_nfacct/libxt_nfacct missing?): "
                f"{res.stderr.strip()[:200]}"
            )
    lines = text.splitlines()
    m = re.search(r"line (\d+)", res.stderr)
    where = lines[int(m.group(1)) - 1] if m and int(m.group(1)) <= len(lines) else ""
    pytest.fail(f"{tool} --test failed (rc {res.returncode}): {res.stderr.strip()}\n{where}")


@pytest.mark.parametrize("backend", ["legacy", "nft"])
def test_golden_ruleset_loads(netns: str, backend: str) -> None:
    rs = build_iptables_ruleset(overall_cluster(), TEST_NODE, FAKE_CFG, random_fully=False)
    check_loads(netns, 4, backend, render_iptables(rs))


@pytest.mark.parametrize("backend", ["legacy", "nft"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("family", [4, 6])
def test_feature_cluster_loads(netns: str, backend: str, config: str, family: int) -> None:
    rs = build_iptables_ruleset(feature_cluster(), N1, CONFIGS[config], family=family)
    text = render_iptables(rs)
    assert "-A KUBE-SERVICES" in text
    check_loads(netns, family, backend, text)


@pytest.mark.parametrize("backend", ["legacy", "nft"])
def test_bad_rule_is_rejected(netns: str, backend: str) -> None:
    """The check can fail: a port out of range is refused."""
    tool = TOOLS[(4, backend)]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    rs = build_iptables_ruleset(overall_cluster(), TEST_NODE, FAKE_CFG)
    text = render_iptables(rs).replace("--dport 80 ", "--dport 80000 ", 1)
    assert restore_test(netns, tool, text).returncode != 0
