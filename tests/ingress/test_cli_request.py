"""`sourceip request` through click's CliRunner (via main(), for exit codes and messages)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from sourceip.cli.main import main


def run(args: list[str]) -> tuple[int, str, str]:
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().decode(), err.getvalue().decode()


CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: ingress-nginx-controller
  namespace: ingress-nginx
data:
  use-forwarded-headers: "{ufh}"
  proxy-real-ip-cidr: "10.0.0.0/8"
"""


def test_bad_bool_names_file_line_field_and_what_nginx_does(tmp_path: Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text(CM.format(ufh="maybe"))
    code, out, err = run(["request", "--controller", "ingress-nginx", "-f", str(cm),
                          "--peer", "10.0.0.5:1234"])
    assert code == 1
    assert err.startswith(f"error: {cm}:7: data[\"use-forwarded-headers\"]: 'maybe'")
    assert "strconv.ParseBool" in err and "keeps the default false" in err
    assert "Traceback" not in err and out == ""


def test_json_trusted_proxy_appends_real_client(tmp_path: Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text(CM.format(ufh="true"))
    code, out, _ = run(["request", "--controller", "ingress-nginx", "-f", str(cm),
                        "--peer", "10.0.0.5:1234", "-H", "X-Forwarded-For: 6.6.6.6, 203.0.113.9",
                        "-o", "json"])
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert data["controller_client"] == "203.0.113.9"
    assert data["headers"]["X-Real-IP"] == "203.0.113.9"
    assert data["headers"]["X-Original-Forwarded-For"] == "6.6.6.6, 203.0.113.9"
    assert "set_real_ip_from 10.0.0.0/8" in data["provenance"]["X-Real-IP"]
    assert data["recommendation"]["forgeable"] is False


def test_defaults_without_file_text_output() -> None:
    code, out, _ = run(["request", "--controller", "ingress-nginx", "--peer", "10.0.0.5:1",
                        "-H", "X-Forwarded-For: 6.6.6.6"])
    assert code == 0
    assert "X-Real-IP               : 10.0.0.5" in out
    assert "X-Original-Forwarded-For: 6.6.6.6" in out
    assert "<- proxy_set_header X-Real-IP $remote_addr" in out


def test_proxy_protocol_expected_but_absent_is_rejected(tmp_path: Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n"
                  "data:\n  use-proxy-protocol: 'true'\n")
    code, out, _ = run(["request", "--controller", "ingress-nginx", "-f", str(cm),
                        "--peer", "10.0.0.5:1", "-o", "yaml"])
    assert code == 0
    data = yaml.safe_load(out)
    assert data["ok"] is False and "broken header" in data["error"]
    code, out, _ = run(["request", "--controller", "ingress-nginx", "-f", str(cm),
                        "--peer", "10.0.0.5:1", "--proxy-protocol", "198.51.100.4:5000",
                        "-o", "json"])
    assert json.loads(out)["controller_client"] == "198.51.100.4"


def test_traefik_toml_and_deployment_args(tmp_path: Path) -> None:
    toml = tmp_path / "traefik.toml"
    toml.write_text('[entryPoints.web]\naddress = ":80"\n'
                    '[entryPoints.web.forwardedHeaders]\ntrustedIPs = ["10.0.0.0/8"]\n')
    code, out, _ = run(["request", "--controller", "traefik", "-f", str(toml), "--peer",
                        "10.0.0.5:1", "-H", "X-Forwarded-For: 203.0.113.9", "-o", "json"])
    assert code == 0
    assert json.loads(out)["headers"]["X-Forwarded-For"] == "203.0.113.9, 10.0.0.5"
    dep = tmp_path / "dep.yaml"
    dep.write_text("""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik}
spec:
  template:
    spec:
      containers:
      - name: traefik
        args:
        - --entryPoints.web.address=:80
        - --entryPoints.web.forwardedHeaders.trustedIPs=10.0.0.0/8,not-a-cidr
""")
    code, _, err = run(["request", "--controller", "traefik", "-f", str(dep),
                        "--peer", "10.0.0.5:1"])
    assert code == 1
    assert err.startswith(f"error: {dep}:11: spec.template.spec.containers[0].args[1]: "
                          "'not-a-cidr'")


def test_envoy_gateway_policy_error_located(tmp_path: Path) -> None:
    ctp = tmp_path / "ctp.yaml"
    ctp.write_text("""\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: p}
spec:
  clientIPDetection:
    xForwardedFor:
      numTrustedHops: "two"
""")
    code, _, err = run(["request", "--controller", "envoy-gateway", "-f", str(ctp),
                        "--peer", "10.0.0.5:1"])
    assert code == 1
    assert err.startswith(f"error: {ctp}:7: spec.clientIPDetection.xForwardedFor."
                          "numTrustedHops: 'two'")


def test_envoy_hcm_plain_yaml(tmp_path: Path) -> None:
    hcm = tmp_path / "hcm.yaml"
    hcm.write_text("use_remote_address: true\nxff_num_trusted_hops: 1\n")
    code, out, _ = run(["request", "--controller", "envoy", "-f", str(hcm), "--peer",
                        "192.0.2.5:1", "-H",
                        "X-Forwarded-For: 203.0.113.128, 203.0.113.10, 203.0.113.1", "-o", "json"])
    data = json.loads(out)
    assert code == 0 and data["controller_client"] == "203.0.113.1"
    assert data["recommendation"]["forgeable"] is True


def test_bad_peer_is_usage_error() -> None:
    code, _, err = run(["request", "--controller", "haproxy", "--peer", "nonsense"])
    assert code == 2 and "IP:PORT" in err
