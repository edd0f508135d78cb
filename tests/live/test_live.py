"""The live reader with the real kubernetes client against a stand-in API server on 127.0.0.1
(tests/live/apiserver.py): paging, what is read, the errors a real cluster gives, the CLI
(`--kubeconfig`, `kubectl sourceip`, `sourceip snapshot`) and live == snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kubernetes", reason="the live reader needs the kubernetes client "
                                         "(pip install 'sourceip[live]')")

from apiserver import FakeAPIServer  # noqa: E402

from sourceip.cli.common import controller_hints  # noqa: E402
from sourceip.sources import example_text  # noqa: E402
from sourceip.sources.live import (  # noqa: E402
    LiveError,
    LiveOptions,
    load_live,
    read_live,
)

ROOT = Path(__file__).resolve().parents[2]


def example_objects(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(example_text(name)):
        if not doc:
            continue
        out.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return out


def flannel(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``objs`` with flannel's DaemonSet and node annotations, as kube-flannel.yml installs."""
    out = json.loads(json.dumps(objs))
    for o in out:
        if o["kind"] == "Node":
            o["metadata"].setdefault("annotations", {}).update(
                {"flannel.alpha.coreos.com/backend-type": "vxlan"})
    out.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "kube-flannel", "image": "ghcr.io/flannel-io/flannel:v0.26.1"}]}}}})
    return out


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No kubeconfig of the machine's (HOME is a temporary directory), no proxies."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "HTTP_PROXY", "HTTPS_PROXY",
                "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("COLUMNS", "100")
    return tmp_path


@pytest.fixture
def server() -> Iterator[FakeAPIServer]:
    with FakeAPIServer(flannel(example_objects("ingress-nginx")), max_page=2) as srv:
        yield srv


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], *, kubectl: bool = False
            ) -> tuple[int, str, str]:
    """``sourceip ARGS`` (or ``kubectl sourceip ARGS``) in this process: (exit, out, err)."""
    from sourceip.cli import common
    from sourceip.cli.main import kubectl_main, main

    capsys.readouterr()
    try:
        (kubectl_main if kubectl else main)(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        common.LIVE_BY_DEFAULT = False
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------- reading

def test_lists_are_paged_with_continue_tokens_and_only_read(env: Path,
                                                            server: FakeAPIServer) -> None:
    kc = server.kubeconfig(str(env / "kc"))
    read = read_live(LiveOptions(kubeconfig=kc, page_size=2), controllers=controller_hints())
    pods = server.requests("/api/v1/pods")
    assert len(pods) == 2  # 4 pods, 2 a page
    assert pods[0][2]["limit"] == ["2"] and "continue" not in pods[0][2]
    assert "continue" in pods[1][2]
    assert {m for m, _, _ in server.log} == {"GET"}
    kinds = [o["kind"] for o in read.objects]
    assert kinds.count("Pod") == 4 and kinds.count("Node") == 2
    # items of a typed list get their kind and apiVersion back, as kubectl prints them
    pod = next(o for o in read.objects if o["kind"] == "Pod")
    assert pod["apiVersion"] == "v1" and pod["metadata"]["uid"]
    # the kube-proxy ConfigMap and the controller's ConfigMap (--configmap) were fetched
    cms = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in read.objects
           if o["kind"] == "ConfigMap"}
    assert ("kube-system", "kube-proxy") in cms
    assert ("ingress-nginx", "ingress-nginx-controller") in cms
    # an absent CRD group (gateway.envoyproxy.io is served, empty; none is an error)
    assert read.counts["HTTPRoute"] == 0


def test_cni_guessed_from_daemonset_and_node_annotations(env: Path,
                                                        server: FakeAPIServer) -> None:
    kc = server.kubeconfig(str(env / "kc"))
    cluster, read = load_live(LiveOptions(kubeconfig=kc))
    assert cluster.profile.inter_node == "tunnel"
    assert cluster.profile.tunnel_device == "flannel.1"
    assert cluster.profile.egress_masquerade is True
    assert read.notes[0].startswith("CNI guessed: flannel (from DaemonSet "
                                    "kube-flannel/kube-flannel-ds)")
    assert read.notes[0] in cluster.notes


def test_calico_vxlan_and_host_gw_flannel_from_node_annotations(env: Path) -> None:
    objs = example_objects("seed")
    for o in objs:
        if o["kind"] == "Node":
            o["metadata"].setdefault("annotations", {})[
                "projectcalico.org/IPv4VXLANTunnelAddr"] = "10.244.0.1"
    with FakeAPIServer(objs) as srv:
        cluster, read = load_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
    assert (cluster.profile.pod_attach, cluster.profile.tunnel_device) == ("routed",
                                                                           "vxlan.calico")
    assert "node annotation projectcalico.org/" in read.notes[0]


def test_kube_proxy_configmap_absent_says_which_defaults(env: Path) -> None:
    objs = [o for o in example_objects("seed") if o["kind"] != "KubeProxyConfiguration"]
    with FakeAPIServer(objs) as srv:
        cluster, read = load_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
    note = next(n for n in read.notes if "kube-proxy" in n)
    assert "no kube-proxy ConfigMap (kube-system/kube-proxy) and no kube-proxy pods" in note
    assert "defaults are assumed (mode iptables" in note
    assert cluster.kube_proxy.mode == "iptables"


def test_kube_proxy_flags_read_when_there_is_no_configmap(env: Path) -> None:
    """AKS/GKE run kube-proxy with flags: they are read from its DaemonSet."""
    objs = [o for o in example_objects("seed") if o["kind"] != "KubeProxyConfiguration"]
    objs.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                 "spec": {"template": {"spec": {"containers": [{
                     "name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.31.0",
                     "command": ["kube-proxy", "--cluster-cidr=10.244.0.0/16",
                                 "--masquerade-all", "--proxy-mode", "iptables"]}]}}}})
    with FakeAPIServer(objs) as srv:
        cluster, read = load_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
    assert cluster.kube_proxy.masquerade_all is True
    assert [str(c) for c in cluster.kube_proxy.cluster_cidrs] == ["10.244.0.0/16"]
    assert any("read from its command-line flags" in n for n in read.notes)


def test_one_namespace_reads_that_namespace_and_its_ingress_controller(env: Path,
                                                                      server: FakeAPIServer
                                                                      ) -> None:
    kc = server.kubeconfig(str(env / "kc"))
    read = read_live(LiveOptions(kubeconfig=kc, namespace="default"),
                     controllers=controller_hints())
    paths = [p for _, p, _ in server.log]
    assert "/api/v1/namespaces/default/pods" in paths
    assert "/api/v1/namespaces/default/services" in paths
    assert "/api/v1/nodes" in paths  # cluster-wide kinds are read whole
    # the Ingress in default is served by ingress-nginx in its own namespace: found and read
    assert "/api/v1/pods" in paths
    assert "/api/v1/namespaces/ingress-nginx/services" in paths
    nss = {o["metadata"].get("namespace") for o in read.objects if o["kind"] == "Pod"}
    assert nss == {"default", "ingress-nginx"}
    assert any("run in ingress-nginx" in n for n in read.notes)


def test_expired_continue_token_lists_again(env: Path) -> None:
    with FakeAPIServer(example_objects("seed"), max_page=1, expire_once={"pods"}) as srv:
        read = read_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
        assert read.counts["Pod"] == sum(1 for o in example_objects("seed")
                                         if o["kind"] == "Pod")
        statuses = srv.requests("/api/v1/pods")
    assert len(statuses) > read.counts["Pod"]  # the list was started again


# ---------------------------------------------------------------------------------- errors

def test_forbidden_kind_is_a_note_saying_what_the_answer_lacks(
        env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objs = example_objects("seed")
    with FakeAPIServer(objs, forbidden={"pods"}) as srv:
        kc = srv.kubeconfig(str(env / "kc"))
        code, out, err = run_cli(["explain", "--kubeconfig", kc, "-o", "json"], capsys)
    assert code == 0, err
    notes = json.loads(out)["notes"]
    note = next(n for n in notes if n.startswith("cannot list pods"))
    assert 'User "system:serviceaccount:default:sourceip" cannot list resource "pods"' in note
    assert "endpoints come from EndpointSlices alone" in note
    assert "kubectl auth can-i list pods -A" in note


def test_forbidden_nodes_and_services_is_an_error(env: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with FakeAPIServer(example_objects("seed"), forbidden={"nodes", "services"}) as srv:
        code, _, err = run_cli(["explain", "--kubeconfig", srv.kubeconfig(str(env / "kc"))],
                               capsys)
    assert code == 1 and "may not list Nodes or Services (403 Forbidden)" in err
    assert "Traceback" not in err


def test_unauthorized(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeAPIServer(example_objects("seed")) as srv:
        kc = srv.kubeconfig(str(env / "kc"), token="expired")
        code, _, err = run_cli(["explain", "--kubeconfig", kc], capsys)
    assert code == 1
    assert "refused the credentials of context test (401 Unauthorized)" in err
    assert "Traceback" not in err


def test_slow_server_times_out(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeAPIServer(example_objects("seed"), slow={"services": 3.0}) as srv:
        kc = srv.kubeconfig(str(env / "kc"))
        code, _, err = run_cli(["explain", "--kubeconfig", kc, "--request-timeout", "500ms"],
                               capsys)
    # the message says the client gave up at the timeout, before the server's 3 s answer
    assert code == 1 and "no answer within 0.5s (--request-timeout)" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_server(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv = FakeAPIServer([])
    srv.start()
    kc = srv.kubeconfig(str(env / "kc"))
    srv.stop()  # nothing listens on that port any more
    code, _, err = run_cli(["rules", "--node", "node1", "--kubeconfig", kc], capsys)
    assert code == 1
    assert "cannot reach the API server http://127.0.0.1:" in err
    assert "connection refused" in err


def test_no_kubeconfig_and_unknown_context(env: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    code, _, err = run_cli(["explain", "--kubeconfig", str(env / "nope")], capsys)
    assert code == 1 and "no kubeconfig:" in err and "does not exist" in err
    code, _, err = run_cli(["explain", "--context", "prod"], capsys)
    assert code == 1 and "no kubeconfig: give --kubeconfig FILE" in err
    with FakeAPIServer([]) as srv:
        kc = srv.kubeconfig(str(env / "kc"))
        code, _, err = run_cli(["explain", "--kubeconfig", kc, "--context", "prod"], capsys)
    assert code == 1 and "no context 'prod' (contexts: test)" in err
    assert "Traceback" not in err


def test_server_without_endpointslices(env: Path) -> None:
    """Before 1.17 there were no EndpointSlices: endpoints are derived from the Pods."""
    with FakeAPIServer(example_objects("seed"), absent_groups={"discovery.k8s.io"}) as srv:
        cluster, read = load_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
    assert any("serves no EndpointSlices" in n for n in read.notes)
    assert cluster.endpoint_slices and all(es.derived for es in cluster.endpoint_slices)


def test_absent_crd_groups_are_not_errors(env: Path) -> None:
    with FakeAPIServer(example_objects("seed"),
                       absent_groups={"gateway.networking.k8s.io", "gateway.envoyproxy.io"},
                       absent_resources={"networking.k8s.io/v1/servicecidrs",
                                         "networking.k8s.io/v1beta1/servicecidrs"}) as srv:
        _, read = load_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
        assert srv.requests("/apis/gateway.networking.k8s.io/v1beta1/httproutes")
    assert not any("gateway" in n.lower() or "servicecidr" in n.lower() for n in read.notes)


def test_bad_request_timeout_is_a_usage_error(env: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["explain", "--kubeconfig", "k", "--request-timeout", "soon"],
                           capsys)
    assert code == 2 and "'soon' is not a duration" in err


def test_example_with_kubeconfig_is_a_usage_error(env: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["explain", "--example", "seed", "--kubeconfig", "k"], capsys)
    assert code == 2 and "not both" in err


# ---------------------------------------------------------------------------------- the CLI

def test_explain_live_equals_explain_of_its_snapshot(env: Path, server: FakeAPIServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    kc = server.kubeconfig(str(env / "kc"))
    snap = env / "cluster.json"
    code, live_out, err = run_cli(["explain", "--kubeconfig", kc], capsys)
    assert code == 0, err
    code, _, err = run_cli(["snapshot", "--kubeconfig", kc, "-o", str(snap)], capsys)
    assert code == 0, err
    assert "2 Node, 4 Pod" in err and f"sourceip explain -f {snap}" in err
    doc = json.loads(snap.read_text())
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    code, file_out, err = run_cli(["explain", "-f", str(snap)], capsys)
    assert code == 0, err
    assert file_out == live_out
    assert "note: CNI guessed: flannel" in live_out
    for fmt in ("json", "wide"):
        _, a, _ = run_cli(["explain", "--kubeconfig", kc, "-o", fmt], capsys)
        _, b, _ = run_cli(["explain", "-f", str(snap), "-o", fmt], capsys)
        assert a == b


def test_snapshot_yaml_to_stdout_and_file(env: Path, server: FakeAPIServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    kc = server.kubeconfig(str(env / "kc"))
    code, out, _ = run_cli(["snapshot", "--kubeconfig", kc], capsys)
    assert code == 0 and json.loads(out)["kind"] == "List"
    code, _, _ = run_cli(["snapshot", "--kubeconfig", kc, "-o", str(env / "c.yaml")], capsys)
    assert yaml.safe_load((env / "c.yaml").read_text())["kind"] == "List"


def test_files_given_beside_the_cluster_replace_the_guess(env: Path, server: FakeAPIServer,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    prof = env / "profile.yaml"
    prof.write_text("apiVersion: sourceip.dev/v1alpha1\nkind: NetworkProfile\nmetadata:\n"
                    "  name: mine\nspec:\n  podAttach: routed\n")
    kc = server.kubeconfig(str(env / "kc"))
    code, out, err = run_cli(["explain", "--kubeconfig", kc, "-f", str(prof), "-o", "json"],
                             capsys)
    assert code == 0, err
    assert not any(n.startswith("CNI guessed") for n in json.loads(out)["notes"])


def test_kubectl_plugin_reads_the_current_context(env: Path, server: FakeAPIServer,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", server.kubeconfig(str(env / "kc")))
    code, out, err = run_cli(["explain", "-n", "default", "nginx", "-o", "json"], capsys,
                             kubectl=True)
    assert code == 0, err
    assert [s["service"] for s in json.loads(out)["services"]] == ["default/nginx"]
    assert "/api/v1/namespaces/default/services" in [p for _, p, _ in server.log]
    # without it, `sourceip` still asks for a cluster
    code, _, err = run_cli(["explain"], capsys)
    assert code == 2 and "--kubeconfig FILE" in err


def test_kubectl_plugin_help_names_kubectl(env: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys, kubectl=True)
    assert code == 0 and "Usage: kubectl sourceip" in out


def test_without_the_kubernetes_client(env: Path) -> None:
    """The core works without the client; --kubeconfig says how to install it."""
    script = ("import sys; sys.modules['kubernetes'] = None\n"
              "from sourceip.cli.main import main\n"
              "main(sys.argv[1:])\n")
    base = [sys.executable, "-c", script]
    environ = {**os.environ, "HOME": str(env)}
    ok = subprocess.run([*base, "rules", "--example", "seed", "--node", "node1"],
                        capture_output=True, text=True, env=environ, cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*base, "explain", "--kubeconfig", "kc"], capture_output=True,
                         text=True, env=environ, cwd=ROOT, timeout=60)
    assert bad.returncode == 1
    assert "needs the kubernetes client: pip install 'sourceip[live]'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_live_objects_errors_name_the_object(env: Path) -> None:
    objs = example_objects("seed")
    svc = next(o for o in objs if o["kind"] == "Service")
    svc["spec"]["ports"][0]["port"] = 70000
    with FakeAPIServer(objs) as srv, pytest.raises(LiveError.__mro__[1]) as info:
        load_live(LiveOptions(kubeconfig=srv.kubeconfig(str(env / "kc"))))
    assert str(info.value).startswith(
        f"context test: Service default/{svc['metadata']['name']}: spec.ports[0].port:")


def test_in_cluster_service_account(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pod (no kubeconfig, $KUBERNETES_SERVICE_HOST set) the official client's in-cluster
    loader is used: HTTPS to the service host with the service account's CA and bearer token.
    The token and CA file paths are the loader's module constants, pointed at temporary files."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the stand-in API server's certificate")
    from kubernetes.config import incluster_config

    cert, key = env / "apiserver.crt", env / "apiserver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    token = env / "token"
    token.write_text("in-cluster-token")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    with FakeAPIServer(example_objects("seed"), token="in-cluster-token",
                       tls=(str(cert), str(key))) as srv:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(srv.port))
        read = read_live(LiveOptions(), controllers=controller_hints())
        assert [o["kind"] for o in read.objects].count("Node") == 2
        assert srv.requests("/api/v1/nodes")
        # a wrong token is the API server's 401, reported as such
        token.write_text("stale-token")
        with pytest.raises(LiveError, match="401|[Uu]nauthori"):
            read_live(LiveOptions(), controllers=controller_hints())
    # the service host set but no service account files: one line, no traceback
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(env / "absent"))
    with pytest.raises(LiveError, match="in-cluster configuration"):
        read_live(LiveOptions(), controllers=controller_hints())
