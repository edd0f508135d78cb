"""bench/gen_cluster.py makes a valid, deterministic cluster that the loader reads back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from sourceip.sources import load_cluster

ROOT = Path(__file__).resolve().parents[2]


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cluster", ROOT / "bench" / "gen_cluster.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_small_generated_cluster_loads_with_the_requested_sizes(tmp_path: Path) -> None:
    gen = _gen()
    out = tmp_path / "c.json"
    assert gen.main(["--nodes", "40", "--services", "120", "--pods", "2400", "-o", str(out)]) == 0
    c = load_cluster([str(out)])
    assert (len(c.nodes), len(c.pods), len(c.services)) == (40, 2400, 120)
    endpoints = [sum(len(s.endpoints) for s in c.slices_for(svc)) for svc in c.services]
    assert sum(endpoints) == 2400 and max(endpoints) == 250
    assert all(len(s.endpoints) <= 100 for s in c.endpoint_slices)
    types = {s.type for s in c.services}
    assert types == {"ClusterIP", "NodePort", "LoadBalancer"}
    assert {s.external_traffic_policy for s in c.services if s.type != "ClusterIP"} == {
        "Cluster", "Local"}
    for pod in c.pods:
        assert pod.ip in c.node(pod.node_name).pod_cidr()  # type: ignore[operator]
    assert not any("allocated" in n or "derived" in n for n in c.notes)


def test_deterministic_with_seed() -> None:
    gen = _gen()
    a = json.dumps(gen.generate(10, 20, 300, seed=7))
    assert a == json.dumps(gen.generate(10, 20, 300, seed=7))
    assert a != json.dumps(gen.generate(10, 20, 300, seed=8))
