"""Lab fixtures: a guard that every lab test leaves the root namespace and the namespace list
exactly as it found them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sourceip.lab.plan import NS_RE
from sourceip.lab.run import STATE_DIR, lab_namespaces, load_state

from .helpers import lab_skip_reason, root_snapshot


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _ours(pid: int) -> bool:
    """``pid`` is this process or one of its descendants."""
    me = os.getpid()
    for _ in range(64):
        if pid in (0, 1):
            return False
        if pid == me:
            return True
        pid = _ppid(pid)
    return False


def _foreign_runs() -> set[str]:
    """Run ids of live lab runs owned by processes outside this test process (another
    developer's or CI's lab running at the same time): their namespaces are not ours."""
    out: set[str] = set()
    if not STATE_DIR.is_dir():
        return out
    for f in STATE_DIR.glob("*.json"):
        try:
            st = load_state(f.stem)
        except Exception:  # noqa: BLE001 - a half-written state file of another run
            continue
        if st.owner_alive and not _ours(st.owner_pid):
            out.add(st.runid)
    return out


def _mine(names: set[str]) -> set[str]:
    foreign = _foreign_runs()
    kept = set()
    for n in names:
        m = NS_RE.match(n)
        if m is None or m.group(1) not in foreign:
            kept.add(n)
    return kept


@pytest.fixture()
def clean_host() -> Iterator[None]:
    """Assert after the test that no lab namespace, state file or root-namespace change is
    left (lab namespaces of other live runs are ignored: only new ones count)."""
    if lab_skip_reason() is not None:
        yield
        return
    before_ns = set(lab_namespaces())
    before_state = set(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else set()
    before_root = root_snapshot()
    yield
    left_ns = _mine(set(lab_namespaces()) - before_ns)
    foreign = _foreign_runs()
    left_state = {f for f in (set(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else set())
                  - before_state if f.stem not in foreign}
    assert not left_ns, f"namespaces left behind: {sorted(left_ns)}"
    assert not left_state, f"state files left behind: {sorted(left_state)}"
    after_root = root_snapshot()
    assert after_root[0] == before_root[0], "root namespace interfaces changed"
    assert after_root[1] == before_root[1], "root namespace addresses changed"
    assert after_root[2] == before_root[2], "root namespace routes changed"
    assert after_root[3] == before_root[3], "root namespace rules changed"
