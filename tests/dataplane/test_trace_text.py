"""``str(trace)`` is the packet's story and is tested verbatim."""

from __future__ import annotations

from pathlib import Path

from sourceip.dataplane.tracer import Tracer

from .clusters import design_cluster

HERE = Path(__file__).parent


def test_str_of_dropped_etp_local_trace_is_verbatim() -> None:
    trace = Tracer(design_cluster(etp="Local"), external_ip="192.168.100.2").trace(
        "external", "node/node2:30080")
    expected = (HERE / "golden_trace_etp_local_drop.txt").read_text()
    assert str(trace) + "\n" == expected
