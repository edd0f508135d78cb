"""Cluster builders mirroring kube-proxy's ipvs test fake (``NewFakeProxier`` in
``pkg/proxy/ipvs/proxier_test.go``, stored copy index id 11084498): node ``test-node``, a NoOp
local-traffic detector (no clusterCIDR), scheduler rr; and helpers that read a built
``IPVSNode`` the way upstream's ``checkIPVS`` / ``checkIPSet`` / ``checkIptables`` do."""

from __future__ import annotations

import ipaddress
from typing import Any

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    LoadBalancerIngress,
    Node,
    Service,
    ServicePort,
)
from sourceip.kubeproxy.ipvs import IPVSNode, build_ipvs_node
from sourceip.netfilter.ir import Addr, Jump, Masquerade, UnknownMatch
from sourceip.netfilter.parse_ipvsadm import render_ipvsadm_save

TEST_NODE = "test-node"
ip = ipaddress.ip_address
net = ipaddress.ip_network


def node(*ips: str, name: str = TEST_NODE) -> Node:
    v = [ip(a) for a in ips]
    return Node(name=name, internal_ips=tuple(v), pod_cidrs=(net("10.180.0.0/24"),))


def svc(name: str, cluster_ip: str, *, port: int = 80, protocol: str = "tcp",
        node_port: int | None = None, lb: tuple[str, ...] = (), ns: str = "ns1",
        **fields: Any) -> Service:
    return Service(namespace=ns, name=name, cluster_ips=(ip(cluster_ip),),
                   ports=(ServicePort(port=port, name="p80", protocol=protocol,
                                      node_port=node_port),),
                   lb_ingress=tuple(LoadBalancerIngress(ip=ip(a)) for a in lb), **fields)


def eps(name: str, *endpoints: tuple[str, str], port: int = 80, protocol: str = "tcp",
        ns: str = "ns1") -> EndpointSlice:
    """``endpoints``: (address, node name)."""
    return EndpointSlice(
        namespace=ns, name=f"{name}-1", service_name=name, address_type="IPv4",
        endpoints=tuple(Endpoint(addresses=(ip(a),), node_name=n) for a, n in endpoints),
        ports=(EndpointPort(port=port, name="p80", protocol=protocol),))


def cluster(services: list[Service], slices: list[EndpointSlice], node_ips: tuple[str, ...],
            **cfg: Any) -> Cluster:
    base: dict[str, Any] = dict(mode="ipvs", version="1.31")
    base.update(cfg)
    return Cluster(nodes=(node(*node_ips),), services=tuple(services),
                   endpoint_slices=tuple(slices), kube_proxy=KubeProxyConfig(**base))


def build(c: Cluster) -> IPVSNode:
    return build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy)


def ipvs_lines(n: IPVSNode) -> list[str]:
    """``ipvsadm -Sn`` lines, sorted (upstream compares maps)."""
    return sorted(render_ipvsadm_save(n.table).splitlines())


def set_entries(n: IPVSNode) -> dict[str, list[str]]:
    """The non-empty sets with their entries (upstream's ExpectedIPSet)."""
    return {s.name: sorted(s.entries) for s in n.sets if s.entries}


def chain_rules(n: IPVSNode, table: str, chain: str) -> list[tuple[str, str, str]]:
    """(JumpChain, MatchSet, SourceAddress) per rule, as upstream's checkIptables reads a
    chain (a target that is not a jump: ACCEPT/RETURN/DROP/MASQUERADE...)."""
    t = n.ruleset.table(table)
    assert t is not None
    c = t.chain(chain)
    assert c is not None, chain
    out = []
    for r in c.rules:
        v = r.verdict
        target = v.chain if isinstance(v, Jump) else \
            "MASQUERADE" if isinstance(v, Masquerade) else type(v).__name__.upper()
        mset = next((m.text.split()[3] for m in r.matches
                     if isinstance(m, UnknownMatch) and m.text.startswith("-m set")), "")
        src = next((str(m.nets[0]) for m in r.matches
                    if isinstance(m, Addr) and m.field == "src" and not m.negate), "")
        out.append((target, mset, src))
    return out
