"""A real ipvs-mode node's dumps traced (tests/ipvs/data/README.md names the source), the
ipvsadm / ipset readers, and bad input: a virtual server without real servers, an ipset the
rules use but no dump gives, unreadable lines — outcomes or located errors, never a traceback."""

from __future__ import annotations

import ipaddress
from fractions import Fraction
from pathlib import Path

import pytest

from sourceip.cluster import Cluster, KubeProxyConfig, Node
from sourceip.dataplane.tracer import Tracer
from sourceip.errors import RulesetParseError
from sourceip.netfilter.ipset_save import parse_ipsets, render_ipset_save
from sourceip.netfilter.parse_iptables import parse_iptables_save
from sourceip.netfilter.parse_ipvsadm import parse_ipvsadm, render_ipvsadm_save

DATA = Path(__file__).parent / "data"
ip = ipaddress.ip_address
net = ipaddress.ip_network
REALS = {"192.167.1.123:80", "192.167.2.206:80", "192.167.2.231:80"}


def _cluster() -> Cluster:
    nodes = (Node(name="node1", internal_ips=(ip("172.35.0.100"),),
                  pod_cidrs=(net("192.167.1.0/24"),)),
             Node(name="node2", internal_ips=(ip("172.35.0.101"),),
                  pod_cidrs=(net("192.167.2.0/24"),)))
    return Cluster(nodes=nodes, kube_proxy=KubeProxyConfig(
        mode="ipvs", cluster_cidrs=(net("192.167.0.0/16"),)))


def _tracer(*, with_ipsets: bool = True, ipvs_text: str | None = None) -> Tracer:
    stem = DATA / "ssup2-ipvs-node"
    rs = parse_iptables_save(Path(f"{stem}.iptables-save").read_text(), source="ipt")
    table = parse_ipvsadm(ipvs_text if ipvs_text is not None else
                          Path(f"{stem}.ipvsadm-Ln").read_text(), source="ipvsadm")
    sets = parse_ipsets(Path(f"{stem}.ipset-list").read_text(), source="ipset")
    return Tracer(_cluster(), rulesets={"node1": rs}, ipvs={"node1": table},
                  ipsets={"node1": sets} if with_ipsets else None)


def _ends(trace: object) -> list[tuple[Fraction, str, str | None, bool, str | None]]:
    return sorted((o.probability, o.disposition, o.endpoint, o.masquerade,  # type: ignore[attr-defined]
                   str(o.seen_source) if o.seen_source else None)
                  for o in trace.outcomes)  # type: ignore[attr-defined]


def test_readers() -> None:
    table = parse_ipvsadm((DATA / "ssup2-ipvs-node.ipvsadm-Ln").read_text())
    assert len(table.virtual_servers) == 6
    assert all(len(vs.real_servers) == 3 for vs in table.virtual_servers)
    assert parse_ipvsadm(render_ipvsadm_save(table)) == table  # -Ln -> -Sn -> same table
    sets = parse_ipsets((DATA / "ssup2-ipvs-node.ipset-list").read_text())
    assert set(sets) == {"KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-NODE-PORT-TCP",
                         "KUBE-LOAD-BALANCER"}
    assert len(sets["KUBE-CLUSTER-IP"].members) == 3


def test_pod_to_cluster_ip_reaches_the_three_real_servers_unmasqueraded() -> None:
    t = _tracer().trace_node("node1", "192.167.1.50", "10.103.1.234", 80)
    assert {o.endpoint for o in t.outcomes} == REALS
    for o in t.outcomes:
        assert (o.probability, o.disposition, o.masquerade, o.certain) == (
            Fraction(1, 3), "delivered", False, True)
        assert str(o.seen_source) == "192.167.1.50"


def test_off_cluster_source_to_cluster_ip_is_masqueraded() -> None:
    # `! -s 192.167.0.0/16 -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`
    t = _tracer().trace_flow(Tracer(_cluster()).start("external=198.51.100.7"),
                             ip("10.103.1.234"), 80, via="node1")
    assert {o.endpoint for o in t.outcomes} == REALS
    assert all(o.masquerade and o.certain for o in t.outcomes)


def test_node_port_is_masqueraded_and_hairpin_too() -> None:
    tr = _tracer()
    t = tr.trace_node("node1", "198.51.100.7", "172.35.0.100", 30915)
    assert {o.endpoint for o in t.outcomes} == REALS
    assert all(o.masquerade for o in t.outcomes)
    # an endpoint to its own Service: only the branch back to itself is masqueraded
    # (KUBE-LOOP-BACK dst,dst,src)
    hp = tr.trace_node("node1", "192.167.1.123", "10.103.1.234", 80)
    masq = {o.endpoint: o.masquerade for o in hp.outcomes}
    assert masq == {"192.167.1.123:80": True, "192.167.2.206:80": False,
                    "192.167.2.231:80": False}


def test_the_trace_text_names_the_virtual_server() -> None:
    t = _tracer().trace_node("node1", "192.167.1.50", "10.103.1.234", 80)
    text = str(t)
    assert "ipvs" in text and "10.103.1.234:80" in text


def test_virtual_server_without_real_servers_is_rejected_with_a_step() -> None:
    text = "-A -t 10.103.1.234:80 -s rr\n"
    t = _tracer(ipvs_text=text).trace_node("node1", "192.167.1.50", "10.103.1.234", 80)
    (o,) = t.outcomes
    assert o.disposition == "rejected"
    assert o.drop_step is not None and "has no real servers" in o.drop_step.kind


def test_ipset_not_dumped_makes_the_masquerade_uncertain() -> None:
    t = _tracer(with_ipsets=False).trace_node("node1", "198.51.100.7", "10.103.1.234", 80)
    assert {o.endpoint for o in t.outcomes} == REALS
    assert not any(o.certain for o in t.outcomes)
    assert {o.masquerade for o in t.outcomes} == {True, False}
    assert any("KUBE-CLUSTER-IP" in d for o in t.outcomes for d in o.depends_on)


@pytest.mark.parametrize(("text", "line", "what"), [
    ("TCP  10.0.0.1:80 rr\n  -> kube-dns:53   Masq 1 0 0\n", 2, "not a numeric address"),
    ("-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 1\n", 1, "without -A"),
    ("-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n", 2, "defined twice"),
    ("hello\n", 1, "not an ipvsadm"),
    ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r [fd00::1]:80 -m\n", 2, "IP family"),
    ("-A -t 10.0.0.1:99999 -s rr\n", 1, "0-65535"),
])
def test_ipvsadm_errors_are_located(text: str, line: int, what: str) -> None:
    with pytest.raises(RulesetParseError) as exc:
        parse_ipvsadm(text, source="node.ipvs")
    assert exc.value.line == line and exc.value.file == "node.ipvs"
    assert what in str(exc.value)


@pytest.mark.parametrize(("text", "line"), [
    ("add KUBE-X 10.0.0.1\n", 1),
    ("create KUBE-X hash:ip,port family inet\nadd KUBE-X 10.0.0.1\n", 1),
    ("Members:\n10.0.0.1\n", 1),
])
def test_ipset_errors_are_located(text: str, line: int) -> None:
    with pytest.raises(RulesetParseError) as exc:
        parse_ipsets(text, source="node.ipset")
    assert exc.value.line == line


def test_ipset_save_round_trip() -> None:
    from sourceip.netfilter.ipset_save import SetSpec

    specs = [SetSpec("KUBE-CLUSTER-IP", "hash:ip,port", ("family", "inet"),
                     ("10.0.0.1,tcp:80",)),
             SetSpec("KUBE-NODE-PORT-TCP", "bitmap:port", ("range", "0-65535"), ("30080",))]
    sets = parse_ipsets(render_ipset_save(specs))
    assert sets == {s.name: s.ipset() for s in specs}


def test_ipvsadm_save_forms() -> None:
    text = ("-A -t 10.0.0.1:80 -s wrr -p 600\n-a -t 10.0.0.1:80 -r 10.1.1.1:8080 -m -w 3\n"
            "-A -u 10.0.0.10:53 -s rr\n-A --sctp-service 10.0.0.2:99 -s sh -b sh-port\n"
            "-A -f 7 -s rr\n")
    table = parse_ipvsadm(text)
    assert render_ipvsadm_save(table) == text
    vs = table.lookup("tcp", ip("10.0.0.1"), 80)
    assert vs is not None and vs.persistent == 600 and vs.real_servers[0].weight == 3
