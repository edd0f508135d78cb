"""explain's ingress paths: what the app behind a controller receives and resolves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sourceip.cli.main import cli
from sourceip.explain import Explainer
from sourceip.sources import example_text, load_cluster, load_example


def _ingress_paths(cluster, service="default/nginx"):  # type: ignore[no-untyped-def]
    (e,) = Explainer(cluster).explain([service])
    return [p for p in e.paths if p.kind == "ingress"]


def _with_configmap(tmp_path: Path, example: str, data: dict[str, str]) -> Path:
    docs = [d for d in yaml.safe_load_all(example_text(example)) if d]
    for d in docs:
        if d.get("kind") == "ConfigMap":
            d["data"] = data
    out = tmp_path / "cluster.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    return out


def test_default_ingress_nginx_passes_on_the_node_address_and_is_not_forgeable() -> None:
    paths = _ingress_paths(load_example("ingress-nginx"))
    assert len(paths) == 2  # NodePort on node1, NodePort on node2
    for p in paths:
        app = p.app_sees
        assert app is not None
        assert app["controller"] == "ingress-nginx"
        assert app["ingress"] == "default/nginx" and app["host"] == "example.test"
        assert app["peer"] == "192.168.2.30"  # the controller pod, pod -> pod unchanged
        # eTP Cluster on the controller Service: $remote_addr is a node address, and the
        # default template replaces X-Forwarded-For / sets X-Real-IP with it.
        assert app["resolved_client"] in ("10.0.0.11", "192.168.2.1")
        assert app["headers"]["X-Forwarded-For"] == app["resolved_client"]
        assert app["headers"]["X-Real-IP"] == app["resolved_client"]
        assert app["forgeable"] is False
        assert all(b["forged"]["refused"] for b in app["branches"])
        assert p.real_client is False
        # the app trusts the controller pod itself, not its node's pod CIDR (which holds the
        # bridge address kube-proxy masquerades to on node2)
        assert app["trusted_cidrs"] == ["192.168.2.30/32"]
        assert "192.168.2.30/32" in app["strategy"]


def test_use_forwarded_headers_with_the_default_trust_is_forgeable(tmp_path: Path) -> None:
    f = _with_configmap(tmp_path, "ingress-nginx", {"use-forwarded-headers": "true"})
    paths = _ingress_paths(load_cluster([str(f)]))
    assert paths and all(p.app_sees and p.app_sees["forgeable"] for p in paths)
    # The fix names the setting that closes it.
    changes = " ".join(f.change for p in paths for f in p.fixes)
    assert "proxy-real-ip-cidr" in changes


def test_proxy_protocol_from_the_load_balancer_carries_the_client() -> None:
    paths = _ingress_paths(load_example("ingress-proxy-protocol"))
    assert paths
    for p in paths:
        app = p.app_sees
        assert app is not None and not p.findings
        assert app["resolved_client"] == "203.0.113.10"
        assert p.real_client is True and app["forgeable"] is False


def test_proxy_protocol_mismatch_is_a_finding(tmp_path: Path) -> None:
    f = _with_configmap(tmp_path, "ingress-proxy-protocol", {})
    paths = _ingress_paths(load_cluster([str(f)]))
    assert paths
    found = [x for p in paths for x in p.findings]
    assert any("PROXY" in x and "every request on this path fails" in x for x in found)


def test_json_has_kind_ingress_and_app_sees() -> None:
    res = CliRunner().invoke(cli, ["explain", "--example", "ingress-nginx", "-o", "json",
                                   "default/nginx"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    ingress = [p for s in data["services"] for p in s["paths"] if p["kind"] == "ingress"]
    assert ingress
    for p in ingress:
        assert set(p["app_sees"]) >= {"peer", "headers", "resolved_client", "strategy",
                                      "forgeable"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sourceip", *args], capture_output=True,
                          text=True, timeout=120)


def test_missing_backend_service_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(example_text("ingress-nginx")) if d]
    for d in docs:
        if d.get("kind") == "Ingress":
            d["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "nope"
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    res = _run("explain", "-f", str(f))
    assert res.returncode == 0, res.stderr
    assert "default/nope does not exist" in res.stdout


def test_bad_configmap_value_names_file_line_field(tmp_path: Path) -> None:
    f = _with_configmap(tmp_path, "ingress-nginx", {"use-forwarded-headers": "maybe"})
    res = _run("explain", "-f", str(f))
    assert res.returncode == 1
    assert f"{f}:" in res.stderr and 'data["use-forwarded-headers"]' in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


CONFIGMAPS = [
    {},
    {"use-forwarded-headers": "true"},
    {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/24"},
    {"use-forwarded-headers": "true", "compute-full-forwarded-for": "true"},
    {"use-forwarded-headers": "true", "compute-full-forwarded-for": "true",
     "proxy-real-ip-cidr": "192.168.0.0/16"},
    {"enable-real-ip": "true"},
    {"forwarded-for-header": "X-Client-IP", "use-forwarded-headers": "true",
     "proxy-real-ip-cidr": "10.0.0.11/32"},
]


@pytest.mark.parametrize("data", CONFIGMAPS, ids=lambda d: ",".join(d) or "defaults")
@pytest.mark.parametrize("example", ["ingress-nginx", "ingress-proxy-protocol"])
def test_forged_header_is_believed_exactly_when_flagged(tmp_path: Path, example: str,
                                                        data: dict[str, str]) -> None:
    """The forged X-Forwarded-For is refused on every branch unless the path says forgeable,
    and a path that says forgeable names a settings change."""
    if example == "ingress-proxy-protocol":
        data = {**data, "use-proxy-protocol": "true"}
    f = _with_configmap(tmp_path, example, data)
    paths = _ingress_paths(load_cluster([str(f)]))
    assert paths
    for p in paths:
        app = p.app_sees
        assert app is not None
        believed = [b for b in app["branches"] if not b["forged"]["refused"]]
        assert bool(believed) == app["forgeable"], (data, p.title)
        assert ["X-Forwarded-For", "6.6.6.6, 6.6.6.6, 6.6.6.6, 6.6.6.6"] in \
            app["forged_request"]
        if app["forgeable"]:
            assert any("ingress-nginx" in fx.change for fx in p.fixes), (data, p.title)


# ---- Gateway API (HTTPRoute -> Gateway -> GatewayClass -> Envoy Gateway's proxy) ----

def _eg_docs() -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(example_text("envoy-gateway")) if d]


def _eg_cluster(tmp_path: Path, extra: list[dict] | None = None,  # type: ignore[type-arg]
                drop: str = "") -> Path:
    docs = [d for d in _eg_docs() if d.get("kind") != drop] + (extra or [])
    f = tmp_path / "eg.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    return f


def _ctp(xff: dict) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "ClientTrafficPolicy",
            "metadata": {"name": "client-ip", "namespace": "default"},
            "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                     "name": "eg"}],
                     "clientIPDetection": {"xForwardedFor": xff}}}


def test_httproute_through_envoy_gateway_keeps_the_client() -> None:
    paths = _ingress_paths(load_example("envoy-gateway"))
    (p,) = paths
    app = p.app_sees
    assert app is not None
    assert app["controller"] == "envoy-gateway" and app["route_kind"] == "HTTPRoute"
    assert app["ingress"] == "default/nginx" and app["settings_from"].startswith("defaults")
    assert app["peer"] == "192.168.2.40"
    # eTP Local behind a forwarding LB: Envoy's peer is the client, which it appends
    assert app["resolved_client"] == "203.0.113.10" and p.real_client is True
    assert app["forgeable"] is False
    assert p.title.startswith("external -> HTTPRoute default/nginx")


def test_client_traffic_policy_is_read_and_trusting_hops_is_forgeable(tmp_path: Path) -> None:
    f = _eg_cluster(tmp_path, [_ctp({"numTrustedHops": 2})])
    (p,) = _ingress_paths(load_cluster([str(f)]))
    assert p.app_sees is not None
    assert p.app_sees["settings_from"] == "ClientTrafficPolicy default/client-ip"
    # two trusted hops with only a forwarding LB in front: the client's own entry is believed
    assert p.app_sees["forgeable"] is True


def test_httproute_without_its_gateway_is_a_finding(tmp_path: Path) -> None:
    f = _eg_cluster(tmp_path, drop="Gateway")
    res = _run("explain", "-f", str(f))
    assert res.returncode == 0, res.stderr
    assert "HTTPRoute default/nginx: its Gateway default/eg is not in the input" in res.stdout


def test_bad_client_traffic_policy_names_file_line_field(tmp_path: Path) -> None:
    f = _eg_cluster(tmp_path, [_ctp({"numTrustedHops": "many"})])
    res = _run("explain", "-f", str(f))
    assert res.returncode == 1, res.stdout
    assert f"{f}:" in res.stderr and "numTrustedHops" in res.stderr
    assert "Traceback" not in res.stderr


def _traefik_cluster(tmp_path: Path, static: str) -> Path:
    docs = [d for d in yaml.safe_load_all(example_text("ingress-nginx")) if d]
    for d in docs:
        if d.get("kind") == "Pod" and d["metadata"]["name"].startswith("ingress-nginx"):
            c = d["spec"]["containers"][0]
            c["image"] = "docker.io/traefik:v3.3"
            c["args"] = ["--configFile=/config/traefik.yml", "--providers.kubernetesingress"]
        if d.get("kind") == "ConfigMap":
            d["metadata"]["name"] = "traefik-config"
            d["data"] = {"traefik.yml": static}
        if d.get("kind") == "IngressClass":
            d["spec"]["controller"] = "traefik.io/ingress-controller"
    f = tmp_path / "traefik.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    return f


def test_traefik_static_config_from_a_configmap(tmp_path: Path) -> None:
    f = _traefik_cluster(tmp_path, "entryPoints:\n  web:\n    address: ':80'\n"
                                   "    forwardedHeaders:\n      insecure: true\n")
    paths = _ingress_paths(load_cluster([str(f)]))
    assert paths
    for p in paths:
        assert p.app_sees is not None and p.app_sees["controller"] == "traefik"
        assert p.app_sees["settings_from"] == "ConfigMap ingress-nginx/traefik-config (traefik.yml)"
        (b,) = p.app_sees["branches"]
        # insecure: Traefik keeps the client's own X-Real-Ip and X-Forwarded-For entries ...
        assert b["forged"]["headers"]["X-Real-Ip"] == "6.6.6.6"
        assert b["forged"]["headers"]["X-Forwarded-For"].startswith("6.6.6.6, ")
        # ... but it appends its peer, and the recommended strategy reads only that
        assert "X-Forwarded-For" in p.app_sees["strategy"] or \
            "x-forwarded-for" in p.app_sees["strategy"]
        assert p.app_sees["forgeable"] is False
    f = _traefik_cluster(tmp_path, "entryPoints:\n  web:\n    address: ':80'\n")
    for p in _ingress_paths(load_cluster([str(f)])):
        assert p.app_sees and p.app_sees["settings_from"].startswith("ConfigMap")
        (b,) = p.app_sees["branches"]
        assert b["forged"]["headers"]["X-Real-Ip"] != "6.6.6.6"  # untrusted peer: replaced


def test_controller_service_paths_without_proxy_header_are_refused() -> None:
    """use-proxy-protocol: the controller's own Service paths that carry no PROXY header
    (in-cluster callers, NodePorts) are refused by nginx; through the LB they are fine."""
    (e,) = Explainer(load_example("ingress-proxy-protocol")).explain(
        ["ingress-nginx/ingress-nginx-controller"])
    for p in e.paths:
        refused = any("refuses these connections" in f for f in p.findings)
        assert refused == (p.kind != "through-lb"), (p.kind, p.findings)
