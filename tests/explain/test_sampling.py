"""Sampling endpoint nodes (large clusters) must not change what explain says a pod sees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sourceip.explain import Explainer
from sourceip.sources import cluster_from_objects

ROOT = Path(__file__).resolve().parents[2]


def _generated_cluster():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_cluster", ROOT / "bench" / "gen_cluster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = mod.generate(nodes=40, services=25, pods=600, seed=7)
    items = doc["items"] if isinstance(doc, dict) else doc
    return cluster_from_objects(items)


def _verdicts(results):  # type: ignore[no-untyped-def]
    out = []
    for e in results:
        for p in e.paths:
            kinds = sorted({o.disposition for o in p.trace.outcomes})
            out.append((e.service, e.port, p.kind, p.title, p.real_client, tuple(p.seen), kinds))
    return out


def test_sampled_explain_gives_the_same_verdicts_as_exact() -> None:
    cluster = _generated_cluster()
    exact = Explainer(cluster).explain()
    sampled = Explainer(cluster, sample_nodes=2).explain()
    assert len(exact) > 10
    ex, sa = _verdicts(exact), _verdicts(sampled)
    assert len(ex) == len(sa)
    for a, b in zip(ex, sa, strict=True):
        # the set of addresses seen may shrink with fewer endpoints, never change in kind
        assert a[:5] == b[:5], (a, b)
        assert set(b[5]) <= set(a[5]), (a, b)
        assert a[6] == b[6], (a, b)
