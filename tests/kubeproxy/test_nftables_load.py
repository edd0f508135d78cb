"""The rendered nftables rulesets load in the real ``nft``: ``nft -c -f`` (check only) inside a
throwaway network namespace for the golden inputs and many varied clusters, and one real load
(``nft -f``) followed by ``nft list table``."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_nftables_fixtures import TEST_NODE, ep, eps, fake_cluster, overall_cluster, svc

from sourceip.cluster import Cluster
from sourceip.kubeproxy.nftables import build_nftables_ruleset
from sourceip.netfilter.render_nft import render_nft

pytestmark = pytest.mark.tools

ip = ipaddress.ip_address
net = ipaddress.ip_network


@pytest.fixture(scope="module")
def netns(scratch_netns: str) -> str:
    """The shared throwaway namespace (tests/conftest.py), when nft is installed."""
    if shutil.which("nft") is None:
        pytest.skip("the nft binary is not installed")
    return scratch_netns


def nft_in(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], capture_output=True,
                          text=True, timeout=120)


def script(cluster: Cluster, family: int = 4, node: str = TEST_NODE) -> str:
    rs = build_nftables_ruleset(cluster, cluster.node(node), cluster.kube_proxy, family=family)
    return render_nft(rs)


def check(ns: str, text: str, tmp_path: Path) -> None:
    f = tmp_path / "rules.nft"
    f.write_text(text)
    res = nft_in(ns, "-c", "-f", str(f))
    assert res.returncode == 0, res.stderr[-3000:]


# ----------------------------------------------------------------------------- varied clusters

def _lb(name: str, cip: str, lbip: str, **kw: Any) -> Any:
    return svc("ns", name, cip, type="LoadBalancer", node_port=kw.pop("node_port", 30080),
               lb=(lbip,), **kw)


def varied_cluster(**cfg: Any) -> Cluster:
    """Every feature at once: affinity, source ranges (with and without the node IP), ETP and
    ITP Local with and without local endpoints, no endpoints, terminating endpoints, UDP and
    SCTP, externalIPs, several ports."""
    services = [
        svc("ns", "plain", "172.30.0.10", port_name=""),
        svc("ns", "udp", "172.30.0.11", protocol="udp", port=53, port_name="dns"),
        svc("ns", "sctp", "172.30.0.12", protocol="sctp", port=9999, port_name="s"),
        _lb("lb-affinity", "172.30.0.13", "1.2.3.10", session_affinity="ClientIP",
            affinity_timeout=60, lb_source_ranges=(net("203.0.113.0/25"),)),
        _lb("lb-range-node", "172.30.0.14", "1.2.3.11", node_port=30081,
            lb_source_ranges=(net("192.168.0.0/24"), net("203.0.113.0/25"))),
        _lb("etp-local", "172.30.0.15", "1.2.3.12", node_port=30082,
            external_traffic_policy="Local", health_check_node_port=32000,
            external_ips=(ip("192.168.99.50"),)),
        _lb("etp-local-none", "172.30.0.16", "1.2.3.13", node_port=30083,
            external_traffic_policy="Local"),
        svc("ns", "itp-local", "172.30.0.17", internal_traffic_policy="Local"),
        svc("ns", "itp-local-none", "172.30.0.18", internal_traffic_policy="Local"),
        svc("ns", "noeps", "172.30.0.19", type="NodePort", node_port=30084,
            external_ips=(ip("192.168.99.51"),)),
        svc("ns", "terminating", "172.30.0.20"),
        _lb("lb-noeps", "172.30.0.21", "1.2.3.14", node_port=30085,
            lb_source_ranges=(net("203.0.113.0/25"),)),
        _lb("affinity-local", "172.30.0.22", "1.2.3.15", node_port=30086,
            external_traffic_policy="Local", session_affinity="ClientIP"),
    ]
    slices = [
        eps("ns", "plain", ep("10.0.1.1", TEST_NODE), ep("10.0.2.1", "node2"), port_name=""),
        eps("ns", "udp", ep("10.0.1.2", TEST_NODE), protocol="udp", port=53, port_name="dns"),
        eps("ns", "sctp", ep("10.0.2.2", "node2"), protocol="sctp", port=9999, port_name="s"),
        eps("ns", "lb-affinity", ep("10.0.1.3", TEST_NODE), ep("10.0.2.3", "node2")),
        eps("ns", "lb-range-node", ep("10.0.2.4", "node2")),
        eps("ns", "etp-local", ep("10.0.1.5", TEST_NODE), ep("10.0.2.5", "node2")),
        eps("ns", "etp-local-none", ep("10.0.2.6", "node2")),
        eps("ns", "itp-local", ep("10.0.1.7", TEST_NODE), ep("10.0.2.7", "node2")),
        eps("ns", "itp-local-none", ep("10.0.2.8", "node2")),
        eps("ns", "terminating",
            ep("10.0.1.9", TEST_NODE, ready=False, serving=True, terminating=True),
            ep("10.0.2.9", "node2", ready=False, serving=False, terminating=True)),
        eps("ns", "affinity-local", ep("10.0.1.10", TEST_NODE), ep("10.0.2.10", "node2")),
    ]
    return fake_cluster(services, slices, **cfg)


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "masqueradeAll": {"masquerade_all": True},
    "detect NodeCIDR": {"detect_local_mode": "NodeCIDR"},
    "detect BridgeInterface": {"detect_local_mode": "BridgeInterface",
                               "bridge_interface": "cni0"},
    "detect InterfaceNamePrefix": {"detect_local_mode": "InterfaceNamePrefix",
                                   "interface_name_prefix": "veth"},
    "detect NoOp (no clusterCIDR)": {"cluster_cidrs": ()},
    "nodePortAddresses unset (primary)": {"node_port_addresses": ()},
    "nodePortAddresses primary": {"node_port_addresses": ("primary",)},
    "nodePortAddresses two CIDRs": {"node_port_addresses": ("192.168.0.0/24",
                                                            "192.168.1.0/24")},
    "nodePortAddresses match all": {"node_port_addresses": ("0.0.0.0/0", "::/0")},
    "nodePortAddresses other family only": {"node_port_addresses": ("2001:db8::/64",)},
    "nodePortAddresses loopback only": {"node_port_addresses": ("127.0.0.0/8",)},
    "masquerade bit 5": {"masquerade_bit": 5},
}


def test_golden_overall_passes_nft_check(netns: str, tmp_path: Path) -> None:
    check(netns, script(overall_cluster()), tmp_path)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_varied_cluster_passes_nft_check(netns: str, tmp_path: Path, variant: str) -> None:
    check(netns, script(varied_cluster(**VARIANTS[variant])), tmp_path)


def test_default_service_cidr_passes_nft_check(netns: str, tmp_path: Path) -> None:
    cluster = overall_cluster().with_(profile=overall_cluster().profile.__class__())
    text = script(cluster)
    assert "ip daddr { 10.96.0.0/12 } drop" in text
    check(netns, text, tmp_path)


def test_ipv6_ruleset_passes_nft_check(netns: str, tmp_path: Path) -> None:
    services = [
        svc("ns", "v6", "fd00:172:30::41", type="LoadBalancer", node_port=3001,
            lb=("2001:db8:ffff::4",), session_affinity="ClientIP",
            lb_source_ranges=(net("2001:db8::/64"),), external_traffic_policy="Local",
            external_ips=(ip("2001:db8:99::11"),)),
        svc("ns", "v6-noeps", "fd00:172:30::42"),
        svc("ns", "v4-only", "172.30.0.41"),
    ]
    slices = [eps("ns", "v6", ep("fd00:10:180::1", TEST_NODE), ep("fd00:10:180::2:1", "n2"))]
    for npa in ((f"{'2001:db8::1'}/128",), ("::/0",)):
        text = script(fake_cluster(services, slices, node_port_addresses=npa), family=6)
        assert text.startswith("add table ip6 kube-proxy")
        assert "dnat to [fd00:10:180::1]:80" in text
        check(netns, text, tmp_path)


def test_real_load_and_list(netns: str, tmp_path: Path) -> None:
    """Load the golden ruleset for real in the namespace, list it, then delete it."""
    f = tmp_path / "rules.nft"
    f.write_text(script(varied_cluster()))
    res = nft_in(netns, "-f", str(f))
    assert res.returncode == 0, res.stderr[-3000:]
    try:
        listed = nft_in(netns, "list", "table", "ip", "kube-proxy")
        assert listed.returncode == 0, listed.stderr
        assert "chain nat-prerouting" in listed.stdout
        assert "masquerade fully-random" in listed.stdout
        assert "numgen random mod 2 vmap" in listed.stdout
        # Loading the same script a second time with fresh=True replaces the table.
        rs = build_nftables_ruleset(overall_cluster(), overall_cluster().node(TEST_NODE),
                                    overall_cluster().kube_proxy)
        f.write_text(render_nft(rs, fresh=True))
        again = nft_in(netns, "-f", str(f))
        assert again.returncode == 0, again.stderr[-3000:]
        listed = nft_in(netns, "list", "table", "ip", "kube-proxy")
        assert "172.30.0.46 . tcp . 80" in listed.stdout
        assert "172.30.0.13" not in listed.stdout  # the varied cluster's rules are gone
    finally:
        nft_in(netns, "delete", "table", "ip", "kube-proxy")


def test_nft_check_rejects_a_broken_script(netns: str, tmp_path: Path) -> None:
    """The check can fail: a rule jumping to a chain that does not exist is refused."""
    text = script(overall_cluster()) + "add rule ip kube-proxy services jump no-such-chain\n"
    f = tmp_path / "rules.nft"
    f.write_text(text)
    assert nft_in(netns, "-c", "-f", str(f)).returncode != 0


def _normalized(table: Any) -> tuple[Any, Any]:
    """Chains and sets of a table with what the kernel normalizes taken out: an anonymous set
    of one element comes back without braces, and a set's members come back sorted."""
    from sourceip.netfilter.ir import Addr

    def norm_match(m: Any) -> Any:
        if isinstance(m, Addr):
            return ("Addr", m.field, m.negate, frozenset(m.nets))
        return m

    chains = {
        c.name: (c.hook, c.type, c.priority,
                 tuple((tuple(norm_match(m) for m in r.matches), r.actions, r.comment)
                       for r in c.rules))
        for c in table.chains
    }
    sets = {s.name: (s.key_types, s.value_type, s.flags, s.timeout, s.comment,
                     frozenset(s.elements)) for s in table.sets}
    return chains, sets


def test_kernel_listing_parses_back_to_our_ir(netns: str, tmp_path: Path) -> None:
    """Load, list with ``nft -j``, parse with ``netfilter.parse_nft``: the kernel holds exactly
    the chains, rules, sets and elements we built (so the tracer may walk either)."""
    from sourceip.netfilter import parse_nft
    cluster = varied_cluster()
    rs = build_nftables_ruleset(cluster, cluster.node(TEST_NODE), cluster.kube_proxy)
    f = tmp_path / "rules.nft"
    f.write_text(render_nft(rs))
    assert nft_in(netns, "-f", str(f)).returncode == 0
    try:
        listed = nft_in(netns, "-j", "list", "table", "ip", "kube-proxy")
        assert listed.returncode == 0, listed.stderr
        parsed = parse_nft.parse_nft_json(listed.stdout)
    finally:
        nft_in(netns, "delete", "table", "ip", "kube-proxy")
    ours_chains, ours_sets = _normalized(rs.tables[0])
    kernel_chains, kernel_sets = _normalized(parsed.tables[0])
    assert set(ours_chains) == set(kernel_chains)
    for name, want in ours_chains.items():
        assert kernel_chains[name] == want, name
    assert set(ours_sets) == set(kernel_sets)
    for name, want in ours_sets.items():
        got = kernel_sets[name]
        # nft's JSON output (1.0.6) leaves out the "dynamic" flag that the text listing shows,
        # and may order flags its own way; compare the rest.
        assert got[:2] == want[:2], name
        assert set(got[2]) - {"dynamic"} == set(want[2]) - {"dynamic"}, name
        assert got[3:] == want[3:], name
