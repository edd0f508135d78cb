"""Graceful termination in ipvs mode (``pkg/proxy/ipvs/graceful_termination.go``,
``GracefulDeleteRS`` / ``deleteRsFunc``): a real server leaving a virtual server is deleted at
once without connections (and always for UDP/SCTP), else kept with weight 0 until they end —
no new connection goes there."""

from __future__ import annotations

import ipaddress
from fractions import Fraction

from ipvs_fixtures import TEST_NODE, cluster, svc

from sourceip.cluster import Endpoint, EndpointPort, EndpointSlice
from sourceip.dataplane.tracer import Tracer
from sourceip.kubeproxy.ipvs import build_ipvs_node
from sourceip.netfilter.parse_ipvsadm import parse_ipvsadm, render_ipvsadm_save

ip = ipaddress.ip_address
NODE_IP = "100.101.102.103"


def _slice(name: str, protocol: str = "tcp") -> EndpointSlice:
    def ep(addr: str, node: str, *, terminating: bool = False) -> Endpoint:
        return Endpoint(addresses=(ip(addr),), node_name=node, ready=not terminating,
                        serving=True, terminating=terminating)
    return EndpointSlice(
        namespace="ns1", name=f"{name}-1", service_name=name, address_type="IPv4",
        endpoints=(ep("10.180.0.1", TEST_NODE), ep("10.180.1.1", "other-node"),
                   ep("10.180.0.9", TEST_NODE, terminating=True),
                   ep("10.180.1.9", "other-node", terminating=True)),
        ports=(EndpointPort(port=80, name="p80", protocol=protocol),))


def _cluster(**fields: object):  # type: ignore[no-untyped-def]
    services = [svc("tcp1", "172.30.0.41", node_port=3001, type="NodePort",
                    external_traffic_policy="Local"),
                svc("udp1", "172.30.0.42", protocol="udp")]
    return cluster(services, [_slice("tcp1"), _slice("udp1", "udp")], (NODE_IP,),
                   cluster_cidrs=(ipaddress.ip_network("10.0.0.0/8"),), **fields)


def _real_servers(n, addr: str, port: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    (vs,) = [v for v in n.table.virtual_servers if str(v.addr) == addr and v.port == port]
    return {str(rs): rs.weight for rs in vs.real_servers}


def test_default_terminating_endpoints_are_absent_and_noted() -> None:
    """Upstream's tests (a fake IPVS without connections) expect them deleted."""
    c = _cluster()
    n = build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy)
    assert _real_servers(n, "172.30.0.41", 80) == {"10.180.0.1:80": 1, "10.180.1.1:80": 1}
    assert any("10.180.0.9:80, 10.180.1.9:80 not a real server" in x for x in n.notes), n.notes


def test_draining_keeps_tcp_real_servers_with_weight_zero() -> None:
    c = _cluster()
    n = build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy, draining=True)
    assert _real_servers(n, "172.30.0.41", 80) == {
        "10.180.0.1:80": 1, "10.180.0.9:80": 0, "10.180.1.1:80": 1, "10.180.1.9:80": 0}
    # the ETP Local NodePort takes the local endpoints: only the local terminating one drains
    assert _real_servers(n, NODE_IP, 3001) == {"10.180.0.1:80": 1, "10.180.0.9:80": 0}
    # UDP: deleted at once (IsRsGracefulTerminationNeeded), never weight 0
    assert _real_servers(n, "172.30.0.42", 80) == {"10.180.0.1:80": 1, "10.180.1.1:80": 1}
    text = render_ipvsadm_save(n.table)
    assert "-a -t 172.30.0.41:80 -r 10.180.0.9:80 -m -w 0" in text, text
    assert parse_ipvsadm(text).virtual_servers == n.table.virtual_servers  # a dump would say so


def test_new_connections_never_reach_a_draining_real_server() -> None:
    """The trace through the draining table: weight-0 real servers get no new connection,
    the live ones share them — the same outcomes as without the draining ones."""
    c = _cluster()
    n = build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy, draining=True)
    plain = Tracer(c).trace_node(TEST_NODE, "10.180.0.2", "172.30.0.41", 80)
    draining = Tracer(c, rulesets={TEST_NODE: n.ruleset}, ipvs={TEST_NODE: n.table},
                      ipsets={TEST_NODE: n.ipsets()}).trace_node(TEST_NODE, "10.180.0.2",
                                                                 "172.30.0.41", 80)
    for t in (plain, draining):
        assert {(o.endpoint, o.probability) for o in t.outcomes} == {
            ("10.180.0.1:80", Fraction(1, 2)), ("10.180.1.1:80", Fraction(1, 2))}, str(t)
        assert all(o.certain for o in t.outcomes)


def test_only_terminating_endpoints_are_real_servers_of_weight_one() -> None:
    """No ready endpoint: CategorizeEndpoints falls back to the serving terminating ones,
    which are real servers (weight 1), not drained."""
    c = _cluster()
    es = c.endpoint_slices[0]
    only = EndpointSlice(namespace=es.namespace, name=es.name, service_name=es.service_name,
                         address_type=es.address_type, ports=es.ports,
                         endpoints=tuple(e for e in es.endpoints if e.terminating))
    c = c.with_(endpoint_slices=(only, c.endpoint_slices[1]))
    n = build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy, draining=True)
    assert _real_servers(n, "172.30.0.41", 80) == {"10.180.0.9:80": 1, "10.180.1.9:80": 1}


def test_rules_cli_ipvs_draining() -> None:
    """`sourceip rules --mode ipvs --ipvs-draining` prints the weight-0 real server (loadable
    by ipvsadm -R); without the flag it is absent and a note on stderr says why."""
    import subprocess
    import sys
    from pathlib import Path

    f = str(Path(__file__).parent / "data" / "terminating-endpoint.yaml")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sourceip", "rules", "-f", f, *args],
                              capture_output=True, text=True, timeout=120)

    res = run("--mode", "ipvs", "--ipvs-draining")
    assert res.returncode == 0, res.stderr
    assert "-a -t 10.96.0.50:80 -r 10.244.1.11:8080 -m -w 0" in res.stdout
    res = run("--mode", "ipvs")
    assert res.returncode == 0 and "-r 10.244.1.11:8080" not in res.stdout
    # still a local endpoint for kube-proxy's hairpin set (endpointsMap, any condition)
    assert "add KUBE-LOOP-BACK 10.244.1.11,tcp:8080,10.244.1.11" in res.stdout
    assert "terminating 10.244.1.11:8080 not a real server" in res.stderr
    res = run("--mode", "iptables", "--ipvs-draining")
    assert res.returncode == 2 and "--ipvs-draining goes with --mode ipvs" in res.stderr
