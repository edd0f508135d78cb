"""Measure loading a cluster file: wall time of each phase and peak RSS.

    python bench/gen_cluster.py -o /tmp/cluster.json      # 5,000 nodes / 10,000 Services /
    python bench/bench_load.py /tmp/cluster.json          # 150,000 pods (target: <= 15 s)
    python bench/bench_load.py --generate                 # generate to a temp file first

A YAML file (``.yaml``/``.yml``) is measured the same way, its floor being PyYAML's C loader
alone. JSON files are read by orjson when it is installed (the ``fast`` extra; the parser in
use is printed), so its floor is ``orjson.loads`` then.

Prints the time of the parse alone (the floor), of ``load_cluster`` end to end, their ratio,
and the process's peak RSS (``resource.getrusage``; it includes the json-only run's peak, which
is lower than the full load's). Each phase runs in a fresh subprocess with ``--phase`` so that
one's memory does not count towards the other's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 15.0


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _phase(name: str, path: str) -> dict[str, float | int]:
    import gc

    gc.collect()
    rss0 = _peak_mib()
    t0 = time.perf_counter()
    c0 = time.process_time()
    if name == "json":
        gc.disable()  # the floor: load_cluster pauses the collector too
        with open(path, "rb") as fh:
            data = fh.read()
        if path.endswith((".yaml", ".yml")):
            import yaml

            doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        else:
            try:
                import orjson

                doc = orjson.loads(data)
            except ImportError:
                doc = json.loads(data)
        count = len(doc["items"])
    else:
        from sourceip.sources import load_cluster

        cluster = load_cluster([path])
        count = (len(cluster.nodes) + len(cluster.pods) + len(cluster.services)
                 + len(cluster.endpoint_slices))
        endpoints = sum(len(s.endpoints) for s in cluster.endpoint_slices)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    out: dict[str, float | int] = {"seconds": seconds, "cpu_seconds": cpu, "objects": count,
                                   "peak_rss_mib": _peak_mib(), "start_rss_mib": rss0}
    if name == "load":
        out.update(nodes=len(cluster.nodes), pods=len(cluster.pods),
                   services=len(cluster.services), slices=len(cluster.endpoint_slices),
                   endpoints=endpoints)
    return out


def _json_parser() -> str:
    try:
        import orjson
    except ImportError:
        return "json (stdlib; install the fast extra for orjson)"
    return f"orjson {orjson.__version__}"


def _run_phase(name: str, path: str) -> dict[str, float | int]:
    res = subprocess.run([sys.executable, __file__, "--phase", name, path], check=True,
                         capture_output=True, text=True)
    result: dict[str, float | int] = json.loads(res.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="measure load_cluster on a big cluster file")
    ap.add_argument("path", nargs="?")
    ap.add_argument("--generate", action="store_true",
                    help="generate the full-size cluster first (bench/gen_cluster.py)")
    ap.add_argument("--phase", choices=["json", "load"], help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(_phase(args.phase, args.path)))
        return 0
    path = args.path
    tmp = None
    if args.generate or path is None:
        sys.path.insert(0, str(Path(__file__).parent))
        import gen_cluster

        tmp = tempfile.NamedTemporaryFile(suffix=".json", delete=False)  # noqa: SIM115
        tmp.close()
        t = time.perf_counter()
        gen_cluster.main(["-o", tmp.name])
        print(f"generated {tmp.name} in {time.perf_counter() - t:.1f} s")
        path = tmp.name
    try:
        size = os.path.getsize(path) / 2**20
        jsons = [_run_phase("json", path) for _ in range(args.repeat)]
        best_j = min(jsons, key=lambda r: r["seconds"])
        best_json = best_j["seconds"]
        loads = [_run_phase("load", path) for _ in range(args.repeat)]
        best = min(loads, key=lambda r: r["seconds"])
        load_avg = os.getloadavg()[0]
        print(f"file: {path} ({size:.0f} MiB)")
        print(f"objects: nodes={best['nodes']} pods={best['pods']} services={best['services']} "
              f"slices={best['slices']} endpoints={best['endpoints']}")
        print(f"JSON parser: {_json_parser()}")
        print(f"parse alone:       {best_json:6.2f} s wall, {best_j['cpu_seconds']:6.2f} s CPU "
              f"(peak RSS {best_j['peak_rss_mib']:.0f} MiB)")
        print(f"load_cluster:      {best['seconds']:6.2f} s wall, {best['cpu_seconds']:6.2f} s CPU "
              f"({best['seconds'] / best_json:.1f}x the parse; target <= {TARGET_SECONDS:.0f} s)")
        print(f"peak RSS (load):   {best['peak_rss_mib']:6.0f} MiB")
        print(f"load average while measuring: {load_avg:.1f} on {os.cpu_count()} CPUs")
        return 0 if best["seconds"] <= TARGET_SECONDS else 1
    finally:
        if tmp is not None:
            os.unlink(tmp.name)


if __name__ == "__main__":
    sys.exit(main())
