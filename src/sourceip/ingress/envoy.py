"""Envoy's HTTP connection manager and Envoy Gateway's ClientTrafficPolicy (translated to the
same Envoy settings): one request through the HCM, and the advice for the app behind it.

Pinned sources:

* envoyproxy/envoy ``docs/root/configuration/http/http_conn_man/headers.rst`` (commit
  00790513c858): trusted client address rules for use_remote_address / xff_num_trusted_hops,
  Examples 1-6, X-Envoy-External-Address (edge requests only), X-Envoy-Internal, "Downstream
  x-forwarded-proto headers will only be trusted if xff_num_trusted_hops is non-zero".
* envoyproxy/envoy ``source/common/http/conn_manager_utility.cc`` mutateRequestHeaders (the
  version with original_ip_detection_extensions): use_remote_address appends the peer (Envoy's
  own address for a loopback peer) unless skip_xff_append and keeps an incoming
  X-Forwarded-Proto only when xff_num_trusted_hops > 0; otherwise the first extension that
  detects an address wins, nothing is appended, an incoming X-Forwarded-Proto is kept.
* envoyproxy/envoy ``source/extensions/http/original_ip_detection/xff/xff.cc`` (commit
  0cf5c6c3f65c): with ``xff_trusted_cidrs`` the peer must be trusted, then ``recurse`` walks
  past trusted entries (all trusted: the first) or, without recurse, the last entry; without
  CIDRs, ``getLastAddressFromXFF(xff_num_trusted_hops)``.
  ``api/.../xff/v3/xff.proto``: xff_num_trusted_hops and xff_trusted_cidrs are exclusive.
  XffConfig.skip_xff_append (newer API): treated as true when unset (the extension does not
  append, as before the field existed) -- Envoy Gateway always sets it explicitly.
* envoyproxy/gateway v1.9.0-rc.0-375-gd32f28294 (commit d32f28294245, 2026-08-21):
  ``api/v1alpha1/clienttrafficpolicy_types.go`` (clientIPDetection.xForwardedFor.numTrustedHops
  | trustedCIDRs (exclusive, MinItems 1) | disableXForwardedForAppend, customHeader.name
  ``^[A-Za-z0-9-]+$`` + failClosed, enableProxyProtocol (deprecated), proxyProtocol.optional);
  ``internal/xds/translator/listener.go``: use_remote_address=true unless a detection extension
  is configured; numTrustedHops N becomes the xff extension's xff_num_trusted_hops N-1 (0 stays
  0, envoy#34241); trustedCIDRs become XffTrustedCidrs without ``recurse``; SkipXffAppend =
  disableXForwardedForAppend.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
)

_INTERNAL = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fd00::/8", "::1/128")]


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoySettings:
    """HCM client-address settings. ``controller`` is ``envoy`` or ``envoy-gateway`` (then
    ``origin`` names the ClientTrafficPolicy fields each setting came from)."""

    controller: str = "envoy"
    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    skip_xff_append: bool = False
    extension: str | None = None          # None | "xff" | "custom_header"
    ext_hops: int = 0
    ext_cidrs: tuple[str, ...] = ()
    ext_recurse: bool = False
    ext_skip_append: bool = True
    custom_header: str = ""
    reject_if_missing: bool = False
    proxy_protocol: bool = False
    proxy_protocol_optional: bool = False
    origin: tuple[tuple[str, str], ...] = ()

    @property
    def cidrs(self) -> list[IPNetwork]:
        return [n for n in (parse_network(c) for c in self.ext_cidrs) if n is not None]

    def where(self, key: str, default: str) -> str:
        return dict(self.origin).get(key, default)


def default_settings(controller: str = "envoy") -> EnvoySettings:
    if controller == "envoy-gateway":
        return EnvoySettings(controller="envoy-gateway", use_remote_address=True, origin=(
            ("use_remote_address", "Envoy Gateway default (no clientIPDetection): "
                                   "use_remote_address true"),))
    return EnvoySettings()


def _u32(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise ValidationError(f"{v!r} is not a uint32: Envoy rejects the configuration "
                              "(protobuf validation)", field=where)
    return v


def _cidr_range(v: Any, where: str) -> str:
    if isinstance(v, Mapping):
        prefix, plen = v.get("address_prefix"), v.get("prefix_len", None)
        text = f"{prefix}/{plen}" if plen is not None else str(prefix)
    else:
        text = str(v)
    if parse_network(text) is None:
        raise ValidationError(f"{text!r} is not a CIDR range: Envoy rejects the configuration",
                              field=where)
    return text


def parse_envoy(source: Mapping[str, Any] | Sequence[str]) -> EnvoySettings:
    """An HttpConnectionManager config mapping (the ``typed_config`` of the
    ``envoy.filters.network.http_connection_manager`` filter)."""
    if not isinstance(source, Mapping):
        raise ValidationError("an Envoy HttpConnectionManager config must be a mapping")
    hcm: Mapping[str, Any] = source
    if "typed_config" in hcm and isinstance(hcm["typed_config"], Mapping):
        hcm = hcm["typed_config"]
    vals: dict[str, Any] = {"controller": "envoy"}
    if "use_remote_address" in hcm:
        vals["use_remote_address"] = bool_field(
            hcm["use_remote_address"], "use_remote_address", controller="Envoy",
            parser="protobuf BoolValue", on_error="Envoy rejects the configuration")
    if "xff_num_trusted_hops" in hcm:
        vals["xff_num_trusted_hops"] = _u32(hcm["xff_num_trusted_hops"], "xff_num_trusted_hops")
    if "skip_xff_append" in hcm:
        vals["skip_xff_append"] = bool_field(
            hcm["skip_xff_append"], "skip_xff_append", controller="Envoy",
            parser="protobuf bool", on_error="Envoy rejects the configuration")
    exts = hcm.get("original_ip_detection_extensions") or []
    for i, ext in enumerate(exts if isinstance(exts, list) else []):
        tc = ext.get("typed_config", {}) if isinstance(ext, Mapping) else {}
        kind = str(tc.get("@type", ""))
        base = f"original_ip_detection_extensions[{i}].typed_config"
        if kind.endswith("xff.v3.XffConfig"):
            vals["extension"] = "xff"
            if "xff_num_trusted_hops" in tc:
                vals["ext_hops"] = _u32(tc["xff_num_trusted_hops"],
                                        f"{base}.xff_num_trusted_hops")
            tcidrs = tc.get("xff_trusted_cidrs")
            if isinstance(tcidrs, Mapping):
                if vals.get("ext_hops"):
                    raise ValidationError("only one of xff_num_trusted_hops and "
                                          "xff_trusted_cidrs can be set: Envoy rejects the "
                                          "extension (xff.cc create)", field=base)
                vals["ext_cidrs"] = tuple(
                    _cidr_range(c, f"{base}.xff_trusted_cidrs.cidrs[{j}]")
                    for j, c in enumerate(tcidrs.get("cidrs") or []))
                rec = tcidrs.get("recurse", False)
                vals["ext_recurse"] = bool(rec.get("value") if isinstance(rec, Mapping) else rec)
            if "skip_xff_append" in tc:
                sk = tc["skip_xff_append"]
                vals["ext_skip_append"] = bool(sk.get("value") if isinstance(sk, Mapping)
                                               else sk)
            break
        if kind.endswith("custom_header.v3.CustomHeaderConfig"):
            vals["extension"] = "custom_header"
            vals["custom_header"] = str(tc.get("header_name", ""))
            vals["reject_if_missing"] = tc.get("reject_with_status") is not None
            break
    if vals.get("extension") and vals.get("use_remote_address"):
        pass  # use_remote_address wins: extensions run only when it is false
    return EnvoySettings(**vals)


def parse_envoy_gateway(source: Mapping[str, Any] | Sequence[str]) -> EnvoySettings:
    """A ClientTrafficPolicy object (or its ``spec``)."""
    if not isinstance(source, Mapping):
        raise ValidationError("a ClientTrafficPolicy must be a mapping")
    spec = source.get("spec", source) if "spec" in source else source
    pre = "spec." if "spec" in source else ""
    if not isinstance(spec, Mapping):
        raise ValidationError("must be a mapping", field="spec")
    vals: dict[str, Any] = {"controller": "envoy-gateway", "use_remote_address": True}
    origin: dict[str, str] = {"use_remote_address": "Envoy Gateway: use_remote_address true "
                              "(no detection extension) (listener.go)"}
    det = spec.get("clientIPDetection")
    if det is not None:
        dpre = f"{pre}clientIPDetection"
        if not isinstance(det, Mapping):
            raise ValidationError("must be a mapping", field=dpre)
        chosen = [k for k in ("xForwardedFor", "customHeader", "directSourceIP") if k in det]
        if len(chosen) != 1:
            raise ValidationError(
                "exactly one of xForwardedFor, customHeader, or directSourceIP must be set: "
                "the API server rejects the ClientTrafficPolicy (CEL rule)", field=dpre)
        if chosen[0] == "xForwardedFor":
            xff = det["xForwardedFor"] or {}
            xpre = f"{dpre}.xForwardedFor"
            has_hops, has_cidrs = "numTrustedHops" in xff, "trustedCIDRs" in xff
            if has_hops == has_cidrs:
                raise ValidationError(
                    "only one of numTrustedHops or trustedCIDRs must be set: the API server "
                    "rejects the ClientTrafficPolicy (CEL rule)", field=xpre)
            vals.update(use_remote_address=False, extension="xff")
            skip = xff.get("disableXForwardedForAppend", False)
            vals["ext_skip_append"] = bool_field(
                skip, f"{xpre}.disableXForwardedForAppend", controller="Envoy Gateway",
                parser="the CRD schema (boolean)", on_error="the API server rejects it")
            if has_hops:
                n = xff["numTrustedHops"]
                if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 0xFFFFFFFF:
                    raise ValidationError(
                        f"{n!r} is not a uint32: the API server rejects the "
                        "ClientTrafficPolicy (schema: integer, format int32/uint32)",
                        field=f"{xpre}.numTrustedHops")
                vals["ext_hops"] = n - 1 if n > 0 else 0
                origin["ext"] = (f"{xpre}.numTrustedHops: {n} -> xff extension "
                                 f"xff_num_trusted_hops {vals['ext_hops']} (listener.go "
                                 "xffNumTrustedHops: N-1)")
            else:
                cidrs = xff.get("trustedCIDRs")
                if not isinstance(cidrs, list) or not cidrs:
                    raise ValidationError("must list at least one CIDR (MinItems=1): the API "
                                          "server rejects it", field=f"{xpre}.trustedCIDRs")
                items = []
                for j, c in enumerate(cidrs):
                    if not isinstance(c, str) or "/" not in c or parse_network(c) is None:
                        raise ValidationError(
                            f"{c!r} is not a CIDR: the API server rejects it (CIDR pattern)",
                            field=f"{xpre}.trustedCIDRs[{j}]")
                    items.append(c)
                vals["ext_cidrs"] = tuple(items)
                origin["ext"] = (f"{xpre}.trustedCIDRs -> xff extension xff_trusted_cidrs "
                                 "(no recurse) (listener.go)")
            origin["use_remote_address"] = ("Envoy Gateway: use_remote_address false "
                                            f"because {xpre} configures the xff extension")
        elif chosen[0] == "customHeader":
            ch = det["customHeader"] or {}
            cpre = f"{dpre}.customHeader"
            name = ch.get("name") if isinstance(ch, Mapping) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 255 or not all(
                    c.isascii() and (c.isalnum() or c == "-") for c in name):
                raise ValidationError(f"{name!r} is not a header name matching "
                                      "^[A-Za-z0-9-]+$: the API server rejects it",
                                      field=f"{cpre}.name")
            vals.update(use_remote_address=False, extension="custom_header",
                        custom_header=name,
                        reject_if_missing=bool(ch.get("failClosed", False)))
            origin["ext"] = f"{cpre}.name: {name} (custom_header extension)"
            origin["use_remote_address"] = ("Envoy Gateway: use_remote_address false "
                                            f"because {cpre} configures an extension")
    pp = spec.get("proxyProtocol")
    if pp is not None:
        vals["proxy_protocol"] = True
        opt = pp.get("optional", False) if isinstance(pp, Mapping) else False
        vals["proxy_protocol_optional"] = bool_field(
            opt, f"{pre}proxyProtocol.optional", controller="Envoy Gateway",
            parser="the CRD schema (boolean)", on_error="the API server rejects it")
        origin["pp"] = f"{pre}proxyProtocol"
    elif spec.get("enableProxyProtocol") is not None:
        vals["proxy_protocol"] = bool_field(
            spec["enableProxyProtocol"], f"{pre}enableProxyProtocol",
            controller="Envoy Gateway", parser="the CRD schema (boolean)",
            on_error="the API server rejects it")
        origin["pp"] = f"{pre}enableProxyProtocol"
    vals["origin"] = tuple(origin.items())
    return EnvoySettings(**vals)


def _xff_entries(headers: Sequence[tuple[str, str]]) -> list[str]:
    """Envoy joins repeated X-Forwarded-For lines with ","; entries trimmed."""
    vals = [v for n, v in headers if n.lower() == "x-forwarded-for"]
    if not vals:
        return []
    return [e.strip() for e in ",".join(vals).split(",")]


def _ip(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _last(entries: list[str], n: int) -> str | None:
    """Utility::getLastAddressFromXFF(headers, n): the (n+1)-th entry from the right."""
    if len(entries) <= n:
        return None
    return _ip(entries[len(entries) - 1 - n])


def forward(s: EnvoySettings, conn: Connection, headers: Sequence[tuple[str, str]], *,
            controller_ip: str, host: str, scheme: str, port: int) -> Forwarded:
    name = s.controller
    if s.proxy_protocol and conn.proxy is None and not s.proxy_protocol_optional:
        return Forwarded(ok=False, peer=controller_ip, error=(
            "the listener has the proxy_protocol listener filter "
            f"({s.where('pp', 'proxy protocol')}): a connection without a PROXY header is "
            "closed"))
    if not s.proxy_protocol and conn.proxy is not None:
        return Forwarded(ok=False, peer=controller_ip, error=(
            f"a PROXY header sent to an {name} listener without the proxy_protocol filter: "
            "the HTTP/1 codec fails on it (400 Bad Request)"))
    peer = conn.proxy[0] if conn.proxy is not None else conn.peer
    peer_why = ("the PROXY header's source (proxy_protocol listener filter)"
                if conn.proxy is not None else "the connection's peer")
    hdrs = [(n, v) for n, v in headers
            if n.lower() not in ("x-envoy-internal",)]  # removeEnvoyInternalRequest
    prov: dict[str, str] = {}
    entries = _xff_entries(hdrs)
    final: str | None = None
    final_why = ""
    append = False
    if s.use_remote_address:
        single = not entries
        if s.xff_num_trusted_hops > 0:
            final = _last(entries, s.xff_num_trusted_hops - 1)
            final_why = (f"entry {s.xff_num_trusted_hops} from the right of the incoming "
                         f"X-Forwarded-For (xff_num_trusted_hops {s.xff_num_trusted_hops})")
        if final is None:
            final, final_why = peer, peer_why + " (use_remote_address)"
        append = not s.skip_xff_append
    else:
        single = len(entries) == 1
        if s.extension == "custom_header":
            final = _ip(next((v for n, v in hdrs if n.lower() == s.custom_header.lower()),
                             None))
            final_why = f"{s.custom_header} ({s.where('ext', 'custom_header extension')})"
            if final is None and s.reject_if_missing:
                return Forwarded(ok=False, peer=controller_ip, error=(
                    f"{s.custom_header} is missing or not an IP and failClosed is set: "
                    "403 Forbidden"))
            append = False
        elif s.extension == "xff":
            if s.ext_cidrs:
                if in_networks(peer, s.cidrs):
                    if s.ext_recurse:
                        for e in reversed(entries):
                            ip = _ip(e)
                            if ip is None:
                                break
                            final = ip
                            if not in_networks(ip, s.cidrs):
                                break
                        final_why = "the rightmost X-Forwarded-For entry not in xff_trusted_cidrs"
                    else:
                        final = _last(entries, 0)
                        final_why = ("the last X-Forwarded-For entry (the peer is in "
                                     "xff_trusted_cidrs)")
            else:
                final = _last(entries, s.ext_hops)
                final_why = (f"entry {s.ext_hops + 1} from the right of X-Forwarded-For "
                             f"({s.where('ext', f'xff extension hops {s.ext_hops}')})")
            if final is not None:
                append = not s.ext_skip_append
            if final is not None and s.where("ext", ""):
                final_why += f" [{s.where('ext', '')}]"
        else:
            final = _last(entries, s.xff_num_trusted_hops)
            final_why = (f"entry {s.xff_num_trusted_hops + 1} from the right of X-Forwarded-For"
                         " (use_remote_address false: Envoy trusts its downstream's XFF)")
    internal = single and final is not None and in_networks(final, _INTERNAL)
    if final is None:
        final, final_why = peer, peer_why + " (no usable X-Forwarded-For)"
    edge = (not internal) and s.use_remote_address
    out: list[tuple[str, str]] = []
    http_host = next((v for n, v in hdrs if n.lower() == "host"), None)
    out.append(("Host", http_host if http_host is not None else host))
    xff_vals = [v for n, v in hdrs if n.lower() == "x-forwarded-for"]
    if append:
        own = controller_ip if in_networks(peer, _INTERNAL[3:4] + _INTERNAL[5:6]) else peer
        joined = ",".join(xff_vals)
        out.append(("X-Forwarded-For", f"{joined},{own}" if xff_vals else own))
        prov["X-Forwarded-For"] = (("incoming entries, then " if xff_vals else "")
                                   + f"{peer_why} appended ("
                                   + ("use_remote_address" if s.use_remote_address else
                                      s.where("ext", "xff extension")) + ")")
    elif xff_vals:
        out.append(("X-Forwarded-For", ",".join(xff_vals)))
        prov["X-Forwarded-For"] = "incoming value, not appended to"
    xfp_in = next((v for n, v in hdrs if n.lower() == "x-forwarded-proto"), None)
    # conn_manager_utility.cc: with use_remote_address the incoming value survives only when
    # xff_num_trusted_hops > 0; otherwise it is kept whenever present
    if xfp_in is not None and (s.xff_num_trusted_hops > 0 or not s.use_remote_address):
        out.append(("X-Forwarded-Proto", xfp_in))
        prov["X-Forwarded-Proto"] = ("incoming value (xff_num_trusted_hops > 0)"
                                     if s.use_remote_address else
                                     "incoming value (use_remote_address false keeps it)")
    else:
        out.append(("X-Forwarded-Proto", scheme))
        prov["X-Forwarded-Proto"] = "from the downstream connection (TLS or not)"
    if internal:
        out.append(("X-Envoy-Internal", "true"))
        prov["X-Envoy-Internal"] = ("the trusted client address is internal and X-Forwarded-For "
                                    "holds a single address")
    ext_in = [v for n, v in hdrs if n.lower() == "x-envoy-external-address"]
    if edge:
        out.append(("X-Envoy-External-Address", final))
        prov["X-Envoy-External-Address"] = f"the trusted client address: {final_why}"
    done = {n.lower() for n, _ in out} | {"x-envoy-external-address"}
    for n, v in hdrs:
        low = n.lower()
        if low in RELEVANT_HEADERS | {s.custom_header.lower()} and low not in done:
            out.append((n, v))
            prov.setdefault(n, "passed through from the client unchanged")
    if not edge:
        for v in ext_in:
            out.append(("X-Envoy-External-Address", v))
            prov["X-Envoy-External-Address"] = ("passed through unchanged (not an edge "
                                                "request: Envoy neither sets nor removes it)")
    return Forwarded(ok=True, error=None, peer=controller_ip, headers=tuple(out),
                     controller_client=final, provenance=tuple(prov.items()))


def recommend(s: EnvoySettings, *, trusted_cidrs: Sequence[str]) -> Recommendation:
    """The app reproduces Envoy's trusted client address from what Envoy forwards."""
    cidrs = list(trusted_cidrs)
    changes: list[SettingChange] = []
    notes: list[str] = []
    eg = s.controller == "envoy-gateway"
    fix_cidrs = SettingChange(
        setting=("spec.clientIPDetection.xForwardedFor.trustedCIDRs" if eg else
                 "original_ip_detection_extensions: xff xff_trusted_cidrs (recurse: true)"),
        value="<the proxies in front>",
        effect="X-Forwarded-For is believed only from listed peers; a direct client keeps "
               "its own address",
        cost="list every proxy in front; keep X-Forwarded-For appending on")
    forgeable = False
    if s.use_remote_address:
        append = not s.skip_xff_append
        n = s.xff_num_trusted_hops
        if append:
            code = (f"RightmostTrustedCount(header='x-forwarded-for', trusted_hops={n + 1}, "
                    f"trusted_proxies={cidrs!r})")
            header = "X-Forwarded-For"
            forgeable = n > 0
        else:
            code = (f"SingleIPHeader(header='x-envoy-external-address', "
                    f"trusted_proxies={cidrs!r})")
            header = "X-Envoy-External-Address"
            forgeable = True
            notes.append("skip_xff_append: X-Envoy-External-Address is only set for external "
                         "requests; from internal addresses a client's own value passes")
        if n > 0:
            changes.append(fix_cidrs)
            notes.append(f"xff_num_trusted_hops {n} trusts positions, not addresses: a client "
                         "that reaches Envoy with fewer proxies in front chooses the address")
    elif s.extension == "xff" and s.ext_cidrs:
        app_trust = list(dict.fromkeys([*cidrs, *non_catch_all(s.cidrs)]))
        code = (f"RightmostTrustedRange(header='x-forwarded-for', "
                f"trusted_proxies={app_trust!r})")
        header = "X-Forwarded-For"
        # Every peer is trusted (catch-alls of both families): the extension always detects,
        # and unless skip_xff_append Envoy appends the peer it saw -- the rightmost entry the
        # app's walk stops at. Otherwise a peer outside the CIDRs gets nothing appended.
        every_peer_trusted = {n.version for n in catch_all(s.cidrs)} >= {4, 6}
        forgeable = s.ext_skip_append or not every_peer_trusted
        if not every_peer_trusted:
            notes.append("when the peer is not in the trusted CIDRs the xff extension detects "
                         "nothing: Envoy uses the peer but does not append it "
                         "(conn_manager_utility.cc appends only with use_remote_address or for "
                         "a detected address), so a direct client's own X-Forwarded-For reaches "
                         "the app unmarked; only let the trusted proxies reach the listener")
        if s.ext_skip_append:
            changes.append(SettingChange(
                setting=("spec.clientIPDetection.xForwardedFor.disableXForwardedForAppend"
                         if eg else "xff extension skip_xff_append"), value="false",
                effect="Envoy appends the peer, so the rightmost entry is one it saw",
                cost="none"))
        if catch_all(s.cidrs):
            notes.append("a catch-all trusted CIDR makes Envoy itself trust any client's "
                         "X-Forwarded-For; the app's walk above leaves it out")
            changes.append(fix_cidrs)
    elif s.extension == "xff":
        append = not s.ext_skip_append
        k = s.ext_hops + (2 if append else 1)
        code = (f"RightmostTrustedCount(header='x-forwarded-for', trusted_hops={k}, "
                f"trusted_proxies={cidrs!r})")
        header = "X-Forwarded-For"
        forgeable = True
        changes.append(fix_cidrs)
        notes.append("a hop count trusts positions, not addresses: any client that reaches "
                     "the listener directly (or through an L4 hop) chooses the address")
    elif s.extension == "custom_header":
        code = (f"SingleIPHeader(header={s.custom_header.lower()!r}, "
                f"trusted_proxies={cidrs!r})")
        header = s.custom_header
        forgeable = True
        notes.append(f"{s.custom_header} is taken as sent: safe only if every path to the "
                     "listener passes a proxy that overwrites it")
        changes.append(fix_cidrs)
    else:
        n = s.xff_num_trusted_hops
        code = (f"RightmostTrustedCount(header='x-forwarded-for', trusted_hops={n + 1}, "
                f"trusted_proxies={cidrs!r})")
        header = "X-Forwarded-For"
        forgeable = True
        changes.append(SettingChange(
            setting="use_remote_address", value="true",
            effect="Envoy appends the peer and trusts it (the edge setting)",
            cost="behind other proxies, also set xff_num_trusted_hops or xff_trusted_cidrs"))
    if s.proxy_protocol:
        forgeable = True
        notes.append("Envoy's proxy_protocol filter has no source allow-list: any client "
                     "that reaches the listener without the load balancer sends its own "
                     "PROXY header (restrict who can connect: loadBalancerSourceRanges, "
                     "NetworkPolicy)")
    return Recommendation(strategy_code=code, header=header, forgeable=forgeable,
                          settings_changes=tuple(changes), notes=tuple(notes))


def client_headers(s: EnvoySettings) -> tuple[str, ...]:
    names = ["X-Forwarded-For", "X-Envoy-External-Address"]
    if s.custom_header:
        names.append(s.custom_header)
    return tuple(names)
