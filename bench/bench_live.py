"""Reading the scalability-limit cluster live (the kubernetes client, paged lists from a stand-in
API server on 127.0.0.1) against loading the same cluster from one `kubectl get -o json` file.

    python bench/bench_live.py                 # generate 5,000 nodes / 10,000 Services /
                                               # 150,000 pods (bench/gen_cluster.py) first
    python bench/bench_live.py /tmp/cluster.json --page-size 500

Each phase runs in a fresh subprocess (its peak RSS is its own); the API server runs in another
process (tests/live/apiserver.py: it answers as kube-apiserver does, encoding each page with
orjson when installed), so its work is not counted in the reader's CPU time. Printed: wall and
CPU seconds and peak RSS of ``load_cluster([file])`` and of ``load_live(kubeconfig)``, their
ratios, the number of requests; and, on the first pages of pods, the cost of the client's model
objects (``CoreV1Api.list_pod_for_all_namespaces``) against the raw JSON sourceip reads.
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "live"))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(path: str, port_file: str) -> None:
    """The API server process: load the cluster, serve it until killed."""
    from apiserver import FakeAPIServer

    with open(path, "rb") as fh:
        try:
            import orjson

            doc = orjson.loads(fh.read())
        except ImportError:
            doc = json.loads(fh.read())
    srv = FakeAPIServer(doc["items"], copy=False)
    srv.start()
    srv.kubeconfig(port_file + ".kubeconfig")
    Path(port_file).write_text(str(srv.port))
    while True:
        time.sleep(3600)


def _phase(name: str, arg: str, page_size: int, pages: int) -> dict[str, Any]:
    import gc

    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {}
    if name == "file":
        from sourceip.sources import load_cluster

        cluster = load_cluster([arg])
    elif name == "live":
        from sourceip.cli.common import controller_hints
        from sourceip.sources.live import LiveOptions, load_live

        cluster, read = load_live(LiveOptions(kubeconfig=arg, page_size=page_size),
                                  controllers=controller_hints())
        out["notes"] = read.notes
    else:  # "raw" / "models": the first `pages` pages of pods, nothing else
        out.update(_pods(name, arg, page_size, pages))
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["peak_rss_mib"] = _peak_mib()
    if name in ("file", "live"):
        out.update(nodes=len(cluster.nodes), pods=len(cluster.pods),
                   services=len(cluster.services), slices=len(cluster.endpoint_slices))
    return out


def _pods(how: str, kubeconfig: str, page_size: int, pages: int) -> dict[str, Any]:
    """Read ``pages`` pages of pods as the client's models or as raw JSON (time after the
    client is imported and configured)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=kubeconfig, persist_config=False)
    core = client.CoreV1Api(api_client)
    t0 = time.perf_counter()
    token, n = None, 0
    for _ in range(pages):
        kw: dict[str, Any] = {"limit": page_size}
        if token:
            kw["_continue"] = token
        if how == "models":
            page = core.list_pod_for_all_namespaces(**kw)
            items = [api_client.sanitize_for_serialization(p) for p in page.items]
            token = page.metadata._continue
        else:
            resp = core.list_pod_for_all_namespaces(_preload_content=False, **kw)
            doc = json.loads(resp.data)
            items = doc["items"]
            token = doc["metadata"].get("continue")
        n += len(items)
        if not token:
            break
    return {"pods": n, "read_seconds": time.perf_counter() - t0}


def _run(name: str, arg: str, page_size: int, pages: int = 0) -> dict[str, Any]:
    res = subprocess.run([sys.executable, __file__, "--phase", name, "--page-size",
                          str(page_size), "--pages", str(pages), arg], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "NO_PROXY": "127.0.0.1"})
    result: dict[str, Any] = json.loads(res.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", help="a cluster JSON file (default: generate one)")
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--pages", type=int, default=20,
                    help="pages of pods for the models-vs-raw comparison")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.path, args.serve)
        return 0
    if args.phase:
        print(json.dumps(_phase(args.phase, args.path, args.page_size, args.pages)))
        return 0
    tmpdir = tempfile.mkdtemp(prefix="bench-live-")
    path = args.path
    if path is None:
        sys.path.insert(0, str(HERE))
        import gen_cluster

        path = os.path.join(tmpdir, "cluster.json")
        gen_cluster.main(["-o", path])
    port_file = os.path.join(tmpdir, "port")
    server = subprocess.Popen([sys.executable, __file__, "--serve", port_file, path])
    try:
        deadline = time.monotonic() + 600
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the API server did not start")
            time.sleep(0.2)
        kubeconfig = port_file + ".kubeconfig"
        size = os.path.getsize(path) / 2**20
        print(f"cluster: {path} ({size:.0f} MiB); API server on 127.0.0.1:"
              f"{Path(port_file).read_text()}; page size {args.page_size}")
        f = _run("file", path, args.page_size)
        live = _run("live", kubeconfig, args.page_size)
        print(f"  file  load_cluster:  {f['seconds']:6.1f} s wall  {f['cpu_seconds']:6.1f} s CPU  "
              f"peak {f['peak_rss_mib']:6.0f} MiB  ({f['pods']:,} pods, {f['nodes']:,} nodes, "
              f"{f['services']:,} Services, {f['slices']:,} slices)")
        print(f"  live  load_live:     {live['seconds']:6.1f} s wall  {live['cpu_seconds']:6.1f} s "
              f"CPU  peak {live['peak_rss_mib']:6.0f} MiB  ({live['pods']:,} pods)")
        print(f"  ratio live / file:   {live['seconds'] / f['seconds']:.2f}x wall, "
              f"{live['cpu_seconds'] / f['cpu_seconds']:.2f}x CPU, "
              f"{live['peak_rss_mib'] / f['peak_rss_mib']:.2f}x peak memory")
        assert (live["pods"], live["nodes"], live["services"]) == (f["pods"], f["nodes"],
                                                                   f["services"])
        if args.pages:
            raw = _run("raw", kubeconfig, args.page_size, args.pages)
            models = _run("models", kubeconfig, args.page_size, args.pages)
            print(f"  {raw['pods']:,} pods as raw JSON: {raw['read_seconds']:.2f} s; as the "
                  f"client's models: {models['read_seconds']:.2f} s "
                  f"({models['read_seconds'] / raw['read_seconds']:.1f}x)")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
