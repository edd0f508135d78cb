"""Render nftables IR as the libnftables JSON that ``nft -j list ruleset`` prints.

``render_nft_json(ruleset)`` is the inverse of ``parse_nft_json``:
``parse_nft_json(render_nft_json(r)) == r`` for every ruleset within nft's vocabulary (see
``parse_nft`` for the mapping). The output has the listing's shape and order: ``metainfo``;
then per table the table, its sets and maps (with ``elem``), its chains, then every rule chain
by chain. Objects carry no handles. The same document loads with ``nft -j -f FILE`` (plain
objects in a JSON input mean ``add``).

Where nft's own listing would differ from a literal transcription, this renderer writes what the
parser maps back to the same IR: ``Proto`` is ``meta l4proto`` and ``Port`` is ``th`` (a real
listing may fold them into ``tcp dport``, which the parser splits back), ``Reject()`` is
``{"reject": null}``. ``UnknownMatch``/``UnknownAction`` must hold the JSON text of an
expression (as ``parse_nft_json`` writes them); iptables-only matches (``Statistic``,
``Recent``, ``Nfacct``) and conntrack states mixing ``DNAT``/``SNAT`` with others raise
``NftJsonRenderError``.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from sourceip.errors import SourceIPError
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
    Table,
    UnknownAction,
    UnknownMatch,
    Vmap,
)

__all__ = ["NftJsonRenderError", "key_expr", "render_nft_json"]

_ALL_ONES = 0xFFFFFFFF
_MARK: dict[str, Any] = {"meta": {"key": "mark"}}
_UNQUALIFIED_META = frozenset({"iifname", "oifname", "iif", "oif"})
JSON_SCHEMA_VERSION = 1


class NftJsonRenderError(SourceIPError):
    """The IR holds something libnftables JSON cannot express."""


def key_expr(text: str) -> dict[str, Any]:
    """The JSON expression of a key written as nft text: ``ip daddr`` -> payload,
    ``meta l4proto`` / ``iifname`` -> meta, ``ct state`` -> ct."""
    parts = text.split()
    if len(parts) == 1 and parts[0] in _UNQUALIFIED_META:
        return {"meta": {"key": parts[0]}}
    if len(parts) == 2:
        head, name = parts
        if head == "meta" and name not in _UNQUALIFIED_META:
            return {"meta": {"key": name}}
        if head == "ct":
            return {"ct": {"key": name}}
        if head not in ("meta", "ct"):
            return {"payload": {"protocol": head, "field": name}}
    raise NftJsonRenderError(f"cannot write key {text!r} as JSON")


def _keys(keys: tuple[str, ...]) -> dict[str, Any]:
    if not keys:
        raise NftJsonRenderError("a lookup needs at least one key")
    if len(keys) == 1:
        return key_expr(keys[0])
    return {"concat": [key_expr(k) for k in keys]}


def _addr(a: AddrLike) -> Any:
    if isinstance(a, IPv4Network | IPv6Network):
        if a.prefixlen == a.max_prefixlen:
            return str(a.network_address)
        return {"prefix": {"addr": str(a.network_address), "len": a.prefixlen}}
    return str(a)


def _port(p: int | tuple[int, int]) -> Any:
    return {"range": [p[0], p[1]]} if isinstance(p, tuple) else p


def _m(op_negate: bool, left: Any, right: Any, *, positive: str = "==") -> dict[str, Any]:
    return {"match": {"op": "!=" if op_negate else positive, "left": left, "right": right}}


def _unknown(text: str, what: str) -> Any:
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or len(obj) != 1:
        raise NftJsonRenderError(f"{what} {text!r} is not the JSON text of an nft expression")
    return obj


def _match(m: Match, family: str) -> list[dict[str, Any]]:
    if isinstance(m, Proto):
        right: Any = int(m.proto) if m.proto.isdigit() else m.proto
        return [_m(m.negate, {"meta": {"key": "l4proto"}}, right)]
    if isinstance(m, Addr):
        if not m.nets:
            raise NftJsonRenderError("an address match needs at least one address")
        version = m.nets[0].version
        proto = "ip6" if version == 6 else "ip"
        left: dict[str, Any] = {
            "payload": {"protocol": proto, "field": "saddr" if m.field == "src" else "daddr"}}
        if m.braces or len(m.nets) != 1:
            return [_m(m.negate, left, {"set": [_addr(n) for n in m.nets]})]
        return [_m(m.negate, left, _addr(m.nets[0]))]
    if isinstance(m, Port):
        left = {"payload": {"protocol": m.proto or "th", "field": m.field}}
        if len(m.ports) == 1:
            return [_m(m.negate, left, _port(m.ports[0]))]
        return [_m(m.negate, left, {"set": [_port(p) for p in m.ports]})]
    if isinstance(m, Iface):
        name = m.name[:-1] + "*" if m.name.endswith("+") else m.name
        return [_m(m.negate, {"meta": {"key": "iifname" if m.direction == "in" else "oifname"}},
                   name)]
    if isinstance(m, AddrType):
        flags = ["saddr" if m.field == "src" else "daddr"]
        if m.limit_iface_out:
            flags.append("oif")
        types = [t.lower() for t in m.type.split(",")]
        right = types[0] if len(types) == 1 else {"set": types}
        return [_m(m.negate, {"fib": {"result": "type", "flags": flags}}, right)]
    if isinstance(m, Mark):
        left = _MARK if m.mask == _ALL_ONES else {"&": [_MARK, m.mask]}
        return [_m(m.negate, left, m.value)]
    if isinstance(m, CtState):
        states = [s.lower() for s in m.states]
        status = {"dnat", "snat"} & set(states)
        if status and len(status) != len(states):
            raise NftJsonRenderError(
                f"conntrack states {m.states} mix status (DNAT/SNAT) and state in one match")
        key = "status" if status else "state"
        right = states[0] if len(states) == 1 else states
        return [_m(m.negate, {"ct": {"key": key}}, right, positive="in")]
    if isinstance(m, SetLookup):
        return [_m(m.negate, _keys(m.keys), "@" + m.set_name)]
    if isinstance(m, UnknownMatch):
        return [_unknown(m.text, "UnknownMatch")]
    raise NftJsonRenderError(f"{type(m).__name__} is an iptables-only match")


def _verdict(v: Action) -> dict[str, Any]:
    if isinstance(v, Jump):
        return {"jump": {"target": v.chain}}
    if isinstance(v, Goto):
        return {"goto": {"target": v.chain}}
    if isinstance(v, Accept):
        return {"accept": None}
    if isinstance(v, Drop):
        return {"drop": None}
    if isinstance(v, Return):
        return {"return": None}
    raise NftJsonRenderError(f"{v!r} is not a verdict a map can hold")


def _nat(addr: IPv4Address | IPv6Address, port: int | None, family: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if family == "inet":
        body["family"] = "ip6" if addr.version == 6 else "ip"
    body["addr"] = str(addr)
    if port is not None:
        body["port"] = port
    return body


def _action(a: Action, family: str) -> dict[str, Any]:
    if isinstance(a, Jump | Goto | Accept | Drop | Return):
        return _verdict(a)
    if isinstance(a, Reject):
        if not a.with_:
            return {"reject": None}
        rtype, _, rexpr = a.with_.partition(" ")
        if rtype == "tcp":
            return {"reject": {"type": a.with_}}
        body: dict[str, Any] = {"type": rtype}
        if rexpr:
            body["expr"] = rexpr
        return {"reject": body}
    if isinstance(a, Counter):
        return {"counter": {"packets": 0, "bytes": 0}}
    if isinstance(a, MarkSet):
        if a.op == "set":
            if a.mask == _ALL_ONES:
                value: Any = a.value
            else:
                value = {"|": [{"&": [_MARK, ~a.mask & _ALL_ONES]}, a.value]}
        else:
            if a.mask != _ALL_ONES:
                raise NftJsonRenderError(f"mark {a.op} with a mask has no nft form")
            value = {{"or": "|", "xor": "^", "and": "&"}[a.op]: [_MARK, a.value]}
        return {"mangle": {"key": _MARK, "value": value}}
    if isinstance(a, Masquerade):
        if a.ports is not None:
            raise NftJsonRenderError(f"{a!r}: MASQUERADE --to-ports is written as iptables only")
        return {"masquerade": {"flags": "fully-random"}} if a.random_fully else {
            "masquerade": None}
    if isinstance(a, Dnat):
        return {"dnat": _nat(a.addr, a.port, family)}
    if isinstance(a, Snat):
        body = _nat(a.addr, a.port, family)
        if a.random_fully:
            body["flags"] = "fully-random"
        return {"snat": body}
    if isinstance(a, Vmap):
        return {"vmap": {"key": _keys(a.keys), "data": "@" + a.map_name}}
    if isinstance(a, NumgenVmap):
        if a.mod != len(a.targets):
            raise NftJsonRenderError("numgen mod must equal the number of targets")
        return {"vmap": {
            "key": {"numgen": {"mode": "random", "mod": a.mod, "offset": 0}},
            "data": {"set": [[i, _verdict(t)] for i, t in enumerate(a.targets)]},
        }}
    if isinstance(a, NumgenDnatMap):  # what `nft -j` lists for kube-proxy 1.36+'s DNAT
        fam_ = "ip6" if a.targets and a.targets[0][0].version == 6 else "ip"
        return {"dnat": {"family": fam_, "addr": {"map": {
            "key": {"numgen": {"mode": "random", "mod": a.mod, "offset": 0}},
            "data": {"set": [[i, {"concat": [str(ip), port]}]
                             for i, (ip, port) in enumerate(a.targets)]},
        }}}}
    if isinstance(a, SetUpdate):
        return {"set": {"op": "update", "elem": _keys(a.keys), "set": "@" + a.set_name}}
    if isinstance(a, UnknownAction):
        return _unknown(a.text, "UnknownAction")  # type: ignore[no-any-return]
    raise NftJsonRenderError(f"{type(a).__name__} cannot be written as nft JSON")


def _rule(table: Table, chain: Chain, rule: Rule) -> dict[str, Any]:
    fam = table.family
    expr: list[dict[str, Any]] = []
    for m in rule.matches:
        expr.extend(_match(m, fam))
    expr.extend(_action(a, fam) for a in rule.actions)
    body: dict[str, Any] = {"family": fam, "table": table.name, "chain": chain.name, "expr": expr}
    if rule.comment is not None:
        body["comment"] = rule.comment
    return {"rule": body}


def _key_item(k: AddrLike | str | int) -> Any:
    if isinstance(k, IPv4Network | IPv6Network | IPv4Address | IPv6Address):
        return _addr(k)
    return k


def _element(s: NftSet, e: SetElement) -> Any:
    key: Any = _key_item(e.key[0]) if len(e.key) == 1 else {
        "concat": [_key_item(k) for k in e.key]}
    if e.comment is not None:
        key = {"elem": {"val": key, "comment": e.comment}}
    if s.is_map:
        if e.value is None:
            raise NftJsonRenderError(f"element {e.key} of map {s.name} has no value")
        return [key, _verdict(e.value)]
    return key


def _set(table: Table, s: NftSet) -> dict[str, Any]:
    kind = "map" if s.is_map else "set"
    body: dict[str, Any] = {"family": table.family, "name": s.name, "table": table.name,
                            "type": s.key_types[0] if len(s.key_types) == 1 else
                            list(s.key_types)}
    if s.is_map:
        body["map"] = s.value_type
    if s.flags:
        body["flags"] = list(s.flags)
    if s.timeout is not None:
        body["timeout"] = s.timeout
    if s.comment is not None:
        body["comment"] = s.comment
    if s.elements:
        body["elem"] = [_element(s, e) for e in s.elements]
    return {kind: body}


def _chain(table: Table, c: Chain) -> dict[str, Any]:
    body: dict[str, Any] = {"family": table.family, "table": table.name, "name": c.name}
    if c.comment is not None:
        body["comment"] = c.comment
    for key, value in (("type", c.type), ("hook", c.hook), ("prio", c.priority),
                       ("policy", c.policy)):
        if value is not None:
            body[key] = value
    return {"chain": body}


def render_nft_json(ruleset: Ruleset) -> dict[str, Any]:
    """The libnftables JSON document listing ``ruleset`` (see the module docstring)."""
    items: list[dict[str, Any]] = [{"metainfo": {"json_schema_version": JSON_SCHEMA_VERSION}}]
    for table in ruleset.tables:
        tbody: dict[str, Any] = {"family": table.family, "name": table.name}
        if table.comment is not None:
            tbody["comment"] = table.comment
        items.append({"table": tbody})
        items.extend(_set(table, s) for s in table.sets)
        items.extend(_chain(table, c) for c in table.chains)
        for c in table.chains:
            items.extend(_rule(table, c, r) for r in c.rules)
    return {"nftables": items}
