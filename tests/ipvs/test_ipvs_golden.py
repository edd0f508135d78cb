"""kube-proxy's ipvs proxier tests reproduced: the expected virtual servers, ipsets and
iptables rules of ``pkg/proxy/ipvs/proxier_test.go`` (kubernetes/kubernetes, stored copy index
id 11084498, the 1.30-1.32 cycle, the release rows 1.29-1.38 share): TestNodePortIPv4,
TestLoadBalancer, TestOnlyLocalNodePorts, TestHealthCheckNodePort, TestLoadBalancerSourceRanges,
TestAcceptIPVSTraffic, TestOnlyLocalExternalIPs. The fake uses a NoOp local detector, scheduler
rr and the nodeIPs / nodePortAddresses of each case."""

from __future__ import annotations

import ipaddress

import pytest
from ipvs_fixtures import build, chain_rules, cluster, eps, ipvs_lines, set_entries, svc

from sourceip.kubeproxy.releases import supported_versions

SERVICES = "KUBE-SERVICES"
HC = "KUBE-HEALTH-CHECK-NODE-PORT"


def test_node_port_udp_service_with_endpoints() -> None:
    # TestNodePortIPv4 "1 UDP service with node port, has endpoints"
    c = cluster([svc("svc1", "10.20.30.41", protocol="udp", node_port=3001, type="NodePort")],
                [eps("svc1", ("10.180.0.1", ""), protocol="udp")], ("100.101.102.103",),
                node_port_addresses=("0.0.0.0/0",))
    n = build(c)
    assert ipvs_lines(n) == sorted([
        "-A -u 10.20.30.41:80 -s rr",
        "-a -u 10.20.30.41:80 -r 10.180.0.1:80 -m -w 1",
        "-A -u 100.101.102.103:3001 -s rr",
        "-a -u 100.101.102.103:3001 -r 10.180.0.1:80 -m -w 1",
    ])
    assert set_entries(n)["KUBE-NODE-PORT-UDP"] == ["3001"]
    assert chain_rules(n, "nat", "KUBE-NODE-PORT") == [
        ("KUBE-MARK-MASQ", "KUBE-NODE-PORT-UDP", "")]
    assert chain_rules(n, "filter", "KUBE-NODE-PORT") == [("ACCEPT", HC, "")]
    assert chain_rules(n, "nat", SERVICES) == [
        ("RETURN", "", "127.0.0.0/8"),
        ("KUBE-MARK-MASQ", "KUBE-CLUSTER-IP", ""),
        ("KUBE-NODE-PORT", "", ""),
        ("ACCEPT", "KUBE-CLUSTER-IP", ""),
    ]


def test_node_port_without_endpoints_keeps_empty_virtual_servers() -> None:
    # TestNodePortIPv4 "service has node port but no endpoints"
    c = cluster([svc("svc1", "10.20.30.41", node_port=3001, type="NodePort")], [],
                ("100.101.102.103",))
    assert ipvs_lines(build(c)) == ["-A -t 10.20.30.41:80 -s rr",
                                    "-A -t 100.101.102.103:3001 -s rr"]


def test_node_port_sctp_on_a_node_with_three_ips() -> None:
    # TestNodePortIPv4 "node port service with protocol sctp on a node with multiple nodeIPs"
    ips = ("100.101.102.103", "100.101.102.104", "100.101.102.105")
    c = cluster([svc("svc1", "10.20.30.41", protocol="sctp", node_port=3001, type="NodePort")],
                [eps("svc1", ("10.180.0.1", ""), protocol="sctp")], ips)
    n = build(c)
    assert [ln for ln in ipvs_lines(n) if ln.startswith("-A")] == sorted(
        ["-A --sctp-service 10.20.30.41:80 -s rr"]
        + [f"-A --sctp-service {a}:3001 -s rr" for a in ips])
    assert set_entries(n)["KUBE-NODE-PORT-SCTP-HASH"] == [f"{a},sctp:3001" for a in ips]


def test_node_port_sctp_local() -> None:
    # TestNodePortIPv4 "node port service with protocol sctp and externalTrafficPolicy local"
    c = cluster([svc("svc1", "10.20.30.41", protocol="sctp", node_port=3001, type="NodePort",
                     external_traffic_policy="Local")],
                [eps("svc1", ("10.180.0.1", "test-node"), ("10.180.1.1", "other-node"),
                     protocol="sctp")], ("100.101.102.103",))
    n = build(c)
    assert ipvs_lines(n) == sorted([
        "-A --sctp-service 10.20.30.41:80 -s rr",
        "-a --sctp-service 10.20.30.41:80 -r 10.180.0.1:80 -m -w 1",
        "-a --sctp-service 10.20.30.41:80 -r 10.180.1.1:80 -m -w 1",
        "-A --sctp-service 100.101.102.103:3001 -s rr",
        "-a --sctp-service 100.101.102.103:3001 -r 10.180.0.1:80 -m -w 1",
    ])
    sets = set_entries(n)
    assert sets["KUBE-NODE-PORT-SCTP-HASH"] == ["100.101.102.103,sctp:3001"]
    assert sets["KUBE-NODE-PORT-LOCAL-SCTP-HASH"] == ["100.101.102.103,sctp:3001"]
    assert chain_rules(n, "nat", "KUBE-NODE-PORT") == [
        ("RETURN", "KUBE-NODE-PORT-LOCAL-SCTP-HASH", ""),
        ("KUBE-MARK-MASQ", "KUBE-NODE-PORT-SCTP-HASH", ""),
    ]


def test_load_balancer() -> None:
    # TestLoadBalancer
    c = cluster([svc("svc1", "10.20.30.41", node_port=3001, type="LoadBalancer",
                     lb=("1.2.3.4",))],
                [eps("svc1", ("10.180.0.1", ""))], ("100.101.102.103",))
    n = build(c)
    assert "-a -t 1.2.3.4:80 -r 10.180.0.1:80 -m -w 1" in ipvs_lines(n)
    assert set_entries(n)["KUBE-LOAD-BALANCER"] == ["1.2.3.4,tcp:80"]
    assert chain_rules(n, "nat", SERVICES) == [
        ("RETURN", "", "127.0.0.0/8"),
        ("KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER", ""),
        ("KUBE-MARK-MASQ", "KUBE-CLUSTER-IP", ""),
        ("KUBE-NODE-PORT", "", ""),
        ("ACCEPT", "KUBE-CLUSTER-IP", ""),
        ("ACCEPT", "KUBE-LOAD-BALANCER", ""),
    ]
    assert chain_rules(n, "nat", "KUBE-LOAD-BALANCER") == [("KUBE-MARK-MASQ", "", "")]
    assert n.dummy_addresses == tuple(map(ipaddress.ip_address,
                                          ("10.20.30.41", "1.2.3.4")))


def test_only_local_node_ports() -> None:
    # TestOnlyLocalNodePorts: nodePortAddresses 100.101.102.0/24
    c = cluster([svc("svc1", "10.20.30.41", node_port=3001, type="NodePort",
                     external_traffic_policy="Local")],
                [eps("svc1", ("10.180.0.1", "test-node"), ("10.180.1.1", "other-node"))],
                ("100.101.102.103", "2001:db8::1"), node_port_addresses=("100.101.102.0/24",))
    n = build(c)
    assert [ln for ln in ipvs_lines(n) if "3001" in ln] == [
        "-A -t 100.101.102.103:3001 -s rr",
        "-a -t 100.101.102.103:3001 -r 10.180.0.1:80 -m -w 1"]
    sets = set_entries(n)
    assert sets["KUBE-NODE-PORT-TCP"] == sets["KUBE-NODE-PORT-LOCAL-TCP"] == ["3001"]
    assert chain_rules(n, "nat", "KUBE-NODE-PORT") == [
        ("RETURN", "KUBE-NODE-PORT-LOCAL-TCP", ""),
        ("KUBE-MARK-MASQ", "KUBE-NODE-PORT-TCP", ""),
    ]
    assert chain_rules(n, "filter", "KUBE-NODE-PORT") == [("ACCEPT", HC, "")]


def test_health_check_node_ports() -> None:
    # TestHealthCheckNodePort: only ETP=Local LoadBalancers' healthCheckNodePorts
    def lb(name: str, hc: int, etp: str) -> object:
        return svc(name, "10.20.30.41", node_port=3000, type="LoadBalancer",
                   external_traffic_policy=etp, health_check_node_port=hc)
    c = cluster([lb("valid-svc1", 30000, "Local"), lb("valid-svc2", 30001, "Local"),
                 lb("invalid-svc3", 30002, "Cluster")], [], ("100.101.102.103",),
                node_port_addresses=("100.101.102.0/24",))
    assert set_entries(build(c))[HC] == ["30000", "30001"]


def test_load_balancer_source_ranges() -> None:
    # TestLoadBalancerSourceRanges
    c = cluster([svc("svc1", "10.20.30.41", type="LoadBalancer", lb=("1.2.3.4",),
                     lb_source_ranges=(ipaddress.ip_network("10.0.0.0/8"),))],
                [eps("svc1", ("10.180.0.1", ""))], ("100.101.102.103",))
    n = build(c)
    sets = set_entries(n)
    assert sets["KUBE-LOAD-BALANCER"] == sets["KUBE-LOAD-BALANCER-FW"] == ["1.2.3.4,tcp:80"]
    assert sets["KUBE-LOAD-BALANCER-SOURCE-CIDR"] == ["1.2.3.4,tcp:80,10.0.0.0/8"]
    assert chain_rules(n, "filter", "KUBE-PROXY-FIREWALL") == [
        ("KUBE-SOURCE-RANGES-FIREWALL", "KUBE-LOAD-BALANCER-FW", "")]
    assert chain_rules(n, "filter", "KUBE-SOURCE-RANGES-FIREWALL") == [
        ("RETURN", "KUBE-LOAD-BALANCER-SOURCE-CIDR", ""), ("DROP", "", "")]
    # the node IP is outside the ranges: node-originated traffic to the LB IP is dropped
    assert chain_rules(n, "filter", "KUBE-IPVS-OUT-FILTER") == [("DROP", "", "1.2.3.4")]


def test_accept_ipvs_traffic_order() -> None:
    # TestAcceptIPVSTraffic
    c = cluster([
        svc("svc1", "10.20.30.40", node_port=80, type="ClusterIP",
            external_ips=(ipaddress.ip_address("5.6.7.8"),)),
        svc("svc2", "10.20.30.41", node_port=80, type="LoadBalancer", lb=("1.2.3.4",)),
        svc("svc3", "10.20.30.42", node_port=80, type="NodePort"),
    ], [], ("100.101.102.103",))
    assert chain_rules(build(c), "nat", SERVICES) == [
        ("RETURN", "", "127.0.0.0/8"),
        ("KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER", ""),
        ("KUBE-MARK-MASQ", "KUBE-CLUSTER-IP", ""),
        ("KUBE-MARK-MASQ", "KUBE-EXTERNAL-IP", ""),
        ("ACCEPT", "KUBE-EXTERNAL-IP", ""),  # externalTrafficOnlyArgs (physdev, src not local)
        ("ACCEPT", "KUBE-EXTERNAL-IP", ""),  # dstLocalOnlyArgs
        ("KUBE-NODE-PORT", "", ""),
        ("ACCEPT", "KUBE-CLUSTER-IP", ""),
        ("ACCEPT", "KUBE-LOAD-BALANCER", ""),
    ]


def test_only_local_external_ips() -> None:
    # TestOnlyLocalExternalIPs: the externalIP virtual server holds the local endpoint only
    c = cluster([svc("svc1", "10.20.30.41", type="NodePort", external_traffic_policy="Local",
                     external_ips=(ipaddress.ip_address("50.60.70.81"),))],
                [eps("svc1", ("10.180.0.1", "test-node"), ("10.180.1.1", "other-node"))],
                ("100.101.102.103",))
    n = build(c)
    assert [ln for ln in ipvs_lines(n) if "50.60.70.81" in ln] == [
        "-A -t 50.60.70.81:80 -s rr", "-a -t 50.60.70.81:80 -r 10.180.0.1:80 -m -w 1"]
    assert set_entries(n)["KUBE-EXTERNAL-IP-LOCAL"] == ["50.60.70.81,tcp:80"]
    assert "KUBE-EXTERNAL-IP" not in set_entries(n)


@pytest.mark.parametrize("version", supported_versions())
def test_every_release_builds_the_same_ipvs_table(version: str) -> None:
    c = cluster([svc("svc1", "10.20.30.41", node_port=3001, type="NodePort")],
                [eps("svc1", ("10.180.0.1", ""))], ("100.101.102.103",), version=version)
    n = build(c)
    assert len(n.table.virtual_servers) == 2
    assert any("deprecated" in note for note in n.notes) == (version >= "1.35")


def test_affinity_scheduler_and_masquerade_all() -> None:
    c = cluster([svc("svc1", "10.20.30.41", session_affinity="ClientIP",
                     affinity_timeout=600)],
                [eps("svc1", ("10.180.0.1", ""))], ("100.101.102.103",),
                ipvs_scheduler="mh", masquerade_all=True)
    n = build(c)
    assert ipvs_lines(n)[0] == "-A -t 10.20.30.41:80 -s mh -b mh-port -p 600"
    assert chain_rules(n, "nat", SERVICES)[1] == ("KUBE-MARK-MASQ", "KUBE-CLUSTER-IP", "")
    rule = n.ruleset.table("nat").chain(SERVICES).rules[1]  # type: ignore[union-attr]
    assert rule.matches[0].text.endswith("dst,dst")  # type: ignore[union-attr]


def test_no_op_detector_masquerades_vip_sources_only() -> None:
    c = cluster([svc("svc1", "10.20.30.41")], [], ("100.101.102.103",))
    rule = build(c).ruleset.table("nat").chain(SERVICES).rules[1]  # type: ignore[union-attr]
    assert rule.matches[0].text == "-m set --match-set KUBE-CLUSTER-IP src,dst"  # type: ignore[union-attr]
