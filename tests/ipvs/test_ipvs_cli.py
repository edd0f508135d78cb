"""The CLI in ipvs mode: `trace --dump` with a real ipvs node's three dumps, `trace`/`explain
--mode ipvs` on generated rules, and bad ipvs input (exit 1 with file:line or an outcome —
never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
DUMPS = [str(DATA / f"ssup2-ipvs-node.{ext}")
         for ext in ("iptables-save", "ipset-list", "ipvsadm-Ln")]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def _dump_args(paths: list[str]) -> list[str]:
    return [a for p in paths for a in ("--dump", p)]


def test_trace_dump_of_a_real_ipvs_node() -> None:
    res = run("trace", *_dump_args(DUMPS), "--node-ip", "172.35.0.100", "--from", "external",
              "--to", "10.103.1.234:80", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["dump"]["mode"] == "ipvs"
    assert sorted(o["endpoint"] for o in doc["outcomes"]) == [
        "192.167.1.123:80", "192.167.2.206:80", "192.167.2.231:80"]
    assert all(o["masquerade"] and o["certain"] for o in doc["outcomes"])


def test_trace_dump_virtual_server_without_real_servers(tmp_path: Path) -> None:
    f = tmp_path / "ipvs.txt"
    f.write_text("-A -t 10.103.1.234:80 -s rr\n")
    res = run("trace", *_dump_args(DUMPS[:2] + [str(f)]), "--node-ip", "172.35.0.100",
              "--from", "external", "--to", "10.103.1.234:80")
    assert res.returncode == 0, res.stderr
    assert "REJECTED" in res.stdout and "has no real servers" in res.stdout


def test_trace_dump_ipset_not_dumped_is_uncertain() -> None:
    res = run("trace", "--dump", DUMPS[0], "--dump", DUMPS[2], "--node-ip", "172.35.0.100",
              "--from", "external", "--to", "10.103.1.234:80", "-o", "json")
    assert res.returncode == 0, res.stderr
    outcomes = json.loads(res.stdout)["outcomes"]
    assert outcomes and not any(o["certain"] for o in outcomes)
    assert any("KUBE-CLUSTER-IP" in d for o in outcomes for d in o["depends_on"])


def test_trace_dump_bad_ipvsadm_line(tmp_path: Path) -> None:
    f = tmp_path / "ipvs.txt"
    f.write_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r pod-a:80 -m\n")
    res = run("trace", "--dump", DUMPS[0], "--dump", str(f), "--from", "external",
              "--to", "10.0.0.1:80")
    assert res.returncode == 1
    assert f"{f}:2:" in res.stderr and "Traceback" not in res.stderr


def test_trace_and_explain_mode_ipvs() -> None:
    res = run("trace", "--example", "design-table", "--mode", "ipvs", "--from",
              "pod/default/server", "--to", "svc/default/server", "-o", "json")
    assert res.returncode == 0, res.stderr
    (o,) = json.loads(res.stdout)["outcomes"]
    assert (o["seen_source"], o["masquerade"]) == ("10.244.1.1", True)
    res = run("explain", "--example", "design-table", "--mode", "ipvs", "-o", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)
