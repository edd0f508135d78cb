"""kube-proxy's IPv6 proxier: our rules for the IPv6 cases of TestNodePorts against upstream.

* nftables: the ``ip6 kube-proxy`` table equals upstream's expected IPv6 ruleset (TestTracePacketV6,
  golden/nftables_ipv6_nodeports.txt) line for line, compared sorted as
  assertNFTablesTransactionEqual does, for every release with that layout;
* iptables: the IPv6 differences kube-proxy makes (pkg/proxy/iptables/proxier.go syncProxyRules):
  no localhost NodePorts (the nodeports tail rule excludes ``::1``, nodePortAddresses' loopback
  is skipped, KUBE-FIREWALL stays empty: route_localnet is IPv4 only), the IPv6 local detector
  (``! -s fd00:10::/64``), only IPv6 nodePortAddresses apply;
* both load in the real ``ip6tables-restore --test`` (legacy and nft back ends) and ``nft -c``
  in a throwaway network namespace.

The cluster of each case is the one tests/scenarios/*_TestNodePorts_ipv6.yaml describes (the
packet flows of those files run in tests/dataplane/test_packet_flows.py).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import in_netns

from sourceip.cluster import Cluster
from sourceip.kubeproxy import build_ruleset
from sourceip.kubeproxy.releases import RELEASES
from sourceip.netfilter import render
from sourceip.sources import cluster_from_objects

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
GOLDEN = Path(__file__).parent / "golden"
NODE = "test-node"


def case_cluster(mode: str, case: str, version: str = "") -> Cluster:
    """The cluster of one case of ``<mode>_TestNodePorts_ipv6.yaml`` (its KubeProxyConfiguration
    replaced by the case's, as the scenario loader does), for kube-proxy ``version``."""
    doc = yaml.safe_load((SCENARIOS / f"{mode}_TestNodePorts_ipv6.yaml").read_text())
    (rc,) = [c for c in doc["cases"] if c["name"] == case]
    kp: dict[str, Any] = dict(rc["kubeProxy"])
    if version:
        kp["metadata"] = {"annotations": {"sourceip.dev/kubeProxyVersion": version}}
    objs = [o for o in doc["objects"] if o["kind"] != "KubeProxyConfiguration"] + [kp]
    return cluster_from_objects(objs + list(rc.get("objects") or []), node_port_range=None)


def lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def nft_v6(version: str) -> str:
    c = case_cluster("nftables", "ipv6, multiple nodeport-addresses", version)
    return render(build_ruleset(c, NODE, family=6))


# releases whose nftables layout is the golden's: filter-prerouting / filter-output-post-dnat
# and the masquerade rule with "tcp dport" (kubeproxy/releases.py)
GOLDEN_RELEASES = [r.version for r in RELEASES
                   if r.nft_layout == "dnat-10" and r.nft_masq_rule_port]


def test_golden_releases_are_known() -> None:
    assert GOLDEN_RELEASES and set(GOLDEN_RELEASES) <= {"1.30", "1.31", "1.32", "1.33"}


@pytest.mark.parametrize("version", GOLDEN_RELEASES)
def test_nftables_ipv6_matches_upstream(version: str) -> None:
    want = Counter(lines((GOLDEN / "nftables_ipv6_nodeports.txt").read_text()))
    got = Counter(lines(nft_v6(version)))
    missing, extra = sorted((want - got).elements()), sorted((got - want).elements())
    assert not missing and not extra, (
        "missing (upstream, not ours):\n  " + "\n  ".join(missing)
        + "\nextra (ours, not upstream):\n  " + "\n  ".join(extra))


def test_nftables_ipv6_golden_comparison_can_fail() -> None:
    """A release with another layout (the current default) differs from the golden."""
    assert Counter(lines(nft_v6(""))) != Counter(
        lines((GOLDEN / "nftables_ipv6_nodeports.txt").read_text()))


def test_nftables_ipv4_proxier_of_the_same_cluster_has_no_ipv6() -> None:
    c = case_cluster("nftables", "ipv6")
    text = render(build_ruleset(c, NODE, family=4))
    assert text.startswith("add table ip kube-proxy")
    assert "fd00:" not in text and "2001:db8" not in text
    v6 = render(build_ruleset(c, NODE, family=6))
    assert "add element ip6 kube-proxy nodeport-ips { 2001:db8::1 }" in v6
    assert "2001:db8:1::2" not in v6  # the fake's default: the primary IP (/128) only


IPT_CASES = {
    "ipv6, localhost-nodeports enabled": "-m addrtype --dst-type LOCAL ! -d ::1 -j KUBE-NODEPORTS",
    "ipv6, localhost-nodeports disabled": "-m addrtype --dst-type LOCAL ! -d ::1 -j KUBE-NODEPORTS",
    "ipv6, localhost-nodeports disabled, multiple nodeport-addresses": "-d 2001:db8::1 -j "
                                                                        "KUBE-NODEPORTS",
}


def chain(text: str, table: str, name: str) -> list[str]:
    out, cur = [], ""
    for ln in text.splitlines():
        if ln.startswith("*"):
            cur = ln[1:]
        elif cur == table and ln.startswith(f"-A {name} "):
            out.append(ln)
    return out


@pytest.mark.parametrize("case", sorted(IPT_CASES))
def test_iptables_ipv6_differences(case: str) -> None:
    c = case_cluster("iptables", case)
    rs = build_ruleset(c, NODE, family=6)
    assert [t.family for t in rs.tables] == ["ip6", "ip6"]
    text = render(rs)
    # expectFirewall is false for every IPv6 case: no anti-martian rule
    assert ":KUBE-FIREWALL - [0:0]" in text and chain(text, "filter", "KUBE-FIREWALL") == []
    services = chain(text, "nat", "KUBE-SERVICES")
    assert services[-1].endswith(IPT_CASES[case]), services[-1]
    assert len([r for r in services if "KUBE-NODEPORTS" in r]) == 1  # not 2001:db8:1::2
    (masq,) = [r for r in text.splitlines() if "-d fd00:172:30::41 --dport 80 ! -s" in r]
    assert masq.endswith("! -s fd00:10::/64 -j KUBE-MARK-MASQ")
    assert "--to-destination [fd00:10:180::2:1]:80" in text
    assert not re.search(r"\b(10|127|192\.168)\.\d+\.\d+\.\d+", text)


# ---- the real tools ----

@pytest.mark.tools
@pytest.mark.parametrize("tool", ["ip6tables-legacy-restore", "ip6tables-nft-restore"])
@pytest.mark.parametrize("case", sorted(IPT_CASES))
def test_iptables_ipv6_loads(scratch_netns: str, tool: str, case: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    text = render(build_ruleset(case_cluster("iptables", case), NODE, family=6))
    text = re.sub(r" -m nfacct --nfacct-name \S+", "", text)  # xt_nfacct may be missing
    res = in_netns(scratch_netns, tool, "--test", stdin=text)
    assert res.returncode == 0, res.stderr
    bad = text.replace("--dport 3001 ", "--dport 70000 ", 1)
    assert in_netns(scratch_netns, tool, "--test", stdin=bad).returncode != 0  # the check can fail


@pytest.mark.tools
@pytest.mark.parametrize("version", ["", *GOLDEN_RELEASES])
def test_nftables_ipv6_loads(scratch_netns: str, version: str, tmp_path: Path) -> None:
    if shutil.which("nft") is None:
        pytest.skip("the nft binary is not installed")
    f = tmp_path / "v6.nft"
    f.write_text(nft_v6(version))
    res = in_netns(scratch_netns, "nft", "-c", "-f", str(f))
    assert res.returncode == 0, res.stderr
