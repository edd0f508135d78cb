"""Golden test: our nftables ruleset for the inputs of kube-proxy's TestOverallNFTablesRules
equals upstream's expected transaction, compared as upstream's assertNFTablesTransactionEqual
does (sorted lines; blank lines and comments ignored)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from test_nftables_fixtures import TEST_NODE, overall_cluster

from sourceip.kubeproxy.nftables import build_nftables_ruleset
from sourceip.netfilter import render
from sourceip.netfilter.render_nft import render_nft

GOLDEN = Path(__file__).parent / "golden"


def golden_lines(name: str) -> list[str]:
    """The meaningful lines of a golden file (no blanks, no ``#`` comments)."""
    out = []
    for line in (GOLDEN / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def script_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def overall_script() -> str:
    cluster = overall_cluster()
    rs = build_nftables_ruleset(cluster, cluster.node(TEST_NODE), cluster.kube_proxy)
    return render_nft(rs)


def test_overall_matches_upstream_line_for_line() -> None:
    want = Counter(golden_lines("nftables_overall.txt"))
    got = Counter(script_lines(overall_script()))
    missing = sorted((want - got).elements())
    extra = sorted((got - want).elements())
    assert not missing and not extra, (
        "missing (in upstream, not ours):\n  " + "\n  ".join(missing)
        + "\nextra (ours, not upstream):\n  " + "\n  ".join(extra)
    )


def test_overall_has_no_duplicate_lines() -> None:
    lines = script_lines(overall_script())
    assert len(lines) == len(set(lines))


def test_render_dispatch_is_render_nft() -> None:
    cluster = overall_cluster()
    rs = build_nftables_ruleset(cluster, cluster.node(TEST_NODE), cluster.kube_proxy)
    assert render(rs) == render_nft(rs)


def test_golden_is_sensitive_to_a_changed_service() -> None:
    """The comparison can fail: one changed ClusterIP is reported."""
    from dataclasses import replace

    cluster = overall_cluster()
    svcs = list(cluster.services)
    svcs[0] = replace(svcs[0], cluster_ips=(svcs[1].cluster_ips[0].__class__("172.30.0.99"),))
    changed = cluster.with_(services=tuple(svcs))
    rs = build_nftables_ruleset(changed, changed.node(TEST_NODE), changed.kube_proxy)
    got = Counter(script_lines(render_nft(rs)))
    want = Counter(golden_lines("nftables_overall.txt"))
    assert want - got and got - want


# ----------------------------------------------------------------------------- further dumps

def _check(cluster_name: str, cluster: object, golden: str) -> None:
    from sourceip.cluster import Cluster

    assert isinstance(cluster, Cluster)
    rs = build_nftables_ruleset(cluster, cluster.node(TEST_NODE), cluster.kube_proxy)
    want = Counter(golden_lines("nftables_baserules.txt") + golden_lines(golden))
    got = Counter(script_lines(render_nft(rs)))
    missing = sorted((want - got).elements())
    extra = sorted((got - want).elements())
    assert not missing and not extra, (
        f"{cluster_name}: missing:\n  " + "\n  ".join(missing)
        + "\nextra:\n  " + "\n  ".join(extra)
    )


def test_sync_proxy_rules_startup_state() -> None:
    from test_nftables_fixtures import ep, eps, fake_cluster, svc

    cluster = fake_cluster(
        [svc("ns1", "svc1", "172.30.0.41"),
         svc("ns2", "svc2", "172.30.0.42", port=8080, port_name="p8080"),
         svc("ns3", "svc3", "172.30.0.43")],
        [eps("ns1", "svc1", ep("10.0.1.1"), ep("10.0.1.2")),
         eps("ns2", "svc2", ep("10.0.2.1"), port=8080, port_name="p8080")],
    )
    _check("TestSyncProxyRulesStartup", cluster, "nftables_startup.txt")


def test_sync_proxy_rules_repeated_state() -> None:
    from test_nftables_fixtures import ep, eps, fake_cluster, svc

    cluster = fake_cluster(
        [svc("ns1", "svc1", "172.30.0.41"), svc("ns3", "svc3", "172.30.0.43"),
         svc("ns4", "svc4", "172.30.0.44")],
        [eps("ns1", "svc1", ep("10.0.1.1")),
         eps("ns3", "svc3", ep("10.0.3.2"), ep("10.0.3.3")),
         eps("ns4", "svc4", ep("10.0.4.1"))],
    )
    _check("TestSyncProxyRulesRepeated", cluster, "nftables_repeated.txt")


def test_bad_ips_state() -> None:
    import ipaddress

    from test_nftables_fixtures import ep, eps, fake_cluster, svc

    cluster = fake_cluster(
        [svc("ns1", "svc1", "172.30.0.41", type="LoadBalancer", node_port=3001,
             lb=("1.2.3.4",), external_ips=(ipaddress.ip_address("192.168.99.22"),),
             lb_source_ranges=(ipaddress.ip_network("203.0.113.0/25"),))],
        [eps("ns1", "svc1", ep("10.180.0.1"))],
    )
    _check("TestBadIPs", cluster, "nftables_badips.txt")


def test_fast_endpoint_chain_name_equals_names_module() -> None:
    """The builder's faster endpoint-name hash gives names.py's text, IPv6 and truncation
    included (cases from upstream's Test_servicePortEndpointChainNameBase)."""
    import ipaddress

    from sourceip.cluster import ProxyEndpoint
    from sourceip.kubeproxy.names import nft_endpoint_chain_name_base
    from sourceip.kubeproxy.nftables import _endpoint_chain_name_base

    long_ns = "very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx"
    long_name = "very-long-service-name-why-would-you-even-do-this-i-mean-really"
    long_port = "port-443-providing-the-hypertext-transmission-protocol-with-tls"
    cases: list[tuple[str, str, str, str, str, int, str | None]] = [
        ("testing", "service", "tcp", "http", "10.180.0.1", 80,
         "JO2XBXZR-testing/service/tcp/http__10.180.0.1/80"),
        (long_ns, long_name, "sctp", long_port, "1234:5678:9abc:def0::abc:1234", 443,
         f"5YS7AFEA-{long_ns}/{long_name}/sctp/{long_port}__1234.5678.9abc.def0..abc.1234/443"),
        # Truncated to 240 characters; upstream's own truncation cases write a single zero
        # group as "::", which neither Go's nor Python's formatter produces, so this one is
        # checked against names.py only.
        (long_ns, long_name, "sctp", long_port, "1234:5678:9abc::abcd:1234:8765", 443, None),
    ]
    for ns, name, proto, port_name, addr, port, want in cases:
        ep = ProxyEndpoint(ip=ipaddress.ip_address(addr), port=port, ready=True, serving=True,
                           terminating=False, node_name="")
        ours = _endpoint_chain_name_base(ns, name, proto, port_name, ep)
        assert ours == nft_endpoint_chain_name_base(ns, name, proto, port_name, str(ep))
        if want is not None:
            assert ours == want
        else:
            assert len(ours) == 240 and ours.endswith("...")
