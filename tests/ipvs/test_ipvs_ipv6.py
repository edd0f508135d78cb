"""ipvs mode is modelled for IPv4 only: said as a ValidationError or a note, never silently."""

from __future__ import annotations

import ipaddress

import pytest
from ipvs_fixtures import TEST_NODE, cluster, eps, svc

from sourceip.cluster import Service, ServicePort
from sourceip.errors import ValidationError
from sourceip.kubeproxy.ipvs import build_ipvs_node

ip = ipaddress.ip_address


def test_family_6_is_refused() -> None:
    c = cluster([svc("s", "172.30.0.41")], [eps("s", ("10.180.0.1", TEST_NODE))],
                ("100.101.102.103",))
    with pytest.raises(ValidationError, match="IPv4 only"):
        build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy, family=6)


def test_ipv6_services_are_noted() -> None:
    only6 = Service(namespace="ns1", name="six", cluster_ips=(ip("fd00::41"),),
                    ports=(ServicePort(port=80, name="p80"),))
    dual = Service(namespace="ns1", name="dual", cluster_ips=(ip("172.30.0.42"), ip("fd00::42")),
                   ports=(ServicePort(port=80, name="p80"),))
    c = cluster([only6, dual], [], ("100.101.102.103",))
    n = build_ipvs_node(c, c.node(TEST_NODE), c.kube_proxy)
    assert [str(vs.addr) for vs in n.table.virtual_servers] == ["172.30.0.42"]
    assert any("ns1/six has no IPv4 ClusterIP" in x for x in n.notes), n.notes
    assert any("ns1/dual: its IPv6 ClusterIP is not modelled" in x for x in n.notes), n.notes
