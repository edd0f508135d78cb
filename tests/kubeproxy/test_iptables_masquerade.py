"""kubeproxy_semantics.md §3 ("When the masquerade mark is set"), one case per row, checked at
the rule level on the IR that build_iptables_ruleset produces for node n1."""

from __future__ import annotations

from iptables_helpers import CONFIGS, N1, N, feature_cluster

from sourceip.cluster import KubeProxyConfig
from sourceip.kubeproxy.iptables import build_iptables_ruleset
from sourceip.kubeproxy.names import port_proto_hash
from sourceip.netfilter.ir import (
    Addr,
    AddrType,
    Dnat,
    Drop,
    Jump,
    MarkSet,
    Port,
    Proto,
    Rule,
    Ruleset,
)

MASQ = Jump("KUBE-MARK-MASQ")
PODS = N("10.244.0.0/16")


def build(config: str | KubeProxyConfig = "cluster-cidr") -> Ruleset:
    cfg = CONFIGS[config] if isinstance(config, str) else config
    return build_iptables_ruleset(feature_cluster(), N1, cfg)


def rules(rs: Ruleset, chain: str, table: str = "nat") -> tuple[Rule, ...]:
    t = rs.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None, f"no chain {chain} in {table}"
    return c.rules


def chains(svc: str, port: str = "http") -> dict[str, str]:
    h = port_proto_hash(f"default/{svc}:{port}", "tcp")
    return {k: f"KUBE-{k}-{h}" for k in ("SVC", "SVL", "EXT", "FW")}


def masq_rules(rs: Ruleset, chain: str) -> list[Rule]:
    return [r for r in rules(rs, chain) if r.actions == (MASQ,)]


# ---- ClusterIP ----

def test_clusterip_pod_source_not_marked_node_source_marked() -> None:
    """Rows 1-2: the internal chain marks `! -s podCIDR` only (pods keep their IP; node and
    off-cluster sources are masqueraded)."""
    rs = build()
    svc = chains("web")["SVC"]
    (rule,) = masq_rules(rs, svc)
    assert Addr("src", (PODS,), negate=True) in rule.matches
    assert Proto("tcp") in rule.matches and Port("dport", (80,)) in rule.matches
    assert rules(rs, svc).index(rule) == 0  # before load balancing


def test_clusterip_masquerade_all_marks_everyone() -> None:
    rs = build("masquerade-all")
    (rule,) = masq_rules(rs, chains("web")["SVC"])
    assert not any(isinstance(m, Addr) and m.field == "src" for m in rule.matches)


def test_clusterip_noop_detector_never_marks() -> None:
    """Row 2, NoOp: no detector and no masqueradeAll -> no ClusterIP masquerade rule."""
    rs = build("noop")
    assert masq_rules(rs, chains("web")["SVC"]) == []
    assert any("NoOp" in n for n in rs.notes)


def test_clusterip_other_detectors() -> None:
    from sourceip.netfilter.ir import Iface

    (r,) = masq_rules(build("bridge"), chains("web")["SVC"])
    assert Iface("in", "cni0", negate=True) in r.matches
    (r,) = masq_rules(build("prefix"), chains("web")["SVC"])
    assert Iface("in", "veth+", negate=True) in r.matches
    (r,) = masq_rules(build("node-cidr"), chains("web")["SVC"])
    assert Addr("src", (N("10.244.1.0/24"),), negate=True) in r.matches


def test_itp_local_does_not_change_masquerading() -> None:
    """ITP=Local: the same `! -s podCIDR` mark, in the Local chain."""
    rs = build()
    (r,) = masq_rules(rs, chains("itp-local-ok")["SVL"])
    assert Addr("src", (PODS,), negate=True) in r.matches


# ---- hairpin ----

def test_hairpin_every_endpoint_chain_marks_its_own_ip() -> None:
    rs = build()
    nat = rs.table("nat")
    assert nat is not None
    seps = [c for c in nat.chains if c.name.startswith("KUBE-SEP-")]
    assert seps
    for c in seps:
        first, dnat = c.rules
        assert first.actions == (MASQ,)
        (src,) = first.matches
        assert isinstance(src, Addr) and src.field == "src"
        d = dnat.actions[-1]
        assert isinstance(d, Dnat) and d.addr == src.nets[0]


# ---- external destinations ----

def test_etp_cluster_marks_unconditionally_first() -> None:
    """Row 4: EXT chain with ETP Cluster: mark everyone (pods included), then the SVC chain."""
    rs = build()
    c = chains("np")
    first, second = rules(rs, c["EXT"])
    assert first.matches == () and first.actions == (MASQ,)
    assert second.actions == (Jump(c["SVC"]),)


def test_etp_local_short_circuits_pods_then_marks_local_sources() -> None:
    """Rows 5-7: pods go to the Cluster chain unmarked; addrtype LOCAL sources are marked and
    go to the Cluster chain; everyone else goes to the Local chain unmarked."""
    rs = build()
    c = chains("lb-local")
    pod, masq_local, route_local, rest = rules(rs, c["EXT"])
    assert pod.matches == (Addr("src", (PODS,)),) and pod.actions == (Jump(c["SVC"]),)
    assert masq_local.matches == (AddrType("src", "LOCAL"),) and masq_local.actions == (MASQ,)
    assert route_local.matches == (AddrType("src", "LOCAL"),)
    assert route_local.actions == (Jump(c["SVC"]),)
    assert rest.matches == () and rest.actions == (Jump(c["SVL"]),)
    # Only the local endpoint behind the Local chain.
    (lb,) = rules(rs, c["SVL"])
    assert lb.comment is not None and "10.244.1.8" in lb.comment


def test_etp_local_masquerade_all_still_keeps_client_ip() -> None:
    """masqueradeAll adds no mark to ETP=Local external traffic."""
    rs = build("masquerade-all")
    ext = rules(rs, chains("lb-local")["EXT"])
    assert [r.matches for r in ext if r.actions == (MASQ,)] == [(AddrType("src", "LOCAL"),)]


def test_etp_local_without_local_endpoints_drops_external_clients() -> None:
    """Row 7 with no local endpoint: no jump to a Local chain, filter DROPs the rest."""
    rs = build()
    c = chains("lb-local-none")
    ext = rules(rs, c["EXT"])
    assert len(ext) == 3 and all(r.actions[-1] != Jump(c["SVL"]) for r in ext)
    drops = [r for r in rules(rs, "KUBE-EXTERNAL-SERVICES", "filter")
             if r.comment == "default/lb-local-none:http has no local endpoints"]
    assert {type(r.actions[-1]) for r in drops} == {Drop}
    assert len(drops) == 2  # the LB IP and the nodePort


def test_etp_local_noop_detector_has_no_pod_short_circuit() -> None:
    """Row 8: with the NoOp detector pods are not short-circuited (local endpoints only)."""
    rs = build("noop")
    c = chains("lb-local")
    ext = rules(rs, c["EXT"])
    assert len(ext) == 3
    assert not any(isinstance(m, Addr) for r in ext for m in r.matches)
    assert ext[-1].actions == (Jump(c["SVL"]),)


def test_source_ranges_node_ip_allows_lb_ip() -> None:
    """loadBalancerSourceRanges: one `-s range` per range, the LB IP itself when a range holds
    the node IP, then a comment-only rule; KUBE-PROXY-FIREWALL drops the rest."""
    rs = build()
    c = chains("lb-ranges", "https")
    fw = rules(rs, c["FW"])
    assert [r.matches for r in fw[:-1]] == [
        (Addr("src", (N("203.0.113.0/24"),)),),
        (Addr("src", (N("10.0.0.0/16"),)),),
        (Addr("src", (N("192.0.2.12/32").network_address,)),),
    ]
    assert all(r.actions == (Jump(c["EXT"]),) for r in fw[:-1])
    assert fw[-1].actions == () and fw[-1].matches == ()
    (drop,) = rules(rs, "KUBE-PROXY-FIREWALL", "filter")
    assert drop.actions == (Drop(),)


def test_postrouting_masquerades_marked_packets_once() -> None:
    rs = build("tcp-be-liberal")  # masqueradeBit 5
    ret, xor, masq = rules(rs, "KUBE-POSTROUTING")
    assert ret.matches[0].value == 0x20 and ret.matches[0].negate  # type: ignore[union-attr]
    assert xor.actions == (MarkSet("xor", 0x20),)
    assert rules(rs, "KUBE-MARK-MASQ")[0].actions == (MarkSet("or", 0x20),)
    assert masq.actions[0].random_fully  # type: ignore[union-attr]
