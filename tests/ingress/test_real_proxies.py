"""The model against real proxies: render nginx.conf / haproxy.cfg for a range of settings,
check them with ``nginx -t`` / ``haproxy -c``, run them on 127.0.0.1 in front of an echo
backend, send requests (with and without forged headers, with PROXY v1/v2 where expected,
from 127.0.0.1/.2/.3) and compare what the backend received with ``forward(...)``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sourceip.clientip import Family, ProxyHeader, build_proxy_header
from sourceip.ingress import (
    Connection,
    Forwarded,
    forward,
    parse_settings,
    render_haproxy_cfg,
    render_nginx_conf,
)
from sourceip.ingress.haproxy import proxy_list_text
from sourceip.ingress.model import RELEVANT_HEADERS
from sourceip.ingress.nginx import HEADERS_MORE_MODULE

from .conftest import free_port, need, send, stop, wait_listening

pytestmark = pytest.mark.tools

FORGED = [("X-Forwarded-For", "6.6.6.6")]
FORGED_MORE = [("X-Forwarded-For", "6.6.6.6, 7.7.7.7"), ("X-Real-IP", "8.8.8.8"),
               ("Forwarded", "for=9.9.9.9"), ("X-Forwarded-Proto", "https"),
               ("X-Forwarded-Host", "evil.example, other"), ("X-Forwarded-Port", "8443")]

NGINX_CASES: list[tuple[str, dict[str, str]]] = [
    ("defaults", {}),
    ("use-forwarded-headers, default 0.0.0.0/0", {"use-forwarded-headers": "true"}),
    ("use-forwarded-headers, trust 127.0.0.2", {"use-forwarded-headers": "true",
                                                "proxy-real-ip-cidr": "127.0.0.2/32"}),
    ("compute-full-forwarded-for, trust 127.0.0.2",
     {"use-forwarded-headers": "true", "compute-full-forwarded-for": "true",
      "proxy-real-ip-cidr": "127.0.0.2/32"}),
    ("compute-full-forwarded-for without use-forwarded-headers",
     {"compute-full-forwarded-for": "true"}),
    ("enable-real-ip with X-Real-IP as forwarded-for-header",
     {"enable-real-ip": "true", "forwarded-for-header": "X-Real-IP",
      "proxy-real-ip-cidr": "127.0.0.0/8"}),
    ("use-proxy-protocol, trust 127.0.0.2", {"use-proxy-protocol": "true",
                                            "proxy-real-ip-cidr": "127.0.0.2/32"}),
    ("use-proxy-protocol, default 0.0.0.0/0", {"use-proxy-protocol": "true"}),
    ("proxy protocol + forwarded headers, PROXY source trusted",
     {"use-proxy-protocol": "true", "use-forwarded-headers": "true",
      "proxy-real-ip-cidr": "127.0.0.0/8,192.168.0.1/32"}),
    ("proxy protocol + forwarded headers + full XFF, PROXY source untrusted",
     {"use-proxy-protocol": "true", "use-forwarded-headers": "true",
      "compute-full-forwarded-for": "true", "proxy-real-ip-cidr": "127.0.0.0/8"}),
]

SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
HEADER_SETS = [[], FORGED, FORGED_MORE]


def _request(headers: list[tuple[str, str]], host: str = "example.test") -> bytes:
    lines = ["GET / HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _pp(src: str, src_port: int, dst_port: int, version: int) -> bytes:
    return build_proxy_header(ProxyHeader(version=version, family=Family.INET, source=src,
                                          destination="127.0.0.1", source_port=src_port,
                                          destination_port=dst_port))


def _received(raw: bytes) -> list[tuple[str, str]] | None:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not (head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")):
        return None
    data = json.loads(body.decode())
    return [(k, v) for k, v in data["headers"]]


def _relevant(pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...],
              extra: set[str]) -> dict[str, list[str]]:
    names = RELEVANT_HEADERS | extra
    out: dict[str, list[str]] = {}
    for n, v in pairs:
        if n.lower() in names:
            out.setdefault(n.lower(), []).append(v)
    return out


def _assert_same(got_raw: bytes, want: Forwarded, extra: set[str], label: str) -> None:
    if not want.ok:
        assert b" 200 " not in got_raw.split(b"\r\n", 1)[0], (label, got_raw[:200])
        return
    got = _received(got_raw)
    assert got is not None, (label, got_raw[:300])
    assert _relevant(got, extra) == _relevant(want.headers, extra), label


@contextmanager
def _nginx(tmp: Path, conf: str, port: int) -> Iterator[None]:
    binary = need("nginx")
    path = tmp / "nginx.conf"
    path.write_text(conf)
    check = subprocess.run([binary, "-t", "-c", str(path), "-p", str(tmp)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr + conf
    proc = subprocess.Popen([binary, "-c", str(path), "-p", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield
    finally:
        stop(proc)


@pytest.mark.parametrize("label,data", NGINX_CASES, ids=[c[0] for c in NGINX_CASES])
def test_nginx_matches_model(label: str, data: dict[str, str], tmp_path: Path,
                             echo_backend: str) -> None:
    s = parse_settings("ingress-nginx", data)
    if s.use_forwarded_headers and s.use_proxy_protocol and not Path(HEADERS_MORE_MODULE).exists():
        pytest.skip("PROXY + forwarded headers needs the headers-more module "
                    "(apt-get install libnginx-mod-http-headers-more-filter)")
    port = free_port()
    conf = render_nginx_conf(s, listen_port=port, backend=echo_backend,
                             prefix_dir=str(tmp_path), listen_addr="127.0.0.1")
    extra = {s.forwarded_for_header.lower(), s.forwarded_for_proxy_protocol_header.lower()}
    with _nginx(tmp_path, conf, port):
        checked = 0
        for source in SOURCES:
            for hdrs in HEADER_SETS:
                for pp in ([None, ("192.168.0.1", 56324, 1234, 1), ("203.0.113.9", 4000, 443, 2)]
                           if s.use_proxy_protocol else [None, ("203.0.113.9", 4000, 80, 1)]):
                    conn = Connection(peer=source, peer_port=40000,
                                      proxy=None if pp is None else (pp[0], pp[1]),
                                      proxy_version=1 if pp is None else pp[3],
                                      proxy_dest=None if pp is None else ("127.0.0.1", pp[2]))
                    want = forward(s, conn, hdrs, controller_ip="127.0.0.1", port=port)
                    raw = (b"" if pp is None else _pp(pp[0], pp[1], pp[2], pp[3])) + _request(hdrs)
                    got = send(port, raw, source=source)
                    _assert_same(got, want, extra, f"{label} from {source} {hdrs} pp={pp}")
                    checked += want.ok
        assert checked >= 9


HAPROXY_CASES: list[tuple[str, dict[str, str]]] = [
    ("defaults (forwarded-for true)", {}),
    ("forwarded-for false", {"forwarded-for": "false"}),
    ("proxy-protocol from 127.0.0.2", {"proxy-protocol": "127.0.0.2"}),
    ("proxy-protocol from 127.0.0.0/30, forwarded-for off",
     {"proxy-protocol": "127.0.0.0/30", "forwarded-for": "off"}),
]


@contextmanager
def _haproxy(tmp: Path, cfg: str, port: int, lst: str) -> Iterator[None]:
    binary = need("haproxy")
    path = tmp / "haproxy.cfg"
    path.write_text(cfg)
    (tmp / "proxy-protocol.lst").write_text(lst)
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr + cfg
    proc = subprocess.Popen([binary, "-db", "-f", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield
    finally:
        stop(proc)


@pytest.mark.parametrize("label,data", HAPROXY_CASES, ids=[c[0] for c in HAPROXY_CASES])
def test_haproxy_matches_model(label: str, data: dict[str, str], tmp_path: Path,
                               echo_backend: str) -> None:
    s = parse_settings("haproxy", data)
    port = free_port()
    cfg = render_haproxy_cfg(s, listen_port=port, backend=echo_backend,
                             prefix_dir=str(tmp_path), listen_addr="127.0.0.1")
    with _haproxy(tmp_path, cfg, port, proxy_list_text(s)):
        checked = 0
        for source in SOURCES:
            for hdrs in HEADER_SETS:
                for pp in (None, ("203.0.113.9", 4000, 1), ("198.51.100.7", 5000, 2)):
                    conn = Connection(peer=source, peer_port=40000,
                                      proxy=None if pp is None else (pp[0], pp[1]),
                                      proxy_version=1 if pp is None else pp[2])
                    want = forward(s, conn, hdrs, controller_ip="127.0.0.1", port=port)
                    raw = (b"" if pp is None else _pp(pp[0], pp[1], port, pp[2])) + _request(hdrs)
                    got = send(port, raw, source=source)
                    _assert_same(got, want, set(), f"{label} from {source} {hdrs} pp={pp}")
                    checked += want.ok
        assert checked >= 9
