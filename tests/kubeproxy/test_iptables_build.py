"""build_iptables_ruleset: the parts of syncProxyRules that the golden dump does not cover."""

from __future__ import annotations

import pytest
from iptables_helpers import CONFIGS, N1, A, N, ep, feature_cluster, per_chain, slice_

from sourceip.cluster import Cluster, KubeProxyConfig, Service, ServicePort
from sourceip.kubeproxy import build_ruleset
from sourceip.kubeproxy.iptables import (
    LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
    build_iptables_ruleset,
    probability,
)
from sourceip.netfilter.render_iptables import render_iptables


def text(config: str = "cluster-cidr", family: int = 4) -> dict[str, dict[str, list[str]]]:
    rs = build_iptables_ruleset(feature_cluster(), N1, CONFIGS[config], family=family)
    return per_chain(render_iptables(rs), drop_builtin=False)


def grep(lines: list[str], needle: str) -> list[str]:
    return [line for line in lines if needle in line]


def test_dispatch_through_build_ruleset() -> None:
    rs = build_ruleset(feature_cluster(), "n1", CONFIGS["cluster-cidr"])
    assert rs.backend == "iptables"
    assert [(t.name, t.family) for t in rs.tables] == [("filter", "ip"), ("nat", "ip")]
    rs6 = build_ruleset(feature_cluster(), "n1", CONFIGS["cluster-cidr"], family=6)
    assert [t.family for t in rs6.tables] == ["ip6", "ip6"]


def test_unproxied_services_get_no_rules() -> None:
    nat = text()["nat"]
    all_rules = "\n".join(r for rs in nat.values() for r in rs)
    for name in ("headless", "extname", "v6only"):
        assert f"default/{name}:" not in all_rules


def test_family_filtering_and_notes() -> None:
    rs = build_iptables_ruleset(feature_cluster(), N1, CONFIGS["cluster-cidr"])
    assert any("no IPv4 clusterIP" in n for n in rs.notes)
    v6 = text(family=6)["nat"]["KUBE-SERVICES"]
    assert grep(v6, "-d fd00:96::30 --dport 80") and grep(v6, "-d fd00:96::31")
    assert not grep(v6, "10.96.")
    # IPv6: localhost NodePorts never work, so ::1 is excluded from the nodeports tail rule.
    assert v6[-1].endswith("-m addrtype --dst-type LOCAL ! -d ::1 -j KUBE-NODEPORTS")
    assert text(family=6)["filter"]["KUBE-FIREWALL"] == []


def test_proxy_ipmode_lb_ip_is_not_programmed() -> None:
    t = text()
    assert not grep(t["nat"]["KUBE-SERVICES"], "192.0.2.13")
    assert grep(t["nat"]["KUBE-NODEPORTS"], "--dport 30084")


def test_no_endpoints_reject_everywhere() -> None:
    f = text()["filter"]
    svc = grep(f["KUBE-SERVICES"], "default/empty:http has no endpoints")
    ext = grep(f["KUBE-EXTERNAL-SERVICES"], "default/empty:http has no endpoints")
    assert len(svc) == 1 and svc[0].endswith("-j REJECT")
    assert len(ext) == 2 and all(r.endswith("-j REJECT") for r in ext)
    assert not grep(text()["nat"]["KUBE-NODEPORTS"], "30083")


def test_itp_local_without_local_endpoints_drops_clusterip() -> None:
    f = text()["filter"]["KUBE-SERVICES"]
    (rule,) = grep(f, "default/itp-local:http")
    assert "has no local endpoints" in rule and rule.endswith("-d 10.96.0.16 --dport 80 -j DROP")


def test_terminating_fallback() -> None:
    """No ready endpoint: the serving+terminating one is used, the not-serving one never."""
    nat = text()["nat"]
    svc = [c for c in nat if c.startswith("KUBE-SVC-") and grep(nat[c], "default/term:http ->")]
    (chain,) = svc
    assert grep(nat[chain], "10.244.1.14:8080") and not grep(nat[chain], "10.244.2.14")


def test_health_check_node_port_only_for_lb_etp_local() -> None:
    hc = text()["filter"]["KUBE-NODEPORTS"]
    assert [r.split("--dport ")[1] for r in hc] == ["32001 -j ACCEPT", "32000 -j ACCEPT"]


def test_localhost_nodeports_off() -> None:
    t = text("no-localhost-nodeports")
    assert t["nat"]["KUBE-SERVICES"][-1].endswith(
        "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"
    )
    assert not grep(t["nat"]["KUBE-NODEPORTS"], "127.0.0.0/8")
    assert t["filter"]["KUBE-FIREWALL"] == []


def test_node_port_addresses_cidrs() -> None:
    tail = grep(text("nodeport-addresses")["nat"]["KUBE-SERVICES"], "nodeports; NOTE")
    assert [r.split(" -d ")[1] for r in tail] == ["127.0.0.1 -j KUBE-NODEPORTS",
                                                 "10.0.0.11 -j KUBE-NODEPORTS"]
    # 127.0.0.1/32 is listed, so localhost NodePorts stay on.
    assert grep(text("nodeport-addresses")["nat"]["KUBE-NODEPORTS"], "-d 127.0.0.0/8")


def test_node_port_addresses_primary_disables_localhost() -> None:
    t = text("nodeport-primary")
    tail = grep(t["nat"]["KUBE-SERVICES"], "nodeports; NOTE")
    assert tail == [
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must '
        'be the last rule in this chain" -d 10.0.0.11 -j KUBE-NODEPORTS'
    ]
    assert not grep(t["nat"]["KUBE-NODEPORTS"], "127.0.0.0/8")
    assert t["filter"]["KUBE-FIREWALL"] == []


def test_loopback_in_node_port_addresses_with_localhost_off_is_skipped() -> None:
    cfg = KubeProxyConfig(cluster_cidrs=(N("10.244.0.0/16"),), localhost_node_ports=False,
                          node_port_addresses=("127.0.0.0/8", "10.0.0.0/8"))
    rs = build_iptables_ruleset(feature_cluster(), N1, cfg)
    tail = grep(per_chain(render_iptables(rs))["nat"]["KUBE-SERVICES"], "nodeports; NOTE")
    assert len(tail) == 1 and "-d 10.0.0.11" in tail[0]
    assert any("127.0.0.1" in n for n in rs.notes)


def test_tcp_be_liberal_drops_invalid_rule() -> None:
    assert not grep(text("tcp-be-liberal")["filter"]["KUBE-FORWARD"], "INVALID")
    assert grep(text()["filter"]["KUBE-FORWARD"], "--ctstate INVALID")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 250])
def test_probability_format(n: int) -> None:
    assert probability(n) == f"{1 / n:.10f}"
    assert probability(3) == "0.3333333333"


def _many(n: int, *, port_name: str = "p") -> Cluster:
    svc = Service(namespace="ns", name="big", cluster_ips=(A("172.30.0.1"),),
                  ports=(ServicePort(port=80, name=port_name),))
    eps = [ep(f"10.1.{i // 250}.{i % 250 + 1}") for i in range(n)]
    return Cluster(nodes=(N1,), services=(svc,),
                   endpoint_slices=(slice_("ns", "big", eps, port_name=port_name),))


def test_load_balancing_probabilities_and_order() -> None:
    rs = build_iptables_ruleset(_many(3), N1, CONFIGS["cluster-cidr"])
    nat = per_chain(render_iptables(rs))["nat"]
    (svc,) = [c for c in nat if c.startswith("KUBE-SVC-")]
    lb = nat[svc][1:]
    assert [r.split("-> ")[1].split('"')[0] for r in lb] == [
        "10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80"]
    assert "--probability 0.3333333333" in lb[0] and "--probability 0.5000000000" in lb[1]
    assert "statistic" not in lb[2]


def test_endpoints_sorted_as_strings() -> None:
    rs = build_iptables_ruleset(_many(12), N1, CONFIGS["cluster-cidr"])
    nat = per_chain(render_iptables(rs))["nat"]
    (svc,) = [c for c in nat if c.startswith("KUBE-SVC-")]
    order = [r.split("-> ")[1].split('"')[0] for r in nat[svc][1:]]
    assert order == sorted(order) and order[:3] == ["10.1.0.10:80", "10.1.0.11:80",
                                                    "10.1.0.12:80"]


def test_large_cluster_mode_drops_endpoint_comments() -> None:
    n = LARGE_CLUSTER_ENDPOINTS_THRESHOLD + 1
    rs = build_iptables_ruleset(_many(n), N1, CONFIGS["cluster-cidr"])
    nat = per_chain(render_iptables(rs))["nat"]
    seps = [c for c in nat if c.startswith("KUBE-SEP-")]
    assert len(seps) == n
    assert all("comment" not in r for c in seps for r in nat[c])
    (svc,) = [c for c in nat if c.startswith("KUBE-SVC-")]
    assert "cluster IP" in nat[svc][0] and all("comment" not in r for r in nat[svc][1:])
    assert any("large cluster mode" in note for note in rs.notes)


def test_unnamed_port_uses_bare_service_name() -> None:
    rs = build_iptables_ruleset(_many(1, port_name=""), N1, CONFIGS["cluster-cidr"])
    nat = per_chain(render_iptables(rs))["nat"]
    assert grep(nat["KUBE-SERVICES"], '--comment "ns/big cluster IP"')


def test_every_jump_target_is_declared() -> None:
    for config in CONFIGS:
        t = text(config)
        for table in t.values():
            for lines in table.values():
                for line in lines:
                    if " -j KUBE-" in line:
                        target = line.split(" -j ")[1].split()[0]
                        assert target in table, (config, line)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_parse_of_render_gives_back_the_ruleset(config: str, family: int) -> None:
    """The iptables-save parser reads our text back into the very IR we built."""
    from sourceip.netfilter.parse_iptables import parse_iptables_save

    rs = build_iptables_ruleset(feature_cluster(), N1, CONFIGS[config], family=family)
    assert parse_iptables_save(render_iptables(rs), family=family).tables == rs.tables


def test_without_nfacct_counters() -> None:
    """No nfacct counters on the node: no counter on the INVALID drop, and no localhost-specific
    NodePort rule (proxier.nfAcctCounters gates it)."""
    rs = build_iptables_ruleset(feature_cluster(), N1, CONFIGS["cluster-cidr"], nfacct=False)
    t = per_chain(render_iptables(rs))
    invalid = "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    assert t["filter"]["KUBE-FORWARD"][0] == invalid
    assert not grep(t["nat"]["KUBE-NODEPORTS"], "127.0.0.0/8")
    assert grep(t["nat"]["KUBE-NODEPORTS"], "--dport 30080")
