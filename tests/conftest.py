"""Shared pytest configuration."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="module")
def scratch_netns() -> Iterator[str]:
    """A fresh network namespace ``sip-t-<random>`` for checking rules with the real tools
    (``iptables-restore --test``, ``nft -c``), deleted afterwards whatever happens; skips,
    saying why, without root or iproute2. The root namespace is never touched."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip) to create a network namespace")
    name = f"sip-t-{secrets.token_hex(4)}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {res.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_netns(ns: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``args`` inside the network namespace ``ns``."""
    return subprocess.run(["ip", "netns", "exec", ns, *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
