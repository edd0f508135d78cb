"""The load balancer in the lab (pure: plans commands and processes, runs nothing).

For each LoadBalancer Service, ``sourceip.loadbalancer.plan_load_balancer`` says what the LB
is (forwarding or proxying, PROXY protocol, the health check per node, the pool); the lab's
router namespace plays it:

* every node namespace runs ``sourceip.lab.health_server`` with the answers kube-proxy on that
  node would give (``sourceip.kubeproxy.healthcheck``: each eTP Local Service's
  healthCheckNodePort, and ``/healthz`` / ``/livez`` on 10256), written into the run's
  directory;
* before probing, the router health-checks every node as the plan says (HTTP on the port and
  path, or a TCP connect: ``sourceip.lab.lbcheck``) and keeps the candidates that pass;
* forwarding, target ``vip``: an ECMP route for the VIP over the healthy nodes
  (``fib_multipath_hash_policy=1``: source ports spread the flows); MetalLB L2's pool is its
  leader alone. Forwarding to NodePorts (or pods): an nft DNAT (``numgen random``) to them,
  the client address kept;
* proxying: Debian's ``haproxy`` in the router namespace, ``mode tcp``, bound on the VIP (an
  address of the router's loopback), one server per healthy node (``send-proxy`` /
  ``send-proxy-v2`` when the profile sends PROXY), connecting from the profile's source
  address (added to the router's node-facing bridge).

The same functions render the pool from the predicted statuses for the dry-run script and from
the observed ones in a real run.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from sourceip.cluster import Cluster, service_port_endpoints
from sourceip.lab.model import LabLoadBalancer, LabProcess, LBCheck, Sysctl
from sourceip.net.addr import join_host_port

LB_TABLE = "sourceip-lb"
HEALTHZ_PORT = 10256


@dataclass(slots=True)
class LBPlan:
    load_balancers: list[LabLoadBalancer] = field(default_factory=list)
    processes: list[LabProcess] = field(default_factory=list)  # health servers
    router_ip: list[str] = field(default_factory=list)  # static router commands
    router_ip6: list[str] = field(default_factory=list)  # the same, ``ip -6``
    router_sysctls: list[Sysctl] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _predicted(nc: Any) -> str:
    if nc.check.kind == "none":
        return "-"
    if nc.check.protocol == "http":
        return str(nc.response.status) if nc.response is not None else "closed"
    return "open" if nc.open else "closed"


def split_host_port(target: str) -> tuple[str, str]:
    """``(ip, port)`` of a ``join_host_port`` text."""
    host, _, port = target.rpartition(":")
    return host.strip("[]"), port


def plan_load_balancers(cluster: Cluster, *, node_ns: dict[str, str],
                        node_ip: dict[str, str], subnet_prefix: int, workdir: str,
                        node_ip6: dict[str, str] | None = None, subnet_prefix6: int = 64
                        ) -> LBPlan:
    """The lab's load balancers for ``cluster`` and the health servers they check: one per
    LoadBalancer Service and family of its ingress IPs (``node_ip`` / ``node_ip6``: the nodes'
    addresses of each family; the LB reaches the nodes in the VIP's family, a proxying LB in
    its source address's). IPv6 router lines go to ``router_ip6``."""
    out = LBPlan()
    lb_services = [s for s in cluster.services if s.type == "LoadBalancer"]
    if not lb_services:
        return out
    try:
        from sourceip.kubeproxy.healthcheck import (
            health_check_node_port,
            proxy_health,
            service_health,
        )
        from sourceip.loadbalancer import PROVIDERS, plan_load_balancer
    except ImportError as exc:  # pragma: no cover - part of the package
        out.notes.append(f"load balancers are not built: {exc}")
        return out
    ips_by_family = {4: node_ip, 6: node_ip6 or {}}
    prefix_by_family = {4: subnet_prefix, 6: subnet_prefix6}
    hc_ports: list[tuple[int, Any]] = []
    ecmp: set[int] = set()
    for svc in lb_services:
        for lb_fam in dict.fromkeys(int(ip.version) for ip in svc.all_lb_ips):
            _plan_one(out, cluster, svc, lb_fam, ips_by_family, prefix_by_family, ecmp,
                      plan_load_balancer, PROVIDERS)
        port = health_check_node_port(svc)
        if port is not None and any(lb.service == svc.key for lb in out.load_balancers):
            hc_ports.append((port, svc))
    for ecmp_fam in sorted(ecmp):
        out.router_sysctls.append(Sysctl(path=f"net/ipv{ecmp_fam}/fib_multipath_hash_policy",
                                         value="1"))
    if not out.load_balancers:
        return out
    # "::" takes both families (net.ipv6.bindv6only is 0 in a new namespace)
    any_address = "::" if node_ip6 else "0.0.0.0"
    for node in cluster.nodes:
        ns = node_ns.get(node.name)
        if ns is None:
            continue
        listen: list[dict[str, Any]] = []
        ports: list[int] = []
        for port, svc in hc_ports:
            if port in ports:
                continue
            ports.append(port)
            listen.append({"port": port, "address": any_address,
                           "responses": {"*": service_health(
                               cluster, node, svc, version=_primary(svc)).to_dict()}})
        listen.append({"port": HEALTHZ_PORT, "address": any_address, "responses": {
            p: proxy_health(cluster, node, path=p).to_dict() for p in ("/healthz", "/livez")}})
        ports.append(HEALTHZ_PORT)
        path = f"{workdir}/health/{node.name}.json"
        out.processes.append(LabProcess(
            ns=ns, name=f"kube-proxy health server on {node.name}", role="health",
            program="python",
            argv=("{python}", "-m", "sourceip.lab.health_server", "--responses", path,
                  "--owner-pid", "{owner_pid}"),
            workdir=f"{workdir}/health", files=((path, json.dumps({"listen": listen},
                                                                   indent=1)),),
            listen=tuple(ports), node=node.name))
    return out


# ----------------------------------------------------------------------------- the pool


def check_request(lbs: tuple[LabLoadBalancer, ...] | list[LabLoadBalancer],
                  timeout: float = 1.0) -> dict[str, Any]:
    """The ``sourceip.lab.lbcheck`` input for every check the LBs run."""
    return {"timeout": timeout, "checks": [
        {"id": c.id, "ip": c.node_ip, "port": c.port, "kind": c.kind, "path": c.path}
        for lb in lbs for c in lb.checks if c.kind != "none"]}


def normalise(kind: str, observed: str) -> str:
    """An HTTP check that got no answer counts as ``closed``."""
    if kind == "http" and observed.startswith("error"):
        return "closed"
    return observed


def pool_config(lbs: tuple[LabLoadBalancer, ...] | list[LabLoadBalancer],
                observed: dict[str, str] | None, *, workdir: str, router_ns: str
                ) -> tuple[list[str], str, LabProcess | None]:
    """What the router runs for the pools (``observed`` statuses by check id; ``None``: the
    predicted ones): ``ip`` commands (ECMP routes), an nft script (DNAT), the haproxy."""
    ip_lines: list[str] = []
    nft: list[str] = []
    nft_tables: list[str] = []
    frontends: list[str] = []
    listen: list[int] = []
    for k, lb in enumerate(lbs):
        pool = lb.pool(observed)
        if lb.mode == "forwarding" and lb.target == "vip":
            plen = 128 if ":" in lb.vip else 32
            if not pool:
                ip_lines.append(f"route replace blackhole {lb.vip}/{plen}")
            elif len(pool) == 1:
                ip_lines.append(f"route replace {lb.vip}/{plen} via {pool[0].target}")
            else:
                hops = " ".join(f"nexthop via {c.target}" for c in pool)
                ip_lines.append(f"route replace {lb.vip}/{plen} {hops}")
        elif lb.mode == "forwarding":
            fam = "ip6" if ":" in lb.vip else "ip"
            if fam not in nft_tables:
                nft_tables.append(fam)
                nft += [f"add table {fam} {LB_TABLE}",
                        f"add chain {fam} {LB_TABLE} prerouting "
                        "{ type nat hook prerouting priority dstnat ; policy accept ; }"]
            match = f"{fam} daddr {lb.vip} tcp dport {lb.port}"
            if not pool:
                nft.append(f"add rule {fam} {LB_TABLE} prerouting {match} drop")
            else:
                targets = ", ".join(f"{i} : {' . '.join(split_host_port(c.target))}"
                                    for i, c in enumerate(pool))
                nft.append(f"add rule {fam} {LB_TABLE} prerouting {match} dnat {fam} to "
                           f"numgen random mod {len(pool)} map {{ {targets} }}")
        else:
            send = {"v1": " send-proxy", "v2": " send-proxy-v2"}.get(lb.proxy_protocol or "", "")
            frontends += [f"frontend lb{k}", f"    # {lb.service}: {lb.title}",
                          f"    bind {join_host_port(lb.vip, lb.port)}",
                          f"    default_backend pool{k}",
                          f"backend pool{k}", "    balance roundrobin"]
            if lb.source_address:
                src = lb.source_address
                frontends.append(f"    source {f'[{src}]' if ':' in src else src}")
            frontends += [f"    server {c.node} {c.target}{send}" for c in pool]
            listen.append(lb.port)
    haproxy: LabProcess | None = None
    if frontends:
        wd = f"{workdir}/lb"
        cfg = "\n".join(["global", f"    pidfile {wd}/haproxy.pid", "    maxconn 1024",
                         "defaults", "    mode tcp", "    timeout connect 2s",
                         "    timeout client 10s", "    timeout server 10s",
                         *frontends]) + "\n"
        haproxy = LabProcess(
            ns=router_ns, name="load balancer (haproxy, mode tcp)", role="loadbalancer",
            program="haproxy", argv=("haproxy", "-db", "-f", f"{wd}/haproxy.cfg"),
            workdir=wd, files=((f"{wd}/haproxy.cfg", cfg),), listen=tuple(listen))
    return ip_lines, ("\n".join(nft) + "\n") if nft else "", haproxy


def _plan_one(out: LBPlan, cluster: Cluster, svc: Any, fam: int,
              ips_by_family: dict[int, dict[str, str]], prefix_by_family: dict[int, int],
              ecmp: set[int], plan_load_balancer: Any, providers: Any) -> None:
    """The load balancer of ``svc``'s ingress IP of family ``fam``, added to ``out``."""
    lbp = plan_load_balancer(cluster, svc, family=fam)
    if lbp is None or lbp.vip is None or not svc.ports:
        return
    vip = ipaddress.ip_address(lbp.vip)
    sp = svc.ports[0]
    if sp.protocol != "tcp" and lbp.mode == "proxying":
        out.notes.append(f"{svc.key}: a proxying LB for {sp.protocol}: not built")
        return
    # the family the LB reaches the nodes in: the VIP's, or its own source address's
    tfam = fam
    if lbp.mode == "proxying" and lbp.source_address:
        tfam = ipaddress.ip_address(lbp.source_address).version
    node_ip = ips_by_family[tfam]
    if not node_ip:
        out.notes.append(f"{svc.key}: the load balancer of {vip} reaches the nodes over "
                         f"IPv{tfam}, which the nodes do not have: no LB built")
        return
    eps_by_node: dict[str, str] = {}
    if lbp.target == "pod":
        for ep in service_port_endpoints(cluster, svc, sp, version=tfam):
            if ep.node_name and ep.ready:
                eps_by_node.setdefault(ep.node_name, str(ep.ip))
    checks: list[LBCheck] = []
    for nc in lbp.checks:
        nip = node_ip.get(nc.node)
        if nip is None:
            continue
        if lbp.target == "vip":
            target = nip
        elif lbp.target == "pod":
            target = (join_host_port(eps_by_node[nc.node], lbp.target_port)
                      if nc.node in eps_by_node else "")
        else:
            target = join_host_port(nip, lbp.target_port)
        kind = {"http": "http", "tcp": "tcp"}.get(nc.check.protocol, "none")
        check_ip = nip
        if nc.check.kind == "targetPort" and target:
            check_ip = split_host_port(target)[0]
        checks.append(LBCheck(
            service=svc.key, node=nc.node, node_ip=check_ip, kind=kind,
            port=nc.check.port, path=nc.check.path, predicted=_predicted(nc),
            candidate=bool(target) and (nc.in_pool or not nc.passed), target=target,
            family=fam))
    out.load_balancers.append(LabLoadBalancer(
        service=svc.key, title=providers[lbp.profile.provider].title, vip=str(vip),
        port=sp.port, mode=lbp.mode, target=lbp.target, target_port=lbp.target_port,
        proxy_protocol=lbp.proxy_protocol,
        source_address=lbp.source_address, checks=tuple(checks), leader=lbp.leader))
    lines = out.router_ip if fam == 4 else out.router_ip6
    tlines = out.router_ip if tfam == 4 else out.router_ip6
    if lbp.mode == "proxying":
        lines.append(f"addr add {vip}/{vip.max_prefixlen} dev lo"
                     + (" nodad" if fam == 6 else ""))
        if lbp.source_address:
            line = (f"addr add {lbp.source_address}/{prefix_by_family[tfam]} dev nodes"
                    + (" nodad" if tfam == 6 else ""))
            if line not in tlines:
                tlines.append(line)
    elif lbp.target == "vip":
        ecmp.add(fam)
    if lbp.target == "pod":
        for node in cluster.nodes:
            cidr = node.pod_cidr(tfam)
            nip = node_ip.get(node.name)
            line = f"route add {cidr} via {nip}"
            if cidr is not None and nip and line not in tlines:
                tlines.append(line)


def _primary(svc: Any) -> int:
    """The IP version of the Service's primary family. The lab's health server answers one
    healthCheckNodePort for both families (bound on ``::``); kube-proxy's proxier of each
    family counts that family's endpoints, the same count when every pod has both."""
    return int(svc.cluster_ips[0].version) if svc.cluster_ips else 4
