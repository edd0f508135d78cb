"""kube-proxy releases (kubeproxy/releases.py): the table, the golden dumps of each release, the
rules of every release loading in the real tools, and kube-proxy's packet-flow tests per
release (where upstream's history says they hold)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from test_nftables_fixtures import TEST_NODE, ep, eps, overall_cluster, svc
from test_nftables_golden import GOLDEN, golden_lines, script_lines

from sourceip.cluster import Cluster, KubeProxyConfig, NetworkProfile, Node
from sourceip.errors import ValidationError
from sourceip.kubeproxy.nftables import build_nftables_ruleset
from sourceip.kubeproxy.releases import (
    DEFAULT_VERSION,
    DEVELOPMENT_VERSION,
    NFT_LAYOUTS,
    RELEASES,
    normalize_version,
    release,
    supported_versions,
)
from sourceip.netfilter.render_nft import render_nft

VERSIONS = supported_versions()
ip = ipaddress.ip_address
net = ipaddress.ip_network


# ----------------------------------------------------------------------------- the table

def test_table_covers_1_29_to_the_development_branch() -> None:
    assert VERSIONS[0] == "1.29"
    minors = [int(v.split(".")[1]) for v in VERSIONS]
    assert minors == list(range(29, 29 + len(minors))), "no release may be skipped"
    assert [r.version for r in RELEASES if r.development] == [DEVELOPMENT_VERSION] == [VERSIONS[-1]]
    assert release(DEFAULT_VERSION).nft_golden is not None
    for r in RELEASES:
        assert r.nft_layout in NFT_LAYOUTS
        # flags that only make sense together
        assert not r.nft_single_endpoint_plain_dnat or r.nft_dnat_in_service_chain
        assert not r.nft_dnat_in_service_chain or not r.nft_mark_chain


def test_version_forms() -> None:
    assert normalize_version("v1.35.2") == "1.35"
    assert normalize_version("1.30") == "1.30"
    assert normalize_version("master") == normalize_version("main") == DEVELOPMENT_VERSION
    assert normalize_version("") == DEFAULT_VERSION
    for bad in ("1.28", "2.0", "latest", "1"):
        with pytest.raises(ValidationError, match="kubeProxyVersion"):
            normalize_version(bad)
    with pytest.raises(ValidationError, match="kubeProxyVersion"):
        KubeProxyConfig(version="v1.35")  # the model holds the normalized form only


# ----------------------------------------------------------------------------- goldens

def _nft(cluster: Cluster, version: str, node: str = TEST_NODE) -> list[str]:
    cfg = replace(cluster.kube_proxy, version=version)
    return script_lines(render_nft(build_nftables_ruleset(cluster, cluster.node(node), cfg)))


def _same(want: list[str], got: list[str]) -> None:
    w, g = Counter(want), Counter(got)
    missing, extra = sorted((w - g).elements()), sorted((g - w).elements())
    assert not missing and not extra, ("missing:\n  " + "\n  ".join(missing)
                                       + "\nextra:\n  " + "\n  ".join(extra))


# TestOverallNFTablesRules as stored upstream, per release: (golden file, the fake proxier's
# nodePortAddresses in that copy). 1.30 and 1.31 pass nil (1.30 reads it as every local
# address, 1.31 as the node IP); 1.33 and 81810de6 pass the node IP as /32 and /128.
NFT_OVERALL_GOLDENS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "1.30": ("nftables_1.30_overall.txt", ()),  # openshift/kubernetes 84a2e12f
    "1.31": ("nftables_1.31_overall.txt", ()),  # danwinship/kubernetes ef85e122
    "1.33": ("nftables_1.33_overall.txt", None),  # aojea/kubernetes 492140ae
    "1.34": ("nftables_overall.txt", None),  # kubernetes/kubernetes 81810de6 (1.34-1.35 shape)
    "1.35": ("nftables_overall.txt", None),
}


def _overall_cluster_136() -> Cluster:
    """TestOverallNFTablesRules' inputs as the 1.36 copy (jesseward/kubernetes 5ec89f49) has
    them: every endpoint with a NodeName, svc2's and svc4's first on "other-node"."""
    return overall_cluster().with_(endpoint_slices=(
        eps("ns1", "svc1", ep("10.180.0.1", TEST_NODE)),
        eps("ns2", "svc2", ep("10.180.0.2", "other-node")),
        eps("ns3", "svc3", ep("10.180.0.3", TEST_NODE)),
        eps("ns4", "svc4", ep("10.180.0.4", "other-node"), ep("10.180.0.5", TEST_NODE)),
        eps("ns5", "svc5", ep("10.180.0.3", TEST_NODE)),
    ))


def test_overall_nftables_1_36_is_upstreams() -> None:
    """1.36's TestOverallNFTablesRules (jesseward/kubernetes 5ec89f49: #135800 and #136499
    in, #140723 not): DNAT by numgen map in each service chain, hairpin-connections of the
    local endpoints, `mark set` inline (the external chain's with comment "masquerade")."""
    _same(golden_lines("nftables_1.36_overall.txt"), _nft(_overall_cluster_136(), "1.36"))


def _base_rules_136() -> list[str]:
    """baseRules of the 1.36 copy (jesseward/kubernetes 5ec89f49): the part of
    nftables_1.36_overall.txt before its "# svc1" block."""
    base = (GOLDEN / "nftables_1.36_overall.txt").read_text().split("\n# svc1\n")[0]
    return [ln.strip() for ln in base.splitlines() if ln.strip() and not ln.startswith("#")]


def test_bad_ips_1_36_is_upstreams() -> None:
    """1.36's TestBadIPs (jesseward/kubernetes 5ec89f49): one LoadBalancer with an external IP,
    a source range and one local endpoint, on that copy's baseRules."""
    from test_nftables_fixtures import fake_cluster

    cluster = fake_cluster(
        [svc("ns1", "svc1", "172.30.0.41", type="LoadBalancer", node_port=3001, lb=("1.2.3.4",),
             external_ips=(ip("192.168.99.22"),), lb_source_ranges=(net("203.0.113.0/25"),))],
        [eps("ns1", "svc1", ep("10.180.0.1", TEST_NODE))])
    _same(_base_rules_136() + golden_lines("nftables_1.36_badips.txt"), _nft(cluster, "1.36"))


def _startup_cluster(node: str) -> Cluster:
    """TestSyncProxyRulesStartup's services and endpoints (every endpoint on ``node``)."""
    from test_nftables_fixtures import fake_cluster

    return fake_cluster(
        [svc("ns1", "svc1", "172.30.0.41"),
         svc("ns2", "svc2", "172.30.0.42", port=8080, port_name="p8080"),
         svc("ns3", "svc3", "172.30.0.43")],
        [eps("ns1", "svc1", ep("10.0.1.1", node), ep("10.0.1.2", node)),
         eps("ns2", "svc2", ep("10.0.2.1", node), port=8080, port_name="p8080")])


def _repeated_cluster(node: str) -> Cluster:
    """TestSyncProxyRulesRepeated's state after "Add an endpoint to a service" (every
    endpoint on ``node``)."""
    from test_nftables_fixtures import fake_cluster

    return fake_cluster(
        [svc("ns1", "svc1", "172.30.0.41"), svc("ns3", "svc3", "172.30.0.43"),
         svc("ns4", "svc4", "172.30.0.44")],
        [eps("ns1", "svc1", ep("10.0.1.1", node)),
         eps("ns3", "svc3", ep("10.0.3.2", node), ep("10.0.3.3", node)),
         eps("ns4", "svc4", ep("10.0.4.1", node))])


def test_sync_proxy_rules_startup_1_36_is_upstreams() -> None:
    """1.36's TestSyncProxyRulesStartup (jesseward/kubernetes 5ec89f49): the state after the
    sync, on that copy's baseRules; its endpoints are local, so all are hairpin-connections."""
    _same(_base_rules_136() + golden_lines("nftables_1.36_startup.txt"),
          _nft(_startup_cluster(TEST_NODE), "1.36"))


def test_sync_proxy_rules_repeated_1_36_is_upstreams() -> None:
    """1.36's TestSyncProxyRulesRepeated (jesseward/kubernetes 5ec89f49), the state after
    "Add an endpoint to a service", on that copy's baseRules."""
    _same(_base_rules_136() + golden_lines("nftables_1.36_repeated.txt"),
          _nft(_repeated_cluster(TEST_NODE), "1.36"))


@pytest.mark.parametrize(("golden", "cluster"), [
    ("nftables_1.36_startup.txt", _startup_cluster),
    ("nftables_1.36_repeated.txt", _repeated_cluster)])
def test_sync_proxy_rules_1_36_goldens_can_fail(golden: str,
                                                cluster: Callable[[str], Cluster]) -> None:
    """The comparisons can fail: with the endpoints on another node (no hairpin-connections
    elements) and in the 1.35 shape (endpoint chains), our rules differ from the golden."""
    want = _base_rules_136() + golden_lines(golden)
    with pytest.raises(AssertionError):
        _same(want, _nft(cluster("other-node"), "1.36"))
    with pytest.raises(AssertionError):
        _same(want, _nft(cluster(TEST_NODE), "1.35"))


@pytest.mark.parametrize("version", ["1.37", DEVELOPMENT_VERSION])
def test_overall_nftables_after_140723_differs_only_in_single_endpoint_dnat(
        version: str) -> None:
    """1.37+ (no test text): 1.36's golden except the one-endpoint services' DNAT (#140723)."""
    want, got = (Counter(golden_lines("nftables_1.36_overall.txt")),
                 Counter(_nft(_overall_cluster_136(), version)))
    assert sorted((got - want).elements()) == [
        f"add rule ip kube-proxy service-{h}-ns{i}/svc{i}/tcp/p80 meta l4proto tcp dnat to "
        f"10.180.0.{i}:80" for h, i in (("42NFTM6N", 2), ("4AT6LBPK", 3), ("ULMVA6XW", 1))]
    assert len(want - got) == 3


def _overall(version: str, npa: tuple[str, ...] | None) -> list[str]:
    cluster = overall_cluster() if npa is None else overall_cluster(node_port_addresses=npa)
    return _nft(cluster, version)


@pytest.mark.parametrize("version", sorted(NFT_OVERALL_GOLDENS))
def test_overall_nftables_golden_of_each_release(version: str) -> None:
    """Our ruleset for the inputs of TestOverallNFTablesRules equals that release's expected
    transaction (sorted lines, as assertNFTablesTransactionEqual compares)."""
    golden, npa = NFT_OVERALL_GOLDENS[version]
    _same(golden_lines(golden), _overall(version, npa))


def test_overall_goldens_tell_the_releases_apart() -> None:
    """The comparison can fail between releases: each golden differs from its neighbour's
    ruleset (1.30 -> 1.31: the split endpoint checks and nodeport-ips; 1.31 -> 1.33: the
    firewall-ips element comment; 1.33 -> 1.34: the pre-dnat layout)."""
    for older, newer in (("1.30", "1.31"), ("1.31", "1.33"), ("1.33", "1.34")):
        golden, npa = NFT_OVERALL_GOLDENS[newer]
        assert Counter(golden_lines(golden)) != Counter(_overall(older, npa)), (older, newer)


def test_every_release_naming_an_nft_golden_is_checked_against_it() -> None:
    named = {r.version for r in RELEASES if r.nft_golden is not None}
    checked = set(NFT_OVERALL_GOLDENS) | {"1.36"}  # tested above
    assert named <= checked, named - checked


def test_1_32_is_taken_to_be_1_31() -> None:
    """No 1.32 text was found: the row is 1.31's (the firewall-ips comment is in the 1.31
    copy and gone from the 1.33 one; when it went is not known)."""
    golden, npa = NFT_OVERALL_GOLDENS["1.31"]
    _same(golden_lines(golden), _overall("1.32", npa))


def _pi_cluster(version: str) -> Cluster:
    """The cluster of nftables_1.36_node.txt's write-up."""
    node = Node(name="pi", internal_ips=(ip("192.168.0.231"),),
                pod_cidrs=(net("10.244.0.0/24"),))
    return Cluster(
        nodes=(node,),
        services=(svc("default", "kubernetes", "10.96.0.1", port=443, port_name="https"),
                  svc("kube-system", "kube-dns", "10.96.0.10", port=53, port_name="dns-tcp"),
                  svc("kproxy-lab", "backend-api", "10.100.192.23", port_name="http")),
        endpoint_slices=(
            eps("default", "kubernetes", ep("192.168.0.231"), port=6443, port_name="https"),
            eps("kproxy-lab", "backend-api", ep("10.244.0.8", "pi"), ep("10.244.0.10", "pi"),
                port=9898, port_name="http")),
        kube_proxy=KubeProxyConfig(mode="nftables", cluster_cidrs=(net("10.244.0.0/16"),),
                                   version=version),
        profile=NetworkProfile(service_cidrs=(net("10.96.0.0/12"),)),
    )


def test_1_36_matches_a_real_v1_36_node() -> None:
    """A real v1.36.2 node's listing (nftables_1.36_node.txt): every statement is in our
    ruleset, and the chains it shows hold exactly its rules."""
    want = golden_lines("nftables_1.36_node.txt")
    got = _nft(_pi_cluster("1.36"), "1.36", node="pi")
    missing = [w for w in want if w not in got]
    assert not missing, "missing:\n  " + "\n  ".join(missing)
    chains = {w.split()[4] for w in want if w.startswith("add rule ")}
    for chain in chains:
        ours = [g for g in got if g.startswith(f"add rule ip kube-proxy {chain} ")]
        theirs = [w for w in want if w.startswith(f"add rule ip kube-proxy {chain} ")]
        assert ours == theirs, chain
    hairpin = [g for g in got if g.startswith("add element ip kube-proxy hairpin-connections")]
    assert len(hairpin) == 2  # local endpoints only: not the apiserver's 192.168.0.231


def test_1_36_overall_svc1_is_upstreams_line() -> None:
    """PR #140362's diff context: master's TestOverallNFTablesRules before #140723 (the 1.36
    shape) has svc1's chain with one rule, the DNAT by numgen map."""
    got = _nft(overall_cluster(), "1.36")
    svc1 = [g for g in got if g.startswith("add rule ip kube-proxy service-ULMVA6XW-")]
    assert svc1 == ["add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 meta l4proto tcp "
                    "dnat ip addr . port to numgen random mod 1 map { 0 : 10.180.0.1 . 80 }"]
    assert not any(" endpoint-" in g and "svc1" in g for g in got)


@pytest.mark.parametrize("version", ["1.37", DEVELOPMENT_VERSION])
def test_single_endpoint_services_skip_the_map(version: str) -> None:
    """#140723: a one-endpoint service DNATs without a numgen map (the exact text of
    upstream's test was not available: the plain form below is inferred from the endpoint
    chains' `dnat to` of earlier releases); two endpoints keep the map."""
    got = _nft(overall_cluster(), version)
    assert ("add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 meta l4proto tcp dnat to "
            "10.180.0.1:80") in got
    assert ("add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 meta l4proto tcp dnat ip "
            "addr . port to numgen random mod 2 map { 0 : 10.180.0.4 . 80 , 1 : 10.180.0.5 . 80 }"
            ) in got


def test_1_29_has_the_alpha_layout() -> None:
    """1.29 (no golden text): filter chains at DNAT priority - 1 with both checks in each
    (#122614's description of what it changed), no cluster-ips-check (#122692), the
    ``forward`` chain dropping ct state invalid (#122663 removed it)."""
    got = _nft(overall_cluster(), "1.29")
    assert "add chain ip kube-proxy filter-input { type filter hook input priority -101 ; }" in got
    assert not any("cluster-ips" in g for g in got)
    assert "add rule ip kube-proxy filter-forward ct state new jump firewall-check" in got
    # The forward chain #122663 removed in the 1.30 cycle, where the tnqn/kubernetes copies of
    # that cycle (e2526fc0, d846dce5) have it: between the endpoints and firewall checks.
    assert [g for g in got if g.startswith("add rule ip kube-proxy filter-forward ")] == [
        "add rule ip kube-proxy filter-forward ct state new jump endpoints-check",
        "add rule ip kube-proxy filter-forward jump forward",
        "add rule ip kube-proxy filter-forward ct state new jump firewall-check",
    ]
    assert "add rule ip kube-proxy forward ct state invalid drop" in got
    assert not any(g == "add chain ip kube-proxy forward" or g.endswith(" jump forward")
                   for g in _nft(overall_cluster(), "1.30"))


def _ipt_overall(version: str, *, nfacct: bool = True) -> dict[str, dict[str, list[str]]]:
    from iptables_helpers import FAKE_CFG, per_chain
    from iptables_helpers import TEST_NODE as IPT_NODE
    from test_iptables_golden import overall_cluster as ipt_cluster

    from sourceip.kubeproxy.iptables import build_iptables_ruleset
    from sourceip.netfilter.render_iptables import render_iptables

    rs = build_iptables_ruleset(ipt_cluster(), IPT_NODE, replace(FAKE_CFG, version=version),
                                random_fully=False, nfacct=nfacct)
    return per_chain(render_iptables(rs))


def _ipt_same(golden: str, ours: dict[str, dict[str, list[str]]]) -> None:
    from iptables_helpers import per_chain, read_golden

    expected = per_chain(read_golden(golden))
    for table in ("filter", "nat"):
        assert sorted(ours[table]) == sorted(expected[table]), (golden, table)
        for chain, rules in expected[table].items():
            assert ours[table][chain] == rules, (golden, table, chain)


@pytest.mark.parametrize("version", VERSIONS)
def test_iptables_overall_golden_of_each_release(version: str) -> None:
    """TestOverallIPTablesRules per release, compared chain by chain as
    assertIPTablesRulesEqual does: 1.29-1.30 have no nfacct counters (the copy before #122812
    and #125015); 1.31+ write them when the node has nfacct (iptables_overall.txt) and the
    older text when it does not."""
    if release(version).ipt_nfacct_counters:
        _ipt_same("iptables_overall.txt", _ipt_overall(version))
        _ipt_same("iptables_pre_nfacct_overall.txt", _ipt_overall(version, nfacct=False))
    else:
        _ipt_same("iptables_pre_nfacct_overall.txt", _ipt_overall(version))


def test_iptables_goldens_differ() -> None:
    """The two iptables goldens are told apart (the comparison can fail)."""
    with pytest.raises(AssertionError):
        _ipt_same("iptables_overall.txt", _ipt_overall("1.30"))
    with pytest.raises(AssertionError):
        _ipt_same("iptables_pre_nfacct_overall.txt", _ipt_overall("1.31"))


# ----------------------------------------------------------------------------- packet flows

sys.path.insert(0, str(Path(__file__).parents[1]))
from dataplane.scenario_loader import flow_errors, load_scenarios  # noqa: E402
from sourceip.dataplane.tracer import Tracer  # noqa: E402

# Flows upstream's history says do not hold in a release: (release, scenario, flow) -> why.
NOT_IN_RELEASE: dict[tuple[str, str, str], str] = {
    **{("1.29", "nftables_TestClusterIPGeneral", f): "cluster-ips-check came in 1.30 (#122692)"
       for f in ("TCP-only port does not match UDP traffic", "svc1 does not accept svc2's ports",
                 "packet to unallocated cluster ip")},
    **{("1.29", "nftables_TestLoadBalancer", f): "LoadBalancerSourceRanges did not work in "
       "nftables 1.29: firewall-check ran after DNAT (fixed by #122614 in 1.30)"
       for f in ("blocked external to LB1", "blocked external to LB2",
                 "pod to LB1 (blocked by LoadBalancerSourceRanges)",
                 "pod to LB2 (blocked by LoadBalancerSourceRanges)")},
}


@pytest.mark.parametrize("version", VERSIONS)
def test_packet_flows_hold_in_every_release(version: str) -> None:
    """Every ported flow of tests/scenarios (both modes) through each release's rules; the
    ones upstream's history says fail in a release fail there, and only those."""
    failing: set[tuple[str, str, str]] = set()
    for sc in load_scenarios():
        tracers: dict[str | None, Tracer] = {}
        for case, flow in sc.flows:
            if flow.xfail:
                continue
            if case.name not in tracers:
                c = case.cluster()
                tracers[case.name] = Tracer(c.with_(kube_proxy=replace(c.kube_proxy,
                                                                       version=version)))
            trace = tracers[case.name].trace_node(case.node, flow.src, flow.dst, flow.dport,
                                                  flow.proto)
            if flow_errors(flow, trace):
                failing.add((version, sc.path.stem, flow.name))
    expected = {k for k in NOT_IN_RELEASE if k[0] == version}
    assert failing == expected


# ----------------------------------------------------------------------------- real tools

def _why_not() -> str | None:
    for tool in ("nft", "ip", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    return None


@pytest.mark.tools
@pytest.mark.parametrize("version", VERSIONS)
def test_rules_of_every_release_load(version: str, tmp_path: Path) -> None:
    """`sourceip rules --kube-proxy-version V` output for both modes (the seed example; and the
    overall cluster, IPv4 and IPv6, with and without nodePortAddresses, for nftables) loads
    in `nft -c` / `iptables-restore --test` in a throwaway netns."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from click.testing import CliRunner

    from sourceip.cli.main import cli

    ns = f"sip-rel-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        runner = CliRunner()
        for mode in ("nftables", "iptables"):
            res = runner.invoke(cli, ["rules", "--example", "seed", "--node", "node1",
                                      "--mode", mode, "--kube-proxy-version", version])
            assert res.exit_code == 0, res.output
            out = res.stdout
            assert out.startswith(f"# kube-proxy {release(version).label}, {mode} mode")
            f = tmp_path / f"{mode}.rules"
            f.write_text(out)
            cmd = (["nft", "-c", "-f", str(f)] if mode == "nftables"
                   else ["iptables-restore", "--test", str(f)])
            r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True,
                               text=True)
            assert r.returncode == 0, f"{mode}: {r.stderr[-2000:]}"
        # nodePortAddresses set (a nodeport-ips set) and unset (before 1.31: fib daddr type
        # local in services and endpoints-check).
        for cluster in (overall_cluster(), overall_cluster(node_port_addresses=())):
            for family in (4, 6):
                cfg = replace(cluster.kube_proxy, version=version)
                f = tmp_path / f"overall{family}.nft"
                f.write_text(render_nft(build_nftables_ruleset(
                    cluster, cluster.node(TEST_NODE), cfg, family=family)))
                r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-c", "-f", str(f)],
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr[-2000:]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# ----------------------------------------------------------------------------- input

def test_annotation_and_option_pick_the_release(tmp_path: Path) -> None:
    """The KubeProxyConfiguration's sourceip.dev/kubeProxyVersion annotation sets the release;
    --kube-proxy-version overrides it; a bad value is an input error (exit 1) naming the
    annotation, or a usage error (exit 2) naming the option."""
    from click.testing import CliRunner

    from sourceip.cli.main import cli
    from sourceip.sources import load_cluster

    kp = tmp_path / "kp.yaml"
    kp.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                  "metadata:\n  annotations:\n    sourceip.dev/kubeProxyVersion: v1.33.4\n"
                  "mode: nftables\nclusterCIDR: 10.244.0.0/16\n")
    node = tmp_path / "node.yaml"
    node.write_text("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\nstatus:\n  addresses:\n"
                    "  - {type: InternalIP, address: 10.0.0.11}\n")
    assert load_cluster([str(kp), str(node)]).kube_proxy.version == "1.33"
    runner = CliRunner()
    res = runner.invoke(cli, ["rules", "-f", str(kp), "-f", str(node)])
    assert res.exit_code == 0 and res.stdout.startswith("# kube-proxy 1.33, nftables mode")
    assert "filter-output-post-dnat" in res.stdout
    res = runner.invoke(cli, ["rules", "-f", str(kp), "-f", str(node),
                              "--kube-proxy-version", "master"])
    assert res.stdout.startswith(f"# kube-proxy {DEVELOPMENT_VERSION} (development branch)")
    res = runner.invoke(cli, ["rules", "-f", str(kp), "-f", str(node),
                              "--kube-proxy-version", "1.20"])
    assert res.exit_code == 2 and "1.29" in res.output and "Traceback" not in res.output
    kp.write_text(kp.read_text().replace("v1.33.4", "one-dot-thirty"))
    res = runner.invoke(cli, ["rules", "-f", str(kp), "-f", str(node)])
    # (the CLI entry point maps it to `error: kp.yaml:4: metadata.annotations[...]: ...`)
    assert res.exit_code == 1 and "sourceip.dev/kubeProxyVersion" in str(res.exception)


@pytest.mark.parametrize(("version", "shape"), [
    ("1.29", "1.29 (alpha) rule shape"),
    ("1.30", "1.30 rule shape"),
    ("1.31", "1.31-1.33 rule shape"),
    ("1.33", "1.31-1.33 rule shape"),
    ("1.35", "1.34-1.35 rule shape"),
    ("1.36", "1.36+ rule shape"),
])
def test_a_dump_of_each_release_names_its_shape(version: str, shape: str,
                                                tmp_path: Path) -> None:
    """`trace --dump` names the release shape of our rules of each release (the 1.30 single
    endpoints-check is told apart from 1.31's split checks)."""
    from sourceip.netfilter.dumps import load_node_dumps

    f = tmp_path / f"{version}.nft"
    f.write_text(render_nft(build_nftables_ruleset(
        overall_cluster(), overall_cluster().node(TEST_NODE),
        replace(overall_cluster().kube_proxy, version=version))))
    nd = load_node_dumps([str(f)])
    assert nd.mode == "nftables"
    assert nd.kube_proxy.startswith(f"kube-proxy nftables, {shape}"), nd.kube_proxy
