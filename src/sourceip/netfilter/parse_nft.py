"""Parse ``nft -j list ruleset`` (libnftables-json(5)) into the rule IR.

``parse_nft_json(data)`` takes the JSON text, bytes, or the already-decoded object::

    {"nftables": [{"metainfo": {...}}, {"table": {...}}, {"set": {...}}, {"map": {...}},
                  {"chain": {...}}, {"rule": {"family", "table", "chain", "expr": [...]}}]}

Tables keep their order; chains their hook/type/prio/policy; sets and maps their key types,
flags, timeout, comment and elements (concatenations, prefixes, per-element comments, verdicts).
Rule expressions map as follows (``netfilter.ir`` conventions: addresses of /32 and /128 are
addresses; interface wildcards end in ``+``; conntrack states and address types are upper case):

=============================================  ==============================================
JSON (nft text)                                IR
=============================================  ==============================================
``ip saddr 10.0.0.0/8``, ``ip6 daddr != {..}``  ``Addr`` (``braces`` for an anonymous set)
``meta l4proto tcp``, ``ip protocol tcp``        ``Proto``
``th dport 80``, ``th dport { 80, 1-9 }``        ``Port``
``tcp dport 80`` (nft folds ``meta l4proto tcp   ``Proto("tcp")`` then ``Port``
... th dport 80`` into this)
``iifname "eth*"``                               ``Iface("in", "eth+")``
``fib saddr type local``, ``fib daddr . oif``    ``AddrType`` (``limit_iface_out`` with ``oif``)
``mark 0x10``, ``mark and 0x4000 == 0``          ``Mark``
``ct state new``, ``ct status dnat``             ``CtState`` (``DNAT``/``SNAT`` from status)
``KEY [. KEY] [!=] @set``                        ``SetLookup``
``jump``/``goto``/``return``/``accept``/...      verdicts; ``reject`` (the family's default
                                                 ``port-unreachable`` is ``Reject()``)
``mark set mark or|xor|and V``, ``mark set V``   ``MarkSet``
``masquerade [fully-random]``, ``dnat``, ``snat``  ``Masquerade``, ``Dnat``, ``Snat``
``KEY [. KEY] vmap @map``                        ``Vmap``
``numgen random mod N vmap { 0 : goto A, .. }``  ``NumgenVmap``
``update @set { KEY }``                          ``SetUpdate``
``counter``                                      ``Counter``
=============================================  ==============================================

Anything else becomes ``UnknownMatch`` (before the rule's first statement) or ``UnknownAction``
carrying the expression's compact JSON text, so nothing is dropped. A match that follows a
statement (``log ... ip saddr x drop``) cannot be reordered before it, so it too becomes an
``UnknownAction``. Set/map contents that the IR cannot hold (ranges of addresses, non-verdict
map values) are written as text and listed in ``Ruleset.notes``.

Malformed input (not JSON, wrong shape, a rule naming a chain that is not listed) raises
``RulesetParseError`` whose ``field`` names the item (``nftables[12].rule.expr[3]``).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from sourceip.errors import RulesetParseError
from sourceip.net.addr import IPAddress, IPNetwork, ip_from_text
from sourceip.netfilter.ir import (
    Accept,
    Action,
    Addr,
    AddrLike,
    AddrType,
    Chain,
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
    Match,
    NftSet,
    NumgenDnatMap,
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
    Snat,
    SourceLoc,
    Table,
    UnknownAction,
    UnknownMatch,
    Verdict,
    Vmap,
)

__all__ = ["ItemOrigin", "expr_key_text", "parse_nft_items", "parse_nft_json"]

_ALL_ONES = 0xFFFFFFFF
_UNQUALIFIED_META = frozenset({"iifname", "oifname", "iif", "oif"})
_DEFAULT_REJECT = frozenset({("icmp", "port-unreachable"), ("icmpv6", "port-unreachable"),
                             ("icmpx", "port-unreachable")})
_L4 = frozenset({"tcp", "udp", "sctp", "dccp", "udplite"})


# Addresses of a dump, parsed once each: kube-proxy's maps and sets repeat them (an endpoint in
# its Service's numgen DNAT map and in the hairpin-connections set, node addresses in every
# nodeport element), and ``ipaddress`` parses in Python. Raises ValueError (not cached).
_ip = lru_cache(maxsize=65536)(ip_from_text)


class _Bad(Exception):
    """Internal: the input has the wrong shape at ``where``."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


class _Unknown(Exception):
    """Internal: the expression is valid JSON but not something the IR holds."""


def _text(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------------------- values


def _one_key(obj: object) -> tuple[str, Any]:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise _Unknown
    ((k, v),) = obj.items()
    return k, v


def _addr_value(v: object) -> AddrLike:
    """``"10.0.0.1"`` or ``{"prefix": {"addr", "len"}}`` (a full-length prefix is an
    address)."""
    if isinstance(v, str):
        try:
            return _ip(v)
        except ValueError:
            raise _Unknown from None
    k, p = _one_key(v)
    if k != "prefix" or not isinstance(p, dict):
        raise _Unknown
    addr, length = p.get("addr"), p.get("len")
    if not isinstance(addr, str) or not isinstance(length, int) or isinstance(length, bool):
        raise _Unknown
    try:
        net = ipaddress.ip_network(f"{addr}/{length}", strict=False)
    except ValueError:
        raise _Unknown from None
    return net.network_address if net.prefixlen == net.max_prefixlen else net


def _addr_values(v: object) -> tuple[AddrLike, ...]:
    """``_addr_value``, or ``{"range": [LO, HI]}`` (nft lists adjacent intervals of an interval
    set merged into a range: ``{ 10.0.0.1, 10.0.0.2, 64.0.0.0/2 }`` comes back as
    ``{ 10.0.0.1-10.0.0.2, 64.0.0.0/2 }``) as the prefixes covering exactly LO..HI."""
    if isinstance(v, dict) and len(v) == 1 and "range" in v:
        r = v["range"]
        if not isinstance(r, list) or len(r) != 2 or not all(isinstance(x, str) for x in r):
            raise _Unknown
        try:
            lo, hi = ipaddress.ip_address(r[0]), ipaddress.ip_address(r[1])
            nets: list[IPNetwork] = list(
                ipaddress.summarize_address_range(lo, hi))  # type: ignore[arg-type]
        except (ValueError, TypeError):
            raise _Unknown from None
        return tuple(n.network_address if n.prefixlen == n.max_prefixlen else n for n in nets)
    return (_addr_value(v),)


def _port_value(v: object) -> int | tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535:
        return v
    k, r = _one_key(v)
    if k == "range" and isinstance(r, list) and len(r) == 2:
        lo, hi = _port_value(r[0]), _port_value(r[1])
        if isinstance(lo, int) and isinstance(hi, int) and lo <= hi:
            return (lo, hi)
    raise _Unknown


@lru_cache(maxsize=65536)
def _key_str(v: str) -> IPAddress | str:
    """A string key component: an address, or the text itself (``tcp``, an interface name);
    cached both ways, as keys repeat (every element of a map keyed by ``. inet_proto .``)."""
    try:
        return ip_from_text(v)
    except ValueError:
        return v


def _key_item(v: object, notes: list[str], where: str) -> AddrLike | str | int:
    """One component of a set element's key."""
    if isinstance(v, bool):
        raise _Bad("a set element cannot be a boolean", where)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return _key_str(v)
    if isinstance(v, dict):
        k, body = _one_key_bad(v, where)
        if k == "prefix":
            try:
                return _addr_value(v)
            except _Unknown:
                raise _Bad("bad prefix", where) from None
        if k == "range" and isinstance(body, list) and len(body) == 2:
            text = f"{_scalar_text(body[0])}-{_scalar_text(body[1])}"
            notes.append(f"{where}: range {text} kept as text")
            return text
    notes.append(f"{where}: element {_text(v)} kept as text")
    return _text(v)


def _scalar_text(v: object) -> str:
    return v if isinstance(v, str) else _text(v)


def _one_key_bad(obj: object, where: str) -> tuple[str, Any]:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise _Bad(f"expected an object with one key, got {_text(obj)[:80]}", where)
    ((k, v),) = obj.items()
    if not isinstance(k, str):
        raise _Bad("bad key", where)
    return k, v


def _verdict_value(v: object) -> Verdict:
    k, body = _one_key(v)
    if k in ("jump", "goto"):
        if not isinstance(body, dict) or not isinstance(body.get("target"), str):
            raise _Unknown
        return Jump(body["target"]) if k == "jump" else Goto(body["target"])
    if body is not None:
        raise _Unknown
    if k == "accept":
        return Accept()
    if k == "drop":
        return Drop()
    if k == "return":
        return Return()
    raise _Unknown


# ----------------------------------------------------------------------------- expressions


def expr_key_text(e: object) -> str:
    """The nft text of a key expression (``ip daddr``, ``meta l4proto``, ``th dport``,
    ``iifname``, ``ct state``); raises ``ValueError`` for anything else."""
    try:
        return _key_text(e)
    except _Unknown:
        raise ValueError(f"not a key expression: {_text(e)}") from None


def _key_text(e: object) -> str:
    k, body = _one_key(e)
    if not isinstance(body, dict):
        raise _Unknown
    if k == "payload":
        proto, fld = body.get("protocol"), body.get("field")
        if isinstance(proto, str) and isinstance(fld, str) and len(body) == 2:
            return f"{proto} {fld}"
    elif k == "meta":
        key = body.get("key")
        if isinstance(key, str) and len(body) == 1:
            return key if key in _UNQUALIFIED_META else f"meta {key}"
    elif k == "ct":
        key = body.get("key")
        if isinstance(key, str) and len(body) == 1:
            return f"ct {key}"
    raise _Unknown


def _keys(e: object) -> tuple[str, ...]:
    k, body = _one_key(e)
    if k == "concat":
        if not isinstance(body, list) or len(body) < 2:
            raise _Unknown
        return tuple(_key_text(x) for x in body)
    return (_key_text(e),)


def _states(right: object) -> tuple[str, ...]:
    """``"new"``, ``["a", "b"]``, ``{"set": [...]}`` or nested ``{"|": [{"|": [a, b]}, c]}``
    (how nft lists a negated flag list) as a flat tuple of names."""
    out: list[str] = []

    def walk(v: object, depth: int) -> None:
        if depth > 32:
            raise _Unknown
        if isinstance(v, str):
            out.append(v)
            return
        if isinstance(v, list):
            items: object = v
        else:
            k, items = _one_key(v)
            if k not in ("set", "|"):
                raise _Unknown
        if not isinstance(items, list) or not items:
            raise _Unknown
        for item in items:
            walk(item, depth + 1)

    walk(right, 0)
    return tuple(out)


def _match(body: object) -> list[Match]:
    """IR matches for one ``{"match": body}``; raises _Unknown."""
    if not isinstance(body, dict) or set(body) != {"op", "left", "right"}:
        raise _Unknown
    op, left, right = body["op"], body["left"], body["right"]
    if op not in ("==", "!=", "in"):
        raise _Unknown
    neg = op == "!="
    lk, lb = _one_key(left)
    if isinstance(right, str) and right.startswith("@"):
        if lk == "concat" or lk in ("payload", "meta", "ct"):
            return _set_lookup(_keys(left), right[1:], neg)
        raise _Unknown
    if lk == "payload" and isinstance(lb, dict):
        proto, fld = lb.get("protocol"), lb.get("field")
        if len(lb) != 2 or not isinstance(proto, str) or not isinstance(fld, str):
            raise _Unknown
        if proto in ("ip", "ip6") and fld in ("saddr", "daddr"):
            side: Literal["src", "dst"] = "src" if fld == "saddr" else "dst"
            if isinstance(right, dict) and "set" in right:
                _, items = _one_key(right)
                if not isinstance(items, list) or not items:
                    raise _Unknown
                return [Addr(side, tuple(a for x in items for a in _addr_values(x)), neg,
                             True)]
            nets = _addr_values(right)
            return [Addr(side, nets, neg, len(nets) > 1)]
        if proto == "ip" and fld == "protocol" or proto == "ip6" and fld == "nexthdr":
            if isinstance(right, str):
                return [Proto(right, neg)]
            raise _Unknown
        if fld in ("sport", "dport") and (proto == "th" or proto in _L4):
            if isinstance(right, dict) and "set" in right:
                _, items = _one_key(right)
                if not isinstance(items, list) or not items:
                    raise _Unknown
                ports = tuple(_port_value(x) for x in items)
            else:
                ports = (_port_value(right),)
            port = Port("sport" if fld == "sport" else "dport", ports, neg)
            if proto == "th":
                return [port]
            return [Proto(proto), port]  # nft's form of `meta l4proto P th dport N`
        raise _Unknown
    if lk == "meta" and isinstance(lb, dict) and len(lb) == 1:
        key = lb.get("key")
        if key == "l4proto":
            if isinstance(right, str):
                return [Proto(right, neg)]
            if isinstance(right, int) and not isinstance(right, bool):
                return [Proto(str(right), neg)]
            raise _Unknown
        if key in ("iifname", "oifname"):
            if not isinstance(right, str) or op == "in":
                raise _Unknown
            name = right[:-1] + "+" if right.endswith("*") and not right.endswith("\\*") else right
            return [Iface("in" if key == "iifname" else "out", name, neg)]
        if key == "mark":
            if isinstance(right, dict) and "prefix" in right:
                # nft lists `mark and 0xffff0000 == V` as the prefix `V/16`
                _, p = _one_key(right)
                if not isinstance(p, dict) or set(p) != {"addr", "len"}:
                    raise _Unknown
                length = p["len"]
                if not isinstance(length, int) or isinstance(length, bool) or not (
                        0 < length <= 32):
                    raise _Unknown
                mask = (_ALL_ONES << (32 - length)) & _ALL_ONES
                return [Mark(_mark_int(p["addr"]), mask, neg)]
            return [Mark(_mark_int(right), _ALL_ONES, neg)]
        raise _Unknown
    if lk == "&":
        if not isinstance(lb, list) or len(lb) != 2 or lb[0] != {"meta": {"key": "mark"}}:
            raise _Unknown
        return [Mark(_mark_int(right), _mark_int(lb[1]), neg)]
    if lk == "ct" and isinstance(lb, dict) and len(lb) == 1:
        key = lb.get("key")
        states = _states(right)
        if key == "state":
            if any(s.upper() in ("DNAT", "SNAT") for s in states):
                raise _Unknown
            return [CtState(tuple(s.upper() for s in states), neg)]
        if key == "status" and all(s in ("dnat", "snat") for s in states):
            return [CtState(tuple(s.upper() for s in states), neg)]
        raise _Unknown
    if lk == "fib" and isinstance(lb, dict):
        if lb.get("result") != "type" or set(lb) != {"result", "flags"}:
            raise _Unknown
        flags = lb["flags"]
        if isinstance(flags, str):
            flags = [flags]
        if flags in (["saddr"], ["daddr"]):
            limit = False
        elif flags == ["daddr", "oif"]:
            limit = True
        else:
            raise _Unknown
        types = _states(right)
        return [AddrType("src" if flags[0] == "saddr" else "dst",
                         ",".join(t.upper() for t in types), neg, limit)]
    raise _Unknown


def _split_l4(keys: tuple[str, ...]) -> tuple[tuple[str, ...], list[Match]]:
    """nft folds ``meta l4proto udp`` into a later ``th sport`` key (listing ``udp sport``),
    in lookups, vmaps and set updates alike: give back the ``th`` key and the ``Proto``."""
    protos = set()
    fixed = []
    for k in keys:
        head, _, fld = k.partition(" ")
        if head in _L4 and fld in ("sport", "dport"):
            protos.add(head)
            fixed.append("th " + fld)
        else:
            fixed.append(k)
    if len(protos) != 1:
        return keys, []
    return tuple(fixed), [Proto(protos.pop())]


def _set_lookup(keys: tuple[str, ...], name: str, neg: bool) -> list[Match]:
    fixed, protos = _split_l4(keys)
    return [*protos, SetLookup(fixed, name, neg)]


def _mark_int(v: object) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _ALL_ONES:
        return v
    if isinstance(v, str):
        try:
            n = int(v, 0)
        except ValueError:
            raise _Unknown from None
        if 0 <= n <= _ALL_ONES:
            return n
    raise _Unknown


_MARK = {"meta": {"key": "mark"}}


def _mangle(body: object) -> Action:
    if not isinstance(body, dict) or set(body) != {"key", "value"} or body["key"] != _MARK:
        raise _Unknown
    value = body["value"]
    if value == _MARK:  # `mark set mark and 0xffffffff` (or `or 0`) as nft folds it
        return MarkSet("and", _ALL_ONES)
    if not isinstance(value, dict):
        return MarkSet("set", _mark_int(value))
    op, args = _one_key(value)
    if op not in ("|", "^", "&") or not isinstance(args, list) or len(args) != 2:
        raise _Unknown
    if args[0] == _MARK:
        return MarkSet({"|": "or", "^": "xor", "&": "and"}[op], _mark_int(args[1]))  # type: ignore[arg-type]
    # `mark set mark and A or V` (nft's spelling of setting V under mask ~A)
    ik, iargs = _one_key(args[0])
    if (op == "|" and ik == "&" and isinstance(iargs, list) and len(iargs) == 2
            and iargs[0] == _MARK):
        v, a = _mark_int(args[1]), _mark_int(iargs[1])
        return MarkSet("set", v, ~a & _ALL_ONES)
    raise _Unknown


def _nat_flags(flags: object) -> set[str]:
    if flags is None:
        return set()
    if isinstance(flags, str):
        return {flags}
    if isinstance(flags, list) and all(isinstance(f, str) for f in flags):
        return set(flags)
    raise _Unknown


def _statement(key: str, body: object, family: str) -> Action:
    """The IR action for one statement ``{key: body}``; raises _Unknown."""
    if key in ("accept", "drop", "return", "jump", "goto"):
        return _verdict_value({key: body})
    if key == "reject":
        if body is None:
            return Reject()
        if not isinstance(body, dict) or set(body) - {"type", "expr"}:
            raise _Unknown
        rtype, rexpr = body.get("type"), body.get("expr")
        if not isinstance(rtype, str) or not (rexpr is None or isinstance(rexpr, str)):
            raise _Unknown
        if (rtype, rexpr) in _DEFAULT_REJECT:
            return Reject()
        return Reject(f"{rtype} {rexpr}" if rexpr else rtype)
    if key == "counter":
        if body is None or (isinstance(body, dict) and set(body) <= {"packets", "bytes"}):
            return Counter()
        raise _Unknown
    if key == "mangle":
        return _mangle(body)
    if key == "masquerade":
        if body is None:
            return Masquerade()
        if not isinstance(body, dict) or set(body) - {"flags"}:
            raise _Unknown
        flags = _nat_flags(body.get("flags"))
        if flags - {"fully-random"}:
            raise _Unknown
        return Masquerade("fully-random" in flags)
    if key in ("dnat", "snat"):
        if not isinstance(body, dict) or set(body) - {"addr", "port", "family", "flags"}:
            raise _Unknown
        addr_v = body.get("addr")
        if key == "dnat" and isinstance(addr_v, dict) and set(body) <= {"addr", "family"}:
            return _numgen_dnat_map(addr_v)
        if not isinstance(addr_v, str):
            raise _Unknown
        try:
            addr = _ip(addr_v)
        except ValueError:
            raise _Unknown from None
        port = body.get("port")
        if port is not None and not (isinstance(port, int) and not isinstance(port, bool)
                                     and 0 < port <= 65535):
            raise _Unknown
        flags = _nat_flags(body.get("flags"))
        if key == "dnat":
            if flags:
                raise _Unknown
            return Dnat(addr, port)
        if flags - {"fully-random"}:
            raise _Unknown
        return Snat(addr, port, "fully-random" in flags)
    if key == "vmap":
        if not isinstance(body, dict) or set(body) != {"key", "data"}:
            raise _Unknown
        vkey, data = body["key"], body["data"]
        if isinstance(data, str) and data.startswith("@"):
            return Vmap(_keys(vkey), data[1:])
        nk, ng = _one_key(vkey)
        if nk != "numgen" or not isinstance(ng, dict):
            raise _Unknown
        if ng.get("mode") != "random" or ng.get("offset", 0) != 0 or set(ng) - {
                "mode", "mod", "offset"}:
            raise _Unknown
        mod = ng.get("mod")
        dk, items = _one_key(data)
        if (not isinstance(mod, int) or isinstance(mod, bool) or mod < 1 or dk != "set"
                or not isinstance(items, list) or len(items) != mod):
            raise _Unknown
        targets: dict[int, Jump | Goto] = {}
        for item in items:
            if not isinstance(item, list) or len(item) != 2:
                raise _Unknown
            idx, verdict = item
            v = _verdict_value(verdict)
            if (not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < mod
                    or idx in targets or not isinstance(v, Jump | Goto)):
                raise _Unknown
            targets[idx] = v
        return NumgenVmap(mod, tuple(targets[i] for i in range(mod)))
    if key == "set":
        if not isinstance(body, dict) or set(body) != {"op", "elem", "set"}:
            raise _Unknown
        name = body["set"]
        if body["op"] != "update" or not isinstance(name, str) or not name.startswith("@"):
            raise _Unknown
        return SetUpdate(name[1:], _keys(body["elem"]))
    raise _Unknown


def _numgen_dnat_map(addr_v: dict[str, Any]) -> NumgenDnatMap:
    """kube-proxy 1.36+'s ``dnat ip addr . port to numgen random mod N map { i : A . P }``
    (``nft -j``: ``addr`` is a map from a numgen key to ``concat`` [address, port]
    values); raises _Unknown for any other shape."""
    mk, mp = _one_key(addr_v)
    if mk != "map" or not isinstance(mp, dict) or set(mp) != {"key", "data"}:
        raise _Unknown
    nk, ng = _one_key(mp["key"])
    if (nk != "numgen" or not isinstance(ng, dict) or ng.get("mode") != "random"
            or ng.get("offset", 0) != 0 or set(ng) - {"mode", "mod", "offset"}):
        raise _Unknown
    mod = ng.get("mod")
    dk, items = _one_key(mp["data"])
    if (not isinstance(mod, int) or isinstance(mod, bool) or mod < 1 or dk != "set"
            or not isinstance(items, list) or len(items) != mod):
        raise _Unknown
    targets: dict[int, tuple[IPAddress, int]] = {}
    for item in items:
        if not isinstance(item, list) or len(item) != 2:
            raise _Unknown
        idx, value = item
        ck, pair = _one_key(value)
        if (ck != "concat" or not isinstance(pair, list) or len(pair) != 2
                or not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < mod
                or idx in targets or not isinstance(pair[0], str)):
            raise _Unknown
        port = pair[1]
        if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port <= 65535):
            raise _Unknown
        try:
            targets[idx] = (_ip(pair[0]), port)
        except ValueError:
            raise _Unknown from None
    return NumgenDnatMap(mod, tuple(targets[i] for i in range(mod)))


def _rule(
    exprs: object, family: str, where: str, notes: list[str],
    texts: list[str] | None = None,
) -> tuple[tuple[Match, ...], tuple[Action, ...]]:
    """The matches and actions of one rule's expressions. ``texts[i]``, when given (the nft
    text parser), is expression i as the dump wrote it: what an Unknown* keeps instead of the
    expression's JSON."""
    if not isinstance(exprs, list):
        raise _Bad("expr must be a list", where)
    matches: list[Match] = []
    actions: list[Action] = []
    for i, e in enumerate(exprs):
        if not isinstance(e, dict) or len(e) != 1:
            raise _Bad("each expression must be an object with one key", f"{where}[{i}]")
        orig = texts[i] if texts is not None else None
        ((key, body),) = e.items()
        statement_seen = any(not isinstance(a, Counter) for a in actions)
        if key == "xt" and isinstance(body, dict) and body.get("type") == "match":
            # iptables-nft's compat matches: nft lists only the name. A comment never filters:
            # skipped with a note; any other is a match we cannot see into.
            if body.get("name") == "comment":
                notes.append(f"{where}[{i}]: iptables-nft comment match (text not listed)")
                continue
            key = "match"
            body = None  # not a match we understand: becomes UnknownMatch below
        if key == "match":
            try:
                found = _match(body)
            except (_Unknown, RecursionError):
                found = [UnknownMatch(orig or _text(e))]
            if statement_seen:
                actions.extend(UnknownAction(orig or _text(e)) for _ in found[:1])
            else:
                # `meta l4proto tcp tcp dport 80` (iptables-nft writes both): one Proto
                matches.extend(m for m in found if not (
                    isinstance(m, Proto) and len(found) > 1 and m in matches))
            continue
        try:
            act = _statement(key, body, family)
            if isinstance(act, Vmap | SetUpdate):
                keys, protos = _split_l4(act.keys)
                if protos:
                    matches.extend(p for p in protos if p not in matches)
                    act = (Vmap(keys, act.map_name) if isinstance(act, Vmap)
                           else SetUpdate(act.set_name, keys))
            actions.append(act)
        except (_Unknown, RecursionError):
            if actions or key in _STATEMENT_KEYS:
                actions.append(UnknownAction(orig or _text(e)))
            else:
                matches.append(UnknownMatch(orig or _text(e)))
    return tuple(matches), tuple(actions)


# statements that act (never filter) even when the IR does not model them
_STATEMENT_KEYS = frozenset({
    "accept", "drop", "continue", "jump", "goto", "return", "reject", "counter", "mangle",
    "quota", "limit", "log", "ct helper", "meter", "queue", "vmap", "ct count", "ct timeout",
    "ct expectation", "xt", "dnat", "snat", "masquerade", "redirect", "tproxy", "set", "map",
    "notrack", "dup", "fwd", "synproxy", "flow", "secmark", "last",
})


# ----------------------------------------------------------------------------- objects


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    v = obj.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise _Bad(f"{key} must be a string", f"{where}.{key}")
    return v


def _elements(
    raw: object, is_map: bool, notes: list[str], where: str
) -> tuple[SetElement, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raw = [raw]
    out: list[SetElement] = []
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        value: Verdict | None = None
        if is_map:
            if not isinstance(item, list) or len(item) != 2:
                raise _Bad("a map element must be [key, value]", w)
            item, raw_value = item
            try:
                value = _verdict_value(raw_value)
            except _Unknown:
                notes.append(f"{w}: map value {_text(raw_value)} is not a verdict; not kept")
        comment = None
        if isinstance(item, dict) and "elem" in item and len(item) == 1:
            body = item["elem"]
            if not isinstance(body, dict) or "val" not in body:
                raise _Bad("elem needs a val", w)
            c = body.get("comment")
            if c is not None and not isinstance(c, str):
                raise _Bad("comment must be a string", w)
            comment = c
            item = body["val"]
        if isinstance(item, dict) and "concat" in item and len(item) == 1:
            parts = item["concat"]
            if not isinstance(parts, list) or not parts:
                raise _Bad("concat must be a non-empty list", w)
            key = tuple(_key_item(p, notes, w) for p in parts)
        else:
            key = (_key_item(item, notes, w),)
        out.append(SetElement(key, value, comment))
    return tuple(out)


def _set(obj: dict[str, Any], is_map: bool, notes: list[str], where: str) -> NftSet:
    name = _str(obj, "name", where)
    assert name is not None
    types = obj.get("type")
    if isinstance(types, str):
        key_types: tuple[str, ...] = (types,)
    elif isinstance(types, list) and types and all(isinstance(t, str) for t in types):
        key_types = tuple(types)
    elif types is not None:
        key_types = (_text(types),)
        notes.append(f"{where}: set type {key_types[0]} kept as text")
    else:
        raise _Bad("a set needs a type", f"{where}.type")
    value_type = None
    if is_map:
        mv = obj.get("map")
        if isinstance(mv, list) and mv and all(isinstance(t, str) for t in mv):
            value_type = " . ".join(mv)
        elif isinstance(mv, str):
            value_type = mv
        else:
            raise _Bad("a map needs a value type", f"{where}.map")
    flags_raw = obj.get("flags", [])
    if isinstance(flags_raw, str):
        flags_raw = [flags_raw]
    if not isinstance(flags_raw, list) or not all(isinstance(f, str) for f in flags_raw):
        raise _Bad("flags must be a list of strings", f"{where}.flags")
    timeout = obj.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise _Bad("timeout must be an integer", f"{where}.timeout")
    comment = _str(obj, "comment", where, required=False)
    elems = _elements(obj.get("elem"), value_type == "verdict", notes, f"{where}.elem")
    if is_map and value_type != "verdict" and elems:
        notes.append(f"{where}: values of map {name} ({value_type}) are not kept")
    return NftSet(name, key_types, value_type, tuple(flags_raw), timeout, comment, elems)


def _load(data: str | bytes | dict[str, Any], source: str) -> Any:
    if isinstance(data, dict):
        return data
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise RulesetParseError(f"not JSON: {exc.msg}", file=source, line=exc.lineno) from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise RulesetParseError(f"not JSON: {exc}", file=source) from None


def parse_nft_json(data: str | bytes | dict[str, Any], *, source: str = "<nft -j>") -> Ruleset:
    """The ruleset listed by ``nft -j list ruleset`` (text, bytes, or decoded ``dict``).

    Raises ``RulesetParseError`` (``file=source``; ``field`` names the item, e.g.
    ``nftables[7].rule``) when the input is not JSON or not libnftables' shape.
    """
    doc = _load(data, source)
    if not isinstance(doc, dict) or not isinstance(doc.get("nftables"), list):
        raise RulesetParseError('expected an object {"nftables": [...]}', file=source)
    return parse_nft_items(doc["nftables"], source=source)


@dataclass(frozen=True, slots=True)
class ItemOrigin:
    """Where the nft text parser found an item: its line, its text as written, and (rules)
    each expression's text."""

    line: int
    text: str
    expr_texts: list[str] | None = None


def parse_nft_items(
    items: list[Any], *, source: str, origins: list[ItemOrigin | None] | None = None,
    notes: list[str] | None = None,
) -> Ruleset:
    """The ruleset of libnftables JSON ``items`` (the list under ``"nftables"``). Shared by
    ``parse_nft_json`` and the text parser (``parse_nft_text``), which passes ``origins``
    (one per item): rules then carry the dump's line and text, errors name the line."""
    notes = [] if notes is None else notes
    idx = 0
    try:
        tables: dict[tuple[str, str], dict[str, Any]] = {}
        for idx, item in enumerate(items):
            where = f"nftables[{idx}]"
            if not isinstance(item, dict) or len(item) != 1:
                raise _Bad("each item must be an object with one key", where)
            ((kind, obj),) = item.items()
            where = f"{where}.{kind}"
            if kind == "metainfo":
                continue
            if kind not in ("table", "chain", "rule", "set", "map"):
                notes.append(f"{where}: {kind} objects are not part of the IR; skipped")
                continue
            if not isinstance(obj, dict):
                raise _Bad(f"{kind} must be an object", where)
            family = _str(obj, "family", where)
            assert family is not None
            if kind == "table":
                name = _str(obj, "name", where)
                assert name is not None
                if (family, name) in tables:
                    raise _Bad(f"table {family} {name} listed twice", where)
                tables[(family, name)] = {
                    "comment": _str(obj, "comment", where, required=False),
                    "chains": {}, "rules": {}, "sets": [],
                }
                continue
            tname = _str(obj, "table", where)
            assert tname is not None
            t = tables.get((family, tname))
            if t is None:
                raise _Bad(f"table {family} {tname} is not listed before this item", where)
            if kind == "chain":
                name = _str(obj, "name", where)
                assert name is not None
                if name in t["chains"]:
                    raise _Bad(f"chain {name} listed twice", where)
                prio = obj.get("prio")
                if prio is not None and (not isinstance(prio, int) or isinstance(prio, bool)):
                    raise _Bad("prio must be an integer", f"{where}.prio")
                t["chains"][name] = Chain(
                    name,
                    hook=_str(obj, "hook", where, required=False),
                    type=_str(obj, "type", where, required=False),
                    priority=prio,
                    policy=_str(obj, "policy", where, required=False),
                    comment=_str(obj, "comment", where, required=False),
                )
                t["rules"][name] = []
            elif kind == "rule":
                cname = _str(obj, "chain", where)
                assert cname is not None
                if cname not in t["chains"]:
                    raise _Bad(f"chain {cname} is not listed before this rule", where)
                origin = origins[idx] if origins is not None else None
                matches, actions = _rule(obj.get("expr", []), family, f"{where}.expr", notes,
                                         origin.expr_texts if origin is not None else None)
                loc = (SourceLoc(source, origin.line, origin.text) if origin is not None
                       else SourceLoc(source, 0, _text(item), where))
                t["rules"][cname].append(
                    Rule(matches, actions, _str(obj, "comment", where, required=False), loc)
                )
            else:
                t["sets"].append(_set(obj, kind == "map", notes, where))
    except _Bad as exc:
        origin = origins[idx] if origins is not None and idx < len(origins) else None
        if origin is not None:
            raise RulesetParseError(str(exc), file=source, line=origin.line) from None
        raise RulesetParseError(str(exc), file=source, field=exc.where or None) from None
    except RecursionError:
        raise RulesetParseError("nesting too deep", file=source) from None
    out = []
    for (family, name), t in tables.items():
        chains = tuple(
            Chain(c.name, tuple(t["rules"][c.name]), c.hook, c.type, c.priority, c.policy,
                  c.comment)
            for c in t["chains"].values()
        )
        out.append(Table(name, family, chains, tuple(t["sets"]), t["comment"]))
    return Ruleset("nftables", tuple(out), tuple(notes))
