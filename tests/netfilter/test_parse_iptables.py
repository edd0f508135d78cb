"""parse_iptables_save: a real node's dump, both option orders, quoting, errors, hostile input,
speed."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourceip.errors import RulesetParseError
from sourceip.netfilter.ir import (
    Accept,
    Addr,
    AddrType,
    CtState,
    Dnat,
    Drop,
    Goto,
    Iface,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    Nfacct,
    Port,
    Proto,
    Recent,
    Reject,
    Return,
    Rule,
    Ruleset,
    Snat,
    Statistic,
    UnknownAction,
    UnknownMatch,
)
from sourceip.netfilter.parse_iptables import parse_iptables_save

DATA = Path(__file__).parent / "data"
NODE = DATA / "node-kube-proxy-flannel-calico.iptables-save"


def one_rule(rule_line: str, *, chains: str = "", table: str = "nat", family: int = 4) -> Rule:
    text = f"*{table}\n:X - [0:0]\n{chains}{rule_line}\nCOMMIT\n"
    r = parse_iptables_save(text, family=family)
    chain = r.tables[0].chain("X")
    assert chain is not None
    (rule,) = chain.rules
    return rule


# ----------------------------------------------------------------------------- the real dump


@pytest.fixture(scope="module")
def node() -> Ruleset:
    return parse_iptables_save(NODE.read_text(), source=str(NODE))


def test_node_dump_tables_chains_and_builtins(node: Ruleset) -> None:
    assert [t.name for t in node.tables] == ["nat", "filter", "mangle"]
    assert {t.family for t in node.tables} == {"ip"}
    nat, filt = node.table("nat"), node.table("filter")
    assert nat is not None and filt is not None
    pre = nat.chain("PREROUTING")
    assert pre is not None and (pre.hook, pre.policy) == ("prerouting", "ACCEPT")
    fwd = filt.chain("FORWARD")
    assert fwd is not None and (fwd.hook, fwd.policy) == ("forward", "DROP")
    svc = nat.chain("KUBE-SERVICES")
    assert svc is not None and (svc.hook, svc.policy) == (None, None)
    assert sum(len(c.rules) for c in nat.chains) == 36  # every -A line of the file
    assert sum(len(c.rules) for c in filt.chains) == 35


def test_node_dump_kube_proxy_rules(node: Ruleset) -> None:
    nat = node.table("nat")
    assert nat is not None
    services = nat.chain("KUBE-SERVICES")
    assert services is not None
    # iptables-save's canonical order: -d X/32 -p tcp -m comment -m tcp --dport
    assert services.rules[0] == Rule(
        (Addr("dst", (IPv4Address("172.30.0.41"),)), Proto("tcp"), Port("dport", (80,))),
        (Jump("KUBE-SVC-XPGD46QRK7WJZT7O"),),
        "ns1/svc1:p80 cluster IP",
    )
    assert services.rules[-1].matches == (AddrType("dst", "LOCAL"),)
    masq = nat.chain("KUBE-MARK-MASQ")
    assert masq is not None and masq.rules[0].actions == (MarkSet("or", 0x4000),)
    post = nat.chain("KUBE-POSTROUTING")
    assert post is not None
    assert [r.matches for r in post.rules][0] == (Mark(0x4000, 0x4000, negate=True),)
    assert [r.actions for r in post.rules] == [
        (Return(),), (MarkSet("xor", 0x4000),), (Masquerade(random_fully=True),)]
    svc1 = nat.chain("KUBE-SVC-XPGD46QRK7WJZT7O")
    assert svc1 is not None
    assert svc1.rules[0].matches == (
        Addr("src", (IPv4Network("10.0.0.0/8"),), negate=True),
        Addr("dst", (IPv4Address("172.30.0.41"),)), Proto("tcp"), Port("dport", (80,)))
    assert svc1.rules[1].matches == (Recent("KUBE-SEP-SXIVWICOYRO3J4NJ", "rcheck", 10800, True),)
    assert svc1.rules[2].matches == (Statistic("0.33333333349"),)
    assert svc1.rules[3].matches[0].exact == pytest.approx(0.5)  # type: ignore[union-attr]
    sep = nat.chain("KUBE-SEP-SXIVWICOYRO3J4NJ")
    assert sep is not None
    assert sep.rules[1] == Rule(
        (Proto("tcp"), Recent("KUBE-SEP-SXIVWICOYRO3J4NJ", "set")),
        (Dnat(IPv4Address("10.180.0.1"), 80),), "ns1/svc1:p80")
    nodeports = nat.chain("KUBE-NODEPORTS")
    assert nodeports is not None
    assert Nfacct("localhost_nps_accepted_pkts") in nodeports.rules[0].matches
    filt = node.table("filter")
    assert filt is not None
    fw = filt.chain("KUBE-FIREWALL")
    assert fw is not None and fw.rules[0].matches[-1] == CtState(
        ("RELATED", "ESTABLISHED", "DNAT"), negate=True)
    ksvc = filt.chain("KUBE-SERVICES")
    assert ksvc is not None and ksvc.rules[0].actions == (Reject(),)  # default reject-with


def test_node_dump_cni_rules_and_unknowns_kept(node: Ruleset) -> None:
    filt, nat = node.table("filter"), node.table("nat")
    assert filt is not None and nat is not None
    cali = filt.chain("cali-FORWARD")
    assert cali is not None
    # --set-xmark 0x0/0xe0000 clears the bits: an AND with the complement
    assert cali.rules[0].actions == (MarkSet("and", ~0xE0000 & 0xFFFFFFFF),)
    assert cali.rules[2].matches == (Iface("in", "cali+"),)
    assert cali.rules[3].matches == (UnknownMatch("-m physdev --physdev-is-bridged"),)
    assert cali.rules[4] == Rule(
        (UnknownMatch("-m limit --limit 5/min --limit-burst 3"),),
        (UnknownAction('-j LOG --log-prefix "calico-drop: "'),), "cali:MH9kMp5aNICL-Olv")
    outgoing = nat.chain("cali-nat-outgoing")
    assert outgoing is not None
    assert outgoing.rules[0].matches == (
        UnknownMatch("-m set --match-set cali40masq-ipam-pools src"),
        UnknownMatch("-m set ! --match-set cali40all-ipam-pools dst"))
    assert outgoing.rules[0].actions == (Masquerade(random_fully=True),)
    cali_in = filt.chain("cali-INPUT")
    assert cali_in is not None
    assert cali_in.rules[0].matches == (Proto("ipencap"),)
    assert cali_in.rules[1].matches == (Proto("udp"), Port("dport", (4789,)),
                                        AddrType("dst", "LOCAL"))
    flannel = nat.chain("FLANNEL-POSTRTG")
    assert flannel is not None
    assert flannel.rules[2].matches == (
        Addr("src", (IPv4Network("10.244.0.0/16"),)),
        Addr("dst", (IPv4Network("224.0.0.0/4"),), negate=True))


# ----------------------------------------------------------------------------- forms


def test_kube_proxy_order_and_canonical_order_agree() -> None:
    kp = one_rule('-A X -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
                  "-d 172.30.0.41 --dport 80 -j ACCEPT")
    canon = one_rule('-A X -d 172.30.0.41/32 -p tcp -m comment --comment '
                     '"ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j ACCEPT')
    assert kp.matches == (Proto("tcp"), Addr("dst", (IPv4Address("172.30.0.41"),)),
                          Port("dport", (80,)))
    assert set(kp.matches) == set(canon.matches)
    assert (kp.actions, kp.comment) == (canon.actions, canon.comment)


@pytest.mark.parametrize("line", ["-A X ! -s 10.0.0.0/8 -j ACCEPT",
                                  "-A X -s ! 10.0.0.0/8 -j ACCEPT",
                                  "-A X --source ! 10.0.0.0/8 -j ACCEPT"])
def test_negation_before_or_after_the_option(line: str) -> None:
    assert one_rule(line).matches == (Addr("src", (IPv4Network("10.0.0.0/8"),), negate=True),)


def test_quoting() -> None:
    r = one_rule(r'-A X -m comment --comment "say \"hi\" \\ it\'s" -j ACCEPT')
    assert r.comment == 'say "hi" \\ it\'s'
    assert one_rule("-A X -m comment --comment ns1/svc1:p80 -j ACCEPT").comment == "ns1/svc1:p80"
    # single quotes are ordinary characters for iptables-restore
    assert one_rule("-A X -m comment --comment it's -j ACCEPT").comment == "it's"


@pytest.mark.parametrize(("target", "action"), [
    ("-j MARK --set-xmark 0x4000/0x4000", MarkSet("or", 0x4000)),
    ("-j MARK --set-xmark 0x4000/0x0", MarkSet("xor", 0x4000)),
    ("-j MARK --set-xmark 0x0/0xe0000", MarkSet("and", 0xFFF1FFFF)),
    ("-j MARK --set-xmark 0x10/0xffffffff", MarkSet("set", 0x10)),
    ("-j MARK --set-xmark 0x10/0xff", MarkSet("set", 0x10, 0xFF)),
    ("-j MARK --set-mark 0x10", MarkSet("set", 0x10)),
    ("-j MARK --or-mark 0x4000", MarkSet("or", 0x4000)),
    ("-j MARK --xor-mark 0x4000", MarkSet("xor", 0x4000)),
    ("-j MARK --and-mark 0xff", MarkSet("and", 0xFF)),
    ("-j MARK --set-xmark 0x3/0x1", UnknownAction("-j MARK --set-xmark 0x3/0x1")),
    ("-j REJECT --reject-with icmp-host-prohibited", Reject("icmp-host-prohibited")),
    ("-j REJECT --reject-with icmp-port-unreachable", Reject()),
    ("-j DNAT --to-destination 10.180.0.1", Dnat(IPv4Address("10.180.0.1"))),
    ("-j DNAT --to-destination 10.1.1.1-10.1.1.9",
     UnknownAction("-j DNAT --to-destination 10.1.1.1-10.1.1.9")),
    ("-j SNAT --to-source 1.2.3.4:99 --random-fully", Snat(IPv4Address("1.2.3.4"), 99, True)),
    ("-j MASQUERADE", Masquerade()),
    ("-j MASQUERADE --to-ports 1024-2048", Masquerade(False, "1024-2048")),
    ("-j MASQUERADE --to-ports 1024-2048 --random",
     UnknownAction("-j MASQUERADE --to-ports 1024-2048 --random")),
    ("-j CONNMARK --save-mark", UnknownAction("-j CONNMARK --save-mark")),
    ("-j NOTRACK", UnknownAction("-j NOTRACK")),
    ("-j Y", Jump("Y")),
    ("-g Y", Goto("Y")),
    ("-j DROP", Drop()),
    ("-j ACCEPT", Accept()),
])
def test_targets(target: str, action: object) -> None:
    assert one_rule(f"-A X {target}", chains=":Y - [0:0]\n").actions == (action,)


def test_rule_without_target_has_no_action() -> None:
    assert one_rule("-A X -s 10.0.0.1").actions == ()


@pytest.mark.parametrize(("opts", "match"), [
    ("-p tcp -m multiport --dports 80,443,1000:2000",
     Port("dport", (80, 443, (1000, 2000)))),
    ("-p udp -m udp ! --sport 53", Port("sport", (53,), negate=True)),
    ("-m conntrack --ctstate NEW", CtState(("NEW",))),
    ("-m state --state ESTABLISHED,RELATED", CtState(("ESTABLISHED", "RELATED"))),
    ("-m conntrack --ctstatus ASSURED", UnknownMatch("-m conntrack --ctstatus ASSURED")),
    ("-m addrtype --dst-type LOCAL --limit-iface-out", AddrType("dst", "LOCAL",
                                                                limit_iface_out=True)),
    ("-m addrtype ! --src-type LOCAL", AddrType("src", "LOCAL", negate=True)),
    ("-m mark --mark 0x1", Mark(1)),
    ("-m statistic --mode nth --every 2 --packet 0",
     UnknownMatch("-m statistic --mode nth --every 2 --packet 0")),
    ("-m recent --name A --update --seconds 5 --rdest --mask 255.255.255.0",
     Recent("A", "update", 5, False, "255.255.255.0", "dest")),
    ("-i eth0", Iface("in", "eth0")),
    ("! -o cni+", Iface("out", "cni+", negate=True)),
    ("-m set --match-set KUBE-X dst,dst", UnknownMatch("-m set --match-set KUBE-X dst,dst")),
    ("-f", UnknownMatch("-f")),
])
def test_matches(opts: str, match: object) -> None:
    assert match in one_rule(f"-A X {opts} -j ACCEPT").matches


def test_ipv6() -> None:
    r = one_rule("-A X -s fd00::/64 -d fd00::1/128 -p tcp -m tcp -j DNAT "
                 "--to-destination [fd00::2]:8080", family=6)
    assert r.matches[1] == Addr("dst", (IPv6Address("fd00::1"),))
    assert r.actions == (Dnat(IPv6Address("fd00::2"), 8080),)
    rs = parse_iptables_save("*nat\n:X - [0:0]\nCOMMIT\n", family=6)
    assert rs.tables[0].family == "ip6"
    reject = one_rule("-A X -j REJECT --reject-with icmp6-port-unreachable", table="filter",
                      family=6)
    assert reject.actions == (Reject(),)


def test_counters_insert_and_builtins_without_declaration() -> None:
    text = ("*filter\n:INPUT ACCEPT [5:300]\n:X - [0:0]\n[1:60] -A X -j ACCEPT\n"
            "-I X -j DROP\n-I X 2 -j RETURN\n-A OUTPUT -j X\nCOMMIT\n")
    t = parse_iptables_save(text).tables[0]
    x = t.chain("X")
    assert x is not None and [r.actions for r in x.rules] == [(Drop(),), (Return(),), (Accept(),)]
    out = t.chain("OUTPUT")
    assert out is not None and (out.hook, out.policy) == ("output", None)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("text", "line", "words"), [
    ('*nat\n:X - [0:0]\n-A X -m comment --comment "oops -j ACCEPT\nCOMMIT\n', 3, "quote"),
    ("-A X -j ACCEPT\n", 1, "before any"),
    ("*nat\n:X - [0:0]\n-A Y -j ACCEPT\nCOMMIT\n", 3, "undeclared chain Y"),
    ("*nat\n:X - [0:0]\n-A X -j ACCEPT\n", 1, "no COMMIT"),
    ("*nat\n:X - [0:0]\n-A X -s\nCOMMIT\n", 3, "needs an argument"),
    ("*nat\n:X - [0:0]\n-A X --dport 80 -j ACCEPT\nCOMMIT\n", 3, "unknown option"),
    ("*nat\n:X - [0:0]\n:X - [0:0]\nCOMMIT\n", 3, "declared twice"),
    ("*nat\n*filter\nCOMMIT\n", 2, "before COMMIT"),
    ("*nat\nCOMMIT\n*nat\nCOMMIT\n", 3, "appears twice"),
    ("COMMIT\n", 1, "outside a table"),
    ("*nat\n:X - [0:0]\n-A X -j A -j B\nCOMMIT\n", 3, "more than one target"),
    ("*nat\n:X - [0:0]\n-A X bogus\nCOMMIT\n", 3, "unexpected argument"),
])
def test_syntax_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(RulesetParseError) as err:
        parse_iptables_save(text, source="node.save")
    assert err.value.file == "node.save"
    assert err.value.line == line
    assert words in err.value.message
    assert str(err.value).startswith(f"node.save:{line}: ")


# ----------------------------------------------------------------------------- hostile input

_VOCAB = ["*nat", "*filter", "COMMIT", ":X", ":INPUT", "ACCEPT", "-", "[0:0]", "-A", "-I", "-N",
          "X", "INPUT", "-s", "-d", "!", "-p", "tcp", "-m", "comment", "--comment", '"a b"',
          '"', "\\", "-j", "-g", "DNAT", "--to-destination", "[::1]:80", "1.2.3.4:99999",
          "10.0.0.0/33", "--dport", "80:70", "mark", "--mark", "0xzz", "MARK", "--set-xmark",
          "recent", "--name", "--seconds", "x", "statistic", "--probability", "nan", "multiport",
          "--dports", ",", "addrtype", "--dst-type", "-c", "--random-fully", "[", "]", "#"]


@given(st.text())
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        assert isinstance(parse_iptables_save(text), Ruleset)
    except RulesetParseError:
        pass


@given(st.lists(st.lists(st.sampled_from(_VOCAB), max_size=12).map(" ".join), max_size=12))
def test_token_soup_never_crashes(lines: list[str]) -> None:
    text = "\n".join(["*nat", ":X - [0:0]", *lines, "COMMIT"])
    for family in (4, 6):
        try:
            assert isinstance(parse_iptables_save(text, family=family), Ruleset)
        except RulesetParseError as exc:
            assert exc.line is not None


@given(st.binary())
def test_arbitrary_bytes_decoded_never_crash(data: bytes) -> None:
    try:
        parse_iptables_save(data.decode("utf-8", "surrogateescape"))
    except RulesetParseError:
        pass


# ----------------------------------------------------------------------------- speed


def synthetic_dump(services: int) -> str:
    """A kube-proxy-shaped nat table: per service one KUBE-SERVICES rule, a KUBE-SVC chain
    (masquerade rule, 3 statistic rules) and 3 KUBE-SEP chains (2 rules each) = 11 lines."""
    decl: list[str] = ["*nat", ":PREROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]",
                       ":KUBE-MARK-MASQ - [0:0]"]
    rules: list[str] = ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"]
    for i in range(services):
        svc = f"KUBE-SVC-{i:016X}"
        ip = f"172.{16 + i // 65536 % 16}.{i // 256 % 256}.{i % 256}"
        name = f"ns{i % 50}/svc{i}:p80"
        decl.append(f":{svc} - [0:0]")
        rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" -m tcp -p tcp '
                     f"-d {ip} --dport 80 -j {svc}")
        rules.append(f'-A {svc} -m comment --comment "{name} cluster IP" -m tcp -p tcp -d {ip} '
                     f"--dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ")
        for e in range(3):
            sep = f"KUBE-SEP-{i:012X}{e:04X}"
            ep = f"10.{e}.{i // 256 % 256}.{i % 256}"
            decl.append(f":{sep} - [0:0]")
            prob = ["-m statistic --mode random --probability 0.3333333333 ",
                    "-m statistic --mode random --probability 0.5000000000 ", ""][e]
            rules.append(f'-A {svc} -m comment --comment "{name} -> {ep}:80" {prob}-j {sep}')
            rules.append(f"-A {sep} -m comment --comment {name} -s {ep} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep} -m comment --comment {name} -m tcp -p tcp -j DNAT "
                         f"--to-destination {ep}:80")
    return "\n".join([*decl, *rules, "COMMIT", ""])


@pytest.mark.slow
def test_parses_a_500k_line_dump() -> None:
    """Every chain of a 500k-line dump is read (its speed is measured in bench/, not here)."""
    text = synthetic_dump(33_334)  # 15 lines per service (4 declarations, 11 rules)
    lines = text.count("\n")
    assert lines >= 500_000
    r = parse_iptables_save(text)
    nat = r.tables[0]
    assert len(nat.chains) == 3 + 4 * 33_334


@given(st.text(alphabet=st.sampled_from(list('ab "\\\t!-')), max_size=30))
def test_fast_tokenizer_agrees_with_the_character_loop(line: str) -> None:
    from sourceip.netfilter.parse_iptables import _LineError, _tokenize, _tokenize_slow

    try:
        slow: list[str] | None = _tokenize_slow(line)
    except _LineError:
        slow = None
    try:
        fast: list[str] | None = _tokenize(line)
    except _LineError:
        fast = None
    assert fast == slow
