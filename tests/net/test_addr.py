"""net.addr.ip_text: the C-formatted text of an address is str()'s, for every address."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from sourceip.net.addr import host_port, ip_text

# 8 groups, each zero half the time: long and tied zero runs, single zero groups
groups = st.lists(st.one_of(st.just(0), st.integers(0, 0xFFFF)), min_size=8, max_size=8)


def _v6(gs: list[int]) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(gs)))


@given(groups)
def test_ipv6_text_is_str(gs: list[int]) -> None:
    a = _v6(gs)
    assert ip_text(a) == str(a)


@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 0xFFFF, 1, 0xFFFE]))
def test_ipv4_tail_forms_are_str(low: int, mark: int) -> None:
    """The ranges inet_ntop writes with a dotted IPv4 tail (::a.b.c.d, ::ffff:a.b.c.d) are
    left to str(): the text stays ipaddress'."""
    a = ipaddress.IPv6Address((mark << 32) | low)
    assert ip_text(a) == str(a)


@given(st.integers(0, 2**32 - 1))
def test_ipv4_text_is_str(n: int) -> None:
    a = ipaddress.IPv4Address(n)
    assert ip_text(a) == str(a)


def test_examples() -> None:
    for text in ("fd00:10:180::2:1", "2001:db8::1", "::1", "::", "1::", "fe80::1%eth0",
                 "::ffff:10.0.0.1", "2001:0:0:1::1", "1:0:0:1:0:0:0:1"):
        a = ipaddress.IPv6Address(text)
        assert ip_text(a) == str(a)
    assert host_port(ipaddress.ip_address("fd00:10:180::1"), 80) == "[fd00:10:180::1]:80"
    assert host_port(ipaddress.ip_address("10.0.0.1"), 80) == "10.0.0.1:80"
