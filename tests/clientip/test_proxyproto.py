"""PROXY protocol v1/v2: frames from the spec, realistic load-balancer frames, malformed frames
(each rejected with its reason code), the sans-IO parser and the asyncio helper."""

from __future__ import annotations

import asyncio
import struct

import pytest

from sourceip.clientip import (
    NEED_DATA,
    TLV,
    Command,
    Family,
    ProxyHeader,
    ProxyProtocolEOF,
    ProxyProtocolError,
    ProxyProtocolParser,
    ProxyProtocolTimeout,
    TLVType,
    Transport,
    build_proxy_header,
    crc32c,
    parse_proxy_header,
    read_proxy_header,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def crc32c_bitwise(data: bytes) -> int:
    """Independent bit-by-bit CRC32C (no table) to check the table-driven one."""
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


def v2(ver_cmd: int, fam: int, body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return SIG + bytes([ver_cmd, fam]) + struct.pack("!H", n) + body


INET_BLOCK = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack("!HH", 56324, 443)


def test_crc32c_known_answers() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value
    assert crc32c(b"") == 0
    data = bytes(range(256)) * 3
    assert crc32c(data) == crc32c_bitwise(data)
    assert crc32c(data[100:], crc32c(data[:100])) == crc32c(data)


VALID_V1 = [
    (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", Family.INET,
     "255.255.255.255", 65535),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", Family.INET, "192.168.0.1", 56324),
    (b"PROXY TCP6 ffff:f:f:f:f:f:f:f ffff:f:f:f:f:f:f:f 65535 65535\r\n", Family.INET6,
     "ffff:f:f:f:f:f:f:f", 65535),
    (b"PROXY TCP6 2001:db8::1 2001:db8::2 0 1\r\n", Family.INET6, "2001:db8::1", 0),
    (b"PROXY UNKNOWN\r\n", Family.UNSPEC, None, None),
    (b"PROXY UNKNOWN ffff:f:f:f:f:f:f:f ffff:f:f:f:f:f:f:f 65535 65535\r\n", Family.UNSPEC,
     None, None),
]


@pytest.mark.parametrize(("frame", "family", "src", "sport"), VALID_V1,
                         ids=[f[0][:24].decode() for f in VALID_V1])
def test_v1_spec_frames(frame: bytes, family: Family, src: str | None,
                        sport: int | None) -> None:
    r = parse_proxy_header(frame + b"GET / HTTP/1.1\r\n")
    assert not isinstance(r, type(NEED_DATA))
    header, used = r
    assert used == len(frame)
    assert (header.version, header.family, header.source, header.source_port) == (
        1, family, src, sport)
    assert header.use_peer == (family == Family.UNSPEC)
    if b"UNKNOWN " not in frame:
        assert build_proxy_header(header) == frame


def test_v1_longest_line_is_107_bytes() -> None:
    line = b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n"
    assert len(line) == 107
    assert parse_proxy_header(line)[1] == 107  # type: ignore[index]
    with pytest.raises(ProxyProtocolError) as exc:
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n")
    assert exc.value.code == "v1-too-long"


INVALID = [
    ("v1 no CRLF in 107 bytes", b"PROXY TCP4 " + b"1" * 120, "v1-too-long"),
    ("v1 lone LF", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1-bad-crlf"),
    ("v1 lone CR", b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "v1-bad-crlf"),
    ("v1 lowercase", b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not-proxy"),
    ("v1 bad protocol", b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "v1-bad-protocol"),
    ("v1 double space", b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "v1-bad-fields"),
    ("v1 missing port", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1-bad-fields"),
    ("v1 trailing space", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1-bad-fields"),
    ("v1 leading-zero octet", b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "v1-bad-address"),
    ("v1 IPv6 in TCP4", b"PROXY TCP4 ::1 ::1 1 2\r\n", "v1-bad-address"),
    ("v1 IPv4 in TCP6", b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "v1-bad-address"),
    ("v1 zone id", b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "v1-bad-address"),
    ("v1 leading-zero port", b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "v1-bad-port"),
    ("v1 plus sign port", b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", "v1-bad-port"),
    ("v1 port too big", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "v1-bad-port"),
    ("v1 UNKNOWN glued", b"PROXY UNKNOWNX\r\n", "v1-bad-protocol"),
    ("plain HTTP", b"GET / HTTP/1.1\r\n\r\n", "not-proxy"),
    ("v2 bad signature", b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + INET_BLOCK, "not-proxy"),
    ("v2 version 1", v2(0x11, 0x11, INET_BLOCK), "v2-bad-version"),
    ("v2 version 3", v2(0x31, 0x11, INET_BLOCK), "v2-bad-version"),
    ("v2 command 2", v2(0x22, 0x11, INET_BLOCK), "v2-bad-command"),
    ("v2 family 4", v2(0x21, 0x41, INET_BLOCK), "v2-bad-family"),
    ("v2 transport 3", v2(0x21, 0x13, INET_BLOCK), "v2-bad-family"),
    ("v2 UNSPEC with STREAM", v2(0x21, 0x01, b""), "v2-bad-family"),
    ("v2 len shorter than INET block", v2(0x21, 0x11, INET_BLOCK[:8]), "v2-short-address-block"),
    ("v2 INET6 with INET block", v2(0x21, 0x21, INET_BLOCK), "v2-short-address-block"),
    ("v2 truncated TLV header", v2(0x21, 0x11, INET_BLOCK + b"\x01\x00"), "v2-tlv-truncated"),
    ("v2 TLV longer than block", v2(0x21, 0x11, INET_BLOCK + b"\x02\x00\x09abc"),
     "v2-tlv-truncated"),
    ("v2 CRC wrong length", v2(0x21, 0x11, INET_BLOCK + b"\x03\x00\x02\x00\x00"),
     "v2-tlv-bad-crc32c-length"),
    ("v2 CRC mismatch", v2(0x21, 0x11, INET_BLOCK + b"\x03\x00\x04\xde\xad\xbe\xef"),
     "v2-bad-crc32c"),
    ("v2 unique id too long", v2(0x21, 0x11, INET_BLOCK + b"\x05\x00\x81" + b"u" * 129),
     "v2-tlv-unique-id-too-long"),
    ("v2 SSL shorter than 5", v2(0x21, 0x11, INET_BLOCK + b"\x20\x00\x02\x01\x00"),
     "v2-tlv-ssl-truncated"),
    ("v2 SSL sub-TLV truncated",
     v2(0x21, 0x11, INET_BLOCK + b"\x20\x00\x08\x01\x00\x00\x00\x00\x21\x00\x05"),
     "v2-tlv-ssl-truncated"),
    ("v2 authority not UTF-8", v2(0x21, 0x11, INET_BLOCK + b"\x02\x00\x02\xff\xfe"),
     "v2-tlv-bad-authority"),
    ("v2 over the length limit", v2(0x21, 0x11, INET_BLOCK + b"\x04\x10\x00" + bytes(4096)),
     "v2-too-long"),
]


@pytest.mark.parametrize(("name", "frame", "code"), INVALID, ids=[i[0] for i in INVALID])
def test_malformed_frames_are_rejected_with_their_reason(name: str, frame: bytes,
                                                         code: str) -> None:
    with pytest.raises(ProxyProtocolError) as exc:
        parse_proxy_header(frame, max_v2_length=4096)
    assert exc.value.code == code
    assert str(exc.value).startswith(code + ":")


def test_duplicate_crc_is_rejected() -> None:
    body = INET_BLOCK + b"\x03\x00\x04\0\0\0\0" + b"\x03\x00\x04\0\0\0\0"
    with pytest.raises(ProxyProtocolError) as exc:
        parse_proxy_header(v2(0x21, 0x11, body))
    assert exc.value.code == "v2-tlv-duplicate-crc32c"


# A realistic AWS NLB frame (PrivateLink endpoint id + CRC32C), written by hand. The CRC was
# computed with the bitwise reference above; the test recomputes it.
AWS_NLB_FRAME = bytes.fromhex(
    "0d0a0d0a000d0a515549540a"  # signature
    "21" "11" "002d"  # v2 PROXY, TCP over IPv4, 45 bytes follow
    "c6336416" "ac1f0a05" "c000" "0050"  # 198.51.100.22:49152 -> 172.31.10.5:80
    "ea0017" "01" + b"vpce-0a1b2c3d4e5f60718".hex()  # PP2_TYPE_AWS, VPCE_ID subtype
    + "030004" "ae253721"  # PP2_TYPE_CRC32C
)


def test_aws_nlb_frame_hand_written_and_built_agree() -> None:
    zeroed = AWS_NLB_FRAME[:-4] + b"\0\0\0\0"
    assert crc32c_bitwise(zeroed) == 0xAE253721
    header, used = parse_proxy_header(AWS_NLB_FRAME)  # type: ignore[misc]
    assert used == len(AWS_NLB_FRAME)
    assert (header.source, header.source_port, header.destination, header.destination_port) == (
        "198.51.100.22", 49152, "172.31.10.5", 80)
    assert header.aws_vpce_id == "vpce-0a1b2c3d4e5f60718"
    assert header.crc32c == 0xAE253721
    built = build_proxy_header(ProxyHeader(
        version=2, family=Family.INET, source="198.51.100.22", source_port=49152,
        destination="172.31.10.5", destination_port=80,
        tlvs=(TLV.aws_vpce_id("vpce-0a1b2c3d4e5f60718"),)), add_crc32c=True)
    assert built == AWS_NLB_FRAME
    assert build_proxy_header(header) == AWS_NLB_FRAME
    crc_type_at = len(AWS_NLB_FRAME) - 7
    for i in range(16, len(AWS_NLB_FRAME)):  # any flipped bit after the fixed header
        damaged = bytearray(AWS_NLB_FRAME)
        damaged[i] ^= 0x10
        if i == crc_type_at:
            # 0x03 -> 0x13 turns the CRC TLV into an unregistered one: the frame no longer
            # claims a checksum, and the parser must not pretend it has one.
            h, _ = parse_proxy_header(bytes(damaged))  # type: ignore[misc]
            assert h.crc32c is None
            continue
        with pytest.raises(ProxyProtocolError):
            parse_proxy_header(bytes(damaged))


def test_vendor_and_ssl_tlvs_are_decoded() -> None:
    ssl = TLV.ssl(client=0x07, verify=0, sub_tlvs=(
        TLV(type=TLVType.SSL_VERSION, value=b"TLSv1.3"),
        TLV(type=TLVType.SSL_CN, value=b"client.example"),
        TLV(type=TLVType.SSL_CIPHER, value=b"TLS_AES_128_GCM_SHA256"),
        TLV(type=TLVType.SSL_CLIENT_CERT, value=b"\x30\x82der")))
    h = ProxyHeader(version=2, family=Family.INET6, transport=Transport.STREAM,
                    source="2001:db8::1", source_port=1, destination="2001:db8::2",
                    destination_port=2,
                    tlvs=(TLV.alpn(b"h2"), TLV.authority("app.example"),
                          TLV.unique_id(b"\x01" * 16), ssl, TLV.azure_link_id(0x01020304),
                          TLV.gcp_psc_connection_id(0x1122334455667788), TLV.noop(3)))
    parsed, _ = parse_proxy_header(build_proxy_header(h))  # type: ignore[misc]
    assert parsed == h
    assert parsed.alpn == b"h2" and parsed.authority == "app.example"
    assert parsed.unique_id == b"\x01" * 16
    assert parsed.azure_link_id == 0x01020304
    assert parsed.gcp_psc_connection_id == 0x1122334455667788
    info = parsed.ssl
    assert info is not None and info.ssl and info.cert_conn and info.cert_sess and info.verified
    assert (info.version, info.cn, info.cipher) == ("TLSv1.3", "client.example",
                                                    "TLS_AES_128_GCM_SHA256")
    assert info.client_cert == b"\x30\x82der"
    # Azure's LINKID is little-endian on the wire
    assert build_proxy_header(h).find(b"\xee\x00\x05\x01\x04\x03\x02\x01") > 0


def test_local_and_unspec_mean_use_the_peer() -> None:
    local, _ = parse_proxy_header(v2(0x20, 0x00, b""))  # type: ignore[misc]
    assert local.command == Command.LOCAL and local.use_peer
    local_inet, _ = parse_proxy_header(v2(0x20, 0x11, b""))  # type: ignore[misc]
    assert local_inet.use_peer and local_inet.source is None
    unspec, _ = parse_proxy_header(v2(0x21, 0x00, b""))  # type: ignore[misc]
    assert unspec.use_peer and unspec.family == Family.UNSPEC
    unix, _ = parse_proxy_header(v2(0x21, 0x31, b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0")))  # type: ignore[misc]  # noqa: E501
    assert (unix.source, unix.destination, unix.family) == ("/a", "/b", Family.UNIX)


def test_header_validation() -> None:
    with pytest.raises(ProxyProtocolError):
        ProxyHeader(version=1, family=Family.INET, source="1.2.3.4", source_port=1,
                    destination="1.2.3.4", destination_port=1, tlvs=(TLV.noop(),))
    with pytest.raises(ProxyProtocolError):
        ProxyHeader(version=2, family=Family.INET, source="01.2.3.4", source_port=1,
                    destination="1.2.3.4", destination_port=1)
    with pytest.raises(ProxyProtocolError):
        ProxyHeader(version=2, family=Family.INET6, source="2001:DB8::1", source_port=1,
                    destination="::1", destination_port=1)
    with pytest.raises(ProxyProtocolError):
        ProxyHeader(version=3, family=Family.UNSPEC, transport=Transport.UNSPEC)


def test_sans_io_parser_feeds_byte_by_byte() -> None:
    frame = AWS_NLB_FRAME + b"GET /"
    p = ProxyProtocolParser()
    results = []
    for i in range(len(frame)):
        p.feed(frame[i : i + 1])
        results.append(p.next_header())
    assert all(r is NEED_DATA for r in results[: len(AWS_NLB_FRAME) - 1])
    assert isinstance(results[len(AWS_NLB_FRAME) - 1], ProxyHeader)
    assert p.trailing == b"GET /"


def test_sans_io_parser_rejects_early_and_stays_failed() -> None:
    p = ProxyProtocolParser(v2=False)
    p.feed(b"\r\n\r\n")
    with pytest.raises(ProxyProtocolError) as exc:
        p.next_header()
    assert exc.value.code == "not-proxy"
    with pytest.raises(ProxyProtocolError):
        p.next_header()
    q = ProxyProtocolParser()
    q.feed(b"PRO")
    assert q.next_header() is NEED_DATA
    q.feed(b"XZ")
    with pytest.raises(ProxyProtocolError):
        q.next_header()


# Frames the `proxy-protocol` PyPI package (0.11.3) accepts although the spec forbids them.
# What that package does with them is measured (not asserted) by bench/clientip/
# bench_clientip.py, which prints both verdicts side by side (docs/performance.md).
WRONGLY_ACCEPTED_ELSEWHERE = [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",  # leading-zero port
    b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",  # signed port
    b"PROXY TCP6 fe80::1%eth0 ::1 80 443\r\n",  # zone id
    v2(0x21, 0x13, INET_BLOCK),  # undefined transport
    v2(0x21, 0x11, INET_BLOCK + b"\x01\x00"),  # truncated TLV
    v2(0x21, 0x11, INET_BLOCK[:8]),  # len shorter than the address block
    v2(0x21, 0x11, INET_BLOCK + b"\x03\x00\x04\xde\xad\xbe\xef"),  # CRC mismatch
]


@pytest.mark.parametrize("frame", WRONGLY_ACCEPTED_ELSEWHERE)
def test_we_reject_what_proxy_protocol_pypi_accepts(frame: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(frame)


@pytest.mark.parametrize(("byte12", "byte13", "code", "at"), [
    (0x11, 0x11, "v2-bad-version", 13),   # version 1 in a v2 frame: refused at byte 13
    (0x31, 0x11, "v2-bad-version", 13),
    (0x22, 0x11, "v2-bad-command", 13),   # command 2 is neither LOCAL nor PROXY
    (0x21, 0x13, "v2-bad-family", 14),    # undefined transport
    (0x21, 0x41, "v2-bad-family", 14),    # undefined family
])
def test_v2_bad_version_command_or_family_byte_is_refused_as_it_arrives(
        byte12: int, byte13: int, code: str, at: int) -> None:
    frame = v2(byte12, byte13, INET_BLOCK)
    p = ProxyProtocolParser()
    for i in range(len(frame)):
        p.feed(frame[i : i + 1])
        if i + 1 < at:
            assert p.next_header() is NEED_DATA, i
            continue
        with pytest.raises(ProxyProtocolError) as exc:
            p.next_header()
        assert exc.value.code == code
        assert i + 1 == at  # not one byte later (the length field is not needed)
        break
    with pytest.raises(ProxyProtocolError) as exc:
        parse_proxy_header(frame[:at])
    assert exc.value.code == code


# --- asyncio helper -------------------------------------------------------------------------


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    if eof:
        r.feed_eof()
    return r


def test_read_proxy_header_returns_header_and_rest() -> None:
    async def go() -> tuple[ProxyHeader, bytes]:
        return await read_proxy_header(_reader(AWS_NLB_FRAME + b"GET / HTTP/1.1\r\n"))

    header, rest = asyncio.run(go())
    assert header.aws_vpce_id and rest == b"GET / HTTP/1.1\r\n"


def test_read_proxy_header_timeout_eof_and_invalid() -> None:
    async def slow() -> None:
        await read_proxy_header(_reader(b"PROXY TCP4 1.2", eof=False), timeout=0.05)

    with pytest.raises(ProxyProtocolTimeout) as t:
        asyncio.run(slow())
    assert t.value.code == "timeout"

    async def eof() -> None:
        await read_proxy_header(_reader(b"PROXY TCP4 1.2"))

    with pytest.raises(ProxyProtocolEOF) as e:
        asyncio.run(eof())
    assert e.value.code == "eof"

    async def bad() -> None:
        await read_proxy_header(_reader(b"GET / HTTP/1.1\r\n\r\n", eof=False))

    with pytest.raises(ProxyProtocolError) as b:
        asyncio.run(bad())
    assert b.value.code == "not-proxy"
