"""kube-proxy's health-check answers, transcribed from pkg/proxy/healthcheck/healthcheck_test.go.

Each row names the upstream test (and the step inside it) it comes from. ``TestServer`` drives
the per-Service handler with endpoint counts; here the counts come from EndpointSlices, so the
rows also pin ``LocalReadyEndpoints`` (pkg/proxy/endpointschangetracker.go).
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
)
from sourceip.errors import LookupFailed, ValidationError
from sourceip.kubeproxy.healthcheck import (
    HealthResponse,
    go_time,
    local_ready_endpoints,
    node_eligible,
    proxy_health,
    service_health,
    service_response,
)

A = ipaddress.ip_address
NODE = "test-node"
OTHER = "other-node"
NOW = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)


def _svc(ns: str = "a", name: str = "b", *, etp: str = "Local", typ: str = "LoadBalancer",
         hc: int | None = 9376, ports: int = 1) -> Service:
    return Service(
        namespace=ns, name=name, type=typ,  # type: ignore[arg-type]
        cluster_ips=(A("172.30.0.41"),),
        ports=tuple(ServicePort(port=80 + i, name=f"p{80 + i}" if ports > 1 else "",
                                node_port=30080 + i) for i in range(ports)),
        external_traffic_policy=etp,  # type: ignore[arg-type]
        health_check_node_port=hc,
    )


def _ep(ip: str, node: str = NODE, **conds: bool | None) -> Endpoint:
    return Endpoint(addresses=(A(ip),), node_name=node, **conds)  # type: ignore[arg-type]


def _cluster(svc: Service, endpoints: list[Endpoint], *, port_names: tuple[str, ...] = ("",),
             node: Node | None = None) -> Cluster:
    slice_ = EndpointSlice(
        namespace=svc.namespace, name=f"{svc.name}-1", service_name=svc.name,
        endpoints=tuple(endpoints),
        ports=tuple(EndpointPort(port=8080 + i, name=n) for i, n in enumerate(port_names)),
    )
    return Cluster(nodes=(node or Node(name=NODE), Node(name=OTHER)), services=(svc,),
                   endpoint_slices=(slice_,))


def _body(ns: str, name: str, n: int, healthy: bool = True) -> str:
    return ("{\n"
            '\t"service": {\n'
            f'\t\t"namespace": "{ns}",\n'
            f'\t\t"name": "{name}"\n'
            "\t},\n"
            f'\t"localEndpoints": {n},\n'
            f'\t"serviceProxyHealthy": {"true" if healthy else "false"}\n'
            "}")


# ---- the per-Service server -----------------------------------------------------------------

# (id, endpoints, expected localEndpoints, expected status) — TestServer checks status,
# localEndpoints, serviceProxyHealthy and the three headers after each SyncEndpoints call.
SERVICE_ROWS = [
    ("TestServer: sync a real service, no endpoints -> 503, 0", [], 0, 503),
    ("TestServer: sync an endpoint -> 200", [_ep("10.0.0.1")], 1, 200),
    ("TestServer: sync multiple services (nsn2: 3) -> 200, 3",
     [_ep("10.0.0.1"), _ep("10.0.0.2"), _ep("10.0.0.3")], 3, 200),
    ("TestServer: sync zero endpoints (endpoints only on other nodes) -> 503, 0",
     [_ep("10.0.1.1", OTHER), _ep("10.0.1.2", OTHER)], 0, 503),
    ("LocalReadyEndpoints: only local ready endpoints count",
     [_ep("10.0.0.1"), _ep("10.0.1.1", OTHER), _ep("10.0.0.2", ready=False)], 1, 200),
    ("getLocalReadyEndpointIPs: a terminating endpoint that still serves is not counted -> 503",
     [_ep("10.0.0.1", ready=False, serving=True, terminating=True)], 0, 503),
    ("getLocalReadyEndpointIPs: terminating beside ready: only the ready one counts",
     [_ep("10.0.0.1"), _ep("10.0.0.2", ready=False, serving=True, terminating=True)], 1, 200),
    ("endpointslicecache: an unset ready condition means ready",
     [_ep("10.0.0.1", ready=None)], 1, 200),
]


@pytest.mark.parametrize(("endpoints", "count", "status"),
                         [r[1:] for r in SERVICE_ROWS], ids=[r[0] for r in SERVICE_ROWS])
def test_service_health_rows(endpoints: list[Endpoint], count: int, status: int) -> None:
    svc = _svc()
    resp = service_health(_cluster(svc, endpoints), NODE, svc)
    assert resp.status == status
    assert resp.headers == (
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Load-Balancing-Endpoint-Weight", str(count)),
    )
    assert resp.body == _body("a", "b", count)
    payload = json.loads(resp.body)
    assert payload == {"service": {"namespace": "a", "name": "b"}, "localEndpoints": count,
                       "serviceProxyHealthy": True}


# TestServer: "fake a temporary unhealthy proxy" then "fake a healthy proxy" (nsn2: 0, nsn3: 7).
@pytest.mark.parametrize(("count", "proxy_healthy", "status"), [
    (0, False, 503), (7, False, 503), (0, True, 503), (7, True, 200), (18, True, 200),
], ids=lambda v: str(v))
def test_service_response_with_proxy_health(count: int, proxy_healthy: bool,
                                            status: int) -> None:
    resp = service_response("e", "f", count, proxy_healthy)
    assert resp.status == status
    assert resp.header("x-load-balancing-endpoint-weight") == str(count)
    assert json.loads(resp.body)["serviceProxyHealthy"] is proxy_healthy
    assert resp.body == _body("e", "f", count, proxy_healthy)


def test_endpoints_counted_by_ip_over_all_ports() -> None:
    # LocalReadyEndpoints: "a Service pointing to 10.0.0.1:80 and 10.0.0.1:443 [has] 1
    # endpoint, not 2".
    svc = _svc(ports=2)
    cluster = _cluster(svc, [_ep("10.0.0.1"), _ep("10.0.0.2")], port_names=("p80", "p81"))
    assert local_ready_endpoints(cluster, NODE, svc) == 2
    assert service_health(cluster, NODE, svc).header("X-Load-Balancing-Endpoint-Weight") == "2"


def test_node_being_deleted_does_not_change_the_service_answer() -> None:
    # hcHandler reads healthzServer.Health().Healthy, which leaves node eligibility out.
    svc = _svc()
    deleted = Node(name=NODE, deletion_timestamp="2026-03-01T12:00:00Z",
                   taints=(TO_BE_DELETED,))
    resp = service_health(_cluster(svc, [_ep("10.0.0.1")], node=deleted), NODE, svc)
    assert resp.status == 200


@pytest.mark.parametrize("svc", [
    _svc(etp="Cluster", hc=None), _svc(typ="NodePort", hc=None), _svc(hc=None),
], ids=["eTP Cluster", "NodePort", "no healthCheckNodePort"])
def test_no_health_check_server(svc: Service) -> None:
    with pytest.raises(LookupFailed, match="no health check port"):
        service_health(_cluster(svc, [_ep("10.0.0.1")]), NODE, svc)


# ---- the node's /healthz and /livez ---------------------------------------------------------

TO_BE_DELETED = "ToBeDeletedByClusterAutoscaler"

# (id, node tweak, /healthz status, /livez status, nodeEligible)
NODE_ROWS = [
    ("TestHealthzServer: a node tainted in any other way -> 200",
     {"taints": ("other",)}, 200, 200, True),
    ("TestHealthzServer: a ToBeDeletedTaint node -> 503 (TestLivezServer: 200)",
     {"taints": (TO_BE_DELETED,)}, 503, 200, False),
    ("TestHealthzServer: a deleted node -> 503 (TestLivezServer: 200)",
     {"deletion_timestamp": "2026-03-01T11:59:00Z"}, 503, 200, False),
    ("TestHealthzServer: makeNode() untouched -> 200", {}, 200, 200, True),
]


@pytest.mark.parametrize(("tweak", "healthz", "livez", "eligible"),
                         [r[1:] for r in NODE_ROWS], ids=[r[0] for r in NODE_ROWS])
def test_proxy_health_node_rows(tweak: dict[str, object], healthz: int, livez: int,
                                eligible: bool) -> None:
    node = Node(name=NODE, **tweak)  # type: ignore[arg-type]
    cluster = Cluster(nodes=(node,))
    h = proxy_health(cluster, NODE, now=NOW)
    assert h.status == healthz
    assert h.headers == (("Content-Type", "application/json"),
                         ("X-Content-Type-Options", "nosniff"))
    stamp = "2026-03-01T12:00:05.25Z"
    assert h.body == (
        f'{{"lastUpdated":"{stamp}","currentTime":"{stamp}","nodeEligible":'
        f'{json.dumps(eligible)},"healthy":true,"status":{{'
        f'"IPv4":{{"lastUpdated":"{stamp}","healthy":true}},'
        f'"IPv6":{{"lastUpdated":"{stamp}","healthy":true}}}}}}'
    )
    live = proxy_health(cluster, NODE, path="/livez", now=NOW)
    assert live.status == livez
    assert "nodeEligible" not in live.json()  # TestLivezServer: "expected node eligible nil"


def test_proxier_late_is_503_on_both() -> None:
    # testProxyHealthUpdater: "Should return 503 if IPv4 proxier exceed max update-processing
    # time": healthy false, lastUpdated the last sync (not the current time).
    cluster = Cluster(nodes=(Node(name=NODE),))
    synced = NOW - timedelta(seconds=50)
    for path in ("/healthz", "/livez"):
        resp = proxy_health(cluster, NODE, path=path, healthy=False, now=NOW,
                            last_updated=synced)
        assert resp.status == 503
        body = resp.json()
        assert body["healthy"] is False
        assert body["lastUpdated"] == go_time(synced)
        assert body["currentTime"] == go_time(NOW)
        assert body["status"]["IPv4"] == {"lastUpdated": go_time(synced), "healthy": False}


def test_unknown_node_is_not_eligible() -> None:
    # NodeEligible: "node := hs.nodeManager.Node(); if node == nil { return false }".
    assert not node_eligible(None)
    resp = proxy_health(Cluster(), "ghost", now=NOW)
    assert resp.status == 503 and resp.json()["nodeEligible"] is False


@pytest.mark.parametrize("path", ["/", "/healthz/", "/metrics", "/livez/x"])
def test_other_paths_are_gos_404(path: str) -> None:
    resp = proxy_health(Cluster(nodes=(Node(name=NODE),)), NODE, path=path, now=NOW)
    assert (resp.status, resp.body) == (404, "404 page not found\n")
    assert resp.header("Content-Type") == "text/plain; charset=utf-8"


def test_query_string_is_ignored() -> None:
    resp = proxy_health(Cluster(nodes=(Node(name=NODE),)), NODE, path="/healthz?x=1", now=NOW)
    assert resp.status == 200


def test_without_families_status_is_omitted() -> None:
    # ProxyHealth.Status is `json:"status,omitempty"`: empty before any proxier synced.
    resp = proxy_health(Cluster(nodes=(Node(name=NODE),)), NODE, now=NOW, families=())
    assert "status" not in resp.json()


@pytest.mark.parametrize(("t", "text"), [
    (datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), "2026-03-01T12:00:00Z"),
    (datetime(2026, 3, 1, 12, 0, 0, 120000, tzinfo=UTC), "2026-03-01T12:00:00.12Z"),
    (datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
     "2026-03-01T12:00:00+02:00"),
])
def test_go_time(t: datetime, text: str) -> None:
    assert go_time(t) == text


def test_response_round_trip_and_validation() -> None:
    resp = service_response("a", "b", 2)
    assert HealthResponse.from_dict(resp.to_dict()) == resp
    assert resp.ok and resp.reason == "OK"
    with pytest.raises(ValidationError):
        HealthResponse(status=42, headers=(), body="")
    with pytest.raises(ValidationError):
        HealthResponse(status=200, headers=(("X-A", "b\r\nInjected: 1"),), body="")


def test_node_deletion_and_taints_read_from_manifests(tmp_path: object) -> None:
    # Converter.node reads metadata.deletionTimestamp (YAML may give a datetime) and the keys
    # of spec.taints; /healthz then says 503 for that node.
    from pathlib import Path

    from sourceip.sources import load_cluster

    path = Path(str(tmp_path)) / "nodes.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: gone, deletionTimestamp: "
        "2026-03-01T12:00:00Z}\n---\n"
        "apiVersion: v1\nkind: Node\nmetadata: {name: scaled}\nspec:\n  taints:\n"
        "  - {key: ToBeDeletedByClusterAutoscaler, value: '1700000000', effect: NoSchedule}\n"
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: fine}\n")
    cluster = load_cluster([str(path)])
    assert cluster.node("gone").deletion_timestamp == "2026-03-01T12:00:00Z"
    assert cluster.node("scaled").taints == (TO_BE_DELETED,)
    assert [proxy_health(cluster, n, now=NOW).status for n in ("gone", "scaled", "fine")] == [
        503, 503, 200]
