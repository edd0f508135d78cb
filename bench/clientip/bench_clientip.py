"""Benchmark sourceip.clientip against python-ipware, werkzeug ProxyFix, uvicorn's
ProxyHeadersMiddleware and the proxy-protocol package, on the same inputs, in one run.

    pip install -e '.[bench]'  &&  python bench/clientip/bench_clientip.py [--quick]

Prints per-request times (best of several repeats), ratios and the targets; no assertion.
Targets: 3-hop X-Forwarded-For with 4 trusted CIDRs at most werkzeug's time and at least 3x
faster than python-ipware; 1,000 trusted CIDRs at most 1.5x the time with 4; PROXY v2 parsing
at least 2x faster than proxy-protocol while rejecting what it wrongly accepts.
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from sourceip.clientip import (
    TLV,
    ClientIPASGIMiddleware,
    ClientIPError,
    ClientIPMiddleware,
    Family,
    ProxyHeader,
    RightmostTrustedRange,
    build_proxy_header,
    parse_forwarded,
    parse_proxy_header,
)

QUICK = "--quick" in sys.argv
REPEAT = 5 if QUICK else 15
TRUSTED4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
PEER = "10.0.0.5"


class Bench:
    """Collect cases, then time them in interleaved rounds (A B C A B C ...), keeping each
    case's best round, so that load changes during the run hit every case alike."""

    def __init__(self) -> None:
        self.cases: dict[str, tuple[Callable[[Any], object], list[Any], int]] = {}
        self.best: dict[str, float] = {}

    def add(self, name: str, fn: Callable[[Any], object], inputs: list[Any]) -> None:
        loops = 1
        while True:  # calibrate to ~50 ms per round
            t0 = time.perf_counter()
            for _ in range(loops):
                for x in inputs:
                    fn(x)
            if time.perf_counter() - t0 > 0.05 or loops > 1000:
                break
            loops *= 2
        self.cases[name] = (fn, inputs, loops)

    def run(self) -> dict[str, float]:
        for _ in range(REPEAT):
            for name, (fn, inputs, loops) in self.cases.items():
                t0 = time.perf_counter()
                for _ in range(loops):
                    for x in inputs:
                        fn(x)
                t = (time.perf_counter() - t0) / (loops * len(inputs)) * 1e6
                self.best[name] = min(self.best.get(name, float("inf")), t)
        return self.best


def client_ips(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    out = []
    while len(out) < n:
        a = IPv4Address(rnd.getrandbits(32))
        if a.is_global:
            out.append(str(a))
    return out


def environs(clients: list[str]) -> list[dict[str, Any]]:
    return [{"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": PEER,
             "HTTP_X_FORWARDED_FOR": f"{c}, 10.1.2.3, 172.16.0.9", "wsgi.url_scheme": "http",
             "HTTP_HOST": "app", "SERVER_NAME": "app", "SERVER_PORT": "80"} for c in clients]


def scopes(clients: list[str]) -> list[dict[str, Any]]:
    return [{"type": "http", "client": (PEER, 50000), "scheme": "http", "headers": [
        (b"host", b"app"), (b"x-forwarded-for", f"{c}, 10.1.2.3, 172.16.0.9".encode())]}
        for c in clients]


def many_cidrs(n: int, seed: int = 2) -> list[str]:
    """n distinct CIDRs, /12../28, spread over the IPv4 space, plus the 4 real ones."""
    rnd = random.Random(seed)
    nets = set(TRUSTED4)
    while len(nets) < n:
        plen = rnd.randint(12, 28)
        value = rnd.getrandbits(32) & ~((1 << (32 - plen)) - 1)
        nets.add(str(IPv4Network((value, plen))))
    return sorted(nets)


def noop_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return []


async def noop_asgi(scope: Any, receive: Any, send: Any) -> None:
    return None


def run_asgi(app: Any) -> Callable[[dict[str, Any]], None]:
    def call(scope: dict[str, Any]) -> None:
        coro = app(dict(scope), None, None)
        try:
            coro.send(None)
        except StopIteration:
            pass
    return call


def main() -> int:
    B = Bench()
    distinct = client_ips(10_000)
    same = [distinct[0]] * 10_000

    # --- X-Forwarded-For, 3 hops, 4 trusted CIDRs ----------------------------------------------
    strategy = RightmostTrustedRange(trusted_proxies=TRUSTED4)
    ours_wsgi = ClientIPMiddleware(noop_wsgi, strategy)
    from werkzeug.middleware.proxy_fix import ProxyFix

    proxyfix = ProxyFix(noop_wsgi, x_for=3)
    from python_ipware import IpWare

    ipware = IpWare(proxy_count=2)
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    uvi = run_asgi(ProxyHeadersMiddleware(noop_asgi, trusted_hosts=TRUSTED4))
    ours_asgi = run_asgi(ClientIPASGIMiddleware(noop_asgi, strategy))

    env_d = environs(distinct)
    env_s = environs(same)
    # sanity: everyone finds the same client on the same input
    e = dict(env_d[0])
    ours_wsgi(e, None)
    e2 = dict(env_d[0])
    proxyfix(e2, lambda *a: None)
    assert e["sourceip.client"].ip == e2["REMOTE_ADDR"] == distinct[0]
    assert str(ipware.get_client_ip(env_d[0])[0]) == distinct[0]

    hdrs = [{"x-forwarded-for": env["HTTP_X_FORWARDED_FOR"]} for env in env_d]
    big = RightmostTrustedRange(trusted_proxies=many_cidrs(1000))
    assert big.resolve(PEER, hdrs[0]).ip == distinct[0]

    # RFC 7239 Forwarded with quoted IPv6 nodes (the quoted-string splitter and pair regexes)
    fwd = [f'for={c};proto=https, for="[2001:db8::{i % 97 + 1:x}]:4711";by=_lb, for=10.1.2.3'
           for i, c in enumerate(distinct[:2000])]
    fwd_hdrs = [{"forwarded": h} for h in fwd]
    fwd_strategy = RightmostTrustedRange(trusted_proxies=TRUSTED4, header="forwarded")
    assert parse_forwarded(fwd[0])[0].for_ is not None
    B.add("fwd_parse", parse_forwarded, fwd)
    B.add("fwd_resolve", lambda h: fwd_strategy.resolve(PEER, h), fwd_hdrs)

    B.add("core4", lambda h: strategy.resolve(PEER, h), hdrs)
    B.add("core1000", lambda h: big.resolve(PEER, h), hdrs)
    B.add("wsgi", lambda env: ours_wsgi(dict(env), None), env_d)
    B.add("wsgi_same", lambda env: ours_wsgi(dict(env), None), env_s)
    B.add("werkzeug", lambda env: proxyfix(dict(env), None), env_d)
    B.add("ipware", lambda env: ipware.get_client_ip(env), env_d[:2000])
    B.add("asgi", ours_asgi, scopes(distinct))
    B.add("uvicorn", uvi, scopes(distinct))

    # --- PROXY protocol ------------------------------------------------------------------------
    from proxyprotocol.v1 import ProxyProtocolV1
    from proxyprotocol.v2 import ProxyProtocolV2

    ppv2, ppv1 = ProxyProtocolV2(), ProxyProtocolV1()
    rnd = random.Random(3)
    v2_frames = [build_proxy_header(ProxyHeader(
        version=2, family=Family.INET, source=c, source_port=rnd.randint(1024, 65535),
        destination="172.31.10.5", destination_port=443,
        tlvs=(TLV.aws_vpce_id("vpce-0a1b2c3d4e5f60718"),))) for c in distinct[:2000]]
    v2_crc = [build_proxy_header(parse_proxy_header(f)[0], add_crc32c=True)  # type: ignore[index]
              for f in v2_frames]
    v2_six = [build_proxy_header(ProxyHeader(
        version=2, family=Family.INET6, source=f"2001:db8:{i + 1:x}::1", source_port=1000 + i,
        destination="2001:db8::2", destination_port=443)) for i in range(2000)]
    v1_frames = [f"PROXY TCP4 {c} 172.31.10.5 {1024 + i} 443\r\n".encode()
                 for i, c in enumerate(distinct[:2000])]
    B.add("v2", parse_proxy_header, v2_frames)
    B.add("pp_v2", ppv2.unpack, v2_frames)
    B.add("v6", parse_proxy_header, v2_six)
    B.add("pp_v6", ppv2.unpack, v2_six)
    B.add("v2crc", parse_proxy_header, v2_crc)
    B.add("pp_v2crc", ppv2.unpack, v2_crc)
    B.add("v1", parse_proxy_header, v1_frames)
    B.add("pp_v1", ppv1.unpack, v1_frames)

    T = B.run()
    rows = [
        ("XFF 3 hops / 4 CIDRs: sourceip strategy.resolve (core)", T["core4"]),
        ("Forwarded 3 elements, quoted IPv6: sourceip parse_forwarded", T["fwd_parse"]),
        ("Forwarded 3 elements, quoted IPv6: sourceip core (resolve)", T["fwd_resolve"]),
        ("XFF 3 hops / 1,000 CIDRs (/12-/28): sourceip core", T["core1000"]),
        ("XFF 3 hops / 4 CIDRs: sourceip WSGI middleware", T["wsgi"]),
        ("XFF 3 hops / 4 CIDRs: sourceip WSGI, one repeated client", T["wsgi_same"]),
        ("XFF 3 hops: werkzeug ProxyFix(x_for=3)", T["werkzeug"]),
        ("XFF 3 hops: python-ipware IpWare(proxy_count=2)", T["ipware"]),
        ("XFF 3 hops / 4 CIDRs: sourceip ASGI middleware", T["asgi"]),
        ("XFF 3 hops / 4 CIDRs: uvicorn ProxyHeadersMiddleware", T["uvicorn"]),
        ("PROXY v2 IPv4 + AWS VPCE TLV: sourceip", T["v2"]),
        ("PROXY v2 IPv4 + AWS VPCE TLV: proxy-protocol", T["pp_v2"]),
        ("PROXY v2 IPv6: sourceip", T["v6"]),
        ("PROXY v2 IPv6: proxy-protocol", T["pp_v6"]),
        ("PROXY v2 + CRC32C (verified, pure Python): sourceip", T["v2crc"]),
        ("PROXY v2 + CRC32C: proxy-protocol (NOT verified w/o crc32c pkg)", T["pp_v2crc"]),
        ("PROXY v1 TCP4: sourceip", T["v1"]),
        ("PROXY v1 TCP4: proxy-protocol", T["pp_v1"]),
    ]
    verdicts: list[tuple[str, bool, str]] = [
        ("WSGI middleware <= werkzeug ProxyFix", T["wsgi"] <= T["werkzeug"],
         f"{T['wsgi'] / T['werkzeug']:.2f}x werkzeug's time"),
        ("core >= 3x faster than python-ipware", T["ipware"] / T["core4"] >= 3,
         f"{T['ipware'] / T['core4']:.1f}x faster"),
        ("WSGI middleware >= 3x faster than python-ipware", T["ipware"] / T["wsgi"] >= 3,
         f"{T['ipware'] / T['wsgi']:.1f}x faster"),
        ("ASGI middleware <= uvicorn", T["asgi"] <= T["uvicorn"],
         f"{T['asgi'] / T['uvicorn']:.2f}x uvicorn's time"),
        ("1,000 CIDRs <= 1.5x 4 CIDRs", T["core1000"] <= 1.5 * T["core4"],
         f"{T['core1000'] / T['core4']:.2f}x"),
        ("PROXY v2 IPv4 >= 2x faster than proxy-protocol", T["pp_v2"] / T["v2"] >= 2,
         f"{T['pp_v2'] / T['v2']:.2f}x faster"),
        ("PROXY v2 IPv6 >= 2x faster than proxy-protocol", T["pp_v6"] / T["v6"] >= 2,
         f"{T['pp_v6'] / T['v6']:.2f}x faster"),
    ]

    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    block = socket.inet_aton("192.0.2.1") + socket.inet_aton("198.51.100.2") + struct.pack(
        "!HH", 56324, 443)

    def v2(fam: int, body: bytes) -> bytes:
        return sig + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body

    invalid = {
        "v1 port with leading zero": b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",
        "v1 port with sign": b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
        "v1 IPv6 zone id": b"PROXY TCP6 fe80::1%eth0 ::1 80 443\r\n",
        "v1 line over 107 bytes": b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
        "v2 undefined transport 0x13": v2(0x13, block),
        "v2 truncated TLV": v2(0x11, block + b"\x01\x00"),
        "v2 duplicate CRC TLVs": v2(0x11, block + b"\x03\x00\x04\0\0\0\0" * 2),
        "v2 wrong CRC32C": v2(0x11, block + b"\x03\x00\x04\xde\xad\xbe\xef"),
        "v2 unique id > 128 bytes": v2(0x11, block + b"\x05\x00\x81" + b"u" * 129),
    }
    rejection_rows = []
    all_rejected = True
    for name, frame in invalid.items():
        try:
            parse_proxy_header(frame)
            ours = "ACCEPTS"
            all_rejected = False
        except ClientIPError as exc:
            ours = f"rejects ({exc.code})"
        impl = ppv1 if frame.startswith(b"PROXY") else ppv2
        try:
            impl.unpack(frame)
            theirs = "accepts"
        except Exception as exc:  # noqa: BLE001
            theirs = f"rejects ({type(exc).__name__})"
        rejection_rows.append((name, ours, theirs))
    verdicts.append(("rejects every invalid frame below", all_rejected, ""))

    # --- report --------------------------------------------------------------------------------
    width = max(len(n) for n, _ in rows)
    print(f"Python {sys.version.split()[0]}; best of {REPEAT}; microseconds per request/frame")
    print(f"{'case':<{width}}  {'us':>8}")
    print("-" * (width + 10))
    for name, t in rows:
        print(f"{name:<{width}}  {t:8.2f}")
    print()
    print("PROXY frames invalid per spec           sourceip                       proxy-protocol")
    for name, ours, theirs in rejection_rows:
        print(f"  {name:<36} {ours:<30} {theirs}")
    print()
    for name, ok, detail in verdicts:
        print(f"[{'PASS' if ok else 'MISS'}] {name} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
