"""The trace, explain and rules commands end to end (exit codes, JSON contract, errors)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                          text=True, input=stdin, timeout=120)


def test_explain_seed_text() -> None:
    res = run("explain", "--example", "seed")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Service default/nginx" in out
    assert "external -> NodePort on node2" in out
    assert "10.0.0.12 (node2's address on eth0)" in out
    assert "spec.externalTrafficPolicy: Local" in out


def test_explain_json_contract() -> None:
    res = run("explain", "--example", "seed-local", "-o", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    (svc,) = data["services"]
    kinds = {p["kind"] for p in svc["paths"]}
    assert {"pod-same-node", "pod-other-node", "node", "hairpin", "nodeport"} <= kinds
    node2 = [p for p in svc["paths"] if p["kind"] == "nodeport" and "node2" in p["nodes"]][0]
    assert node2["real_client"] is None
    assert node2["outcomes"][0]["disposition"] == "dropped"
    node1 = [p for p in svc["paths"] if p["kind"] == "nodeport" and "node1" in p["nodes"]][0]
    assert node1["real_client"] is True


def test_trace_json_outcomes_shape() -> None:
    res = run("trace", "--example", "seed", "--from", "external", "--to", "node/node2:30080",
              "-o", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    (o,) = data["outcomes"]
    assert {"probability", "disposition", "endpoint", "masquerade", "seen_source"} <= set(o)
    assert o["seen_source"] == "10.0.0.12" and o["masquerade"] is True
    assert o["reply"]["ok"] is True


def test_trace_single_node_flows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    flows = tmp_path / "flows.jsonl"
    flows.write_text(
        json.dumps({"node": "node1", "src": "192.168.2.20", "dst": "10.96.9.42", "dport": 80})
        + "\n"
        + json.dumps({"node": "node1", "src": "10.0.0.11", "dst": "10.96.9.42", "dport": 80})
        + "\n")
    res = run("trace", "--example", "seed", "--flows", str(flows))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [ln["outcomes"][0]["masquerade"] for ln in lines] == [False, True]


def test_trace_bad_flow_line_names_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    flows = tmp_path / "flows.jsonl"
    flows.write_text('{"node": "node1", "src": "10.0.0.1"}\n')
    res = run("trace", "--example", "seed", "--flows", str(flows))
    assert res.returncode == 1
    assert f"{flows}:1:" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("args,code,needle", [
    (("trace", "--example", "seed", "--from", "pod/nope", "--to", "svc/nginx"), 1, "no Pod"),
    (("trace", "--example", "seed", "--from", "moon", "--to", "svc/nginx"), 2, "--from"),
    (("trace", "--example", "seed"), 2, "--from"),
    (("rules", "--example", "seed", "--node", "node9"), 1, "no node named 'node9'"),
    (("rules", "--example", "seed"), 2, "--node is required"),
    (("explain", "--example", "seed", "nope"), 1, "no Service 'default/nope'"),
    (("explain", "--example", "no-such-example"), 1, "no-such-example"),
])
def test_errors_are_clear(args: tuple[str, ...], code: int, needle: str) -> None:
    res = run(*args)
    assert res.returncode == code, (res.stdout, res.stderr)
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_rules_via_parsed_dump_matches_generated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dump = tmp_path / "node2.rules"
    res = run("rules", "--example", "seed", "--node", "node2")
    assert res.returncode == 0
    dump.write_text(res.stdout)
    a = run("trace", "--example", "seed", "--from", "external", "--to", "node/node2:30080",
            "-o", "json")
    b = run("trace", "--example", "seed", "--from", "external", "--to", "node/node2:30080",
            "--iptables-save", str(dump), "--rules-node", "node2", "-o", "json")
    assert b.returncode == 0, b.stderr
    pick = ("disposition", "endpoint", "seen_source", "masquerade")
    assert [{k: o[k] for k in pick} for o in json.loads(a.stdout)["outcomes"]] == \
        [{k: o[k] for k in pick} for o in json.loads(b.stdout)["outcomes"]]


@pytest.mark.parametrize("args", [
    ("explain", "--example", "ingress-nginx", "--diagram"),
    ("explain", "--example", "loadbalancer", "-o", "wide"),
    ("trace", "--example", "seed", "--from", "external", "--to", "node/node2:30080", "-o",
     "wide"),
])
def test_piped_text_fits_100_columns_or_columns_without_ansi(args: tuple[str, ...]) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    for columns, width in ((None, 100), ("72", 72)):
        if columns:
            env["COLUMNS"] = columns
        res = subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                             text=True, timeout=120, env=env)
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout + res.stderr
        assert max(len(ln) for ln in res.stdout.splitlines()) <= width
        assert res.stderr == ""  # no progress bar when stderr is not a terminal
