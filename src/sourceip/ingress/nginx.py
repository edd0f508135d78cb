"""ingress-nginx: its ConfigMap read as the controller reads it, one request through the
template it renders, the advice for the app behind it, and an nginx.conf with the same
client-IP directives for a real nginx.

Pinned: kubernetes/ingress-nginx controller-v1.15.1 (commit dbb11b92ddb7, 2026-03-20).

* ``internal/ingress/controller/config/config.go`` NewDefault: defaults (use-forwarded-headers
  false, enable-real-ip false, forwarded-for-header X-Forwarded-For,
  forwarded-for-proxy-protocol-header X-Forwarded-For-Proxy-Protocol (exists since PR #12768,
  2025), forwarded-host-header X-Forwarded-Host, compute-full-forwarded-for false,
  use-proxy-protocol false, proxy-real-ip-cidr 0.0.0.0/0).
  There is no ``real-ip-header`` key at this release: the realip header is
  forwarded-for-header, or proxy_protocol, or forwarded-for-proxy-protocol-header.
* ``internal/ingress/controller/template/configmap.go`` ReadConfig: proxy-real-ip-cidr split on
  commas and trimmed, not validated; everything else decoded by mapstructure v1.5.0 with
  ``WeaklyTypedInput`` (a string bool goes through strconv.ParseBool, "" is false; a value that
  fails is logged as "unexpected error merging defaults" and the key keeps its default).
* ``rootfs/etc/nginx/template/nginx.tmpl``: the realip block (http{}), the
  ``$full_x_forwarded_for`` map, the geo/map + ``more_set_input_headers`` for
  PROXY + forwarded headers, and the location's ``proxy_set_header`` lines.
* ``rootfs/etc/nginx/lua/lua_ingress.lua`` rewrite(): with use-forwarded-headers, incoming
  X-Forwarded-Proto / -Port / -Host (first element) replace $pass_access_scheme /
  $pass_server_port / $best_http_host; with use-proxy-protocol a PROXY destination port 443
  makes the scheme https.

nginx itself (src/http/modules/ngx_http_realip_module.c, src/http/ngx_http_core_module.c
ngx_http_get_forwarded_addr): ``real_ip_header X-Forwarded-For`` (exact spelling) reads every
X-Forwarded-For line; any other header name only its first line. The controller ships nginx
1.27, where ``$http_NAME`` joins repeated lines with ", " (Debian's 1.22 returns the first line
for names other than X-Forwarded-For; the tests avoid repeating those).
"""

from __future__ import annotations

import re
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
    first,
    in_networks,
    joined,
    parse_network,
    passthrough,
    realip_walk,
    split_list,
)

CONTROLLER = "ingress-nginx"

_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")

# key -> (field on NginxSettings, kind, default as the ConfigMap would spell it)
# config.go NewDefault / configmap.go ReadConfig.
KEYS: dict[str, tuple[str, str, str]] = {
    "use-forwarded-headers": ("use_forwarded_headers", "bool", "false"),
    "compute-full-forwarded-for": ("compute_full_forwarded_for", "bool", "false"),
    "enable-real-ip": ("enable_real_ip", "bool", "false"),
    "use-proxy-protocol": ("use_proxy_protocol", "bool", "false"),
    "forwarded-for-header": ("forwarded_for_header", "header", "X-Forwarded-For"),
    "forwarded-for-proxy-protocol-header": ("forwarded_for_proxy_protocol_header", "header",
                                            "X-Forwarded-For-Proxy-Protocol"),
    "forwarded-host-header": ("forwarded_host_header", "header", "X-Forwarded-Host"),
    "proxy-real-ip-cidr": ("proxy_real_ip_cidr", "cidrs", "0.0.0.0/0"),
}

_BOOL_ERROR = ("mapstructure's weak decoding "
               "(strconv.ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False; "
               "\"\" is false)")
_BOOL_EFFECT = ("the controller logs \"unexpected error merging defaults\" and keeps the "
                "default {default} for this key (configmap.go ReadConfig)")


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxSettings:
    """The client-IP-relevant part of ingress-nginx's configuration (ConfigMap keys as
    fields; ``explicit`` lists the keys the ConfigMap set)."""

    controller: ClassVar[str] = CONTROLLER

    use_forwarded_headers: bool = False
    compute_full_forwarded_for: bool = False
    enable_real_ip: bool = False
    use_proxy_protocol: bool = False
    forwarded_for_header: str = "X-Forwarded-For"
    forwarded_for_proxy_protocol_header: str = "X-Forwarded-For-Proxy-Protocol"
    forwarded_host_header: str = "X-Forwarded-Host"
    proxy_real_ip_cidr: tuple[str, ...] = ("0.0.0.0/0",)
    explicit: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for c in self.proxy_real_ip_cidr:
            if parse_network(c) is None:
                raise ValidationError(f"{c!r} is not an IP address or CIDR",
                                      field='data["proxy-real-ip-cidr"]')

    @property
    def trusted(self) -> list[IPNetwork]:
        return [n for n in (parse_network(c) for c in self.proxy_real_ip_cidr) if n is not None]

    @property
    def realip_enabled(self) -> bool:
        """nginx.tmpl: the realip block is rendered for any of the three switches."""
        return self.use_forwarded_headers or self.use_proxy_protocol or self.enable_real_ip

    @property
    def realip_header(self) -> str:
        """``real_ip_header`` as nginx.tmpl picks it."""
        if self.use_forwarded_headers and self.use_proxy_protocol:
            return self.forwarded_for_proxy_protocol_header
        if self.use_proxy_protocol:
            return "proxy_protocol"
        return self.forwarded_for_header

    @property
    def full_xff(self) -> bool:
        return self.use_forwarded_headers and self.compute_full_forwarded_for

    def describe(self, key: str) -> str:
        """``key: "value"`` with ``(default)`` when the ConfigMap did not set it."""
        attr = KEYS[key][0]
        v = getattr(self, attr)
        text = ("true" if v else "false") if isinstance(v, bool) else (
            ",".join(v) if isinstance(v, tuple) else str(v))
        return f'{key}: "{text}"' + ("" if key in self.explicit else " (default)")


def default_settings() -> NginxSettings:
    return NginxSettings()


def parse_settings(source: Mapping[str, Any] | Sequence[str]) -> NginxSettings:
    """ingress-nginx ConfigMap ``data`` → settings; keys that do not matter here are ignored."""
    if not isinstance(source, Mapping):
        raise ValidationError("the ingress-nginx ConfigMap data must be a mapping", field="data")
    values: dict[str, Any] = {}
    explicit = set()
    for key, (attr, kind, default) in KEYS.items():
        if key not in source:
            continue
        explicit.add(key)
        raw = source[key]
        where = f'data["{key}"]'
        if raw is None:
            raw = ""
        if kind == "bool":
            if raw == "":
                values[attr] = False  # mapstructure: "" -> false
                continue
            values[attr] = bool_field(raw, where, controller="ingress-nginx",
                                      parser=_BOOL_ERROR,
                                      on_error=_BOOL_EFFECT.format(default=default))
        elif kind == "header":
            text = str(raw).strip()
            if not _HEADER_NAME.match(text):
                raise ValidationError(
                    f"{text!r} is not an HTTP header name: ingress-nginx copies it unchecked "
                    "into nginx.conf (real_ip_header / $http_ variable), nginx -t fails and the "
                    "controller keeps running the previous configuration "
                    "(nginx.go testTemplate)", field=where)
            values[attr] = text
        else:
            items = split_list(str(raw))
            for item in items:
                if parse_network(item) is None:
                    raise ValidationError(
                        f"{item!r} is not an IP address or CIDR: ingress-nginx copies it "
                        "unchecked into set_real_ip_from, nginx -t rejects the configuration "
                        "and the controller keeps running the previous one "
                        "(configmap.go ReadConfig; nginx.go testTemplate)", field=where)
            # an empty list renders no set_real_ip_from: nothing is trusted
            values[attr] = tuple(items)
    return NginxSettings(**values, explicit=frozenset(explicit))


def _relevant(s: NginxSettings) -> set[str]:
    rel = set(RELEVANT_HEADERS)
    rel.add(s.forwarded_for_header.lower())
    rel.add(s.forwarded_host_header.lower())
    if s.use_forwarded_headers and s.use_proxy_protocol:
        rel.add(s.forwarded_for_proxy_protocol_header.lower())
    return rel


def forward(s: NginxSettings, conn: Connection, headers: Sequence[tuple[str, str]], *,
            controller_ip: str, host: str, scheme: str, port: int) -> Forwarded:
    """One request through ingress-nginx with settings ``s``."""
    if s.use_proxy_protocol and conn.proxy is None:
        return Forwarded(ok=False, peer=controller_ip, error=(
            "use-proxy-protocol: \"true\" renders `listen ... proxy_protocol`: a connection "
            "without a PROXY header is closed (nginx logs \"broken header\")"))
    if not s.use_proxy_protocol and conn.proxy is not None:
        return Forwarded(ok=False, peer=controller_ip, error=(
            "a PROXY header sent to a listener without proxy_protocol: nginx reads it as the "
            "request line and answers 400 Bad Request (use-proxy-protocol is false)"))
    # nginx ignores header lines whose names hold "_" (underscores_in_headers off)
    headers = [(n, v) for n, v in headers if "_" not in n]
    trusted = s.trusted
    peer = conn.peer
    pp_addr = conn.proxy[0] if conn.proxy is not None else None
    pp_dst_port = (conn.proxy_dest[1] if conn.proxy_dest is not None else port)
    prov: dict[str, str] = {}
    extra: list[tuple[str, str]] = []

    # ---- realip: $remote_addr ----
    remote = peer
    why_remote = "the connection's peer (the realip module is off)"
    if s.realip_enabled:
        cidrs = ", ".join(s.proxy_real_ip_cidr) or "nothing"
        switch = " + ".join(k for k in ("use-forwarded-headers", "use-proxy-protocol",
                                        "enable-real-ip")
                            if getattr(s, KEYS[k][0]))
        if s.use_forwarded_headers and s.use_proxy_protocol:
            pp_trusted = in_networks(pp_addr, trusted)
            name = s.forwarded_for_proxy_protocol_header
            value = pp_addr if not pp_trusted else joined(headers, s.forwarded_for_header)
            if value:
                extra.append((name, value))
                prov[name] = (
                    f"more_set_input_headers \"{name}: $forwarded_for_proxy_protocol\"; the "
                    f"PROXY address {pp_addr} is {'' if pp_trusted else 'not '}in "
                    f"proxy-real-ip-cidr, so "
                    + (f"${_var(s.forwarded_for_header)}" if pp_trusted
                       else "$proxy_protocol_addr"))
            src = value
        elif s.use_proxy_protocol:
            src = pp_addr
        elif s.forwarded_for_header == "X-Forwarded-For":
            src = joined(headers, "X-Forwarded-For")
        else:
            src = first(headers, s.forwarded_for_header)
        remote = realip_walk(peer, src, trusted)
        if not in_networks(peer, trusted):
            why_remote = (f"the peer {peer} (not in proxy-real-ip-cidr {cidrs}, so realip "
                          "changes nothing)")
        else:
            why_remote = (f"realip ({switch}): real_ip_header {s.realip_header}, "
                          f"real_ip_recursive on, set_real_ip_from {cidrs}; the peer {peer} "
                          "is trusted, so the rightmost untrusted address of "
                          f"{s.realip_header} (all trusted: the leftmost)")

    # ---- Lua rewrite(): scheme, port, host ----
    http_host = first(headers, "Host")
    best_host = http_host if http_host is not None else host
    host_prov = "$best_http_host = $http_host (lua_ingress.lua rewrite)"
    pass_scheme = scheme
    scheme_prov = "$pass_access_scheme = $scheme"
    pass_port = str(pp_dst_port)
    port_prov = ("$pass_server_port = $proxy_protocol_server_port (use-proxy-protocol)"
                 if s.use_proxy_protocol else "$pass_server_port = $server_port")
    if s.use_forwarded_headers:
        xfp = joined(headers, "X-Forwarded-Proto")
        if xfp is not None:
            pass_scheme = xfp
            scheme_prov = "incoming X-Forwarded-Proto (use-forwarded-headers, lua_ingress.lua)"
        xfport = joined(headers, "X-Forwarded-Port")
        if xfport is not None:
            pass_port = xfport
            port_prov = "incoming X-Forwarded-Port (use-forwarded-headers, lua_ingress.lua)"
        xfh = joined(headers, "X-Forwarded-Host")
        if xfh is not None:
            best_host = xfh.split(",")[0]
            host_prov = ("first element of incoming X-Forwarded-Host (use-forwarded-headers, "
                         "lua_ingress.lua parse_x_forwarded_host)")
    if s.use_proxy_protocol and pp_dst_port == 443:
        pass_scheme = "https"
        scheme_prov = "PROXY destination port 443 (use-proxy-protocol, lua_ingress.lua)"

    # ---- proxy_set_header lines, in nginx.tmpl order ----
    if s.full_xff:
        tail = pp_addr if s.use_proxy_protocol else peer
        incoming = joined(headers, "X-Forwarded-For")
        xff = f"{incoming}, {tail}" if incoming else str(tail)
        xff_prov = ("$full_x_forwarded_for = \"$http_x_forwarded_for, "
                    + ("$proxy_protocol_addr" if s.use_proxy_protocol else "$realip_remote_addr")
                    + "\" (use-forwarded-headers + compute-full-forwarded-for)")
    else:
        xff = remote
        xff_prov = f"proxy_set_header X-Forwarded-For $remote_addr; $remote_addr is {why_remote}"
    orig_xff = (joined(headers, s.forwarded_for_header) if s.forwarded_for_header
                else None)
    orig_xfh = joined(headers, s.forwarded_host_header)
    out: list[tuple[str, str]] = []
    setters = [
        ("Host", best_host, f"proxy_set_header Host $best_http_host; {host_prov}"),
        ("X-Real-IP", remote, f"proxy_set_header X-Real-IP $remote_addr; $remote_addr is "
                              f"{why_remote}"),
        ("X-Forwarded-For", xff, xff_prov),
        ("X-Forwarded-Host", best_host, f"proxy_set_header X-Forwarded-Host $best_http_host; "
                                        f"{host_prov}"),
        ("X-Forwarded-Port", pass_port, f"proxy_set_header X-Forwarded-Port $pass_port; "
                                        f"{port_prov}"),
        ("X-Forwarded-Proto", pass_scheme, f"proxy_set_header X-Forwarded-Proto "
                                           f"$pass_access_scheme; {scheme_prov}"),
        ("X-Forwarded-Scheme", pass_scheme, "proxy_set_header X-Forwarded-Scheme "
                                            f"$pass_access_scheme; {scheme_prov}"),
        ("X-Scheme", pass_scheme, f"proxy_set_header X-Scheme $pass_access_scheme; "
                                  f"{scheme_prov}"),
        ("X-Original-Forwarded-For", orig_xff,
         f"proxy_set_header X-Original-Forwarded-For ${_var(s.forwarded_for_header)}; the "
         "incoming value, unchanged"),
        ("X-Original-Forwarded-Host", orig_xfh,
         f"proxy_set_header X-Original-Forwarded-Host ${_var(s.forwarded_host_header)}; the "
         "incoming value, unchanged"),
    ]
    set_names = [n for n, _, _ in setters]
    for name, value, why in setters:
        if value:  # nginx does not send a header whose proxy_set_header value is empty
            out.append((name, value))
            prov[name] = why
    merged = [(n, v) for n, v in headers] + extra
    # headers set by more_set_input_headers replace the incoming ones of that name
    if extra:
        names = {n.lower() for n, _ in extra}
        merged = [(n, v) for n, v in headers if n.lower() not in names] + extra
    for n, v in passthrough(merged, _relevant(s), set_names, drop_underscore=True):
        out.append((n, v))
        prov.setdefault(n, "passed through from the client unchanged (no proxy_set_header "
                           "for it)")
    return Forwarded(ok=True, error=None, peer=controller_ip, headers=tuple(out),
                     controller_client=remote, provenance=tuple(prov.items()))


def _var(header: str) -> str:
    """buildForwardedFor / buildForwardedHost (template.go): ``$http_`` + lower, - → _."""
    return "http_" + header.lower().replace("-", "_")


def recommend(s: NginxSettings, *, trusted_cidrs: Sequence[str]) -> Recommendation:
    """X-Real-IP always carries ``$remote_addr`` (proxy_set_header, overwritten): the app trusts
    it from the controller pods. Forgeable when realip runs and proxy-real-ip-cidr contains
    a catch-all: any client then chooses ``$remote_addr``."""
    code = f"SingleIPHeader(header='x-real-ip', trusted_proxies={list(trusted_cidrs)!r})"
    wide = catch_all(s.trusted)
    forgeable = s.realip_enabled and bool(wide)
    changes: list[SettingChange] = []
    notes: list[str] = []
    if forgeable:
        what = ("X-Forwarded-For" if not s.use_proxy_protocol else
                "the PROXY header" if not s.use_forwarded_headers else
                "the PROXY header and X-Forwarded-For")
        changes.append(SettingChange(
            setting="proxy-real-ip-cidr", value="<the load balancer / proxy addresses>",
            effect=(f"realip then believes {what} only from those peers; a client connecting "
                    f"from elsewhere keeps its own address (now {', '.join(map(str, wide))} "
                    "trusts every client)"),
            cost=("list every proxy in front (with an eTP=Cluster Service, node IPs are SNAT "
                  "sources too: never list them, use eTP=Local or PROXY protocol)")))
    if not s.realip_enabled:
        changes.append(SettingChange(
            setting="use-proxy-protocol", value="true",
            effect=("with the load balancer sending PROXY, $remote_addr becomes the client's "
                    "address carried in the header"),
            cost=("the load balancer must send PROXY on every connection (enable it on both "
                  "sides at once); set proxy-real-ip-cidr to the LB addresses")))
        changes.append(SettingChange(
            setting="use-forwarded-headers", value="true",
            effect=("for an L7 load balancer that appends X-Forwarded-For: $remote_addr "
                    "becomes the rightmost untrusted entry"),
            cost=("also set proxy-real-ip-cidr to the LB addresses, else any client chooses "
                  "its address (the default 0.0.0.0/0 trusts everyone)")))
        notes.append("without realip, X-Real-IP is the peer the controller saw: the client "
                     "only on a path that keeps the source (eTP=Local, no proxying LB)")
    return Recommendation(strategy_code=code, header="X-Real-IP", forgeable=forgeable,
                          settings_changes=tuple(changes), notes=tuple(notes))


def client_headers(s: NginxSettings) -> tuple[str, ...]:
    """Headers a client would forge to steer ``$remote_addr``."""
    return tuple(dict.fromkeys(["X-Forwarded-For", s.forwarded_for_header]))


# ---------------------------------------------------------------------------------------------
# nginx.conf for a real nginx (client-IP parts of nginx.tmpl; Lua rewrite as `if`/`set`)
# ---------------------------------------------------------------------------------------------

HEADERS_MORE_MODULE = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"


def render_nginx_conf(s: NginxSettings, *, listen_port: int, backend: str, prefix_dir: str,
                      listen_addr: str = "0.0.0.0",
                      headers_more_module: str = HEADERS_MORE_MODULE) -> str:
    """A complete nginx.conf rendering the client-IP directives of nginx.tmpl for ``s``.

    Runs in the foreground (``daemon off``), one worker, pid/error_log/temp paths under
    ``prefix_dir``, access_log off, no ``user``. lua_ingress.lua's rewrite() is rendered as
    ``set``/``if`` (stock nginx has no Lua): the same variables from the same inputs, except
    that a present-but-empty X-Forwarded-* header (or an X-Forwarded-Host whose first
    element is empty) is treated as absent. PROXY + forwarded
    headers needs the headers-more module (``load_module headers_more_module``).
    """
    p = prefix_dir.rstrip("/")
    out: list[str] = []
    w = out.append
    combined = s.use_forwarded_headers and s.use_proxy_protocol
    if combined:
        w(f"load_module {headers_more_module};")
    w(f"pid {p}/nginx.pid;")
    w(f"error_log {p}/error.log warn;")
    w("daemon off;")
    w("worker_processes 1;")
    w("events { worker_connections 128; }")
    w("http {")
    w("    access_log off;")
    for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        w(f"    {t}_temp_path {p}/{t}_temp;")
    w("    underscores_in_headers off;")
    w("    ignore_invalid_headers on;")
    if s.realip_enabled:
        w("    # nginx.tmpl: realip block")
        w(f"    real_ip_header      {s.realip_header};")
        w("    real_ip_recursive   on;")
        for c in s.proxy_real_ip_cidr:
            w(f"    set_real_ip_from    {c};")
    if s.full_xff:
        w("    # nginx.tmpl: $full_x_forwarded_for")
        w("    map $http_x_forwarded_for $full_x_forwarded_for {")
        if s.use_proxy_protocol:
            w('        default          "$http_x_forwarded_for, $proxy_protocol_addr";')
            w("        ''               \"$proxy_protocol_addr\";")
        else:
            w('        default          "$http_x_forwarded_for, $realip_remote_addr";')
            w("        ''               \"$realip_remote_addr\";")
        w("    }")
    if combined:
        w("    # nginx.tmpl: PROXY protocol + forwarded headers")
        w("    geo $proxy_protocol_addr $proxy_protocol_addr_trusted {")
        w("        default           0;")
        for c in s.proxy_real_ip_cidr:
            w(f"        {c} 1;")
        w("    }")
        w("    map $proxy_protocol_addr_trusted $forwarded_for_proxy_protocol {")
        w("        default   $proxy_protocol_addr;")
        w(f"        1         ${_var(s.forwarded_for_header)};")
        w("    }")
        w(f'    more_set_input_headers "{s.forwarded_for_proxy_protocol_header}: '
          '$forwarded_for_proxy_protocol";')
    w("    server {")
    pp = " proxy_protocol" if s.use_proxy_protocol else ""
    w(f"        listen {listen_addr}:{listen_port}{pp};")
    w("        server_name _;")
    w("        location / {")
    w("            # lua_ingress.lua rewrite(), as set/if")
    w("            set $pass_access_scheme  $scheme;")
    w("            set $pass_server_port    "
      + ("$proxy_protocol_server_port;" if s.use_proxy_protocol else "$server_port;"))
    w("            set $best_http_host      $http_host;")
    w("            if ($best_http_host = '') { set $best_http_host $host; }")
    if s.use_forwarded_headers:
        w("            if ($http_x_forwarded_proto != '') "
          "{ set $pass_access_scheme $http_x_forwarded_proto; }")
        w("            if ($http_x_forwarded_port != '') "
          "{ set $pass_server_port $http_x_forwarded_port; }")
        w("            if ($http_x_forwarded_host ~ \"^([^,]+)\") { set $best_http_host $1; }")
    if s.use_proxy_protocol:
        w("            if ($proxy_protocol_server_port = 443) { set $pass_access_scheme https; }")
    w("            set $pass_port           $pass_server_port;")
    w("            proxy_http_version 1.1;")
    w("            proxy_set_header Host                   $best_http_host;")
    w("            proxy_set_header X-Real-IP              $remote_addr;")
    if s.full_xff:
        w("            proxy_set_header X-Forwarded-For        $full_x_forwarded_for;")
    else:
        w("            proxy_set_header X-Forwarded-For        $remote_addr;")
    w("            proxy_set_header X-Forwarded-Host       $best_http_host;")
    w("            proxy_set_header X-Forwarded-Port       $pass_port;")
    w("            proxy_set_header X-Forwarded-Proto      $pass_access_scheme;")
    w("            proxy_set_header X-Forwarded-Scheme     $pass_access_scheme;")
    w("            proxy_set_header X-Scheme               $pass_access_scheme;")
    w("            proxy_set_header X-Original-Forwarded-For  "
      f"${_var(s.forwarded_for_header)};")
    w("            proxy_set_header X-Original-Forwarded-Host "
      f"${_var(s.forwarded_host_header)};")
    w("            proxy_set_header Proxy                  \"\";")
    w(f"            proxy_pass http://{backend};")
    w("        }")
    w("    }")
    w("}")
    return "\n".join(out) + "\n"
