"""Helpers for the sources tests: write manifests to tmp files and run the CLI."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write(name, text)``: a dedented file under tmp_path."""

    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
        return p

    return _write


def run_cli(args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """Run the real entry point ``sourceip.cli.main.main`` (which maps errors to exit codes and
    calls ``sys.exit``) in click's isolation; returns (exit code, stdout, stderr)."""
    from sourceip.cli.main import main

    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:  # click 8.2 keeps stderr apart and has no mix_stderr
        runner = CliRunner()
    code = 0
    with runner.isolation(input=stdin) as streams:
        out, err = streams[0], streams[1]
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """``cli(args, stdin=None)`` → (exit code, stdout, stderr) through the real ``main``, with a
    ``load-check`` command registered that loads the cluster via ``cluster_options`` and
    prints counts (the loading commands themselves belong to other modules)."""
    import sys
    import types

    import click

    from sourceip.cli import main as main_mod
    from sourceip.cli.common import cluster_options, load_from_options

    @click.command("load-check")
    @cluster_options
    def load_check(filenames: tuple[str, ...], example: str | None) -> None:
        cluster = load_from_options(filenames, example)
        click.echo(f"nodes={len(cluster.nodes)} pods={len(cluster.pods)} "
                   f"services={len(cluster.services)}")

    module = types.ModuleType("_sourceip_test_loadcheck")
    module.load_check = load_check  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_sourceip_test_loadcheck", module)
    monkeypatch.setitem(main_mod.COMMANDS, "load-check", "_sourceip_test_loadcheck:load_check")
    return run_cli
