"""Traefik: an entryPoint's ``forwardedHeaders`` and ``proxyProtocol`` (static configuration:
CLI args, YAML or TOML), one request through the entryPoint and the proxy, and the advice for
the app behind it.

Pinned: traefik/traefik v3.7.9-28-gfd5a576df2 (commit fd5a576df2e8, 2026-07-24).

* ``pkg/config/static/entrypoints.go``: ``ForwardedHeaders{Insecure, TrustedIPs, Connection,
  NotAppendXForwardedFor, AddXForwardedSchemeHeaders}``, ``ProxyProtocol{Insecure,
  TrustedIPs}``.
* ``pkg/middlewares/forwardedheaders/forwarded_header.go`` ServeHTTP/rewrite: unless insecure
  or the peer is in trustedIPs, every managed X- header (X-Forwarded-For/-Proto/-Host/-Port/
  -Server/-Uri/-Method/-Prefix/-Tls-Client-Cert[-Info], X-Forwarded-Scheme, X-Scheme, X-Real-Ip,
  and their ``_`` spellings) is deleted; then X-Real-Ip is set to the peer if empty,
  X-Forwarded-Proto/-Port/-Host if empty, X-Forwarded-Scheme/X-Scheme when
  addXForwardedSchemeHeaders, repeated X-Forwarded-For lines joined with ", ",
  X-Forwarded-Server = hostname. Cases in ``forwarded_header_test.go`` TestServeHTTP.
* ``pkg/proxy/httputil/proxy.go``: the peer is appended to X-Forwarded-For
  (``prior + ", " + clientIP``) unless notAppendXForwardedFor.
* ``pkg/server/server_entrypoint_tcp.go`` buildProxyProtocolListener: insecure accepts PROXY
  from anyone; otherwise go-proxyproto policy USE for trustedIPs (the header is optional: a
  connection without one keeps its peer) and IGNORE for others (a header is consumed, its
  addresses ignored). ``ip.NewChecker`` rejects an entry that is neither IP nor CIDR: the
  entryPoint fails to start.
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
    non_catch_all,
    parse_network,
    split_list,
)

CONTROLLER = "traefik"

# forwarded_header.go XHeadersSet
MANAGED = ("X-Forwarded-Proto", "X-Forwarded-Scheme", "X-Forwarded-For", "X-Forwarded-Host",
           "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Uri", "X-Forwarded-Method",
           "X-Forwarded-Prefix", "X-Forwarded-Tls-Client-Cert",
           "X-Forwarded-Tls-Client-Cert-Info", "X-Scheme", "X-Real-Ip")
_MANAGED_LOW = frozenset(m.lower() for m in MANAGED)
HOSTNAME = "traefik"


@dataclass(frozen=True, slots=True, kw_only=True)
class TraefikSettings:
    """One entryPoint's forwardedHeaders and proxyProtocol."""

    controller: ClassVar[str] = CONTROLLER

    entrypoint: str = "web"
    fh_insecure: bool = False
    fh_trusted_ips: tuple[str, ...] = ()
    not_append_xff: bool = False
    add_scheme_headers: bool = False
    pp_enabled: bool = False
    pp_insecure: bool = False
    pp_trusted_ips: tuple[str, ...] = ()

    @property
    def fh_trusted(self) -> list[IPNetwork]:
        return [n for n in (parse_network(c) for c in self.fh_trusted_ips) if n is not None]

    @property
    def pp_trusted(self) -> list[IPNetwork]:
        return [n for n in (parse_network(c) for c in self.pp_trusted_ips) if n is not None]

    def path(self, leaf: str) -> str:
        return f"entryPoints.{self.entrypoint}.{leaf}"


def default_settings() -> TraefikSettings:
    return TraefikSettings()


_FIELDS = {  # lower-case leaf -> (attr, kind)
    "forwardedheaders.insecure": ("fh_insecure", "bool"),
    "forwardedheaders.trustedips": ("fh_trusted_ips", "ips"),
    "forwardedheaders.notappendxforwardedfor": ("not_append_xff", "bool"),
    "forwardedheaders.addxforwardedschemeheaders": ("add_scheme_headers", "bool"),
    "proxyprotocol.insecure": ("pp_insecure", "bool"),
    "proxyprotocol.trustedips": ("pp_trusted_ips", "ips"),
}


def _value(attr: str, kind: str, raw: Any, where: str) -> Any:
    if kind == "bool":
        if raw in ("", None):
            return True  # `--entryPoints.web.forwardedHeaders.insecure` alone means true
        return bool_field(raw, where, controller="Traefik", parser="strconv.ParseBool "
                          "(paerser)", on_error="Traefik refuses the static configuration "
                          "and does not start")
    items = split_list(raw) if isinstance(raw, str) else [str(x) for x in (raw or [])]
    for item in items:
        if parse_network(item) is None:
            raise ValidationError(
                f"{item!r} is neither an IP nor a CIDR: ip.NewChecker fails and Traefik does "
                "not start the entryPoint (server_entrypoint_tcp.go)", field=where)
    return tuple(items)


def parse_settings(source: Mapping[str, Any] | Sequence[str], *,
                   entrypoint: str | None = None) -> TraefikSettings:
    """Container args (``--entryPoints.web.forwardedHeaders.trustedIPs=...``) or the static
    configuration mapping (``entryPoints: {web: {forwardedHeaders: ...}}``). The first
    entryPoint that configures anything is used, else ``web``."""
    found: dict[str, dict[str, tuple[Any, str]]] = {}  # ep -> leaf -> (raw, where)
    pp_seen: set[str] = set()
    if isinstance(source, Mapping):
        eps = source.get("entryPoints", source.get("entrypoints")) or {}
        if not isinstance(eps, Mapping):
            raise ValidationError("must be a mapping of entryPoint names", field="entryPoints")
        for ep, conf in eps.items():
            if not isinstance(conf, Mapping):
                continue
            for group in ("forwardedHeaders", "proxyProtocol"):
                sub = conf.get(group)
                if sub is None:
                    continue
                if group == "proxyProtocol":
                    pp_seen.add(str(ep))
                if not isinstance(sub, Mapping):
                    if group == "proxyProtocol":
                        continue  # `proxyProtocol: {}` style, enabled
                    raise ValidationError("must be a mapping", field=f"entryPoints.{ep}.{group}")
                for k, v in sub.items():
                    leaf = f"{group}.{k}".lower()
                    if leaf in _FIELDS:
                        where = f"entryPoints.{ep}.{group}.{k}"
                        found.setdefault(str(ep), {})[leaf] = (v, where)
    else:
        for i, arg in enumerate(source):
            if not isinstance(arg, str) or not arg.startswith("--"):
                continue
            key, _, val = arg[2:].partition("=")
            parts = key.split(".")
            if len(parts) < 3 or parts[0].lower() != "entrypoints":
                continue
            ep = parts[1]
            leaf = ".".join(parts[2:]).lower()
            if leaf.startswith("proxyprotocol"):
                pp_seen.add(ep)
            if leaf in _FIELDS:
                found.setdefault(ep, {})[leaf] = (val if "=" in arg else "", f"args[{i}]")
    names = [e for e in found] + [e for e in pp_seen if e not in found]
    ep = entrypoint or (names[0] if names else "web")
    values: dict[str, Any] = {"entrypoint": ep, "pp_enabled": ep in pp_seen}
    for leaf, (raw, where) in found.get(ep, {}).items():
        attr, kind = _FIELDS[leaf]
        values[attr] = _value(attr, kind, raw, where)
    return TraefikSettings(**values)


def _is_managed(name: str) -> bool:
    low = name.lower()
    return low in _MANAGED_LOW or ("_" in low and low.replace("_", "-") in _MANAGED_LOW)


def forward(s: TraefikSettings, conn: Connection, headers: Sequence[tuple[str, str]], *,
            controller_ip: str, host: str, scheme: str, port: int) -> Forwarded:
    if conn.proxy is not None and not s.pp_enabled:
        return Forwarded(ok=False, peer=controller_ip, error=(
            f"a PROXY header on {s.path('')[:-1]}, which has no proxyProtocol: Go's HTTP "
            "server reads it as a malformed request line (400 Bad Request)"))
    prov: dict[str, str] = {}
    remote = conn.peer
    why = "the connection's peer"
    if conn.proxy is not None:
        if s.pp_insecure or in_networks(conn.peer, s.pp_trusted):
            remote = conn.proxy[0]
            why = (f"the PROXY header's source ({s.path('proxyProtocol')}: "
                   + ("insecure" if s.pp_insecure else f"{conn.peer} in trustedIPs") + ")")
        else:
            why = (f"the peer ({conn.peer} is not in {s.path('proxyProtocol.trustedIPs')}: "
                   "the PROXY header is consumed and ignored)")
    trusted = s.fh_insecure or in_networks(remote, s.fh_trusted)
    hdrs: list[tuple[str, str]] = [(n, v) for n, v in headers]
    if not trusted:
        hdrs = [(n, v) for n, v in hdrs if not _is_managed(n)]

    def get(name: str) -> str | None:
        for n, v in hdrs:
            if n.lower() == name.lower():
                return v
        return None

    def values(name: str) -> list[str]:
        return [v for n, v in hdrs if n.lower() == name.lower()]

    trust_note = ("incoming value kept (" + (s.path("forwardedHeaders.insecure") if s.fh_insecure
                  else f"{remote} in {s.path('forwardedHeaders.trustedIPs')}") + ")")
    out: list[tuple[str, str]] = []
    http_host = get("Host")
    req_host = http_host if http_host is not None else host
    out.append(("Host", req_host))
    real = get("X-Real-Ip")
    if real:
        out.append(("X-Real-Ip", real))
        prov["X-Real-Ip"] = trust_note
    else:
        out.append(("X-Real-Ip", remote))
        prov["X-Real-Ip"] = f"set to {why} because it was empty (forwarded_header.go rewrite)"
    xfp = get("X-Forwarded-Proto")
    if not xfp:
        xfp = scheme
        prov["X-Forwarded-Proto"] = "set from the connection (TLS or not) because it was empty"
    else:
        prov["X-Forwarded-Proto"] = trust_note
    out.append(("X-Forwarded-Proto", xfp))
    xfport = get("X-Forwarded-Port")
    if not xfport:
        hp = req_host.rsplit(":", 1)
        if len(hp) == 2 and hp[1].isdigit() and not req_host.endswith("]"):
            xfport = hp[1]
        else:
            xfport = "443" if xfp in ("https", "wss") else "80"
        prov["X-Forwarded-Port"] = "set by forwardedPort() because it was empty"
    else:
        prov["X-Forwarded-Port"] = trust_note
    out.append(("X-Forwarded-Port", xfport))
    if s.add_scheme_headers:
        out.append(("X-Forwarded-Scheme", xfp))
        out.append(("X-Scheme", xfp))
        prov["X-Forwarded-Scheme"] = prov["X-Scheme"] = (
            f"{s.path('forwardedHeaders.addXForwardedSchemeHeaders')}: X-Forwarded-Proto")
    xfh = get("X-Forwarded-Host")
    if not xfh and req_host:
        xfh = req_host
        prov["X-Forwarded-Host"] = "set to the request Host because it was empty"
    elif xfh:
        prov["X-Forwarded-Host"] = trust_note
    if xfh:
        out.append(("X-Forwarded-Host", xfh))
    prior = values("X-Forwarded-For")
    if s.not_append_xff:
        if prior:
            out.append(("X-Forwarded-For", ", ".join(prior)))
            prov["X-Forwarded-For"] = (f"{trust_note}; not appended "
                                       f"({s.path('forwardedHeaders.notAppendXForwardedFor')})")
    else:
        xff = ", ".join([*prior, remote])
        out.append(("X-Forwarded-For", xff))
        prov["X-Forwarded-For"] = (
            (f"{trust_note}, " if prior else "") + f"then {why} appended (proxy.go)")
    out.append(("X-Forwarded-Server", HOSTNAME))
    prov["X-Forwarded-Server"] = "the Traefik pod's hostname"
    done = {n.lower() for n, _ in out}
    for n, v in hdrs:
        low = n.lower()
        if low in RELEVANT_HEADERS and low not in done:
            out.append((n, v))
            prov.setdefault(n, "passed through from the client unchanged")
    return Forwarded(ok=True, error=None, peer=controller_ip, headers=tuple(out),
                     controller_client=remote, provenance=tuple(prov.items()))


def recommend(s: TraefikSettings, *, trusted_cidrs: Sequence[str]) -> Recommendation:
    """Traefik appends the address it accepted the connection from; the app walks
    X-Forwarded-For from the right past the Traefik pods and the proxies Traefik trusts
    (catch-all ranges left out: they would make every entry trusted)."""
    app_trust = list(dict.fromkeys([*trusted_cidrs, *non_catch_all(s.fh_trusted)]))
    code = f"RightmostTrustedRange(header='x-forwarded-for', trusted_proxies={app_trust!r})"
    pp_wide = s.pp_enabled and (s.pp_insecure or bool(catch_all(s.pp_trusted)))
    changes: list[SettingChange] = []
    notes: list[str] = []
    if pp_wide:
        changes.append(SettingChange(
            setting=s.path("proxyProtocol.trustedIPs"), value="<the load balancer addresses>",
            effect="PROXY headers are then believed only from the load balancers; now any "
                   "client can send its own and choose the address Traefik appends",
            cost="none, if the list is complete (a missing LB's clients show as the LB)"))
    if s.fh_insecure or catch_all(s.fh_trusted):
        changes.append(SettingChange(
            setting=s.path("forwardedHeaders.trustedIPs"),
            value="<the proxies in front>",
            effect="X-Real-Ip and X-Forwarded-* from other clients are removed instead of "
                   "passed on (now insecure / catch-all keeps what any client sent)",
            cost="list every L7 proxy in front"))
        notes.append("X-Real-Ip is kept when a client sends it (insecure or catch-all "
                     "trustedIPs): never use it; X-Forwarded-For's rightmost entry is "
                     "Traefik's own")
    if s.not_append_xff:
        notes.append("notAppendXForwardedFor: Traefik does not add the peer; the rightmost "
                     "entry is whatever a trusted proxy (or the client) sent")
        changes.append(SettingChange(
            setting=s.path("forwardedHeaders.notAppendXForwardedFor"), value="false",
            effect="Traefik appends the peer it saw", cost="none"))
    # the PROXY source reaches the app only through the appended entry; without appending, a
    # client's own X-Forwarded-For reaches it when forwarded headers are trusted from anyone
    forgeable = ((pp_wide and not s.not_append_xff)
                 or (s.not_append_xff and (s.fh_insecure or bool(catch_all(s.fh_trusted)))))
    return Recommendation(strategy_code=code, header="X-Forwarded-For", forgeable=forgeable,
                          settings_changes=tuple(changes), notes=tuple(notes))


def client_headers(s: TraefikSettings) -> tuple[str, ...]:
    return ("X-Forwarded-For", "X-Real-Ip")
