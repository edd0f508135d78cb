"""The paths explain lists, as probes a real network can check (used by the lab).

Each probe names a client that exists in the cluster (a pod, a node, or the external client),
the destination, and the predicted outcomes taken from the same traces explain reports.
Paths whose client is synthetic (no real pod on that node) are left out: nothing could send them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sourceip.cluster import Cluster
from sourceip.explain.engine import Explainer, PathResult


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictedProbe:
    """One path to probe and what the trace predicts for it."""

    id: str
    client: str  # "pod/NS/NAME" | "node/NAME" | "external"
    via_node: str | None
    proto: str
    dst_ip: str
    dst_port: int
    description: str
    outcomes: tuple[tuple[float, str, str | None, str | None], ...]
    # (probability, disposition, endpoint "ip:port", seen source)


def _client(p: PathResult) -> str | None:
    c = p.client
    if c.startswith("pod/"):
        return c if not c.startswith("pod/(") else None
    if c.startswith("node/"):
        return c
    if c.startswith("external"):
        return "external"
    return None


def predicted_probes(cluster: Cluster, *, external_ip: str,
                     services: list[str] | None = None,
                     per_node: bool = True) -> list[PredictedProbe]:
    """Every explain path of ``services`` (default all) with a real client, as probes; with
    ``per_node`` every node is probed, not one representative per group of alike nodes."""
    out: list[PredictedProbe] = []
    explainer = Explainer(cluster, external_ip=external_ip, expand_groups=per_node)
    for e in explainer.explain(services):
        for n, p in enumerate(e.paths):
            client = _client(p)
            if client is None:
                continue
            t = p.trace.original
            via = p.nodes[0] if p.kind in ("loadbalancer", "external-ip") else None
            outcomes = tuple(
                (float(o.probability), o.disposition, o.endpoint,
                 str(o.seen_source) if o.seen_source is not None else None)
                for o in p.trace.outcomes)
            out.append(PredictedProbe(
                id=f"{e.service}:{e.port.split()[-1]}#{n}", client=client, via_node=via,
                proto=t.proto, dst_ip=str(t.dst), dst_port=t.dport,
                description=f"{e.service}: {p.title}", outcomes=outcomes))
    return out
