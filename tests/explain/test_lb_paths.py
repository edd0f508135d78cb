"""explain's load-balancer step: the pool its health checks keep, proxying, MetalLB L2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sourceip.cli.main import cli
from sourceip.explain import Explainer
from sourceip.sources import load_example


def _paths(example: str, service: str):  # type: ignore[no-untyped-def]
    (e,) = Explainer(load_example(example)).explain([service])
    return e.paths


def test_lb_path_delivers_to_nodes_with_endpoints_with_probability_one() -> None:
    res = CliRunner().invoke(cli, ["explain", "--example", "loadbalancer", "-o", "json"])
    assert res.exit_code == 0, res.output
    (svc,) = json.loads(res.output)["services"]
    (lb,) = [p for p in svc["paths"] if p["kind"] == "through-lb"]
    delivered = [o for o in lb["outcomes"] if o["disposition"] == "delivered"]
    assert sum(o["probability"] for o in delivered) == pytest.approx(1.0)
    assert {o["endpoint"].split(":")[0] for o in delivered} == {"10.244.1.10", "10.244.2.10"}
    assert all(o["seen_source"] == "203.0.113.10" for o in delivered)  # eTP Local keeps it
    checks = {c["node"]: c for c in lb["load_balancer"]["checks"]}
    assert set(checks) == {"node1", "node2", "node3"}
    assert checks["node1"]["response"]["status"] == 200
    assert checks["node1"]["check"]["port"] == 32000
    assert checks["node3"]["response"]["status"] == 503 and not checks["node3"]["in_pool"]
    assert lb["load_balancer"]["pool"] == ["node1", "node2"]


def test_out_of_pool_node_is_not_called_dropped() -> None:
    paths = _paths("loadbalancer", "default/web")
    (node3,) = [p for p in paths if p.kind == "loadbalancer" and "node3" in p.title]
    assert "taken out of the pool by the health check" in node3.title
    assert "503" in node3.title and "32000" in node3.title
    assert node3.real_client is None


def test_metallb_l2_has_one_leader_with_an_endpoint() -> None:
    paths = _paths("metallb-l2", "default/web")
    (lb,) = [p for p in paths if p.kind == "through-lb"]
    assert lb.load_balancer is not None
    leader = lb.load_balancer["leader"]
    assert leader in ("node1", "node2")
    assert lb.load_balancer["pool"] == [leader]
    delivered = [o for o in lb.trace.outcomes if o.disposition == "delivered"]
    assert delivered and all(str(o.seen_source) == "203.0.113.10" for o in delivered)


def test_proxying_lb_shows_its_own_address_and_the_proxy_header() -> None:
    paths = _paths("ingress-proxy-protocol", "ingress-nginx/ingress-nginx-controller")
    (lb,) = [p for p in paths if p.kind == "through-lb"]
    assert lb.load_balancer is not None and lb.load_balancer["mode"] == "proxying"
    assert lb.real_client is False
    assert "PROXY v2" in lb.summary
    assert lb.trace.outcomes[0].hops[0].at == "load balancer"


def test_trace_to_a_load_balancer_ip_goes_through_the_load_balancer() -> None:
    res = CliRunner().invoke(cli, ["trace", "--example", "loadbalancer", "--from", "external",
                                   "--to", "172.18.255.10:80", "-o", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert all(o["hops"][0]["at"] == "load balancer" for o in data["outcomes"])
    delivered = [o for o in data["outcomes"] if o["disposition"] == "delivered"]
    assert sum(o["probability"] for o in delivered) == pytest.approx(1.0)
    # --via NODE still traces one node as if the load balancer had picked it
    res = CliRunner().invoke(cli, ["trace", "--example", "loadbalancer", "--from", "external",
                                   "--to", "172.18.255.10:80", "--via", "node3", "-o", "json"])
    assert res.exit_code == 0, res.output
    assert {o["disposition"] for o in json.loads(res.output)["outcomes"]} == {"dropped"}


def _sip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                          text=True, timeout=120)


LB_SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  clusterIP: 10.96.0.50
  externalTrafficPolicy: Local
  ports: [{port: 80, targetPort: 8080, nodePort: 31080}]
status:
  loadBalancer:
    ingress: [{ip: 172.18.255.10}]
"""


def test_lb_service_without_nodes_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(LB_SERVICE)
    res = _sip("explain", "-f", str(f))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "no Nodes were given" in res.stdout + res.stderr


def test_bad_load_balancer_profile_value_names_file_line_field(tmp_path: Path) -> None:
    f = tmp_path / "lb.yaml"
    f.write_text("apiVersion: sourceip.dev/v1alpha1\nkind: LoadBalancerProfile\n"
                 "metadata: {name: x}\nspec:\n  mode: proxyin\n")
    res = _sip("explain", "-f", str(f))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{f}:5: spec.mode: 'proxyin' is not forwarding or proxying" in res.stderr
    f.write_text("apiVersion: sourceip.dev/v1alpha1\nkind: LoadBalancerProfile\n"
                 "metadata: {name: x}\nspec:\n  modes: proxying\n")
    res = _sip("explain", "-f", str(f))
    assert res.returncode == 1 and f"{f}:5: spec.modes: unknown field" in res.stderr
