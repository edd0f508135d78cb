"""HAProxy Kubernetes Ingress Controller (haproxytech): its ConfigMap, one request through the
haproxy.cfg it renders, the advice for the app behind it, and a haproxy.cfg for a real HAProxy.

Pinned: haproxytech/kubernetes-ingress v3.2.0-78-gfc120676 (commit fc1206761aa7, 2026-07-02).

* ``documentation/doc.yaml``: ``forwarded-for`` (bool, default "true"; ConfigMap, Ingress or
  Service) adds X-Forwarded-For; ``proxy-protocol`` (IPs/CIDRs, default ""): "Enables Proxy
  Protocol on client side for a comma-delimited list of IP addresses and/or CIDR ranges";
  "Connection will fail with 400 Bad Request if source IP is in annotation list but no Proxy
  Protocol data is sent."
* ``pkg/annotations/common/main.go``: default ``"forwarded-for": "true"``.
  ``pkg/annotations/service/backendForwardedFor.go`` + ``pkg/utils/utils.go`` GetBoolValue:
  strconv.ParseBool, plus the deprecated spellings enabled/on and disabled/off; anything else
  is an error and the annotation is not applied. Enabled renders a plain
  ``option forwardfor`` on the backend (no ``except``, no ``if-none``).
* ``pkg/handler/proxy-protocol.go`` + ``pkg/haproxy/rules/reqProxyProtocol.go``: the list goes
  into a map file; the HTTP/HTTPS frontends get
  ``tcp-request connection expect-proxy layer4 if { src -f <map> }`` -- not ``accept-proxy``
  on the bind: only listed sources are expected to send PROXY. Entries that are neither an IP
  nor a CIDR are logged ("incorrect address") and skipped.

HAProxy 2.6 (doc/configuration.txt ``option forwardfor``): adds a new ``X-Forwarded-For: <src>``
line at the end; existing lines are kept ("the server must ... use the last occurrence").
A PROXY header from a source not listed is read as the HTTP request line: 400 Bad Request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sourceip.errors import ValidationError

from .model import (
    RELEVANT_HEADERS,
    Connection,
    Forwarded,
    IPNetwork,
    Recommendation,
    SettingChange,
    bool_field,
    catch_all,
    in_networks,
    parse_network,
    passthrough,
    split_list,
)

CONTROLLER = "haproxy"


@dataclass(frozen=True, slots=True, kw_only=True)
class HAProxySettings:
    """``forwarded-for`` and ``proxy-protocol`` of the haproxytech ConfigMap."""

    controller: ClassVar[str] = CONTROLLER

    forwarded_for: bool = True
    proxy_protocol: tuple[str, ...] = ()
    explicit: frozenset[str] = frozenset()

    @property
    def proxy_sources(self) -> list[IPNetwork]:
        return [n for n in (parse_network(c) for c in self.proxy_protocol) if n is not None]

    def describe(self, key: str) -> str:
        if key == "forwarded-for":
            v = "true" if self.forwarded_for else "false"
        else:
            v = ", ".join(self.proxy_protocol)
        return f'{key}: "{v}"' + ("" if key in self.explicit else " (default)")


def default_settings() -> HAProxySettings:
    return HAProxySettings()


def parse_settings(source: Mapping[str, Any] | Sequence[str]) -> HAProxySettings:
    if not isinstance(source, Mapping):
        raise ValidationError("the haproxytech ConfigMap data must be a mapping", field="data")
    values: dict[str, Any] = {}
    explicit = set()
    if "forwarded-for" in source:
        explicit.add("forwarded-for")
        raw = source["forwarded-for"]
        if raw in ("", None):
            pass  # common.GetValue "" -> the annotation is unset: default applies
        else:
            values["forwarded_for"] = bool_field(
                raw, 'data["forwarded-for"]', controller="haproxytech kubernetes-ingress",
                parser="utils.GetBoolValue (strconv.ParseBool, plus deprecated enabled/on, "
                       "disabled/off)",
                on_error="the controller logs the error and does not apply the annotation "
                         "(backendForwardedFor.go Process)",
                extra_true=("enabled", "on", "Enabled", "ON", "On"),
                extra_false=("disabled", "off", "Disabled", "OFF", "Off"))
    if "proxy-protocol" in source:
        explicit.add("proxy-protocol")
        items = split_list(str(source["proxy-protocol"] or ""))
        for item in items:
            if parse_network(item) is None:
                raise ValidationError(
                    f"{item!r} is neither an IP nor a CIDR: haproxytech logs \"incorrect "
                    "address ... in proxy-protocol annotation\" and skips it "
                    "(handler/proxy-protocol.go)", field='data["proxy-protocol"]')
        values["proxy_protocol"] = tuple(items)
    return HAProxySettings(**values, explicit=frozenset(explicit))


def forward(s: HAProxySettings, conn: Connection, headers: Sequence[tuple[str, str]], *,
            controller_ip: str, host: str, scheme: str, port: int) -> Forwarded:
    expects = in_networks(conn.peer, s.proxy_sources)
    if expects and conn.proxy is None:
        return Forwarded(ok=False, peer=controller_ip, error=(
            f"the peer {conn.peer} is listed in proxy-protocol, so `tcp-request connection "
            "expect-proxy layer4` waits for a PROXY header: without one the connection fails"))
    if not expects and conn.proxy is not None:
        return Forwarded(ok=False, peer=controller_ip, error=(
            f"a PROXY header from {conn.peer}, which proxy-protocol does not list: HAProxy "
            "reads it as the request line and answers 400 Bad Request"))
    src = conn.proxy[0] if conn.proxy is not None else conn.peer
    why_src = (f"the PROXY header's source (expect-proxy for {conn.peer}, listed in "
               f"{s.describe('proxy-protocol')})" if conn.proxy is not None
               else "the connection's peer")
    out: list[tuple[str, str]] = []
    prov: dict[str, str] = {}
    if first_host(headers) is None:
        out.append(("Host", host))
    for n, v in passthrough(headers, RELEVANT_HEADERS, (), drop_underscore=False):
        out.append((n, v))
        prov.setdefault(n, "passed through from the client unchanged")
    if s.forwarded_for:
        out.append(("X-Forwarded-For", src))
        prov["X-Forwarded-For"] = (
            f"option forwardfor ({s.describe('forwarded-for')}): a new line with src = "
            f"{why_src}; incoming lines are kept before it")
    return Forwarded(ok=True, error=None, peer=controller_ip, headers=tuple(out),
                     controller_client=src, provenance=tuple(prov.items()))


def first_host(headers: Sequence[tuple[str, str]]) -> str | None:
    for n, v in headers:
        if n.lower() == "host":
            return v
    return None


def recommend(s: HAProxySettings, *, trusted_cidrs: Sequence[str]) -> Recommendation:
    """HAProxy's own line is the last X-Forwarded-For entry: walk from the right past the
    controller pods. Without ``forwarded-for`` there is no header to trust."""
    cidrs = list(trusted_cidrs)
    changes: list[SettingChange] = []
    notes: list[str] = []
    if not s.forwarded_for:
        changes.append(SettingChange(
            setting="forwarded-for", value="true",
            effect="HAProxy appends the address it accepted the connection from to "
                   "X-Forwarded-For",
            cost="none for the client IP; the header grows by one entry"))
        notes.append("forwarded-for is off: any X-Forwarded-For the backend sees came from "
                     "the client; only the peer (the controller pod) is known")
        return Recommendation(strategy_code="RemoteAddress()", header="", forgeable=False,
                              settings_changes=tuple(changes), notes=tuple(notes))
    wide = catch_all(s.proxy_sources)
    forgeable = bool(wide)
    if forgeable:
        changes.append(SettingChange(
            setting="proxy-protocol", value="<the load balancer addresses>",
            effect=f"{', '.join(map(str, wide))} lets any client send its own PROXY header "
                   "and choose src; list only the load balancers",
            cost="every listed source must send PROXY, others must not"))
    if not s.proxy_protocol:
        changes.append(SettingChange(
            setting="proxy-protocol", value="<the load balancer addresses>",
            effect="behind a proxying load balancer, src becomes the client carried in PROXY",
            cost="enable PROXY on the load balancer at the same time; listed sources that "
                 "do not send it fail"))
    code = (f"RightmostTrustedRange(header='x-forwarded-for', trusted_proxies={cidrs!r})")
    return Recommendation(strategy_code=code, header="X-Forwarded-For", forgeable=forgeable,
                          settings_changes=tuple(changes), notes=tuple(notes))


def client_headers(s: HAProxySettings) -> tuple[str, ...]:
    return ("X-Forwarded-For",)


def render_haproxy_cfg(s: HAProxySettings, *, listen_port: int, backend: str, prefix_dir: str,
                       listen_addr: str = "0.0.0.0") -> str:
    """haproxy.cfg with the frontend/backend parts haproxytech renders for ``s``: ``mode
    http``, ``option forwardfor`` on the backend, and the proxy-protocol source list as a
    file under ``prefix_dir`` used by ``tcp-request connection expect-proxy layer4``. The
    caller writes :func:`proxy_list_text` to ``<prefix_dir>/proxy-protocol.lst``."""
    p = prefix_dir.rstrip("/")
    lines = [
        "global",
        f"    pidfile {p}/haproxy.pid",
        "    maxconn 256",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 10s",
        "    timeout server 10s",
        "frontend http",
        f"    bind {listen_addr}:{listen_port}",
    ]
    if s.proxy_protocol:
        lines.append(f"    tcp-request connection expect-proxy layer4 if "
                     f"{{ src -f {p}/proxy-protocol.lst }}")
    lines += ["    default_backend app", "backend app"]
    if s.forwarded_for:
        lines.append("    option forwardfor")
    lines.append(f"    server app {backend}")
    return "\n".join(lines) + "\n"


def proxy_list_text(s: HAProxySettings) -> str:
    return "".join(f"{c}\n" for c in s.proxy_protocol)
