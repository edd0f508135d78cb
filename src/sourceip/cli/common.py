"""Helpers every command shares: where the cluster comes from, and how output is written.

::

    @click.command()
    @cluster_options
    @output_option()
    def rules(filenames: tuple[str, ...], example: str | None, output: str) -> None:
        cluster = load_from_options(filenames, example)
        ...
        emit(data, output)          # json / yaml; text is the command's own rendering
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from sourceip.cluster.cluster import Cluster

F = TypeVar("F", bound=Callable[..., Any])


def cluster_options(f: F) -> F:
    """Add ``-f/--filename PATH`` (repeatable: a file, a directory or ``-`` for stdin) and
    ``--example NAME`` to a command; its function receives ``filenames`` and ``example`` and
    passes them to ``load_from_options``."""
    f = click.option(
        "--example", "example", metavar="NAME", default=None,
        help="Use a built-in example cluster (see `sourceip examples`).")(f)
    f = click.option(
        "-f", "--filename", "filenames", metavar="PATH", multiple=True,
        help="Manifests: a YAML/JSON file, a directory of them, or - for stdin "
             "(kubectl get -o yaml|json output works as is). Repeatable.")(f)
    return f


def load_from_options(filenames: Sequence[str], example: str | None) -> Cluster:
    """The cluster named by the options: exactly one of ``-f`` (any number of times) or
    ``--example``, else a usage error (exit 2). Input errors propagate as ``InputError``
    (exit 1, ``error: file:line: field: message``)."""
    from sourceip.sources import load_cluster, load_example

    if filenames and example:
        raise click.UsageError("give either -f/--filename or --example, not both")
    if not filenames and not example:
        raise click.UsageError(
            "no cluster given: use -f PATH (a file, a directory or - for stdin) or "
            "--example NAME (see `sourceip examples`)")
    if example:
        return load_example(example)
    if list(filenames).count("-") > 1:
        raise click.UsageError("stdin (-f -) can be given only once")
    stdin = click.get_text_stream("stdin") if "-" in filenames else None
    cluster = load_cluster(list(filenames), stdin=stdin)
    # The snapshot lives until the command ends: keep the garbage collector from rescanning
    # its (possibly millions of) objects on every collection.
    gc.collect()
    gc.freeze()
    return cluster


def output_option(
    choices: Sequence[str] = ("text", "json", "yaml", "wide"), default: str | None = None
) -> Callable[[F], F]:
    """``-o/--output FORMAT`` (the function receives ``output``); the default is the first
    choice."""
    def deco(f: F) -> F:
        return click.option(
            "-o", "--output", "output", type=click.Choice(list(choices)),
            default=default or choices[0], show_default=True,
            help="Output format.")(f)

    return deco


def to_yaml(data: Any) -> str:
    """YAML with keys in insertion order (the same order as the JSON)."""
    import yaml

    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
    return text


def emit(data: Any, fmt: str) -> None:
    """Write ``data`` as JSON (insertion order, indent 2) or YAML; a ``str`` is written as is
    for ``text``/``wide``."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        click.echo(to_yaml(data), nl=False)
    elif isinstance(data, str):
        click.echo(data, nl=not data.endswith("\n"))
    else:
        raise ValueError(f"emit: format {fmt!r} needs text rendered by the command")
