"""``ipset save`` / ``ipset list`` text, both ways: the contents of a node's ipsets.

``parse_ipsets`` reads either form into ``netfilter.ipset.IPSet`` values (what
``Evaluator(ipsets=...)`` decides ``-m set`` matches with)::

    create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
    add KUBE-CLUSTER-IP 10.96.0.1,tcp:443

    Name: KUBE-CLUSTER-IP
    Type: hash:ip,port
    Header: family inet hashsize 1024 maxelem 65536
    Members:
    10.96.0.1,tcp:443

``render_ipset_save`` writes ``SetSpec`` values as ``ipset restore`` reads them. Elements are
kept as text (``IPSet.from_text`` parses them); a set whose type ``netfilter.ipset`` does not
model is still read (its ``-m set`` rules stay undecided). A line that is neither form, an
element of an undeclared set, or an element its set type cannot hold raises
``RulesetParseError`` with ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sourceip.errors import RulesetParseError
from sourceip.netfilter.ipset import IPSet

__all__ = ["SetSpec", "parse_ipsets", "render_ipset_save"]


@dataclass(frozen=True, slots=True)
class SetSpec:
    """One set as ``ipset create`` makes it: ``options`` are the words after the type
    (``family inet hashsize 1024 maxelem 65536 comment``); ``entries`` the element texts."""

    name: str
    type: str
    options: tuple[str, ...] = ()
    entries: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        o = self.options
        for i, w in enumerate(o[:-1]):
            if w == "family":
                return o[i + 1]
        return "inet"

    def ipset(self) -> IPSet:
        """The set as ``netfilter.ipset`` evaluates it."""
        return IPSet.from_text(self.name, self.type, self.entries, family=self.family)


def render_ipset_save(sets: Iterable[SetSpec]) -> str:
    """``ipset save`` text: every ``create`` line first (a ``list:set`` may name a later set),
    then the ``add`` lines."""
    specs = tuple(sets)
    out = [" ".join(("create", s.name, s.type, *s.options)) for s in specs]
    for s in specs:
        out += [f"add {s.name} {e}" for e in s.entries]
    return "\n".join(out) + ("\n" if out else "")


def parse_ipsets(text: str, *, source: str = "<ipset>") -> dict[str, IPSet]:
    """``ipset save`` or ``ipset list`` output as ``{name: IPSet}`` (see the module
    docstring). Raises ``RulesetParseError`` with ``source:line``."""
    specs: dict[str, tuple[str, str, list[str], int]] = {}  # name -> (type, family, elems, line)
    listing: str | None = None  # the set whose "Members:" are being read (ipset list)
    in_members = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            if not line:
                in_members = False
            continue
        words = line.split()
        try:
            if words[0] == "create":
                if len(words) < 3:
                    raise ValueError("create needs NAME TYPE")
                name, typ = words[1], words[2]
                if name in specs:
                    raise ValueError(f"set {name} is created twice")
                fam = _family(words[3:])
                specs[name] = (typ, fam, [], lineno)
                listing, in_members = None, False
            elif words[0] == "add":
                if len(words) < 3:
                    raise ValueError("add needs NAME ELEMENT")
                if words[1] not in specs:
                    raise ValueError(f"element of set {words[1]} before its create line")
                specs[words[1]][2].append(" ".join(words[2:]))
            elif line.startswith("Name:"):
                listing, in_members = words[1] if len(words) > 1 else "", False
                if not listing:
                    raise ValueError("Name: without a set name")
                if listing in specs:
                    raise ValueError(f"set {listing} is listed twice")
                specs[listing] = ("", "inet", [], lineno)
            elif listing is not None and not in_members and ":" in line:
                key = line.split(":", 1)[0]
                typ, fam, elems, at = specs[listing]
                if key == "Type" and len(words) > 1:
                    specs[listing] = (words[1], fam, elems, at)
                elif key == "Header":
                    specs[listing] = (typ, _family(words[1:]), elems, at)
                elif key == "Members":
                    in_members = True
                # Revision, Size in memory, References, Number of entries: not needed
            elif listing is not None and in_members:
                specs[listing][2].append(line)
            else:
                raise ValueError(f"not an ipset save or ipset list line: {line!r}")
        except ValueError as exc:
            raise RulesetParseError(str(exc), file=source, line=lineno) from None
    out: dict[str, IPSet] = {}
    for name, (typ, fam, elems, at) in specs.items():
        if not typ:
            raise RulesetParseError(f"set {name} has no Type: line", file=source, line=at)
        try:
            out[name] = IPSet.from_text(name, typ, elems, family=fam)
        except (ValueError, TypeError) as exc:
            raise RulesetParseError(f"set {name}: {exc}", file=source, line=at) from None
    return out


def _family(words: list[str]) -> str:
    for i, w in enumerate(words[:-1]):
        if w == "family":
            return words[i + 1]
    return "inet"
