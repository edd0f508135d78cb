"""The one trace shape behind every answer: ``Trace`` -> ``Outcome``s -> ``Hop``s -> ``Step``s.

Tables, diagrams and JSON are renderings of these objects; ``str(trace)`` is the story of the
packet and is tested verbatim.

An outcome reached only by assuming how a rule the evaluator cannot decide goes (an ipset
without its contents, ``physdev``, ``bpf``, an unknown nft expression...) has ``certain``
False, ``depends_on`` the undecided rules as written and ``assumptions`` which way each was
taken. Its ``probability`` is its probability *if those assumptions hold*: forks on undecided
rules do not split probability. Certain outcomes sum to what the undecided rules cannot take
away; adding the uncertain outcomes consistent with any one answer for every undecided rule
gives 1. ``Trace.undecided()`` groups the outcomes per undecided rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from sourceip.net.addr import IPAddress
from sourceip.net.packet import FiveTuple
from sourceip.netfilter.evaluate import Assumption, Step

Disposition = Literal["delivered", "dropped", "rejected", "passed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """What one host did to the packet: hooks traversed, rules matched, tuple in and out."""

    at: str
    node: str | None
    packet_in: FiveTuple
    packet_out: FiveTuple | None
    iif: str | None = None
    oif: str | None = None
    hooks: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One way the connection can end, with its probability."""

    probability: Fraction
    disposition: Disposition
    endpoint: str | None
    endpoint_name: str | None
    masquerade: bool
    seen_source: IPAddress | None
    hops: tuple[Hop, ...]
    snat_node: str | None = None
    snat_iface: str | None = None
    snat_step: Step | None = None
    dnat_node: str | None = None
    dnat_step: Step | None = None
    drop_step: Step | None = None
    reply_ok: bool | None = None
    reply: str = ""
    notes: tuple[str, ...] = ()
    # False when the outcome hangs on rules the evaluator could not decide: ``depends_on``
    # names them (as written, with file:line when known), ``assumptions`` says which way.
    certain: bool = True
    depends_on: tuple[str, ...] = ()
    assumptions: tuple[Assumption, ...] = ()

    def condition(self) -> str:
        """``depends on RULE matching and RULE2 not matching`` (empty when certain)."""
        if self.certain:
            return ""
        if not self.assumptions:
            return "depends on " + " and ".join(self.depends_on)
        return "depends on " + " and ".join(str(a) for a in self.assumptions)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of docs/json.md."""
        return {
            "probability": float(self.probability),
            "disposition": self.disposition,
            "endpoint": self.endpoint,
            "endpoint_name": self.endpoint_name,
            "masquerade": self.masquerade,
            "seen_source": str(self.seen_source) if self.seen_source is not None else None,
            "certain": self.certain,
            "depends_on": list(self.depends_on),
            "assumptions": [{"rule": a.rule, "matches": a.matches,
                             "undecided": list(a.undecided)} for a in self.assumptions],
            "snat": None if self.snat_node is None else {
                "node": self.snat_node, "interface": self.snat_iface,
                "rule": self.snat_step.text if self.snat_step else None,
            },
            "dnat": None if self.dnat_node is None else {
                "node": self.dnat_node,
                "rule": self.dnat_step.text if self.dnat_step else None,
            },
            "reply": {"ok": self.reply_ok, "detail": self.reply},
            "notes": list(self.notes),
            "hops": [hop_to_dict(h) for h in self.hops],
        }


def step_to_dict(s: Step) -> dict[str, Any]:
    """A step as JSON; ``loc`` is where the rule was read from (a dump's file, line and the
    line as written, or the ``nft -j`` item), ``null`` for generated rules and notes."""
    loc = s.rule.loc if s.rule is not None else None
    return {
        "table": s.table, "chain": s.chain, "index": s.index, "rule": s.text,
        "loc": None if loc is None else {"file": loc.file, "line": loc.line,
                                         "text": loc.text, "item": loc.item},
        "effect": s.effect,
        "rewrites": [{"field": f, "old": o, "new": n} for f, o, n in s.rewrites],
    }


def hop_to_dict(h: Hop) -> dict[str, Any]:
    return {
        "at": h.at, "node": h.node, "in": str(h.packet_in),
        "out": str(h.packet_out) if h.packet_out is not None else None,
        "iif": h.iif, "oif": h.oif, "hooks": list(h.hooks),
        "steps": [step_to_dict(s) for s in h.steps], "note": h.note,
    }


def fmt_prob(p: Fraction) -> str:
    if p == 1:
        return "100%"
    pct = float(p) * 100
    return f"{pct:.1f}%" if pct >= 0.1 else f"{pct:.3g}%"


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """Every outcome of one connection from ``source`` to ``target``."""

    source: str
    target: str
    original: FiveTuple
    outcomes: tuple[Outcome, ...]
    notes: tuple[str, ...] = ()

    @property
    def certain(self) -> bool:
        """No outcome depends on a rule the evaluator could not decide."""
        return all(o.certain for o in self.outcomes)

    def settled(self) -> Outcome | None:
        """When some outcome is uncertain yet every outcome ends the same way — same
        disposition, same source seen, masqueraded or not — an outcome that says so: what the
        endpoint sees does not depend on the undecided rules (only the path does). None
        otherwise (all certain, or the undecided rules change the answer)."""
        if self.certain or not self.outcomes:
            return None
        first = self.outcomes[0]
        key = (first.disposition, first.seen_source, first.masquerade)
        if all((o.disposition, o.seen_source, o.masquerade) == key for o in self.outcomes):
            return first
        return None

    def undecided(self) -> list[dict[str, Any]]:
        """Per undecided rule (in the order first met): the outcomes (0-based indexes into
        ``outcomes``) that assume it matches and those that assume it does not."""
        groups: dict[str, dict[str, Any]] = {}
        for n, o in enumerate(self.outcomes):
            for a in o.assumptions:
                g = groups.setdefault(a.rule, {"rule": a.rule, "undecided": list(a.undecided),
                                               "if_matches": [], "if_not": []})
                side = g["if_matches"] if a.matches else g["if_not"]
                if n not in side:
                    side.append(n)
        return list(groups.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "flow": {
                "proto": self.original.proto,
                "src": str(self.original.src), "sport": self.original.sport,
                "dst": str(self.original.dst), "dport": self.original.dport,
            },
            "outcomes": [o.to_dict() for o in self.outcomes],
            "undecided": self.undecided(),
            "settled": self._settled_dict(),
            "notes": list(self.notes),
        }

    def _settled_dict(self) -> dict[str, Any] | None:
        o = self.settled()
        if o is None:
            return None
        return {"disposition": o.disposition,
                "seen_source": str(o.seen_source) if o.seen_source is not None else None,
                "masquerade": o.masquerade,
                "endpoints": sorted({e.endpoint for e in self.outcomes if e.endpoint}),
                "despite": len(self.undecided())}

    def settled_text(self) -> str | None:
        """``whichever way the 2 undecided rules go: DELIVERED; the endpoint sees ...``, or
        None (see ``settled``)."""
        o = self.settled()
        if o is None:
            return None
        n = len(self.undecided())
        head = (f"whichever way the {n} undecided rule{'s' if n != 1 else ''} go"
                f"{'es' if n == 1 else ''}: {o.disposition.upper()}")
        if o.disposition in ("delivered", "passed") and o.seen_source is not None:
            who = "the pod" if o.disposition == "delivered" else "the destination"
            head += f"; {who} sees {o.seen_source}" + \
                (" (masqueraded)" if o.masquerade else " (not rewritten)")
        return head

    def __str__(self) -> str:
        lines = [f"{self.source} -> {self.target}: {self.original}"]
        settled = self.settled_text()
        if settled is not None:
            lines.append(settled)
        for n, o in enumerate(self.outcomes, 1):
            head = f"outcome {n} ({fmt_prob(o.probability)}): {o.disposition}"
            if not o.certain:
                head = (f"outcome {n} ({fmt_prob(o.probability)}): uncertain: "
                        f"{o.condition()}; if so {o.disposition}")
            if o.disposition == "delivered":
                head += f" to {o.endpoint_name or o.endpoint} ({o.endpoint})"
                head += f", seen source {o.seen_source}"
                head += " (masqueraded)" if o.masquerade else ""
            lines.append(head)
            for h in o.hops:
                arrow = f"  at {h.at}: {h.packet_in}"
                if h.packet_out is not None and h.packet_out != h.packet_in:
                    arrow += f" => {h.packet_out}"
                if h.iif or h.oif:
                    arrow += f" [in {h.iif or '-'}, out {h.oif or '-'}]"
                lines.append(arrow)
                for s in h.steps:
                    rw = "".join(f"; {f} {o_} -> {n_}" for f, o_, n_ in s.rewrites)
                    lines.append(f"    {s.table}/{s.chain}: {s.effect}{rw}")
                    if s.rule is not None:
                        lines.append(f"      {s.text}")
                if h.note:
                    lines.append(f"    {h.note}")
            if o.reply:
                lines.append(f"  reply: {o.reply}")
            for note in o.notes:
                lines.append(f"  note: {note}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)
