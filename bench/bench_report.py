"""The HTML report of a large cluster (issue 15): file size, render time, and Chromium load time.

Usage: python bench/gen_cluster.py -o /tmp/full.json          # 5,000 nodes, 10,000 Services
       python -m sourceip explain -f /tmp/full.json -o json > /tmp/full-explain.json
       python bench/bench_report.py /tmp/full-explain.json [--chromium /usr/bin/chromium]
or     python bench/bench_report.py --services 2000           # generates and explains a smaller one

Prints the number of Services, the page size, the render time and the time headless Chromium
takes to load the page and dump its DOM (the page is self-contained: nothing else is loaded).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sourceip.report.html import render_report

HERE = Path(__file__).resolve().parent


def _explain_generated(services: int) -> dict[str, Any]:
    from sourceip.explain import Explainer
    from sourceip.sources import cluster_from_objects

    spec = importlib.util.spec_from_file_location("gen_cluster", HERE / "gen_cluster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    nodes = max(10, services // 2)
    doc = mod.generate(nodes=nodes, services=services, pods=services * 15, seed=5)
    cluster = cluster_from_objects(doc["items"] if isinstance(doc, dict) else doc)
    results = Explainer(cluster, sample_nodes=3 if nodes > 100 else None).explain()
    return {"services": [r.to_dict() for r in results], "notes": []}


def _chromium_load(path: Path, chromium: str) -> float:
    with tempfile.TemporaryDirectory() as profile:
        t0 = time.perf_counter()
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        "--dump-dom", path.as_uri()],
                       check=True, capture_output=True, timeout=600)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("explain_json", nargs="?", help="the output of `sourceip explain -o json`")
    ap.add_argument("--services", type=int, default=2000,
                    help="without a file: generate and explain this many Services")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "")
    args = ap.parse_args()
    if args.explain_json:
        doc = json.loads(Path(args.explain_json).read_text())
    else:
        doc = _explain_generated(args.services)
    t0 = time.perf_counter()
    page = render_report(doc)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "report.html"
        out.write_text(page)
        size = out.stat().st_size
        load = _chromium_load(out, args.chromium) if args.chromium else None
    n = len(doc.get("services") or [])
    print(f"{n} Service ports; report {size / 2**20:.1f} MiB, rendered in {t1 - t0:.2f} s"
          + (f", Chromium load + DOM dump {load:.1f} s" if load is not None
             else " (no chromium: load not measured)"))


if __name__ == "__main__":
    main()
