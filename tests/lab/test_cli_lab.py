"""``sourceip lab``: exit codes (0 agree, 1 disagree, 2 usage, 3 precondition), dry run, json,
and probing a lab kept up by another process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sourceip.cli.main import main
from sourceip.lab.model import PredictedOutcome, Prediction, ProbeSpec

from .helpers import lab_skip_reason, rules_skip_reason
from .test_hygiene import _env, _start_lab_up

needs_lab = pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))


def run(args: list[str]) -> tuple[int, str, str]:
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().decode(), err.getvalue().decode()


def test_plan_dry_run_prints_the_script() -> None:
    code, out, _ = run(["lab", "plan", "--dry-run", "--no-rules", "--example", "design-table"])
    assert code == 0
    assert out.startswith("#!/bin/bash")
    assert "ip netns add sip-" in out and "trap teardown EXIT" in out
    code, out2, _ = run(["lab", "run", "--dry-run", "--no-rules", "--example", "design-table"])
    assert code == 0 and "ip netns add sip-" in out2


def test_plan_summary_and_json() -> None:
    code, out, _ = run(["lab", "plan", "--no-rules", "--example", "design-table"])
    assert code == 0 and "external client 192.168.100.2" in out and "default/server" in out
    code, out, _ = run(["lab", "plan", "--no-rules", "--example", "design-table", "-o", "json"])
    assert code == 0 and json.loads(out)["external_ip"] == "192.168.100.2"


def test_not_root_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, _, err = run(["lab", "run", "--no-rules", "--example", "design-table"])
    assert code == 3
    assert "needs root" in err and "sudo" in err


def test_missing_tool_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "nft" else real(name, *a, **k))
    code, _, err = run(["lab", "run", "--mode", "nftables", "--example", "design-table"])
    assert code == 3
    assert "nft (install nftables)" in err


def test_down_needs_a_runid_or_all_stale() -> None:
    code, _, err = run(["lab", "down"])
    assert code == 2 and "RUNID" in err


@pytest.mark.lab
@needs_lab
def test_run_design_table_agrees(clean_host: None) -> None:
    reason = rules_skip_reason()
    if reason:
        pytest.skip(reason)
    code, out, err = run(["lab", "run", "--example", "design-table"])
    assert code == 0, out + err
    assert "DISAGREE" not in out
    assert "14/14 paths agree" in out
    code, out, err = run(["lab", "run", "--example", "design-table", "--mode", "nftables",
                          "-o", "json"])
    assert code == 0, out + err
    data = json.loads(out)
    assert data["agree"] is True and data["mode"] == "nftables"
    assert len(data["results"]) == 14


@pytest.mark.lab
@needs_lab
def test_a_disagreement_is_exit_1(clean_host: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import sourceip.lab.compare as compare

    spec = ProbeSpec(id="seed claim", client="pod/default/client-node2", dst_ip="10.244.1.10",
                     dst_port=8080, description="pod on node2 -> server pod")
    wrong = Prediction(spec=spec, outcomes=(PredictedOutcome(
        probability=1.0, disposition="delivered", endpoint="10.244.1.10:8080",
        seen_source="10.0.0.12"),))
    monkeypatch.setattr(compare, "explain_predictions", lambda *a, **k: ([wrong], []))
    code, out, _ = run(["lab", "run", "--no-rules", "--example", "design-table"])
    assert code == 1
    assert "DISAGREE" in out and "10.244.2.20" in out


@pytest.mark.lab
@needs_lab
def test_without_predictions_the_lab_says_so(clean_host: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sourceip.lab.compare as compare

    def unavailable(*a: object, **k: object) -> None:
        raise compare.PredictionsUnavailable("not in this build")

    monkeypatch.setattr(compare, "explain_predictions", unavailable)
    code, out, err = run(["lab", "run", "--no-rules", "--example", "design-table"])
    assert code == 1
    assert "predictions are unavailable: not in this build" in err
    assert "(no prediction)" in out


@pytest.mark.lab
@needs_lab
def test_probe_a_lab_kept_up_elsewhere(clean_host: None) -> None:
    proc, runid = _start_lab_up()
    try:
        code, out, _ = run(["lab", "list"])
        assert code == 0 and runid in out
        args = [sys.executable, "-m", "sourceip", "lab", "probe", "--run", runid,
                "--from", "pod/default/client-node2", "--to", "10.244.1.10:8080"]
        res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=30)
        assert res.returncode == 0, res.stderr
        assert "10.244.2.20 at 10.244.1.10:8080 (default/server)" in res.stdout
        res = subprocess.run([*args, "-o", "json", "--attempts", "2"], capture_output=True,
                             text=True, env=_env(), timeout=30)
        lines = [json.loads(line) for line in res.stdout.splitlines()]
        assert [x["seen_source"] for x in lines] == ["10.244.2.20", "10.244.2.20"]
        code, out, _ = run(["lab", "down", runid])
        assert code == 0 and "tore it down" in out
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def test_lab_tests_skip_with_a_reason_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lab_skip_reason() == "the lab needs root (network namespaces)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "nft" else real(name, *a, **k))
    assert lab_skip_reason() == "missing tools: nft (nftables)"
