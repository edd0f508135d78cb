"""The L7 step in the lab: real nginx / haproxy as ingress controllers, echo servers that
answer HTTP with the headers they received, and ingress paths compared on peer, headers, the
client the recommended strategy resolves, and the forged header's fate.

Unit tests (no root) cover the comparison, the strategy rebuilt from its constructor call, the
plan's processes and the dry-run script; the ``lab`` tests build ``--example ingress-nginx``
(iptables and nftables) and a haproxytech variant of it for real."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sourceip.errors import ValidationError
from sourceip.lab.compare import compare, compare_all, explain_predictions, strategy_from_code
from sourceip.lab.model import Observation, PredictedOutcome, Prediction, ProbeSpec
from sourceip.lab.plan import plan_lab, render_script
from sourceip.lab.run import STATE_DIR, Lab, clean_stale, lab_namespaces, proc_start_time
from sourceip.sources import example_text, load_cluster, load_example

from .helpers import lab_skip_reason
from .test_hygiene import _env, _readline, _wait_gone

needs_lab = pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))
CONTROLLER_IP = "192.168.2.30"
BACKEND = "192.168.1.10:80"
STRATEGY = "Chain(SingleIPHeader(header='x-real-ip', trusted_proxies=['192.168.2.0/24']), " \
           "RemoteAddress())"


def haproxy_cluster(tmp_path: Path) -> object:
    """``--example ingress-nginx`` with the controller swapped for haproxytech's."""
    text = (example_text("ingress-nginx")
            .replace("registry.k8s.io/ingress-nginx/controller:v1.12.1",
                     "haproxytech/kubernetes-ingress:3.1")
            .replace("- /nginx-ingress-controller", "- /haproxy-ingress-controller")
            .replace("controller: k8s.io/ingress-nginx",
                     "controller: haproxy.org/ingress-controller/haproxy")
            .replace('allow-snippet-annotations: "false"', 'forwarded-for: "true"'))
    path = tmp_path / "haproxy.yaml"
    path.write_text(text)
    return load_cluster([str(path)])


def http_spec(**kw: object) -> ProbeSpec:
    return ProbeSpec(id="ing", client="external", proto="http", dst_ip="10.0.0.12",
                     dst_port=30180, http_host="example.test", **kw)  # type: ignore[arg-type]


def outcome(xff: str, real: str, resolved: str | None) -> PredictedOutcome:
    return PredictedOutcome(probability=1.0, disposition="delivered", endpoint=BACKEND,
                            seen_source=CONTROLLER_IP,
                            headers=(("X-Real-IP", real), ("X-Forwarded-For", xff)),
                            resolved_client=resolved)


def observed(headers: list[tuple[str, str]], peer: str = CONTROLLER_IP) -> Observation:
    return Observation(spec_id="ing", disposition="delivered", seen_source=peer,
                       endpoint=BACKEND, pod="default/nginx", http_status=200,
                       headers=tuple(headers))


# ----------------------------------------------------------------------------- comparison


def test_strategy_is_rebuilt_from_its_constructor_call() -> None:
    s = strategy_from_code(STRATEGY)
    assert s.resolve(CONTROLLER_IP, {"x-real-ip": "10.0.0.11"}).ip == "10.0.0.11"
    assert s.resolve("10.9.9.9", {"x-real-ip": "6.6.6.6"}).ip == "10.9.9.9"
    with pytest.raises(ValidationError):
        strategy_from_code("__import__('os').system('true')")
    with pytest.raises(ValidationError):
        strategy_from_code("RemoteAddress(x=open('/etc/passwd'))")


def test_http_observation_agrees_on_peer_headers_and_resolved_client() -> None:
    pred = Prediction(spec=http_spec(), outcomes=(outcome("10.0.0.11", "10.0.0.11",
                                                          "10.0.0.11"),),
                      strategy=STRATEGY)
    got = compare(pred.spec, pred, [observed([("x-real-ip", "10.0.0.11"),
                                              ("X-Forwarded-For", "10.0.0.11"),
                                              ("Connection", "close")])])
    assert got.agree, got.reason
    assert got.observations[0].resolved_client == "10.0.0.11"


@pytest.mark.parametrize(("headers", "peer", "why"), [
    ([("X-Real-IP", "10.0.0.11"), ("X-Forwarded-For", "10.0.0.12")], CONTROLLER_IP,
     "x-forwarded-for: '10.0.0.12'"),
    ([("X-Forwarded-For", "10.0.0.11")], CONTROLLER_IP, "x-real-ip: missing"),
    ([("X-Real-IP", "10.0.0.11"), ("X-Forwarded-For", "10.0.0.11")], "192.168.2.99",
     "peer 192.168.2.99"),
])
def test_http_observation_disagrees_and_says_why(headers: list[tuple[str, str]], peer: str,
                                                 why: str) -> None:
    pred = Prediction(spec=http_spec(), outcomes=(outcome("10.0.0.11", "10.0.0.11",
                                                          "10.0.0.11"),),
                      strategy=STRATEGY)
    got = compare(pred.spec, pred, [observed(headers, peer)])
    assert not got.agree
    assert why in got.reason


def test_forged_header_fate_is_the_resolved_client() -> None:
    """The forged probe agrees only when the strategy, run on what the backend received,
    resolves what was predicted (here: the forged 6.6.6.6 is refused)."""
    spec = http_spec(http_headers=(("X-Forwarded-For", "6.6.6.6"),))
    pred = Prediction(spec=spec, outcomes=(outcome("10.0.0.11", "10.0.0.11", "10.0.0.11"),),
                      strategy=STRATEGY)
    honest = observed([("X-Real-IP", "10.0.0.11"), ("X-Forwarded-For", "10.0.0.11")])
    believed = observed([("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "10.0.0.11")])
    assert compare(spec, pred, [honest]).agree
    bad = compare(spec, pred, [believed])
    assert not bad.agree and "resolved client 6.6.6.6" in bad.reason


def test_failed_request_is_its_own_disposition() -> None:
    pred = Prediction(spec=http_spec(), outcomes=(
        PredictedOutcome(probability=1.0, disposition="failed"),))
    obs = Observation(spec_id="ing", disposition="failed", http_status=400,
                      error="HTTP/1.1 400 Bad Request")
    assert compare(pred.spec, pred, [obs]).agree
    assert not compare(pred.spec, pred, [observed([])]).agree


def test_observation_reads_headers_and_status_from_the_probe_line() -> None:
    line = {"id": "ing", "attempt": 1, "disposition": "delivered", "seen_source": CONTROLLER_IP,
            "endpoint": BACKEND, "pod": "default/nginx", "http_status": 200,
            "headers": [["X-Real-IP", "1.2.3.4"], ["x-real-ip", "5.6.7.8"]]}
    o = Observation.from_json(line)
    assert o.http_status == 200 and o.header("X-REAL-IP") == "1.2.3.4, 5.6.7.8"
    assert Observation.from_json(o.to_json()) == o


# ----------------------------------------------------------------------------- plan


def test_plan_runs_nginx_in_the_controller_pod_and_http_echo_on_the_backend() -> None:
    cluster = load_example("ingress-nginx")
    plan = plan_lab(cluster)
    (proc,) = plan.processes
    assert proc.program == "nginx" and proc.role == "ingress"
    assert proc.pod.startswith("ingress-nginx/ingress-nginx-controller")
    assert proc.listen == (80,)
    assert proc.workdir.startswith(f"/run/sourceip-lab/{plan.runid}.d/")
    conf = dict(proc.files)[f"{proc.workdir}/nginx.conf"]
    assert f"proxy_pass http://{BACKEND};" in conf
    assert "server_name sourceip-lab.invalid;" in conf
    assert "master_process off;" in proc.argv and "daemon off;" in conf
    servers = {s.pod: s for s in plan.servers}
    assert proc.pod not in servers  # nginx owns the controller's only port
    assert servers["default/nginx-7c5ddbdf54-x7k2p"].http_ports == (80,)
    script = render_script(plan)
    assert f"cat > {proc.workdir}/nginx.conf" in script
    assert "nginx -p " in script and f"rm -rf {plan.workdir}" in script


def test_plan_runs_haproxy_for_haproxytech(tmp_path: Path) -> None:
    plan = plan_lab(haproxy_cluster(tmp_path))  # type: ignore[arg-type]
    (proc,) = plan.processes
    assert proc.program == "haproxy" and proc.argv[:2] == ("haproxy", "-db")
    cfg = dict(proc.files)[f"{proc.workdir}/haproxy.cfg"]
    assert f"server app {BACKEND}" in cfg and "option forwardfor" in cfg


def test_traefik_is_not_run_and_its_paths_are_skipped_with_the_reason(tmp_path: Path) -> None:
    text = (example_text("ingress-nginx")
            .replace("registry.k8s.io/ingress-nginx/controller:v1.12.1", "traefik:v3.1")
            .replace("- /nginx-ingress-controller", "- traefik")
            .replace("controller: k8s.io/ingress-nginx",
                     "controller: traefik.io/ingress-controller"))
    path = tmp_path / "traefik.yaml"
    path.write_text(text)
    cluster = load_cluster([str(path)])
    plan = plan_lab(cluster)
    assert plan.processes == ()
    assert any("Traefik is not packaged in Debian" in n for n in plan.notes)
    predictions, notes = explain_predictions(cluster, external_ip=plan.external_ip)
    assert not any(p.spec.proto == "http" for p in predictions)
    assert any("traefik is not run in the lab" in n for n in notes)


def test_ingress_predictions_name_the_ingress_and_probe_a_forged_header() -> None:
    cluster = load_example("ingress-nginx")
    predictions, _ = explain_predictions(cluster, external_ip="198.18.100.2")
    http = [p for p in predictions if p.spec.proto == "http"]
    assert http and all("Ingress default/nginx" in p.spec.description for p in http)
    forged = [p for p in http if p.spec.http_headers]
    assert len(forged) * 2 == len(http)
    for p in forged:  # every header the controller reads, X-Forwarded-For with several hops
        hdrs = dict(p.spec.http_headers)
        assert hdrs["X-Forwarded-For"] == "6.6.6.6, 6.6.6.6, 6.6.6.6, 6.6.6.6"
        assert hdrs["X-Real-IP"] == "6.6.6.6"
    assert all(p.strategy and p.kind == "ingress" for p in http)


# ----------------------------------------------------------------------------- the lab


def _run_ingress_lab(cluster: object, mode: str) -> tuple[list[object], list[int]]:
    plan = plan_lab(cluster, mode=mode)  # type: ignore[arg-type]
    predictions, notes = explain_predictions(cluster,  # type: ignore[arg-type]
                                             external_ip=plan.external_ip)
    assert not notes, notes
    attempts = {p.spec.id: 3 if p.split else 1 for p in predictions}
    with Lab(plan) as lab:
        pids = [int(s["pid"]) for s in lab._state.servers  # type: ignore[union-attr]
                if s.get("program")]
        assert pids and all(proc_start_time(p) is not None for p in pids)
        observations = lab.probe([p.spec for p in predictions], attempts=attempts)
    assert _wait_gone(pids, 1.0) == [], "a controller process outlived the lab"
    return compare_all(predictions, observations), pids


@needs_lab
@pytest.mark.lab
@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_ingress_nginx_example_agrees_in_the_lab(clean_host: None, mode: str) -> None:
    agreements, _ = _run_ingress_lab(load_example("ingress-nginx"), mode)
    bad = [f"{a.spec.id}: {a.reason}" for a in agreements if not a.agree]  # type: ignore[attr-defined]
    assert not bad, "\n".join(bad)
    ingress = [a for a in agreements if a.spec.proto == "http"]  # type: ignore[attr-defined]
    assert len(ingress) == 4  # 2 node groups x (plain, forged)
    for a in ingress:
        for o in a.observations:
            assert o.disposition == "delivered" and o.seen_source == CONTROLLER_IP
            assert o.endpoint == BACKEND and o.http_status == 200
            # the headers nginx really sent are the predicted ones
            pred = a.prediction.outcomes
            assert any(o.header("X-Forwarded-For") == dict(p.headers)["X-Forwarded-For"]
                       and o.header("X-Real-IP") == dict(p.headers)["X-Real-IP"]
                       and o.resolved_client == p.resolved_client for p in pred)
            assert o.resolved_client in ("10.0.0.11", "192.168.2.1")
            if a.spec.http_headers:  # forged: refused by the recommended strategy
                assert o.resolved_client != "6.6.6.6"
                assert o.header("X-Original-Forwarded-For") == \
                    "6.6.6.6, 6.6.6.6, 6.6.6.6, 6.6.6.6"


@needs_lab
@pytest.mark.lab
def test_haproxy_controller_agrees_in_the_lab(clean_host: None, tmp_path: Path) -> None:
    agreements, _ = _run_ingress_lab(haproxy_cluster(tmp_path), "iptables")
    bad = [f"{a.spec.id}: {a.reason}" for a in agreements if not a.agree]  # type: ignore[attr-defined]
    assert not bad, "\n".join(bad)
    forged = [a for a in agreements if a.spec.http_headers]  # type: ignore[attr-defined]
    assert forged
    for a in forged:  # haproxy's option forwardfor appends: the forged entry stays in front
        assert all((o.header("X-Forwarded-For") or "").startswith("6.6.6.6, ")
                   for o in a.observations)


@needs_lab
@pytest.mark.lab
def test_sigkilled_owner_leaves_nginx_for_the_next_run_to_stop(clean_host: None) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sourceip", "lab", "up", "--example", "ingress-nginx"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    line = _readline(proc)
    assert " is up" in line, line
    runid = line.split()[1]
    state = json.loads((STATE_DIR / f"{runid}.json").read_text())
    nginx = [s for s in state["servers"] if s.get("program") == "nginx"]
    assert len(nginx) == 1 and nginx[0]["marker"].startswith(f"/run/sourceip-lab/{runid}.d/")
    pid = int(nginx[0]["pid"])
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    time.sleep(0.2)
    assert proc_start_time(pid) is not None  # nginx does not watch its owner
    assert runid in clean_stale()
    assert _wait_gone([pid], 3.0) == []
    assert lab_namespaces(runid) == []
    assert not (STATE_DIR / f"{runid}.d").exists()
