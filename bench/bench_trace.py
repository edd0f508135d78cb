"""Single-node traces per second at 10 and at 10,000 Services, in one run (issue 3).

Prints per-trace time at each size and the ratio (10,000 / 10); targets: ratio <= 1.5 and at
least 10,000 traces/s at 10,000 Services. Usage: python bench/bench_trace.py [--traces N]
"""

from __future__ import annotations

import argparse
import ipaddress
import time

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


def per_trace(n_services: int, mode: str, traces: int) -> tuple[float, float]:
    cluster = make_cluster(n_services, mode)
    tracer = Tracer(cluster)
    t0 = time.perf_counter()
    tracer.evaluator("node1")  # build + index the ruleset once
    setup = time.perf_counter() - t0
    base = int(ipaddress.ip_address("10.96.0.10"))
    dsts = [str(ipaddress.ip_address(base + (i * 7919) % n_services)) for i in range(traces)]
    t0 = time.perf_counter()
    for dst in dsts:
        tracer.trace_node("node1", "10.244.2.77", dst, 80)
    return (time.perf_counter() - t0) / traces, setup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=3000)
    args = ap.parse_args()
    print(f"{'mode':9} {'services':>8} {'us/trace':>9} {'traces/s':>9} {'setup s':>8}")
    for mode in ("iptables", "nftables"):
        small, _ = per_trace(10, mode, args.traces)
        big, setup = per_trace(10_000, mode, args.traces)
        for n, t in ((10, small), (10_000, big)):
            print(f"{mode:9} {n:>8} {t * 1e6:>9.1f} {1 / t:>9.0f} "
                  f"{setup if n == 10_000 else 0:>8.2f}")
        print(f"{mode:9} ratio 10,000/10 = {big / small:.2f}")


if __name__ == "__main__":
    main()
