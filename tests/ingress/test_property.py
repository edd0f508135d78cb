"""Property: for any settings a controller model accepts and any forged headers, the strategy
``recommend`` gives, applied to what ``forward`` delivers, never resolves an address the
client chose -- unless ``Recommendation.forgeable`` says so, and then a concrete attack is
shown to succeed (so ``forgeable`` is itself checked, in both directions).

Threat model: the client connects itself (peer = its own address, outside every trusted
range that is not a catch-all), may send its own PROXY header, and chooses every header.
Forged addresses come from 6.6.0.0/16 and 2001:db8:666::/48, disjoint from everything else.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sourceip.clientip import headers_from_pairs
from sourceip.ingress import (
    CONTROLLERS,
    Connection,
    client_headers,
    forward,
    parse_settings,
    recommend,
)

CONTROLLER_IP = "10.244.3.7"
TRUSTED = ["10.244.0.0/16"]
CIDR_POOL = ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/16", "127.0.0.2/32", "0.0.0.0/0",
             "::/0", "fd00::/16", "198.51.100.0/24"]
# public and internal (RFC 1918 / 4193, as Envoy classifies) clients outside every non-catch-all
# range of CIDR_POOL
CLIENTS = ["203.0.113.7", "2001:db8:cafe::7", "172.20.0.7", "fd12::7"]
FORGED_NETS = [ipaddress.ip_network("6.6.0.0/16"), ipaddress.ip_network("2001:db8:666::/48")]


def _forged(addr: str | None) -> bool:
    if addr is None:
        return False
    ip = ipaddress.ip_address(addr)
    return any(ip in n for n in FORGED_NETS if n.version == ip.version)


forged_ip = st.one_of(
    st.integers(0, 0xFFFF).map(lambda i: str(ipaddress.IPv4Address(0x06060000 + i))),
    st.integers(0, 0xFFFF).map(lambda i: f"2001:db8:666::{i:x}"))
cidr_list = st.lists(st.sampled_from(CIDR_POOL), max_size=3, unique=True)
bools = st.sampled_from(["true", "false"])


def _xff_value(ips: list[str]) -> str:
    return ", ".join(ips)


forged_headers = st.lists(st.one_of(
    st.lists(forged_ip, min_size=1, max_size=4).map(lambda x: ("X-Forwarded-For", _xff_value(x))),
    forged_ip.map(lambda ip: ("X-Real-IP", ip)),
    forged_ip.map(lambda ip: ("X-Real-Ip", ip)),
    forged_ip.map(lambda ip: ("X-Envoy-External-Address", ip)),
    forged_ip.map(lambda ip: ("Client-IP", ip)),
    forged_ip.map(lambda ip: ("Forwarded", f'for="{ip}"' if ":" in ip else f"for={ip}")),
), max_size=5)


@st.composite
def settings_for(draw: Any, controller: str) -> Any:
    if controller == "ingress-nginx":
        data: dict[str, str] = {}
        for k in ("use-forwarded-headers", "compute-full-forwarded-for", "enable-real-ip",
                  "use-proxy-protocol"):
            if draw(st.booleans()):
                data[k] = draw(bools)
        if draw(st.booleans()):
            data["proxy-real-ip-cidr"] = ",".join(draw(cidr_list))
        if draw(st.booleans()):
            data["forwarded-for-header"] = draw(st.sampled_from(
                ["X-Forwarded-For", "X-Real-IP", "Client-IP", "x-forwarded-for"]))
        return parse_settings(controller, data)
    if controller == "haproxy":
        data = {}
        if draw(st.booleans()):
            data["forwarded-for"] = draw(st.sampled_from(["true", "false", "on", "off"]))
        if draw(st.booleans()):
            data["proxy-protocol"] = ", ".join(draw(cidr_list))
        return parse_settings(controller, data)
    if controller == "traefik":
        fh: dict[str, Any] = {}
        if draw(st.booleans()):
            fh["insecure"] = draw(st.booleans())
        if draw(st.booleans()):
            fh["trustedIPs"] = draw(cidr_list)
        if draw(st.booleans()):
            fh["notAppendXForwardedFor"] = draw(st.booleans())
        ep: dict[str, Any] = {"address": ":80", "forwardedHeaders": fh}
        if draw(st.booleans()):
            ep["proxyProtocol"] = {"insecure": draw(st.booleans()),
                                   "trustedIPs": draw(cidr_list)}
        return parse_settings(controller, {"entryPoints": {"web": ep}})
    if controller == "envoy":
        hcm: dict[str, Any] = {"use_remote_address": draw(st.booleans())}
        if draw(st.booleans()):
            hcm["xff_num_trusted_hops"] = draw(st.integers(0, 3))
        if draw(st.booleans()):
            hcm["skip_xff_append"] = draw(st.booleans())
        if draw(st.booleans()):
            cfg: dict[str, Any] = {"@type": "type.googleapis.com/envoy.extensions.http."
                                            "original_ip_detection.xff.v3.XffConfig"}
            if draw(st.booleans()):
                cfg["xff_num_trusted_hops"] = draw(st.integers(0, 3))
            else:
                cfg["xff_trusted_cidrs"] = {"cidrs": draw(cidr_list),
                                            "recurse": draw(st.booleans())}
            if draw(st.booleans()):
                cfg["skip_xff_append"] = draw(st.booleans())
            hcm["original_ip_detection_extensions"] = [{"typed_config": cfg}]
        return parse_settings(controller, hcm)
    spec: dict[str, Any] = {}
    mode = draw(st.sampled_from(["none", "hops", "cidrs", "custom"]))
    if mode == "hops":
        spec["clientIPDetection"] = {"xForwardedFor": {"numTrustedHops": draw(st.integers(0, 3))}}
    elif mode == "cidrs":
        spec["clientIPDetection"] = {"xForwardedFor": {
            "trustedCIDRs": draw(st.lists(st.sampled_from(
                [c for c in CIDR_POOL if "/" in c]), min_size=1, max_size=3, unique=True))}}
    elif mode == "custom":
        spec["clientIPDetection"] = {"customHeader": {"name": "Client-IP",
                                                      "failClosed": draw(st.booleans())}}
    if mode in ("hops", "cidrs") and draw(st.booleans()):
        spec["clientIPDetection"]["xForwardedFor"]["disableXForwardedForAppend"] = True
    if draw(st.booleans()):
        spec["proxyProtocol"] = {"optional": draw(st.booleans())}
    return parse_settings(controller, {"spec": spec})


def _resolve(rec: Any, fwd: Any) -> str | None:
    strategy = rec.build()
    result = strategy.resolve(fwd.peer, headers_from_pairs(fwd.headers))
    ip: str | None = result.ip
    return ip


@st.composite
def case(draw: Any) -> tuple[Any, Connection, list[tuple[str, str]]]:
    controller = draw(st.sampled_from(CONTROLLERS))
    s = draw(settings_for(controller))
    client = draw(st.sampled_from(CLIENTS))
    pp = None
    if draw(st.booleans()):
        pp = (draw(forged_ip), draw(st.integers(1, 65535)))
    conn = Connection(peer=client, peer_port=40000, proxy=pp)
    return s, conn, draw(forged_headers)


@given(case())
def test_recommended_strategy_never_resolves_a_forged_address(
        c: tuple[Any, Connection, list[tuple[str, str]]]) -> None:
    s, conn, hdrs = c
    rec = recommend(s, trusted_cidrs=TRUSTED)
    fwd = forward(s, conn, hdrs, controller_ip=CONTROLLER_IP)
    if not fwd.ok or rec.forgeable:
        return  # rejected connections deliver nothing; forgeable is checked below
    assert not _forged(_resolve(rec, fwd)), (s, conn, hdrs, rec.strategy_code, fwd.headers)


def _attacks(s: Any) -> list[tuple[Connection, list[tuple[str, str]], str]]:
    """Forgeries from every kind of client: every header the controller reads (with and
    without X-Forwarded-For, many entries), with and without a PROXY header of its own."""
    out = []
    for client in CLIENTS:
        forged = "2001:db8:666::6" if ":" in client else "6.6.6.6"
        names = {"X-Forwarded-For", "X-Real-IP", *client_headers(s)}
        full = [(n, ", ".join([forged] * 8) if n.lower() == "x-forwarded-for" else forged)
                for n in sorted(names)]
        no_xff = [(n, v) for n, v in full if n.lower() != "x-forwarded-for"]
        for hdrs in (full, no_xff):
            for pp in ((forged, 4242), None):
                out.append((Connection(peer=client, proxy=pp), hdrs, forged))
    return out


def _envoy_catch_all(skip_append: bool) -> Any:
    from sourceip.ingress.envoy import EnvoySettings

    return EnvoySettings(controller="envoy-gateway", use_remote_address=False,
                         extension="xff", ext_cidrs=("0.0.0.0/0", "::/0"),
                         ext_skip_append=skip_append)


# Found by hypothesis: trustedCIDRs 0.0.0.0/0 + ::/0 without skip_xff_append is not forgeable
# for the app's walk (Envoy trusts every peer, detects, and appends the peer it saw); with
# skip_xff_append it is (nothing Envoy saw is appended).
@example(_envoy_catch_all(False))
@example(_envoy_catch_all(True))
@given(st.sampled_from(CONTROLLERS).flatmap(settings_for))
def test_forgeable_means_an_attack_works(s: Any) -> None:
    rec = recommend(s, trusted_cidrs=TRUSTED)
    outcomes = []
    for conn, hdrs, forged in _attacks(s):
        fwd = forward(s, conn, hdrs, controller_ip=CONTROLLER_IP)
        outcomes.append(fwd.ok and _resolve(rec, fwd) == forged)
    assert any(outcomes) == rec.forgeable, (s, rec)
