"""Lab fixtures: a guard that every lab test leaves the root namespace and the namespace list
exactly as it found them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sourceip.lab.run import STATE_DIR, lab_namespaces

from .helpers import lab_skip_reason, root_snapshot


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
    left_ns = set(lab_namespaces()) - before_ns
    left_state = (set(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else set()) - before_state
    assert not left_ns, f"namespaces left behind: {sorted(left_ns)}"
    assert not left_state, f"state files left behind: {sorted(left_state)}"
    after_root = root_snapshot()
    assert after_root[0] == before_root[0], "root namespace interfaces changed"
    assert after_root[1] == before_root[1], "root namespace addresses changed"
    assert after_root[2] == before_root[2], "root namespace routes changed"
    assert after_root[3] == before_root[3], "root namespace rules changed"
