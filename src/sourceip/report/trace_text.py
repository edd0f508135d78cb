"""Text renderings of a Trace: a short story by default, every rule with ``wide``; lines
wrap at the terminal's width (``report.term``), continuation lines indented."""

from __future__ import annotations

from sourceip.dataplane.devices import UNKNOWN_DEVICE
from sourceip.dataplane.trace import Trace, fmt_prob
from sourceip.netfilter.evaluate import Step
from sourceip.report.term import PLAIN, Term, wrap_lines

_DISPOSITION_STYLE = {"delivered": "good", "dropped": "bad", "rejected": "bad", "passed": "warn",
                      "uncertain:": "warn"}

_QUIET = ("jump ", "goto ", "vmap ")


def _interesting(s: Step) -> bool:
    return not s.effect.startswith(_QUIET) and s.effect not in ("matched", "return")


def render_trace(trace: Trace, *, wide: bool = False, term: Term = PLAIN) -> str:
    """The packet's story: each outcome with its probability, the hops, and the rules that
    rewrote, marked or stopped the packet (all matched rules with ``wide``), in lines of at
    most ``term.width`` columns."""
    if wide:
        return "\n".join(wrap_lines(_with_dump_lines(trace), term.width, hang=4))
    lines = _story(trace)
    out: list[str] = []
    for ln in lines:
        parts = wrap_lines([ln], term.width, hang=4)
        if term.color and ln.startswith("outcome "):
            disposition = ln.split(": ", 1)[1].split(" ", 1)[0].lower()
            parts = [term.style(x, _DISPOSITION_STYLE.get(disposition)) for x in parts]
        out += parts
    return "\n".join(out)


def _story(trace: Trace) -> list[str]:
    lines = [f"{trace.source} -> {trace.target}: {trace.original}"]
    settled = trace.settled_text()
    if settled is not None:  # the answer holds on every branch: say it before the branches
        lines.append(settled)
    for n, o in enumerate(trace.outcomes, 1):
        head = f"outcome {n} ({fmt_prob(o.probability)}): {o.disposition.upper()}"
        if not o.certain:  # hangs on rules sourceip cannot decide (dataplane/trace.py)
            head = (f"outcome {n} ({fmt_prob(o.probability)}): uncertain: {o.condition()}; "
                    f"if so {o.disposition.upper()}")
        if o.disposition == "delivered":
            head += f" to {o.endpoint_name or o.endpoint} ({o.endpoint}); the pod sees " \
                    f"{o.seen_source}"
            on = f" on {o.snat_iface}" if o.snat_iface and o.snat_iface != UNKNOWN_DEVICE \
                else ""  # a dump's stand-in node does not know the device
            head += " (masqueraded" + (f" by {o.snat_node}{on})" if o.snat_node else ")") \
                if o.masquerade else " (not rewritten)"
        elif o.disposition == "passed":
            head += f" (no service rule rewrote it; source {o.seen_source})"
        lines.append(head)
        for h in o.hops:
            line = f"  {h.at}: {h.packet_in}"
            if h.packet_out is not None and h.packet_out != h.packet_in:
                line += f"  =>  {h.packet_out}"
            lines.append(line)
            for s in h.steps:
                if _interesting(s):
                    rw = "".join(f" ({f} {a} -> {b})" for f, a, b in s.rewrites)
                    lines.append(f"      {s.table}/{s.chain}: {s.effect}{rw}")
                    dump_line = _dump_line(s)
                    if dump_line is not None:  # a rule read from a dump: as the dump has it
                        lines.append(f"        {dump_line}")
                    elif s.rule is not None and s.effect.split()[0] in (
                            "DNAT", "MASQUERADE", "SNAT", "drop", "reject"):
                        lines.append(f"        {s.text}")
            if h.note:
                lines.append(f"      -> {h.note}")
        if o.reply:
            lines.append(f"  reply: {o.reply}")
        for note in o.notes:
            lines.append(f"  note: {note}")
    for note in trace.notes:
        lines.append(f"note: {note}")
    return lines


def _dump_line(s: Step) -> str | None:
    """``node.rules:812: -A KUBE-SERVICES ...``: the rule's line in the dump it was read from."""
    loc = s.rule.loc if s.rule is not None else None
    return f"{loc.where()}: {loc.text}" if loc is not None else None


def _with_dump_lines(trace: Trace) -> list[str]:
    """``str(trace)`` (every matched rule in sourceip's normalized form) with, before each rule
    read from a dump, the dump's own line and its number."""
    pending = [s for o in trace.outcomes for h in o.hops for s in h.steps if s.rule is not None]
    out: list[str] = []
    k = 0
    for ln in str(trace).splitlines():
        if k < len(pending) and ln == f"      {pending[k].text}":
            dump_line = _dump_line(pending[k])
            if dump_line is not None:
                out.append(f"      {dump_line}")
                ln = f"        = {pending[k].text}"
            k += 1
        out.append(ln)
    return out
