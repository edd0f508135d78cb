"""Chain-name hashing checked against names that appear in kube-proxy's own tests."""

from __future__ import annotations

import pytest

from sourceip.kubeproxy.names import (
    endpoint_string,
    nft_endpoint_chain_name,
    nft_endpoint_chain_name_base,
    nft_service_chain_name,
    nft_service_port_chain_name_base,
    service_external_chain_name,
    service_firewall_chain_name,
    service_port_chain_name,
    service_port_endpoint_chain_name,
    service_port_local_chain_name,
    service_port_name,
)

SVC1 = service_port_name("ns1", "svc1", "p80")


def test_service_port_name() -> None:
    assert SVC1 == "ns1/svc1:p80"
    assert service_port_name("ns1", "svc1") == "ns1/svc1"


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        # pkg/proxy/iptables/proxier_test.go TestOverallIPTablesRules
        (service_port_chain_name, "KUBE-SVC-XPGD46QRK7WJZT7O"),
        (service_port_local_chain_name, "KUBE-SVL-XPGD46QRK7WJZT7O"),
        (service_external_chain_name, "KUBE-EXT-XPGD46QRK7WJZT7O"),
        (service_firewall_chain_name, "KUBE-FW-XPGD46QRK7WJZT7O"),
    ],
)
def test_iptables_service_chains(fn: object, expected: str) -> None:
    assert fn(SVC1, "tcp") == expected  # type: ignore[operator]


def test_iptables_other_services() -> None:
    # TestOverallIPTablesRules: svc2..svc5 (ns2..ns5)
    assert service_port_chain_name("ns2/svc2:p80", "tcp") == "KUBE-SVC-GNZBNJ2PO5MGZ6GT"
    assert service_port_chain_name("ns3/svc3:p80", "tcp") == "KUBE-SVC-X27LE4BHSL4DOUIK"
    assert service_port_chain_name("ns4/svc4:p80", "tcp") == "KUBE-SVC-4SW47YFZTEDKD3PK"
    assert service_port_chain_name("ns5/svc5:p80", "tcp") == "KUBE-SVC-NUKIZ6OKUXPJNT4C"


def test_iptables_endpoint_chain() -> None:
    assert (
        service_port_endpoint_chain_name(SVC1, "tcp", endpoint_string("10.180.0.1", 80))
        == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    )


def test_endpoint_string_v6() -> None:
    assert endpoint_string("fd00::1", 80) == "[fd00::1]:80"


def test_nft_names() -> None:
    # Examples from the comments of pkg/proxy/nftables/proxier.go
    assert nft_service_port_chain_name_base("ns1", "svc1", "tcp", "p80") == (
        "ULMVA6XW-ns1/svc1/tcp/p80"
    )
    assert nft_service_chain_name("ns1", "svc1", "tcp", "p80") == (
        "service-ULMVA6XW-ns1/svc1/tcp/p80"
    )
    assert nft_endpoint_chain_name_base("ns1", "svc1", "tcp", "p80", "10.180.0.1:80") == (
        "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    )
    assert nft_endpoint_chain_name("ns1", "svc1", "tcp", "p80", "10.180.0.1:80").startswith(
        "endpoint-5OJB2KTY-"
    )


def test_nft_v6_endpoint_uses_dots() -> None:
    base = nft_endpoint_chain_name_base("ns1", "svc1", "tcp", "p80", "[fd00::1]:80")
    assert base.endswith("__fd00..1/80")
