"""The paths explain lists, as probes a real network can check (used by the lab).

Each probe names a client that exists in the cluster (a pod, a node, or the external client),
the destination, and the predicted outcomes taken from the same traces explain reports.
Paths whose client is synthetic (no real pod on that node) are left out: nothing could send them.

Ingress paths (kind ``ingress``) become two HTTP probes each: the plain request and the same
request with a forged ``X-Forwarded-For``. Their outcomes come from the path's ``app_sees``
branches (one per L4 outcome that reaches a controller pod, with its probability): the backend
pod that answers, the peer it sees, the headers it receives, and the client the recommended
strategy resolves; an L4 outcome that never reaches the controller stays ``dropped`` /
``rejected``, a request the controller refuses is ``failed``. Paths through the load balancer
(``through-lb``, and ingress paths entering through it) are sent to the LoadBalancer IP and
left to the lab's load balancer (``via_lb``) rather than steered to one node.

Direct paths (kinds ``hostnetwork`` and ``hostport``, ``explain.direct_paths``) come with the
Services when no Service is named: they go to a node's own address (or ``127.0.0.1`` from the
node), which the lab's router reaches without steering; a node where nothing listens is
predicted ``rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sourceip.cluster import Cluster, Service, ServicePort, service_port_endpoints
from sourceip.dataplane.tracer import DEFAULT_EXTERNAL_IP6
from sourceip.explain.engine import Explainer, PathResult

# Controllers the lab runs for real (Debian packages); the others' ingress paths are skipped.
LAB_CONTROLLERS: dict[str, str] = {"ingress-nginx": "nginx", "haproxy": "haproxy"}
FORGED_HEADER = ("X-Forwarded-For", "6.6.6.6")


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOutcome:
    """One predicted result of an HTTP probe through an ingress controller."""

    probability: float
    disposition: str  # delivered | failed | dropped | rejected
    endpoint: str | None = None  # the backend pod ip:port
    peer: str | None = None  # the source address the backend sees (the controller pod)
    headers: tuple[tuple[str, str], ...] = ()
    resolved_client: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictedProbe:
    """One path to probe and what the trace predicts for it."""

    id: str
    client: str  # "pod/NS/NAME" | "node/NAME" | "external"
    via_node: str | None
    proto: str  # tcp | udp | http
    dst_ip: str
    dst_port: int
    description: str
    outcomes: tuple[tuple[float, str, str | None, str | None], ...]
    # (probability, disposition, endpoint "ip:port", seen source)
    kind: str = ""
    via_lb: bool = False  # through the load balancer (not steered to one node)
    http_host: str = ""
    http_path: str = "/"
    http_headers: tuple[tuple[str, str], ...] = ()
    http_outcomes: tuple[HttpOutcome, ...] = ()
    strategy: str = ""  # the clientip strategy's constructor call (ingress paths)
    skip: str = ""  # why the lab cannot probe this path (it is reported, not probed)
    # a proxying load balancer's PROXY header: the client address the backend decodes from it
    proxy_source: str | None = None


def path_probe_id(service: str, port: str, family: int, n: int) -> str:
    """The probe id of path ``n`` of an explanation (``port`` as ``ServiceExplanation.port``):
    ``default/web:80/tcp#3``; IPv6 paths of a Service are probed apart from its IPv4 ones,
    ``default/web:80/tcp/ipv6#3``."""
    return f"{service}:{port.split()[-1]}{'/ipv6' if family == 6 else ''}#{n}"


def _client(p: PathResult) -> str | None:
    c = p.client
    if c.startswith("pod/"):
        return c if not c.startswith("pod/(") else None
    if c.startswith("node/"):
        return c
    if c.startswith("external"):
        return "external"
    return None


def ingress_backend(cluster: Cluster, svc: Service, sp: ServicePort) -> str | None:
    """The endpoint ``ip:port`` an ingress controller proxies to for ``svc``:``sp`` (the
    first endpoint, as explain's ingress paths take it); the lab renders the same upstream."""
    eps = list(service_port_endpoints(cluster, svc, sp))
    return f"{eps[0].ip}:{eps[0].port}" if eps else None


def _entry(p: PathResult, cluster: Cluster) -> tuple[str | None, bool]:
    """(via_node, via_lb) for a path from the external client."""
    if p.kind == "through-lb" or (p.kind == "ingress" and p.load_balancer is not None):
        return None, True
    if p.kind in ("loadbalancer", "external-ip"):
        return (p.nodes[0] if p.nodes else None), False
    if p.kind == "ingress":
        dst = str(p.trace.original.dst)
        node_ips = {str(ip) for n in cluster.nodes for ip in n.internal_ips}
        if dst not in node_ips and p.nodes:
            return p.nodes[0], False  # an externalIP: the router must pick the node
    return None, False


def _http_host(app: dict[str, Any]) -> str:
    host = str(app.get("host") or "")
    return host if host and host != "*" and "*" not in host else "sourceip.test"


def _ingress_outcomes(p: PathResult, backend: str | None, *, forged: bool
                      ) -> tuple[HttpOutcome, ...]:
    app = p.app_sees or {}
    out: list[HttpOutcome] = []
    for b in app.get("branches", []):
        view = b.get("forged", {}) if forged else b
        note = (f"controller {b.get('controller_pod')} sees "
                f"{b.get('controller_remote_addr')}")
        if not b.get("ok", False) or backend is None:
            out.append(HttpOutcome(probability=float(b.get("probability", 0.0)),
                                   disposition="failed",
                                   note=f"{note}: {b.get('error') or 'no backend'}"))
            continue
        headers = tuple((str(k), str(v)) for k, v in dict(view.get("headers", {})).items())
        out.append(HttpOutcome(
            probability=float(b.get("probability", 0.0)), disposition="delivered",
            endpoint=backend, peer=b.get("peer"), headers=headers,
            resolved_client=view.get("resolved_client"), note=note))
    for o in p.trace.outcomes:
        if o.disposition in ("dropped", "rejected"):
            out.append(HttpOutcome(probability=float(o.probability),
                                   disposition=o.disposition,
                                   note="never reaches the controller"))
    return tuple(out)


def _ingress_probes(p: PathResult, cluster: Cluster, service_key: str, port_text: str,
                    base_id: str, description: str, via: str | None, via_lb: bool
                    ) -> list[PredictedProbe]:
    app = p.app_sees or {}
    t = p.trace.original
    controller = str(app.get("controller", ""))
    skip = ""
    if controller not in LAB_CONTROLLERS:
        skip = (f"{controller} is not run in the lab (not packaged in Debian): its prediction "
                "is checked against its documented semantics in tests/ingress only")
    backend = None
    svc = cluster.service_by_key.get(service_key)
    if svc is not None:
        number, _, proto = port_text.split()[-1].partition("/")
        sp = next((x for x in svc.ports
                   if str(x.port) == number and x.protocol == (proto or "tcp")), None)
        if sp is not None:
            backend = ingress_backend(cluster, svc, sp)
    host = _http_host(app)
    path = str(app.get("path") or "/")
    common: dict[str, Any] = {
        "client": "external", "via_node": via, "via_lb": via_lb, "proto": "http",
        "dst_ip": str(t.dst), "dst_port": t.dport, "outcomes": (), "kind": "ingress",
        "http_host": host, "http_path": path if path.startswith("/") else "/" + path,
        "strategy": str(app.get("strategy") or ""), "skip": skip,
    }
    forged = tuple((str(k), str(v)) for k, v in app.get("forged_request") or [FORGED_HEADER])
    return [
        PredictedProbe(id=base_id, description=description,
                       http_outcomes=_ingress_outcomes(p, backend, forged=False), **common),
        PredictedProbe(id=base_id + "+forged",
                       description=f"{description} (forged headers)",
                       http_headers=forged,
                       http_outcomes=_ingress_outcomes(p, backend, forged=True), **common),
    ]


def predicted_probes(cluster: Cluster, *, external_ip: str,
                     services: list[str] | None = None,
                     per_node: bool = True, external_ip6: str = "") -> list[PredictedProbe]:
    """Every explain path of ``services`` (default all) with a real client, as probes; with
    ``per_node`` every node is probed, not one representative per group of alike nodes.
    ``external_ip6``: the external client's IPv6 address (default: explain's)."""
    out: list[PredictedProbe] = []
    explainer = Explainer(cluster, external_ip=external_ip, expand_groups=per_node,
                          external_ip6=external_ip6 or DEFAULT_EXTERNAL_IP6)
    # A controller (nginx, haproxy) consumes the PROXY header itself; echo servers report it.
    controller_svcs = ({s.key for c in explainer.discovery.controllers for s in c.services}
                       if cluster.ingresses else set())
    for e in explainer.explain(services):
        for n, p in enumerate(e.paths):
            client = _client(p)
            if client is None:
                continue
            t = p.trace.original
            pid = path_probe_id(e.service, e.port, e.family, n)
            description = f"{e.service}: {p.title}"
            via, via_lb = _entry(p, cluster) if client == "external" else (None, False)
            if p.kind == "ingress":
                out += _ingress_probes(p, cluster, e.service, e.port, pid, description, via,
                                       via_lb)
                continue
            outcomes = tuple(
                (float(o.probability), o.disposition, o.endpoint,
                 str(o.seen_source) if o.seen_source is not None else None)
                for o in p.trace.outcomes)
            lbd = p.load_balancer or {}
            proxy_source = (str(lbd.get("client") or t.src)
                            if p.kind == "through-lb" and lbd.get("proxy_protocol")
                            and e.service not in controller_svcs else None)
            out.append(PredictedProbe(
                id=pid, client=client, via_node=via, via_lb=via_lb, kind=p.kind,
                proto=t.proto, dst_ip=str(t.dst), dst_port=t.dport,
                description=description, outcomes=outcomes, proxy_source=proxy_source))
    return out
