"""Generate a cluster at Kubernetes' scalability limits as ONE `kubectl get -o json` file.

Defaults: 5,000 nodes, 10,000 Services, 150,000 pods; each pod backs at most one Service and
endpoints per Service run up to 250 (the first 1% of Services have 250), for ~150,000 endpoints
in EndpointSlices of at most 100 endpoints, as the EndpointSlice controller cuts them. Services
mix ClusterIP / NodePort / LoadBalancer and both externalTrafficPolicies; NodePorts stay inside
30000-32767 (which bounds how many Services can have node ports). Deterministic with --seed.

    python bench/gen_cluster.py -o /tmp/cluster.json
    python bench/gen_cluster.py --nodes 100 --services 200 --pods 3000 -o small.json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import sys
from typing import Any

NODE_PORT_LO, NODE_PORT_HI = 30000, 32767
MAX_PER_SERVICE = 250
SLICE_MAX = 100


def _sizes(rng: random.Random, services: int, pods: int) -> list[int]:
    """Endpoints per Service: 1% at 250, the rest random, adjusted so the total is ``pods``
    (or as close as the 250 cap allows)."""
    big = max(1, services // 100) if pods >= MAX_PER_SERVICE * max(1, services // 100) else 0
    sizes = [MAX_PER_SERVICE] * big
    rest = services - big
    left = pods - sum(sizes)
    if rest > 0:
        mean = max(1, left // rest)
        sizes += [rng.randint(max(1, mean // 2), min(MAX_PER_SERVICE - 1, mean * 3 // 2 + 1))
                  for _ in range(rest)]
    # fix the total: nudge random non-capped services up/down by one
    diff = pods - sum(sizes)
    idx = list(range(big, services))
    while diff != 0 and idx:
        i = rng.choice(idx)
        if diff > 0 and sizes[i] < MAX_PER_SERVICE - 1:
            sizes[i] += 1
            diff -= 1
        elif diff < 0 and sizes[i] > 1:
            sizes[i] -= 1
            diff += 1
        elif all((sizes[j] >= MAX_PER_SERVICE - 1) if diff > 0 else (sizes[j] <= 1)
                 for j in idx[:50]):
            break
    return sizes


def generate(nodes: int = 5000, services: int = 10000, pods: int = 150000,
             seed: int = 1) -> dict[str, Any]:
    """The cluster as a ``kind: List`` dict."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    items.append({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": "100.64.0.0/10"})
    items.append({
        "apiVersion": "sourceip.dev/v1alpha1", "kind": "NetworkProfile",
        "metadata": {"name": "bench"},
        "spec": {"podAttach": "bridge", "interNode": "direct",
                 "podCIDRs": ["100.64.0.0/10"], "serviceCIDRs": ["10.96.0.0/12"]}})
    node_net = ipaddress.IPv4Network("172.16.0.0/12")
    zones = ["zone-a", "zone-b", "zone-c"]
    node_names = []
    for i in range(nodes):
        name = f"node-{i:05d}"
        node_names.append(name)
        cidr = f"100.{64 + i // 256}.{i % 256}.0/24"
        items.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": zones[i % 3]}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [
                {"type": "InternalIP", "address": str(node_net.network_address + 2 + i)},
                {"type": "Hostname", "address": name}]}})

    sizes = _sizes(rng, services, pods)
    per_node = [0] * nodes
    pods_of: list[list[tuple[str, str, str]]] = []  # per service: (pod name, ip, node)
    pod_items: list[dict[str, Any]] = []
    slot = 0
    for s, size in enumerate(sizes):
        members = []
        for k in range(size):
            n = (slot * 7919) % nodes if nodes else 0
            slot += 1
            per_node[n] += 1
            host = per_node[n] + 1
            if host > 254:  # node full: spill to the next node with room
                n = min(range(nodes), key=lambda j: per_node[j])
                per_node[n] += 1
                host = per_node[n] + 1
            podip = f"100.{64 + n // 256}.{n % 256}.{host}"
            pname = f"svc-{s:05d}-{k:03d}"
            ready = rng.random() > 0.02
            terminating = rng.random() < 0.01
            meta: dict[str, Any] = {
                "name": pname, "namespace": f"ns-{s % 50:02d}",
                "labels": {"app": f"svc-{s:05d}", "pod-template-hash": "7c5ddbdf54"},
                "uid": f"{s:08x}-{k:04x}-4000-8000-000000000000",
                "creationTimestamp": "2024-05-01T10:00:00Z"}
            if terminating:
                meta["deletionTimestamp"] = "2024-05-01T11:00:00Z"
            pod_items.append({
                "apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": {"nodeName": node_names[n], "containers": [{
                    "name": "app", "image": "registry.k8s.io/e2e-test-images/agnhost:2.52",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                              {"name": "metrics", "containerPort": 9090,
                               "protocol": "TCP"}]}]},
                "status": {"phase": "Running", "podIP": podip, "podIPs": [{"ip": podip}],
                           "hostIP": items[2 + n]["status"]["addresses"][0]["address"],
                           "conditions": [{"type": "Ready",
                                           "status": "True" if ready else "False"}]}})
            members.append((pname, podip, node_names[n], ready, terminating))
        pods_of.append(members)  # type: ignore[arg-type]
    # leftover pods (when the services' cap kept the total below --pods) back no Service
    for k in range(pods - len(pod_items)):
        n = k % nodes
        per_node[n] += 1
        podip = f"100.{64 + n // 256}.{n % 256}.{min(per_node[n] + 1, 254)}"
        pod_items.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"lone-{k:06d}", "namespace": "batch",
                         "labels": {"app": "batch"}},
            "spec": {"nodeName": node_names[n], "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": podip}})
    items.extend(pod_items)

    svc_net = ipaddress.IPv4Network("10.96.0.0/12")
    node_port = NODE_PORT_LO
    lb_base = ipaddress.IPv4Address("198.18.0.0")
    for s in range(services):
        name = f"svc-{s:05d}"
        r = rng.random()
        stype = "ClusterIP"
        # Node ports are scarce (2,768): ~12% NodePort, ~8% LoadBalancer.
        if r < 0.08 and node_port + 2 <= NODE_PORT_HI:
            stype = "LoadBalancer"
        elif r < 0.20 and node_port <= NODE_PORT_HI:
            stype = "NodePort"
        port: dict[str, Any] = {"name": "http", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}
        spec: dict[str, Any] = {
            "type": stype, "selector": {"app": name},
            "clusterIP": str(svc_net.network_address + 10 + s),
            "clusterIPs": [str(svc_net.network_address + 10 + s)], "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster", "ports": [port]}
        status: dict[str, Any] = {"loadBalancer": {}}
        if stype == "ClusterIP" and s % 3 == 0:
            spec["ports"].append({"name": "metrics", "port": 9090, "targetPort": 9090,
                                  "protocol": "TCP"})
        if stype != "ClusterIP":
            port["nodePort"] = node_port
            node_port += 1
            spec["externalTrafficPolicy"] = "Local" if rng.random() < 0.5 else "Cluster"
        if stype == "LoadBalancer":
            if spec["externalTrafficPolicy"] == "Local":
                spec["healthCheckNodePort"] = node_port
                node_port += 1
            status = {"loadBalancer": {"ingress": [
                {"ip": str(lb_base + s), "ipMode": "VIP"}]}}
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": name, "namespace": f"ns-{s % 50:02d}"},
                      "spec": spec, "status": status})
        members = pods_of[s]
        for c in range(0, len(members), SLICE_MAX):
            chunk = members[c:c + SLICE_MAX]
            items.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-{c // SLICE_MAX:x}abcd",
                             "namespace": f"ns-{s % 50:02d}",
                             "labels": {"kubernetes.io/service-name": name,
                                        "endpointslice.kubernetes.io/managed-by":
                                            "endpointslice-controller.k8s.io"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}] + (
                    [{"name": "metrics", "port": 9090, "protocol": "TCP"}]
                    if len(spec["ports"]) > 1 else []),
                "endpoints": [{
                    "addresses": [podip],
                    "conditions": {"ready": ready and not term, "serving": ready,
                                   "terminating": term},
                    "nodeName": nname,
                    "zone": zones[int(nname.split("-")[1]) % 3],
                    "targetRef": {"kind": "Pod", "namespace": f"ns-{s % 50:02d}",
                                  "name": pname}}
                    for pname, podip, nname, ready, term in chunk]})
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    args = ap.parse_args(argv)
    doc = generate(args.nodes, args.services, args.pods, args.seed)
    out = sys.stdout if args.output == "-" else open(args.output, "w")  # noqa: SIM115
    try:
        json.dump(doc, out, indent=4)  # kubectl indents with 4 spaces
        out.write("\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
