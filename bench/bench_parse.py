"""Benchmark: parsing a real-size dump -- a 500k-line iptables-save and an equally large
``nft list ruleset`` listing -- into the rule IR.

The dumps are generated with our renderers from ``bench/gen_cluster.py``'s cluster (5,000
nodes, 10,000 Services, 150,000 pods by default): the first node's ruleset in iptables mode
(``render_iptables``) and in nftables mode written as ``nft list ruleset`` prints it (tables,
sets with their elements, chains with their rules: ``_listing``; ``render_nft`` writes the
``nft -f`` command form, parsed too for comparison). Services are added in copies of the
cluster until each dump has at least ``--lines`` lines.

Figures printed, all from one run: lines, seconds, lines/s, and a reference in the same run:
the time to split every line into words (``str.split``), so that a loaded machine's noise
shows as the ratio, not only as seconds. Peak RSS of the process at the end.

    python bench/bench_parse.py [--lines 500000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sourceip.kubeproxy import build_ruleset
from sourceip.netfilter.ir import Rule, Ruleset, Table
from sourceip.netfilter.parse_iptables import parse_iptables_save
from sourceip.netfilter.parse_nft import parse_nft_json
from sourceip.netfilter.parse_nft_text import parse_nft_text
from sourceip.netfilter.render_iptables import render_iptables
from sourceip.netfilter.render_nft import render_nft, rule_text
from sourceip.netfilter.render_nft_json import render_nft_json
from sourceip.sources import load_cluster

HERE = Path(__file__).parent


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("gen_cluster", HERE / "gen_cluster.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _listing_table(t: Table) -> list[str]:
    """One table as ``nft list ruleset`` prints it (tabs, elements on one line)."""
    out = [f"table {t.family} {t.name} {{"]
    if t.comment is not None:
        out.append(f'\tcomment "{t.comment}"')
    for s in [s for s in t.sets if not s.is_map] + [s for s in t.sets if s.is_map]:
        out.append(f"\t{'map' if s.is_map else 'set'} {s.name} {{")
        typ = " . ".join(s.key_types) + (f" : {s.value_type}" if s.is_map else "")
        out.append(f"\t\ttype {typ}")
        if s.flags:
            out.append("\t\tflags " + ",".join(s.flags))
        if s.comment is not None:
            out.append(f'\t\tcomment "{s.comment}"')
        if s.elements:
            elems = []
            for e in s.elements:
                key = " . ".join(str(k) for k in e.key)
                if e.value is not None:
                    key += " : " + rule_text(dataclasses.replace(
                        _EMPTY_RULE, actions=(e.value,)), t.family)
                elems.append(key)
            out.append("\t\telements = { " + ",\n\t\t\t     ".join(elems) + " }")
        out.append("\t}")
        out.append("")
    for c in t.chains:
        out.append(f"\tchain {c.name} {{")
        if c.hook is not None:
            out.append(f"\t\ttype {c.type or 'filter'} hook {c.hook} priority "
                       f"{c.priority or 0}; policy {(c.policy or 'accept').lower()};")
        out.extend("\t\t" + rule_text(r, t.family) for r in c.rules)
        out.append("\t}")
        out.append("")
    out.append("}")
    return out



_EMPTY_RULE = Rule()


def _listing(rs: Ruleset) -> str:
    lines: list[str] = []
    for t in rs.tables:
        lines += _listing_table(t)
    return "\n".join(lines) + "\n"


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best = float("inf")
    out: object = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _split_all(text: str) -> int:
    n = 0
    for line in text.splitlines():
        n += len(line.split())
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=150000)
    args = ap.parse_args(argv)

    doc = _gen().generate(nodes=args.nodes, services=args.services, pods=args.pods, seed=1)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        import json

        json.dump(doc, f)
        path = f.name
    cluster = load_cluster([path])
    Path(path).unlink()
    node = cluster.nodes[0]
    texts: dict[str, str] = {}
    for mode in ("iptables", "nftables"):
        cfg = dataclasses.replace(cluster.kube_proxy, mode=mode)
        rs = build_ruleset(cluster, node, cfg)
        text = render_iptables(rs) if mode == "iptables" else _listing(rs)
        if mode == "nftables" and text.count("\n") < args.lines:
            # kube-proxy's nftables rules are ~9x more compact than its iptables rules: the
            # listing reaches the target as copies of the table under other names
            # (kube-proxy-1, -2, ...), each a whole, valid table of the same shape
            copies = -(-args.lines // text.count("\n"))
            tables = tuple(dataclasses.replace(t, name=f"{t.name}-{i}") if i else t
                           for i in range(copies) for t in rs.tables)
            rs = dataclasses.replace(rs, tables=tables)
            text = _listing(rs)
            print(f"nftables: {copies} copies of the kube-proxy table")
        texts[mode] = text
        if mode == "nftables":
            texts["nft-commands"] = render_nft(rs)
            texts["nft-json"] = json.dumps(render_nft_json(rs))
    print(f"cluster: {len(cluster.nodes)} nodes, {len(cluster.services)} Services; "
          f"node {node.name}")
    rows = [
        ("iptables-save", texts["iptables"],
         lambda: parse_iptables_save(texts["iptables"], source="bench")),
        ("nft list ruleset (text)", texts["nftables"],
         lambda: parse_nft_text(texts["nftables"], source="bench")),
        ("nft -f commands (text)", texts["nft-commands"],
         lambda: parse_nft_text(texts["nft-commands"], source="bench")),
        ("nft -j (JSON)", texts["nft-json"],
         lambda: parse_nft_json(texts["nft-json"], source="bench")),
    ]
    print(f"{'dump':26} {'lines':>9} {'MB':>6} {'parse s':>8} {'lines/s':>10} "
          f"{'split s':>8} {'ratio':>6}")
    for name, text, fn in rows:
        lines = text.count("\n") + 1
        split_s, _ = _time(lambda t=text: _split_all(t), args.repeat)  # type: ignore[misc]
        secs, rs = _time(fn, args.repeat)
        assert isinstance(rs, Ruleset)
        print(f"{name:26} {lines:>9,} {len(text) / 1e6:>6.1f} {secs:>8.2f} "
              f"{lines / secs:>10,.0f} {split_s:>8.2f} {secs / split_s:>6.1f}")
        if name != "nft -j (JSON)" and lines < args.lines:
            print(f"  (below the {args.lines:,}-line target: raise --services/--pods)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
