"""Helpers shared by the real-dump tests (``test_real_dumps*.py``): the CLI in a subprocess, a
standalone trace through the library, and a tool run in a network namespace of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sourceip.cluster import Cluster, KubeProxyConfig, Node
from sourceip.dataplane.trace import Trace
from sourceip.dataplane.tracer import Tracer
from sourceip.netfilter.dumps import NodeDumps, load_node_dumps


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m sourceip ARGS`` (wide terminal), its output captured."""
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def node_trace(dump: Path, node_ip: str, src: str, dst: str, dport: int,
               proto: str = "tcp") -> tuple[NodeDumps, Trace]:
    """What ``trace --dump DUMP --node-ip IP --node n --src --dst --dport`` computes, through
    the library: a one-node cluster made from the dump alone."""
    nd = load_node_dumps([str(dump)], [node_ip])
    assert nd.ruleset is not None
    mode = "nftables" if nd.mode == "nftables" else "iptables"
    cluster = Cluster(nodes=(Node(name="n", internal_ips=nd.node_ips),),
                      kube_proxy=KubeProxyConfig(mode=mode))
    tracer = Tracer(cluster, rulesets={"n": nd.ruleset}, ipsets={"n": nd.ipsets})
    return nd, tracer.trace_node("n", src, dst, dport, proto)


def in_fresh_netns(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool in a network namespace of its own (`unshare --net`), gone when it exits: the
    root namespace's firewall is never touched."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    return subprocess.run(["unshare", "--net", *args], input=stdin, capture_output=True,
                          text=True, timeout=60)
