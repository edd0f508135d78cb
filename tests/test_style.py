"""Repository-wide checks: ruff, mypy --strict on the whole package, and the import layers
(docs/architecture.md)."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sourceip"

# package -> sourceip packages it may import (docs/architecture.md, "Layers")
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


def _ruff() -> list[str]:
    """How to run the ruff of this interpreter's environment: the executable beside
    ``sys.executable`` (a venv's bin/), else ``python -m ruff``; ruff on PATH last."""
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    if found:
        return [found]
    pytest.fail("ruff is not installed: pip install -e '.[dev]' (the dev extra has it)")


def test_ruff_clean() -> None:
    res = subprocess.run([*_ruff(), "check", "src", "tests", "bench"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_whole_package() -> None:
    """mypy --strict (pyproject's [tool.mypy]) on every module of sourceip, the CLI included."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True and config["packages"] == ["sourceip"]
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: pip install -e '.[dev]' (the dev extra has it)")
    res = subprocess.run([sys.executable, "-m", "mypy", str(SRC)], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_test_module_basenames_are_unique_outside_packages() -> None:
    """pytest imports a test file of a directory without ``__init__.py`` by its basename: two
    such files with one name stop the whole run at collection."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if (path.parent / "__init__.py").exists():
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen[path.name] = path
    assert not clashes, clashes
