"""lab.plan is pure: the namespaces, commands and dry-run script it computes for a cluster."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address, ip_network

import pytest

from sourceip.cluster import Node
from sourceip.dataplane.topology import host_veth_name
from sourceip.errors import LabError, ValidationError
from sourceip.lab.plan import (
    default_probe_specs,
    egress_masquerade_nft,
    node_subnet,
    plan_lab,
    pod_ports,
    render_script,
)

from .clusters import design_cluster, generated_cluster

RUN = "a1b2c3"


def setup_of(plan, ns_suffix):  # type: ignore[no-untyped-def]
    return next(s for s in plan.setups if s.ns.endswith(ns_suffix))


def test_namespaces_are_prefixed_and_unique() -> None:
    plan = plan_lab(design_cluster(), runid=RUN, rules=False)
    names = plan.namespace_names
    assert all(n.startswith(f"sip-{RUN}-") for n in names)
    assert len(set(names)) == len(names)
    roles = [ns.role for ns in plan.namespaces]
    assert roles.count("node") == 2 and roles.count("pod") == 3
    assert {"router", "external"} <= set(roles)


def test_runid_must_be_six_hex() -> None:
    with pytest.raises(ValidationError):
        plan_lab(design_cluster(), runid="xyz", rules=False)


def test_veths_are_created_straight_into_namespaces() -> None:
    plan = plan_lab(design_cluster(), runid=RUN, rules=False)
    for v in plan.veths:
        cmd = v.command()
        assert f"netns {v.ns_a}" in cmd and f"peer name {v.name_b} netns {v.ns_b}" in cmd
        assert len(v.name_a) <= 15 and len(v.name_b) <= 15


def test_bridge_profile_node_and_pod_commands() -> None:
    plan = plan_lab(design_cluster(), runid=RUN, rules=False)
    node1 = setup_of(plan, "n0-node1")
    assert "link add cni0 type bridge" in node1.ip
    assert "addr add 10.244.1.1/24 dev cni0" in node1.ip
    assert "addr add 10.0.0.11/24 dev eth0" in node1.ip
    assert "route add default via 10.0.0.1" in node1.ip
    assert "route add 10.244.2.0/24 via 10.0.0.12" in node1.ip
    veth = host_veth_name("default/server", routed=False)
    assert f"link set {veth} type bridge_slave hairpin on" in node1.ip
    keys = {s.key: s.value for s in node1.sysctls}
    assert keys["net.ipv4.ip_forward"] == "1"
    assert keys["net.ipv4.conf.all.route_localnet"] == "1"
    assert keys["net.bridge.bridge-nf-call-iptables"] == "1"
    assert keys["net.ipv4.conf.all.rp_filter"] == "0"
    server = setup_of(plan, "default.server")
    assert server.ip == ("link set lo up", "addr add 10.244.1.10/24 dev eth0", "link set eth0 up",
                         "route add default via 10.244.1.1")


def test_routed_profile_calico_style() -> None:
    plan = plan_lab(design_cluster(pod_attach="routed"), runid=RUN, rules=False)
    server = setup_of(plan, "default.server")
    assert "addr add 10.244.1.10/32 dev eth0" in server.ip
    assert "route add default via 169.254.1.1 dev eth0 onlink" in server.ip
    node1 = setup_of(plan, "n0-node1")
    cali = host_veth_name("default/server", routed=True)
    assert cali.startswith("cali") and len(cali) == 15
    assert f"route add 10.244.1.10/32 dev {cali} scope link" in node1.ip
    assert not any("bridge" in line for line in node1.ip)
    keys = {s.key: s.value for s in node1.sysctls}
    assert keys[f"net.ipv4.conf.{cali}.proxy_arp"] == "1"
    assert "net.bridge.bridge-nf-call-iptables" not in keys


def test_tunnel_profile_flannel_style() -> None:
    plan = plan_lab(design_cluster(inter_node="tunnel"), runid=RUN, rules=False)
    node1 = setup_of(plan, "n0-node1")
    vx = next(line for line in node1.ip if "type vxlan" in line)
    assert "flannel.1" in vx and "local 10.0.0.11" in vx and "dstport 8472" in vx
    assert "addr add 10.244.1.0/32 dev flannel.1" in node1.ip
    assert "route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in node1.ip
    assert any(line.startswith("neigh add 10.244.2.0 lladdr") for line in node1.ip)
    assert any("dst 10.0.0.12 self permanent" in line for line in node1.bridge)
    assert "link set eth0 mtu 1450" in setup_of(plan, "default.server").ip


def test_egress_masquerade_is_its_own_table() -> None:
    plan = plan_lab(design_cluster(egress_masquerade=True), runid=RUN, rules=False)
    loads = setup_of(plan, "n0-node1").loads
    assert [ld.label for ld in loads] == ["cni-egress-masquerade"]
    text = egress_masquerade_nft([ip_network("10.244.0.0/16")])
    assert "table ip sourceip-cni" in text and "masquerade" in text
    assert "ip daddr { 10.244.0.0/16 } return" in text
    assert "kube" not in text.lower()


def test_router_routes_vips_per_node_by_source_port() -> None:
    plan = plan_lab(design_cluster(), runid=RUN, rules=False)
    rtr = setup_of(plan, "rtr")
    assert "addr add 10.0.0.1/24 dev nodes" in rtr.ip
    assert "route add 10.96.0.100/32 via 10.0.0.12 table 1001" in rtr.ip
    assert plan.via_range("node2") == (20100, 20199)
    assert f"rule add from {plan.external_ip} sport 20100-20199 lookup 1001 pref 1001" in rtr.ip
    assert plan.external_ip == "192.168.100.2"


def test_node_subnet_is_24_or_the_smallest_supernet() -> None:
    assert str(node_subnet([ip_address("10.0.0.11"), ip_address("10.0.0.12")])) == "10.0.0.0/24"
    assert str(node_subnet([ip_address("10.0.0.11"), ip_address("10.0.1.12")])) == "10.0.0.0/23"


def test_router_avoids_node_addresses() -> None:
    c = design_cluster()
    c = c.with_(nodes=(replace(c.nodes[0], internal_ips=(ip_address("10.0.0.1"),)), c.nodes[1]))
    assert plan_lab(c, runid=RUN, rules=False).router_ip == "10.0.0.2"


def test_node_without_ipv4_is_an_input_error() -> None:
    c = design_cluster()
    c = c.with_(nodes=(Node(name="node1"), c.nodes[1]))
    with pytest.raises(ValidationError, match="node1"):
        plan_lab(c, runid=RUN, rules=False)


def test_too_many_nodes() -> None:
    with pytest.raises(LabError):
        plan_lab(generated_cluster(401), runid=RUN, rules=False)


def test_echo_server_ports_from_container_and_service_ports() -> None:
    c = design_cluster()
    assert pod_ports(c, c.pod("default/server")) == ((8080,), (5353,))
    assert pod_ports(c, c.pod("default/client1")) == ((), ())
    plan = plan_lab(c, runid=RUN, rules=False)
    assert [(s.pod, s.tcp_ports, s.udp_ports) for s in plan.servers] == [
        ("default/server", (8080,), (5353,))]


def test_clients_map_to_namespaces() -> None:
    plan = plan_lab(design_cluster(), runid=RUN, rules=False)
    assert plan.client_ns("external") == f"sip-{RUN}-ext"
    assert plan.client_ns("node/node2") == f"sip-{RUN}-n1-node2"
    assert plan.client_ns("pod/default/client2") == f"sip-{RUN}-p2-default.client2"


def test_kube_proxy_rules_are_planned_per_node() -> None:
    from .helpers import rules_skip_reason

    reason = rules_skip_reason()
    if reason:
        pytest.skip(reason)
    plan = plan_lab(design_cluster(), runid=RUN)
    load = setup_of(plan, "n0-node1").loads[0]
    assert load.label == "kube-proxy" and load.argv == ("iptables-legacy-restore",)
    assert "KUBE-SERVICES" in load.text and "10.96.0.100" in load.text
    nft = plan_lab(design_cluster(), runid=RUN, mode="nftables")
    assert setup_of(nft, "n0-node1").loads[0].argv == ("nft", "-f", "-")
    assert setup_of(plan_lab(design_cluster(), runid=RUN, iptables_backend="nft"),
                    "n0-node1").loads[0].argv == ("iptables-nft-restore",)


def test_dry_run_script_contains_the_commands() -> None:
    plan = plan_lab(design_cluster(), runid=RUN, rules=False)
    script = render_script(plan, python="/usr/bin/python3")
    assert script.startswith("#!/bin/bash\n")
    assert "\nset -e\n" in script
    assert "trap teardown EXIT" in script
    assert f"ip netns add sip-{RUN}-n0-node1" in script
    veth = host_veth_name("default/server", routed=False)
    assert (f"ip link add {veth} netns sip-{RUN}-n0-node1 type veth peer name eth0 "
            f"netns sip-{RUN}-p0-default.server") in script
    assert f"ip -n sip-{RUN}-n0-node1 addr add 10.244.1.1/24 dev cni0" in script
    assert "echo \"1\" > /proc/sys/net/bridge/bridge-nf-call-iptables" in script
    assert ("/usr/bin/python3 -m sourceip.lab.echo_server --run a1b2c3 --pod default/server "
            "--owner-pid $$ --tcp 8080 --udp 5353 &") in script
    # nothing in the root namespace: every ip command names a namespace
    for line in script.splitlines():
        if line.startswith("ip ") and not line.startswith("ip netns "):
            assert line.startswith("ip -n ") or " netns " in line, line


def test_dry_run_script_loads_rules_via_heredoc() -> None:
    from .helpers import rules_skip_reason

    reason = rules_skip_reason()
    if reason:
        pytest.skip(reason)
    script = render_script(plan_lab(design_cluster(), runid=RUN), python="python3")
    assert f"ip netns exec sip-{RUN}-n0-node1 iptables-legacy-restore <<'SIP_EOF'" in script
    assert "\nCOMMIT\nSIP_EOF\n" in script


def test_default_probe_specs_cover_the_paths() -> None:
    c = design_cluster()
    plan = plan_lab(c, runid=RUN, rules=False)
    ids = [s.id for s in default_probe_specs(c, plan)]
    assert "default/server:http/tcp pod/default/client2 -> ClusterIP" in ids
    assert "default/server:http/tcp pod/default/server -> ClusterIP (hairpin)" in ids
    assert "default/server:dns/udp external -> node2:NodePort" in ids
    assert "default/server-local:80/tcp node/node1 -> ClusterIP" in ids
