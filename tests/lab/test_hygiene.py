"""Lab hygiene: after any run — passing, failing, interrupted, killed — no namespace, veth,
state file or process of the lab remains, and the root namespace is untouched (the
``clean_host`` fixture checks the namespace list, state files and the root namespace's
interfaces, addresses, routes and rules)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sourceip.errors import LabError
from sourceip.lab.model import EchoServer, ProbeSpec
from sourceip.lab.plan import new_runid, plan_lab, render_script
from sourceip.lab.run import (
    STATE_DIR,
    Lab,
    RunState,
    clean_stale,
    down_run,
    lab_namespaces,
    proc_start_time,
    run_probes,
)

from .clusters import BRIDGE1_IP, NODE1_IP, SERVER_IP, design_cluster
from .helpers import lab_skip_reason, processes_of_run, rules_skip_reason

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _readline(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError("no output from the lab process")
    return proc.stdout.readline()


def _wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if proc_start_time(p) is not None]
        time.sleep(0.05)
    return alive


def _start_lab_up(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sourceip", "lab", "up", "--no-rules", "--example",
         "design-table", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    line = _readline(proc)
    assert " is up" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
    runid = line.split()[1]
    return proc, runid


def test_normal_exit_removes_everything(clean_host: None) -> None:
    plan = plan_lab(design_cluster(), rules=False)
    with Lab(plan) as lab:
        assert set(lab_namespaces(plan.runid)) == set(plan.namespace_names)
        pids = processes_of_run(plan.runid)
        assert len(pids) == 1  # one echo server: the server pod
        assert lab.state_path.exists()
    assert lab_namespaces(plan.runid) == []
    assert processes_of_run(plan.runid) == []
    assert not lab.state_path.exists()


def test_exception_inside_the_run_removes_everything(clean_host: None) -> None:
    plan = plan_lab(design_cluster(), rules=False)
    with pytest.raises(RuntimeError, match="boom"), Lab(plan):
        raise RuntimeError("boom")
    assert lab_namespaces(plan.runid) == [] and processes_of_run(plan.runid) == []


def test_failure_mid_build_removes_everything(clean_host: None) -> None:
    plan = plan_lab(design_cluster(), rules=False)
    setups = list(plan.setups)
    setups[-1] = replace(setups[-1], ip=(*setups[-1].ip, "route add 10.1.2.0/24 via 203.0.113.1"))
    broken = replace(plan, setups=tuple(setups))
    with pytest.raises(LabError, match="route add"):
        Lab(broken).up()
    assert lab_namespaces(plan.runid) == []


def test_echo_server_failure_removes_everything(clean_host: None) -> None:
    plan = plan_lab(design_cluster(), rules=False)
    servers = (*plan.servers, EchoServer(ns=plan.servers[0].ns, pod="default/dup",
                                         tcp_ports=plan.servers[0].tcp_ports))
    with pytest.raises(LabError, match="Address already in use"):
        Lab(replace(plan, servers=servers)).up()
    assert lab_namespaces(plan.runid) == [] and processes_of_run(plan.runid) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_lab_up_tears_down(clean_host: None, sig: signal.Signals) -> None:
    proc, runid = _start_lab_up()
    assert lab_namespaces(runid)
    pids = processes_of_run(runid)
    assert pids
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"rc {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    assert f"lab {runid} torn down" in out
    assert lab_namespaces(runid) == []
    assert _wait_gone(pids, 0.5) == []


def test_lab_down_asks_the_owner(clean_host: None) -> None:
    proc, runid = _start_lab_up()
    assert "tore it down" in down_run(runid)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert lab_namespaces(runid) == []


def test_sigkill_then_next_run_cleans_the_stale_one(clean_host: None) -> None:
    proc, runid = _start_lab_up()
    state = json.loads((STATE_DIR / f"{runid}.json").read_text())
    pids = [s["pid"] for s in state["servers"]]
    proc.kill()
    proc.communicate(timeout=10)
    # the namespaces outlive a SIGKILLed owner; its echo servers notice and exit on their own
    assert lab_namespaces(runid)
    assert _wait_gone(pids) == []
    plan = plan_lab(design_cluster(), rules=False)
    with Lab(plan) as lab:
        assert lab_namespaces(runid) == []
        assert any(runid in note for note in lab.notes)
    assert not (STATE_DIR / f"{runid}.json").exists()


def test_stale_cleanup_kills_only_verified_pids(clean_host: None) -> None:
    """A stale state file's server PIDs are killed only when the process is still the echo
    server we started (start time, command line, namespace); anything else is left alone."""
    runid = new_runid()
    ns = f"sip-{runid}-x"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    ours = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "sourceip.lab.echo_server",
         "--run", runid, "--pod", "t/ours", "--owner-pid", "0", "--tcp", "9"],
        stdout=subprocess.PIPE, env=_env())
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        assert ours.stdout is not None and b"ready" in ours.stdout.readline()
        dead = subprocess.Popen(["true"])
        dead.wait()
        RunState(
            runid=runid, owner_pid=dead.pid, owner_start=1, namespaces=[ns],
            servers=[
                {"pid": ours.pid, "start": proc_start_time(ours.pid), "ns": ns, "pod": "t/ours"},
                {"pid": bystander.pid, "start": proc_start_time(bystander.pid), "ns": ns,
                 "pod": "t/not-ours"},
            ],
        ).save(STATE_DIR)
        assert runid in clean_stale()
        assert ours.wait(timeout=5) is not None
        assert bystander.poll() is None, "a process that is not our echo server was killed"
        assert lab_namespaces(runid) == []
    finally:
        bystander.kill()
        bystander.wait()
        ours.kill()
        ours.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_dry_run_script_builds_and_tears_down(clean_host: None, tmp_path: Path) -> None:
    """The --dry-run script works by hand: it builds the lab (rules too, when they exist),
    the lab answers, and Enter (or its trap) removes it all."""
    with_rules = rules_skip_reason() is None
    plan = plan_lab(design_cluster(), rules=with_rules)
    script = tmp_path / "lab.sh"
    script.write_text(render_script(plan, python=sys.executable))
    proc = subprocess.Popen(["bash", str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        line = _readline(proc)
        while "is up" not in line:
            assert line, proc.stderr.read() if proc.stderr else ""
            line = _readline(proc)
        assert set(lab_namespaces(plan.runid)) == set(plan.namespace_names)
        if with_rules:
            spec = ProbeSpec(id="np", client="external", dst_ip=NODE1_IP, dst_port=30080)
            want = BRIDGE1_IP
        else:
            spec = ProbeSpec(id="np", client="pod/default/client2", dst_ip=SERVER_IP,
                             dst_port=8080)
            want = "10.244.2.20"
        deadline = time.monotonic() + 10
        while True:  # the script does not wait for its echo servers
            (obs,) = run_probes([spec], clients=dict(plan.clients),
                                via_ports={k: list(v) for k, v in plan.via_ports})
            if obs.disposition == "delivered" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert obs.seen_source == want, obs
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, f"rc {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
        assert f"lab {plan.runid} torn down" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert lab_namespaces(plan.runid) == []
    assert _wait_gone(processes_of_run(plan.runid)) == []


def test_nfacct_helper_refuses_a_namespace_it_cannot_enter(clean_host: None) -> None:
    res = subprocess.run([sys.executable, "-m", "sourceip.lab.nfacct", "--netns",
                          f"sip-{new_runid()}-missing", "--", "sip_test_counter"],
                         capture_output=True, text=True, env=_env())
    assert res.returncode == 1 and "No such file" in res.stderr


def test_nfacct_counters_land_in_the_namespace(clean_host: None) -> None:
    ns = f"sip-{new_runid()}-acct"
    rules = ("*filter\n:FORWARD ACCEPT [0:0]\n"
             "-A FORWARD -m nfacct --nfacct-name sip_test_counter -j ACCEPT\nCOMMIT\n")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        load = ["ip", "netns", "exec", ns, "iptables-legacy-restore"]
        assert subprocess.run(load, input=rules, text=True, capture_output=True).returncode != 0
        res = subprocess.run([sys.executable, "-m", "sourceip.lab.nfacct", "--netns", ns, "--",
                              "sip_test_counter"], capture_output=True, text=True, env=_env())
        assert res.returncode == 0, res.stderr
        assert subprocess.run(load, input=rules, text=True, capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
