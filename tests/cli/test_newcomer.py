"""A newcomer's first hour (issue #11): every row of the bad-input table in docs/input.md, and the
commands around it, give one clear line, the documented exit code, and no traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def _table_rows() -> list[tuple[str, int, str]]:
    """(command, exit code, expected text) from the "Bad input" table of docs/input.md."""
    text = (ROOT / "docs" / "input.md").read_text()
    section = text.split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"\| `(sourceip [^`]*)` \| (\d) \| `(.*)` \|$", line)
        if m:
            rows.append((m.group(1), int(m.group(2)), m.group(3)))
    return rows


ROWS = _table_rows()


def sh(command: str) -> subprocess.CompletedProcess[str]:
    """Run a documented command line (bash: redirections as written) from the repository root,
    with ``sourceip`` as this interpreter's ``-m sourceip``."""
    line = command.replace("sourceip ", f"{sys.executable} -m sourceip ", 1)
    return subprocess.run(["bash", "-c", line], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def check_error(res: subprocess.CompletedProcess[str], code: int, needle: str) -> str:
    """Exit ``code``, no traceback, exactly one error line, containing ``needle``."""
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    assert res.returncode == code, out
    prefix = "error: " if code == 1 else "Error: "
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith(prefix)]
    assert len(errors) == 1, res.stderr
    assert needle in errors[0], errors[0]
    return errors[0]


def test_the_table_is_there() -> None:
    assert len(ROWS) >= 25
    assert {code for _, code, _ in ROWS} == {1, 2}


@pytest.mark.parametrize(("command", "code", "needle"), ROWS, ids=[r[0][9:] for r in ROWS])
def test_bad_input_table(command: str, code: int, needle: str) -> None:
    line = check_error(sh(command), code, needle)
    assert len(line) < 400, "the message echoes too much of the input"


def test_plain_text_is_not_echoed() -> None:
    res = sh("sourceip explain -f /etc/passwd")
    line = check_error(res, 1, "got text")
    assert len(line) < 250 and "is this a manifest?" in line


def test_what_is_missing_is_said_in_the_report_too() -> None:
    res = sh(f"sourceip explain -f {DATA / 'deployment-no-pods.yaml'}")
    check_error(res, 1, "no Nodes were given")
    out = " ".join(res.stdout.split())  # lines wrap at 100 columns
    assert "no Nodes were given, so no path can be traced (kubectl get nodes -o yaml)" in out
    assert "no given Pod matches its selector app=web" in out
    assert "Deployment default/web" in out  # the workload note


def test_a_load_balancer_service_without_nodes_is_a_finding_not_a_crash() -> None:
    """Was an IndexError in explain/engine.py (status.loadBalancer.ingress, no Nodes); the
    nodePort 8080 is accepted because the object carries server-set fields."""
    res = sh(f"sourceip explain -f {DATA / 'lb-from-cluster.yaml'} -o json")
    check_error(res, 1, "no path could be traced")
    data = json.loads(res.stdout)
    assert [s["service"] for s in data["services"]] == ["shop/lb"]
    notes = "\n".join(data["notes"])
    assert "shop/lb spec.ports[0].nodePort 8080" in notes
    assert "Service shop/lb: no Nodes were given" in notes


def test_no_endpoints_with_nodes_is_explained_with_exit_0() -> None:
    text = sh("sourceip examples --show seed").stdout
    without_pods = "\n---\n".join(d for d in text.split("\n---\n") if "kind: Pod" not in d)
    res = subprocess.run([sys.executable, "-m", "sourceip", "explain", "-f", "-"], cwd=ROOT,
                         input=without_pods, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no endpoints: no given Pod matches its selector" in " ".join(res.stdout.split())


@pytest.mark.parametrize("args", [
    ("trace", "--example", "seed", "--from", "external", "--to", "node/node2:30080"),
    ("trace", "--example", "seed", "--from", "external=192.168.100.2", "--to", "10.0.0.12:30080"),
    ("trace", "--example", "seed", "--from", "pod/client-node2", "--to", "svc/default/nginx:80"),
    ("trace", "--example", "seed", "--node", "node1", "--src", "192.168.2.20", "--dst",
     "10.96.9.42", "--dport", "80"),
    ("explain", "--example", "seed", "--external-ip", "192.168.100.2"),
    ("explain", "--example", "seed", "--service-node-port-range", "30000-32767"),
])
def test_the_same_commands_with_good_input_still_work(args: tuple[str, ...]) -> None:
    res = subprocess.run([sys.executable, "-m", "sourceip", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_help_starts_lazily() -> None:
    """`sourceip --help` imports no command's dependencies (asyncio, PyYAML, rich, clientip,
    the model)."""
    code = ("import sys, runpy\n"
            "sys.argv = ['sourceip', '--help']\n"
            "try:\n"
            "    runpy.run_module('sourceip', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "bad = sorted(m for m in sys.modules if m in ('asyncio', 'yaml', 'rich') or "
            "m.startswith(('sourceip.clientip', 'sourceip.cluster', 'sourceip.explain', "
            "'sourceip.report')))\n"
            "print('IMPORTED', bad, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert "Commands:" in res.stdout
    assert "IMPORTED []" in res.stderr, res.stderr


@pytest.mark.parametrize("example", ["design-table", "lb-proxy", "ingress-nginx"])
def test_lab_plan_fits_a_narrow_terminal(example: str) -> None:
    """`lab plan` lays its namespaces, servers, processes and LBs out in the terminal's width
    (no fixed-width columns running past it)."""
    import os

    env = {**os.environ, "COLUMNS": "60"}
    res = subprocess.run([sys.executable, "-m", "sourceip", "lab", "plan", "--no-rules",
                          "--example", example], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()[1:]  # the headline names the run and may wrap on its own
    assert lines and all(len(line) <= 60 for line in lines), [ln for ln in lines if len(ln) > 60]
    assert "default/" in res.stdout
