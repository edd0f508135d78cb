"""Strategy tables: IPv4, IPv6, ports, duplicates, multiple lines, garbage, all-trusted chains
and spoofing attempts. Each row: peer, headers -> (ip, code, hop)."""

from __future__ import annotations

from typing import Any

import pytest

from sourceip.clientip import (
    Chain,
    ConfigError,
    PrefixSet,
    RemoteAddress,
    RightmostTrustedCount,
    RightmostTrustedRange,
    SingleIPHeader,
    TrustedForwardedInfo,
    UnsafeLeftmostNonPrivate,
)

PROXIES = ["10.0.0.0/8", "192.168.0.0/16", "2001:db8:ffff::/48", "172.16.0.0/12"]
XFF = "x-forwarded-for"

Row = tuple[str, str | None, dict[str, Any], str | None, str, int | None]

RANGE_ROWS: list[Row] = [
    ("one client behind one proxy", "10.0.0.1", {XFF: "203.0.113.9"},
     "203.0.113.9", "rightmost-untrusted", 0),
    ("three hops, two trusted in the header", "10.0.0.1",
     {XFF: "203.0.113.9, 10.1.1.1, 192.168.3.3"}, "203.0.113.9", "rightmost-untrusted", 2),
    ("spoofed leftmost entry is skipped", "10.0.0.1",
     {XFF: "1.1.1.1, 203.0.113.9, 10.1.1.1"}, "203.0.113.9", "rightmost-untrusted", 1),
    ("client port stripped", "10.0.0.1", {XFF: "203.0.113.9:5555, 10.1.1.1"},
     "203.0.113.9", "rightmost-untrusted", 1),
    ("IPv6 client with brackets and port", "2001:db8:ffff::2",
     {XFF: "[2001:db8:1::9]:443"}, "2001:db8:1::9", "rightmost-untrusted", 0),
    ("IPv6 client bare", "10.0.0.1", {XFF: "2001:DB8:1::9"},
     "2001:db8:1::9", "rightmost-untrusted", 0),
    ("IPv4-mapped client unwrapped", "10.0.0.1", {XFF: "::ffff:203.0.113.9"},
     "203.0.113.9", "rightmost-untrusted", 0),
    ("IPv4-mapped proxy recognised as trusted", "10.0.0.1",
     {XFF: "203.0.113.9, ::ffff:10.9.9.9"}, "203.0.113.9", "rightmost-untrusted", 1),
    ("multiple header lines joined in order", "10.0.0.1",
     {XFF: ["6.6.6.6", "203.0.113.9, 10.1.1.1"]}, "203.0.113.9", "rightmost-untrusted", 1),
    ("duplicates are hops", "10.0.0.1", {XFF: "203.0.113.9, 203.0.113.9, 10.0.0.2"},
     "203.0.113.9", "rightmost-untrusted", 1),
    ("peer not trusted: header ignored", "198.51.100.2", {XFF: "10.1.1.1"},
     "198.51.100.2", "untrusted-peer", None),
    ("peer not an IP (unix socket)", None, {XFF: "203.0.113.9"}, None, "peer-not-ip", None),
    ("header missing", "10.0.0.1", {}, None, "no-header", None),
    ("header empty", "10.0.0.1", {XFF: "  "}, None, "no-header", None),
    ("all trusted: fail closed", "10.0.0.1", {XFF: "10.1.1.1, 192.168.0.9"},
     None, "all-trusted", None),
    ("garbage at the untrusted position", "10.0.0.1", {XFF: "1.1.1.1, evil, 10.1.1.1"},
     None, "invalid-hop", 1),
    ("leading-zero octets are garbage", "10.0.0.1", {XFF: "010.1.1.1"},
     None, "invalid-hop", 0),
    ("garbage left of the client is never read", "10.0.0.1",
     {XFF: "garbage, 203.0.113.9, 10.1.1.1"}, "203.0.113.9", "rightmost-untrusted", 1),
    ("empty entry", "10.0.0.1", {XFF: "203.0.113.9,,10.1.1.1"}, None, "invalid-hop", 1),
    ("unspecified address", "10.0.0.1", {XFF: "0.0.0.0"}, None, "invalid-hop", 0),
    ("too many hops", "10.0.0.1", {XFF: ",".join(["10.1.1.1"] * 65)},
     None, "too-many-hops", None),
    ("too long", "10.0.0.1", {XFF: "1" * 9000}, None, "too-long", None),
    ("peer with port", "10.0.0.1:5000", {XFF: "203.0.113.9"},
     "203.0.113.9", "rightmost-untrusted", 0),
]


@pytest.mark.parametrize(("name", "peer", "headers", "ip", "code", "hop"), RANGE_ROWS,
                         ids=[r[0] for r in RANGE_ROWS])
def test_rightmost_trusted_range(name: str, peer: str | None, headers: dict[str, Any],
                                 ip: str | None, code: str, hop: int | None) -> None:
    r = RightmostTrustedRange(trusted_proxies=PROXIES).resolve(peer, headers)
    assert (r.ip, r.code, r.hop) == (ip, code, hop)
    assert r.peer == peer
    assert r.reason  # a sentence for every code


FORWARDED_ROWS: list[Row] = [
    ("ipv4 element", "10.0.0.1", {"forwarded": "for=203.0.113.9;proto=https"},
     "203.0.113.9", "rightmost-untrusted", 0),
    ("ipv6 quoted with port", "10.0.0.1",
     {"forwarded": 'for="[2001:db8:1::1]:4711", for=10.1.1.1'},
     "2001:db8:1::1", "rightmost-untrusted", 1),
    ("obfuscated node is not an IP", "10.0.0.1", {"forwarded": "for=_hidden, for=10.2.2.2"},
     None, "not-an-ip-hop", 1),
    ("unknown node is not an IP", "10.0.0.1", {"forwarded": "for=unknown"},
     None, "not-an-ip-hop", 0),
    ("sabotage quote from the client", "10.0.0.1",
     {"forwarded": ['for="6.6.6.6', "for=203.0.113.9, for=10.1.1.1"]},
     "203.0.113.9", "rightmost-untrusted", 1),
    ("quoted comma smuggling", "10.0.0.1",
     {"forwarded": 'for="6.6.6.6, for=10.9.9.9", for=10.1.1.1'}, None, "invalid-hop", 1),
    ("element without for", "10.0.0.1", {"forwarded": "proto=http"},
     None, "invalid-hop", 0),
    ("unbracketed IPv6 rejected", "10.0.0.1", {"forwarded": 'for="2001:db8::1"'},
     None, "invalid-hop", 0),
]


@pytest.mark.parametrize(("name", "peer", "headers", "ip", "code", "hop"), FORWARDED_ROWS,
                         ids=[r[0] for r in FORWARDED_ROWS])
def test_rightmost_trusted_range_forwarded(name: str, peer: str | None,
                                           headers: dict[str, Any], ip: str | None, code: str,
                                           hop: int | None) -> None:
    s = RightmostTrustedRange(header="Forwarded", trusted_proxies=PROXIES)
    r = s.resolve(peer, headers)
    assert (r.ip, r.code, r.hop) == (ip, code, hop)


COUNT_ROWS: list[tuple[str, int, dict[str, Any], str | None, str]] = [
    ("one hop: rightmost", 1, {XFF: "6.6.6.6, 203.0.113.9"}, "203.0.113.9", "trusted-count"),
    ("two hops", 2, {XFF: "6.6.6.6, 203.0.113.9, 10.1.1.1"}, "203.0.113.9", "trusted-count"),
    ("two hops over two lines", 2, {XFF: ["6.6.6.6, 203.0.113.9", "10.1.1.1"]},
     "203.0.113.9", "trusted-count"),
    ("too few hops", 3, {XFF: "203.0.113.9, 10.1.1.1"}, None, "too-few-hops"),
    ("garbage at the hop", 2, {XFF: "1.1.1.1, nope, 10.1.1.1"}, None, "invalid-hop"),
    ("ipv6 with port", 1, {XFF: "[2001:db8:1::1]:80"}, "2001:db8:1::1", "trusted-count"),
    ("missing header", 1, {}, None, "no-header"),
]


@pytest.mark.parametrize(("name", "hops", "headers", "ip", "code"), COUNT_ROWS,
                         ids=[r[0] for r in COUNT_ROWS])
def test_rightmost_trusted_count(name: str, hops: int, headers: dict[str, Any],
                                 ip: str | None, code: str) -> None:
    r = RightmostTrustedCount(trusted_hops=hops).resolve("10.0.0.1", headers)
    assert (r.ip, r.code) == (ip, code)


def test_trusted_count_with_peer_check() -> None:
    s = RightmostTrustedCount(trusted_hops=1, trusted_proxies=PROXIES)
    assert s.resolve("198.51.100.1", {XFF: "6.6.6.6"}).code == "untrusted-peer"
    assert s.resolve("10.0.0.1", {XFF: "6.6.6.6"}).ip == "6.6.6.6"


SINGLE_ROWS: list[Row] = [
    ("set by trusted proxy", "10.0.0.1", {"x-real-ip": "203.0.113.9"},
     "203.0.113.9", "single-header", 0),
    ("last line wins", "10.0.0.1", {"x-real-ip": ["6.6.6.6", "203.0.113.9"]},
     "203.0.113.9", "single-header", 0),
    ("spoofed from outside", "198.51.100.1", {"x-real-ip": "1.1.1.1"},
     "198.51.100.1", "untrusted-peer", None),
    ("list is garbage", "10.0.0.1", {"x-real-ip": "1.1.1.1, 2.2.2.2"},
     None, "invalid-header", None),
    ("garbage", "10.0.0.1", {"x-real-ip": "<script>"}, None, "invalid-header", None),
    ("missing", "10.0.0.1", {}, None, "no-header", None),
]


@pytest.mark.parametrize(("name", "peer", "headers", "ip", "code", "hop"), SINGLE_ROWS,
                         ids=[r[0] for r in SINGLE_ROWS])
def test_single_ip_header(name: str, peer: str | None, headers: dict[str, Any],
                          ip: str | None, code: str, hop: int | None) -> None:
    r = SingleIPHeader(trusted_proxies=PROXIES).resolve(peer, headers)
    assert (r.ip, r.code, r.hop) == (ip, code, hop)


def test_remote_address() -> None:
    r = RemoteAddress().resolve("[2001:db8::5]:443", {XFF: "1.1.1.1"})
    assert (r.ip, r.port, r.code, r.from_peer) == ("2001:db8::5", 443, "peer", True)
    assert RemoteAddress().resolve("/run/app.sock", {}).ip is None


def test_chain_falls_back_and_keeps_reason() -> None:
    chain = Chain(SingleIPHeader(header="cf-connecting-ip", trusted_proxies=PROXIES),
                  RightmostTrustedRange(trusted_proxies=PROXIES), RemoteAddress())
    assert chain.header_names == {"cf-connecting-ip", XFF}
    r = chain.resolve("10.0.0.1", {XFF: "203.0.113.9"})
    assert (r.ip, r.code) == ("203.0.113.9", "rightmost-untrusted")
    r = chain.resolve("10.0.0.1", {XFF: "10.1.1.1"})
    assert (r.ip, r.code) == ("10.0.0.1", "peer")
    only = Chain(RightmostTrustedRange(trusted_proxies=PROXIES))
    assert only.resolve("10.0.0.1", {}).code == "no-header"


def test_unsafe_leftmost_non_private_is_spoofable_by_design() -> None:
    s = UnsafeLeftmostNonPrivate()
    r = s.resolve("10.0.0.1", {XFF: "10.0.0.3, 198.18.0.1, 224.0.0.1, 8.8.8.8, 203.0.113.9"})
    assert (r.ip, r.code) == ("8.8.8.8", "leftmost-non-private")
    assert "UNSAFE" in r.reason
    assert s.resolve(None, {XFF: "10.0.0.1, 2001:db8::1"}).code == "no-public"


@pytest.mark.parametrize(("factory", "message"), [
    (lambda: RightmostTrustedRange(trusted_proxies=["10.0.0.300/8"]),
     r"trusted_proxies\[0\]"),
    (lambda: RightmostTrustedRange(trusted_proxies=[]), "empty"),
    (lambda: RightmostTrustedRange(header="x-real-ip", trusted_proxies=PROXIES), "list header"),
    (lambda: RightmostTrustedRange(trusted_proxies=PROXIES, max_hops=0), "max_hops"),
    (lambda: RightmostTrustedCount(trusted_hops=0), "trusted_hops"),
    (lambda: RightmostTrustedCount(trusted_hops=True), "trusted_hops"),
    (lambda: SingleIPHeader(header="x-forwarded-for", trusted_proxies=PROXIES), "list header"),
    (lambda: SingleIPHeader(header="bad header", trusted_proxies=PROXIES), "header name"),
    (lambda: Chain(), "at least one"),
    (lambda: TrustedForwardedInfo(trusted_proxies=PROXIES, source="via"), "source"),
])
def test_configuration_errors_raise_at_construction(factory: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        factory()


@pytest.mark.parametrize("value", [42, None, 3.5, object(), "10.0.0.0/8", b"10.0.0.0/8"],
                         ids=repr)
@pytest.mark.parametrize("factory", [
    lambda v: RightmostTrustedRange(trusted_proxies=v),
    lambda v: SingleIPHeader(trusted_proxies=v),
    lambda v: TrustedForwardedInfo(trusted_proxies=v),
    lambda v: RightmostTrustedCount(trusted_hops=1, trusted_proxies=v),
    lambda v: PrefixSet(v),
], ids=["RightmostTrustedRange", "SingleIPHeader", "TrustedForwardedInfo",
        "RightmostTrustedCount", "PrefixSet"])
def test_a_trusted_list_that_is_not_a_list_is_a_configuration_error(factory: Any,
                                                                    value: object) -> None:
    try:
        factory(value)
    except ConfigError as exc:
        assert exc.code in ("bad-cidr", "bad-config")
        assert "trusted_proxies" in str(exc) or "cidrs" in str(exc)
    else:
        # only RightmostTrustedCount takes None: "no proxy list, count hops only"
        assert value is None and isinstance(factory(PROXIES), RightmostTrustedCount)


def test_strategy_accepts_a_prefixset_and_is_frozen() -> None:
    s = RightmostTrustedRange(trusted_proxies=PrefixSet(PROXIES))
    assert isinstance(s.trusted_proxies, PrefixSet)
    with pytest.raises(AttributeError):
        s.header = "forwarded"  # type: ignore[misc]


def test_forwarded_info_is_opt_in_and_peer_checked() -> None:
    h = {"x-forwarded-proto": "http, https", "x-forwarded-host": "app.example",
         "x-forwarded-port": "8443"}
    none = TrustedForwardedInfo(trusted_proxies=PROXIES).resolve("10.0.0.1", h)
    assert (none.scheme, none.host, none.port) == (None, None, None)
    allx = TrustedForwardedInfo(trusted_proxies=PROXIES, proto=True, host=True, port=True)
    info = allx.resolve("10.0.0.1", h)
    assert (info.scheme, info.host, info.port, info.trusted) == ("https", "app.example", 8443,
                                                                 True)
    spoofed = allx.resolve("198.51.100.1", h)
    assert spoofed.scheme is None and spoofed.notes == ("untrusted-peer",)
    bad = allx.resolve("10.0.0.1", {"x-forwarded-proto": "gopher"})
    assert bad.scheme is None and "x-forwarded-proto: bad-proto" in bad.notes
    fwd = TrustedForwardedInfo(trusted_proxies=PROXIES, proto=True, host=True, port=True,
                               source="forwarded")
    info = fwd.resolve("10.0.0.1", {"forwarded": 'for=1.1.1.1;proto=https;host="a.example:444"'})
    assert (info.scheme, info.host, info.port) == ("https", "a.example:444", 444)
