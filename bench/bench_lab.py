"""Benchmark the lab (root only): build and tear down generated clusters in network namespaces,
and the seed matrix (built-in examples) end to end.

    sudo python bench/bench_lab.py                   # 20 and 50 nodes, then the seed matrix
    sudo python bench/bench_lab.py --nodes 20 --repeat 5 --no-matrix

Generated clusters: N nodes (10.0.x.y, one /24 pod CIDR each), one echo-server pod per node,
one NodePort Service over all the pods, kube-proxy iptables rules (legacy back end) loaded on
every node. Phases timed by ``Lab``: creating namespaces and veths (one ``ip -batch``),
per-namespace setup (addresses, routes, sysctls, rules; 16 threads), starting the echo servers
and waiting for each to listen, and tear-down. Target: 20 nodes up and down in <= 5 s.

The seed matrix: for each example, plan + build + probe every explain path (split predictions
probed 3 times) + compare + tear down, with the number of paths that agree.

The load balancer (``--lb``): ``--example loadbalancer`` up + down with its LB (a health server
in every node, the router's health checks, the ECMP pool) against the same plan without it
(no health servers, no checks, no pool), interleaved in one run; the ratio of the medians.
Target: <= 2x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from ipaddress import ip_address, ip_network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sourceip.cluster import (  # noqa: E402
    Cluster,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    NetworkProfile,
    Node,
    Pod,
    Service,
    ServicePort,
)
from sourceip.lab.plan import plan_lab  # noqa: E402
from sourceip.lab.run import Lab  # noqa: E402

TARGET_20 = 5.0
TARGET_LB_RATIO = 2.0
EXAMPLES = ("design-table", "routed", "seed", "seed-local", "loadbalancer", "metallb-l2",
            "ingress-nginx", "ingress-proxy-protocol")


def generated_cluster(n_nodes: int, pod_attach: str = "bridge") -> Cluster:
    nodes, pods, eps = [], [], []
    for i in range(n_nodes):
        name = f"node{i + 1}"
        nodes.append(Node(name=name, internal_ips=(ip_address(f"10.0.{i // 200}.{i % 200 + 10}"),),
                          pod_cidrs=(ip_network(f"10.{100 + i // 250}.{i % 250}.0/24"),)))
        pod_ip = ip_address(f"10.{100 + i // 250}.{i % 250}.10")
        pods.append(Pod(namespace="default", name=f"web-{i + 1}", node_name=name, ips=(pod_ip,),
                        labels={"app": "web"}, ports=(ContainerPort(container_port=8080),)))
        eps.append(Endpoint(addresses=(pod_ip,), node_name=name))
    svc = Service(namespace="default", name="web", type="NodePort",
                  cluster_ips=(ip_address("10.96.0.10"),), selector={"app": "web"},
                  ports=(ServicePort(port=80, target_port=8080, node_port=30080),))
    es = EndpointSlice(namespace="default", name="web-x", service_name="web",
                       endpoints=tuple(eps), ports=(EndpointPort(port=8080),))
    return Cluster(nodes=tuple(nodes), pods=tuple(pods), services=(svc,), endpoint_slices=(es,),
                   kube_proxy=KubeProxyConfig(cluster_cidrs=(ip_network("10.100.0.0/14"),)),
                   profile=NetworkProfile(pod_attach=pod_attach))  # type: ignore[arg-type]


def bench_build(n_nodes: int, repeat: int, rules: bool) -> dict[str, float]:
    cluster = generated_cluster(n_nodes)
    rows: list[dict[str, float]] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan = plan_lab(cluster, rules=rules)
        t_plan = time.perf_counter() - t0
        lab = Lab(plan)
        t1 = time.perf_counter()
        with lab:
            t_up = time.perf_counter() - t1
        total = time.perf_counter() - t1
        rows.append({"plan": t_plan, "up": t_up, "down": lab.timings["down"], "total": total,
                     **{k: v for k, v in lab.timings.items() if k not in ("up", "down")}})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def bench_lb(repeat: int, example: str = "loadbalancer") -> tuple[float, float]:
    """Median up+down of ``example`` with its load balancer and without it (the same plan
    minus the LB: no health servers, no checks, no pool), interleaved."""
    from dataclasses import replace

    from sourceip.sources import load_example

    cluster = load_example(example)
    with_lb, without = [], []
    for _ in range(repeat):
        for lb in (True, False):
            plan = plan_lab(cluster)
            if not lb:
                plan = replace(plan, load_balancers=(),
                               processes=tuple(p for p in plan.processes if p.role != "health"))
            t0 = time.perf_counter()
            with Lab(plan):
                pass
            (with_lb if lb else without).append(time.perf_counter() - t0)
    return statistics.median(with_lb), statistics.median(without)


def bench_matrix() -> list[tuple[str, int, int, float]]:
    from sourceip.lab.compare import compare_all, explain_predictions
    from sourceip.sources import load_example

    out = []
    for name in EXAMPLES:
        t0 = time.perf_counter()
        cluster = load_example(name)
        plan = plan_lab(cluster)
        predictions, _notes = explain_predictions(cluster, external_ip=plan.external_ip)
        with Lab(plan) as lab:
            obs = lab.probe([p.spec for p in predictions],
                            attempts={p.spec.id: 6 if p.spec.via_lb else 3 if p.split else 1
                                      for p in predictions})
        agreements = compare_all(predictions, obs)
        out.append((name, sum(a.agree for a in agreements), len(agreements),
                    time.perf_counter() - t0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, action="append", help="node counts (20, 50)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-rules", action="store_true", help="topology only")
    parser.add_argument("--no-matrix", action="store_true")
    parser.add_argument("--lb", action="store_true",
                        help="only the load balancer ratio (with vs without the LB)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_lab needs root (network namespaces)", file=sys.stderr)
        return 3
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"median of {args.repeat}")
    with_lb, without = bench_lb(args.repeat)
    ratio = with_lb / without
    verdict = "met" if ratio <= TARGET_LB_RATIO else "MISSED"
    print(f"loadbalancer example up+down: with the LB {with_lb:.2f} s, without {without:.2f} s: "
          f"{ratio:.2f}x (target <= {TARGET_LB_RATIO:.0f}x: {verdict})")
    if args.lb:
        return 0
    print(f"{'nodes':>5} {'ns':>4} {'plan':>6} {'netns':>6} {'setup':>6} {'servers':>7} "
          f"{'up':>6} {'down':>6} {'up+down':>7}")
    for n in args.nodes or [20, 50]:
        r = bench_build(n, args.repeat, not args.no_rules)
        n_ns = 2 * n + 2
        flag = "" if n != 20 else ("  (target <= 5 s: met)" if r["total"] <= TARGET_20
                                   else "  (target <= 5 s: MISSED)")
        print(f"{n:>5} {n_ns:>4} {r['plan']:6.2f} {r['namespaces']:6.2f} {r['setup']:6.2f} "
              f"{r['servers']:7.2f} {r['up']:6.2f} {r['down']:6.2f} {r['total']:7.2f}{flag}")
    if not args.no_matrix:
        print("\nseed matrix end to end (plan, build, probe every explain path, compare, down):")
        for name, ok, total, secs in bench_matrix():
            print(f"  {name:14} {ok:>3}/{total:<3} agree  {secs:5.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
