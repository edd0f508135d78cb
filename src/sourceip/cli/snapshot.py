"""``sourceip snapshot``: everything read from a live cluster, written as one ``kind: List`` (the
``-f`` input format), to attach to a bug report and re-run offline with ``-f FILE``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from sourceip.cli.common import controller_hints, live_options, live_options_of, reading_progress


@click.command()
@live_options
@click.option("-o", "--output", "path", metavar="FILE", default="-", show_default=True,
              help="Where to write the snapshot: a .json file, a .yaml/.yml file, or - for "
                   "standard output (JSON).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Load the snapshot as `sourceip explain -f FILE` would, after writing it "
                   "(an error there exits 1; the file is kept for the bug report).")
def snapshot(path: str, check: bool) -> None:
    """Read the cluster of the kubeconfig's current context (or --context, --kubeconfig; -n to
    read one namespace) and write what was read as a `kind: List`, so that
    `sourceip explain -f FILE` answers offline as `sourceip explain --kubeconfig ...` does.

    Container env values and managedFields are left out; review the file before sharing it
    (it holds your Services, Pods and ingress ConfigMaps)."""
    from sourceip.sources.live import raws_of, read_live, snapshot_list

    ctx = click.get_current_context()
    live = live_options_of(ctx, force=True)
    where = f"context {live.context}" if live.context else "the cluster"
    with reading_progress(ctx, where) as bar:
        def step(plural: str, count: int) -> None:
            bar.update(f"reading {where}: {count:,} {plural}")

        read = read_live(live, controllers=controller_hints(), progress=step)
    data = snapshot_list(read)
    fmt = "yaml" if path.endswith((".yaml", ".yml")) else "json"
    _write(data, path, fmt)
    counts = ", ".join(f"{n:,} {k}" for k, n in read.counts.items() if n)
    shown = "standard output" if path == "-" else path
    click.echo(f"snapshot of {read.source}: {counts} (read in {read.seconds:.1f} s) written to "
               f"{shown}; re-run offline with `sourceip explain -f {path}`", err=True)
    for note in read.notes:
        click.echo(f"note: {note}", err=True)
    if check:
        from sourceip.sources.convert import build_cluster

        build_cluster(raws_of(read))


def _write(data: Any, path: str, fmt: str) -> None:
    if fmt == "yaml":
        from sourceip.cli.common import to_yaml

        text = to_yaml(data)
    else:
        text = _json(data)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc.strerror}",
                                 param_hint="'-o'") from None


def _json(data: Any) -> str:
    try:
        import orjson
    except ImportError:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    text: str = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")
    return text + "\n"
