"""parse_nft_json on real ``nft -j list ruleset`` output, its errors, and hostile input.

The samples in data/ were listed by nft 1.0.6 in a throwaway netns:
``kube-proxy-nftables.nft.json`` after loading ``kube-proxy-nftables.nft`` (kube-proxy's own
TestOverallNFTablesRules expectation for svc1, svc2, svc5, svc6, plus a CNI-like inet table with
constructs the IR does not model), and ``iptables-nft-compat.nft.json`` after loading the
iptables sample with ``iptables-nft-restore`` (xt compat expressions).
"""

from __future__ import annotations

import copy
import json
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourceip.errors import RulesetParseError
from sourceip.netfilter.ir import (
    Accept,
    Addr,
    AddrType,
    Counter,
    CtState,
    Dnat,
    Drop,
    Goto,
    Iface,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    NumgenVmap,
    Port,
    Proto,
    Reject,
    Return,
    Rule,
    Ruleset,
    SetElement,
    SetLookup,
    SetUpdate,
    UnknownAction,
    UnknownMatch,
    Vmap,
)
from sourceip.netfilter.parse_nft import parse_nft_json

DATA = Path(__file__).parent / "data"
KP = DATA / "kube-proxy-nftables.nft.json"
COMPAT = DATA / "iptables-nft-compat.nft.json"


@pytest.fixture(scope="module")
def kp() -> Ruleset:
    return parse_nft_json(KP.read_bytes(), source=str(KP))


def test_tables_sets_and_maps(kp: Ruleset) -> None:
    assert kp.backend == "nftables"
    assert [(t.family, t.name) for t in kp.tables] == [("ip", "kube-proxy"),
                                                        ("inet", "cni-example")]
    t = kp.table("kube-proxy")
    assert t is not None
    assert t.comment is None  # N1: nft 1.0.6 does not list table comments in JSON
    svc_ips = t.set("service-ips")
    assert svc_ips is not None and svc_ips.is_map
    assert svc_ips.key_types == ("ipv4_addr", "inet_proto", "inet_service")
    assert svc_ips.comment == "ClusterIP, ExternalIP and LoadBalancer IP traffic"
    assert SetElement((IPv4Address("172.30.0.41"), "tcp", 80),
                      Goto("service-ULMVA6XW-ns1/svc1/tcp/p80")) in svc_ips.elements
    assert len(svc_ips.elements) == 6
    noep = t.set("no-endpoint-services")
    assert noep is not None
    assert SetElement((IPv4Address("172.30.0.46"), "tcp", 80), Goto("reject-chain"),
                      "ns6/svc6:p80") in noep.elements
    assert SetElement((IPv4Address("1.2.3.4"), "tcp", 80), Drop(), "ns2/svc2:p80") in (
        noep.elements)
    aff = t.set("affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80")
    assert aff is not None and not aff.is_map
    assert (aff.flags, aff.timeout) == (("timeout",), 10800)  # N3: "dynamic" not listed
    cips = t.set("cluster-ips")
    assert cips is not None and {e.key for e in cips.elements} == {
        (IPv4Address(f"172.30.0.4{i}"),) for i in (1, 2, 5, 6)}


def test_chains_and_kube_proxy_rules(kp: Ruleset) -> None:
    t = kp.table("kube-proxy")
    assert t is not None
    pre = t.chain("filter-prerouting-pre-dnat")
    assert pre is not None
    assert (pre.hook, pre.type, pre.priority, pre.policy) == ("prerouting", "filter", -110,
                                                              "accept")
    post = t.chain("nat-postrouting")
    assert post is not None and (post.type, post.priority) == ("nat", 100)
    masq = t.chain("masquerading")
    assert masq is not None and masq.rules == (
        Rule((Mark(0, 0x4000),), (Return(),)),
        Rule((), (MarkSet("xor", 0x4000),)),
        Rule((), (Masquerade(random_fully=True),)),
    )
    mfm = t.chain("mark-for-masquerade")
    assert mfm is not None and mfm.rules == (Rule((), (MarkSet("or", 0x4000),)),)
    services = t.chain("services")
    assert services is not None and services.rules == (
        Rule((), (Vmap(("ip daddr", "meta l4proto", "th dport"), "service-ips"),)),
        Rule((SetLookup(("ip daddr",), "nodeport-ips"),),
             (Vmap(("meta l4proto", "th dport"), "service-nodeports"),)),
    )
    svc5 = t.chain("service-HVFWP5L3-ns5/svc5/tcp/p80")
    ep5 = "endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
    aff5 = "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
    assert svc5 is not None and svc5.rules == (
        Rule((Addr("dst", (IPv4Address("172.30.0.45"),)),
              Addr("src", (IPv4Network("10.0.0.0/8"),), negate=True)),
             (Jump("mark-for-masquerade"),)),
        Rule((SetLookup(("ip saddr",), aff5),), (Goto(ep5),)),
        Rule((), (NumgenVmap(1, (Goto(ep5),)),)),
    )
    ep = t.chain(ep5)
    assert ep is not None and ep.rules[1:] == (
        Rule((), (SetUpdate(aff5, ("ip saddr",)),)),
        Rule((Proto("tcp"),), (Dnat(IPv4Address("10.180.0.3"), 80),)),
    )
    ext2 = t.chain("external-42NFTM6N-ns2/svc2/tcp/p80")
    assert ext2 is not None and ext2.rules[1] == Rule(
        (AddrType("src", "LOCAL"),), (Jump("mark-for-masquerade"),), "masquerade local traffic")
    fw = t.chain("firewall-HVFWP5L3-ns5/svc5/tcp/p80")
    # N5: `ip saddr != { 203.0.113.0/25 }` is listed without the braces
    assert fw is not None and fw.rules == (
        Rule((Addr("src", (IPv4Network("203.0.113.0/25"),), negate=True),), (Drop(),)),)
    rej = t.chain("reject-chain")
    assert rej is not None and rej.rules == (Rule((), (Reject(),)),)
    fin = t.chain("filter-input")
    assert fin is not None and fin.rules[0].matches == (CtState(("NEW",)),)


def test_unmodelled_constructs_are_kept(kp: Ruleset) -> None:
    t = kp.table("cni-example", "inet")
    assert t is not None
    fwd, pods = t.chain("forward"), t.chain("pods")
    assert fwd is not None and pods is not None
    assert (fwd.policy, fwd.priority) == ("drop", 0)
    assert fwd.rules[1] == Rule((Iface("in", "cni0"), Iface("out", "cni0", negate=True)),
                                (Counter(), Goto("pods")))
    tcp_flags, mss = fwd.rules[2].matches[0], fwd.rules[2].actions[0]
    assert isinstance(tcp_flags, UnknownMatch) and '"flags"' in tcp_flags.text
    assert isinstance(mss, UnknownAction) and "maxseg" in mss.text
    assert fwd.rules[3].actions == (UnknownAction('{"log":{"prefix":"root: "}}'), Accept())
    assert fwd.rules[3].matches == (
        UnknownMatch('{"match":{"op":"==","left":{"meta":{"key":"skuid"}},"right":0}}'),)
    assert isinstance(fwd.rules[4].actions[0], UnknownAction)  # limit
    assert pods.rules[0].actions[0] == UnknownAction(
        '{"mangle":{"key":{"ct":{"key":"mark"}},"value":1}}')
    assert pods.rules[1].matches == (Addr("src", (IPv6Network("fd00:10:244:1::/64"),)),)
    assert isinstance(pods.rules[2].matches[0], UnknownMatch)  # meta l4proto { tcp, udp }
    assert pods.rules[2].matches[1] == Port("dport", (53,))
    assert pods.rules[3].actions == (Reject("icmpx admin-prohibited"),)
    # every unknown is valid JSON of the original expression
    for c in t.chains:
        for r in c.rules:
            for x in (*r.matches, *r.actions):
                if isinstance(x, UnknownMatch | UnknownAction):
                    assert isinstance(json.loads(x.text), dict)


def test_iptables_nft_compat_tables() -> None:
    r = parse_nft_json(COMPAT.read_text())
    nat = r.table("nat", "ip")
    assert nat is not None
    pre = nat.chain("PREROUTING")
    assert pre is not None and (pre.hook, pre.type, pre.priority) == ("prerouting", "nat", -100)
    # comment matches are invisible in nft's listing: skipped with a note
    assert pre.rules == (Rule((), (Counter(), Jump("KUBE-SERVICES"))),)
    assert any("comment match" in n for n in r.notes)
    svcs = nat.chain("KUBE-SERVICES")
    assert svcs is not None
    # native payload matches are read; `meta l4proto tcp` + `tcp dport` fold into one Proto
    assert svcs.rules[0].matches == (Proto("tcp"), Addr("dst", (IPv4Address("172.30.0.41"),)),
                                     Port("dport", (80,)))
    masq = nat.chain("KUBE-MARK-MASQ")
    assert masq is not None
    assert masq.rules[0].actions == (Counter(), UnknownAction(
        '{"xt":{"type":"target","name":"MARK"}}'))
    stat = nat.chain("KUBE-SVC-XPGD46QRK7WJZT7O")
    assert stat is not None
    assert UnknownMatch('{"xt":{"type":"match","name":"statistic"}}') in stat.rules[2].matches


# ----------------------------------------------------------------------------- small cases


def _doc(*exprs: Any, family: str = "ip") -> dict[str, Any]:
    return {"nftables": [
        {"table": {"family": family, "name": "t"}},
        {"chain": {"family": family, "table": "t", "name": "c"}},
        {"rule": {"family": family, "table": "t", "chain": "c", "expr": list(exprs)}},
    ]}


def _rule(*exprs: Any, family: str = "ip") -> Rule:
    c = parse_nft_json(_doc(*exprs, family=family)).tables[0].chain("c")
    assert c is not None
    return c.rules[0]


def _m(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


MARK = {"meta": {"key": "mark"}}


@pytest.mark.parametrize(("expr", "match"), [
    (_m({"meta": {"key": "mark"}}, {"prefix": {"addr": 0x12340000, "len": 16}}),
     Mark(0x12340000, 0xFFFF0000)),
    (_m({"&": [MARK, 0x4000]}, 0, "!="), Mark(0, 0x4000, negate=True)),
    (_m({"ct": {"key": "state"}}, {"|": [{"|": ["related", "new"]}, "untracked"]}, "!="),
     CtState(("RELATED", "NEW", "UNTRACKED"), negate=True)),
    (_m({"ct": {"key": "status"}}, "dnat", "in"), CtState(("DNAT",))),
    (_m({"fib": {"result": "type", "flags": ["daddr", "oif"]}}, "local"),
     AddrType("dst", "LOCAL", limit_iface_out=True)),
    (_m({"meta": {"key": "oifname"}}, "eth*", "!="), Iface("out", "eth+", negate=True)),
    (_m({"payload": {"protocol": "ip", "field": "protocol"}}, "udp"), Proto("udp")),
    (_m({"payload": {"protocol": "th", "field": "sport"}}, {"set": [1, {"range": [5, 9]}]}),
     Port("sport", (1, (5, 9)))),
    (_m({"payload": {"protocol": "ip", "field": "daddr"}},
        {"set": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}),
     Addr("dst", (IPv4Address("10.0.0.1"), IPv4Network("10.1.0.0/16")), braces=True)),
])
def test_matches(expr: Any, match: Any) -> None:
    assert _rule(expr).matches == (match,)


def test_folded_l4_keys_are_split_back() -> None:
    r = _rule(_m({"concat": [{"payload": {"protocol": "ip", "field": "saddr"}},
                             {"payload": {"protocol": "udp", "field": "sport"}}]}, "@s"),
              {"vmap": {"key": {"payload": {"protocol": "udp", "field": "dport"}},
                        "data": "@m"}})
    assert r.matches == (Proto("udp"), SetLookup(("ip saddr", "th sport"), "s"))
    assert r.actions == (Vmap(("th dport",), "m"),)


@pytest.mark.parametrize(("expr", "action"), [
    ({"mangle": {"key": MARK, "value": 7}}, MarkSet("set", 7)),
    ({"mangle": {"key": MARK, "value": {"|": [{"&": [MARK, 0xFFFFFF00]}, 7]}}},
     MarkSet("set", 7, 0xFF)),
    ({"mangle": {"key": MARK, "value": MARK}}, MarkSet("and", 0xFFFFFFFF)),
    ({"reject": {"type": "icmpv6", "expr": "port-unreachable"}}, Reject()),
    ({"reject": {"type": "tcp reset"}}, Reject("tcp reset")),
    ({"masquerade": {"flags": ["fully-random"]}}, Masquerade(True)),
    ({"masquerade": {"flags": ["persistent"]}},
     UnknownAction('{"masquerade":{"flags":["persistent"]}}')),
    ({"vmap": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
               "data": {"set": [[1, {"goto": {"target": "b"}}], [0, {"jump": {"target": "a"}}]]}}},
     NumgenVmap(2, (Jump("a"), Goto("b")))),
    ({"vmap": {"key": {"numgen": {"mode": "inc", "mod": 1, "offset": 0}},
               "data": {"set": [[0, {"goto": {"target": "b"}}]]}}},
     UnknownAction('{"vmap":{"key":{"numgen":{"mode":"inc","mod":1,"offset":0}},'
                   '"data":{"set":[[0,{"goto":{"target":"b"}}]]}}}')),
    ({"set": {"op": "add", "elem": {"payload": {"protocol": "ip", "field": "saddr"}},
              "set": "@s"}},
     UnknownAction('{"set":{"op":"add","elem":{"payload":{"protocol":"ip","field":"saddr"}},'
                   '"set":"@s"}}')),
])
def test_statements(expr: Any, action: Any) -> None:
    assert _rule(expr).actions == (action,)


def test_match_after_a_statement_stays_in_place_as_unknown_action() -> None:
    r = _rule({"log": None}, _m({"payload": {"protocol": "ip", "field": "saddr"}}, "1.2.3.4"),
              {"drop": None})
    assert r.matches == ()
    assert r.actions == (UnknownAction('{"log":null}'), UnknownAction(
        '{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},'
        '"right":"1.2.3.4"}}'), Drop())


def test_rule_comment_and_family_default_reject() -> None:
    doc = _doc({"reject": {"type": "icmpx", "expr": "port-unreachable"}}, family="inet")
    doc["nftables"][2]["rule"]["comment"] = "hello"
    c = parse_nft_json(doc).tables[0].chain("c")
    assert c is not None and c.rules == (Rule((), (Reject(),), "hello"),)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("data", "field", "words"), [
    ('{"nftables": [', None, "not JSON"),
    ("[]", None, "expected an object"),
    ({"nftables": [1]}, "nftables[0]", "object with one key"),
    ({"nftables": [{"chain": {"family": "ip", "table": "t", "name": "c"}}]},
     "nftables[0].chain", "not listed"),
    ({"nftables": [{"table": {"family": "ip", "name": "t"}},
                   {"rule": {"family": "ip", "table": "t", "chain": "nope", "expr": []}}]},
     "nftables[1].rule", "chain nope"),
    ({"nftables": [{"table": {"family": "ip", "name": "t"}},
                   {"chain": {"family": "ip", "table": "t", "name": "c", "prio": "x"}}]},
     "nftables[1].chain.prio", "integer"),
    ({"nftables": [{"table": {"family": 4, "name": "t"}}]}, "nftables[0].table.family",
     "string"),
    ({"nftables": [{"table": {"family": "ip", "name": "t"}},
                   {"chain": {"family": "ip", "table": "t", "name": "c"}},
                   {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [1]}}]},
     "nftables[2].rule.expr[0]", "one key"),
])
def test_errors_name_the_item(data: Any, field: str | None, words: str) -> None:
    with pytest.raises(RulesetParseError) as err:
        parse_nft_json(data, source="dump.json")
    assert err.value.file == "dump.json"
    assert err.value.field == field
    assert words in err.value.message


def test_not_json_reports_the_line() -> None:
    with pytest.raises(RulesetParseError) as err:
        parse_nft_json('{\n"nftables": [\n}', source="x.json")
    assert err.value.line == 3


# ----------------------------------------------------------------------------- hostile input

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["@s", "ip", "saddr", "tcp", "dport", "10.0.0.1", "mark", "match", "=="]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["nftables", "table", "chain", "rule", "set", "map", "family", "name",
                         "table", "chain", "expr", "match", "op", "left", "right", "payload",
                         "protocol", "field", "meta", "key", "elem", "val", "concat", "prefix",
                         "addr", "len", "vmap", "data", "numgen", "mod", "goto", "target",
                         "mangle", "value", "type", "flags", "timeout", "prio", "hook",
                         "comment", "&", "|", "set", "range", "dnat", "port"]),
        inner, max_size=4),
    max_leaves=30,
)


def _parse_or_error(data: Any) -> None:
    try:
        assert isinstance(parse_nft_json(data), Ruleset)
    except RulesetParseError:
        pass


@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    _parse_or_error({"nftables": value})
    _parse_or_error(json.dumps(value))
    if isinstance(value, dict):
        _parse_or_error(value)


@given(st.binary())
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _parse_or_error(data)


_SAMPLE = json.loads(KP.read_text())


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


_SAMPLE_PATHS = _paths(_SAMPLE)[1:]


@given(st.sampled_from(_SAMPLE_PATHS), json_values)
def test_mutated_real_dump_never_crashes(path: tuple[Any, ...], value: Any) -> None:
    doc = copy.deepcopy(_SAMPLE)
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    _parse_or_error(doc)
