"""What an uncertain trace says: ``str(trace)``, the text report, JSON and explain's verdict
(issue 10, item 3)."""

from __future__ import annotations

import dataclasses
import json

from sourceip.dataplane.tracer import Tracer
from sourceip.explain.engine import Explainer
from sourceip.netfilter.ipset import IPSet
from sourceip.netfilter.ir import Drop, Rule, Ruleset, UnknownMatch
from sourceip.report.trace_text import render_trace

from .clusters import design_cluster

RULE = "-A FORWARD -m set --match-set weave-abc dst -j DROP"


def with_weave_rule(rs: Ruleset) -> Ruleset:
    """node1's rules with a weave-npc style ``-m set`` DROP first in filter FORWARD."""
    rule = Rule(matches=(UnknownMatch("-m set --match-set weave-abc dst"),), actions=(Drop(),))
    tables = tuple(
        dataclasses.replace(t, chains=tuple(
            dataclasses.replace(c, rules=(rule, *c.rules)) if c.name == "FORWARD" else c
            for c in t.chains)) if t.name == "filter" else t
        for t in rs.tables)
    return dataclasses.replace(rs, tables=tables)


def tracer(**kw: object) -> Tracer:
    cluster = design_cluster()
    rs = with_weave_rule(Tracer(cluster).ruleset("node1"))
    return Tracer(cluster, rulesets={"node1": rs}, **kw)  # type: ignore[arg-type]


def test_str_text_and_json_say_uncertain() -> None:
    tr = tracer().trace("pod/default/client2", "svc/default/web")
    assert not tr.certain
    assert [(o.certain, o.disposition) for o in tr.outcomes] == [
        (False, "dropped"), (False, "delivered")]
    text = str(tr)
    assert f"outcome 1 (100%): uncertain: depends on {RULE} matching; if so dropped" in text
    assert (f"outcome 2 (100%): uncertain: depends on {RULE} not matching; if so delivered to "
            "pod/default/server (10.244.1.10:8080), seen source 10.244.2.20") in text
    story = " ".join(render_trace(tr).split())  # lines wrap at the terminal's width
    assert f"outcome 1 (100%): uncertain: depends on {RULE} matching; if so DROPPED" in story
    d = json.loads(json.dumps(tr.to_dict()))
    o1, o2 = d["outcomes"]
    assert (o1["certain"], o1["depends_on"]) == (False, [RULE])
    assert o1["assumptions"] == [{"rule": RULE, "matches": True,
                                  "undecided": ["-m set --match-set weave-abc dst"]}]
    assert o2["assumptions"][0]["matches"] is False
    assert d["undecided"] == [{"rule": RULE, "undecided": ["-m set --match-set weave-abc dst"],
                               "if_matches": [0], "if_not": [1]}]


def test_known_set_makes_it_certain_again() -> None:
    hit = IPSet.from_text("weave-abc", "hash:ip", ["10.244.1.10"])
    miss = IPSet.from_text("weave-abc", "hash:ip", ["10.244.1.99"])
    for s, disp in ((hit, "dropped"), (miss, "delivered")):
        tr = tracer(ipsets={"node1": {"weave-abc": s}}).trace("pod/default/client2",
                                                             "svc/default/web")
        assert tr.certain and [o.disposition for o in tr.outcomes] == [disp]
        assert "uncertain" not in str(tr)


def test_explain_gives_no_yes_or_no_for_an_uncertain_path() -> None:
    t = tracer()
    tr = t.trace("pod/default/client2", "svc/default/web")
    ex = Explainer(t.cluster)
    path = ex._path("pod-other-node", "pod on node2", t.start("pod/default/client2"),
                    "10.96.0.10:80", ["node2"], tr)
    assert path.real_client is None
    assert path.summary == f"uncertain: depends on {RULE}"
    certain = t.trace("node/node1", "svc/default/web")  # never forwarded by node1
    assert certain.certain
    assert ex._path("node", "node1 itself", t.start("node/node1"), "10.96.0.10:80",
                    ["node1"], certain).real_client is True
