"""Shared helpers for the iptables-mode tests: kube-proxy's test fixtures as sourceip objects,
and a per-chain view of iptables-restore text."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    Node,
)

GOLDEN = Path(__file__).parent / "golden"
BUILTIN = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}

A = ipaddress.ip_address
N = ipaddress.ip_network

# NewFakeProxier (pkg/proxy/iptables/proxier_test.go): node "test-node", eth0 addresses
# 192.168.0.2 (primary), 192.168.1.2, 192.168.99.11 and two IPv6 ones; pod CIDR 10.0.0.0/8
# detected with NewDetectLocalByCIDR; masquerade mark 0x4000; localhostNodePorts on;
# nodePortAddresses unset; nfacct counters available; no --random-fully.
TEST_NODE = Node(
    name="test-node",
    internal_ips=(A("192.168.0.2"), A("192.168.1.2"), A("2001:db8::1"), A("2001:db8:1::2")),
    external_ips=(A("192.168.99.11"),),
    pod_cidrs=(N("10.0.0.0/24"),),
)
FAKE_CFG = KubeProxyConfig(cluster_cidrs=(N("10.0.0.0/8"),))


def slice_(
    ns: str,
    svc: str,
    endpoints: list[Endpoint],
    *,
    port: int = 80,
    port_name: str = "p80",
    protocol: str = "tcp",
    num: int = 1,
) -> EndpointSlice:
    """makeTestEndpointSlice: slice ``<svc>-<num>`` with one port."""
    return EndpointSlice(
        namespace=ns,
        name=f"{svc}-{num}",
        service_name=svc,
        endpoints=tuple(endpoints),
        ports=(EndpointPort(port=port, name=port_name, protocol=protocol),),
    )


def ep(ip: str, node: str = "", **conds: bool | None) -> Endpoint:
    return Endpoint(addresses=(A(ip),), node_name=node, **conds)  # type: ignore[arg-type]


def cluster(services: tuple[object, ...], slices: tuple[EndpointSlice, ...],
            node: Node = TEST_NODE) -> Cluster:
    return Cluster(nodes=(node,), services=services, endpoint_slices=slices)  # type: ignore[arg-type]


def per_chain(text: str, *, drop_builtin: bool = True) -> dict[str, dict[str, list[str]]]:
    """iptables-restore text as table -> chain -> rule lines (``#`` lines ignored). With
    ``drop_builtin`` the built-in chains and their rules (our EnsureRule jumps) are left out."""
    tables: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], {})
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if not (drop_builtin and name in BUILTIN):
                current.setdefault(name, [])
        elif line.startswith("-A "):
            name = line.split()[1]
            if not (drop_builtin and name in BUILTIN):
                assert name in current, f"rule for undeclared chain: {line}"
                current[name].append(line)
        else:
            raise AssertionError(f"unexpected line {line!r}")
    return tables


def read_golden(name: str) -> str:
    return (GOLDEN / name).read_text()
