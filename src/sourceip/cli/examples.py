"""``sourceip examples``: the built-in example clusters (``--show NAME`` prints one's YAML)."""

from __future__ import annotations

import click

from sourceip.cli.common import emit, output_option


@click.command("examples")
@click.option("--show", "show", metavar="NAME", default=None,
              help="Print the YAML of one example (usable as `-f -`).")
@output_option(("text", "json", "yaml"))
def examples(show: str | None, output: str) -> None:
    """List the built-in example clusters usable with --example NAME."""
    from sourceip.sources import example_text, list_examples, load_example

    if show is not None:
        text = example_text(show)
        if output == "text":
            click.echo(text, nl=False)
        else:
            import yaml

            docs = [d for d in yaml.safe_load_all(text) if d is not None]
            emit({"apiVersion": "v1", "kind": "List", "items": docs}, output)
        return
    items = list_examples()
    if output != "text":
        rows = []
        for name, desc in items:
            cluster = load_example(name)
            rows.append({"name": name, "description": desc, "nodes": len(cluster.nodes),
                         "pods": len(cluster.pods), "services": len(cluster.services)})
        emit(rows, output)
        return
    width = max((len(n) for n, _ in items), default=0)
    for name, desc in items:
        click.echo(f"{name:<{width}}  {desc}")
    click.echo("\nUse one with: sourceip <command> --example NAME; "
               "see its YAML with: sourceip examples --show NAME")
