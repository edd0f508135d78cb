"""explain of every Service of a generated cluster (issue 3): time and peak memory.

Usage: python bench/gen_cluster.py -o /tmp/full.json   # 5,000 nodes, 10,000 Services
       python bench/bench_explain.py /tmp/full.json [--services N] [--sample-nodes K]
Target: every Service of the scalability-limit cluster in at most 60 s and 4 GiB.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

from sourceip.explain import Explainer
from sourceip.sources import load_cluster


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--services", type=int, default=None, help="only the first N Services")
    ap.add_argument("--sample-nodes", type=int, default=3,
                    help="endpoint nodes kept per condition class (0: every endpoint)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cluster = load_cluster([args.path])
    gc.collect()
    gc.freeze()
    t1 = time.perf_counter()
    names = [s.key for s in cluster.services if s.proxied][: args.services]
    explainer = Explainer(cluster, sample_nodes=args.sample_nodes or None)
    results = explainer.explain(names)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    paths = sum(len(r.paths) for r in results)
    print(f"nodes {len(cluster.nodes)}, services explained {len(names)}, ports {len(results)}, "
          f"paths {paths}")
    print(f"load {t1 - t0:.1f} s; explain {t2 - t1:.1f} s "
          f"({(t2 - t1) / max(1, len(names)) * 1000:.1f} ms/Service); peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
