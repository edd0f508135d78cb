"""Header semantics as tables taken from the controllers' own tests and docs; each row names
its source (file + test / example) in the row data."""

from __future__ import annotations

import pytest

from sourceip.errors import ValidationError
from sourceip.ingress import Connection, forward, parse_settings

NGINX_ROWS = [
    # (source, configmap data, peer, pp (src, sport, dport) | None, headers, expected subset)
    ("test/e2e/settings/forwarded_headers.go: should trust X-Forwarded headers when setting "
     "is true", {"use-forwarded-headers": "true"}, "10.0.0.9", None,
     [("Host", "forwarded-headers"), ("X-Forwarded-Port", "1234"),
      ("X-Forwarded-Proto", "myproto"), ("X-Forwarded-Scheme", "myproto"),
      ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "myhost")],
     {"Host": "myhost", "X-Forwarded-Host": "myhost", "X-Forwarded-Proto": "myproto",
      "X-Forwarded-Scheme": "myproto", "X-Forwarded-Port": "1234",
      "X-Forwarded-For": "1.2.3.4"}),
    ("test/e2e/settings/forwarded_headers.go: ensuring that first entry in X-Forwarded-Host "
     "is used as the best host", {"use-forwarded-headers": "true"}, "10.0.0.9", None,
     [("Host", "forwarded-headers"), ("X-Forwarded-Host", "myhost.com, another.host,example.net")],
     {"Host": "myhost.com", "X-Forwarded-Host": "myhost.com"}),
    ("test/e2e/settings/forwarded_headers.go: should not trust X-Forwarded headers when "
     "setting is false", {"use-forwarded-headers": "false"}, "10.0.0.9", None,
     [("Host", "forwarded-headers"), ("X-Forwarded-Port", "1234"),
      ("X-Forwarded-Proto", "myproto"), ("X-Forwarded-Scheme", "myproto"),
      ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "myhost")],
     {"Host": "forwarded-headers", "X-Forwarded-Port": "80", "X-Forwarded-Proto": "http",
      "X-Forwarded-Scheme": "http", "X-Original-Forwarded-For": "1.2.3.4",
      "X-Original-Forwarded-Host": "myhost", "X-Forwarded-For": "10.0.0.9"}),
    ("test/e2e/settings/proxy_protocol.go: should respect port passed by the PROXY Protocol",
     {"use-proxy-protocol": "true"}, "10.0.0.9", ("192.168.0.1", 56324, 1234),
     [("Host", "proxy-protocol")],
     {"Host": "proxy-protocol", "X-Forwarded-Port": "1234", "X-Forwarded-Proto": "http",
      "X-Forwarded-For": "192.168.0.1"}),
    ("test/e2e/settings/proxy_protocol.go: should respect proto passed by the PROXY Protocol "
     "server port", {"use-proxy-protocol": "true"}, "10.0.0.9", ("192.168.0.1", 56324, 443),
     [("Host", "proxy-protocol")],
     {"X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", "X-Forwarded-For": "192.168.0.1"}),
    # The e2e test asserts Contains(body, "x-forwarded-for=192.168.0.1"), which the value the
    # template yields (192.168.0.111: with the default 0.0.0.0/0 the geo block marks the
    # PROXY source trusted, so realip reads X-Forwarded-For) also satisfies. Exact value here.
    ("test/e2e/settings/proxy_protocol.go: should not trust X-Forwarded headers when the "
     "client IP address is not trusted (default proxy-real-ip-cidr)",
     {"use-proxy-protocol": "true", "use-forwarded-headers": "true"}, "10.0.0.9",
     ("192.168.0.1", 56324, 1234), [("Host", "proxy-protocol"),
                                    ("X-Forwarded-For", "192.168.0.111")],
     {"X-Forwarded-Port": "1234", "X-Forwarded-Proto": "http",
      "X-Forwarded-For": "192.168.0.111"}),
    ("test/e2e/settings/proxy_protocol.go: should trust X-Forwarded headers when the client "
     "IP address is trusted", {"use-proxy-protocol": "true", "use-forwarded-headers": "true",
                               "proxy-real-ip-cidr": "10.0.0.0/8,192.168.0.1/32"},
     "10.0.0.9", ("192.168.0.1", 56324, 1234),
     [("Host", "proxy-protocol"), ("X-Forwarded-For", "192.168.0.111")],
     {"X-Forwarded-Port": "1234", "X-Forwarded-Proto": "http",
      "X-Forwarded-For": "192.168.0.111"}),
    ("nginx.tmpl geo/map: PROXY source outside proxy-real-ip-cidr -> $proxy_protocol_addr",
     {"use-proxy-protocol": "true", "use-forwarded-headers": "true",
      "proxy-real-ip-cidr": "10.0.0.0/8"}, "10.0.0.9", ("192.168.0.1", 56324, 80),
     [("X-Forwarded-For", "192.168.0.111")],
     {"X-Forwarded-For": "192.168.0.1", "X-Forwarded-For-Proxy-Protocol": "192.168.0.1"}),
    ("nginx.tmpl $full_x_forwarded_for: compute-full-forwarded-for appends $realip_remote_addr",
     {"use-forwarded-headers": "true", "compute-full-forwarded-for": "true",
      "proxy-real-ip-cidr": "10.0.0.0/8"}, "10.0.0.9", None,
     [("X-Forwarded-For", "6.6.6.6, 203.0.113.9")],
     {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.0.0.9", "X-Real-IP": "203.0.113.9"}),
    ("docs/user-guide/nginx-configuration/configmap.md compute-full-forwarded-for: needs "
     "use-forwarded-headers (nginx.tmpl `and $cfg.UseForwardedHeaders ...`)",
     {"compute-full-forwarded-for": "true"}, "10.0.0.9", None,
     [("X-Forwarded-For", "6.6.6.6")], {"X-Forwarded-For": "10.0.0.9"}),
    ("nginx realip_module: real_ip_recursive on, every entry trusted -> the leftmost",
     {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8"}, "10.0.0.9", None,
     [("X-Forwarded-For", "10.1.1.1, 10.2.2.2"), ("X-Forwarded-For", "10.3.3.3")],
     {"X-Real-IP": "10.1.1.1"}),
    ("nginx realip_module: an untrusted peer changes nothing",
     {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8"}, "203.0.113.50",
     None, [("X-Forwarded-For", "6.6.6.6")], {"X-Real-IP": "203.0.113.50"}),
]


@pytest.mark.parametrize("row", NGINX_ROWS, ids=[r[0][:90] for r in NGINX_ROWS])
def test_ingress_nginx_rows(row: tuple) -> None:  # type: ignore[type-arg]
    source, data, peer, pp, headers, expected = row
    s = parse_settings("ingress-nginx", data)
    conn = Connection(peer=peer, proxy=None if pp is None else (pp[0], pp[1]),
                      proxy_dest=None if pp is None else ("10.0.0.1", pp[2]))
    f = forward(s, conn, headers, controller_ip="10.244.0.10", host="h", port=80)
    assert f.ok, source
    got = {n: ", ".join(f.header(n)) for n in expected}
    assert got == expected, source


TRAEFIK_TEST = "pkg/middlewares/forwardedheaders/forwarded_header_test.go TestServeHTTP"
TRAEFIK_ROWS = [
    (f"{TRAEFIK_TEST}: insecure true with incoming X-Forwarded headers",
     {"forwardedHeaders": {"insecure": True}}, "10.0.1.5",
     [("X-Forwarded-For", "10.0.1.0, 10.0.1.12"), ("X_forwarded_for", "10.0.0.1")],
     {"X-Forwarded-For": "10.0.1.0, 10.0.1.12, 10.0.1.5"}),
    (f"{TRAEFIK_TEST}: insecure false with incoming X-Forwarded headers",
     {}, "10.0.1.5", [("X-Forwarded-For", "10.0.1.0, 10.0.1.12"), ("X-Real-Ip", "1.1.1.1")],
     {"X-Forwarded-For": "10.0.1.5", "X-Real-Ip": "10.0.1.5"}),
    (f"{TRAEFIK_TEST}: insecure false with incoming X-Forwarded headers and valid Trusted Ips",
     {"forwardedHeaders": {"trustedIPs": ["10.0.1.100"]}}, "10.0.1.100",
     [("X-Forwarded-For", "10.0.1.0, 10.0.1.12")],
     {"X-Forwarded-For": "10.0.1.0, 10.0.1.12, 10.0.1.100"}),
    (f"{TRAEFIK_TEST}: insecure false with incoming X-Forwarded headers and invalid Trusted "
     "Ips", {"forwardedHeaders": {"trustedIPs": ["10.0.1.100"]}}, "10.0.1.101",
     [("X-Forwarded-For", "10.0.1.0, 10.0.1.12")], {"X-Forwarded-For": "10.0.1.101"}),
    (f"{TRAEFIK_TEST}: insecure false with incoming X-Forwarded headers and valid Trusted Ips "
     "CIDR", {"forwardedHeaders": {"trustedIPs": ["1.2.3.4/24"]}}, "1.2.3.156",
     [("X-Forwarded-For", "10.0.1.0, 10.0.1.12")],
     {"X-Forwarded-For": "10.0.1.0, 10.0.1.12, 1.2.3.156"}),
    (f"{TRAEFIK_TEST}: xForwardedFor with multiple header(s) values",
     {"forwardedHeaders": {"insecure": True}}, "10.9.9.9",
     [("X-Forwarded-For", "10.0.0.4, 10.0.0.3"), ("X-Forwarded-For", "10.0.0.2, 10.0.0.1"),
      ("X-Forwarded-For", "10.0.0.0")],
     {"X-Forwarded-For": "10.0.0.4, 10.0.0.3, 10.0.0.2, 10.0.0.1, 10.0.0.0, 10.9.9.9"}),
    (f"{TRAEFIK_TEST}: xRealIP populated from remote address", {}, "10.0.1.101", [],
     {"X-Real-Ip": "10.0.1.101"}),
    (f"{TRAEFIK_TEST}: xRealIP was already populated from previous headers",
     {"forwardedHeaders": {"insecure": True}}, "10.0.1.101", [("X-Real-Ip", "10.0.1.12")],
     {"X-Real-Ip": "10.0.1.12"}),
    (f"{TRAEFIK_TEST}: xForwardedProto with no tls", {}, "10.0.1.1", [],
     {"X-Forwarded-Proto": "http"}),
    (f"{TRAEFIK_TEST}: xForwardedScheme headers overwrite in insecure mode",
     {"forwardedHeaders": {"insecure": True, "addXForwardedSchemeHeaders": True}}, "10.0.1.1",
     [("X-Forwarded-Proto", "https"), ("X-Forwarded-Scheme", "external-https"),
      ("X-Scheme", "external-https")],
     {"X-Forwarded-Proto": "https", "X-Forwarded-Scheme": "https", "X-Scheme": "https"}),
    (f"{TRAEFIK_TEST}: xForwardedPort with explicit port", {}, "10.0.1.1",
     [("Host", "foo.com:8080")], {"X-Forwarded-Port": "8080"}),
]


@pytest.mark.parametrize("row", TRAEFIK_ROWS, ids=[r[0][len(TRAEFIK_TEST) + 2:][:80]
                                                   for r in TRAEFIK_ROWS])
def test_traefik_rows(row: tuple) -> None:  # type: ignore[type-arg]
    source, ep, peer, headers, expected = row
    s = parse_settings("traefik", {"entryPoints": {"web": ep}})
    f = forward(s, Connection(peer=peer), headers, controller_ip="10.244.0.10")
    got = {n: ", ".join(f.header(n)) for n in expected}
    assert got == expected, source


ENVOY_DOC = "docs/root/configuration/http/http_conn_man/headers.rst x-forwarded-for"
ENVOY_ROWS = [
    # (source, hcm, peer, xff, trusted client, xff after (entries), external address)
    (f"{ENVOY_DOC} Example 1", {"use_remote_address": True}, "192.0.2.5",
     "203.0.113.128, 203.0.113.10, 203.0.113.1", "192.0.2.5",
     ["203.0.113.128", "203.0.113.10", "203.0.113.1", "192.0.2.5"], "192.0.2.5"),
    (f"{ENVOY_DOC} Example 2", {"use_remote_address": False}, "10.11.12.13",
     "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5", "192.0.2.5",
     ["203.0.113.128", "203.0.113.10", "203.0.113.1", "192.0.2.5"], None),
    (f"{ENVOY_DOC} Example 3", {"use_remote_address": True, "xff_num_trusted_hops": 2},
     "192.0.2.5", "203.0.113.128, 203.0.113.10, 203.0.113.1", "203.0.113.10",
     ["203.0.113.128", "203.0.113.10", "203.0.113.1", "192.0.2.5"], "203.0.113.10"),
    (f"{ENVOY_DOC} Example 4", {"use_remote_address": False, "xff_num_trusted_hops": 2},
     "10.11.12.13", "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5", "203.0.113.10",
     ["203.0.113.128", "203.0.113.10", "203.0.113.1", "192.0.2.5"], None),
    (f"{ENVOY_DOC} Example 5", {"use_remote_address": False}, "10.20.30.40", None,
     "10.20.30.40", [], None),
    (f"{ENVOY_DOC} Example 6", {"use_remote_address": False}, "10.20.30.50", "10.20.30.40",
     "10.20.30.40", ["10.20.30.40"], None),
]


@pytest.mark.parametrize("row", ENVOY_ROWS, ids=[r[0][-9:] for r in ENVOY_ROWS])
def test_envoy_doc_examples(row: tuple) -> None:  # type: ignore[type-arg]
    source, hcm, peer, xff, client, after, external = row
    s = parse_settings("envoy", hcm)
    hdrs = [("X-Forwarded-For", xff)] if xff else []
    f = forward(s, Connection(peer=peer), hdrs, controller_ip="10.244.0.10")
    assert f.controller_client == client, source
    assert [e.strip() for e in ",".join(f.header("X-Forwarded-For")).split(",") if e] == after
    assert (f.header("X-Envoy-External-Address") or [None])[0] == external, source
    internal = source.endswith(("Example 5", "Example 6"))
    # Example 5's doc says X-Envoy-Internal is set "false"; Envoy only ever sets "true"
    # and removes it otherwise, and Example 5 (no XFF, use_remote_address false) is external.
    assert f.header("X-Envoy-Internal") == (["true"] if source.endswith("Example 6") else [])
    assert internal or f.header("X-Envoy-Internal") == []


def test_envoy_gateway_translation() -> None:
    """internal/xds/translator/listener.go: numTrustedHops N -> extension hops N-1 and
    use_remote_address false; the gateway CRD example in clienttrafficpolicy_types.go
    (XFF 203.0.113.128, 203.0.113.10, 203.0.113.1; NumTrustedHops 2 -> 203.0.113.10)."""
    ctp = {"spec": {"clientIPDetection": {"xForwardedFor": {"numTrustedHops": 2}}}}
    s = parse_settings("envoy-gateway", ctp)
    f = forward(s, Connection(peer="10.0.0.7"),
                [("X-Forwarded-For", "203.0.113.128, 203.0.113.10, 203.0.113.1")],
                controller_ip="10.244.0.10")
    assert f.controller_client == "203.0.113.10"
    assert f.header("X-Forwarded-For") == ["203.0.113.128, 203.0.113.10, 203.0.113.1,10.0.0.7"]


def test_haproxy_forwardfor_adds_a_line() -> None:
    """HAProxy doc `option forwardfor`: a new header line, earlier lines kept."""
    s = parse_settings("haproxy", {})
    f = forward(s, Connection(peer="10.0.0.7"), [("X-Forwarded-For", "6.6.6.6")],
                controller_ip="10.244.0.10")
    assert f.header("X-Forwarded-For") == ["6.6.6.6", "10.0.0.7"]


BAD = [
    ("ingress-nginx", {"use-forwarded-headers": "maybe"}, 'data["use-forwarded-headers"]',
     "keeps the default false"),
    ("ingress-nginx", {"proxy-real-ip-cidr": "10.0.0.0/8, nope"}, 'data["proxy-real-ip-cidr"]',
     "nginx -t rejects"),
    ("ingress-nginx", {"forwarded-for-header": "X Bad"}, 'data["forwarded-for-header"]',
     "previous configuration"),
    ("haproxy", {"forwarded-for": "maybe"}, 'data["forwarded-for"]', "does not apply"),
    ("haproxy", {"proxy-protocol": "1.2.3.4, bogus"}, 'data["proxy-protocol"]', "skips it"),
    ("traefik", ["--entryPoints.web.proxyProtocol.trustedIPs=10.0.0.0/33"], "args[0]",
     "does not start"),
    ("envoy", {"xff_num_trusted_hops": -1}, "xff_num_trusted_hops", "rejects"),
    ("envoy-gateway", {"spec": {"clientIPDetection": {"xForwardedFor": {
        "numTrustedHops": 1, "trustedCIDRs": ["10.0.0.0/8"]}}}},
     "spec.clientIPDetection.xForwardedFor", "API server rejects"),
    ("envoy-gateway", {"spec": {"clientIPDetection": {"xForwardedFor": {
        "trustedCIDRs": ["10.0.0.1"]}}}},
     "spec.clientIPDetection.xForwardedFor.trustedCIDRs[0]", "CIDR"),
]


@pytest.mark.parametrize("controller,source,field,says", BAD,
                         ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_bad_values_name_field_and_controller_behaviour(controller: str, source: object,
                                                        field: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_settings(controller, source)  # type: ignore[arg-type]
    assert info.value.field == field
    assert says in info.value.message


def test_good_bool_spellings_follow_parsebool() -> None:
    for text, want in [("1", True), ("t", True), ("TRUE", True), ("True", True), ("0", False),
                       ("F", False), ("", False)]:
        s = parse_settings("ingress-nginx", {"use-forwarded-headers": text})
        assert s.use_forwarded_headers is want, text
    with pytest.raises(ValidationError):
        parse_settings("ingress-nginx", {"use-forwarded-headers": "yes"})
