"""An undecidable question is asked once per branch, and FORWARD sees the output interface.

Found on the weave and k3s dumps: weave-npc tests each namespace set twice around a ``MARK``
(``-m set X src -j WEAVE-NPC-EGRESS-ACCEPT`` then ``-m set X src -j RETURN``) and kube-router
jumps to a pod's chain twice (by address, then by address with ``-m physdev
--physdev-is-bridged``): the second rule asks what the first asked about the same packet, so it
takes the first answer instead of forking again into worlds that cannot exist. The same holds
for ``-i``/``-o`` on an interface whose real name is unknown (a dump's uplink), prefixes
compared as iptables does; a rule asking what an earlier one was assumed not to, does not
match; a jump to a chain that changes nothing is not forked on. The tracer gave FORWARD no
output interface (only POSTROUTING had one)."""

from __future__ import annotations

from sourceip.dataplane.devices import stand_in_ifaces
from sourceip.net.addr import parse_ip
from sourceip.net.packet import FiveTuple, Packet
from sourceip.netfilter.evaluate import Branch, Evaluator
from sourceip.netfilter.parse_iptables import parse_iptables_save

FWD = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
{rules}COMMIT
"""


def forward(rules: str, *, uplink_unknown: bool = True) -> list[Branch]:
    """FORWARD for a packet in and out by the stand-in uplink eth0 (its real name unknown)."""
    rs = parse_iptables_save(FWD.format(rules=rules), source="r")
    pkt = Packet(tuple=FiveTuple(proto="tcp", src=parse_ip("10.0.0.1"), sport=1,
                                 dst=parse_ip("10.0.0.2"), dport=80), iif="eth0", oif="eth0")
    ifaces = stand_in_ifaces(("eth0",)) if uplink_unknown else None
    return Evaluator(rs, ["192.0.2.1"], ifaces=ifaces).run_hook("forward", pkt)


def paths(got: list[Branch]) -> list[tuple[str, tuple[tuple[int, bool], ...]]]:
    """(verdict, ((line, assumed), ...)) per branch, sorted."""
    return sorted((b.disposition, tuple((int(a.rule.rsplit(":", 1)[-1].rstrip(")")), a.matches)
                                        for a in b.assumptions)) for b in got)


def test_an_unknown_interface_is_one_question_per_branch() -> None:
    """Line 5 `-i wt0` forks. Where it matched, line 6 (`-i wt0` again) holds and line 7
    (`-i ens5`) cannot; where it did not, line 6 cannot and line 7 is a new question. `-o`
    is another interface: line 8 forks on its own. A prefix as `xt_ifname` compares it:
    after `-i tun+` matched, `-i wt0` cannot but `-i tun7` may; after it did not, `-i tun7`
    cannot."""
    rules = ("-A FORWARD -i wt0 -j MARK --set-xmark 0x1/0x1\n"
             "-A FORWARD -i wt0 -m mark --mark 0x1 -j ACCEPT\n"
             "-A FORWARD -i ens5 -j ACCEPT\n"
             "-A FORWARD -o wt0 -j DROP\n")
    assert paths(forward(rules)) == sorted([
        ("accept", ((5, True),)),
        ("accept", ((5, False), (7, True))),
        ("accept", ((5, False), (7, False), (8, False))),
        ("drop", ((5, False), (7, False), (8, True))),
    ])
    rules = ("-A FORWARD -i tun+ -j MARK --set-xmark 0x1/0x1\n"
             "-A FORWARD -i wt0 -j DROP\n"
             "-A FORWARD -i tun7 -j DROP\n")
    assert paths(forward(rules)) == sorted([
        ("drop", ((5, True), (7, True))),
        ("accept", ((5, True), (7, False))),
        ("drop", ((5, False), (6, True))),
        ("accept", ((5, False), (6, False))),
    ])
    # a known interface is compared by name: nothing forks
    assert paths(forward(rules, uplink_unknown=False)) == [("accept", ())]


def test_a_set_tested_twice_around_a_mark_is_one_question() -> None:
    """weave-npc's egress pattern: `-m set a src -j ACC` (ACC marks) then `-m set a src -j
    RETURN`: the MARK changes the packet's mark, not its addresses, so line 11 takes line
    10's answer. Set b is a new question."""
    rules = (":ACC - [0:0]\n:EG - [0:0]\n"
             "-A FORWARD -j EG\n-A FORWARD -m mark ! --mark 0x40000/0x40000 -j DROP\n"
             "-A ACC -j MARK --set-xmark 0x40000/0x40000\n"
             "-A EG -m set --match-set a src -j ACC\n"
             "-A EG -m set --match-set a src -j RETURN\n"
             "-A EG -m set --match-set b src -j ACC\n")
    assert paths(forward(rules, uplink_unknown=False)) == sorted([
        ("accept", ((10, True),)),             # in a: marked, line 11 returns (implied)
        ("accept", ((10, False), (12, True))),
        ("drop", ((10, False), (12, False))),  # in neither: unmarked, line 8 drops
    ])


def test_physdev_twins_are_one_question() -> None:
    """kube-router's twins: `-d POD -m physdev --physdev-is-bridged -j CHAIN` for the
    destination and `-s POD ... --physdev-is-bridged` for the source: whether the packet is
    bridged is one fact about it. Both twins match, or neither: two branches, not four."""
    rules = (":A - [0:0]\n:B - [0:0]\n"
             "-A FORWARD -d 10.0.0.2/32 -m physdev --physdev-is-bridged -j A\n"
             "-A FORWARD -s 10.0.0.1/32 -m physdev --physdev-is-bridged -j B\n"
             "-A A -j MARK --set-xmark 0x1/0x1\n"
             "-A B -m mark --mark 0x1 -j DROP\n")
    assert paths(forward(rules, uplink_unknown=False)) == [("accept", ((7, False),)),
                                                           ("drop", ((7, True),))]


def test_an_earlier_refusal_answers_a_rule_asking_the_same() -> None:
    """Docker's pattern: DOCKER-ISOLATION-STAGE-1 asks `-i X ! -o Y` (line 10); where that was
    assumed not to hold, FORWARD's `-i X ! -o Y -j ACCEPT` (line 8) cannot match either (one of
    the two fails), and where it held, line 8 does: one fork, not two."""
    rules = (":ISO - [0:0]\n:ISO2 - [0:0]\n"
             "-A FORWARD -j ISO\n"
             "-A FORWARD -i wt0 ! -o wt1 -j ACCEPT\n"
             "-A FORWARD -j DROP\n"
             "-A ISO -i wt0 ! -o wt1 -j ISO2\n"
             "-A ISO2 -j MARK --set-xmark 0x1/0x1\n")
    assert paths(forward(rules)) == [("accept", ((10, True),)), ("drop", ((10, False),))]


def test_a_jump_to_a_chain_that_changes_nothing_does_not_fork() -> None:
    """`-o wt0 -j DOCKER` with the chain empty, or holding only RETURNs and logging: matching
    or not, the walk comes back unchanged — no fork. A chain that marks is not such a
    chain."""
    for body in ("", "-A DOCKER -j RETURN\n", "-A DOCKER -j LOG\n-A DOCKER -j RETURN\n"):
        rules = ":DOCKER - [0:0]\n-A FORWARD -o wt0 -j DOCKER\n" + body
        assert paths(forward(rules)) == [("accept", ())], body
    rules = (":DOCKER - [0:0]\n-A FORWARD -o wt0 -j DOCKER\n"
             "-A DOCKER -j MARK --set-xmark 0x1/0x1\n")
    assert [d for d, _ in paths(forward(rules))] == ["accept", "accept"]


def test_forward_sees_the_route_s_output_interface() -> None:
    """`-o` in FORWARD: the route is chosen before the FORWARD hook (Linux ip_forward():
    NF_HOOK(NF_INET_FORWARD, ..., skb->dev, rt->dst.dev)), so the output interface is known
    there, not only in POSTROUTING. Through the tracer, a cluster node whose pod leaves by
    eth0: a `-o eth0 -j DROP` FORWARD rule drops it (it was skipped: no output interface)."""
    from sourceip.cluster import Cluster, KubeProxyConfig, Node
    from sourceip.dataplane.tracer import Tracer

    rs = parse_iptables_save(FWD.format(rules="-A FORWARD -o eth0 -j DROP\n"), source="r")
    cluster = Cluster(nodes=(Node(name="n", internal_ips=(parse_ip("192.0.2.1"),)),),
                      kube_proxy=KubeProxyConfig(mode="iptables"))
    t = Tracer(cluster, rulesets={"n": rs}).trace_node("n", "10.0.0.1", "8.8.8.8", 443)
    assert [(o.disposition, o.certain) for o in t.outcomes] == [("dropped", True)]
