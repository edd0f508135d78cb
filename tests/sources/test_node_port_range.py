"""nodePorts outside the default 30000-32767: hand-written manifests are checked against the
API server's --service-node-port-range, objects read from a cluster (server-set uid /
resourceVersion) are accepted with a note, and the CLI takes the range in kube-apiserver's
own format."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from sourceip.cli.common import parse_port_range
from sourceip.errors import ValidationError
from sourceip.sources import cluster_from_objects


def lb(*, server_set: bool, node_port: int = 8080, hc: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "lb", "namespace": "shop"}
    if server_set:
        meta.update(uid="0b9e6d1c-0000-4000-8000-000000000001", resourceVersion="4711")
    spec: dict[str, Any] = {"type": "LoadBalancer", "clusterIP": "10.96.0.50",
                            "ports": [{"port": 80, "nodePort": node_port}]}
    if hc is not None:
        spec.update(externalTrafficPolicy="Local", healthCheckNodePort=hc)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def test_hand_written_manifest_outside_the_range_is_an_error() -> None:
    with pytest.raises(ValidationError) as ei:
        cluster_from_objects([lb(server_set=False)])
    assert ei.value.field == "spec.ports[0].nodePort"
    assert "outside the node port range 30000-32767" in ei.value.message


def test_objects_read_from_a_cluster_are_accepted_with_a_note() -> None:
    c = cluster_from_objects([lb(server_set=True, hc=9100)])
    (svc,) = c.services
    assert svc.ports[0].node_port == 8080 and svc.health_check_node_port == 9100
    (note,) = [n for n in c.notes if "outside 30000-32767" in n]
    assert "shop/lb spec.ports[0].nodePort 8080" in note
    assert "shop/lb spec.healthCheckNodePort 9100" in note
    assert "--service-node-port-range" in note


def test_a_range_that_covers_the_ports_needs_no_note() -> None:
    c = cluster_from_objects([lb(server_set=True)], node_port_range=(8000, 9000))
    assert not [n for n in c.notes if "node ports outside" in n]
    c = cluster_from_objects([lb(server_set=False)], node_port_range=(8000, 9000))
    assert c.services[0].ports[0].node_port == 8080


@pytest.mark.parametrize("text,expected", [
    ("30000-32767", (30000, 32767)), ("8000+100", (8000, 8100)), ("31000", (31000, 31000)),
    (" 1-65535 ", (1, 65535)),
])
def test_port_range_flag_format(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["", "x", "32767-30000", "0-100", "1-70000", "1--2", "5+-9"])
def test_bad_port_ranges(text: str) -> None:
    with pytest.raises(ValueError):
        parse_port_range(text)


def _run(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sourceip", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_cli_service_node_port_range_option() -> None:
    import yaml

    text = yaml.safe_dump(lb(server_set=False))
    res = _run("rules", "-f", "-", "--node", "x", stdin=text)
    assert res.returncode == 1 and "spec.ports[0].nodePort: 8080 is outside" in res.stderr
    res = _run("rules", "-f", "-", "--node", "x", "--service-node-port-range", "8000-9000",
               stdin=text)
    assert res.returncode == 1 and "no node named 'x'" in res.stderr  # the range was taken
    res = _run("rules", "-f", "-", "--service-node-port-range", "9-2", stdin=text)
    assert res.returncode == 2 and "--service-node-port-range" in res.stderr
    assert "Traceback" not in res.stderr
