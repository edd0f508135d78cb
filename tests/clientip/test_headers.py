"""Header parsers: X-Forwarded-For, X-Real-IP, Forwarded, X-Forwarded-Proto/Host/Port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sourceip.clientip import (
    AddressError,
    HeaderError,
    ParseError,
    parse_forwarded,
    parse_forwarded_node,
    parse_x_forwarded_for,
    parse_x_forwarded_host,
    parse_x_forwarded_port,
    parse_x_forwarded_proto,
    parse_x_real_ip,
)
from sourceip.clientip.headers import split_forwarded


def test_xff_joins_lines_in_order_and_keeps_invalid_hops() -> None:
    hops = parse_x_forwarded_for(["203.0.113.9, 010.0.0.1", "", "[2001:db8::7]:80 ,10.0.0.2"])
    assert [h.index for h in hops] == [0, 1, 2, 3]
    assert [h.address.ip if h.address else h.error for h in hops] == [
        "203.0.113.9", "leading-zero", "2001:db8::7", "10.0.0.2"]
    assert hops[2].address is not None and hops[2].address.port == 80


def test_xff_limits() -> None:
    with pytest.raises(HeaderError) as exc:
        parse_x_forwarded_for("1.1.1.1," * 100)
    assert exc.value.code == "too-many-hops"
    with pytest.raises(HeaderError) as exc:
        parse_x_forwarded_for("1" * 9000)
    assert exc.value.code == "too-long"
    assert len(parse_x_forwarded_for("1.1.1.1", max_hops=1)) == 1


def test_x_real_ip_uses_the_last_line() -> None:
    assert parse_x_real_ip(["198.51.100.1", "192.0.2.5"]).ip == "192.0.2.5"
    assert parse_x_real_ip("[2001:db8::1]:1234").port == 1234
    with pytest.raises(HeaderError) as exc:
        parse_x_real_ip("1.1.1.1, 2.2.2.2")
    assert exc.value.code == "list"
    with pytest.raises(HeaderError) as exc:
        parse_x_real_ip([])
    assert exc.value.code == "missing"
    with pytest.raises(AddressError) as aexc:
        parse_x_real_ip("01.1.1.1")
    assert aexc.value.code == "leading-zero"


RFC7239_EXAMPLES = [
    ('for="_gazonk"', "obfuscated", None),
    ('For="[2001:db8:cafe::17]:4711"', "ip", "2001:db8:cafe::17"),
    ("for=192.0.2.60;proto=http;by=203.0.113.43", "ip", "192.0.2.60"),
    ("for=192.0.2.43, for=198.51.100.17", "ip", "198.51.100.17"),
    ("for=unknown", "unknown", None),
    ('for="192.0.2.43:_port1"', "ip", "192.0.2.43"),
]


@pytest.mark.parametrize(("value", "kind", "ip"), RFC7239_EXAMPLES)
def test_forwarded_rfc_examples(value: str, kind: str, ip: str | None) -> None:
    last = parse_forwarded(value)[-1]
    assert last.error is None and last.for_ is not None
    assert last.for_.kind == kind
    assert (last.for_.address.ip if last.for_.address else None) == ip


def test_forwarded_fields_and_case() -> None:
    (e,) = parse_forwarded('For=192.0.2.60;PROTO=HTTPS;by="[2001:db8::1]";host="example.com:8443"')
    assert e.proto == "https" and e.host == "example.com:8443"
    assert e.by is not None and e.by.address is not None and e.by.address.ip == "2001:db8::1"
    assert ("for", "192.0.2.60") in e.params


def test_forwarded_quoted_commas_and_escapes_do_not_split() -> None:
    els = parse_forwarded('for=1.2.3.4;ext="a, b;c\\"d", for=5.6.7.8')
    assert len(els) == 2
    assert dict(els[0].params)["ext"] == 'a, b;c"d'
    assert els[1].for_ is not None and els[1].for_.name == "5.6.7.8"


@pytest.mark.parametrize(("value", "error"), [
    ("for=2001:db8::1", "syntax"),  # unquoted IPv6: ':' is not a tchar
    ('for="2001:db8::1"', "bad-for:not-an-ip"),  # IPv6 must be bracketed
    ("for=1.2.3.4;for=5.6.7.8", "duplicate-parameter"),
    ("for 1.2.3.4", "syntax"),
    ('for="010.1.1.1"', "bad-for:leading-zero"),
    ('for="1.2.3.4:99999"', "bad-for:bad-port"),
    ("proto=ht~tp", "bad-proto"),
    ('host="exa mple"', "bad-host"),
    ('for="_"', "bad-for:not-an-ip"),
])
def test_forwarded_malformed_elements_are_marked(value: str, error: str) -> None:
    (e,) = parse_forwarded(value)
    assert e.error == error and e.for_ is None


def test_forwarded_sabotage_salvages_right_hand_elements() -> None:
    # The client sent an unterminated quote; proxies appended well-formed elements after it.
    els = parse_forwarded(['for="1.2.3.4', 'for=198.51.100.7, for="[2001:db8::9]:80"'])
    assert els[0].error == "unterminated-quote"
    assert [e.for_.address.ip for e in els[1:] if e.for_ and e.for_.address] == [
        "198.51.100.7", "2001:db8::9"]


def test_forwarded_node_parser() -> None:
    n = parse_forwarded_node("[2001:db8::1]:_abc")
    assert n.kind == "ip" and n.obfport == "_abc" and n.port is None
    assert parse_forwarded_node("unknown:80").kind == "unknown"
    with pytest.raises(ParseError):
        parse_forwarded_node("[2001:db8::1")


def test_x_forwarded_proto_host_port() -> None:
    assert parse_x_forwarded_proto(["http", "HTTPS"]) == "https"
    with pytest.raises(HeaderError) as exc:
        parse_x_forwarded_proto("javascript")
    assert exc.value.code == "bad-proto"
    assert parse_x_forwarded_host("a.example, b.example:8443") == "b.example:8443"
    assert parse_x_forwarded_host("[2001:db8::1]:443") == "[2001:db8::1]:443"
    with pytest.raises(HeaderError):
        parse_x_forwarded_host("evil.example/path")
    assert parse_x_forwarded_port("80, 443") == 443
    with pytest.raises(HeaderError):
        parse_x_forwarded_port("0")


def test_no_regex_relies_on_possessive_quantifiers_or_atomic_groups() -> None:
    """CPython 3.11.0-3.11.4 (Debian 12's python3 is 3.11.2) mis-matches possessive
    quantifiers and atomic groups (fixed in 3.11.5); clientip supports 3.11.0+ with one
    behaviour, so none of its patterns may use them."""
    import importlib
    import pkgutil
    import re

    import sourceip.clientip as pkg

    parser: Any = re._parser  # type: ignore[attr-defined]
    banned = {parser.POSSESSIVE_REPEAT, parser.ATOMIC_GROUP}

    def ops(tree: Any) -> Iterator[Any]:
        for op, av in tree:
            yield op
            for part in av if isinstance(av, tuple | list) else ():
                if isinstance(part, parser.SubPattern):
                    yield from ops(part)
                elif isinstance(part, list):  # branches
                    for sub in part:
                        if isinstance(sub, parser.SubPattern):
                            yield from ops(sub)

    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"sourceip.clientip.{info.name}")
        for name, value in vars(mod).items():
            if isinstance(value, re.Pattern):
                used = set(ops(parser.parse(value.pattern, value.flags))) & banned
                if used:
                    found.append(f"{info.name}.{name}: {sorted(map(str, used))}")
    assert not found


@pytest.mark.parametrize("value", [
    '"', 'for="', 'for=1.2.3.4, "', 'for="\\', 'for="a\\"b, for=10.0.0.1',
    'for=198.51.100.9;x="' + "a" * 500 + ', for=10.1.1.1',
])
def test_a_lone_quote_does_not_swallow_the_elements_after_it(value: str) -> None:
    parts = split_forwarded(value + ", for=192.0.2.7")
    assert parts[-1][0].strip() == "for=192.0.2.7"
