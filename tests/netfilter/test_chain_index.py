"""The chain index (netfilter/evaluate.py ``_CompiledChain``): long chains are walked through
an index by (destination, protocol, port) -- rules naming no destination by (None, protocol,
port) -- merged with the rules it cannot key, in chain order. Indexed or not, every packet
takes the same branches."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sourceip.netfilter.evaluate as evaluate
from sourceip.net.addr import parse_ip
from sourceip.net.packet import FiveTuple, Packet
from sourceip.netfilter.evaluate import Evaluator
from sourceip.netfilter.parse_iptables import parse_iptables_save

DSTS = ["10.96.0.1", "10.96.0.2", "192.168.0.2"]
PORTS = [53, 80, 30080]


@st.composite
def _rule(draw: st.DrawFn, bit: int) -> str:
    words = ["-A FORWARD"]
    dst = draw(st.sampled_from([None, *DSTS]))
    if dst is not None:
        words.append(f"{'! ' if draw(st.integers(0, 5)) == 0 else ''}-d {dst}/32")
    proto = draw(st.sampled_from([None, "tcp", "udp"]))
    if proto is not None:
        words.append(f"-p {proto}")
        if draw(st.booleans()):
            neg = "! " if draw(st.integers(0, 5)) == 0 else ""
            words.append(f"-m {proto} {neg}--dport {draw(st.sampled_from(PORTS))}")
    if draw(st.integers(0, 3)) == 0:
        words.append("-m addrtype --dst-type LOCAL")
    target = draw(st.sampled_from(["MARK", "MARK", "MARK", "ACCEPT", "DROP", "RETURN"]))
    words.append(f"-j MARK --set-xmark {bit:#x}/{bit:#x}" if target == "MARK"
                 else f"-j {target}")
    return " ".join(words)


@st.composite
def _chains(draw: st.DrawFn) -> str:
    n = draw(st.integers(16, 40))
    rules = [draw(_rule(1 << (i % 31))) for i in range(n)]
    return "\n".join(["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
                      ":OUTPUT ACCEPT [0:0]", *rules, "COMMIT", ""])


def _branches(text: str, pkt: Packet, threshold: int, monkeypatch: pytest.MonkeyPatch
              ) -> list[tuple[str, int]]:
    monkeypatch.setattr(evaluate, "_INDEX_THRESHOLD", threshold)
    evaluate._SHARED.clear()  # compiled chains are shared by equal chains: build them anew
    rs = parse_iptables_save(text)
    out = Evaluator(rs, ["192.168.0.2"]).run_hook("forward", pkt)
    return sorted((b.disposition, b.packet.mark) for b in out)


@settings(max_examples=200, deadline=None)
@given(_chains(), st.sampled_from(DSTS + ["10.96.0.9"]), st.sampled_from(["tcp", "udp"]),
       st.sampled_from(PORTS + [443]))
def test_indexed_walk_equals_the_plain_walk(text: str, dst: str, proto: str, dport: int
                                            ) -> None:
    with pytest.MonkeyPatch.context() as mp:
        pkt = Packet(tuple=FiveTuple(proto=proto, src=parse_ip("10.244.1.5"), sport=40000,
                                     dst=parse_ip(dst), dport=dport), iif="eth0", oif="cni0")
        plain = _branches(text, pkt, 10**9, mp)
        indexed = _branches(text, pkt, 1, mp)
    evaluate._SHARED.clear()
    assert indexed == plain
