"""explain's L7 step: the paths of a Service that an Ingress routes to.

For each Ingress rule whose backend is the Service: external client -> (load balancer) -> node
-> controller pod (the L4 path of the controller's own Service, traced like any other Service)
-> the controller's request to the backend pod (``sourceip.ingress.forward``, one truth per
controller) -> the address the app resolves with the recommended ``sourceip.clientip``
strategy. The same request is sent once more with a forged ``X-Forwarded-For`` to check that
the app cannot be fooled. Nothing here re-decides what kube-proxy or the controller does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sourceip.cluster import Pod, Service, ServicePort, service_port_endpoints
from sourceip.dataplane.trace import Outcome
from sourceip.dataplane.tracer import Start
from sourceip.net.addr import parse_ip

if TYPE_CHECKING:
    from sourceip.explain.engine import Explainer, PathResult
    from sourceip.ingress.discover import Controller, Discovery, IngressRoute

FORGED_IP = "6.6.6.6"
FORGED_HOPS = 4  # X-Forwarded-For entries a forging client sends
# Where each controller lists the peers whose forwarding headers it believes.
TRUST_SETTING = {
    "ingress-nginx": "proxy-real-ip-cidr",
    "traefik": "entryPoints.<name>.forwardedHeaders.trustedIPs",
    "envoy": "xff_trusted_cidrs / xff_num_trusted_hops",
    "envoy-gateway": "spec.clientIPDetection.xForwardedFor.trustedCIDRs",
    "haproxy": "the forwarded-for / proxy-protocol source lists",
}
DEFAULT_HOST = "example.test"  # the Host sent for a rule without a host (any host matches)
ENTRY_KINDS = ("nodeport", "through-lb", "external-ip")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the backend app receives for one request through a controller."""

    peer: str
    headers: tuple[tuple[str, str], ...]
    controller_client: str | None
    resolved: str | None
    ok: bool
    error: str | None
    provenance: tuple[tuple[str, str], ...]


def _route_matches(route: IngressRoute, svc: Service, sp: ServicePort) -> bool:
    if route.service is None or route.service.key != svc.key:
        return False
    want = route.path.service_port
    return want == sp.port if isinstance(want, int) else want == sp.name


def _http_port(csvc: Service) -> ServicePort | None:
    """The controller Service's plain-HTTP port (named http, else 80, else the first TCP)."""
    tcp = [p for p in csvc.ports if p.protocol == "tcp"]
    for p in tcp:
        if p.name == "http":
            return p
    for p in tcp:
        if p.port == 80:
            return p
    return tcp[0] if tcp else None


def controller_trusted_cidrs(explainer: Explainer, ctrl: Controller) -> list[str]:
    """What the app should trust: the controller pods' own addresses (/32, /128).

    Not their nodes' pod CIDRs: those hold the bridge address that kube-proxy masquerades to
    on the controller's node, and a controller that appends its peer to X-Forwarded-For
    would then have that hop skipped as trusted, handing the app the client's forged entry."""
    cidrs: list[str] = []
    for pod in ctrl.pods:
        for ip in pod.ips:
            text = f"{ip}/{32 if ip.version == 4 else 128}"
            if text not in cidrs:
                cidrs.append(text)
    return cidrs


def deliver(settings: Any, ctrl_pod: Pod, remote: str, proxy: tuple[str, int] | None,
            headers: list[tuple[str, str]], strategy: Any, *, host: str, port: int,
            proxy_dest: tuple[str, int] | None = None) -> Delivery:
    """One request to ``host`` through the controller listening on ``port`` and the app's
    resolution of it."""
    from sourceip.ingress import Connection, forward

    assert ctrl_pod.ip is not None
    fwd = forward(settings, Connection(peer=remote, peer_port=0, proxy=proxy,
                                       proxy_dest=proxy_dest if proxy else None), headers,
                  controller_ip=str(ctrl_pod.ip), host=host, port=port)
    resolved = None
    if fwd.ok:
        hdrs: dict[str, str] = {}
        for k, v in fwd.headers:
            lk = k.lower()
            hdrs[lk] = f"{hdrs[lk]}, {v}" if lk in hdrs else v
        res = strategy.resolve(fwd.peer, hdrs)
        resolved = res.ip if res.ip else None
    return Delivery(peer=fwd.peer, headers=tuple(fwd.headers),
                    controller_client=fwd.controller_client, resolved=resolved, ok=fwd.ok,
                    error=fwd.error, provenance=tuple(fwd.provenance))


def ingress_paths(explainer: Explainer, svc: Service, sp: ServicePort,
                  disc: Discovery) -> list[PathResult]:
    """The ingress paths to ``svc``:``sp``, one per entry (node group or load balancer) of
    each controller Service that serves an Ingress rule routed here."""
    from sourceip.explain.engine import Fix, PathResult

    out: list[PathResult] = []
    routes = [r for r in disc.routes if _route_matches(r, svc, sp)]
    seen_ctrl: set[tuple[str, str]] = set()
    for route in routes:
        ctrl = route.controller
        if ctrl is None:
            continue
        for csvc in ctrl.services:
            if (csvc.key, route.ingress.name) in seen_ctrl:
                continue
            seen_ctrl.add((csvc.key, route.ingress.name))
            csp = _http_port(csvc)
            if csp is None:
                continue
            cpaths = explainer.controller_paths(csvc, csp)
            # Behind a load balancer, clients come through it; otherwise through NodePorts
            # (and externalIPs).
            entries = [p for p in cpaths if p.kind == "through-lb"] or \
                [p for p in cpaths if p.kind in ENTRY_KINDS]
            if not entries:
                continue
            eps = [e for e in service_port_endpoints(explainer.cluster, svc, sp)]
            backend = f"{eps[0].ip}:{eps[0].port}" if eps else "-"
            for entry in entries:
                out.append(_one(explainer, route, ctrl, csvc, entry, svc, sp, backend,
                                PathResult, Fix))
    return out


def _one(explainer: Explainer, route: IngressRoute, ctrl: Controller, csvc: Service,
         entry: PathResult, svc: Service, sp: ServicePort, backend: str,
         path_cls: Any, fix_cls: Any) -> PathResult:
    from sourceip.ingress import recommend

    ing = route.ingress
    host = route.path.host or "*"
    trusted = controller_trusted_cidrs(explainer, ctrl)
    rec = recommend(ctrl.settings, trusted_cidrs=trusted)
    strategy = rec.build()
    client_ip = str(entry.trace.original.src)
    lb = entry.load_balancer or {}
    pp = lb.get("proxy_protocol")
    proxy = (lb.get("client") or client_ip, 40000) if pp in ("v1", "v2") else None
    proxy_dest = (str(entry.trace.original.dst), entry.trace.original.dport)
    req_host = route.path.host or DEFAULT_HOST
    forged_req = forged_request(ctrl.settings)
    branches: list[dict[str, Any]] = []
    findings: list[str] = []
    rewritten = list(entry.rewritten_by)
    real: bool | None = None
    forgeable = False
    first: Delivery | None = None
    delivered: list[Outcome] = [o for o in entry.trace.outcomes
                                if o.disposition == "delivered"]
    for o in delivered:
        ep_ip = (o.endpoint or "").rpartition(":")[0]
        ctrl_pod = next((p for p in ctrl.pods if str(p.ip) == ep_ip), None)
        if ctrl_pod is None or o.seen_source is None:
            continue
        remote = str(o.seen_source)
        listen = int((o.endpoint or ":80").rpartition(":")[2])
        kw: dict[str, Any] = {"host": req_host, "port": listen, "proxy_dest": proxy_dest}
        honest = deliver(ctrl.settings, ctrl_pod, remote, proxy, [], strategy, **kw)
        forged = deliver(ctrl.settings, ctrl_pod, remote, proxy, forged_req, strategy, **kw)
        peer = _l3_peer(explainer, ctrl_pod, svc, backend, sp)
        if first is None:
            first = honest
        ok_real = honest.ok and honest.resolved == client_ip
        real = ok_real if real is None else (real and ok_real)
        if forged.ok and forged.resolved == FORGED_IP:
            forgeable = True
        if not honest.ok and honest.error:
            findings.append(f"{ctrl.label}: every request on this path fails: {honest.error}")
        branches.append({
            "probability": float(o.probability),
            "controller_pod": ctrl_pod.key,
            "controller_remote_addr": remote,
            "peer": peer,
            "ok": honest.ok, "error": honest.error,
            "headers": _headers_dict(honest.headers),
            "controller_client": honest.controller_client,
            "resolved_client": honest.resolved,
            "provenance": dict(honest.provenance),
            "forged": {"header": "; ".join(f"{k}: {v}" for k, v in forged_req),
                       "headers": _headers_dict(forged.headers),
                       "resolved_client": forged.resolved,
                       "refused": forged.resolved != FORGED_IP},
        })
    if not branches:
        real = None
    b0 = branches[0] if branches else None
    app_sees = {
        "controller": ctrl.name, "controller_namespace": ctrl.namespace,
        "settings_from": ctrl.settings_from,
        "ingress": ing.key, "route_kind": ing.kind, "host": host, "path": route.path.path,
        "peer": b0["peer"] if b0 else None,
        "headers": b0["headers"] if b0 else {},
        "resolved_client": b0["resolved_client"] if b0 else None,
        "strategy": rec.strategy_code,
        "trusted_cidrs": trusted,
        "forgeable": forgeable,
        "forged_request": [list(h) for h in forged_req],
        "branches": branches,
    }
    if first is not None and first.controller_client and first.controller_client != client_ip:
        rewritten.append(f"{ctrl.label}: the controller's client is {first.controller_client} "
                         "(its $remote_addr after the L4 path), which it passes on in the "
                         "headers")
    seen = []
    client = parse_ip(client_ip)
    for b in branches:
        if b["resolved_client"]:
            try:
                who = explainer.describe_ip(parse_ip(b["resolved_client"]), client)
            except ValueError:
                who = b["resolved_client"]
            d = f"{who} from {rec.header or 'the peer'} (peer {b['peer']}, the controller)"
        else:
            d = f"nothing: the controller fails the request ({b['error']})"
        if d not in seen:
            seen.append(d)
    if not branches:
        summary = "never reaches the controller: " + entry.summary
    elif real:
        summary = "the app resolves the real client address from the controller's headers"
    elif any(not b["ok"] for b in branches):
        summary = "requests fail at the controller: " + "; ".join(findings[:1])
    else:
        summary = ("the app resolves a rewritten address, not the client: the controller "
                   "passes on the address the L4 path left it")
    if forgeable:
        summary += f"; a client can forge it (a forged {FORGED_IP} is believed)"
    fixes = []
    for ch in rec.settings_changes:
        fixes.append(fix_cls(change=f"{ctrl.label} {ch.setting}: {ch.value}", effect=ch.effect,
                             side_effects=(ch.cost,) if ch.cost else ()))
    believed = [b for b in branches if not b["forged"]["refused"]]
    if believed and not rec.forgeable:
        # The settings look safe, but the controller trusts the address the L4 path hands
        # it (a node's SNAT address, the load balancer's): every client arrives from there.
        remotes = ", ".join(dict.fromkeys(_describe(explainer, b["controller_remote_addr"])
                                          for b in believed))
        setting = TRUST_SETTING.get(ctrl.name, "the controller's trusted proxy list")
        fixes.insert(0, fix_cls(
            change=f"{ctrl.label} {setting}: leave out {remotes}",
            effect="the controller trusts the address every client arrives from on this path "
                   "(kube-proxy's masquerade or the load balancer), so it believes the "
                   "client's own X-Forwarded-For",
            side_effects=("trust only proxies that overwrite or append the header; with "
                          "externalTrafficPolicy: Cluster the node addresses front every "
                          "client",)))
    if real is False and not forgeable and entry.fixes:
        fixes.extend(replace(f, change=f"{f.change} on the controller Service {csvc.key}")
                     for f in entry.fixes if "externalTrafficPolicy" in f.change)
    fixes.append(fix_cls(change=f"in the app: {rec.strategy_code}",
                         effect=f"resolves the client from {rec.header or 'the socket peer'}, "
                                "trusting only the controller pods "
                                f"({', '.join(trusted) or '-'})",
                         side_effects=("any other proxy between the controller and the app "
                                       "must be added to the trusted ranges",
                                       "the controller pods' addresses change when they are "
                                       "rescheduled: keep the list in the app's config in "
                                       "step (a Service-level range is only safe if it "
                                       "excludes the nodes' bridge/tunnel addresses)")))
    entry_title = ("the load balancer" if entry.kind == "through-lb"
                   else entry.title.replace("external -> ", ""))
    title = (f"external -> {ing.kind} {ing.key} ({host}{route.path.path}) via "
             f"{ctrl.name}, {entry_title}")
    result: PathResult = path_cls(
        kind="ingress", title=title, client=entry.client,
        target=f"http://{host}{route.path.path}", nodes=entry.nodes,
        node_count=entry.node_count, trace=entry.trace, seen=tuple(seen), real_client=real,
        rewritten_by=tuple(rewritten), summary=summary, fixes=tuple(fixes),
        app_sees=app_sees, load_balancer=entry.load_balancer,
        findings=tuple(dict.fromkeys(findings)))
    return result


def forged_request(settings: Any) -> list[tuple[str, str]]:
    """What a client sends to choose its address: every header the controller reads for the
    client set to FORGED_IP, X-Forwarded-For with several such entries (so that trusting N hops
    by count is caught too)."""
    from sourceip.ingress import client_headers

    names: dict[str, str] = {}  # lower-case name -> the first spelling
    for n in ["X-Forwarded-For", "X-Real-IP", *client_headers(settings)]:
        names.setdefault(n.lower(), n)
    names = {v: v for v in names.values()}
    out = []
    for n in names:
        if n.lower() == "x-forwarded-for":
            out.append((n, ", ".join([FORGED_IP] * FORGED_HOPS)))
        elif n.lower() == "forwarded":
            out.append((n, f"for={FORGED_IP}"))
        else:
            out.append((n, FORGED_IP))
    return out


def _headers_dict(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _l3_peer(explainer: Explainer, ctrl_pod: Pod, svc: Service, backend: str,
             sp: ServicePort) -> str | None:
    """The source address the backend pod sees for the controller's connection (traced: a
    CNI egress NAT would show here)."""
    if backend == "-" or ctrl_pod.ip is None or ctrl_pod.host_network:
        return str(ctrl_pod.ip) if ctrl_pod.ip else None
    ip_text, _, port = backend.rpartition(":")
    tracer = explainer._tracer(svc)
    start = Start(kind="pod", name=ctrl_pod.key, ip=ctrl_pod.ip, node=ctrl_pod.node_name,
                  pod=ctrl_pod)
    tr = tracer.trace_flow(start, parse_ip(ip_text), int(port), sp.protocol)
    for o in tr.outcomes:
        if o.disposition == "delivered" and o.seen_source is not None:
            return str(o.seen_source)
    return str(ctrl_pod.ip)


def _describe(explainer: Explainer, ip: str) -> str:
    try:
        return explainer.describe_ip(parse_ip(ip))
    except ValueError:
        return ip


def controller_service_findings(explainer: Explainer, svc: Service,
                                paths: list[PathResult]) -> list[PathResult]:
    """On an ingress controller's own Service: the paths whose connections the controller
    refuses (it expects a PROXY header the path does not carry, or the reverse), as findings
    computed by the controller model (``forward`` on an empty request)."""
    from sourceip.ingress import Connection, forward

    ctrl = next((c for c in explainer.discovery.controllers
                 if any(s.key == svc.key for s in c.services)), None)
    if ctrl is None:
        return paths
    out = []
    for p in paths:
        lb = p.load_balancer or {}
        pp = lb.get("proxy_protocol") if p.kind == "through-lb" else None
        o = next((o for o in p.trace.outcomes if o.disposition == "delivered"
                  and o.seen_source is not None), None)
        pod = next((c for c in ctrl.pods if o is not None and o.endpoint
                    and str(c.ip) == o.endpoint.rpartition(":")[0]), None)
        if o is None or pod is None:
            out.append(p)
            continue
        proxy = (str(p.trace.original.src), 40000) if pp in ("v1", "v2") else None
        fwd = forward(ctrl.settings, Connection(peer=str(o.seen_source), proxy=proxy), [],
                      controller_ip=str(pod.ip), host=DEFAULT_HOST)
        if fwd.ok or not fwd.error:
            out.append(p)
            continue
        finding = f"{ctrl.label} refuses these connections: {fwd.error}"
        if p.kind == "pod-to-lb":
            finding += (" (in-cluster callers of the LB IP bypass the load balancer and its "
                        "PROXY header: set ipMode: Proxy, or call the Service by name)")
        out.append(replace(p, findings=(*p.findings, finding)))
    return out
