"""No input makes the loader raise anything but its own InputError (docs/architecture.md,
"Habits" 8)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sourceip.errors import InputError
from sourceip.sources import cluster_from_objects, load_example

KINDS = ["Node", "Pod", "Service", "EndpointSlice", "Ingress", "ServiceCIDR",
         "KubeProxyConfiguration", "NetworkProfile", "ConfigMap", "Deployment", "List"]
KEYS = ["metadata", "name", "namespace", "labels", "spec", "status", "ports", "port",
        "targetPort", "nodePort", "clusterIP", "clusterIPs", "selector", "type", "addresses",
        "address", "podIP", "podIPs", "ip", "containers", "endpoints", "conditions", "ready",
        "items", "data", "config.conf", "template", "cidrs", "addressType", "rules", "http",
        "paths", "backend", "service", "number", "hints", "forZones", "iptables",
        "masqueradeBit", "clusterCIDR", "podAttach", "loadBalancer", "ingress",
        "kubernetes.io/service-name", "app", "externalTrafficPolicy", "hostNetwork",
        "nodeName", "protocol", "serviceCIDRs", "restartPolicy", "initContainers"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.sampled_from(
        ["", "None", "10.0.0.1", "fd00::1", "10.0.0.0/8", "TCP", "UDP", "http", "Local",
         "NodePort", "LoadBalancer", "ExternalName", "IPv4", "FQDN", "Always", "kube-proxy",
         "web", "True", "kind: KubeProxyConfiguration\nmode: nftables\n", "x: [", "999.1.1.1"]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
    obj["kind"] = draw(st.sampled_from(KINDS))
    which = draw(st.integers(0, 2))
    if which == 0:
        obj["metadata"] = {"name": draw(st.sampled_from(["a", "b", "kube-proxy"]))}
    elif which == 1:
        obj["metadata"] = draw(VALUES)
    for key in ("spec", "status"):
        if draw(st.booleans()):
            obj[key] = draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
    return obj


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(objects(), max_size=4))
def test_only_input_errors(objs: list[dict[str, Any]]) -> None:
    try:
        cluster_from_objects(objs)
    except InputError:
        pass


@given(st.sampled_from(KINDS), VALUES, VALUES)
def test_odd_metadata_and_spec_shapes(kind: str, meta: Any, spec: Any) -> None:
    for obj in ({"kind": kind, "metadata": meta, "spec": spec},
                {"kind": kind, "metadata": {"name": "x"}, "spec": {"template": spec}},
                {"kind": kind, "metadata": {"name": "kube-proxy"}, "data": {"config.conf": spec}}):
        try:
            cluster_from_objects([obj])
        except InputError:
            pass


def test_fuzz_strategy_reaches_success() -> None:
    # the property above is not vacuous: well-formed objects of these kinds load
    assert load_example("seed").services


YAMLISH = st.lists(st.sampled_from(
    ["kind: Service", "kind: Pod", "kind: List", "items:", "- kind: Node", "metadata:",
     "  name: a", "spec:", "  ports: [80", "  ports:", "  - port: 99999", "---", "{", "}",
     "[", "]", '"x": 1,', "  clusterIP: 1.2.3.4", "status: {podIP: 10.0.0.1}", "? [a]", ": b",
     "\t", "  - {name: x, port: 80, nodePort: 8080}", "&a [*a]", "!!python/object:os.system",
     "2024-01-01", "  labels: {app: 3}"]), max_size=12).map("\n".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_text_only_input_errors_with_a_location(text: str) -> None:
    import io

    from sourceip.sources import load_cluster

    try:
        load_cluster(["-"], stdin=io.StringIO(text))
    except InputError as exc:
        assert exc.file == "<stdin>"
