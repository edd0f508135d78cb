"""API-shaped dicts → cluster objects: every field, derived EndpointSlices, odd cases."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from sourceip.cluster import (
    categorize_endpoints,
    service_port_endpoints,
)
from sourceip.errors import InputError
from sourceip.sources import cluster_from_objects, load_cluster

ip = ipaddress.ip_address
net = ipaddress.ip_network


def node(name: str, addr: str, cidr: str, zone: str = "") -> dict[str, Any]:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": addr},
                                     {"type": "ExternalIP", "address": "203.0.113.9"},
                                     {"type": "Hostname", "address": name}]}}


def pod(name: str, podip: str | None, node_name: str = "n1", *, labels: dict[str, str] | None
        = None, ports: list[dict[str, Any]] | None = None, ready: bool = True,
        phase: str = "Running", deleting: bool = False, ns: str | None = None,
        host_network: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels if labels is not None
                            else {"app": "web"}}
    if ns:
        meta["namespace"] = ns
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T10:00:00Z"
    status: dict[str, Any] = {"phase": phase,
                              "conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False"}]}
    if podip:
        status["podIP"] = podip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "hostNetwork": host_network,
                     "containers": [{"name": "c", "ports": ports if ports is not None else
                                     [{"name": "http", "containerPort": 8080}]}]},
            "status": status}


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"clusterIP": "10.96.0.10", "selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": base}


# ---------------------------------------------------------------------------------------------
# Service: every field
# ---------------------------------------------------------------------------------------------

def test_service_every_field() -> None:
    obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lb", "namespace": "prod",
                     "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}},
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20", "fd00::20"], "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "PreferDualStack",
            "selector": {"app": "x"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080,
                       "protocol": "TCP"},
                      {"name": "dns", "port": 53, "targetPort": "dns", "nodePort": 30053,
                       "protocol": "UDP"}],
            "externalIPs": ["192.0.2.7"], "loadBalancerIP": "198.51.100.1",
            "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
            "healthCheckNodePort": 32001,
            "loadBalancerSourceRanges": [" 10.0.0.0/8 ", "192.168.0.0/16"],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "allocateLoadBalancerNodePorts": True,
        },
        "status": {"loadBalancer": {"ingress": [
            {"ip": "198.51.100.1"}, {"ip": "198.51.100.2", "ipMode": "Proxy"},
            {"hostname": "lb.example.com"}]}},
    }
    c = cluster_from_objects([obj])
    s = c.services[0]
    assert (s.namespace, s.name, s.type, s.type_set) == ("prod", "lb", "LoadBalancer", True)
    assert s.cluster_ips == (ip("10.96.0.20"), ip("fd00::20"))
    assert s.ip_families == ("IPv4", "IPv6")
    assert s.ports[0].node_port == 30080 and s.ports[0].target_port == 8080
    assert (s.ports[1].protocol, s.ports[1].target_port) == ("udp", "dns")
    assert s.external_ips == (ip("192.0.2.7"),)
    assert s.load_balancer_ip == ip("198.51.100.1")
    assert s.lb_ips == (ip("198.51.100.1"),)  # ipMode Proxy is left alone by kube-proxy
    assert s.all_lb_ips == (ip("198.51.100.1"), ip("198.51.100.2"))
    assert s.lb_ingress[2].hostname == "lb.example.com" and s.lb_ingress[2].ip is None
    assert (s.external_traffic_policy, s.internal_traffic_policy) == ("Local", "Local")
    assert s.health_check_node_port == 32001
    assert s.lb_source_ranges == (net("10.0.0.0/8"), net("192.168.0.0/16"))
    assert (s.session_affinity, s.affinity_timeout) == ("ClientIP", 600)
    assert s.selector == {"app": "x"}
    assert s.annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert s.proxied and not s.headless
    # rules are built per family now: no "IPv4 only" note outside ipvs mode
    assert not any("IPv4 only" in n for n in c.notes)


def test_service_defaults_and_legacy_global_policy() -> None:
    obj = svc(externalTrafficPolicy="Global", type="NodePort",
              ports=[{"port": 80, "nodePort": 30080}])
    del obj["spec"]["selector"]
    s = cluster_from_objects([obj]).services[0]
    assert s.external_traffic_policy == "Cluster"
    assert s.namespace == "default"
    assert s.ports[0].protocol == "tcp" and s.ports[0].effective_target == 80
    assert s.session_affinity == "None" and s.affinity_timeout == 10800
    no_type = cluster_from_objects([svc()]).services[0]
    assert (no_type.type, no_type.type_set) == ("ClusterIP", False)


def test_headless_and_external_name_are_not_proxied() -> None:
    c = cluster_from_objects([
        svc("headless", clusterIP="None"),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
         "spec": {"type": "ExternalName", "externalName": "db.example.com"}},
        pod("p1", "10.244.1.5"),
    ])
    h, e = c.services
    assert h.headless and not h.proxied and h.cluster_ips == ()
    assert e.type == "ExternalName" and e.external_name == "db.example.com" and not e.proxied
    assert e.cluster_ips == ()  # nothing allocated for ExternalName
    # a headless Service with a selector still gets endpoints (DNS uses them)
    assert [s.service_name for s in c.endpoint_slices] == ["headless"]


def test_external_name_requires_a_name() -> None:
    with pytest.raises(InputError) as ei:
        cluster_from_objects([{"kind": "Service", "metadata": {"name": "x"},
                               "spec": {"type": "ExternalName"}}])
    assert ei.value.field == "spec.externalName"


def test_allocations_for_hand_written_manifests() -> None:
    c = cluster_from_objects([
        {"kind": "Service", "metadata": {"name": "np"},
         "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
        {"kind": "Service", "metadata": {"name": "lb"},
         "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                  "ports": [{"port": 443, "nodePort": 30000}]}},
    ])
    np_, lb = c.services
    assert np_.cluster_ips == (ip("10.96.0.10"),) and lb.cluster_ips == (ip("10.96.0.11"),)
    assert np_.ports[0].node_port == 30001  # 30000 is taken by lb
    assert lb.health_check_node_port == 30002
    assert any("allocated" in n and "nodePort 30001 to default/np" in n for n in c.notes)


def test_no_allocation_when_taking_objects_as_given() -> None:
    c = cluster_from_objects([{"kind": "Service", "metadata": {"name": "np"},
                               "spec": {"type": "NodePort", "ports": [{"port": 80}]}}],
                             node_port_range=None)
    s = c.services[0]
    assert s.cluster_ips == () and s.ports[0].node_port is None and not s.proxied
    assert not any("allocated" in n for n in c.notes)


def test_node_port_on_cluster_ip_service_is_refused() -> None:
    with pytest.raises(InputError) as ei:
        cluster_from_objects([svc(ports=[{"port": 80, "nodePort": 30080}])])
    assert (ei.value.field, ei.value.message) == (
        "spec.ports[0].nodePort", "may not be used when type is ClusterIP")


# ---------------------------------------------------------------------------------------------
# Node, Pod, EndpointSlice, Ingress, ServiceCIDR, KubeProxyConfiguration, NetworkProfile
# ---------------------------------------------------------------------------------------------

def test_node_and_pod_fields() -> None:
    n = node("n1", "10.0.0.11", "10.244.1.0/24", zone="z1")
    n["spec"]["podCIDRs"] = ["10.244.1.0/24", "fd00:1::/64"]
    p = pod("p", None, labels={"app": "x"},
            ports=[{"name": "http", "containerPort": 80, "protocol": "TCP", "hostPort": 8080},
                   {"containerPort": 53, "protocol": "UDP"}])
    p["status"]["podIPs"] = [{"ip": "10.244.1.7"}, {"ip": "fd00:1::7"}]
    p["spec"]["initContainers"] = [
        {"name": "sidecar", "restartPolicy": "Always", "ports": [{"containerPort": 9090}]},
        {"name": "init", "ports": [{"containerPort": 9999}]}]
    c = cluster_from_objects([n, p])
    nd, pd = c.nodes[0], c.pods[0]
    assert nd.internal_ips == (ip("10.0.0.11"),) and nd.external_ips == (ip("203.0.113.9"),)
    assert nd.pod_cidrs == (net("10.244.1.0/24"), net("fd00:1::/64")) and nd.zone == "z1"
    assert pd.ips == (ip("10.244.1.7"), ip("fd00:1::7"))
    assert [(x.container_port, x.name, x.protocol, x.host_port) for x in pd.ports] == [
        (80, "http", "tcp", 8080), (53, "", "udp", None), (9090, "", "tcp", None)]
    assert pd.ready and not pd.terminating and pd.node_name == "n1"


def test_host_network_pod_takes_node_ip() -> None:
    c = cluster_from_objects([node("n1", "10.0.0.11", "10.244.1.0/24"),
                              pod("h", None, host_network=True)])
    assert c.pods[0].ips == (ip("10.0.0.11"),) and c.pods[0].host_network


def test_pod_without_status_is_running_and_ready() -> None:
    c = cluster_from_objects([{"kind": "Pod", "metadata": {"name": "p"}, "spec": {}}])
    assert (c.pods[0].phase, c.pods[0].ready, c.pods[0].ips) == ("Running", True, ())


def test_endpoint_slice_v1_every_field() -> None:
    es = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": "web-abc", "namespace": "shop",
                       "labels": {"kubernetes.io/service-name": "web"}},
          "addressType": "IPv4",
          "endpoints": [
              {"addresses": ["10.244.1.5"], "conditions": {"ready": False, "serving": True,
                                                           "terminating": True},
               "nodeName": "n1", "zone": "z1",
               "hints": {"forZones": [{"name": "z1"}], "forNodes": [{"name": "n1"}]},
               "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-1"}},
              {"addresses": ["10.244.2.5"]}],
          "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "x"}]}
    s = cluster_from_objects([es]).endpoint_slices[0]
    assert (s.namespace, s.service_name, s.address_type, s.derived) == (
        "shop", "web", "IPv4", False)
    e0, e1 = s.endpoints
    assert (e0.ready, e0.serving, e0.terminating) == (False, True, True)
    assert (e0.node_name, e0.zone, e0.hint_zones, e0.hint_nodes, e0.target_ref) == (
        "n1", "z1", ("z1",), ("n1",), "shop/web-1")
    assert (e1.ready, e1.is_ready, e1.node_name) == (None, True, "")
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "tcp")]


def test_endpoint_slice_v1beta1_topology_and_fqdn_skipped() -> None:
    es = {"apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
          "metadata": {"name": "old", "labels": {"kubernetes.io/service-name": "web"}},
          "addressType": "IPv4",
          "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True},
                         "topology": {"kubernetes.io/hostname": "n1",
                                      "topology.kubernetes.io/zone": "z1"}}],
          "ports": [{"port": 8080}]}
    fqdn = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "f", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com"]}]}
    c = cluster_from_objects([es, fqdn])
    assert len(c.endpoint_slices) == 1
    e = c.endpoint_slices[0].endpoints[0]
    assert (e.node_name, e.zone) == ("n1", "z1")
    assert c.skipped == {"EndpointSlice (FQDN)": 1}


def test_ingress_fields() -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "i", "annotations": {"nginx.ingress.kubernetes.io/x": "y"}},
           "spec": {"ingressClassName": "nginx",
                    "defaultBackend": {"service": {"name": "fallback",
                                                   "port": {"number": 80}}},
                    "rules": [{"host": "a.example.com", "http": {"paths": [
                        {"path": "/api", "pathType": "Prefix",
                         "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.20"}]}}}
    i = cluster_from_objects([ing]).ingresses[0]
    assert i.ingress_class == "nginx" and i.lb_ips == (ip("172.18.255.20"),)
    assert [(p.host, p.path, p.service_name, p.service_port) for p in i.paths] == [
        ("", "", "fallback", 80), ("a.example.com", "/api", "api", "http")]
    assert i.annotations == {"nginx.ingress.kubernetes.io/x": "y"}


def test_kube_proxy_configuration_real_format() -> None:
    kp = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
          "mode": "iptables", "clusterCIDR": "10.244.0.0/16, fd00:10::/56",
          "detectLocalMode": "InterfaceNamePrefix",
          "detectLocal": {"bridgeInterface": "cni0", "interfaceNamePrefix": "veth"},
          "iptables": {"masqueradeAll": True, "masqueradeBit": 12,
                       "localhostNodePorts": False},
          "nftables": {"masqueradeAll": False, "masqueradeBit": 3},
          "nodePortAddresses": ["primary"], "conntrack": {"tcpBeLiberal": True},
          "hostnameOverride": "node-a",
          "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"}}
    cfg = cluster_from_objects([kp]).kube_proxy
    assert cfg.mode == "iptables"
    assert cfg.cluster_cidrs == (net("10.244.0.0/16"), net("fd00:10::/56"))
    assert (cfg.detect_local_mode, cfg.bridge_interface, cfg.interface_name_prefix) == (
        "InterfaceNamePrefix", "cni0", "veth")
    assert (cfg.masquerade_all, cfg.masquerade_bit, cfg.localhost_node_ports) == (
        True, 12, False)
    assert cfg.node_port_addresses == ("primary",) and cfg.conntrack_tcp_be_liberal
    assert cfg.hostname_override == "node-a"
    # nftables mode reads the nftables section (conversion.go)
    kp_nft = dict(kp, mode="nftables")
    cfg = cluster_from_objects([kp_nft]).kube_proxy
    assert (cfg.mode, cfg.masquerade_all, cfg.masquerade_bit) == ("nftables", False, 3)
    # top-level masqueradeAll (some versions), empty mode is iptables
    cfg = cluster_from_objects([{"kind": "KubeProxyConfiguration", "mode": "",
                                 "masqueradeAll": True}]).kube_proxy
    assert (cfg.mode, cfg.masquerade_all, cfg.masquerade_bit) == ("iptables", True, 14)


def test_kube_proxy_configuration_in_kubeadm_configmap(write) -> None:
    p = write("cm.yaml", """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: kube-proxy, namespace: kube-system}
        data:
          kubeconfig.conf: "apiVersion: v1"
          config.conf: |-
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            clusterCIDR: 10.244.0.0/16
            mode: nftables
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: coredns}
        data: {Corefile: "."}
        """)
    c = load_cluster([str(p)])
    assert c.kube_proxy.mode == "nftables"
    assert c.kube_proxy.cluster_cidrs == (net("10.244.0.0/16"),)
    # other ConfigMaps are kept (ingress controllers read theirs), not skipped
    assert c.skipped == {}
    assert [cm.key for cm in c.config_maps] == ["default/coredns"]


def test_network_profile_and_service_cidr_objects_merge() -> None:
    prof = {"apiVersion": "sourceip.dev/v1alpha1", "kind": "NetworkProfile",
            "metadata": {"name": "flannel"},
            "spec": {"podAttach": "bridge", "bridgeName": "cni0", "interNode": "tunnel",
                     "tunnelDevice": "flannel.1", "nodeInterface": "ens3",
                     "egressMasquerade": True, "podCIDRs": ["10.244.0.0/16"],
                     "serviceCIDRs": ["10.96.0.0/12"]}}
    scidr = {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
             "metadata": {"name": "extra"}, "spec": {"cidrs": ["10.112.0.0/16"]}}
    p = cluster_from_objects([prof, scidr]).profile
    assert (p.name, p.pod_attach, p.bridge_name, p.inter_node, p.tunnel_device,
            p.node_interface, p.egress_masquerade) == (
        "flannel", "bridge", "cni0", "tunnel", "flannel.1", "ens3", True)
    assert p.pod_cidrs == (net("10.244.0.0/16"),)
    assert p.service_cidrs == (net("10.96.0.0/12"), net("10.112.0.0/16"))


def test_skipped_kinds_are_counted_and_workloads_noted() -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
              "spec": {"template": {"metadata": {"labels": {"app": "api"}}}}}
    covered = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "web"},
               "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}
    c = cluster_from_objects([
        deploy, covered, pod("web-1", "10.244.1.5"),
        {"kind": "ConfigMap", "metadata": {"name": "x"}},
        {"kind": "Secret", "metadata": {"name": "s"}},
        {"kind": "Secret", "metadata": {"name": "t"}},
        {"kind": "Endpoints", "metadata": {"name": "web"}},
        {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "old"}},
    ])
    assert c.skipped == {"DaemonSet": 1, "Deployment": 1, "Endpoints": 1,
                         "Ingress (extensions/v1beta1)": 1, "Secret": 2}
    notes = [n for n in c.notes if "workload" in n]
    assert len(notes) == 1
    assert "Deployment default/api" in notes[0] and "DaemonSet" not in notes[0]


# ---------------------------------------------------------------------------------------------
# derived EndpointSlices
# ---------------------------------------------------------------------------------------------

def test_derived_slices_follow_the_endpointslice_controller() -> None:
    c = cluster_from_objects([
        node("n1", "10.0.0.11", "10.244.1.0/24", zone="z1"),
        node("n2", "10.0.0.12", "10.244.2.0/24", zone="z2"),
        pod("a-ready", "10.244.1.5", "n1"),
        pod("b-notready", "10.244.2.5", "n2", ready=False),
        pod("c-terminating", "10.244.2.6", "n2", deleting=True),
        pod("d-succeeded", "10.244.2.7", "n2", phase="Succeeded"),
        pod("e-noip", None, "n2"),
        pod("f-otherport", "10.244.1.9", "n1",
            ports=[{"name": "http", "containerPort": 9090}]),
        pod("g-noname", "10.244.1.10", "n1", ports=[{"name": "metrics", "containerPort": 9100}]),
        pod("h-other-ns", "10.244.1.11", "n1", ns="other"),
        pod("i-other-app", "10.244.1.12", "n1", labels={"app": "db"}),
        svc(),
    ])
    slices = c.endpoint_slices
    assert all(s.derived and s.address_type == "IPv4" for s in slices)
    by_port = {s.ports[0].port: s for s in slices}
    assert set(by_port) == {8080, 9090}  # one slice per resolved port set
    eps = {e.target_ref: e for e in by_port[8080].endpoints}
    assert set(eps) == {"default/a-ready", "default/b-notready", "default/c-terminating"}
    a, b, t = eps["default/a-ready"], eps["default/b-notready"], eps["default/c-terminating"]
    assert (a.ready, a.serving, a.terminating, a.node_name, a.zone) == (
        True, True, False, "n1", "z1")
    assert (b.ready, b.serving, b.terminating) == (False, False, False)
    assert (t.ready, t.serving, t.terminating) == (False, True, True)
    assert [str(e.addresses[0]) for e in by_port[9090].endpoints] == ["10.244.1.9"]
    assert any("derived from Pods for 1 Service" in n for n in c.notes)
    # kube-proxy's view through the cluster package
    s = c.services[0]
    pe = service_port_endpoints(c, s, s.ports[0])
    assert sorted(f"{e}" for e in pe) == [
        "10.244.1.5:8080", "10.244.1.9:9090", "10.244.2.5:8080", "10.244.2.6:8080"]
    cat = categorize_endpoints(pe, s, "n1", "z1")
    assert sorted(str(e) for e in cat.cluster) == ["10.244.1.5:8080", "10.244.1.9:9090"]


def test_publish_not_ready_addresses() -> None:
    c = cluster_from_objects([pod("p", "10.244.1.5", ready=False),
                              svc(publishNotReadyAddresses=True)])
    e = c.endpoint_slices[0].endpoints[0]
    assert (e.ready, e.serving) == (True, True)


def test_given_slices_win_and_selectorless_services_use_hand_made_slices() -> None:
    hand = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.10"]}],
            "ports": [{"name": "http", "port": 80}]}
    ext = svc("ext", ports=[{"name": "http", "port": 80}])
    del ext["spec"]["selector"]
    nosel = svc("nosel", clusterIP="10.96.0.11", ports=[{"name": "http", "port": 80}])
    del nosel["spec"]["selector"]
    c = cluster_from_objects([pod("p", "10.244.1.5"), hand, ext, nosel, svc()])
    names = sorted((s.service_name, s.derived) for s in c.endpoint_slices)
    assert names == [("ext", False), ("web", True)]
    assert c.service("ext").selector is None


def test_dual_stack_derives_one_slice_per_family() -> None:
    p = pod("p", None)
    p["status"]["podIPs"] = [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]
    s = svc(clusterIPs=["10.96.0.10", "fd00:96::10"], ipFamilies=["IPv4", "IPv6"],
            ipFamilyPolicy="RequireDualStack")
    c = cluster_from_objects([p, s])
    assert sorted(x.address_type for x in c.endpoint_slices) == ["IPv4", "IPv6"]
    assert not any("IPv4 only" in n for n in c.notes)
    ipvs = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration", "mode": "ipvs"}
    c = cluster_from_objects([p, s, ipvs])
    assert "IPv6 addresses are loaded; ipvs mode is modelled for IPv4 only" in c.notes


def test_no_ipv6_note_without_ipv6() -> None:
    c = cluster_from_objects([pod("p", "10.244.1.5"), svc()])
    assert not any("IPv6" in n for n in c.notes)


def test_label_selection_scales(benchmark_size: int = 3000) -> None:
    objs: list[dict[str, Any]] = []
    for i in range(benchmark_size):
        objs.append(pod(f"p{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                        labels={"app": f"a{i % 300}", "tier": "x"}))
    for j in range(300):
        objs.append(svc(f"s{j}", clusterIP=f"10.96.{j // 256}.{j % 256 + 1}"
                        if j % 256 != 255 else "10.97.0.1",
                        selector={"app": f"a{j}", "tier": "x"}))
    c = cluster_from_objects(objs)
    assert len(c.endpoint_slices) == 300
    assert all(len(s.endpoints) == 10 for s in c.endpoint_slices)
