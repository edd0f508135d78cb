"""kube-proxy's two health-check servers, as pure functions (no socket).

Modelled on kubernetes/kubernetes ``pkg/proxy/healthcheck`` as it stands since the NodeManager
change (k/k PR #130837, merged March 2025, so v1.33 and later), read at the newest revision in
sourceip's code index (the release tag could not be checked: the k/k mirror is too large to
fetch here): ``service_health.go`` (``hcHandler.ServeHTTP``),
``proxy_health.go`` (``ProxyHealthServer.Health``, ``NodeEligible``, ``healthzHandler``,
``livezHandler``), ``healthcheck_test.go`` (``TestServer``, ``TestHealthzServer``,
``TestLivezServer``) and ``pkg/proxy/endpointschangetracker.go``
(``EndpointsMap.LocalReadyEndpoints``).

* **The per-Service server** listens on ``spec.healthCheckNodePort`` of every LoadBalancer
  Service with ``externalTrafficPolicy: Local`` (``apiservice.NeedsHealthCheck``), on every
  node. Its handler is the server's only handler, so **every path** gets the same answer
  (cloud controllers probe ``/healthz``: ``GetServiceHealthCheckPathPort``). Status 200 when
  the node has at least one local *ready* endpoint and the proxier is healthy, else 503;
  headers ``Content-Type: application/json``, ``X-Content-Type-Options: nosniff`` and (since
  v1.28, k/k PR #118999) ``X-Load-Balancing-Endpoint-Weight: N``; the body is the tab-indented
  JSON of ``service_health.go`` with ``serviceProxyHealthy`` (since v1.28, KEP-3836).
  ``N`` counts distinct endpoint *IPs* of the Service on this node whose ``ready`` condition is
  true, over all its ports (``LocalReadyEndpoints``): terminating endpoints are not counted,
  even when they still serve (``getLocalReadyEndpointIPs``: "the health check signal should
  fail if there are only terminating endpoints on a node"). The node being deleted does not
  change this answer (the handler reads ``Health().Healthy``, not ``NodeEligible``).
* **The node's server** on ``healthzBindAddress`` (default ``0.0.0.0:10256``) serves
  ``/healthz`` and ``/livez`` (``http.ServeMux``, exact paths; anything else is Go's 404).
  ``/healthz`` is 503 when the proxier is late *or* the node is not eligible: being deleted
  (``metadata.deletionTimestamp``), tainted ``ToBeDeletedByClusterAutoscaler``, or unknown to
  kube-proxy; ``/livez`` ignores the node. Both bodies are ``json.Marshal(ProxyHealth)``.

``HealthResponse.headers`` holds the headers the handler sets; Go's server adds ``Date`` and
``Content-Length`` on the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sourceip.cluster import Cluster, Node, Service, service_port_endpoints
from sourceip.cluster.model import EndpointPort, ServicePort
from sourceip.errors import LookupFailed, ValidationError

# proxy_health.go: the Cluster Autoscaler's taint (autoscaler utils/deletetaint/delete.go).
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
# pkg/cluster/ports: ProxyHealthzPort, the default port of healthzBindAddress.
PROXY_HEALTHZ_PORT = 10256
# KubeProxyConfiguration.ConfigSyncPeriod-derived healthz timeout: 2 x iptables.syncPeriod (30s).
DEFAULT_HEALTH_TIMEOUT = timedelta(seconds=60)

_JSON_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "application/json"),
    ("X-Content-Type-Options", "nosniff"),
)
# net/http NotFound -> http.Error: these two headers and this body.
_NOT_FOUND = (
    404,
    (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")),
    "404 page not found\n",
)
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthResponse:
    """One HTTP answer of a kube-proxy health server: status, the headers its handler sets (in
    order) and the body exactly as written."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: str

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValidationError(f"{self.status!r} is not an HTTP status", field="status")
        for name, value in self.headers:
            if not name or any(c in name + value for c in "\r\n") or ":" in name:
                raise ValidationError(f"bad header {name!r}: {value!r}", field="headers")

    @property
    def ok(self) -> bool:
        """200: what every cloud health checker counts as healthy."""
        return self.status == 200

    @property
    def reason(self) -> str:
        """The reason phrase Go writes on the status line."""
        return _REASONS.get(self.status, "")

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` for the plain-text 404)."""
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        """``{"status", "headers": {name: value}, "body"}``: the shape of the lab's response
        file (``sourceip.lab.health_server``) and of ``-o json``."""
        return {"status": self.status, "headers": dict(self.headers), "body": self.body}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthResponse:
        """The inverse of ``to_dict``."""
        return cls(status=int(data["status"]),
                   headers=tuple((str(k), str(v)) for k, v in dict(data["headers"]).items()),
                   body=str(data["body"]))


# ---------------------------------------------------------------------------------------------
# the per-Service server (service_health.go)
# ---------------------------------------------------------------------------------------------


def local_ready_endpoints(cluster: Cluster, node: Node | str, service: Service,
                          *, version: int = 4) -> int:
    """``EndpointsMap.LocalReadyEndpoints()[service]`` on ``node``: the number of distinct IPs
    of the Service's endpoints that are ready and on this node, over every port its
    EndpointSlices name (the map is keyed by the slices' ports, not the Service's)."""
    name = node if isinstance(node, str) else node.name
    port_keys = {(p.name, p.protocol): p for es in cluster.slices_for(service) for p in es.ports}
    ips = set()
    for ep_port in port_keys.values():
        sp = _port_of(ep_port)
        for ep in service_port_endpoints(cluster, service, sp, version=version):
            if ep.ready and ep.node_name == name:
                ips.add(ep.ip)
    return len(ips)


def _port_of(ep_port: EndpointPort) -> ServicePort:
    # service_port_endpoints matches slice ports by (name, protocol) only.
    return ServicePort(port=ep_port.port, name=ep_port.name, protocol=ep_port.protocol)


def health_check_node_port(service: Service) -> int | None:
    """The port kube-proxy opens for ``service`` (``ServicePortMap.HealthCheckNodePorts``), or
    None: only proxied LoadBalancer Services with eTP Local and a healthCheckNodePort."""
    if not service.proxied or not service.ports or not service.needs_health_check:
        return None
    return service.health_check_node_port


def service_health_body(namespace: str, name: str, local_endpoints: int,
                        proxy_healthy: bool = True) -> str:
    """The body ``hcHandler.ServeHTTP`` writes: its template after ``dedent.Dedent`` and
    ``strings.Trim(..., "\\n")`` (tab indentation, no trailing newline)."""
    return (
        "{\n"
        '\t"service": {\n'
        f'\t\t"namespace": {json.dumps(namespace)},\n'
        f'\t\t"name": {json.dumps(name)}\n'
        "\t},\n"
        f'\t"localEndpoints": {local_endpoints},\n'
        f'\t"serviceProxyHealthy": {"true" if proxy_healthy else "false"}\n'
        "}"
    )


def service_response(namespace: str, name: str, local_endpoints: int,
                     proxy_healthy: bool = True) -> HealthResponse:
    """The answer of the per-Service handler for a given count (what ``TestServer`` checks)."""
    status = 200 if local_endpoints != 0 and proxy_healthy else 503
    headers = _JSON_HEADERS + (("X-Load-Balancing-Endpoint-Weight", str(local_endpoints)),)
    return HealthResponse(status=status, headers=headers,
                          body=service_health_body(namespace, name, local_endpoints,
                                                   proxy_healthy))


def service_health(cluster: Cluster, node: Node | str, service: Service | str, *,
                   proxy_healthy: bool = True, version: int = 4) -> HealthResponse:
    """What kube-proxy on ``node`` answers on ``service``'s healthCheckNodePort (any path).

    200 when the node has local ready endpoints (``local_ready_endpoints``) and the proxier is
    healthy (``proxy_healthy``), else 503. Raises ``LookupFailed`` when kube-proxy opens no
    such port for the Service (not a LoadBalancer with eTP Local, or no healthCheckNodePort).
    """
    the_node = cluster.node(node) if isinstance(node, str) else node
    svc = cluster.service(service) if isinstance(service, str) else service
    if health_check_node_port(svc) is None:
        raise LookupFailed(
            f"kube-proxy opens no health check port for Service {svc.key}: only LoadBalancer "
            "Services with externalTrafficPolicy: Local and a healthCheckNodePort get one")
    count = local_ready_endpoints(cluster, the_node, svc, version=version)
    return service_response(svc.namespace, svc.name, count, proxy_healthy)


# ---------------------------------------------------------------------------------------------
# the node's server (proxy_health.go)
# ---------------------------------------------------------------------------------------------


def node_eligible(node: Node | None) -> bool:
    """``ProxyHealthServer.NodeEligible``: kube-proxy knows its Node, which is neither being
    deleted nor tainted ``ToBeDeletedByClusterAutoscaler``."""
    if node is None:
        return False
    if node.deletion_timestamp:
        return False
    return TO_BE_DELETED_TAINT not in node.taints


def go_time(t: datetime) -> str:
    """``time.Time.MarshalJSON``: RFC 3339 with nanoseconds, trailing zeros dropped, ``Z``
    for UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{t.microsecond:06d}".rstrip("0")
    if frac:
        base += "." + frac
    off = t.utcoffset() or timedelta(0)
    if off == timedelta(0):
        return base + "Z"
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def proxy_health(cluster: Cluster, node: Node | str, *, path: str = "/healthz",
                 healthy: bool = True, now: datetime | None = None,
                 last_updated: datetime | None = None,
                 families: tuple[str, ...] = ("IPv4", "IPv6")) -> HealthResponse:
    """What kube-proxy on ``node`` answers on its healthz port for ``path``.

    ``healthy`` says whether every proxier applied its queued updates within the health
    timeout; ``families`` are the proxiers kube-proxy runs (both on a Linux host that supports
    IPv6, whatever the node's addresses); ``now`` defaults to the current time and
    ``last_updated`` (each proxier's last successful sync) to ``now`` when healthy, else to
    ``now - 60s`` (the default timeout). The Node's eligibility is read from the cluster: a
    node name kube-proxy cannot find is not eligible. Query strings are ignored, as by
    ``http.ServeMux``; paths other than ``/healthz`` and ``/livez`` get Go's 404.
    """
    if isinstance(node, str):
        the_node: Node | None = cluster.node_by_name.get(node)
    else:
        the_node = node
    clean = path.split("?", 1)[0]
    if clean not in ("/healthz", "/livez"):
        status, headers, body = _NOT_FOUND
        return HealthResponse(status=status, headers=headers, body=body)
    current = now if now is not None else datetime.now(UTC)
    synced = last_updated if last_updated is not None else (
        current if healthy else current - DEFAULT_HEALTH_TIMEOUT)
    # Health(): LastUpdated is the newest proxier sync; on a healthy answer the handlers
    # replace it with the current time "to preserve compatibility".
    payload: dict[str, Any] = {
        "lastUpdated": go_time(current if healthy else synced),
        "currentTime": go_time(current),
    }
    eligible = node_eligible(the_node)
    if clean == "/healthz":
        payload["nodeEligible"] = eligible  # only /healthz sets it (omitempty pointer)
        ok = healthy and eligible
    else:
        ok = healthy
    payload["healthy"] = healthy
    if families:  # map[IPFamily]ProxierHealth, omitempty; encoding/json sorts map keys
        payload["status"] = {
            fam: {"lastUpdated": go_time(synced), "healthy": healthy}
            for fam in sorted(families)
        }
    body = json.dumps(payload, separators=(",", ":"))
    return HealthResponse(status=200 if ok else 503, headers=_JSON_HEADERS, body=body)


def node_checks_summary(response: HealthResponse) -> str:
    """A short reading of an answer for reports: ``503 (localEndpoints 0)`` and the like."""
    try:
        data = response.json()
    except ValueError:
        return str(response.status)
    if isinstance(data, dict) and "localEndpoints" in data:
        return f"{response.status} (localEndpoints {data['localEndpoints']})"
    if isinstance(data, dict) and data.get("nodeEligible") is False:
        return f"{response.status} (nodeEligible false)"
    return str(response.status)


__all__ = [
    "DEFAULT_HEALTH_TIMEOUT",
    "PROXY_HEALTHZ_PORT",
    "TO_BE_DELETED_TAINT",
    "HealthResponse",
    "go_time",
    "health_check_node_port",
    "local_ready_endpoints",
    "node_checks_summary",
    "node_eligible",
    "proxy_health",
    "service_health",
    "service_health_body",
    "service_response",
]
