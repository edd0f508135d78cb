"""Single-node traces per second at 10 and at 10,000 Services, in one run (issue 3).

Prints per-trace time at each size and the ratio (10,000 / 10); targets: ratio <= 1.5 and at
least 10,000 traces/s at 10,000 Services. Usage: python bench/bench_trace.py [--traces N]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import time
from collections.abc import Callable

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    NetworkProfile,
    Node,
    Service,
    ServicePort,
)
from sourceip.dataplane.tracer import Tracer


def make_cluster(n_services: int, mode: str) -> Cluster:
    nodes = tuple(
        Node(name=f"node{i}", internal_ips=(ipaddress.ip_address(f"10.0.0.{10 + i}"),),
             pod_cidrs=(ipaddress.ip_network(f"10.244.{i}.0/24"),))
        for i in range(1, 4))
    services, slices = [], []
    base = int(ipaddress.ip_address("10.96.0.10"))
    for s in range(n_services):
        cip = ipaddress.ip_address(base + s)
        name = f"svc{s}"
        services.append(Service(namespace="bench", name=name, type="ClusterIP",
                                cluster_ips=(cip,), ports=(ServicePort(port=80, name="http",
                                                                       target_port=8080),)))
        eps = tuple(Endpoint(addresses=(ipaddress.ip_address(f"10.244.{n}.{(s % 250) + 2}"),),
                             node_name=f"node{n}") for n in (1, 2, 3))
        slices.append(EndpointSlice(namespace="bench", name=f"{name}-x", service_name=name,
                                    endpoints=eps, ports=(EndpointPort(port=8080, name="http"),)))
    return Cluster(nodes=nodes, services=tuple(services), endpoint_slices=tuple(slices),
                   kube_proxy=KubeProxyConfig(mode=mode,  # type: ignore[arg-type]
                                              cluster_cidrs=(ipaddress.ip_network("10.244.0.0/16"),)),
                   profile=NetworkProfile())


def prepare(n_services: int, mode: str, traces: int,
            batch: bool = False) -> tuple[Tracer, list[str], float]:
    """A tracer of ``make_cluster(n_services, mode)`` with node1's ruleset built and indexed
    (``batch``: and compiled, as ``sourceip trace --flows`` does), the ``traces`` ClusterIPs
    to trace (spread over the Services), and the setup time in s."""
    cluster = make_cluster(n_services, mode)
    tracer = Tracer(cluster, compile_all=batch)
    t0 = time.perf_counter()
    tracer.evaluator("node1")  # build + index (batch: + compile) the ruleset once
    setup = time.perf_counter() - t0
    base = int(ipaddress.ip_address("10.96.0.10"))
    dsts = [str(ipaddress.ip_address(base + (i * 7919) % n_services)) for i in range(traces)]
    return tracer, dsts, setup


def timed_pass(tracer: Tracer, dsts: list[str],
               clock: Callable[[], float] = time.perf_counter) -> float:
    """s/trace of one pass of pod -> ClusterIP traces over ``dsts``, timed by ``clock`` (wall
    clock by default; ``time.process_time``: this process's CPU time, what a core of its own
    would give on a busy shared machine)."""
    t0 = clock()
    for dst in dsts:
        tracer.trace_node("node1", "10.244.2.77", dst, 80)
    return (clock() - t0) / len(dsts)


def per_trace(n_services: int, mode: str, traces: int,
              batch: bool = False) -> tuple[float, float, float]:
    """(cold s/trace: first visit of each Service, warm s/trace: chains already compiled,
    setup s: building and indexing the node's ruleset — and with ``batch`` compiling all of it,
    as ``sourceip trace --flows`` does)."""
    tracer, dsts, setup = prepare(n_services, mode, traces, batch)
    gc.collect()
    gc.freeze()  # the ruleset is long-lived: keep the collector from rescanning it
    try:
        cold = timed_pass(tracer, dsts)
        warm = timed_pass(tracer, dsts)
    finally:
        gc.unfreeze()
    return cold, warm, setup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=3000)
    args = ap.parse_args()
    print("each trace: pod -> ClusterIP with 3 endpoints (3 branches enumerated)")
    print(f"{'mode':9} {'services':>8} {'cold us':>8} {'warm us':>8} {'warm traces/s':>13} "
          f"{'setup s':>8}")
    for batch in (False, True):
        label = "batch: whole ruleset compiled at setup (trace --flows)" if batch else \
            "lazy: chains compiled on first visit (one-off traces)"
        print(label)
        for mode in ("iptables", "nftables"):
            rows = {n: per_trace(n, mode, args.traces, batch) for n in (10, 10_000)}
            for n, (cold, warm, setup) in rows.items():
                print(f"{mode:9} {n:>8} {cold * 1e6:>8.1f} {warm * 1e6:>8.1f} "
                      f"{1 / warm:>13.0f} {setup:>8.2f}")
            print(f"{mode:9} ratio 10,000/10: cold {rows[10_000][0] / rows[10][0]:.2f}, "
                  f"warm {rows[10_000][1] / rows[10][1]:.2f}")

if __name__ == "__main__":
    main()
