"""Hypothesis properties: spoofing resistance, parsers raise only their own errors, PROXY
header round trips."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from sourceip.clientip import (
    TLV,
    ClientIPError,
    Command,
    Family,
    ProxyHeader,
    ProxyProtocolParser,
    RightmostTrustedCount,
    RightmostTrustedRange,
    SingleIPHeader,
    Transport,
    UnsafeLeftmostNonPrivate,
    build_proxy_header,
    parse_address,
    parse_forwarded,
    parse_forwarded_node,
    parse_proxy_header,
    parse_x_forwarded_for,
    parse_x_forwarded_host,
    parse_x_forwarded_port,
    parse_x_forwarded_proto,
    parse_x_real_ip,
)
from sourceip.clientip.proxyproto import NeedData

TRUSTED = ["10.0.0.0/8", "2001:db8:ffff::/48"]
TRUSTED_NETS = [ipaddress.ip_network(n) for n in TRUSTED]

# --- building blocks --------------------------------------------------------------------------

trusted_ip = st.one_of(
    st.integers(0x0A000001, 0x0AFFFFFE).map(lambda v: str(ipaddress.IPv4Address(v))),
    st.integers(1, (1 << 80) - 1).map(
        lambda v: str(ipaddress.IPv6Address((0x20010DB8FFFF << 80) | v))),
)


def _untrusted(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (not any(a in n for n in TRUSTED_NETS) and not a.is_unspecified
            and not (a.version == 6 and a.ipv4_mapped is not None))


untrusted_ip = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).filter(_untrusted).map(str)

# Anything a client may write in a header line: valid-looking addresses (including trusted
# ones, to impersonate proxies), quotes, commas, garbage, control characters.
client_token = st.one_of(
    trusted_ip, untrusted_ip, st.sampled_from(['"', ",", ";", "for=", "unknown", "_x", "[",
                                               "]", ":80", " ", "\t", "\\", "=", "%eth0"]),
    st.text(max_size=12),
)
client_line = st.lists(client_token, max_size=8).map("".join)
client_lines = st.lists(client_line, max_size=3)


def _xff_entry(ip: str) -> str:
    return ip


def _fwd_entry(ip: str) -> str:
    return f'for="[{ip}]"' if ":" in ip else f"for={ip}"


@settings(max_examples=200, deadline=None)
@given(client=untrusted_ip, sent=client_lines, proxies=st.lists(trusted_ip, min_size=1,
                                                                  max_size=4),
       separate_line=st.booleans(), forwarded=st.booleans())
def test_untrusted_client_cannot_choose_its_address(client: str, sent: list[str],
                                                    proxies: list[str], separate_line: bool,
                                                    forwarded: bool) -> None:
    """The client sends any header lines; each trusted proxy appends whom it received from.

    The result is the real client address (or None when the client made the header unusable,
    e.g. too long) -- never anything the client wrote.
    """
    name = "forwarded" if forwarded else "x-forwarded-for"
    entry = _fwd_entry if forwarded else _xff_entry
    appended = [entry(client)] + [entry(p) for p in proxies[:-1]]
    lines = list(sent)
    if separate_line or not lines:
        lines.append(", ".join(appended))  # HAProxy style: a new line
    else:
        lines[-1] = lines[-1] + ", " + ", ".join(appended)  # nginx style: same line
    peer = proxies[-1]
    canonical = str(ipaddress.ip_address(client))
    for strategy in (RightmostTrustedRange(header=name, trusted_proxies=TRUSTED),
                     RightmostTrustedCount(header=name, trusted_hops=len(proxies),
                                           trusted_proxies=TRUSTED)):
        r = strategy.resolve(peer, {name: lines})
        assert r.ip in (canonical, None), (strategy, lines, r)
        if r.ip is None:
            assert r.code in ("too-long", "too-many-hops"), r
    # the same client talking to the app directly gets its own address whatever it sends
    direct = RightmostTrustedRange(header=name, trusted_proxies=TRUSTED).resolve(
        client, {name: sent})
    assert direct.ip == canonical and direct.code == "untrusted-peer"


@settings(max_examples=150, deadline=None)
@given(client=untrusted_ip, sent=client_lines, proxy=trusted_ip)
def test_single_header_set_by_proxy_beats_client_lines(client: str, sent: list[str],
                                                       proxy: str) -> None:
    s = SingleIPHeader(header="x-real-ip", trusted_proxies=TRUSTED)
    r = s.resolve(proxy, {"x-real-ip": [*sent, client]})
    assert r.ip == str(ipaddress.ip_address(client))
    assert s.resolve(client, {"x-real-ip": sent}).ip == str(ipaddress.ip_address(client))


any_text = st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1")))
any_lines = st.one_of(any_text, st.lists(any_text, max_size=4))


@settings(max_examples=200, deadline=None)
@given(value=any_lines, peer=st.one_of(st.none(), any_text, trusted_ip))
def test_parsers_and_strategies_raise_only_their_own_errors(value: str | list[str],
                                                            peer: str | None) -> None:
    for parser in (parse_x_forwarded_for, parse_forwarded, parse_x_real_ip,
                   parse_x_forwarded_proto, parse_x_forwarded_host, parse_x_forwarded_port):
        try:
            parser(value)
        except ClientIPError:
            pass
    text = value if isinstance(value, str) else "".join(value)
    for single in (parse_address, parse_forwarded_node):
        try:
            single(text)
        except ClientIPError:
            pass
    for name in ("x-forwarded-for", "forwarded"):
        for strategy in (RightmostTrustedRange(header=name, trusted_proxies=TRUSTED),
                         RightmostTrustedCount(header=name, trusted_hops=2),
                         UnsafeLeftmostNonPrivate(header=name)):
            r = strategy.resolve(peer, {name: value})
            assert r.ip is None or parse_address(r.ip).ip == r.ip


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda b: b"PROXY " + b),
    st.binary(max_size=300).map(lambda b: b"\r\n\r\n\x00\r\nQUIT\n" + b),
))
def test_proxy_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        r = parse_proxy_header(data)
    except ClientIPError:
        return
    if isinstance(r, NeedData):
        return
    header, used = r
    assert 0 < used <= len(data)
    # whatever the parser accepts is a valid header for the validating constructor
    fields = {f.name: getattr(header, f.name) for f in dataclasses.fields(header)}
    assert ProxyHeader(**fields) == header


# --- round trips ------------------------------------------------------------------------------

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
tlv = st.builds(lambda t, v: TLV(type=t, value=v),
                st.integers(0, 255).filter(lambda t: t not in (0x02, 0x03, 0x05, 0x20)),
                st.binary(max_size=40))
known_tlv = st.one_of(
    st.binary(max_size=8).map(TLV.alpn),
    st.text(max_size=20).map(TLV.authority),
    st.binary(max_size=128).map(TLV.unique_id),
    st.text(alphabet="abcdef0123456789", max_size=17).map(lambda s: TLV.aws_vpce_id("vpce-" + s)),
    st.integers(0, 2**32 - 1).map(TLV.azure_link_id),
    st.integers(0, 2**64 - 1).map(TLV.gcp_psc_connection_id),
    st.builds(lambda c, v, subs: TLV.ssl(client=c, verify=v, sub_tlvs=subs),
              st.integers(0, 7), st.integers(0, 2**32 - 1),
              st.lists(st.builds(lambda t, v: TLV(type=t, value=v), st.integers(0x21, 0x28),
                                 st.binary(max_size=10)), max_size=3)),
)
tlvs = st.lists(st.one_of(tlv, known_tlv), max_size=4).map(tuple)
unix_path = st.binary(max_size=108).map(lambda b: b.rstrip(b"\0")).map(
    lambda b: b.decode("utf-8", "surrogateescape"))


@st.composite
def headers(draw: st.DrawFn) -> ProxyHeader:
    version = draw(st.sampled_from([1, 2]))
    if version == 1:
        fam = draw(st.sampled_from([Family.INET, Family.INET6, Family.UNSPEC]))
        if fam == Family.UNSPEC:
            return ProxyHeader(version=1, family=fam, transport=Transport.UNSPEC)
        addr = ipv4 if fam == Family.INET else ipv6
        return ProxyHeader(version=1, family=fam, source=draw(addr), source_port=draw(ports),
                           destination=draw(addr), destination_port=draw(ports))
    command = draw(st.sampled_from([Command.LOCAL, Command.PROXY]))
    fam = draw(st.sampled_from(list(Family)))
    if fam == Family.UNSPEC:
        return ProxyHeader(version=2, command=command, family=fam,
                           transport=Transport.UNSPEC, tlvs=draw(tlvs))
    transport = draw(st.sampled_from([Transport.STREAM, Transport.DGRAM]))
    if fam == Family.UNIX:
        return ProxyHeader(version=2, command=command, family=fam, transport=transport,
                           source=draw(unix_path), destination=draw(unix_path),
                           tlvs=draw(tlvs))
    addr = ipv4 if fam == Family.INET else ipv6
    return ProxyHeader(version=2, command=command, family=fam, transport=transport,
                       source=draw(addr), source_port=draw(ports), destination=draw(addr),
                       destination_port=draw(ports), tlvs=draw(tlvs))


@settings(max_examples=200, deadline=None)
@given(h=headers(), crc=st.booleans(), trailing=st.binary(max_size=20))
def test_parse_build_round_trip(h: ProxyHeader, crc: bool, trailing: bool) -> None:
    frame = build_proxy_header(h, add_crc32c=crc and h.version == 2)
    parsed, used = parse_proxy_header(frame + trailing)  # type: ignore[misc]
    assert used == len(frame)
    if crc and h.version == 2:
        assert parsed.crc32c is not None
        assert dataclasses.replace(parsed, tlvs=parsed.tlvs[:-1]) == h
    else:
        assert parsed == h
    assert build_proxy_header(parsed) == frame  # build(parse(frame)) round-trips
    # the incremental parser agrees when bytes arrive in two pieces
    p = ProxyProtocolParser()
    cut = len(frame) // 2
    p.feed(frame[:cut])
    assert isinstance(p.next_header(), NeedData) or cut == 0
    p.feed(frame[cut:] + trailing)
    assert p.next_header() == parsed and p.trailing == trailing


def test_unix_header_round_trip_example() -> None:
    h = ProxyHeader(version=2, family=Family.UNIX, source="\x00abstract", destination="/x")
    assert parse_proxy_header(build_proxy_header(h))[0] == h  # type: ignore[index]
