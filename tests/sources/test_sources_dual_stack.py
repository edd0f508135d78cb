"""IPv6 and dual-stack input: ipFamilyPolicy / ipFamilies / clusterIPs defaulted and validated as
the API server does (pkg/registry/core/service/storage/alloc.go initIPFamilyFields,
pkg/apis/core/validation ValidateServiceClusterIPsRelatedFields), service CIDRs per family,
clusterCIDR and podCIDRs one per family; every rejection names file:line:field and exits 1."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.sources.conftest import run_cli

from sourceip.errors import InputError
from sourceip.sources import load_cluster

Write = Callable[[str, str], Path]

PROFILE = """\
apiVersion: sourceip.dev/v1alpha1
kind: NetworkProfile
metadata: {{name: p}}
spec:
  serviceCIDRs: [{cidrs}]
---
"""


def svc(spec: str, name: str = "web") -> str:
    """A Service whose spec lines (indented by two) follow a fixed header of 7 lines."""
    return ("apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n"
            "  namespace: shop\nspec:\n  selector: {app: web}\n" + spec
            + "  ports:\n  - {port: 80, targetPort: 8080}\n")


def profile(cidrs: str) -> str:
    return PROFILE.format(cidrs=cidrs)


def load_err(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_cluster([path])
    return info.value


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# ---- the three rejections the issue names ----

def test_cluster_ips_disagreeing_with_ip_families(write: Write) -> None:
    p = write("s.yaml", svc("  clusterIP: 10.96.0.10\n  ipFamilyPolicy: RequireDualStack\n"
                            "  clusterIPs: [10.96.0.10, fd00:10:96::10]\n"
                            "  ipFamilies: [IPv6, IPv4]\n"))
    err = load_err(p)
    assert (err.line, err.field) == (10, "spec.clusterIPs[0]")
    assert err.message == "10.96.0.10: expected an IPv6 value as indicated by `ipFamilies[0]`"


def test_second_cluster_ip_disagreeing_with_ip_families(write: Write) -> None:
    p = write("s.yaml", svc("  clusterIP: 10.96.0.10\n  ipFamilyPolicy: PreferDualStack\n"
                            "  clusterIPs:\n  - 10.96.0.10\n  - 10.96.0.11\n"
                            "  ipFamilies: [IPv4, IPv6]\n"))
    err = load_err(p)
    # two IPv4 addresses: one per family is checked first, as upstream does
    assert (err.line, err.field) == (10, "spec.clusterIPs")
    assert err.message == "may specify no more than one IP for each IP family"


def test_ipv6_cluster_ip_outside_every_ipv6_service_cidr(write: Write) -> None:
    p = write("c.yaml", profile("10.96.0.0/12, 'fd00:10:96::/112'")
              + svc("  ipFamilyPolicy: PreferDualStack\n  clusterIP: 10.96.0.10\n"
                    "  clusterIPs: [10.96.0.10, 'fd00:99::10']\n"))
    err = load_err(p)
    assert str(err) == (
        f"{p}:16: spec.clusterIPs[1]: fd00:99::10 is outside the IPv6 service CIDRs "
        "(fd00:10:96::/112): the API server rejects it (the provided IP is not in the valid "
        "range)")


def test_ipv6_only_cluster_ip_outside_the_ipv6_cidr_via_cli(write: Write) -> None:
    p = write("c.yaml", profile("'fd00:10:96::/112'")
              + svc("  clusterIP: 'fd00:10:97::10'\n"))
    code, out, err = run_cli(["rules", "-f", str(p)])
    assert code == 1
    assert f"{p}:14: spec.clusterIP: fd00:10:97::10 is outside the IPv6 service CIDRs" in err
    assert "Traceback" not in err and out == ""


def test_require_dual_stack_on_single_stack_cluster(write: Write) -> None:
    p = write("c.yaml", profile("10.96.0.0/12") + svc("  ipFamilyPolicy: RequireDualStack\n"))
    err = load_err(p)
    assert (err.line, err.field) == (14, "spec.ipFamilyPolicy")
    assert err.message == ("this cluster is not configured for dual-stack services (service "
                           "CIDRs: IPv4 only)")


def test_two_families_on_single_stack_cluster(write: Write) -> None:
    p = write("c.yaml", profile("10.96.0.0/12")
              + svc("  ipFamilyPolicy: PreferDualStack\n  ipFamilies:\n  - IPv4\n  - IPv6\n"))
    err = load_err(p)
    assert (err.line, err.field) == (17, "spec.ipFamilies[1]")
    assert err.message.startswith("IPv6 not configured on this cluster")


def test_two_cluster_ips_on_single_stack_cluster_via_cli(write: Write) -> None:
    p = write("c.yaml", profile("10.96.0.0/12")
              + svc("  ipFamilyPolicy: PreferDualStack\n  clusterIP: 10.96.0.10\n"
                    "  clusterIPs:\n  - 10.96.0.10\n  - fd00:10:96::10\n"))
    code, _out, err = run_cli(["rules", "-f", str(p)])
    assert code == 1
    assert (f"{p}:18: spec.clusterIPs[1]: fd00:10:96::10: IPv6 is not configured on this "
            "cluster (service CIDRs: IPv4 only)") in err
    assert "Traceback" not in err


def test_dual_stack_without_policy_is_single_stack_and_rejected(write: Write) -> None:
    # an unset policy is SingleStack (initIPFamilyFields), which cannot hold two ClusterIPs
    p = write("c.yaml", svc("  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10, 'fd00::10']\n"))
    err = load_err(p)
    assert (err.line, err.field) == (6, "spec.ipFamilyPolicy")  # unset: the line of spec
    assert "when multiple cluster IPs are specified" in err.message


def test_unknown_policy_and_duplicate_family(write: Write) -> None:
    err = load_err(write("a.yaml", svc("  ipFamilyPolicy: DualStack\n")))
    assert (err.line, err.field) == (8, "spec.ipFamilyPolicy")
    assert "SingleStack, PreferDualStack, RequireDualStack" in err.message
    err = load_err(write("b.yaml", svc("  ipFamilyPolicy: PreferDualStack\n"
                                       "  ipFamilies: [IPv4, IPv4]\n")))
    assert (err.line, err.field) == (9, "spec.ipFamilies[1]")
    assert err.message == "duplicate value 'IPv4'"


# ---- defaulting and allocation ----

def test_prefer_dual_stack_gets_both_families_on_a_dual_stack_cluster(write: Write) -> None:
    p = write("c.yaml", profile("10.96.0.0/12, 'fd00:10:96::/112'")
              + svc("  ipFamilyPolicy: PreferDualStack\n")
              + "---\n" + svc("", name="single")
              + "---\n" + svc("  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv6]\n",
                              name="v6first"))
    c = load_cluster([p])
    assert c.ip_families == (4, 6) and c.dual_stack
    web, single, v6first = (c.service(f"shop/{n}") for n in ("web", "single", "v6first"))
    assert web.ip_families == ("IPv4", "IPv6") and web.families == (4, 6)
    assert [a.version for a in web.cluster_ips] == [4, 6]
    assert web.cluster_ip(6) in ipaddress.ip_network("fd00:10:96::/112")
    assert single.ip_family_policy == "SingleStack" and single.cluster_ip(6) is None
    assert single.ip_families == ("IPv4",)
    assert v6first.families == (6, 4) and v6first.cluster_ips[0].version == 6
    assert len({a for s in (web, single, v6first) for a in s.cluster_ips}) == 5


def test_prefer_dual_stack_stays_single_on_a_single_stack_cluster(write: Write) -> None:
    c = load_cluster([write("c.yaml", profile("10.96.0.0/12")
                            + svc("  ipFamilyPolicy: PreferDualStack\n"))])
    web = c.service("shop/web")
    assert c.ip_families == (4,) and web.ip_families == ("IPv4",) and len(web.cluster_ips) == 1


def test_ipv6_primary_cluster_defaults_to_ipv6(write: Write) -> None:
    c = load_cluster([write("c.yaml", profile("'fd00:10:96::/112', 10.96.0.0/12")
                            + svc(""))])
    web = c.service("shop/web")
    assert c.ip_families == (6, 4)
    assert web.ip_families == ("IPv6",) and web.cluster_ips[0] in ipaddress.ip_network(
        "fd00:10:96::/112")


def test_selectorless_headless_defaults_to_require_dual_stack_even_single_stack(
        write: Write) -> None:
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: h, namespace: shop}\n"
            "spec:\n  clusterIP: None\n  ports: [{port: 80}]\n")
    c = load_cluster([write("c.yaml", profile("10.96.0.0/12") + text)])
    h = c.service("shop/h")
    assert h.ip_family_policy == "RequireDualStack" and h.ip_families == ("IPv4", "IPv6")
    assert h.cluster_ips == ()


def test_families_inferred_without_service_cidrs(write: Write) -> None:
    node = ("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec:\n"
            "  podCIDRs: ['fd00:10:244:1::/64', 10.244.1.0/24]\n"
            "status:\n  addresses: [{type: InternalIP, address: 'fd00::11'}]\n---\n")
    c = load_cluster([write("c.yaml", node + svc("  ipFamilyPolicy: RequireDualStack\n"))])
    assert c.ip_families == (6, 4)
    web = c.service("shop/web")
    assert web.families == (6, 4)
    assert web.cluster_ips[0] in ipaddress.ip_network("fd00:10:96::/112")
    assert web.cluster_ips[1] in ipaddress.ip_network("10.96.0.0/12")


def test_kube_apiserver_flag_gives_service_cidrs(write: Write) -> None:
    apiserver = """\
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver-cp, namespace: kube-system}
spec:
  containers:
  - name: kube-apiserver
    command:
    - kube-apiserver
    - --service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/108
---
"""
    c = load_cluster([write("c.yaml", apiserver + svc("  ipFamilyPolicy: PreferDualStack\n"))])
    assert c.profile.service_cidrs == (ipaddress.ip_network("10.96.0.0/16"),
                                       ipaddress.ip_network("fd00:10:96::/108"))
    assert c.profile.service_cidrs_of(6) == (ipaddress.ip_network("fd00:10:96::/108"),)
    assert len(c.service("shop/web").cluster_ips) == 2
    bad = apiserver.replace("fd00:10:96::/108", "10.97.0.0/16")
    err = load_err(write("d.yaml", bad))
    assert (err.line, err.field) == (9, "spec.containers[0].command[1]")
    assert "one IPv4 and one IPv6 CIDR" in err.message


# ---- clusterCIDR, podCIDRs, EndpointSlices ----

def test_cluster_cidr_one_per_family(write: Write) -> None:
    kp = ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
          "clusterCIDR: {}\n")
    c = load_cluster([write("ok.yaml", kp.format("'10.244.0.0/16,fd00:10:244::/56'"))])
    assert c.kube_proxy.cluster_cidr(6) == ipaddress.ip_network("fd00:10:244::/56")
    assert c.kube_proxy.cluster_cidr(4) == ipaddress.ip_network("10.244.0.0/16")
    err = load_err(write("bad.yaml", kp.format("'fd00:1::/64,fd00:2::/64'")))
    assert (err.line, err.field) == (3, "clusterCIDR")
    assert "DualStack CIDR" in err.message


def test_node_pod_cidrs_one_per_family(write: Write) -> None:
    node = ("apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\nspec:\n"
            "  podCIDR: {first}\n  podCIDRs: [10.244.1.0/24, {second}]\n")
    c = load_cluster([write("ok.yaml", node.format(first="10.244.1.0/24",
                                                   second="'fd00:10:244:1::/64'"))])
    n1 = c.node("n1")
    assert n1.pod_cidr(6) == ipaddress.ip_network("fd00:10:244:1::/64")
    err = load_err(write("bad.yaml", node.format(first="10.244.1.0/24",
                                                 second="10.245.1.0/24")))
    assert (err.line, err.field) == (6, "spec.podCIDRs")
    err = load_err(write("bad2.yaml", node.format(first="10.244.9.0/24",
                                                  second="'fd00::/64'")))
    assert (err.line, err.field) == (5, "spec.podCIDR")


def test_endpoint_slices_per_address_type(write: Write) -> None:
    es = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-{fam}
  namespace: shop
  labels: {{kubernetes.io/service-name: web}}
addressType: {atype}
endpoints:
- addresses: [{addr}]
ports: [{{port: 8080}}]
---
"""
    text = (profile("10.96.0.0/12, 'fd00:10:96::/112'")
            + es.format(fam="v4", atype="IPv4", addr="10.244.1.5")
            + es.format(fam="v6", atype="IPv6", addr="'fd00:10:244:1::5'")
            + svc("  ipFamilyPolicy: RequireDualStack\n"))
    c = load_cluster([write("c.yaml", text)])
    slices = {s.address_type: s for s in c.slices_for(c.service("shop/web"))}
    assert slices["IPv6"].endpoints[0].addresses == (ip("fd00:10:244:1::5"),)
    assert slices["IPv4"].endpoints[0].addresses == (ip("10.244.1.5"),)
    bad = es.format(fam="v6", atype="IPv6", addr="10.244.1.5")
    err = load_err(write("bad.yaml", bad))
    assert (err.line, err.field) == (9, "endpoints[0].addresses[0]")
