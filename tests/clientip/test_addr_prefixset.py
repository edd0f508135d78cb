"""Strict address tokens and PrefixSet."""

from __future__ import annotations

import ipaddress

import pytest

from sourceip.clientip import AddressError, ConfigError, PrefixSet, parse_address, parse_ip

VALID = [
    ("1.2.3.4", "1.2.3.4", None),
    ("1.2.3.4:8080", "1.2.3.4", 8080),
    (" 203.0.113.9\t", "203.0.113.9", None),
    ("2001:db8::1", "2001:db8::1", None),
    ("2001:DB8:0:0::1", "2001:db8::1", None),
    ("[2001:db8::1]", "2001:db8::1", None),
    ("[2001:db8::1]:443", "2001:db8::1", 443),
    ("::ffff:10.0.0.1", "10.0.0.1", None),
    ("[::ffff:192.0.2.1]:80", "192.0.2.1", 80),
    ("fe80::1%eth0", "fe80::1%eth0", None),
    ("[fe80::1%25]:1", "fe80::1%25", 1),
    ("255.255.255.255:65535", "255.255.255.255", 65535),
]

INVALID = [
    ("", "empty"),
    ("010.1.1.1", "leading-zero"),
    ("1.2.3.04", "leading-zero"),
    ("256.1.1.1", "not-an-ip"),
    ("1.2.3", "not-an-ip"),
    ("1.2.3.4.5", "not-an-ip"),
    ("0x7f.0.0.1", "not-an-ip"),
    ("١.2.3.4", "not-an-ip"),
    ("1.2.3.4:", "bad-port"),
    ("1.2.3.4:65536", "bad-port"),
    ("1.2.3.4:+80", "bad-port"),
    ("1.2.3.4:123456", "bad-port"),
    ("[2001:db8::1]:x", "bad-port"),
    ("[2001:db8::1]x", "not-an-ip"),
    ("[2001:db8::1", "not-an-ip"),
    ("fe80::1%", "bad-zone"),
    ("fe80::1%" + "a" * 65, "bad-zone"),
    ("fe80::1%eth 0", "bad-zone"),
    ("fe80::1%eth:0", "bad-zone"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("example.com", "not-an-ip"),
    ("unknown", "not-an-ip"),
    ("1.2.3.4 5.6.7.8", "not-an-ip"),
    ("x" * 200, "too-long"),
]


@pytest.mark.parametrize(("token", "ip", "port"), VALID, ids=[v[0] for v in VALID])
def test_valid_tokens_parse_to_canonical_text(token: str, ip: str, port: int | None) -> None:
    a = parse_address(token)
    assert (a.ip, a.port) == (ip, port)
    assert ipaddress.ip_address(a.ip.split("%")[0]) == ipaddress.ip_address(a.value) or \
        a.version == 4
    assert str(a) == ip


@pytest.mark.parametrize(("token", "code"), INVALID, ids=[v[0][:20] or "empty" for v in INVALID])
def test_invalid_tokens_raise_with_a_code(token: str, code: str) -> None:
    with pytest.raises(AddressError) as exc:
        parse_address(token)
    assert exc.value.code == code


def test_parse_ip_rejects_ports_and_brackets() -> None:
    assert parse_ip("192.0.2.1").ip == "192.0.2.1"
    with pytest.raises(AddressError, match="port"):
        parse_ip("192.0.2.1:80")
    with pytest.raises(AddressError):
        parse_ip("[::1]")


def test_address_rejects_non_canonical_construction() -> None:
    with pytest.raises(AddressError) as exc:
        type(parse_address("1.2.3.4"))(ip="1.2.3.5", version=4, value=0x01020304)
    assert exc.value.code == "not-canonical"


def test_prefixset_membership() -> None:
    ps = PrefixSet(["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "203.0.113.7",
                    "::ffff:172.16.0.0/108", ipaddress.ip_network("100.64.0.0/10")])
    assert "10.255.0.1" in ps
    assert "11.0.0.1" not in ps
    assert "192.168.1.200" in ps and "192.168.2.1" not in ps
    assert "203.0.113.7" in ps and "203.0.113.8" not in ps
    assert "172.16.9.9" in ps  # mapped CIDR stored as IPv4
    assert "::ffff:10.1.1.1" in ps  # mapped address matched as IPv4
    assert ipaddress.ip_address("2001:db8:ffff::1") in ps
    assert "2001:db9::1" not in ps
    assert "100.127.255.255" in ps and "100.128.0.0" not in ps
    assert "garbage" not in ps and 42 not in ps
    assert len(ps) == 6


def test_prefixset_short_prefixes_and_default_route() -> None:
    ps = PrefixSet(["0.0.0.0/0"])
    assert "1.2.3.4" in ps and "255.255.255.255" in ps and "::1" not in ps
    ps6 = PrefixSet(["::/0", "fc00::/7"])
    assert "2001:db8::1" in ps6 and "1.2.3.4" not in ps6


@pytest.mark.parametrize("bad", ["", " ", "10.0.0.1/8", "10.0.0.0/33", "010.0.0.0/8",
                                 "10.0.0.0/8:80", "fe80::/10%eth0", "10.0.0.0/-1", "nope",
                                 "10.0.0.0/ 8"])
def test_prefixset_rejects_bad_entries_at_construction(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        PrefixSet([bad])
    assert exc.value.code == "bad-cidr"
    assert "cidrs[0]" in str(exc.value)


def test_prefixset_rejects_a_bare_string() -> None:
    with pytest.raises(ConfigError, match="single string"):
        PrefixSet("10.0.0.0/8")  # type: ignore[arg-type]


def test_prefixset_agrees_with_ipaddress_on_many_networks() -> None:
    import random

    rnd = random.Random(7)
    nets = []
    for _ in range(2000):
        plen = rnd.randint(4, 32)
        value = rnd.getrandbits(32) & ~((1 << (32 - plen)) - 1)
        nets.append(ipaddress.IPv4Network((value, plen)))
    ps = PrefixSet(nets)
    probes = [ipaddress.IPv4Address(rnd.getrandbits(32)) for _ in range(300)]
    probes += [n.network_address + 1 for n in nets[:300]]
    for a in probes:
        assert (a in ps) == any(a in n for n in nets)
