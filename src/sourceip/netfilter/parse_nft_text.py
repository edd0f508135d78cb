"""Parse ``nft list ruleset`` text (and ``nft -f`` scripts) into the rule IR.

Two spellings of the same objects are read, alone or mixed:

* the listing that ``nft list ruleset`` prints (what people paste)::

      table ip kube-proxy {
          comment "rules for kube-proxy"
          set cluster-ips {
              type ipv4_addr
              elements = { 10.96.0.1, 10.96.0.10 }
          }
          chain nat-prerouting {
              type nat hook prerouting priority dstnat; policy accept;
              jump services
          }
      }

* the command form of ``nft -f`` scripts and knftables (what ``render_nft`` writes):
  ``add table ip kube-proxy { comment "..." ; }``, ``add chain ...``, ``add set/map ...``,
  ``add rule ip kube-proxy CHAIN ...``, ``insert rule ...``, ``add element ...``; ``flush
  ruleset`` / ``delete table`` as nft would apply them.

This module only reads the *syntax*: each table, set, chain and rule becomes the item
``nft -j list ruleset`` would list for it (libnftables JSON), and ``parse_nft.parse_nft_items``
maps those items to the IR — the one place that knows what an nft expression means. So a text
dump and a JSON dump of the same ruleset give the same IR (tested), and every rule carries its
line and text (``Rule.loc``). An expression the syntax reader does not know is kept whole, as
written, and becomes an ``UnknownMatch`` / ``UnknownAction`` with that text. Objects the IR
has no place for (flowtables, counters, quotas, ct helpers) are skipped with a note in
``Ruleset.notes``. Structural errors (an unclosed block — a truncated dump —, a rule outside a
chain, an unknown command) raise ``RulesetParseError`` with the file and line.
"""

from __future__ import annotations

import gc
import re
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sourceip.errors import RulesetParseError
from sourceip.netfilter.ir import Ruleset
from sourceip.netfilter.parse_nft import ItemOrigin, parse_nft_items

__all__ = ["parse_nft_text"]

_FAMILIES = frozenset({"ip", "ip6", "inet", "arp", "bridge", "netdev"})
# chain priority names (ip, ip6, inet: nft(8) "PRIORITY NAMES")
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
               "srcnat": 100}
_PAYLOAD_PROTOS = frozenset({
    "ip", "ip6", "tcp", "udp", "sctp", "th", "dccp", "udplite", "icmp", "icmpv6", "ether",
    "vlan", "arp", "ah", "esp", "comp", "igmp", "gre", "icmpx",
})
_BARE_META = frozenset({"iifname", "oifname", "iif", "oif", "mark", "iiftype", "oiftype",
                        "skuid", "skgid", "priority", "rtclassid", "cpu", "cgroup"})
_VERDICTS = frozenset({"accept", "drop", "continue", "return"})
# where an expression we cannot read ends: the next word that starts one we can
_RESYNC = frozenset({
    "ip", "ip6", "tcp", "udp", "sctp", "th", "meta", "ct", "fib", "iifname", "oifname", "iif",
    "oif", "mark", "numgen", "counter", "accept", "drop", "jump", "goto", "return", "reject",
    "masquerade", "snat", "dnat", "log", "limit", "comment", "update", "xt", "notrack",
    "continue", "queue", "redirect",
})
_BINOPS = {"and": "&", "&": "&", "or": "|", "|": "|", "xor": "^", "^": "^"}
_CMPOPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", ">": ">",
           "gt": ">", "<=": "<=", "le": "<=", ">=": ">=", "ge": ">="}
_TYPEOF_TYPES = {
    "ip saddr": "ipv4_addr", "ip daddr": "ipv4_addr", "ip6 saddr": "ipv6_addr",
    "ip6 daddr": "ipv6_addr", "meta l4proto": "inet_proto", "ip protocol": "inet_proto",
    "th dport": "inet_service", "th sport": "inet_service", "tcp dport": "inet_service",
    "udp dport": "inet_service", "tcp sport": "inet_service", "udp sport": "inet_service",
    "iifname": "ifname", "oifname": "ifname", "meta mark": "mark", "mark": "mark",
}

NL = "\n"


class _Err(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _NotRead(Exception):
    """Internal: the expression at this point is not one the syntax reader knows."""


# ----------------------------------------------------------------------------- lexing


_TOKEN = re.compile(r'"[^"]*"?|[{},;]|#|[^\s{},;"#]+')


def _lex_line(line: str, lineno: int) -> list[str]:
    """Tokens of one line: words, ``"quoted`` strings (kept with their opening quote only),
    ``{ } , ;`` as tokens of their own; ``#`` starts a comment outside quotes."""
    if not any(c in line for c in '"{},;#'):
        return line.split()
    out: list[str] = []
    for tok in _TOKEN.findall(line):
        if tok[0] == '"':
            if len(tok) == 1 or tok[-1] != '"':
                raise _Err("unterminated quote", lineno)
            out.append(tok[:-1])
        elif tok == "#":
            break
        else:
            out.append(tok)
    return out


def _unq(tok: str) -> str:
    return tok[1:] if tok.startswith('"') else tok


def _show(toks: list[str]) -> str:
    """Tokens back to text as nft prints them."""
    out = ""
    for t in toks:
        t = t + '"' if t.startswith('"') else t
        if not out:
            out = t
        elif t in (",", ";"):
            out += t
        else:
            out += " " + t
    return out


# ----------------------------------------------------------------------------- values


@lru_cache(maxsize=4096)
def _service(name: str) -> int | None:
    try:
        return socket.getservbyname(name)
    except OSError:
        return None


def _is_addr(text: str) -> bool:
    return (text.count(".") == 3 and text.replace(".", "").isdigit()) or (
        ":" in text and all(c in "0123456789abcdefABCDEF:." for c in text))


def _scalar(tok: str) -> Any:
    """One value as libnftables JSON writes it: numbers as ints, prefixes and ranges as
    objects, everything else (addresses, names) as strings."""
    if tok.startswith('"'):
        return tok[1:]
    if tok.isdigit():
        return int(tok)
    if tok.startswith("0x") and "/" not in tok:
        try:
            return int(tok, 16)
        except ValueError:
            return tok
    if "/" in tok:
        addr, _, length = tok.partition("/")
        if length.isdigit() and _is_addr(addr):
            return {"prefix": {"addr": addr, "len": int(length)}}
        if length.isdigit() and (addr.isdigit() or addr.startswith("0x")):
            value = _scalar(addr)  # `meta mark 0x00010000/16`: mark and 0xffff0000
            if isinstance(value, int):
                return {"prefix": {"addr": value, "len": int(length)}}
        return tok
    if "-" in tok and not tok.startswith("-"):
        lo, _, hi = tok.partition("-")
        if (lo.isdigit() and hi.isdigit()) or (_is_addr(lo) and _is_addr(hi)):
            return {"range": [_scalar(lo), _scalar(hi)]}
    return tok


def _port_scalar(v: Any) -> Any:
    if isinstance(v, str) and not v.startswith("@"):
        port = _service(v)
        if port is not None:
            return port
    return v


def _duration(text: str) -> int | None:
    """``3h``, ``10800s``, ``1d2h3m4s`` (nft's form) -> seconds."""
    total = num = 0
    seen = False
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    i = 0
    while i < len(text):
        c = text[i]
        if c.isdigit():
            num = num * 10 + int(c)
            seen = True
        elif c in units and seen:
            if c == "m" and text[i + 1:i + 2] == "s":  # milliseconds
                num = 0
                i += 1
            total += num * units[c]
            num = 0
            seen = False
        else:
            return None
        i += 1
    if seen:
        total += num
    return total


# ----------------------------------------------------------------------------- rules


class _Rule:
    """Reads one rule's tokens into libnftables expressions, each with its text."""

    def __init__(self, toks: list[str]) -> None:
        self.t = toks
        self.i = 0
        self.exprs: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self.comment: str | None = None

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def take(self) -> str:
        if self.i >= len(self.t):
            raise _NotRead
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, word: str) -> None:
        if self.take() != word:
            raise _NotRead

    def parse(self) -> None:
        while self.i < len(self.t):
            start = self.i
            tok = self.t[start]
            if tok == "comment" and self.peek(1) is not None and self.t[start + 1][:1] == '"':
                self.comment = self.t[start + 1][1:]
                self.i += 2
                continue
            try:
                expr = self.expression()
            except (_NotRead, IndexError, ValueError):
                self.i = start + 1
                depth = 1 if tok == "{" else 0
                while self.i < len(self.t):
                    nxt = self.t[self.i]
                    if depth == 0 and nxt in _RESYNC:
                        break
                    depth += (nxt == "{") - (nxt == "}")
                    self.i += 1
                expr = {_unq(tok): {"text": _show(self.t[start:self.i])}}
            self.exprs.append(expr)
            self.texts.append(_show(self.t[start:self.i]))

    # -- one expression (a match or a statement)
    def expression(self) -> dict[str, Any]:
        tok = self.take()
        if tok in _VERDICTS:
            return {tok: None}
        if tok in ("jump", "goto"):
            return {tok: {"target": _unq(self.take())}}
        if tok == "counter":
            body: dict[str, Any] | None = None
            if self.peek() == "packets":
                self.take()
                packets = int(self.take())
                self.expect("bytes")
                body = {"packets": packets, "bytes": int(self.take())}
            return {"counter": body}
        if tok == "reject":
            if self.peek() != "with":
                return {"reject": None}
            self.take()
            rtype = self.take()
            if rtype == "tcp":
                self.expect("reset")
                return {"reject": {"type": "tcp reset"}}
            if self.peek() == "type":
                self.take()
            return {"reject": {"type": rtype, "expr": self.take()}}
        if tok == "masquerade":
            flags = self.nat_flags()
            return {"masquerade": {"flags": flags} if flags else None}
        if tok in ("dnat", "snat"):
            return self.nat(tok)
        if tok == "xt":
            kind = self.take()
            name = _unq(self.take())
            return {"xt": {"type": kind, "name": name}}
        if tok in ("update", "add") and (self.peek() or "").startswith("@"):
            name = self.take()
            self.expect("{")
            elem = self.concat()
            self.expect("}")
            return {"set": {"op": tok, "elem": elem, "set": name}}
        if tok == "numgen":
            ng = self.numgen()
            if self.take() != "vmap":
                raise _NotRead
            return {"vmap": {"key": ng, "data": self.map_data()}}
        self.i -= 1
        left = self.concat()
        after = self.peek()
        if after == "vmap":
            self.take()
            return {"vmap": {"key": left, "data": self.map_data()}}
        if after == "set":
            self.take()
            return {"mangle": {"key": left, "value": self.value_expr()}}
        if after in ("and", "&"):
            self.take()
            left = {"&": [left, _scalar(self.take())]}
        op = "=="
        if self.peek() in _CMPOPS:
            op = _CMPOPS[self.take()]
        right = self.rhs()
        if isinstance(left, dict) and "payload" in left and \
                left["payload"].get("field") in ("sport", "dport"):
            right = ({"set": [_port_scalar(x) for x in right["set"]]}
                     if isinstance(right, dict) and "set" in right else _port_scalar(right))
        return {"match": {"op": op, "left": left, "right": right}}

    def nat_flags(self) -> list[str]:
        flags: list[str] = []
        while self.peek() in ("fully-random", "random", "persistent"):
            flags.append(self.take())
            if self.peek() == ",":
                self.take()
        if self.peek() == "to":  # masquerade to :port, redirect
            raise _NotRead
        return flags

    def nat(self, kind: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.peek() in ("ip", "ip6"):
            body["family"] = self.take()
        if self.peek() == "addr":  # `dnat ip addr . port to numgen random mod N map {..}`
            for word in ("addr", ".", "port"):
                self.expect(word)
        self.expect("to")
        if self.peek() == "numgen":  # nft 1.0.6 lists it without `addr . port`
            self.take()
            ng = self.numgen()
            self.expect("map")
            self.expect("{")
            items: list[list[Any]] = []
            while True:
                key = _scalar(self.take())
                self.expect(":")
                items.append([key, self.value()])
                sep = self.take()
                if sep == "}":
                    break
                if sep != ",":
                    raise _NotRead
            body["addr"] = {"map": {"key": ng, "data": {"set": items}}}
            return {kind: body}
        target = self.take()
        if self.peek() in (".", "map"):
            raise _NotRead
        if target.startswith("["):
            host, _, rest = target[1:].partition("]")
            body["addr"] = host
            if rest.startswith(":"):
                body["port"] = int(rest[1:])
        elif target.count(":") == 1:
            host, _, port = target.partition(":")
            body["addr"] = host
            body["port"] = int(port)
        else:
            body["addr"] = target
        if "-" in str(body["addr"]):
            raise _NotRead
        flags = self.nat_flags()
        if flags:
            body["flags"] = flags
        return {kind: body}

    def numgen(self) -> dict[str, Any]:
        mode = self.take()
        self.expect("mod")
        ng: dict[str, Any] = {"mode": mode, "mod": int(self.take())}
        if self.peek() == "offset":
            self.take()
            ng["offset"] = int(self.take())
        return {"numgen": ng}

    def map_data(self) -> Any:
        tok = self.take()
        if tok.startswith("@"):
            return tok
        if tok != "{":
            raise _NotRead
        items: list[list[Any]] = []
        while True:
            key = self.value()
            self.expect(":")
            verdict = self.take()
            if verdict in ("jump", "goto"):
                v: dict[str, Any] = {verdict: {"target": _unq(self.take())}}
            elif verdict in _VERDICTS:
                v = {verdict: None}
            else:
                raise _NotRead
            items.append([key, v])
            sep = self.take()
            if sep == "}":
                return {"set": items}
            if sep != ",":
                raise _NotRead

    def value_expr(self) -> Any:
        """The value of ``mark set ...``: a number, or ``mark or 0x4000`` (left-assoc)."""
        tok = self.peek()
        if tok in ("mark", "meta", "ct"):
            val: Any = self.primary()
        else:
            val = _scalar(self.take())
        while self.peek() in _BINOPS:
            op = _BINOPS[self.take()]
            val = {op: [val, _scalar(self.take())]}
        return val

    # -- left-hand sides
    def concat(self) -> Any:
        parts = [self.primary()]
        while self.peek() == ".":
            self.take()
            parts.append(self.primary())
        return parts[0] if len(parts) == 1 else {"concat": parts}

    def primary(self) -> Any:
        tok = self.take()
        if tok in _PAYLOAD_PROTOS:
            fld = self.take()
            if fld in _RESYNC or fld in ("{", "}", ",", "==", "!="):
                raise _NotRead
            return {"payload": {"protocol": tok, "field": fld}}
        if tok == "meta":
            return {"meta": {"key": self.take()}}
        if tok in _BARE_META:
            return {"meta": {"key": tok}}
        if tok == "ct":
            key = self.take()
            if key in ("original", "reply"):
                fld = self.take()
                if fld in ("ip", "ip6"):
                    fld = self.take()
                return {"ct": {"key": fld, "dir": key}}
            return {"ct": {"key": key}}
        if tok == "fib":
            flags = [self.take()]
            while self.peek() == ".":
                self.take()
                flags.append(self.take())
            result = self.take()
            return {"fib": {"result": result, "flags": flags[0] if len(flags) == 1 else flags}}
        if tok == "numgen":
            return self.numgen()
        raise _NotRead

    # -- right-hand sides
    def rhs(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise _NotRead
        if tok.startswith("@"):
            return self.take()
        if tok == "{":
            self.take()
            items: list[Any] = []
            while True:
                items.append(self.value())
                sep = self.take()
                if sep == "}":
                    return {"set": items}
                if sep != ",":
                    raise _NotRead
        first = self.value()
        # `ct state established,related`; negated, nft lists `!= established | new`
        if self.peek() in (",", "|") and isinstance(first, str):
            flags = [first]
            while self.peek() in (",", "|"):
                self.take()
                flags.append(self.take())
            return flags
        return first

    def value(self) -> Any:
        tok = self.take()
        if tok in ("{", "}", ",", ";") or tok in _VERDICTS or tok in ("jump", "goto"):
            raise _NotRead
        parts = [_scalar(tok)]
        while self.peek() == ".":
            self.take()
            parts.append(_scalar(self.take()))
        return parts[0] if len(parts) == 1 else {"concat": parts}


# ----------------------------------------------------------------------------- objects


@dataclass(slots=True)
class _Table:
    family: str
    name: str
    line: int
    comment: str | None = None
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    set_origin: dict[str, ItemOrigin] = field(default_factory=dict)
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    chain_origin: dict[str, ItemOrigin] = field(default_factory=dict)
    rules: dict[str, list[tuple[dict[str, Any], ItemOrigin]]] = field(default_factory=dict)


class _Reader:
    """Statements of the whole text: a cursor over (token, line) pairs with ``\\n`` marks."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        toks: list[str] = []
        where: list[int] = []
        for n, line in enumerate(self.lines, 1):
            lt = _lex_line(line, n)
            if lt:
                toks.extend(lt)
                where.extend([n] * len(lt))
                toks.append(NL)
                where.append(n)
        self.t = toks
        self.w = where
        self.i = 0
        self.tables: dict[tuple[str, str], _Table] = {}
        self.notes: list[str] = []

    # -- cursor
    def line(self) -> int:
        if self.i < len(self.w):
            return self.w[self.i]
        return len(self.lines)

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, what: str = "a word") -> str:
        if self.i >= len(self.t):
            raise _Err(f"the dump ends where {what} was expected (truncated?)", self.line())
        tok = self.t[self.i]
        self.i += 1
        return tok

    def word(self, what: str) -> str:
        tok = self.take(what)
        if tok in ("{", "}", ",", ";", NL):
            raise _Err(f"expected {what}, found {tok!r}", self.w[self.i - 1])
        return _unq(tok)

    def skip_blank(self) -> None:
        while self.peek() in (NL, ";"):
            self.i += 1

    def statement(self) -> tuple[list[str], int, int]:
        """Tokens up to the end of the line or ``;`` (outside braces); (tokens, first line,
        last line)."""
        start = self.i
        first = self.line()
        depth = 0
        out: list[str] = []
        while self.i < len(self.t):
            tok = self.t[self.i]
            if depth == 0 and tok in (NL, ";", "}"):
                break
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
            self.i += 1
            if tok != NL:
                out.append(tok)
        if depth:
            raise _Err("a '{' is not closed (truncated dump?)", first)
        last = self.w[self.i - 1] if self.i > start else first
        return out, first, last

    def text_of(self, first: int, last: int) -> str:
        return " ".join(x.strip() for x in self.lines[first - 1:last])

    def skip_block(self) -> None:
        """Skip ``{ ... }`` (the opening brace already taken)."""
        depth = 1
        start = self.line()
        while depth:
            if self.i >= len(self.t):
                raise _Err("a '{' is not closed (truncated dump?)", start)
            tok = self.t[self.i]
            depth += (tok == "{") - (tok == "}")
            self.i += 1

    # -- top level
    def run(self) -> None:
        while True:
            self.skip_blank()
            tok = self.peek()
            if tok is None:
                return
            line = self.line()
            self.i += 1
            if tok == "table":
                fam, name = self.family_name("table")
                self.expect_brace()
                t = self.table(fam, name, line, listing=True)
                self.table_block(t)
            elif tok in ("add", "create", "insert"):
                self.command(tok, line)
            elif tok == "flush" and self.peek() == "ruleset":
                self.i += 1
                self.tables.clear()
            elif tok in ("delete", "destroy") and self.peek() == "table":
                self.i += 1
                fam, name = self.family_name("table")
                self.tables.pop((fam, name), None)
            elif tok == "flush":
                self.statement()
                self.notes.append(f"{self.source}:{line}: flush ignored")
            else:
                raise _Err(f"unexpected {_unq(tok)!r}: expected 'table ...' (nft list "
                           "ruleset) or 'add ...' (nft -f)", line)

    def expect_brace(self) -> None:
        tok = self.take("'{'")
        if tok != "{":
            raise _Err(f"expected '{{', found {tok!r}", self.w[self.i - 1])

    def family_name(self, what: str) -> tuple[str, str]:
        first = self.word(f"the {what}'s family or name")
        if first in _FAMILIES and self.peek() not in ("{", NL, ";", None):
            return first, self.word(f"the {what}'s name")
        return "ip", first

    def table(self, fam: str, name: str, line: int, *, listing: bool) -> _Table:
        t = self.tables.get((fam, name))
        if t is None:
            t = self.tables[(fam, name)] = _Table(fam, name, line)
        elif listing:
            raise _Err(f"table {fam} {name} is listed twice (first at line {t.line})", line)
        return t

    def get_table(self, line: int) -> tuple[_Table, str]:
        fam, name = self.family_name("table")
        t = self.tables.get((fam, name))
        if t is None:
            raise _Err(f"table {fam} {name} does not exist (no 'add table' before)", line)
        return t, self.word("a name")

    def command(self, verb: str, line: int) -> None:
        kind = self.word("an object kind")
        if kind == "table":
            fam, name = self.family_name("table")
            t = self.table(fam, name, line, listing=False)
            if self.peek() == "{":
                self.i += 1
                self.table_props(t)
        elif kind in ("chain", "set", "map"):
            t, name = self.get_table(line)
            if kind == "chain":
                self.chain(t, name, line, block=self.peek() == "{", listing=False)
            else:
                self.expect_brace()
                self.set(t, name, kind == "map", line)
        elif kind == "rule":
            t, chain = self.get_table(line)
            if chain not in t.chains:
                raise _Err(f"chain {chain} of table {t.family} {t.name} does not exist",
                           line)
            if self.peek() in ("index", "position", "handle"):
                self.i += 2
                self.notes.append(f"{self.source}:{line}: rule position ignored")
            toks, first, last = self.statement()
            self.rule(t, chain, toks, first, last, insert=verb == "insert")
        elif kind == "element":
            t, name = self.get_table(line)
            s = t.sets.get(name)
            if s is None:
                raise _Err(f"set {name} of table {t.family} {t.name} does not exist", line)
            self.expect_brace()
            self.elements(s, line)
        else:
            self.statement()
            self.notes.append(f"{self.source}:{line}: '{verb} {kind}' is not part of the IR; "
                              "skipped")

    def table_props(self, t: _Table) -> None:
        """``{ comment "x" ; flags dormant ; }`` of ``add table``."""
        while True:
            self.skip_blank()
            tok = self.take("'}'")
            if tok == "}":
                return
            if tok == "comment":
                t.comment = self.word("a comment")
            else:
                self.i -= 1
                self.statement()

    def table_block(self, t: _Table) -> None:
        while True:
            self.skip_blank()
            line = self.line()
            tok = self.take(f"'}}' closing table {t.family} {t.name} (line {t.line})")
            if tok == "}":
                return
            if tok == "comment":
                t.comment = self.word("a comment")
            elif tok == "flags":
                self.statement()
            elif tok == "chain":
                name = self.word("a chain name")
                self.chain(t, name, line, block=True, listing=True)
            elif tok in ("set", "map"):
                name = self.word("a set name")
                self.expect_brace()
                self.set(t, name, tok == "map", line)
            else:
                toks, first, last = self.statement()
                if self.peek() == "{":
                    self.i += 1
                    self.skip_block()
                self.notes.append(f"{self.source}:{line}: {_unq(tok)} objects are not part of "
                                  "the IR; skipped")

    def chain(self, t: _Table, name: str, line: int, *, block: bool, listing: bool) -> None:
        if name in t.chains:
            if listing:
                raise _Err(f"chain {name} is listed twice", line)
        else:
            t.chains[name] = {"family": t.family, "table": t.name, "name": name}
            t.chain_origin[name] = ItemOrigin(line, self.text_of(line, line))
            t.rules[name] = []
        obj = t.chains[name]
        if not block:
            return
        self.expect_brace()
        while True:
            self.skip_blank()
            if self.peek() == "}":
                self.i += 1
                return
            if self.peek() is None:
                raise _Err(f"the dump ends inside chain {name} (truncated?)", line)
            toks, first, last = self.statement()
            head = toks[0] if toks else ""
            if head == "type" and "hook" in toks:
                self.base_chain(obj, toks, first)
            elif head == "policy" and len(toks) == 2:
                obj["policy"] = toks[1]
            elif head == "comment" and len(toks) == 2:
                obj["comment"] = _unq(toks[1])
            elif head in ("devices", "device"):
                pass
            elif listing:
                self.rule(t, name, toks, first, last, insert=False)
            else:
                raise _Err(f"unexpected {_show(toks)!r} in a chain declaration", first)

    def base_chain(self, obj: dict[str, Any], toks: list[str], line: int) -> None:
        try:
            obj["type"] = toks[1]
            obj["hook"] = toks[toks.index("hook") + 1]
            if "priority" in toks:
                p = toks.index("priority")
                obj["prio"] = _priority(toks[p + 1:])
        except (IndexError, ValueError):
            raise _Err(f"bad chain type line {_show(toks)!r}", line) from None

    def rule(self, t: _Table, chain: str, toks: list[str], first: int, last: int, *,
             insert: bool) -> None:
        if not toks:
            raise _Err("an empty rule", first)
        r = _Rule(toks)
        r.parse()
        item: dict[str, Any] = {"family": t.family, "table": t.name, "chain": chain,
                                "expr": r.exprs}
        if r.comment is not None:
            item["comment"] = r.comment
        entry = (item, ItemOrigin(first, self.text_of(first, last), r.texts))
        if insert:
            t.rules[chain].insert(0, entry)
        else:
            t.rules[chain].append(entry)

    def set(self, t: _Table, name: str, is_map: bool, line: int) -> None:
        obj = t.sets.get(name)
        if obj is None:
            obj = t.sets[name] = {"family": t.family, "table": t.name, "name": name}
            t.set_origin[name] = ItemOrigin(line, self.text_of(line, line))
        while True:
            self.skip_blank()
            if self.peek() == "}":
                self.i += 1
                break
            if self.peek() is None:
                raise _Err(f"the dump ends inside set {name} (truncated?)", line)
            at = self.line()
            head = self.take()
            if head in ("type", "typeof"):
                toks, _, _ = self.statement()
                self.set_type(obj, toks, head == "typeof", is_map, at)
            elif head == "flags":
                toks, _, _ = self.statement()
                obj["flags"] = [x for x in toks if x != ","]
            elif head == "timeout":
                toks, _, _ = self.statement()
                secs = _duration(toks[0]) if len(toks) == 1 else None
                if secs is None:
                    raise _Err(f"bad timeout {_show(toks)!r}", at)
                obj["timeout"] = secs
            elif head == "comment":
                toks, _, _ = self.statement()
                obj["comment"] = _unq(toks[0]) if toks else ""
            elif head == "elements":
                if self.take("'='") != "=":
                    raise _Err("expected 'elements = { ... }'", at)
                self.expect_brace()
                self.elements(obj, at)
            else:  # size, policy, gc-interval, counter, auto-merge: not part of the IR
                self.statement()
        if is_map and "map" not in obj:
            raise _Err(f"map {name} has no 'type KEY : VALUE'", line)
        if "type" not in obj:
            raise _Err(f"set {name} has no type", line)

    def set_type(self, obj: dict[str, Any], toks: list[str], typeof: bool, is_map: bool,
                 line: int) -> None:
        key, colon, value = _split_on(toks, ":")
        if is_map and not colon:
            raise _Err("a map's type needs ' : VALUE'", line)
        if typeof:
            words = _show(key).split(" . ")
            types = [_TYPEOF_TYPES.get(w, w) for w in words]
            self.notes.append(f"{self.source}:{line}: typeof {_show(key)} read as "
                              f"{' . '.join(types)}")
        else:
            types = [x for x in key if x != "."]
        obj["type"] = types[0] if len(types) == 1 else types
        if colon:
            vals = [x for x in value if x != "."]
            obj["map"] = vals[0] if len(vals) == 1 else vals

    def elements(self, obj: dict[str, Any], line: int) -> None:
        """``a, b . c, d : goto x, e comment "y" }`` (the opening brace taken)."""
        elems = obj.setdefault("elem", [])
        is_map = "map" in obj
        while True:
            toks: list[str] = []
            while True:
                tok = self.take(f"'}}' closing the elements of {obj['name']} (line {line})")
                if tok == NL:
                    continue
                if tok in (",", "}"):
                    break
                toks.append(tok)
            if toks:
                elems.append(self.element(toks, is_map, line))
            if tok == "}":
                return

    def element(self, toks: list[str], is_map: bool, line: int) -> Any:
        key_toks, colon, value = _split_on(toks, ":")
        comment = None
        clean: list[str] = []
        j = 0
        while j < len(key_toks):  # drop runtime state, keep the comment
            x = key_toks[j]
            if x in ("timeout", "expires") and j + 1 < len(key_toks):
                j += 2
                continue
            if x == "comment" and j + 1 < len(key_toks):
                comment = _unq(key_toks[j + 1])
                j += 2
                continue
            if x == "counter":
                j += 1
                while j < len(key_toks) and key_toks[j] in ("packets", "bytes") or (
                        j < len(key_toks) and key_toks[j].isdigit()):
                    j += 1
                continue
            clean.append(x)
            j += 1
        parts = [_scalar(x) for x in clean if x != "."]
        if not parts:
            raise _Err("an empty set element", line)
        key: Any = parts[0] if len(parts) == 1 else {"concat": parts}
        if comment is not None:
            key = {"elem": {"val": key, "comment": comment}}
        if not is_map:
            return key
        if not colon:
            raise _Err(f"a map element without ' : VALUE': {_show(toks)!r}", line)
        if value and value[0] in ("jump", "goto") and len(value) == 2:
            v: Any = {value[0]: {"target": _unq(value[1])}}
        elif len(value) == 1 and value[0] in _VERDICTS:
            v = {value[0]: None}
        else:
            v = _show(value)
        return [key, v]

    # -- out
    def items(self) -> tuple[list[Any], list[ItemOrigin | None]]:
        items: list[Any] = []
        origins: list[ItemOrigin | None] = []
        for t in self.tables.values():
            tobj: dict[str, Any] = {"family": t.family, "name": t.name}
            if t.comment is not None:
                tobj["comment"] = t.comment
            items.append({"table": tobj})
            origins.append(ItemOrigin(t.line, self.text_of(t.line, t.line)))
            for name, s in t.sets.items():
                items.append({"map" if "map" in s else "set": s})
                origins.append(t.set_origin[name])
            for name, c in t.chains.items():
                items.append({"chain": c})
                origins.append(t.chain_origin[name])
            for name in t.chains:
                for item, origin in t.rules[name]:
                    items.append({"rule": item})
                    origins.append(origin)
        return items, origins


def _split_on(toks: list[str], sep: str) -> tuple[list[str], bool, list[str]]:
    if sep in toks:
        k = toks.index(sep)
        return toks[:k], True, toks[k + 1:]
    return toks, False, []


def _priority(toks: list[str]) -> int:
    """``dstnat``, ``-100``, ``filter - 10``, ``srcnat + 5``."""
    base = toks[0]
    value = _PRIORITIES[base] if base in _PRIORITIES else int(base)
    if len(toks) >= 3 and toks[1] in ("+", "-"):
        off = int(toks[2])
        value += off if toks[1] == "+" else -off
    return value


def parse_nft_text(text: str, *, source: str = "<nft list ruleset>") -> Ruleset:
    """The ruleset in ``text`` (``nft list ruleset`` output or an ``nft -f`` script).

    Raises ``RulesetParseError`` with ``file=source`` and the line for a dump whose structure
    cannot be read (see the module docstring)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        reader = _Reader(text, source)
        reader.run()
        items, origins = reader.items()
    except _Err as exc:
        raise RulesetParseError(str(exc), file=source, line=exc.line) from None
    finally:
        if was_enabled:
            gc.enable()
    return parse_nft_items(items, source=source, origins=origins, notes=reader.notes)
