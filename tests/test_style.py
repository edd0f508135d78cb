"""Repository-wide checks: ruff, mypy --strict on the core, and DESIGN.md's import layers."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sourceip"

# package -> sourceip packages it may import (DESIGN.md §2)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "net": {"errors"},
    "cluster": {"net", "errors"},
    "sources": {"cluster", "net", "errors"},
    "netfilter": {"net", "errors"},
    "kubeproxy": {"cluster", "netfilter", "net", "errors"},
    "dataplane": {"netfilter", "kubeproxy", "cluster", "net", "errors"},
    "clientip": set(),
    "loadbalancer": {"cluster", "kubeproxy", "net", "errors"},
    "ingress": {"cluster", "clientip", "net", "errors"},
    "explain": {"dataplane", "netfilter", "kubeproxy", "cluster", "clientip", "net", "errors",
                "loadbalancer", "ingress"},
    "echo": {"clientip"},
    "lab": {"cluster", "kubeproxy", "netfilter", "explain", "dataplane", "net", "errors",
            "loadbalancer", "ingress", "clientip"},
    "report": {"explain", "dataplane", "netfilter", "kubeproxy", "cluster", "net", "errors",
               "clientip", "lab", "loadbalancer", "ingress"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "sourceip" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_import_layers() -> None:
    bad = []
    for pkg, allowed in ALLOWED.items():
        target = SRC / pkg
        files = [target.with_suffix(".py")] if not target.is_dir() else list(target.rglob("*.py"))
        for f in files:
            if not f.exists():
                continue
            for imp in _imports(f) - allowed - {pkg}:
                bad.append(f"{f.relative_to(ROOT)} imports sourceip.{imp}")
    assert not bad, "import layer violations:\n" + "\n".join(bad)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_clean() -> None:
    res = subprocess.run(["ruff", "check", "src", "tests", "bench"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_core() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed")
    core = ["errors.py", "net", "cluster", "netfilter", "kubeproxy", "dataplane", "clientip",
            "sources", "explain"]
    targets = [str(SRC / c) for c in core if (SRC / c).exists()]
    res = subprocess.run([sys.executable, "-m", "mypy", *targets], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
