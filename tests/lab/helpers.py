"""Lab test helpers: skip reasons (root, tools), the rules-availability check, snapshots."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "iptables-legacy-restore": "iptables",
    "iptables-nft-restore": "iptables",
    "nft": "nftables",
}


def lab_skip_reason() -> str | None:
    """Why the real-kernel lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespace support"
    missing = [f"{t} ({p})" for t, p in TOOLS.items() if not shutil.which(t)]
    if missing:
        return "missing tools: " + ", ".join(missing)
    return None


def rules_skip_reason(mode: str = "iptables") -> str | None:
    """Why kube-proxy rules cannot be rendered in this build (they are written by others)."""
    from .clusters import design_cluster

    try:
        from sourceip.kubeproxy import build_ruleset
        from sourceip.netfilter import render

        c = design_cluster(mode=mode)
        render(build_ruleset(c, "node1"))
    except (ModuleNotFoundError, NotImplementedError) as exc:
        return f"kube-proxy {mode} rules are not available yet: {exc}"
    return None


requires_lab = pytest.mark.skipif(lab_skip_reason() is not None,
                                  reason=str(lab_skip_reason()))


def root_snapshot() -> tuple[str, str, str, str]:
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    links = "\n".join(sorted(line.split(":")[1].strip().split("@")[0]
                             for line in run("ip", "-o", "link").splitlines() if ":" in line))
    return (links, run("ip", "-o", "addr"), run("ip", "route", "show", "table", "all"),
            run("ip", "rule"))




def processes_of_run(runid: str) -> list[int]:
    """PIDs whose command line names this run (echo servers carry ``--run RUNID``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sourceip.lab.echo_server" in argv and runid.encode() in argv:
            pids.append(int(entry.name))
    return pids
