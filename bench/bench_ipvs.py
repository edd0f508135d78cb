"""Single-node traces per second through a kube-proxy ipvs-mode node at 10 and at 10,000
Services, in one run (issue #13).

Each trace: a pod on node1 -> a ClusterIP with 3 endpoints (IPVS virtual server, 3 real-server
branches, the KUBE-* ipset rules decided with the node's ipsets). Prints per-trace time at
each size and the ratio 10,000 / 10; targets: >= 10,000 traces/s warm at 10,000 Services and
the warm ratio <= 1.5. In the same run, the same flow through an iptables-mode node at 10,000
Services (bench_trace's measurement) and the ipvs / iptables ratio; the load average before
and after (the machine may be shared). Warm is the fastest of 5 passes over the same flows.
Usage: python bench/bench_ipvs.py [--traces N] [--cpu]  (--cpu: this process's CPU time
instead of the wall clock: on a busy shared machine, what a core of its own would give)
"""

from __future__ import annotations

import argparse
import os
import time

import bench_trace
from bench_trace import make_cluster

from sourceip.dataplane.tracer import Tracer

PASSES = 5  # warm: the fastest of 5 passes, each mode and size alike
CLOCK = [time.perf_counter]  # --cpu: time.process_time


def per_trace(n_services: int, traces: int) -> tuple[float, float, float]:
    """(cold s/trace, warm s/trace, setup s: building the IPVS node — virtual servers, ipsets,
    iptables rules — and its evaluator): bench_trace's measurement in ipvs mode."""
    return bench_trace.per_trace(n_services, "ipvs", traces, passes=PASSES, clock=CLOCK[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=3000)
    ap.add_argument("--cpu", action="store_true", help="time with this process's CPU time")
    args = ap.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    check = make_cluster(10, "ipvs")
    t = Tracer(check).trace_node("node1", "10.244.2.77", "10.96.0.10", 80)
    assert len(t.outcomes) == 3 and all(o.certain for o in t.outcomes), str(t)
    print(f"load average before: {os.getloadavg()[0]:.2f}; clock: "
          f"{'CPU time' if args.cpu else 'wall'}")
    print("each trace: pod -> ClusterIP through IPVS (3 real servers, 3 branches)")
    print(f"{'mode':>8} {'services':>8} {'cold us':>8} {'warm us':>8} {'warm traces/s':>13} "
          f"{'setup s':>8}")
    rows = {n: per_trace(n, args.traces) for n in (10, 10_000)}
    ipt = bench_trace.per_trace(10_000, "iptables", args.traces, passes=PASSES,
                                clock=CLOCK[0])
    for mode, n, (cold, warm, setup) in [*(("ipvs", n, r) for n, r in rows.items()),
                                         ("iptables", 10_000, ipt)]:
        print(f"{mode:>8} {n:>8} {cold * 1e6:>8.1f} {warm * 1e6:>8.1f} {1 / warm:>13.0f} "
              f"{setup:>8.2f}")
    print(f"ipvs ratio 10,000/10: cold {rows[10_000][0] / rows[10][0]:.2f}, "
          f"warm {rows[10_000][1] / rows[10][1]:.2f}")
    print(f"ipvs / iptables at 10,000 Services, warm: {rows[10_000][1] / ipt[1]:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
