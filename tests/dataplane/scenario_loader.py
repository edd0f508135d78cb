"""kube-proxy's packet-flow tests ported as data: loading ``tests/scenarios/*.yaml``.

A scenario file is one upstream test function (``upstream: {file, function}``). It holds
Kubernetes-API-shaped ``objects`` (Node, NetworkProfile, KubeProxyConfiguration, Services,
EndpointSlices) and either a ``flows`` table or a list of ``cases``, each with its own extra
``objects``, an optional ``kubeProxy`` (a KubeProxyConfiguration replacing the file's one) and
its ``flows``. A flow is upstream's ``packetFlowTest`` row::

    {name, src, dst, dport, proto, output, masq[, xfail]}

``output`` is upstream's string: comma-separated endpoints (``"10.180.0.1:80, 10.180.2.1:80"``),
``"REJECT"``, ``"DROP"``, ``"ACCEPT"`` (accepted by the filter table, no DNAT) or ``""`` (no
rule matched). ``xfail`` names a known bug in sourceip (strict xfail).

How a ``Trace`` from ``Tracer.trace_node`` is judged against a flow is ``flow_errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sourceip.cluster import Cluster
from sourceip.dataplane.trace import Trace
from sourceip.sources import cluster_from_objects

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
_FLOW_KEYS = {"name", "src", "dst", "dport", "proto", "output", "masq", "xfail"}
_VERDICTS = {"DROP": "dropped", "REJECT": "rejected", "ACCEPT": "passed", "": "passed"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """One upstream packetFlowTest row."""

    name: str
    src: str
    dst: str
    dport: int
    proto: str
    output: str
    masq: bool
    xfail: str | None = None

    @property
    def endpoints(self) -> frozenset[str]:
        """The endpoints upstream lists (empty for a verdict or ``""``)."""
        if self.output in _VERDICTS:
            return frozenset()
        return frozenset(e.strip() for e in self.output.split(","))


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One cluster state of a scenario (upstream: one ``runPacketFlowTests`` call)."""

    scenario: str  # file stem, e.g. "iptables_TestLoadBalancer"
    name: str | None  # None for a file with a single flows table
    node: str
    objects: tuple[dict[str, Any], ...]
    flows: tuple[Flow, ...]

    def cluster(self) -> Cluster:
        # kube-proxy's tests use nodePorts such as 3001: no --service-node-port-range check.
        return cluster_from_objects(list(self.objects), source=f"{self.scenario}.yaml",
                                    node_port_range=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    path: Path
    upstream: dict[str, str]
    description: str
    cases: tuple[Case, ...]

    @property
    def mode(self) -> str:
        return self.path.stem.split("_", 1)[0]

    @property
    def flows(self) -> Iterator[tuple[Case, Flow]]:
        for case in self.cases:
            for f in case.flows:
                yield case, f


class ScenarioError(ValueError):
    """A malformed scenario file (the message names the file and the part)."""


def _flow(raw: Any, where: str) -> Flow:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: a flow must be a mapping")
    unknown = set(raw) - _FLOW_KEYS
    missing = {"name", "src", "dst", "dport", "output"} - set(raw)
    if unknown or missing:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
    xfail = raw.get("xfail")
    if xfail is not None and not (isinstance(xfail, str) and xfail.strip()):
        raise ScenarioError(f"{where}: xfail must be a non-empty reason")
    return Flow(name=str(raw["name"]), src=str(raw["src"]), dst=str(raw["dst"]),
                dport=int(raw["dport"]), proto=str(raw.get("proto") or "tcp").lower(),
                output=str(raw["output"]), masq=bool(raw.get("masq", False)), xfail=xfail)


def _replace_kube_proxy(objs: list[dict[str, Any]], kp: dict[str, Any]) -> list[dict[str, Any]]:
    out = [o for o in objs if o.get("kind") != "KubeProxyConfiguration"]
    return out + [kp]


def load_scenario(path: Path) -> Scenario:
    """Parse one scenario file (clusters are built lazily, by ``Case.cluster``)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    stem = path.stem
    if not isinstance(doc, dict) or "upstream" not in doc:
        raise ScenarioError(f"{path.name}: expected a mapping with an upstream: field")
    up = doc["upstream"]
    if not isinstance(up, dict) or not up.get("file") or not up.get("function"):
        raise ScenarioError(f"{path.name}: upstream needs file and function")
    # <mode>_<function>.yaml, or <mode>_<function>_<variant>.yaml (the IPv6 cases: _ipv6)
    if stem.split("_")[1:2] != [up["function"]]:
        raise ScenarioError(f"{path.name}: file name does not match upstream function "
                            f"{up['function']}")
    base = list(doc.get("objects") or [])
    node = str(doc.get("node") or "test-node")
    raw_cases: list[dict[str, Any]]
    if "cases" in doc:
        if "flows" in doc:
            raise ScenarioError(f"{path.name}: give flows or cases, not both")
        raw_cases = list(doc["cases"])
    else:
        raw_cases = [{"name": None, "flows": doc.get("flows")}]
    cases = []
    for i, rc in enumerate(raw_cases):
        where = f"{path.name}: cases[{i}]" if "cases" in doc else path.name
        objs = base + list(rc.get("objects") or [])
        if rc.get("kubeProxy"):
            objs = _replace_kube_proxy(objs, rc["kubeProxy"])
        flows = rc.get("flows")
        if not flows:
            raise ScenarioError(f"{where}: no flows")
        parsed = tuple(_flow(f, f"{where}.flows[{j}]") for j, f in enumerate(flows))
        names = [f.name for f in parsed]
        if len(set(names)) != len(names):
            raise ScenarioError(f"{where}: duplicate flow names")
        cases.append(Case(scenario=stem, name=rc.get("name"), node=node, objects=tuple(objs),
                          flows=parsed))
    return Scenario(path=path, upstream={k: str(v) for k, v in up.items()},
                    description=str(doc.get("description", "")), cases=tuple(cases))


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every ``*.yaml`` scenario in ``directory``, sorted by file name."""
    return [load_scenario(p) for p in sorted(directory.glob("*.yaml"))]


def flow_errors(flow: Flow, trace: Trace) -> list[str]:
    """How ``trace`` disagrees with upstream's expectation for ``flow`` (empty: it agrees).

    Upstream's tracer lists every endpoint a packet can reach; our trace enumerates branches.
    So: for endpoints, every outcome must be delivered and the set of endpoints must equal
    upstream's; for DROP/REJECT every outcome must be dropped/rejected; for ACCEPT and ""
    every outcome must be passed (accepted, no DNAT). ``masq`` must equal each delivered
    outcome's ``masquerade``."""
    errs: list[str] = []
    outs = trace.outcomes
    if not outs:
        return ["the trace has no outcome"]
    disp = sorted({o.disposition for o in outs})
    if flow.output in _VERDICTS:
        want = _VERDICTS[flow.output]
        if disp != [want]:
            errs.append(f"expected every outcome {want} (upstream {flow.output!r}), got {disp}")
    else:
        if disp != ["delivered"]:
            errs.append(f"expected every outcome delivered, got {disp}")
        got = {o.endpoint for o in outs if o.disposition == "delivered"}
        if got != set(flow.endpoints):
            errs.append(f"endpoints: expected {sorted(flow.endpoints)}, "
                        f"got {sorted(str(g) for g in got)}")
    for o in outs:
        if o.disposition == "delivered" and o.masquerade != flow.masq:
            errs.append(f"masquerade to {o.endpoint}: expected {flow.masq}, got {o.masquerade}")
    return errs
