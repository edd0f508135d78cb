"""explain with ingress paths (issue 8): the cost of 1,000 Ingress rules, as a ratio in one run.

A generated cluster (bench/gen_cluster.py) gets an ingress-nginx controller (pod, NodePort
Service, ConfigMap, IngressClass) and N Ingress objects, one rule each, routed to the first N
Services. explain of every Service is timed with the Ingresses and without them (the same
cluster otherwise), alternating, best of R rounds each.

Usage: python bench/bench_ingress.py [--nodes 100 --services 1000 --pods 4000 --ingresses 1000]
Target: with / without <= 1.5.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import time
from pathlib import Path
from typing import Any

from sourceip.explain import Explainer
from sourceip.sources import cluster_from_objects

HERE = Path(__file__).resolve().parent


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("gen_cluster", HERE / "gen_cluster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def controller_objects() -> list[dict[str, Any]]:
    """ingress-nginx on node-00000 (pod IP .250 of its pod CIDR), NodePort 32080."""
    labels = {"app.kubernetes.io/name": "ingress-nginx"}
    return [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "ingress-nginx-controller-0", "namespace": "ingress-nginx",
                      "labels": labels},
         "spec": {"nodeName": "node-00000", "containers": [{
             "name": "controller", "image": "registry.k8s.io/ingress-nginx/controller:v1.12.1",
             "args": ["/nginx-ingress-controller",
                      "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller"],
             "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}]}]},
         "status": {"phase": "Running", "podIP": "100.64.0.250",
                    "podIPs": [{"ip": "100.64.0.250"}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
         "spec": {"type": "NodePort", "selector": labels, "clusterIP": "10.96.250.250",
                  "ports": [{"name": "http", "port": 80, "targetPort": "http",
                             "nodePort": 32080, "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
         "data": {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "nginx",
                      "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "k8s.io/ingress-nginx"}},
    ]


def ingresses(services: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    for i, svc in enumerate(services[:n]):
        meta = svc["metadata"]
        out.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"ing-{i:05d}", "namespace": meta.get("namespace", "default")},
            "spec": {"rules": [{"host": f"app{i}.example.test", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": meta["name"], "port": {"number": 80}}}}]}}]}})
    return out


def _explain(items: list[dict[str, Any]]) -> tuple[float, int, int]:
    cluster = cluster_from_objects(items)
    gc.collect()
    t0 = time.perf_counter()
    results = Explainer(cluster).explain()
    t = time.perf_counter() - t0
    paths = sum(len(r.paths) for r in results)
    ingress = sum(1 for r in results for p in r.paths if p.kind == "ingress")
    return t, paths, ingress


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=4000)
    ap.add_argument("--ingresses", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    doc = _gen().generate(nodes=args.nodes, services=args.services, pods=args.pods, seed=3)
    items = list(doc["items"] if isinstance(doc, dict) else doc)
    base = items + controller_objects()
    services = [o for o in items if o.get("kind") == "Service"]
    with_ing = base + ingresses(services, args.ingresses)
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.rounds):
        for label, objs in (("without", base), ("with", with_ing)):
            r = _explain(objs)
            if label not in best or r[0] < best[label][0]:
                best[label] = r
    t0, p0, _ = best["without"]
    t1, p1, ing = best["with"]
    print(f"{args.nodes} nodes, {len(services)} Services, {args.ingresses} Ingress rules")
    print(f"without Ingresses: {t0:.2f} s, {p0} paths")
    print(f"with Ingresses:    {t1:.2f} s, {p1} paths ({ing} ingress paths)")
    print(f"ratio with/without: {t1 / t0:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
