"""``parse_nft_text``: ``nft list ruleset`` text and ``nft -f`` scripts into the same IR as
``parse_nft_json``.

Properties: (1) ``parse_nft_text(render_nft(r)) == r`` for generated rulesets (the command form
our renderer writes); (2) through the real nft in a throwaway netns, the *listing* of a loaded
ruleset parses to the same IR as its JSON listing (``nft -j``), and to ``r`` up to the
normalisations of test_roundtrip; (3) no text makes the parser raise anything but
``RulesetParseError``; (4) every rule carries its line and text.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import nft_rulesets
from test_roundtrip import _builder_rulesets, _without_comments, norm

from sourceip.errors import RulesetParseError
from sourceip.netfilter.ir import (
    Addr,
    CtState,
    Dnat,
    Goto,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    NumgenVmap,
    Port,
    Proto,
    Rule,
    Ruleset,
    SetLookup,
    UnknownAction,
    UnknownMatch,
    Vmap,
)
from sourceip.netfilter.parse_nft import parse_nft_json
from sourceip.netfilter.parse_nft_text import parse_nft_text
from sourceip.netfilter.render_nft import NftRenderError, render_nft


def _sets_then_maps(r: Ruleset) -> Ruleset:
    """render_nft writes every set before every map: the order the parser gets back."""
    return dataclasses.replace(r, tables=tuple(
        dataclasses.replace(t, sets=tuple([s for s in t.sets if not s.is_map]
                                          + [s for s in t.sets if s.is_map]))
        for t in r.tables))


@given(nft_rulesets(real_text=True))
def test_text_round_trip_through_render_nft(r: Ruleset) -> None:
    try:
        text = render_nft(r)
    except NftRenderError:  # an empty rule (the non-loadable strategy makes some)
        assume(False)
        raise
    assert parse_nft_text(text) == _sets_then_maps(r)


@pytest.mark.parametrize("r", _builder_rulesets("nftables"))
def test_kube_proxy_nftables_rules_round_trip_text(r: Ruleset) -> None:
    assert parse_nft_text(render_nft(r)) == _sets_then_maps(r)


LISTING = """\
table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = { 10.96.0.1, 10.96.0.10,
				10.96.0.20 }
	}

	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.10 . udp . 53 : goto service-ERFGF3PZ-kube-system/kube-dns/udp/dns }
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports # handle 12
	}

	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}

	chain service-ERFGF3PZ-kube-system/kube-dns/udp/dns {
		ip daddr 10.96.0.10 udp dport 53 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-A, 1 : goto endpoint-B }
	}

	chain endpoint-A {
		ip saddr 10.244.0.2 jump mark-for-masquerade
		meta l4proto udp dnat to 10.244.0.2:53
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x00004000 == 0x00000000 return
		meta mark 0x00000000/30 return
		ct state established,related counter packets 10 bytes 600 accept
		log prefix "kp: " level warn masquerade fully-random comment "masq"
		meta skuid 0 ip saddr @cluster-ips drop
	}
}
"""


def test_listing_reads_into_the_ir_with_lines() -> None:
    r = parse_nft_text(LISTING, source="node.nft")
    t = r.tables[0]
    assert (t.family, t.name, t.comment) == ("ip", "kube-proxy", "rules for kube-proxy")
    cips = t.set("cluster-ips")
    assert cips is not None and len(cips.elements) == 3
    svc_map = t.set("service-ips")
    assert svc_map is not None and svc_map.elements[0].value == Goto(
        "service-ERFGF3PZ-kube-system/kube-dns/udp/dns")
    pre = t.chain("nat-prerouting")
    assert pre is not None and (pre.hook, pre.type, pre.priority, pre.policy) == (
        "prerouting", "nat", -100, "accept")
    services = t.chain("services")
    assert services is not None
    assert services.rules[0].actions == (
        Vmap(("ip daddr", "meta l4proto", "th dport"), "service-ips"),)
    loc = services.rules[1].loc
    assert loc is not None and loc.where() == "node.nft:22"
    assert loc.text == ("fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports "
                        "# handle 12")
    mark = t.chain("mark-for-masquerade")
    assert mark is not None and mark.rules[0].actions == (MarkSet("or", 0x4000),)
    svc = t.chain("service-ERFGF3PZ-kube-system/kube-dns/udp/dns")
    assert svc is not None
    assert svc.rules[0].matches[:3] == (
        Addr("dst", (Addr("dst", ()).nets or (__import__("ipaddress").ip_address(
            "10.96.0.10"),))), Proto("udp"), Port("dport", (53,)))
    assert svc.rules[1].actions == (NumgenVmap(2, (Goto("endpoint-A"), Goto("endpoint-B"))),)
    ep = t.chain("endpoint-A")
    assert ep is not None and ep.rules[1].actions[-1] == Dnat(
        __import__("ipaddress").ip_address("10.244.0.2"), 53)
    post = t.chain("nat-postrouting")
    assert post is not None
    assert post.rules[0].matches == (Mark(0, 0x4000),)
    assert post.rules[1].matches == (Mark(0, 0xFFFFFFFC),)  # nft's listing of a mark mask
    assert post.rules[2].matches == (CtState(("ESTABLISHED", "RELATED")),)
    # unknown statements are kept as written, in place
    assert post.rules[3].actions == (UnknownAction('log prefix "kp: " level warn'),
                                     Masquerade(True))
    assert post.rules[3].comment == "masq"
    assert post.rules[4].matches[0] == UnknownMatch("meta skuid 0")
    assert isinstance(post.rules[4].matches[1], SetLookup)


def test_text_and_json_of_one_listing_agree_on_a_kube_proxy_ruleset() -> None:
    """The JSON twin of LISTING's service chain, written by hand from nft -j output."""
    text = parse_nft_text(LISTING)
    chain = text.tables[0].chain("services")
    assert chain is not None
    assert chain.rules[1].actions == (Jump("nodeports"),)


@pytest.mark.parametrize("text, line, words", [
    ("table ip t {\n\tchain c {\n\t\tjump x\n", 2, "truncated"),
    ("table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.2.3.4,\n", 4,
     "truncated"),
    ("hello world\n", 1, "unexpected 'hello'"),
    ('table ip t {\n\tcomment "open\n}\n', 2, "unterminated quote"),
    ("add rule ip t c accept\n", 1, "does not exist"),
    ("table ip t {\n}\ntable ip t {\n}\n", 3, "listed twice"),
])
def test_bad_text_is_an_error_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(RulesetParseError) as exc:
        parse_nft_text(text, source="bad.nft")
    assert exc.value.file == "bad.nft" and exc.value.line == line
    assert words in str(exc.value)


_TOKENS = st.sampled_from([
    "table", "ip", "inet", "t", "chain", "c", "set", "map", "{", "}", ";", ",", "\n", "type",
    "hook", "input", "priority", "0", "policy", "accept", "jump", "ip", "saddr", "daddr",
    "10.0.0.1", "10.0.0.0/8", "@s", "vmap", ".", ":", "elements", "=", "add", "rule",
    "element", "meta", "mark", "set", "or", "0x10", '"x"', "comment", "ct", "state", "new",
    "numgen", "random", "mod", "2", "goto", "dnat", "to", "1.2.3.4:80", "counter", "!=",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=60).map(" ".join))
def test_no_token_soup_raises_anything_but_a_parse_error(text: str) -> None:
    try:
        parse_nft_text(text)
    except RulesetParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_no_text_raises_anything_but_a_parse_error(text: str) -> None:
    try:
        parse_nft_text(text)
    except RulesetParseError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, LISTING.count("\n")))
def test_a_truncated_listing_is_an_error_or_a_shorter_ruleset(cut: int) -> None:
    text = "".join(LISTING.splitlines(keepends=True)[:cut])
    try:
        parse_nft_text(text)
    except RulesetParseError as exc:
        assert exc.line is not None


# ----------------------------------------------------------------------------- real nft


def _run(args: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="module")
def netns(scratch_netns: str) -> str:
    """The shared throwaway namespace (tests/conftest.py), when nft is installed."""
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    return scratch_netns


def _listed(ns: str, r: Ruleset) -> tuple[str, str]:
    exe = ["ip", "netns", "exec", ns, "nft"]
    _run([*exe, "flush", "ruleset"])
    try:
        _run([*exe, "-f", "-"], render_nft(r))
        return _run([*exe, "list", "ruleset"]), _run([*exe, "-j", "list", "ruleset"])
    finally:
        _run([*exe, "flush", "ruleset"])


@pytest.mark.tools
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(r=nft_rulesets(loadable=True, real_text=True))
def test_real_nft_listing_reads_as_its_json_and_as_what_was_loaded(
        netns: str, r: Ruleset) -> None:
    text, js = _listed(netns, r)
    from_text = norm(_without_comments(parse_nft_text(text, source="listing")))
    _same(from_text, norm(_without_comments(parse_nft_json(js))), text)
    _same(from_text, norm(_without_comments(_merged_ports(r))), text)


def _merged_ports(r: Ruleset) -> Ruleset:
    """N11: the kernel merges adjacent intervals of an anonymous set (``{ 1, 2-3 }`` is
    listed as ``{ 1-3 }``, in text and JSON alike)."""
    def merge(ports: tuple[int | tuple[int, int], ...]) -> tuple[int | tuple[int, int], ...]:
        spans = sorted((p, p) if isinstance(p, int) else p for p in ports)
        out: list[list[int]] = []
        for lo, hi in spans:
            if out and lo <= out[-1][1] + 1:
                out[-1][1] = max(out[-1][1], hi)
            else:
                out.append([lo, hi])
        return tuple(lo if lo == hi else (lo, hi) for lo, hi in out)

    def rule(ru: Rule) -> Rule:
        return dataclasses.replace(ru, matches=tuple(
            dataclasses.replace(m, ports=merge(m.ports)) if isinstance(m, Port) else m
            for m in ru.matches))

    return dataclasses.replace(r, tables=tuple(dataclasses.replace(t, chains=tuple(
        dataclasses.replace(c, rules=tuple(rule(ru) for ru in c.rules)) for c in t.chains))
        for t in r.tables))


def _same(a: dict[object, object], b: dict[object, object], text: str) -> None:
    """Equal normalised rulesets, or the first differing chain/set with the listing."""
    assert a.keys() == b.keys(), text
    for k, (chains, sets) in a.items():
        ochains, osets = b[k]  # type: ignore[misc]
        for name, c in chains.items():
            assert c == ochains.get(name), f"chain {name}\n{text}"
        assert sets == osets, text


@pytest.mark.tools
@pytest.mark.parametrize("r", _builder_rulesets("nftables"))
def test_real_nft_lists_kube_proxy_rules_as_text(netns: str, r: Ruleset) -> None:
    text, js = _listed(netns, r)
    from_text = parse_nft_text(text, source="listing")
    assert norm(from_text) == norm(_sets_then_maps(r))  # the listing keeps comments (N1)
    assert norm(_without_comments(from_text)) == norm(_without_comments(parse_nft_json(js)))
