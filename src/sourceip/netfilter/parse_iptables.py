"""Parse ``iptables-save`` output (and iptables-restore input) into the rule IR.

``parse_iptables_save(text)`` reads what ``iptables-save`` / ``ip6tables-save`` print on a real
node, and what ``render_iptables`` writes (kube-proxy's iptables-restore style):

* tables ``*nat`` ... ``COMMIT``; chain declarations ``:NAME POLICY [packets:bytes]`` (``-`` is
  a user chain); rules ``-A CHAIN ...`` (also ``-I CHAIN [n]`` and ``-N CHAIN`` of restore
  input), optionally preceded by ``[packets:bytes]`` (``iptables-save -c``);
* options in any order: kube-proxy's ``-m tcp -p tcp -d X --dport N`` and iptables-save's
  canonical ``-d X/32 -p tcp -m comment --comment "..." -m tcp --dport N``; negation before
  (``! -s x``) or after the option (old ``-s ! x``);
* iptables-restore's quoting (``--comment "a b"``; inside double quotes a backslash escapes
  the next character, e.g. ``\\"``; single quotes are ordinary characters); a line is split
  character by character only when it holds a ``"``.

Mapping to the IR (see ``netfilter.ir``): ``-p`` plus the protocol's ``-m tcp`` become one
``Proto``; a /32 (/128) becomes an address; the comment goes to ``Rule.comment``. Each match
keeps the position where its option (ports, addresses, protocol) or its ``-m`` (the other
modules) appeared. Normalisations of what iptables-save prints, each the kernel's default:
``--reject-with icmp-port-unreachable`` (``icmp6-port-unreachable`` for IPv6) is ``Reject()``;
``-m recent --mask 255.255.255.255`` (all ones) is ``mask=""``; ``-j MARK --set-xmark V/M``
(the only form iptables-save prints) becomes the ``MarkSet`` it is equivalent to (``M == V``:
``or``; ``M == 0``: ``xor``; ``V == 0``: ``and ~M``; ``M`` all ones: ``set``).

Everything else is kept, never dropped: a module or target the IR cannot express becomes
``UnknownMatch`` / ``UnknownAction`` with its original tokens (``-m physdev --physdev-is-in``,
``-j LOG --log-prefix "x"``); a ``-j NAME`` whose NAME is not a chain of the table is an
``UnknownAction`` (an extension target such as ``-j NOTRACK``). Real syntax errors raise
``RulesetParseError`` with ``file`` and ``line``. Every rule carries ``Rule.loc``: the file,
its line number and the line as written (counters ``[p:b]`` included), for traces to quote.
"""

from __future__ import annotations

import gc
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from sourceip.errors import RulesetParseError
from sourceip.net.addr import ip_from_text
from sourceip.netfilter.ir import (
    Accept,
    Action,
    Addr,
    AddrLike,
    AddrRange,
    AddrType,
    Chain,
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
    Nfacct,
    Port,
    Proto,
    Recent,
    Reject,
    Return,
    Rule,
    Ruleset,
    Snat,
    SourceLoc,
    Statistic,
    Table,
    UnknownAction,
    UnknownMatch,
)

__all__ = ["BUILTIN_CHAINS", "parse_iptables_save"]

_ALL_ONES = 0xFFFFFFFF

BUILTIN_CHAINS: dict[str, frozenset[str]] = {
    "filter": frozenset({"INPUT", "FORWARD", "OUTPUT"}),
    "nat": frozenset({"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}),
    "mangle": frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}),
    "raw": frozenset({"PREROUTING", "OUTPUT"}),
    "security": frozenset({"INPUT", "FORWARD", "OUTPUT"}),
}
_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})

# generic (non-module) options -> canonical name
_GENERIC: dict[str, str] = {
    "-s": "-s", "--source": "-s", "--src": "-s",
    "-d": "-d", "--destination": "-d", "--dst": "-d",
    "-i": "-i", "--in-interface": "-i",
    "-o": "-o", "--out-interface": "-o",
    "-p": "-p", "--protocol": "-p",
    "-m": "-m", "--match": "-m",
    "-j": "-j", "--jump": "-j",
    "-g": "-g", "--goto": "-g",
    "-f": "-f", "--fragment": "-f",
    "-c": "-c", "--set-counters": "-c",
    "-4": "-4", "--ipv4": "-4",
    "-6": "-6", "--ipv6": "-6",
}

# known modules: option -> number of arguments (canonical option name after aliasing)
_PORT_OPTS = {"--dport": 1, "--sport": 1}
_MODULE_OPTS: dict[str, dict[str, int]] = {
    "tcp": {**_PORT_OPTS, "--tcp-flags": 2, "--syn": 0, "--tcp-option": 1},
    "udp": dict(_PORT_OPTS),
    "sctp": {**_PORT_OPTS, "--chunk-types": 2},
    "multiport": {"--dports": 1, "--sports": 1, "--ports": 1},
    "comment": {"--comment": 1},
    "mark": {"--mark": 1},
    "conntrack": {
        "--ctstate": 1, "--ctstatus": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1,
        "--ctreplsrc": 1, "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1,
        "--ctreplsrcport": 1, "--ctrepldstport": 1, "--ctexpire": 1, "--ctdir": 1,
    },
    "state": {"--state": 1},
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0,
                 "--limit-iface-out": 0},
    "statistic": {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1},
    "recent": {
        "--name": 1, "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0, "--seconds": 1,
        "--reap": 0, "--hitcount": 1, "--rttl": 0, "--rsource": 0, "--rdest": 0, "--mask": 1,
    },
    "nfacct": {"--nfacct-name": 1},
    "iprange": {"--src-range": 1, "--dst-range": 1},
    "icmp": {"--icmp-type": 1},
    "icmp6": {"--icmpv6-type": 1},
}
_OPT_ALIASES = {
    "--destination-port": "--dport", "--source-port": "--sport",
    "--destination-ports": "--dports", "--source-ports": "--sports",
}
_VALUE_OPTS = frozenset({"-s", "-d", "-i", "-o", "-p"})
_IMPLICIT_PROTO_MODULES = frozenset({"tcp", "udp", "sctp", "icmp", "icmp6"})
_PER_OPTION_MODULES = frozenset({"tcp", "udp", "sctp", "multiport"})

_TARGET_OPTS: dict[str, dict[str, int]] = {
    "ACCEPT": {}, "DROP": {}, "RETURN": {},
    "REJECT": {"--reject-with": 1},
    "DNAT": {"--to-destination": 1, "--random": 0, "--persistent": 0},
    "SNAT": {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
    "MASQUERADE": {"--to-ports": 1, "--random": 0, "--random-fully": 0},
    "MARK": {"--set-xmark": 1, "--set-mark": 1, "--or-mark": 1, "--xor-mark": 1,
             "--and-mark": 1},
}
_DEFAULT_REJECT = frozenset({"icmp-port-unreachable", "icmp6-port-unreachable"})


class _Unknown(Exception):
    """Internal: the module or target cannot be expressed in the IR; keep its text."""


def _join(tokens: list[str]) -> str:
    """Tokens back to text, quoted as a shell would need (``--comment "a b"``)."""
    return " ".join(t if t and _SAFE.issuperset(t) else _quote(t) for t in tokens)


def _quote(text: str) -> str:
    """Double-quoted as iptables-save writes it: ``"a b"``, ``\\"`` and ``\\\\`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:,+=@%[]^!"
)

# ----------------------------------------------------------------------------- values


_ip = ip_from_text  # dotted quads by inet_pton (net/addr.py)


@lru_cache(maxsize=65536)
def _addr(text: str) -> AddrLike:
    """``10.0.0.1``, ``10.0.0.1/32`` -> address; ``10.0.0.0/8`` -> network (host bits masked,
    as iptables does); ``10.0.0.0/255.0.0.0`` works too. Raises ValueError."""
    if "/" not in text:
        return _ip(text)
    if text.endswith("/32") and "." in text:
        return _ip(text[:-3])
    net = ipaddress.ip_network(text, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return net.network_address
    return net


@lru_cache(maxsize=4096)
def _port(text: str) -> int | tuple[int, int]:
    if ":" in text:
        lo_s, hi_s = text.split(":", 1)
        lo = int(lo_s) if lo_s else 0
        hi = int(hi_s) if hi_s else 65535
        if not (lo_s.isdigit() or not lo_s) or not (hi_s.isdigit() or not hi_s):
            raise ValueError(text)
        if not 0 <= lo <= hi <= 65535:
            raise ValueError(text)
        return (lo, hi)
    if not text.isdigit():
        raise ValueError(text)
    value = int(text)
    if value > 65535:
        raise ValueError(text)
    return value


def _int(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= _ALL_ONES:
        raise ValueError(text)
    return value


def _value_mask(text: str) -> tuple[int, int | None]:
    if "/" in text:
        v, m = text.split("/", 1)
        return _int(v), _int(m)
    return _int(text), None


def _hostport(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int | None]:
    """``10.0.0.1``, ``10.0.0.1:80``, ``[fd00::1]:80``, ``fd00::1``; ranges raise ValueError."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(text)
        port = None
        if rest:
            if not rest.startswith(":"):
                raise ValueError(text)
            port = _single_port(rest[1:])
        return ipaddress.ip_address(host), port
    if text.count(":") == 1:
        host, port_s = text.split(":")
        return _ip(host), _single_port(port_s)
    return _ip(text), None


def _single_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ValueError(text)
    return int(text)


def _xmark(value: int, mask: int) -> MarkSet:
    """The ``MarkSet`` equivalent to ``--set-xmark value/mask``: mark = (mark & ~mask) ^ value.
    Raises _Unknown when it is none of or/xor/and/set (value bits outside the mask)."""
    if mask == _ALL_ONES:
        return MarkSet("set", value)
    if mask == 0:
        return MarkSet("xor", value)
    if value == mask:
        return MarkSet("or", value)
    if value == 0:
        return MarkSet("and", ~mask & _ALL_ONES)
    if value & ~mask & _ALL_ONES == 0:
        return MarkSet("set", value, mask)
    raise _Unknown


@lru_cache(maxsize=65536)
def _addr_match(opt: str, value: str, neg: bool) -> Match:
    """``-s``/``-d`` VALUE (comma lists allowed) as one ``Addr``; cached: dumps repeat them."""
    try:
        nets = tuple(_addr(v) for v in value.split(","))
    except ValueError:
        return UnknownMatch(_join((["!"] if neg else []) + [opt, value]))
    return Addr("src" if opt == "-s" else "dst", nets, neg)


@lru_cache(maxsize=4096)
def _iface_match(opt: str, value: str, neg: bool) -> Iface:
    return Iface("in" if opt == "-i" else "out", value, neg)


@lru_cache(maxsize=1024)
def _proto_match(value: str, neg: bool) -> Proto:
    return Proto(value, neg)


@lru_cache(maxsize=65536)
def _jump(name: str) -> Jump:
    return Jump(name)


# ----------------------------------------------------------------------------- modules

_Opt = tuple[bool, str, list[str]]  # (negated, option, arguments)


def _mod_text(name: str, opts: list[_Opt]) -> str:
    toks = ["-m", name]
    for neg, opt, args in opts:
        if neg:
            toks.append("!")
        toks.append(opt)
        toks.extend(args)
    return _join(toks)


def _m_mark(opts: list[_Opt]) -> list[Match]:
    out: list[Match] = []
    for neg, opt, args in opts:
        if opt != "--mark":
            raise _Unknown
        value, mask = _value_mask(args[0])
        out.append(Mark(value, _ALL_ONES if mask is None else mask, neg))
    return out


def _m_conntrack(opts: list[_Opt]) -> list[Match]:
    out: list[Match] = []
    for neg, opt, args in opts:
        if opt not in ("--ctstate", "--state"):
            raise _Unknown
        states = tuple(s.upper() for s in args[0].split(","))
        if not all(states):
            raise _Unknown
        out.append(CtState(states, neg))
    return out


def _m_addrtype(opts: list[_Opt]) -> list[Match]:
    out: list[AddrType] = []
    limit_out = False
    for neg, opt, args in opts:
        if opt == "--src-type":
            out.append(AddrType("src", args[0], neg))
        elif opt == "--dst-type":
            out.append(AddrType("dst", args[0], neg))
        elif opt == "--limit-iface-out" and not neg:
            limit_out = True
        else:
            raise _Unknown
    if not out:
        raise _Unknown
    if limit_out:
        out = [AddrType(a.field, a.type, a.negate, True) for a in out]
    return list(out)


def _m_statistic(opts: list[_Opt]) -> list[Match]:
    seen = {opt: (neg, args) for neg, opt, args in opts}
    if len(seen) != len(opts) or set(seen) != {"--mode", "--probability"}:
        raise _Unknown
    if seen["--mode"] != (False, ["random"]) or seen["--probability"][0]:
        raise _Unknown
    prob = seen["--probability"][1][0]
    float(prob)  # must be a decimal number
    if "e" in prob.lower() or not prob.replace(".", "", 1).isdigit():
        raise _Unknown
    return [Statistic(prob)]


def _m_recent(opts: list[_Opt]) -> list[Match]:
    name = "DEFAULT"
    action: str | None = None
    seconds: int | None = None
    reap = False
    mask = ""
    side = "source"
    for neg, opt, args in opts:
        if neg:
            raise _Unknown
        if opt == "--name":
            name = args[0]
        elif opt in ("--set", "--rcheck", "--update"):
            if action is not None:
                raise _Unknown
            action = opt[2:]
        elif opt == "--seconds":
            if not args[0].isdigit():
                raise _Unknown
            seconds = int(args[0])
        elif opt == "--reap":
            reap = True
        elif opt == "--mask":
            mask = "" if args[0] in ("255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                                     ) else args[0]
        elif opt == "--rsource":
            side = "source"
        elif opt == "--rdest":
            side = "dest"
        else:
            raise _Unknown
    if action is None:
        raise _Unknown
    return [Recent(name, action, seconds, reap, mask, side)]  # type: ignore[arg-type]


def _m_nfacct(opts: list[_Opt]) -> list[Match]:
    if len(opts) != 1 or opts[0][0] or opts[0][1] != "--nfacct-name":
        raise _Unknown
    return [Nfacct(opts[0][2][0])]


def _port_range(text: str) -> bool:
    """``P`` or ``P-Q`` with 1 <= P <= Q <= 65535 (libxt_MASQUERADE's --to-ports)."""
    lo, _, hi = text.partition("-")
    if not lo.isdigit() or hi and not hi.isdigit():
        return False
    a, b = int(lo), int(hi or lo)
    return 1 <= a <= b <= 65535


def _m_iprange(opts: list[_Opt]) -> list[Match]:
    """``-m iprange [!] --src-range LO-HI [!] --dst-range LO-HI`` (libxt_iprange prints both
    ends as addresses, one family, ``lo <= hi``; anything else stays an unknown match)."""
    out: list[Match] = []
    for neg, opt, args in opts:
        lo_text, sep, hi_text = args[0].partition("-")
        if not sep or opt not in ("--src-range", "--dst-range"):
            raise _Unknown
        try:
            lo, hi = _ip(lo_text), _ip(hi_text)
        except ValueError:
            raise _Unknown from None
        if lo.version != hi.version or lo > hi:  # type: ignore[operator]  # same version
            raise _Unknown
        out.append(AddrRange("src" if opt == "--src-range" else "dst", lo, hi, neg))
    if not out:
        raise _Unknown
    return out


_MODULE_BUILDERS: dict[str, Callable[[list[_Opt]], list[Match]]] = {
    "mark": _m_mark,
    "conntrack": _m_conntrack,
    "state": _m_conntrack,
    "addrtype": _m_addrtype,
    "statistic": _m_statistic,
    "recent": _m_recent,
    "nfacct": _m_nfacct,
    "iprange": _m_iprange,
}


@lru_cache(maxsize=16384)
def _port_match(module: str, neg: bool, opt: str, arg: str) -> Match:
    """A per-option match of tcp/udp/sctp/multiport, placed where the option stood."""
    try:
        if opt in ("--dport", "--sport"):
            return Port(opt[2:], (_port(arg),), neg)  # type: ignore[arg-type]
        if opt in ("--dports", "--sports"):
            ports = tuple(_port(p) for p in arg.split(","))
            return Port(opt[2:-1], ports, neg)  # type: ignore[arg-type]
    except ValueError:
        pass
    return UnknownMatch(_mod_text(module, [(neg, opt, [arg])]))


# ----------------------------------------------------------------------------- targets


def _target(name: str, opts: list[_Opt]) -> Action:
    """The action of ``-j NAME opts``; raises _Unknown for what the IR cannot hold."""
    if any(neg for neg, _, _ in opts):
        raise _Unknown
    seen: dict[str, list[str]] = {}
    for _, opt, args in opts:
        if opt in seen:
            raise _Unknown
        seen[opt] = args
    if name in ("ACCEPT", "DROP", "RETURN"):
        if seen:
            raise _Unknown
        simple: dict[str, Action] = {"ACCEPT": Accept(), "DROP": Drop(), "RETURN": Return()}
        return simple[name]
    if name == "REJECT":
        if set(seen) - {"--reject-with"}:
            raise _Unknown
        with_ = seen.get("--reject-with", [""])[0]
        return Reject("" if with_ in _DEFAULT_REJECT else with_)
    if name == "DNAT":
        if set(seen) != {"--to-destination"}:
            raise _Unknown
        addr, port = _hostport(seen["--to-destination"][0])
        return Dnat(addr, port)
    if name == "SNAT":
        if "--to-source" not in seen or set(seen) - {"--to-source", "--random-fully"}:
            raise _Unknown
        addr, port = _hostport(seen["--to-source"][0])
        return Snat(addr, port, "--random-fully" in seen)
    if name == "MASQUERADE":
        if set(seen) - {"--random-fully", "--to-ports"}:
            raise _Unknown
        ports = seen["--to-ports"][0] if "--to-ports" in seen else None
        if ports is not None and not _port_range(ports):
            raise _Unknown
        return Masquerade("--random-fully" in seen, ports)
    if name == "MARK":
        if len(seen) != 1:
            raise _Unknown
        ((opt, args),) = seen.items()
        value, mask = _value_mask(args[0])
        if opt == "--set-xmark":
            return _xmark(value, _ALL_ONES if mask is None else mask)
        if opt == "--set-mark":
            return MarkSet("set", value, _ALL_ONES if mask is None else mask)
        if mask is not None:
            raise _Unknown
        return MarkSet(opt[2:-5], value)  # type: ignore[arg-type]
    raise _Unknown


# ----------------------------------------------------------------------------- rules


@dataclass(slots=True)
class _Module:
    name: str
    opts: list[_Opt] = field(default_factory=list)


@dataclass(slots=True)
class _PendingRule:
    """A rule whose jump target may still turn out to be an extension target."""

    chain: str
    rule: Rule
    line: int
    jump: str | None  # -j NAME without options, not a built-in target


class _LineError(Exception):
    pass


def _tokenize(line: str) -> list[str]:
    """Split a line as iptables-restore does (``add_param_to_argv``): whitespace separates
    tokens; ``"`` opens and closes quoting; inside quotes ``\\`` escapes the next character.
    Single quotes and backslashes outside quotes are ordinary characters."""
    if '"' not in line:
        return line.split()
    if "\\" in line:
        return _tokenize_slow(line)
    parts = line.split('"')
    if not len(parts) & 1:
        raise _LineError("unterminated quote")
    tokens: list[str] = []
    cur: str | None = None  # a token still open (a quoted part may continue it)
    for idx, part in enumerate(parts):
        if idx & 1:
            cur = part if cur is None else cur + part
            continue
        if not part:
            continue
        words = part.split()
        if not words or part[0].isspace():
            if cur is not None:
                tokens.append(cur)
                cur = None
            if not words:
                continue
        if cur is not None:
            words[0] = cur + words[0]
            cur = None
        if part[-1].isspace():
            tokens.extend(words)
        else:
            tokens.extend(words[:-1])
            cur = words[-1]
    if cur is not None:
        tokens.append(cur)
    return tokens


def _tokenize_slow(line: str) -> list[str]:
    tokens: list[str] = []
    buf: list[str] = []
    started = False
    quote = escaped = False
    for ch in line:
        if quote:
            if escaped:
                buf.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quote = False
            else:
                buf.append(ch)
            continue
        if ch == '"':
            quote = started = True
        elif ch.isspace():
            if started:
                tokens.append("".join(buf))
                buf.clear()
                started = False
        else:
            buf.append(ch)
            started = True
    if quote:
        raise _LineError("unterminated quote")
    if started:
        tokens.append("".join(buf))
    return tokens


def _parse_rule(toks: list[str], pos: int, loc: SourceLoc | None = None
                ) -> tuple[Rule, str | None]:
    """Parse the options of one rule starting at ``toks[pos]``; returns the rule (located at
    ``loc``) and, for a bare ``-j NAME`` that is not a built-in target, NAME (resolved at
    COMMIT)."""
    n = len(toks)
    slots: list[Match | _Module] = []
    modules: list[_Module] = []  # loaded, in order; implicit proto modules included
    comments: list[str] = []
    target: str | None = None
    target_opts: list[_Opt] = []
    goto: str | None = None
    bare_jump: str | None = None
    counters_seen = False

    i = pos
    while i < n:
        tok = toks[i]
        neg = False
        if tok == "!":
            neg = True
            i += 1
            if i >= n:
                raise _LineError("'!' at the end of the rule")
            tok = toks[i]
        gen = _GENERIC.get(tok)
        if gen is not None:
            i += 1
            if gen in _VALUE_OPTS:
                if i < n and toks[i] == "!":
                    if neg:
                        raise _LineError(f"double negation of {tok}")
                    neg = True  # old style: -s ! x
                    i += 1
                if i >= n:
                    raise _LineError(f"option {tok} needs an argument")
                value = toks[i]
                i += 1
                if gen == "-s" or gen == "-d":
                    slots.append(_addr_match(gen, value, neg))
                elif gen == "-p":
                    slots.append(_proto_match(value, neg))
                    if value in _IMPLICIT_PROTO_MODULES:
                        implicit = _Module(value)
                        modules.append(implicit)
                        if value in ("icmp", "icmp6"):
                            slots.append(implicit)
                else:
                    slots.append(_iface_match(gen, value, neg))
                continue
            if gen in ("-m", "-j", "-g") and i >= n:
                raise _LineError(f"option {tok} needs an argument")
            if gen == "-m":
                if neg:
                    raise _LineError("'!' before -m")
                name = toks[i]
                i += 1
                mod = _Module(name)
                modules.append(mod)
                if name not in _PER_OPTION_MODULES and name != "comment":
                    slots.append(mod)
            elif gen in ("-j", "-g"):
                if neg:
                    raise _LineError(f"'!' before {tok}")
                if target is not None or goto is not None:
                    raise _LineError("more than one target")
                name = toks[i]
                i += 1
                if gen == "-g":
                    goto = name
                else:
                    target = name
            elif gen == "-c":
                if counters_seen or i + 1 >= n:
                    raise _LineError("-c needs packet and byte counts")
                counters_seen = True
                i += 2
            else:  # -f, -4, -6: kept, not interpreted
                slots.append(UnknownMatch(_join((["!"] if neg else []) + [tok])))
            continue
        if not tok.startswith("--") or len(tok) < 3:
            raise _LineError(f"unexpected argument {tok!r}")
        opt = _OPT_ALIASES.get(tok, tok)
        i += 1
        # after -j, options belong to the target (kube-proxy and iptables-save put it last)
        if target is not None and (target not in _TARGET_OPTS or opt in _TARGET_OPTS[target]):
            spec = _TARGET_OPTS.get(target, {})
            nargs = spec[opt] if opt in spec else _count_free_args(toks, i)
            if i + nargs > n:
                raise _LineError(f"option {tok} needs an argument")
            target_opts.append((neg, opt, toks[i:i + nargs]))
            i += nargs
            continue
        owner: _Module | None = None
        for mod in reversed(modules):
            spec_m = _MODULE_OPTS.get(mod.name)
            if spec_m is not None and opt in spec_m:
                owner = mod
                break
        if owner is None:
            for mod in reversed(modules):
                if mod.name not in _MODULE_OPTS:
                    owner = mod
                    break
        if owner is None:
            raise _LineError(f"unknown option {tok!r} (no module loaded that takes it)")
        spec_o = _MODULE_OPTS.get(owner.name)
        nargs = spec_o[opt] if spec_o is not None else _count_free_args(toks, i)
        if i + nargs > n:
            raise _LineError(f"option {tok} needs an argument")
        args = toks[i:i + nargs]
        i += nargs
        if owner.name == "comment":
            if neg:
                raise _LineError("'!' before --comment")
            comments.append(args[0])
        elif owner.name in _PER_OPTION_MODULES:
            if opt in ("--dport", "--sport", "--dports", "--sports"):
                slots.append(_port_match(owner.name, neg, opt, args[0]))
            else:
                slots.append(UnknownMatch(_mod_text(owner.name, [(neg, opt, args)])))
        else:
            owner.opts.append((neg, opt, args))

    matches: list[Match] = []
    for slot in slots:
        if not isinstance(slot, _Module):
            matches.append(slot)
            continue
        if not slot.opts and slot.name in ("icmp", "icmp6"):
            continue  # -p icmp's implicit module, or -m icmp without options: nothing to add
        builder = _MODULE_BUILDERS.get(slot.name)
        try:
            if builder is None or not slot.opts:
                raise _Unknown
            matches.extend(builder(slot.opts))
        except (_Unknown, ValueError, IndexError):
            matches.append(UnknownMatch(_mod_text(slot.name, slot.opts)))

    actions: tuple[Action, ...] = ()
    if goto is not None:
        if target_opts:
            raise _LineError("options after -g")
        actions = (Goto(goto),)
    elif target is not None:
        if target in _TARGET_OPTS:
            try:
                actions = (_target(target, target_opts),)
            except (_Unknown, ValueError, IndexError):
                actions = (UnknownAction(_target_text(target, target_opts)),)
        elif target_opts:
            actions = (UnknownAction(_target_text(target, target_opts)),)
        else:
            actions = (_jump(target),)
            bare_jump = target
    comment = "; ".join(comments) if comments else None
    return Rule(tuple(matches), actions, comment, loc), bare_jump


def _target_text(name: str, opts: list[_Opt]) -> str:
    toks = ["-j", name]
    for neg, opt, args in opts:
        if neg:
            toks.append("!")
        toks.append(opt)
        toks.extend(args)
    return _join(toks)


def _count_free_args(toks: list[str], i: int) -> int:
    """Arguments of an option we have no spec for: tokens up to the next option or ``!``."""
    j = i
    n = len(toks)
    while j < n:
        t = toks[j]
        if t == "!" or (t.startswith("-") and len(t) > 1 and not t[1].isdigit()):
            break
        j += 1
    return j - i


# ----------------------------------------------------------------------------- tables


@dataclass(slots=True)
class _TableBuilder:
    name: str
    line: int
    chains: dict[str, Chain] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    pending: list[_PendingRule] = field(default_factory=list)

    def declare(self, name: str, policy: str | None, line: int) -> None:
        if name in self.chains:
            raise _LineError(f"chain {name} is declared twice in table {self.name}")
        hook = None
        if policy is not None and name in _HOOKS:
            hook = name.lower()
        elif policy is None and name in BUILTIN_CHAINS.get(self.name, ()):
            hook = name.lower()
        self.chains[name] = Chain(name, hook=hook, policy=policy)
        self.rules[name] = []

    def finish(self) -> Table:
        for p in self.pending:
            if p.jump is not None and p.jump not in self.chains:
                acts = (UnknownAction(f"-j {p.jump}"),)
                rules = self.rules[p.chain]
                # by identity: equal rules (loc takes no part in ==) may repeat in a chain
                idx = next(i for i, r in enumerate(rules) if r is p.rule)
                rules[idx] = Rule(p.rule.matches, acts, p.rule.comment, p.rule.loc)
        chains = tuple(
            Chain(c.name, tuple(self.rules[c.name]), hook=c.hook, policy=c.policy)
            for c in self.chains.values()
        )
        return Table(self.name, chains=chains)


def parse_iptables_save(
    text: str, *, source: str = "<iptables-save>", family: int = 4
) -> Ruleset:
    """The ruleset in ``text`` (iptables-save output or iptables-restore input) for IP
    ``family`` 4 (tables get family ``ip``) or 6 (``ip6``).

    Raises ``RulesetParseError`` (with ``file=source`` and the line) on a syntax error: an
    unterminated quote, a rule or chain outside a table, ``-A`` to an undeclared chain, a
    missing ``COMMIT``, an option without its argument.
    """
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    was_enabled = gc.isenabled()
    gc.disable()  # millions of acyclic objects: the cyclic GC's full scans would dominate
    try:
        return _parse(text, source, family)
    finally:
        if was_enabled:
            gc.enable()


def _parse(text: str, source: str, family: int) -> Ruleset:
    fam = "ip" if family == 4 else "ip6"
    tables: list[Table] = []
    seen_tables: set[str] = set()
    current: _TableBuilder | None = None
    lineno = 0
    try:
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] == "#":
                continue
            head = line[0]
            if head == "[":
                end = line.find("]")
                if end < 0:
                    raise _LineError("unterminated counters")
                line = line[end + 1:].lstrip()
                if not line:
                    raise _LineError("counters without a rule")
                head = line[0]
            if head == "*":
                if current is not None:
                    raise _LineError(f"table {line[1:]} starts before COMMIT of "
                                     f"{current.name} (line {current.line})")
                name = line[1:].strip()
                if not name or " " in name:
                    raise _LineError(f"bad table line {line!r}")
                if name in seen_tables:
                    raise _LineError(f"table {name} appears twice")
                seen_tables.add(name)
                current = _TableBuilder(name, lineno)
                continue
            if line == "COMMIT":
                if current is None:
                    raise _LineError("COMMIT outside a table")
                tables.append(current.finish())
                current = None
                continue
            if current is None:
                raise _LineError("rule or chain before any *table line (`iptables -S` output or "
                                 "a grep of iptables-save? give the whole `iptables-save`)")
            if head == ":":
                parts = line[1:].split()
                if not parts or len(parts) > 3:
                    raise _LineError(f"bad chain declaration {line!r}")
                policy = parts[1] if len(parts) > 1 else "-"
                current.declare(parts[0], None if policy == "-" else policy, lineno)
                continue
            toks = _tokenize(line)
            cmd = toks[0]
            if cmd in ("-A", "--append", "-I", "--insert", "-N", "--new-chain"):
                if len(toks) < 2:
                    raise _LineError(f"{cmd} needs a chain name")
                chain = toks[1]
                if cmd in ("-N", "--new-chain"):
                    if len(toks) != 2:
                        raise _LineError("-N takes only a chain name")
                    current.declare(chain, None, lineno)
                    continue
                if chain not in current.chains:
                    if chain in BUILTIN_CHAINS.get(current.name, ()):
                        current.declare(chain, None, lineno)
                    else:
                        raise _LineError(f"{cmd} to undeclared chain {chain}")
                pos = 2
                insert_at: int | None = None
                if cmd in ("-I", "--insert"):
                    insert_at = 0
                    if pos < len(toks) and toks[pos].isdigit():
                        insert_at = max(int(toks[pos]) - 1, 0)
                        pos += 1
                rule, jump = _parse_rule(toks, pos, SourceLoc(source, lineno, raw.strip()))
                rules = current.rules[chain]
                if insert_at is None:
                    rules.append(rule)
                else:
                    rules.insert(insert_at, rule)
                if jump is not None:
                    current.pending.append(_PendingRule(chain, rule, lineno, jump))
                continue
            raise _LineError(f"unexpected line starting with {cmd!r}")
    except _LineError as exc:
        raise RulesetParseError(str(exc), file=source, line=lineno) from None
    if current is not None:
        raise RulesetParseError(
            f"table {current.name} has no COMMIT", file=source, line=current.line
        )
    return Ruleset("iptables", tuple(Table(t.name, fam, t.chains) for t in tables))
