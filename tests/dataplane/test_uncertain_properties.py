"""Properties of three-valued evaluation (issue 10, item 3), through the multi-node tracer.

For kube-proxy's rules of the design cluster (both modes, several settings) with rules whose
matches the evaluator cannot decide inserted anywhere on one node:

* the outcomes that assume every inserted rule does *not* match are exactly the outcomes of
  the ruleset without them (so adding such a rule never turns a certain outcome into a
  different certain outcome: every certain outcome is one of those);
* the outcomes that assume every inserted rule *matches* are exactly the outcomes of the
  ruleset where the undecidable match is dropped (the rule matches whenever the rest does);
* every uncertain outcome names an inserted rule in ``depends_on``.

And without undecidable rules the fork machinery is invisible: every outcome of every
packet-flow scenario and design-cluster path is certain.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sourceip.cluster import Cluster, Endpoint, Pod
from sourceip.dataplane.trace import Outcome, Trace
from sourceip.dataplane.tracer import Tracer
from sourceip.net.addr import parse_ip
from sourceip.netfilter.ir import (
    Accept,
    AddrType,
    Drop,
    Goto,
    Jump,
    MarkSet,
    Masquerade,
    Match,
    Proto,
    Return,
    Rule,
    Ruleset,
    SetLookup,
    UnknownMatch,
)

from .clusters import design_cluster
from .scenario_loader import load_scenarios

FLOWS = [
    ("pod/default/client1", "svc/default/web"), ("pod/default/client2", "svc/default/web"),
    ("pod/default/server", "svc/default/web"), ("node/node1", "svc/default/web"),
    ("node/node2", "svc/default/web"),
    ("external=192.168.100.2", "node/node1:30080"), ("external=192.168.100.2", "node/node2:30080"),
]

configs = st.fixed_dictionaries({
    "mode": st.sampled_from(["iptables", "nftables"]),
    "attach": st.sampled_from(["bridge", "routed"]),
    "etp": st.sampled_from(["Cluster", "Local"]),
    "masquerade_all": st.booleans(),
})

IPT_UNDECIDABLE: list[Match] = [
    UnknownMatch("-m physdev --physdev-is-bridged"),
    UnknownMatch("-m set --match-set weave-abc dst"),
    UnknownMatch('-m bpf --bytecode "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0"'),
    UnknownMatch("-m cgroup --path system.slice"),
    AddrType("dst", "BROADCAST"),
]
NFT_UNDECIDABLE: list[Match] = [
    UnknownMatch('{"match": {"op": "==", "left": {"socket": {"key": "transparent"}}, '
                 '"right": 1}}'),
    SetLookup(("ip saddr",), "no-such-set"),
    UnknownMatch('{"match": {"op": "==", "left": {"meta": {"key": "cgroup"}}, "right": 7}}'),
]


def two_endpoint_cluster(**cfg: Any) -> Cluster:
    """The design cluster with a second endpoint on node2 (probabilities of 1/2 to carry)."""
    c = design_cluster(**cfg)
    pod = Pod(namespace="default", name="server2", node_name="node2",
              ips=(parse_ip("10.244.2.10"),), labels={"app": "web"})
    es = c.endpoint_slices[0]
    es = dataclasses.replace(es, endpoints=(*es.endpoints, Endpoint(
        addresses=(parse_ip("10.244.2.10"),), node_name="node2", target_ref="server2")))
    return dataclasses.replace(c, pods=(*c.pods, pod), endpoint_slices=(es,))


def summary(outcomes: list[Outcome] | tuple[Outcome, ...]) -> Counter[tuple[Any, ...]]:
    return Counter((o.probability, o.disposition, o.endpoint, str(o.seen_source), o.masquerade,
                    o.reply_ok) for o in outcomes)


def world(trace: Trace, answer: bool) -> list[Outcome]:
    """The outcomes consistent with every undecided rule answering ``answer``."""
    return [o for o in trace.outcomes if all(a.matches is answer for a in o.assumptions)]


@st.composite
def insertions(draw: st.DrawFn, rs: Ruleset) -> list[tuple[int, str, int, Rule, Rule]]:
    """1-2 rules with an undecidable match: (table index, chain, position, the rule, the same
    rule without its undecidable match)."""
    out = []
    for _ in range(draw(st.integers(1, 2))):
        ti = draw(st.integers(0, len(rs.tables) - 1))
        table = rs.tables[ti]
        chain = draw(st.sampled_from([c for c in table.chains]))
        pos = draw(st.integers(0, len(chain.rules)))
        iptables = rs.backend == "iptables"
        undecidable = draw(st.sampled_from(IPT_UNDECIDABLE if iptables else NFT_UNDECIDABLE))
        extra: list[Match] = draw(st.sampled_from([[], [Proto("tcp")], [Proto("udp")]]))
        others = [c.name for c in table.chains if c.name != chain.name and c.hook is None]
        verdicts: list[Any] = [Accept(), Drop(), Return()]
        if others:
            verdicts += [Jump(draw(st.sampled_from(others))), Goto(draw(st.sampled_from(others)))]
        if iptables and table.name == "nat":
            verdicts = [Return(), Masquerade()] + ([Jump(others[0])] if others else [])
        actions: list[Any] = [] if iptables else draw(
            st.sampled_from([[], [MarkSet("or", 0x4000)]]))
        actions.append(draw(st.sampled_from(verdicts)))
        rule = Rule(matches=(*extra, undecidable), actions=tuple(actions))
        out.append((ti, chain.name, pos, rule, dataclasses.replace(rule, matches=tuple(extra))))
    return out


def apply(rs: Ruleset, edits: list[tuple[int, str, int, Rule, Rule]], which: int) -> Ruleset:
    """``rs`` with each edit's rule (``which`` 3) or its decidable part (4) inserted."""
    tables = list(rs.tables)
    for edit in edits:
        ti, name, pos = edit[0], edit[1], edit[2]
        rule = edit[which]
        t = tables[ti]
        chains = tuple(dataclasses.replace(c, rules=(*c.rules[:pos], rule, *c.rules[pos:]))
                       if c.name == name else c for c in t.chains)
        tables[ti] = dataclasses.replace(t, chains=chains)
    return dataclasses.replace(rs, tables=tuple(tables))


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.sampled_from(FLOWS), st.sampled_from(["node1", "node2"]), st.data())
def test_undecidable_rules_fork_into_the_two_exact_answers(cfg, flow, node, data) -> None:  # type: ignore[no-untyped-def]
    cluster = two_endpoint_cluster(**cfg)
    base = Tracer(cluster)
    rs = base.ruleset(node)
    edits = data.draw(insertions(rs))
    before = base.trace(*flow)
    assert before.certain
    forked = Tracer(cluster, rulesets={node: apply(rs, edits, 3)}).trace(*flow)
    matched = Tracer(cluster, rulesets={node: apply(rs, edits, 4)}).trace(*flow)
    event(f"uncertain outcomes: {min(sum(not o.certain for o in forked.outcomes), 3)}")
    story = f"\n--- before:\n{before}\n--- forked:\n{forked}"

    # every certain outcome after adding the rules was an outcome before
    certain = [o for o in forked.outcomes if o.certain]
    assert not summary(certain) - summary(before.outcomes), story
    # the "does not match" world is the ruleset without the rules, the "matches" world the
    # ruleset with them matching
    assert summary(world(forked, False)) == summary(before.outcomes), story
    assert summary(world(forked, True)) == summary(matched.outcomes), \
        f"{story}\n--- matched:\n{matched}"
    for answer in (False, True):
        assert sum(o.probability for o in world(forked, answer)) == 1
    for o in forked.outcomes:
        assert o.certain == (not o.depends_on) == (not o.assumptions)
        for a in o.assumptions:
            assert a.rule in o.depends_on
            assert any(str(e[3].matches[-1].text if isinstance(e[3].matches[-1], UnknownMatch)
                           else "") in " ".join(a.undecided) for e in edits)
    # outcomes are grouped: certain first, then per assumption
    flags = [o.certain for o in forked.outcomes]
    assert flags == sorted(flags, reverse=True)
    groups = forked.to_dict()["undecided"]
    for g in groups:
        assert g["if_matches"] or g["if_not"]


def test_without_undecidable_rules_everything_is_certain() -> None:
    """The 425 packet-flow cases (their results are checked by test_packet_flows.py) and the
    design cluster's paths: every outcome certain, nothing undecided."""
    n = 0
    for sc in load_scenarios():
        tracers: dict[Any, Tracer] = {}
        for case, flow in sc.flows:
            tr = tracers.setdefault((case.scenario, case.name), Tracer(case.cluster()))
            t = tr.trace_node(case.node, flow.src, flow.dst, flow.dport, flow.proto)
            assert t.certain and t.undecided() == [], t
            d = t.to_dict()
            assert all(o["certain"] is True and o["depends_on"] == [] for o in d["outcomes"])
            n += 1
    assert n >= 420
    for mode in ("iptables", "nftables"):
        tracer = Tracer(two_endpoint_cluster(mode=mode))
        for flow in FLOWS:
            assert tracer.trace(*flow).certain
