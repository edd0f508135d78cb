"""Loading the cluster model from what users have: manifests, ``kubectl get -o yaml|json``
output, built-in examples, or plain dicts.

::

    load_cluster(["cluster.yaml", "dir/", "-"]) -> Cluster
    load_example("seed") -> Cluster
    list_examples() -> [(name, description), ...]
    cluster_from_objects([{"kind": "Service", ...}, ...]) -> Cluster

Errors are ``InputError``s (exit 1) reading ``file:line: field.path: message``; nothing
half-loaded is ever returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import IO, Any

from sourceip.cluster.cluster import Cluster
from sourceip.errors import LookupFailed
from sourceip.sources.convert import (
    DEFAULT_NODE_PORT_RANGE,
    NodePortRange,
    build_cluster,
    cluster_from_objects,
)
from sourceip.sources.manifests import parse_text, read_inputs

__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "cluster_from_objects",
    "example_text",
    "list_examples",
    "load_cluster",
    "load_example",
]


def load_cluster(
    paths: Sequence[str],
    *,
    stdin: IO[str] | None = None,
    node_port_range: NodePortRange = DEFAULT_NODE_PORT_RANGE,
    recursive: bool = False,
) -> Cluster:
    """The cluster described by ``paths`` (files, directories of *.yaml/*.yml/*.json — their
    subdirectories too with ``recursive`` —, or ``-`` for ``stdin``). ``node_port_range`` is
    the API server's --service-node-port-range that nodePorts must lie in; ``None`` disables
    the check."""
    return build_cluster(read_inputs(paths, stdin=stdin, recursive=recursive),
                         node_port_range=node_port_range)


def _examples_dir() -> Any:
    return resources.files("sourceip.sources").joinpath("examples")


def list_examples() -> list[tuple[str, str]]:
    """``(name, description)`` of each built-in example; the description is the first comment
    line of its YAML."""
    out = []
    for entry in sorted(_examples_dir().iterdir(), key=lambda e: e.name.split(".")[0]):
        if not entry.name.endswith(".yaml"):
            continue
        first = entry.read_text(encoding="utf-8").lstrip().splitlines()[0]
        desc = first.lstrip("#").strip() if first.startswith("#") else ""
        out.append((entry.name[: -len(".yaml")], desc))
    return out


def example_text(name: str) -> str:
    """The YAML of the built-in example ``name``; ``LookupFailed`` names the known ones."""
    entry = _examples_dir().joinpath(f"{name}.yaml")
    if "/" in name or not entry.is_file():
        known = ", ".join(n for n, _ in list_examples())
        raise LookupFailed(f"no example named {name!r} (examples: {known})")
    text: str = entry.read_text(encoding="utf-8")
    return text


def load_example(name: str, *, node_port_range: NodePortRange = DEFAULT_NODE_PORT_RANGE
                 ) -> Cluster:
    """The built-in example cluster ``name`` (see ``list_examples``)."""
    text = example_text(name)
    return build_cluster(parse_text(text, f"example:{name}"), node_port_range=node_port_range)

