"""Real ingress controllers in the lab (pure: plans processes, runs nothing).

For every ingress controller pod discovered in the cluster (``sourceip.ingress.discover``)
whose controller is ``ingress-nginx`` or ``haproxy``, the lab runs Debian's ``nginx`` /
``haproxy`` inside that pod's namespace, configured by ``sourceip.ingress.render_nginx_conf`` /
``render_haproxy_cfg`` from the controller's settings: listening on the controller's container
port, proxying to the Ingress route's backend endpoint ``ip:port`` (ingress-nginx proxies to
endpoints, not to the ClusterIP). Traefik and Envoy are not packaged in Debian: they are not
run, and the lab says so.

One lab-only addition to each rendered config, outside the controller's own server: requests
with ``Host: sourceip-lab.invalid`` are answered by the proxy itself with what it saw of the
connection (its peer before any realip rewrite), in the echo server's JSON shape, so that L4
probes of the controller's Service (which reach the proxy, not an echo server) still observe
the source address kube-proxy left.

Backends of Ingress routes get echo servers in HTTP mode on their target ports (they answer
the request with the headers they received).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sourceip.cluster import Cluster, Pod, Service, ServicePort, service_port_endpoints
from sourceip.lab.model import LabProcess

LAB_STATUS_HOST = "sourceip-lab.invalid"
PROGRAMS = {"ingress-nginx": "nginx", "haproxy": "haproxy"}
NOT_RUN = {
    "traefik": "Traefik is not packaged in Debian",
    "envoy": "Envoy is not packaged in Debian",
    "envoy-gateway": "Envoy (Envoy Gateway) is not packaged in Debian",
}


@dataclass(slots=True)
class IngressPlan:
    """What the lab runs for the cluster's ingress controllers."""

    processes: list[LabProcess] = field(default_factory=list)
    # pod key -> TCP ports the controller process takes (its echo server leaves them)
    taken: dict[str, set[int]] = field(default_factory=dict)
    # (ip, port) of every Ingress backend endpoint: echo servers answer HTTP there
    http_endpoints: set[tuple[str, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    not_run: list[tuple[str, str]] = field(default_factory=list)


def _http_port(svc: Service) -> ServicePort | None:
    """The controller Service's plain-HTTP port (named http, else 80, else the first TCP)."""
    tcp = [p for p in svc.ports if p.protocol == "tcp"]
    return (next((p for p in tcp if p.name == "http"), None)
            or next((p for p in tcp if p.port == 80), None)
            or (tcp[0] if tcp else None))


def listen_port(cluster: Cluster, pod: Pod, services: tuple[Service, ...]) -> int | None:
    """The container port the controller pod serves plain HTTP on: the target of its
    Service's http port, else its container port named http, else 80 when it declares it."""
    ips = {str(ip) for ip in pod.ips}
    for svc in services:
        sp = _http_port(svc)
        if sp is None:
            continue
        for ep in service_port_endpoints(cluster, svc, sp):
            if str(ep.ip) in ips:
                return int(ep.port)
    for cp in pod.ports:
        if cp.protocol == "tcp" and cp.name == "http":
            return cp.container_port
    if any(cp.protocol == "tcp" and cp.container_port == 80 for cp in pod.ports):
        return 80
    return None


def _backend(cluster: Cluster, svc: Service, want: int | str) -> str | None:
    from sourceip.explain.probes import ingress_backend

    sp = next((p for p in svc.ports
               if (p.port == want if isinstance(want, int) else p.name == want)), None)
    return ingress_backend(cluster, svc, sp) if sp is not None else None


def _status_json(pod: str, src: str, sport: str, local: str, program: str) -> str:
    """The echo server's JSON line, with the proxy's variables for what it saw."""
    return (f'{{"pod": "{pod}", "proto": "tcp", "seen_source": "{src}", "seen_port": {sport}, '
            f'"local": "{local}", "answered_by": "{program}"}}')


def nginx_conf(text: str, pod: str) -> str:
    """``render_nginx_conf`` output plus the lab's status server (see the module docstring)."""
    m = re.search(r"^\s*listen\s+([^;]+);", text, re.M)
    if m is None or not text.rstrip().endswith("}"):
        return text
    listen = m.group(1)
    body = _status_json(pod, "$realip_remote_addr", "$realip_remote_port",
                        "$server_addr:$server_port", "nginx")
    block = "\n".join([
        "    # sourceip lab (not part of the controller's configuration): L4 probes of this",
        f"    # port ask with Host: {LAB_STATUS_HOST} what nginx saw of the connection",
        "    server {",
        f"        listen {listen};",
        f"        server_name {LAB_STATUS_HOST};",
        "        location / {",
        "            default_type application/json;",
        f"            return 200 '{body}';",
        "        }",
        "    }",
    ])
    head = text.rstrip()[:-1]
    return head + block + "\n}\n"


def haproxy_cfg(text: str, pod: str) -> str:
    """``render_haproxy_cfg`` output plus the lab's status answer in the frontend."""
    lines = text.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("default_backend"))
    except StopIteration:
        return text
    body = _status_json(pod, "%[fc_src]", "%[fc_src_port]", "%[fc_dst]:%[fc_dst_port]",
                        "haproxy")
    body = body.replace('"', '\\"')
    lines[at:at] = [
        "    # sourceip lab (not part of the controller's configuration): L4 probes of this",
        f"    # port ask with Host: {LAB_STATUS_HOST} what haproxy saw of the connection",
        f'    http-request return status 200 content-type application/json lf-string "{body}" '
        f"if {{ hdr(host) -i {LAB_STATUS_HOST} }}",
    ]
    return "\n".join(lines) + "\n"


def plan_ingress(cluster: Cluster, pod_ns: dict[str, str], workdir: str) -> IngressPlan:
    """The controller processes for ``cluster`` (``pod_ns``: pod key -> its namespace in the
    lab; ``workdir``: the run's directory)."""
    out = IngressPlan()
    if not cluster.ingresses:
        return out
    try:
        from sourceip.ingress import render_haproxy_cfg, render_nginx_conf
        from sourceip.ingress.discover import discover
    except ImportError as exc:  # pragma: no cover - part of the package
        out.notes.append(f"ingress controllers are not run: {exc}")
        return out
    disc = discover(cluster)
    for route in disc.routes:
        if route.service is None:
            continue
        for sp in route.service.ports:
            want = route.path.service_port
            if (sp.port == want) if isinstance(want, int) else (sp.name == want):
                for ep in service_port_endpoints(cluster, route.service, sp):
                    out.http_endpoints.add((str(ep.ip), int(ep.port)))
    k = 0
    for ctrl in disc.controllers:
        name = ctrl.kind.controller
        if name not in PROGRAMS:
            reason = NOT_RUN.get(name, f"{name} is not run in the lab")
            out.not_run.append((name, reason))
            out.notes.append(f"{ctrl.label}: not run ({reason}); its ingress paths are not "
                             "probed")
            continue
        backends: list[str] = []
        for route in disc.routes:
            if route.controller is not ctrl or route.service is None:
                continue
            b = _backend(cluster, route.service, route.path.service_port)
            if b is not None and b not in backends:
                backends.append(b)
        if not backends:
            out.notes.append(f"{ctrl.label}: no Ingress route with a backend endpoint: "
                             "not run")
            continue
        if len(backends) > 1:
            out.notes.append(f"{ctrl.label}: routes to {len(backends)} backends; the lab "
                             f"proxies every request to the first ({backends[0]})")
        for pod in ctrl.pods:
            ns = pod_ns.get(pod.key)
            if ns is None or pod.host_network:
                out.notes.append(f"{ctrl.label}: pod {pod.key} is not built as a pod of its "
                                 "own (hostNetwork or not running): controller not run there")
                continue
            port = listen_port(cluster, pod, ctrl.services)
            if port is None:
                out.notes.append(f"{ctrl.label}: pod {pod.key} declares no HTTP port: "
                                 "controller not run there")
                continue
            wd = f"{workdir}/ctrl{k}"
            k += 1
            program = PROGRAMS[name]
            if program == "nginx":
                conf = nginx_conf(render_nginx_conf(ctrl.settings, listen_port=port,
                                                    backend=backends[0], prefix_dir=wd),
                                  pod.key)
                files: tuple[tuple[str, str], ...] = ((f"{wd}/nginx.conf", conf),)
                argv: tuple[str, ...] = ("nginx", "-p", f"{wd}/", "-c", f"{wd}/nginx.conf",
                                         "-e", f"{wd}/error.log", "-g", "master_process off;")
            else:
                from sourceip.ingress.haproxy import proxy_list_text

                conf = haproxy_cfg(render_haproxy_cfg(ctrl.settings, listen_port=port,
                                                      backend=backends[0], prefix_dir=wd),
                                   pod.key)
                files = ((f"{wd}/haproxy.cfg", conf),
                         (f"{wd}/proxy-protocol.lst", proxy_list_text(ctrl.settings)))
                argv = ("haproxy", "-db", "-f", f"{wd}/haproxy.cfg")
            out.processes.append(LabProcess(
                ns=ns, name=f"{name} {pod.key}", role="ingress", program=program, argv=argv,
                workdir=wd, files=files, listen=(port,), pod=pod.key, node=pod.node_name))
            out.taken.setdefault(pod.key, set()).add(port)
    return out
