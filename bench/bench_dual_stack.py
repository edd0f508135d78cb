"""Dual-stack cost (issue #12): rules and explain per family of a dual-stack version of the
generated scalability-limit cluster, against the single-stack figure of the same run.

Usage: python bench/bench_dual_stack.py [--nodes N --services S --pods P] [--explain K]
       [--rule-nodes R] [--mode iptables|nftables] [--repeat 2]

``bench/gen_cluster.py`` generates the IPv4 cluster; ``dual_stack()`` adds the IPv6 half the
way a dual-stack cluster has it: every node an IPv6 InternalIP and podCIDR (100.X.Y.0/24 ->
fd00:100:X:Y::/64), every pod an IPv6 podIP, every Service ``RequireDualStack`` with an IPv6
ClusterIP in fd00:10:96::/108, an IPv6 EndpointSlice beside each IPv4 one, both clusterCIDRs
(LoadBalancer IPs stay IPv4). Both clusters are loaded in this process and measured in turns
(``--repeat``, the best of each kept; CPU time of this process, so that other processes on
a loaded machine weigh less than in wall time): one node's ruleset per family (build + render) for
``--rule-nodes`` nodes, and explain of the first ``--explain`` Services (``--sample-nodes 3``
as the CLI uses on large clusters) per family, each family by an Explainer of its own.

Target: each family of the dual-stack cluster costs at most 1.1x the single-stack figure.
Memory: the resident size added by loading each cluster (the dual-stack one holds twice the
addresses and EndpointSlices), and the process's peak.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_cluster import generate  # noqa: E402

from sourceip.cluster import Cluster  # noqa: E402
from sourceip.explain import Explainer  # noqa: E402
from sourceip.kubeproxy import build_ruleset  # noqa: E402
from sourceip.netfilter import render  # noqa: E402
from sourceip.sources import load_cluster  # noqa: E402

SVC_V4 = ipaddress.IPv4Network("10.96.0.0/12")
SVC_V6 = ipaddress.IPv6Network("fd00:10:96::/108")


def _v6(ip: str) -> str:
    """The IPv6 twin of a generated IPv4 address: 100.X.Y.H -> fd00:100:X:Y::H (pods),
    172.16.X.Y -> fd00:172:16:X::Y (nodes), a ClusterIP -> the same offset in SVC_V6."""
    addr = ipaddress.IPv4Address(ip)
    if addr in SVC_V4:
        return str(SVC_V6.network_address + (int(addr) - int(SVC_V4.network_address)))
    a, b, c, d = ip.split(".")
    return f"fd00:{a}:{b}:{c}::{d}"


def dual_stack(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a ``kind: List`` from gen_cluster) with the IPv6 half added."""
    items: list[dict[str, Any]] = []
    for it in doc["items"]:
        it = json.loads(json.dumps(it))
        kind = it["kind"]
        if kind == "KubeProxyConfiguration":
            it["clusterCIDR"] += ",fd00:100::/32"
        elif kind == "NetworkProfile":
            it["spec"]["podCIDRs"].append("fd00:100::/32")
            it["spec"]["serviceCIDRs"].append(str(SVC_V6))
        elif kind == "Node":
            v4 = it["spec"]["podCIDR"].split("/")[0]
            it["spec"]["podCIDRs"].append(f"{_v6(v4)}/64")
            addr = it["status"]["addresses"][0]["address"]
            it["status"]["addresses"].insert(1, {"type": "InternalIP", "address": _v6(addr)})
        elif kind == "Pod":
            ip = it["status"]["podIP"]
            it["status"]["podIPs"] = [{"ip": ip}, {"ip": _v6(ip)}]
        elif kind == "Service":
            spec = it["spec"]
            spec["clusterIPs"].append(_v6(spec["clusterIP"]))
            spec["ipFamilies"] = ["IPv4", "IPv6"]
            spec["ipFamilyPolicy"] = "RequireDualStack"
        elif kind == "EndpointSlice":
            v6 = json.loads(json.dumps(it))
            v6["metadata"]["name"] += "-v6"
            v6["addressType"] = "IPv6"
            for ep in v6["endpoints"]:
                ep["addresses"] = [_v6(a) for a in ep["addresses"]]
            items.append(v6)
        items.append(it)
    return {**doc, "items": items}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _load(doc: dict[str, Any]) -> tuple[Cluster, float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        gc.collect()
        before = _rss_mib()
        t0 = time.perf_counter()
        cluster = load_cluster([f.name])
        seconds = time.perf_counter() - t0
        gc.collect()
        return cluster, seconds, _rss_mib() - before
    finally:
        os.unlink(f.name)


def _rules(cluster: Cluster, nodes: list[str], family: int) -> float:
    t0 = time.process_time()
    for n in nodes:
        render(build_ruleset(cluster, n, family=family))
    return time.process_time() - t0


def _explain(cluster: Cluster, names: list[str], family: int) -> tuple[float, int]:
    explainer = Explainer(cluster, sample_nodes=3)
    t0 = time.process_time()
    paths = 0
    for name in names:
        svc = cluster.service(name)
        for sp in svc.ports:
            paths += len(explainer._explain_port(svc, sp, family=family).paths)
    return time.process_time() - t0, paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=15000)
    ap.add_argument("--explain", type=int, default=300, help="Services explained")
    ap.add_argument("--rule-nodes", type=int, default=3, help="nodes whose rules are built")
    ap.add_argument("--mode", choices=("iptables", "nftables"), default="iptables")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    doc = generate(args.nodes, args.services, args.pods)
    for it in doc["items"]:
        if it["kind"] == "KubeProxyConfiguration":
            it["mode"] = args.mode
    single, t_single, m_single = _load(doc)
    dual, t_dual, m_dual = _load(dual_stack(doc))
    print(f"{args.nodes} nodes, {args.services} Services, {args.pods} pods, {args.mode}: "
          f"load single-stack {t_single:.1f} s (+{m_single:.0f} MiB), dual-stack "
          f"{t_dual:.1f} s (+{m_dual:.0f} MiB)")
    gc.freeze()
    nodes = [n.name for n in single.nodes[: args.rule_nodes]]
    names = [s.key for s in single.services if s.proxied][: args.explain]
    best: dict[str, float] = {}
    paths: dict[str, int] = {}

    def keep(key: str, seconds: float) -> None:
        best[key] = min(seconds, best.get(key, float("inf")))

    was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(args.repeat):
            keep("rules single", _rules(single, nodes, 4))
            keep("rules dual IPv4", _rules(dual, nodes, 4))
            keep("rules dual IPv6", _rules(dual, nodes, 6))
            for key, cluster, fam in (("explain single", single, 4),
                                      ("explain dual IPv4", dual, 4),
                                      ("explain dual IPv6", dual, 6)) if names else ():
                seconds, paths[key] = _explain(cluster, names, fam)
                keep(key, seconds)
    finally:
        if was:
            gc.enable()
    for what, unit, n in (("rules", "node", len(nodes)), ("explain", "Service", len(names))):
        if not n:  # --explain 0 / --rule-nodes 0: that half was not measured
            continue
        base = best[f"{what} single"]
        print(f"{what} ({n} {unit}s): single-stack {base / n * 1000:.1f} ms/{unit}")
        for fam in ("IPv4", "IPv6"):
            t = best[f"{what} dual {fam}"]
            extra = (f", {paths[f'{what} dual {fam}']} paths" if what == "explain" else "")
            print(f"  dual-stack {fam}: {t / n * 1000:.1f} ms/{unit} = {t / base:.2f}x "
                  f"single-stack{extra}")
    if "explain single" in paths:
        print(f"  single-stack paths: {paths['explain single']}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
