"""Benchmark: tracing through a parsed dump vs through our generated IR of the same node
(issue #10: within 1.5x for every kube-proxy release and mode, ratio in one run).

For ``bench/gen_cluster.py``'s cluster (10,000 Services; 300 nodes and 30,000 pods by default,
to keep memory sane) and for each kube-proxy release row (``--kube-proxy-version all``,
``kubeproxy/releases.py``) and each mode (iptables, nftables):

1. build the first node's rules as ``Tracer`` does (kube-proxy's ruleset and the CNI portmap
   plugin's): the generated IR;
2. render it as the dump a user pastes: ``iptables-save`` text (``render_iptables``) or ``nft list
   ruleset`` text (``bench_parse._listing``);
3. read the dump back as ``sourceip trace --dump FILE --node-ip IP`` does
   (``cli.trace._load_dumps``: ``netfilter.dumps.load_node_dumps`` and the one-node stand-in
   cluster made from it, interfaces unknown);
4. trace the same flows, node-only (``Tracer.trace_node``): a pod on another node to a Service's
   ClusterIP, and an external client to the node's address at a NodePort, for a sample of the
   Services, through

   (a)  the generated IR in a tracer of the whole cluster (what ``trace --node`` with the
        cluster file does);
   (a1) the generated IR in the dump's one-node stand-in tracer (only the rules differ from (b));
   (b)  the parsed dump in that stand-in tracer (what ``trace --dump`` does).

Every flow is traced once untimed (chains compiled on first visit), then ``--passes`` timed
passes per tracer, the three tracers' passes interleaved so a load spike on the shared machine
slows each alike; the best pass counts. Times are this process's CPU time. Printed per release
and mode: dump lines, parse seconds, µs per trace for (a), (a1), (b), and the ratios (b)/(a) and
(b)/(a1); flows whose outcomes (disposition, endpoint, masquerade, seen source, probability,
certainty) differ are counted, between (a) and (b) and between (a1) and (b) ("differ":
(a)-(b) / (a1)-(b)).
The stand-in node of a dump has no pod bridge (its interfaces are unknown), so a NodePort
flow to a pod on the node itself is masqueraded to the node's address there and to the bridge's
in the whole cluster: a difference of (a) and (b) that is not the rules'; (a1) and (b) share
the stand-in, so a difference there is one between the generated and the parsed rules.

    python bench/bench_dump_trace.py [--kube-proxy-version all] [--mode all] [--sample 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sourceip.cli.trace import _load_dumps
from sourceip.cluster import Cluster
from sourceip.dataplane.trace import Trace
from sourceip.dataplane.tracer import Tracer
from sourceip.kubeproxy.releases import normalize_version, supported_versions
from sourceip.netfilter.render_iptables import render_iptables
from sourceip.sources import load_cluster

HERE = Path(__file__).parent
EXTERNAL = "203.0.113.10"
TARGET = 1.5


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


Flow = tuple[str, str, int]  # src, dst, dport


def flows_for(cluster: Cluster, node: str, sample: int) -> list[Flow]:
    """``sample`` ClusterIP flows (from a pod on another node) and up to ``sample`` NodePort
    flows (from the external client to ``node``'s address), on Services with endpoints,
    spread over the cluster's Services."""
    n = cluster.node(node)
    node_ip = str(n.internal_ips[0])
    client = next(str(p.ips[0]) for p in cluster.pods if p.node_name not in (node, "")
                  and p.ips)
    with_eps = {(s.namespace, s.service_name) for s in cluster.endpoint_slices if s.endpoints}
    svcs = [s for s in cluster.services if (s.namespace, s.name) in with_eps and s.cluster_ips
            and s.ports]
    step = max(1, len(svcs) // sample)
    cip = [(client, str(s.cluster_ips[0]), s.ports[0].port) for s in svcs[::step][:sample]]
    nps = [s for s in svcs if s.ports[0].node_port]
    step = max(1, len(nps) // sample)
    nodeport = [(EXTERNAL, node_ip, p) for s in nps[::step][:sample]
                if (p := s.ports[0].node_port) is not None]
    return cip + nodeport


def _pass(tracer: Tracer, node: str, flows: list[Flow]) -> float:
    t0 = time.process_time()
    for src, dst, dport in flows:
        tracer.trace_node(node, src, dst, dport)
    return (time.process_time() - t0) / len(flows)


def _summary(t: Trace) -> list[tuple[object, ...]]:
    return sorted((o.disposition, o.endpoint, o.masquerade, str(o.seen_source),
                   o.probability, o.certain) for o in t.outcomes)


def run_one(cluster: Cluster, node: str, mode: str, version: str, flows: list[Flow],
            passes: int, listing: Any) -> dict[str, Any]:
    """Build, render, parse and trace one release and mode (see the module docstring)."""
    cfg = dataclasses.replace(cluster.kube_proxy, mode=mode, version=version)  # type: ignore[arg-type]
    gen = Tracer(cluster, cfg)
    rs = gen.ruleset(node)
    text = render_iptables(rs) if mode == "iptables" else listing(rs)
    node_ip = str(cluster.node(node).internal_ips[0])
    with tempfile.NamedTemporaryFile("w", suffix=".dump", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        t0 = time.process_time()
        nd, dcluster, dnode = _load_dumps([path], (node_ip,), (), None, node)
        parse_s = time.process_time() - t0
    finally:
        Path(path).unlink()
    assert nd.ruleset is not None
    # as cli/trace.py builds the tracer of a standalone dump
    dump = Tracer(dcluster, dcluster.kube_proxy, rulesets={dnode: nd.ruleset},
                  ipsets={dnode: nd.ipsets}, interfaces_unknown=(dnode,))
    stand_in = Tracer(dcluster, dcluster.kube_proxy, rulesets={dnode: rs},
                      interfaces_unknown=(dnode,))
    tracers = {"a": gen, "a1": stand_in, "b": dump}
    differ = differ_rules = 0
    for src, dst, dport in flows:  # cold: untimed; and the outcomes compared
        ta = _summary(gen.trace_node(node, src, dst, dport))
        ta1 = _summary(stand_in.trace_node(node, src, dst, dport))
        tb = _summary(dump.trace_node(node, src, dst, dport))
        differ += ta != tb
        differ_rules += ta1 != tb
    gc.collect()
    gc.freeze()
    best = {k: float("inf") for k in tracers}
    try:
        for _ in range(passes):
            for k, tr in tracers.items():
                best[k] = min(best[k], _pass(tr, node, flows))
    finally:
        gc.unfreeze()
    return {"lines": text.count("\n"), "parse_s": parse_s, "differ": differ,
            "differ_rules": differ_rules,
            "kube_proxy": nd.kube_proxy, **{f"us_{k}": v * 1e6 for k, v in best.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kube-proxy-version", default="all", help="1.NN, or all")
    ap.add_argument("--mode", default="all", help="iptables, nftables or all")
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=30000)
    ap.add_argument("--sample", type=int, default=200,
                    help="Services per flow kind (ClusterIP, NodePort)")
    ap.add_argument("--passes", type=int, default=5, help="timed passes per tracer (best)")
    args = ap.parse_args(argv)
    versions = (list(supported_versions()) if args.kube_proxy_version == "all"
                else [normalize_version(args.kube_proxy_version)])
    modes = ["iptables", "nftables"] if args.mode == "all" else [args.mode]

    doc = _module("gen_cluster").generate(nodes=args.nodes, services=args.services,
                                          pods=args.pods, seed=1)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
        path = f.name
    cluster = load_cluster([path])
    Path(path).unlink()
    del doc
    node = cluster.nodes[0].name
    flows = flows_for(cluster, node, args.sample)
    listing = _module("bench_parse")._listing
    print(f"cluster: {len(cluster.nodes)} nodes, {len(cluster.services)} Services, "
          f"{len(cluster.pods)} pods; node {node}; {len(flows)} flows (ClusterIP from a pod on "
          f"another node, NodePort from outside), best of {args.passes} warm passes, CPU time")
    print(f"{'release':8} {'mode':9} {'lines':>8} {'parse s':>8} {'(a) us':>7} {'(a1) us':>7} "
          f"{'(b) us':>7} {'b/a':>5} {'b/a1':>5} {'differ':>9}  shape read from the dump")
    worst = 0.0
    for v in versions:
        for mode in modes:
            r = run_one(cluster, node, mode, v, flows, args.passes, listing)
            ratio = r["us_b"] / r["us_a"]
            worst = max(worst, ratio)
            print(f"{v:8} {mode:9} {r['lines']:>8,} {r['parse_s']:>8.2f} {r['us_a']:>7.1f} "
                  f"{r['us_a1']:>7.1f} {r['us_b']:>7.1f} {ratio:>5.2f} "
                  f"{r['us_b'] / r['us_a1']:>5.2f} {r['differ']:>4}/{r['differ_rules']:<4}  "
                  f"{r['kube_proxy']}",
                  flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"worst (b)/(a): {worst:.2f} (target {TARGET}); peak RSS {peak:,.0f} MiB")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
