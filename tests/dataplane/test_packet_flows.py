"""kube-proxy's own packet-flow tests (``runPacketFlowTests`` in pkg/proxy/{iptables,nftables}/
proxier_test.go), ported as data in ``tests/scenarios/*.yaml`` and run through sourceip's rule
builder and single-node tracer (``Tracer.trace_node``, which evaluates one node's rules as
upstream's tracer does). One test per upstream flow, named ``"<file>: [<case>: ]<flow>"``.
"""

from __future__ import annotations

import pytest

from sourceip.dataplane.tracer import Tracer

from .scenario_loader import Case, Flow, Scenario, flow_errors, load_scenarios

SCENARIOS = load_scenarios()


def _id(case: Case, flow: Flow) -> str:
    parts = [case.scenario] + ([case.name] if case.name else []) + [flow.name]
    return ": ".join(parts)


def _params() -> list[object]:
    out: list[object] = []
    seen: set[str] = set()
    for sc in SCENARIOS:
        for case, flow in sc.flows:
            pid = _id(case, flow)
            assert pid not in seen, f"duplicate flow id {pid!r}"
            seen.add(pid)
            marks = [pytest.mark.xfail(reason=flow.xfail, strict=True)] if flow.xfail else []
            out.append(pytest.param(case, flow, id=pid, marks=marks))
    return out


_TRACERS: dict[tuple[str, str | None], Tracer] = {}


def _tracer(case: Case) -> Tracer:
    """One tracer (cluster, rules) per scenario case, shared by its flows."""
    key = (case.scenario, case.name)
    if key not in _TRACERS:
        _TRACERS[key] = Tracer(case.cluster())
    return _TRACERS[key]


@pytest.mark.parametrize(("case", "flow"), _params())
def test_packet_flow(case: Case, flow: Flow) -> None:
    trace = _tracer(case).trace_node(case.node, flow.src, flow.dst, flow.dport, flow.proto)
    errs = flow_errors(flow, trace)
    assert not errs, (
        f"{flow.proto} {flow.src} -> {flow.dst}:{flow.dport}: upstream expects "
        f"output={flow.output!r} masq={flow.masq}\n" + "\n".join(errs) + f"\n\ntrace:\n{trace}")


def test_scenarios_cover_both_modes() -> None:
    """Every scenario names its upstream test, and both modes are ported."""
    modes = {sc.mode for sc in SCENARIOS}
    assert modes >= {"iptables"}, modes
    for sc in SCENARIOS:
        assert sc.mode in ("iptables", "nftables"), sc.path.name
        assert sc.upstream["file"] == f"pkg/proxy/{sc.mode}/proxier_test.go", sc.path.name


def test_flow_judge_can_fail() -> None:
    """The comparison rejects a wrong endpoint set and a wrong masquerade bit."""
    sc: Scenario = next(s for s in SCENARIOS if s.path.stem == "iptables_TestLoadBalancer")
    case, flow = next((c, f) for c, f in sc.flows if f.name == "external to nodePort")
    trace = _tracer(case).trace_node(case.node, flow.src, flow.dst, flow.dport, flow.proto)
    assert flow_errors(flow, trace) == []
    wrong = Flow(name="x", src=flow.src, dst=flow.dst, dport=flow.dport, proto=flow.proto,
                 output="10.9.9.9:80", masq=False)
    errs = flow_errors(wrong, trace)
    assert any("endpoints" in e for e in errs) and any("masquerade" in e for e in errs)
    assert flow_errors(Flow(name="y", src=flow.src, dst=flow.dst, dport=flow.dport,
                            proto=flow.proto, output="DROP", masq=False), trace)
