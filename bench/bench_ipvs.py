"""Single-node traces per second through a kube-proxy ipvs-mode node at 10 and at 10,000
Services, in one run (issue #13).

Each trace: a pod on node2 -> a ClusterIP with 3 endpoints, traced on node1 (IPVS virtual
server, 3 real-server branches, the KUBE-* ipset rules decided with the node's ipsets). In the
same run, the same flows through an iptables-mode node at 10,000 Services. Cold: the first
pass (each Service's first visit). Warm: the fastest of 5 passes, the three cases taking turns
pass by pass (a load spike on the shared machine then slows every case, not one). Prints
per-trace time, the ratio 10,000 / 10 and the ipvs / iptables ratio, with the load average
before and after. Targets: >= 10,000 traces/s warm at 10,000 Services and the warm ratio
<= 1.5.
Usage: python bench/bench_ipvs.py [--traces N] [--cpu]  (--cpu: this process's CPU time
instead of the wall clock)
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from bench_trace import make_cluster, prepare, timed_pass

from sourceip.dataplane.tracer import Tracer

PASSES = 5
CASES = (("ipvs", 10), ("ipvs", 10_000), ("iptables", 10_000))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=3000)
    ap.add_argument("--cpu", action="store_true", help="time with this process's CPU time")
    args = ap.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    check = make_cluster(10, "ipvs")
    t = Tracer(check).trace_node("node1", "10.244.2.77", "10.96.0.10", 80)
    assert len(t.outcomes) == 3 and all(o.certain for o in t.outcomes), str(t)
    print(f"load average before: {os.getloadavg()[0]:.2f}; clock: "
          f"{'CPU time' if args.cpu else 'wall'}")
    prepared = {case: prepare(case[1], case[0], args.traces) for case in CASES}
    gc.collect()
    gc.freeze()  # the rulesets are long-lived: keep the collector from rescanning them
    try:
        cold = {case: timed_pass(tr, dsts, clock) for case, (tr, dsts, _s) in prepared.items()}
        warm = dict.fromkeys(CASES, float("inf"))
        for _ in range(PASSES):
            for case, (tr, dsts, _s) in prepared.items():
                warm[case] = min(warm[case], timed_pass(tr, dsts, clock))
    finally:
        gc.unfreeze()
    print("each trace: pod -> ClusterIP (3 endpoints, 3 branches)")
    print(f"{'mode':>8} {'services':>8} {'cold us':>8} {'warm us':>8} {'warm traces/s':>13} "
          f"{'setup s':>8}")
    for case in CASES:
        mode, n = case
        print(f"{mode:>8} {n:>8} {cold[case] * 1e6:>8.1f} {warm[case] * 1e6:>8.1f} "
              f"{1 / warm[case]:>13.0f} {prepared[case][2]:>8.2f}")
    big, small, ipt = (("ipvs", 10_000), ("ipvs", 10), ("iptables", 10_000))
    print(f"ipvs ratio 10,000/10: cold {cold[big] / cold[small]:.2f}, "
          f"warm {warm[big] / warm[small]:.2f}")
    print(f"ipvs / iptables at 10,000 Services, warm: {warm[big] / warm[ipt]:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
