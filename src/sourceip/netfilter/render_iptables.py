"""Render an iptables ``Ruleset`` as ``iptables-restore`` input, in kube-proxy's text form.

Layout per table: ``*table``, every chain declaration (``:NAME POLICY [0:0]``, ``-`` for user
chains), then each chain's rules in order (``-A CHAIN ...``), then ``COMMIT``. Tables come in the
ruleset's order (kube-proxy: filter, then nat).

A rule is written as kube-proxy writes it: the comment first (``-m comment --comment C``), then
the matches in IR order, then the target. Text conventions (the iptables-save parser relies on
them):

* comments are double-quoted when they contain whitespace (kube-proxy's rule), or when they are
  empty or contain a quote or backslash; inside quotes ``"`` and ``\\`` are backslash-escaped;
* ``Proto`` is ``-m tcp -p tcp``; ports ``--dport 80`` (ranges ``80:90``; several ports use
  ``-m multiport --dports``);
* host addresses (``IPv4Address``/``IPv6Address``) are written bare, networks as ``a/len``;
* marks in hex without padding (``0x4000``), ``value/mask`` unless the mask is all ones;
* probabilities exactly as stored in ``Statistic.probability``.

IR values that iptables cannot express (nft sets, vmaps, several actions in one rule) raise
``ValueError`` naming the chain.
"""

from __future__ import annotations

import gc
import ipaddress
import re
from collections.abc import Callable
from socket import inet_ntoa
from typing import Any

from sourceip.net.addr import host_port, ip_text
from sourceip.netfilter.ir import (
    Accept,
    Addr,
    AddrRange,
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

__all__ = ["quote_comment", "render_iptables", "render_iptables_rule"]

_UNCACHED = frozenset({Addr, Dnat})
_NEEDS_QUOTES = re.compile(r'[\s"\\\']')


def quote_comment(text: str) -> str:
    """The comment as an iptables-restore token: bare when it has no whitespace or quote
    characters (``ns1/svc1:p80``), else double-quoted with ``"`` and ``\\`` escaped."""
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _neg(negate: bool) -> str:
    return "! " if negate else ""


_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network)


def _addr_text(a: Any) -> str:
    if type(a) is ipaddress.IPv4Address:
        return inet_ntoa(int(a).to_bytes(4, "big"))  # str() without ipaddress' slow path
    if isinstance(a, _NETWORKS):
        if a.prefixlen == a.max_prefixlen:
            return ip_text(a.network_address)
        return f"{ip_text(a.network_address)}/{a.prefixlen}"
    if type(a) is ipaddress.IPv6Address:
        return ip_text(a)
    return str(a)


def _hostport(addr: Any, port: int | None) -> str:
    return ip_text(addr) if port is None else host_port(addr, port)


def _ports(ports: tuple[int | tuple[int, int], ...]) -> str:
    return ",".join(f"{p[0]}:{p[1]}" if isinstance(p, tuple) else str(p) for p in ports)


class _Renderer:
    """Renders matches and targets, caching the text of values that rules share."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}
        self._ips: dict[int, str] = {}
        self._comments: dict[str, str] = {}
        self._groups: dict[int, str] = {}
        self._match: dict[type, Callable[[Any], str]] = {
            Proto: self._proto,
            Addr: self._addr,
            AddrRange: self._addrrange,
            Port: self._port,
            Iface: self._iface,
            AddrType: self._addrtype,
            Mark: self._mark,
            CtState: self._ctstate,
            Statistic: self._statistic,
            Recent: self._recent,
            Nfacct: self._nfacct,
            UnknownMatch: self._unknown_match,
        }
        self._action: dict[type, Callable[[Any], str]] = {
            Jump: lambda a: f"-j {a.chain}",
            Goto: lambda a: f"-g {a.chain}",
            Return: lambda a: "-j RETURN",
            Accept: lambda a: "-j ACCEPT",
            Drop: lambda a: "-j DROP",
            Reject: lambda a: f"-j REJECT --reject-with {a.with_}" if a.with_ else "-j REJECT",
            Dnat: self._dnat,
            Snat: lambda a: (
                f"-j SNAT --to-source {_hostport(a.addr, a.port)}"
                + (" --random-fully" if a.random_fully else "")
            ),
            Masquerade: lambda a: "-j MASQUERADE" + (f" --to-ports {a.ports}" if a.ports else "")
            + (" --random-fully" if a.random_fully else ""),
            MarkSet: self._markset,
            UnknownAction: lambda a: a.text,
        }

    # ---- matches ----
    def _proto(self, m: Proto) -> str:
        if m.negate:
            return f"! -p {m.proto}"
        if m.proto in ("tcp", "udp", "sctp"):
            return f"-m {m.proto} -p {m.proto}"
        return f"-p {m.proto}"

    def _ip(self, a: Any) -> str:
        text = self._ips.get(id(a))
        if text is None:
            text = self._ips[id(a)] = _addr_text(a)
        return text

    def _addr(self, m: Addr) -> str:
        if len(m.nets) != 1:
            raise ValueError(f"iptables matches one address per -s/-d, got {len(m.nets)}")
        flag = "-s" if m.field == "src" else "-d"
        text = self._ip(m.nets[0])
        return f"! {flag} {text}" if m.negate else f"{flag} {text}"

    def _dnat(self, a: Dnat) -> str:
        text = self._ip(a.addr)
        if a.port is None:
            return "-j DNAT --to-destination " + text
        if a.addr.version == 6:
            return f"-j DNAT --to-destination [{text}]:{a.port}"
        return f"-j DNAT --to-destination {text}:{a.port}"

    def _port(self, m: Port) -> str:
        flag = m.field
        if len(m.ports) == 1:
            return f"{_neg(m.negate)}--{flag} {_ports(m.ports)}"
        return f"-m multiport {_neg(m.negate)}--{flag}s {_ports(m.ports)}"

    def _iface(self, m: Iface) -> str:
        return f"{_neg(m.negate)}{'-i' if m.direction == 'in' else '-o'} {m.name}"

    def _addrtype(self, m: AddrType) -> str:
        flag = "--src-type" if m.field == "src" else "--dst-type"
        text = f"-m addrtype {_neg(m.negate)}{flag} {m.type}"
        return text + " --limit-iface-out" if m.limit_iface_out else text

    def _mark(self, m: Mark) -> str:
        value = f"{m.value:#x}" if m.mask == 0xFFFFFFFF else f"{m.value:#x}/{m.mask:#x}"
        return f"-m mark {_neg(m.negate)}--mark {value}"

    def _ctstate(self, m: CtState) -> str:
        return f"-m conntrack {_neg(m.negate)}--ctstate {','.join(m.states)}"

    def _statistic(self, m: Statistic) -> str:
        return f"-m statistic --mode random --probability {m.probability}"

    def _recent(self, m: Recent) -> str:
        parts = [f"-m recent --name {m.name} --{m.action}"]
        if m.seconds is not None:
            parts.append(f"--seconds {m.seconds}")
        if m.reap:
            parts.append("--reap")
        if m.mask:
            parts.append(f"--mask {m.mask}")
        if m.side == "dest":
            parts.append("--rdest")
        return " ".join(parts)

    def _addrrange(self, m: AddrRange) -> str:
        neg = "! " if m.negate else ""
        return f"-m iprange {neg}--{m.field}-range {m.lo}-{m.hi}"

    def _nfacct(self, m: Nfacct) -> str:
        return f"-m nfacct --nfacct-name {m.name}"

    def _unknown_match(self, m: UnknownMatch) -> str:
        return m.text

    # ---- targets ----
    def _markset(self, a: MarkSet) -> str:
        if a.op == "set":
            return f"-j MARK --set-xmark {a.value:#x}/{a.mask:#x}"
        if a.mask != 0xFFFFFFFF:
            raise ValueError(f"{a!r}: a mask only applies to op 'set'")
        return f"-j MARK --{a.op}-mark {a.value:#x}"

    # ---- rules ----
    def _fresh(self, chain: str, table: dict[type, Callable[[Any], str]], v: object) -> str:
        try:
            fn = table[type(v)]
        except KeyError:
            raise ValueError(
                f"chain {chain}: iptables has no form for {type(v).__name__}"
            ) from None
        text = fn(v)
        # Addr and Dnat objects are mostly unique per endpoint: caching them would only grow the
        # cache (their address text is cached by the address object instead).
        if type(v) not in _UNCACHED:
            self._cache[id(v)] = text
        return text

    def rule(self, chain: str, rule: Rule) -> str:
        """One ``-A`` line. Texts are cached by object identity -- of the values and of the
        ``matches``/``actions`` tuples, which builders share between rules: the ruleset being
        rendered keeps every object alive, so ids are not reused meanwhile."""
        comment = rule.comment
        if comment is None:
            out = "-A " + chain
        else:
            q = self._comments.get(comment)
            if q is None:
                q = self._comments[comment] = quote_comment(comment)
            out = "-A " + chain + " -m comment --comment " + q
        cache = self._cache
        groups = self._groups
        matches = rule.matches
        n = len(matches)
        if n == 1:
            v = matches[0]
            text = cache.get(id(v))
            if text is None:
                text = self._fresh(chain, self._match, v)
            out += " " + text
        elif n:
            text = groups.get(id(matches))
            if text is None:
                text = groups[id(matches)] = self._join(chain, self._match, matches)
            out += text
        actions = rule.actions
        n = len(actions)
        if n == 1:
            act = actions[0]
            text = cache.get(id(act))
            if text is None:
                text = self._fresh(chain, self._action, act)
            out += " " + text
        elif n:
            text = groups.get(id(actions))
            if text is None:
                kept = tuple(a for a in actions if not isinstance(a, Counter))
                if len(kept) > 1:
                    raise ValueError(f"chain {chain}: an iptables rule has at most one target")
                text = groups[id(actions)] = self._join(chain, self._action, kept)
            out += text
        return out

    def _join(
        self, chain: str, table: dict[type, Callable[[Any], str]], values: tuple[Any, ...]
    ) -> str:
        cache = self._cache
        out = ""
        prev: object = None
        for v in values:
            text = cache.get(id(v))
            if text is None:
                text = self._fresh(chain, table, v)
            if type(v) is AddrRange and type(prev) is AddrRange:
                # one `-m iprange` holds both ranges, as iptables-save prints them
                text = text.removeprefix("-m iprange ")
            out += " " + text
            prev = v
        return out


def render_iptables_rule(chain_name: str, rule: Rule) -> str:
    """One ``-A CHAIN ...`` line as kube-proxy writes it."""
    return _Renderer().rule(chain_name, rule)


def render_iptables(ruleset: Ruleset) -> str:
    """The whole ruleset as iptables-restore (or ip6tables-restore) input."""
    if ruleset.backend != "iptables":
        raise ValueError(f"render_iptables needs an iptables ruleset, not {ruleset.backend!r}")
    was_enabled = gc.isenabled()
    gc.disable()  # many short-lived acyclic strings: skip the cyclic GC's full-heap scans
    try:
        return _render(ruleset)
    finally:
        if was_enabled:
            gc.enable()


def _render(ruleset: Ruleset) -> str:
    r = _Renderer()
    lines: list[str] = []
    append = lines.append
    for table in ruleset.tables:
        if table.sets:
            raise ValueError(f"table {table.name}: iptables tables have no named sets")
        append(f"*{table.name}")
        for chain in table.chains:
            append(f":{chain.name} {chain.policy or '-'} [0:0]")
        for chain in table.chains:
            name = chain.name
            rule = r.rule
            for ru in chain.rules:
                append(rule(name, ru))
        append("COMMIT")
    lines.append("")
    return "\n".join(lines)
