"""Reading a live cluster the way kubectl does: kubeconfig (``--kubeconfig``, ``$KUBECONFIG``,
``~/.kube/config``) or the pod's service account, ``--context``, one namespace or all.

::

    opts = LiveOptions(kubeconfig="~/.kube/config", context="prod", namespace=None)
    cluster, read = load_live(opts)          # read.objects: what was read, read.notes
    snapshot_list(read)                      # the same objects as a ``kind: List`` (the -f input)

Read-only: GET and paged LIST (``limit`` / ``continue``, 500 per page as kubectl) of Nodes,
Pods, Services, EndpointSlices, Ingresses, IngressClasses, ServiceCIDRs, Gateway API
GatewayClasses / Gateways / HTTPRoutes and Envoy Gateway ClientTrafficPolicies (CRDs: an absent
API group is normal), the kube-proxy configuration (ConfigMap ``kube-system/kube-proxy`` as
kubeadm stores it, EKS's ``kube-proxy-config``, else the flags of the kube-proxy pods) and the
ConfigMaps the ingress controllers among the pods read. DaemonSets and node annotations tell
the CNI; a ``NetworkProfile`` is proposed from it. Every object goes to the same converter as
``-f`` input (``convert.build_cluster``): one truth for what a field means.

The notes about the reading itself (the CNI guess, a missing kube-proxy ConfigMap, a kind the
user may not list) travel in the proposed NetworkProfile's ``sourceip.dev/notes`` annotation, so
that a snapshot re-run offline says the same.

The ``kubernetes`` client is an optional dependency (``pip install 'sourceip[live]'``): it is
imported when a cluster is read, never at import time, and only inside ``_Transport`` (it is
untyped there: everything it returns is ``Any`` until turned into plain dicts). Responses are
read as raw JSON (``_preload_content=False``), not the client's model objects: see
docs/performance.md, "live".
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sourceip.cluster.cluster import Cluster
from sourceip.errors import InputError
from sourceip.sources.convert import (
    DEFAULT_NODE_PORT_RANGE,
    NodePortRange,
    RawObject,
    build_cluster,
)

Obj = dict[str, Any]
INSTALL_HINT = "pip install 'sourceip[live]'"
NOTES_ANNOTATION = "sourceip.dev/notes"
GUESS_ANNOTATION = "sourceip.dev/guessed-from"
DEFAULT_PAGE_SIZE = 500  # kubectl get's --chunk-size
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # optional: the `fast` extra
    _orjson = None


class LiveError(InputError):
    """The cluster cannot be read: no kubeconfig, an unknown context, the API server
    unreachable or refusing the credentials (exit 1, like any input that cannot be read)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveOptions:
    """Where and what to read (kubectl's flags)."""

    kubeconfig: str | None = None  # None: $KUBECONFIG, ~/.kube/config, else in-cluster
    context: str | None = None  # None: the kubeconfig's current-context
    namespace: str | None = None  # None: every namespace (-A)
    request_timeout: float = DEFAULT_TIMEOUT  # seconds per request; 0: none
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerHint:
    """How to recognise one ingress controller's pods and which ConfigMaps they read; the CLI
    builds these from ``sourceip.ingress.discover.KNOWN`` (sources may not import ingress)."""

    images: tuple[str, ...]
    entrypoints: tuple[str, ...]
    configmap_flag: str = ""
    default_configmaps: tuple[str, ...] = ()


@dataclass(slots=True)
class LiveRead:
    """What one reading of a cluster gave: the objects in the order read, the notes about the
    reading, where from, and how many objects of each kind."""

    source: str
    objects: list[Obj] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# what is read
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Kind:
    kind: str
    group: str  # "" for the core API
    versions: tuple[str, ...]  # tried in order: a 404 moves on to the next
    plural: str
    namespaced: bool
    crd: bool = False  # an absent API group is normal (a CRD that is not installed)
    lacks: str = ""  # what the answer lacks when it cannot be read

    @property
    def api(self) -> str:
        return f"{self.group}/" if self.group else ""


KINDS: tuple[_Kind, ...] = (
    _Kind("Node", "", ("v1",), "nodes", False,
          lacks="no path can be traced (Nodes give the addresses and pod CIDRs)"),
    _Kind("Pod", "", ("v1",), "pods", True,
          lacks="endpoints come from EndpointSlices alone; hostNetwork clients, ingress "
                "controllers and named target ports are unknown"),
    _Kind("Service", "", ("v1",), "services", True, lacks="no Service can be explained"),
    _Kind("EndpointSlice", "discovery.k8s.io", ("v1", "v1beta1"), "endpointslices", True,
          lacks="endpoints are derived from the Pods, as the EndpointSlice controller would"),
    _Kind("Ingress", "networking.k8s.io", ("v1",), "ingresses", True,
          lacks="no Ingress route is explained"),
    _Kind("IngressClass", "networking.k8s.io", ("v1",), "ingressclasses", False,
          lacks="Ingresses are matched to controllers by the legacy class annotation only"),
    _Kind("ServiceCIDR", "networking.k8s.io", ("v1", "v1beta1"), "servicecidrs", False,
          crd=True, lacks="ClusterIPs are not checked against the service CIDRs"),
    _Kind("GatewayClass", "gateway.networking.k8s.io", ("v1", "v1beta1"), "gatewayclasses",
          False, crd=True, lacks="HTTPRoutes are not matched to their controller"),
    _Kind("Gateway", "gateway.networking.k8s.io", ("v1", "v1beta1"), "gateways", True,
          crd=True, lacks="HTTPRoutes are not routed through their Gateway"),
    _Kind("HTTPRoute", "gateway.networking.k8s.io", ("v1", "v1beta1"), "httproutes", True,
          crd=True, lacks="no HTTPRoute is explained"),
    _Kind("ClientTrafficPolicy", "gateway.envoyproxy.io", ("v1alpha1",),
          "clienttrafficpolicies", True, crd=True,
          lacks="Envoy Gateway's data planes are taken with their defaults"),
)
_DAEMONSETS = _Kind("DaemonSet", "apps", ("v1",), "daemonsets", True,
                    lacks="the CNI is guessed from node annotations alone")
# kinds read in every namespace even with -n: few objects, referenced across namespaces
_CLUSTER_WIDE = frozenset({"Gateway", "ClientTrafficPolicy", "DaemonSet"})
_ESSENTIAL = ("Node", "Service")


# ---------------------------------------------------------------------------------------------
# the CNI
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class _Cni:
    name: str
    daemonsets: tuple[str, ...]  # DaemonSet names
    images: tuple[str, ...]  # substrings of a DaemonSet container image
    annotations: tuple[str, ...]  # node annotation prefixes it writes
    spec: tuple[tuple[str, Any], ...]  # NetworkProfile spec (see docs/input.md)
    why: str  # what the spec stands for, with its source


# One row per CNI, each with the upstream default it stands for. The tunnel / attach choice is
# refined from node annotations in ``_refine`` (flannel's backend-type, calico's tunnel
# addresses).
CNIS: tuple[_Cni, ...] = (
    _Cni(name="calico", daemonsets=("calico-node",), images=("calico/node",),
         annotations=("projectcalico.org/",),
         spec=(("podAttach", "routed"), ("interNode", "tunnel"), ("tunnelDevice", "tunl0"),
               ("egressMasquerade", True)),
         why="a cali* veth per pod routed by the node, IP-in-IP between nodes (tunl0), "
             "natOutgoing on the IP pool (calico.yaml: CALICO_IPV4POOL_IPIP=Always)"),
    _Cni(name="cilium", daemonsets=("cilium", "anetd"), images=("cilium/cilium", "/cilium:"),
         annotations=("io.cilium.", "network.cilium.io/"),
         spec=(("podAttach", "routed"), ("interNode", "tunnel"),
               ("tunnelDevice", "cilium_vxlan"), ("egressMasquerade", True)),
         why="an lxc* veth per pod routed by the node, VXLAN between nodes (routing-mode: "
             "tunnel), enable-ipv4-masquerade (Cilium's defaults)"),
    _Cni(name="flannel", daemonsets=("kube-flannel-ds", "kube-flannel", "flannel", "canal",
                                     "rke2-canal"),
         images=("flannel/flannel", "flannel-io/flannel", "coreos/flannel"),
         annotations=("flannel.alpha.coreos.com/",),
         spec=(("podAttach", "bridge"), ("bridgeName", "cni0"), ("interNode", "tunnel"),
               ("tunnelDevice", "flannel.1"), ("egressMasquerade", True)),
         why="pods on the cni0 bridge, VXLAN between nodes (flannel.1), --ip-masq "
             "(kube-flannel.yml)"),
    _Cni(name="weave", daemonsets=("weave-net",), images=("weaveworks/weave-kube",
                                                           "weave-kube"),
         annotations=(),
         spec=(("podAttach", "bridge"), ("bridgeName", "weave"), ("interNode", "tunnel"),
               ("tunnelDevice", "vxlan-6784"), ("egressMasquerade", True)),
         why="pods on the weave bridge, fast-datapath VXLAN between nodes, masquerading "
             "traffic that leaves the pod network"),
    _Cni(name="kube-router", daemonsets=("kube-router",), images=("kube-router",),
         annotations=("kube-router.io/",),
         spec=(("podAttach", "bridge"), ("bridgeName", "kube-bridge"), ("interNode", "direct"),
               ("egressMasquerade", True)),
         why="pods on the kube-bridge bridge, routes to other nodes' pod CIDRs via BGP, "
             "--enable-pod-egress (kube-router's defaults)"),
    _Cni(name="aws-vpc-cni", daemonsets=("aws-node",), images=("amazon-k8s-cni",),
         annotations=(),
         spec=(("podAttach", "routed"), ("interNode", "direct"), ("egressMasquerade", True)),
         why="an eni* veth per pod with a VPC address, routed by the VPC, SNAT to the node's "
             "primary address for traffic leaving the VPC (AWS_VPC_K8S_CNI_EXTERNALSNAT=false)"),
)


def _match_cni(daemonsets: Sequence[Obj], nodes: Sequence[Obj]) -> tuple[_Cni, str] | None:
    """The CNI seen in ``daemonsets`` (name or container image), else in node annotations;
    with what gave it away."""
    for cni in CNIS:
        for ds in daemonsets:
            meta = ds.get("metadata") or {}
            name = str(meta.get("name", ""))
            images = [str(c.get("image", "")) for c in _containers(ds.get("spec", {})
                                                                    .get("template", {}))]
            if name in cni.daemonsets or any(i in img for i in cni.images for img in images):
                return cni, f"DaemonSet {meta.get('namespace', '')}/{name}"
    for cni in CNIS:
        for node in nodes:
            ann = (node.get("metadata") or {}).get("annotations") or {}
            hit = next((k for k in ann if any(k.startswith(p) for p in cni.annotations)), None)
            if hit is not None:
                return cni, f"node annotation {hit}"
    return None


def _refine(cni: _Cni, nodes: Sequence[Obj]) -> tuple[dict[str, Any], str]:
    """The NetworkProfile spec of ``cni``, refined from what its nodes' annotations say."""
    spec = dict(cni.spec)
    why = cni.why
    anns: dict[str, Any] = {}
    for node in nodes:
        anns.update((node.get("metadata") or {}).get("annotations") or {})
    if cni.name == "flannel":
        backend = str(anns.get("flannel.alpha.coreos.com/backend-type", "")).lower()
        if backend in ("host-gw", "alloc"):
            spec["interNode"] = "direct"
            spec.pop("tunnelDevice", None)
            why = (f"pods on the cni0 bridge, routes via the nodes (backend-type {backend}), "
                   "--ip-masq")
        elif backend == "wireguard":
            spec["tunnelDevice"] = "flannel-wg"
            why = "pods on the cni0 bridge, WireGuard between nodes (flannel-wg), --ip-masq"
    elif cni.name == "calico":
        if "projectcalico.org/IPv4VXLANTunnelAddr" in anns:
            spec["tunnelDevice"] = "vxlan.calico"
            why = why.replace("IP-in-IP between nodes (tunl0)",
                              "VXLAN between nodes (vxlan.calico, from the nodes' "
                              "IPv4VXLANTunnelAddr)")
        elif "projectcalico.org/IPv4IPIPTunnelAddr" not in anns and nodes:
            spec["interNode"] = "direct"
            spec.pop("tunnelDevice", None)
            why = why.replace("IP-in-IP between nodes (tunl0)",
                              "routes to other nodes via BGP (no tunnel address on the nodes)")
    return spec, why


# ---------------------------------------------------------------------------------------------
# kube-proxy
# ---------------------------------------------------------------------------------------------

# kube-proxy command-line flags -> KubeProxyConfiguration fields (cmd/kube-proxy/app/options.go)
_KP_FLAGS: dict[str, tuple[str, ...]] = {
    "--proxy-mode": ("mode",),
    "--cluster-cidr": ("clusterCIDR",),
    "--masquerade-all": ("iptables", "masqueradeAll"),
    "--iptables-masquerade-bit": ("iptables", "masqueradeBit"),
    "--detect-local-mode": ("detectLocalMode",),
    "--pod-bridge-interface": ("detectLocal", "bridgeInterface"),
    "--pod-interface-name-prefix": ("detectLocal", "interfaceNamePrefix"),
    "--nodeport-addresses": ("nodePortAddresses",),
    "--hostname-override": ("hostnameOverride",),
}
KUBE_PROXY_DEFAULTS = ("mode iptables, no clusterCIDR (pod traffic is not told apart from "
                       "other traffic), masqueradeAll false, node ports on every address")


def _kube_proxy_from_flags(args: Sequence[str]) -> Obj | None:
    """A KubeProxyConfiguration from kube-proxy's command line (managed clusters run it with
    flags, not a ConfigMap); None when no flag sourceip reads is set."""
    cfg: Obj = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration"}
    found = False
    for i, a in enumerate(args):
        name, eq, value = a.partition("=")
        if name not in _KP_FLAGS:
            continue
        if not eq:
            if name == "--masquerade-all":
                value = "true"
            elif i + 1 < len(args):
                value = args[i + 1]
        path = _KP_FLAGS[name]
        v: Any = value
        if name == "--masquerade-all":
            v = value.lower() in ("true", "1", "")
        elif name == "--iptables-masquerade-bit":
            v = int(value) if value.isdigit() else value
        elif name == "--nodeport-addresses":
            v = [s.strip() for s in value.split(",") if s.strip()]
        target = cfg
        for p in path[:-1]:
            target = target.setdefault(p, {})
        target[path[-1]] = v
        found = True
    return cfg if found else None


# ---------------------------------------------------------------------------------------------
# the client (the only code that touches the `kubernetes` package)
# ---------------------------------------------------------------------------------------------

class _Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _NotFound(Exception):
    pass


def _import_client() -> Any:
    try:
        return importlib.import_module("kubernetes")
    except ImportError:
        raise LiveError("reading a cluster needs the kubernetes client: "
                        f"{INSTALL_HINT}") from None


def _kubeconfig_files(opts: LiveOptions) -> str | None:
    """The kubeconfig to read as kubectl picks it: --kubeconfig, $KUBECONFIG (paths joined by
    ':'), ~/.kube/config; None when there is none (then: in-cluster, or an error)."""
    if opts.kubeconfig:
        path = os.path.expanduser(opts.kubeconfig)
        if not os.path.isfile(path):
            raise LiveError(f"no kubeconfig: {opts.kubeconfig} does not exist (--kubeconfig)")
        return path
    env = os.environ.get("KUBECONFIG", "")
    if env:
        paths = [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
        existing = [p for p in paths if os.path.isfile(p)]
        if not existing:
            raise LiveError(f"no kubeconfig: $KUBECONFIG names {env!r}, which does not exist")
        return os.pathsep.join(existing)
    home = os.path.expanduser("~/.kube/config")
    return home if os.path.isfile(home) else None


class _Transport:
    """Raw GET / paged LIST over the kubernetes client; errors become ``LiveError`` (401,
    unreachable), ``_Forbidden`` (403) or ``_NotFound`` (404)."""

    def __init__(self, opts: LiveOptions) -> None:
        _import_client()
        self.opts = opts
        cfg_mod = importlib.import_module("kubernetes.config")
        client_mod = importlib.import_module("kubernetes.client.api_client")
        configuration_mod = importlib.import_module("kubernetes.client.configuration")
        exc_mod = importlib.import_module("kubernetes.config.config_exception")
        self._api_exception: Any = importlib.import_module(
            "kubernetes.client.exceptions").ApiException
        configuration = configuration_mod.Configuration()
        files = _kubeconfig_files(opts)
        if files is None:
            if not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise LiveError("no kubeconfig: give --kubeconfig FILE, set $KUBECONFIG, or "
                                "create ~/.kube/config (in a pod, the service account is used)")
            if opts.context:
                raise LiveError(f"--context {opts.context}: there is no kubeconfig here (in a "
                                "pod, the service account is used)")
            try:
                cfg_mod.load_incluster_config(client_configuration=configuration)
            except exc_mod.ConfigException as exc:
                raise LiveError(f"in-cluster configuration: {exc}") from None
            self.context = "in-cluster"
        else:
            shown = opts.kubeconfig or files
            try:
                contexts, current = cfg_mod.list_kube_config_contexts(config_file=files)
            except exc_mod.ConfigException as exc:
                raise LiveError(f"kubeconfig {shown}: {exc}") from None
            except Exception as exc:  # YAML errors, unreadable files
                raise LiveError(f"kubeconfig {shown}: cannot read it: {exc}") from None
            names = [str(c.get("name")) for c in contexts or []]
            if opts.context and opts.context not in names:
                raise LiveError(f"kubeconfig {shown}: no context {opts.context!r} (contexts: "
                                f"{', '.join(names) or 'none'})")
            if not opts.context and not current:
                raise LiveError(f"kubeconfig {shown}: no current-context; give --context "
                                f"(contexts: {', '.join(names) or 'none'})")
            self.context = opts.context or str(current.get("name"))
            try:
                cfg_mod.load_kube_config(config_file=files, context=self.context,
                                         client_configuration=configuration,
                                         persist_config=False)
            except exc_mod.ConfigException as exc:
                raise LiveError(f"kubeconfig {shown}: context {self.context}: {exc}") from None
            except Exception as exc:  # an exec plugin that fails, a missing cert file, ...
                raise LiveError(f"kubeconfig {shown}: context {self.context}: "
                                f"{type(exc).__name__}: {exc}") from None
        configuration.retries = 0  # one try per request: a dead server is said at once
        self.server = str(configuration.host)
        # ApiClient alone: the typed API classes would import 250 pydantic models (4.7 s)
        self.api_client = client_mod.ApiClient(configuration=configuration)
        self.api_client.user_agent = "sourceip (read-only)"
        t = opts.request_timeout
        self.timeout: Any = (min(CONNECT_TIMEOUT, t), t) if t else None
        self.requests = 0

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # closing is best effort
            pass

    # ---- one request ----
    def _get(self, path: str, query: list[tuple[str, Any]]) -> tuple[int, str, bytes]:
        """``GET path?query`` with the kubeconfig's credentials: (status, reason, body)."""
        c = self.api_client
        headers = {"Accept": "application/json"}
        if hasattr(c, "param_serialize"):  # the client generated by openapi-generator "python"
            method, url, hdrs, _body, _post = c.param_serialize(
                "GET", path, query_params=query, header_params=headers,
                auth_settings=["BearerToken"])
            resp = c.call_api(method, url, header_params=hdrs, _request_timeout=self.timeout)
            return int(resp.status), str(resp.reason or ""), bytes(resp.read() or b"")
        try:  # "python-legacy" clients (kubernetes < 32): errors are raised
            resp = c.call_api(path, "GET", query_params=query, header_params=headers,
                              auth_settings=["BearerToken"], _preload_content=False,
                              _return_http_data_only=True, _request_timeout=self.timeout)
        except self._api_exception as exc:
            body = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            return int(exc.status or 0), str(exc.reason or ""), body
        return int(resp.status), str(resp.reason or ""), bytes(resp.data or b"")

    def _call(self, path: str, what: str, query: list[tuple[str, Any]] | None = None) -> Obj:
        urllib3_exc = importlib.import_module("urllib3.exceptions")
        self.requests += 1
        try:
            status, reason, data = self._get(path, query or [])
        except urllib3_exc.HTTPError as exc:
            raise LiveError(self._unreachable(exc)) from None
        except OSError as exc:
            raise LiveError(self._unreachable(exc)) from None
        if not 200 <= status <= 299:
            raise self._status_error(status, reason, data, what)
        try:
            doc = _orjson.loads(data) if _orjson is not None else json.loads(data)
        except ValueError:
            raise LiveError(f"{self.server}: {what}: the answer is not JSON "
                            f"({len(data)} bytes)") from None
        if not isinstance(doc, dict):
            raise LiveError(f"{self.server}: {what}: expected a JSON object")
        return doc

    def _unreachable(self, exc: BaseException) -> str:
        reason = getattr(exc, "reason", None) or exc
        text = str(reason)
        if "timed out" in text.lower() or "timeout" in type(reason).__name__.lower():
            why = f"no answer within {self.opts.request_timeout:g}s (--request-timeout)"
        elif "refused" in text.lower():
            why = "connection refused"
        else:
            why = text.split(": ", 1)[-1] if "object at 0x" in text else text
        return (f"cannot reach the API server {self.server} (context {self.context}): {why}; "
                "is the cluster up and the kubeconfig current? (kubectl cluster-info)")

    def _status_error(self, status: int, reason: str, body: bytes, what: str) -> Exception:
        message = _status_message(body) or reason
        if status == 401:
            return LiveError(
                f"the API server {self.server} refused the credentials of context "
                f"{self.context} (401 Unauthorized): the token or client certificate is invalid "
                "or has expired; log in again (kubectl get nodes tells the same)")
        if status == 403:
            return _Forbidden(message or f"403 Forbidden: {what}")
        if status == 404:
            return _NotFound(what)
        if status == 410:
            return _Expired(message)
        return LiveError(f"the API server {self.server} answered {status} {reason} to "
                         f"{what}: {message}".rstrip(": "))

    # ---- list / get ----
    def list_pages(self, kind: _Kind, version: str, namespace: str | None) -> Iterator[Obj]:
        """Each page of the list (a ``*List`` dict as the API server sends it)."""
        from urllib.parse import quote

        base = f"/apis/{kind.group}/{version}" if kind.group else f"/api/{version}"
        scoped = namespace if kind.namespaced else None
        path = (f"{base}/namespaces/{quote(scoped, safe='')}/{kind.plural}" if scoped
                else f"{base}/{kind.plural}")
        what = (f"list {kind.plural} ({kind.api}{version}"
                + (f", namespace {namespace})" if scoped else ")"))
        token: str | None = None
        restarted = False
        last = ""  # the key (namespace/name) of the last item yielded: lists are in key order
        while True:
            query: list[tuple[str, Any]] = [("limit", self.opts.page_size)]
            if token:
                query.append(("continue", token))
            try:
                page = self._call(path, what, query)
            except _Expired:
                if restarted or token is None:
                    raise LiveError(f"{self.server}: {what}: the list changed too fast to be "
                                    "paged (410 Gone twice)") from None
                # the token outlived the server's compaction (5-15 min): list again from the
                # start of the newest state, skipping the keys already yielded
                restarted, token = True, None
                continue
            items = page.get("items") or []
            if restarted and last:
                page["items"] = items = [i for i in items if _key(i) > last]
            if items:
                last = _key(items[-1])
            yield page
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def get_config_map(self, namespace: str, name: str) -> Obj | None:
        """The ConfigMap, or None when it does not exist; ``_Forbidden`` when it may not be
        read."""
        from urllib.parse import quote

        try:
            obj = self._call(f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/"
                             f"{quote(name, safe='')}", f"get configmap {namespace}/{name}")
        except _NotFound:
            return None
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "ConfigMap")
        return obj


def _key(item: Any) -> str:
    meta = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(meta, dict):
        return ""
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class _Expired(Exception):
    pass


def _status_message(body: Any) -> str:
    """The ``message`` of a ``Status`` body (the API server's reason in words)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

Progress = Callable[[str, int], None]


def _containers(template: Any) -> list[Obj]:
    spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(spec, dict):
        return []
    out = []
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                out.append(c)
    return out


def _trim(obj: Obj) -> None:
    """Leave out what no answer depends on and a snapshot should not carry: managedFields
    (kubectl hides them too) and container env values (they may hold secrets)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    if obj.get("kind") == "Pod":
        for c in _containers(obj):
            c.pop("env", None)
            c.pop("envFrom", None)


def _command_line(c: Obj) -> list[str]:
    return [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]


def _flag(args: Sequence[str], name: str) -> str | None:
    found = None
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            found = a[len(name) + 1:]
        elif a == name and i + 1 < len(args):
            found = args[i + 1]
    return found


class _Reader:
    def __init__(self, opts: LiveOptions, transport: _Transport,
                 controllers: Sequence[ControllerHint], progress: Progress | None) -> None:
        self.opts = opts
        self.t = transport
        self.controllers = controllers
        self.progress = progress
        self.read = LiveRead(source=f"context {transport.context}")
        self.forbidden: list[str] = []
        self.nodes: list[Obj] = []
        self.daemonsets: list[Obj] = []
        self.config_refs: dict[tuple[str, str], str] = {}  # (ns, name) -> who reads it
        self.kube_proxy_args: list[str] | None = None
        self.kube_proxy_seen = False
        self.controller_namespaces: set[str] = set()
        self.routes = 0

    # ---- one kind ----
    def list_kind(self, kind: _Kind, namespace: str | None, *,
                  keep: Callable[[Obj], bool] | None = None) -> Iterator[Obj]:
        """Every object of ``kind`` (with apiVersion and kind set, as kubectl prints them);
        nothing when its API is absent or it may not be listed (a note says so)."""
        for version in kind.versions:
            try:
                for page in self.t.list_pages(kind, version, namespace):
                    items = page.get("items") or []
                    api = page.get("apiVersion") or f"{kind.api}{version}"
                    n = 0
                    for item in items:
                        if not isinstance(item, dict):
                            continue
                        # the API server leaves kind/apiVersion off the items of a list
                        if "kind" not in item:
                            item["kind"] = kind.kind
                            item["apiVersion"] = api
                        if keep is not None and not keep(item):
                            continue
                        _trim(item)
                        n += 1
                        yield item
                    self.read.counts[kind.kind] = self.read.counts.get(kind.kind, 0) + n
                    if self.progress is not None:
                        self.progress(kind.plural, self.read.counts.get(kind.kind, 0))
                return
            except _NotFound:
                continue
            except _Forbidden as exc:
                self.forbidden.append(kind.kind)
                self.read.notes.append(
                    f"cannot list {kind.plural} ({exc.message}): {kind.lacks}; grant list on "
                    f"{kind.plural}{'.' + kind.group if kind.group else ''} "
                    f"(kubectl auth can-i list {kind.plural}"
                    f"{' -A' if kind.namespaced and not namespace else ''})")
                return
        if kind.kind == "EndpointSlice":
            self.read.notes.append(
                "the API server serves no EndpointSlices (discovery.k8s.io/v1 since Kubernetes "
                "1.21, v1beta1 1.17-1.24): the server is too old for sourceip's model of "
                f"kube-proxy; {kind.lacks}")
        elif not kind.crd:
            self.read.notes.append(f"the API server does not serve {kind.plural} "
                                   f"({kind.api}{'/'.join(kind.versions)}): {kind.lacks}")

    # ---- everything ----
    def objects(self) -> Iterator[Obj]:
        ns = self.opts.namespace
        by_kind = {k.kind: k for k in KINDS}
        # DaemonSets first (few): the CNI and kube-proxy; not fed to the converter
        self.daemonsets = list(self.list_kind(_DAEMONSETS, None))
        for ds in self.daemonsets:
            meta = ds.get("metadata") or {}
            if meta.get("name") == "kube-proxy":
                self.kube_proxy_seen = True
                for c in _containers(ds.get("spec", {}).get("template", {})):
                    if "kube-proxy" in str(c.get("image", "")) or c.get("name") == "kube-proxy":
                        self.kube_proxy_args = _command_line(c)
        for kind in KINDS:
            if kind.kind == "Pod":
                yield from self.list_kind(kind, ns, keep=self._see_pod)
                continue
            scope = None if kind.kind in _CLUSTER_WIDE else ns
            for obj in self.list_kind(kind, scope):
                if kind.kind == "Node":
                    self.nodes.append(obj)
                elif kind.kind in ("Ingress", "HTTPRoute"):
                    self.routes += 1
                yield obj
        if ns and self.routes and not self.controller_namespaces - {ns}:
            yield from self._controllers_elsewhere(ns, by_kind)
        yield from self._config_maps()
        yield self._profile()

    def _see_pod(self, pod: Obj) -> bool:
        """Remember what a pod tells (ingress controllers and their ConfigMaps, kube-proxy's
        flags); keep every pod."""
        meta = pod.get("metadata") or {}
        pns = str(meta.get("namespace", "default"))
        for c in _containers(pod):
            image = str(c.get("image", ""))
            args = [str(a) for a in c.get("args") or []]
            if self.kube_proxy_args is None and pns == "kube-system" and (
                    c.get("name") == "kube-proxy" or "/kube-proxy" in image):
                self.kube_proxy_seen = True  # a static pod (GKE), or the DaemonSet's pods
                self.kube_proxy_args = _command_line(c)
            for hint in self.controllers:
                if not (any(i in image for i in hint.images)
                        or (args and args[0] in hint.entrypoints)):
                    continue
                self.controller_namespaces.add(pns)
                who = f"pod {pns}/{meta.get('name', '')}"
                ref = _flag(args, hint.configmap_flag) if hint.configmap_flag else None
                if ref:
                    ref = ref.replace("$(POD_NAMESPACE)", pns)
                    cns, _, cname = ref.rpartition("/")
                    self.config_refs.setdefault((cns or pns, cname), who)
                elif hint.configmap_flag:
                    for name in hint.default_configmaps:
                        self.config_refs.setdefault((pns, name), who)
                if _flag(args, "--configFile") or _flag(args, "--configfile"):
                    for v in (pod.get("spec") or {}).get("volumes") or ():
                        cm = v.get("configMap") if isinstance(v, dict) else None
                        if isinstance(cm, dict) and cm.get("name"):
                            self.config_refs.setdefault((pns, str(cm["name"])), who)
        return True

    def _controllers_elsewhere(self, ns: str, by_kind: dict[str, _Kind]) -> Iterator[Obj]:
        """With -n NS whose Ingresses/HTTPRoutes are served by a controller in another
        namespace: that controller's pods, Services and EndpointSlices."""
        before = set(self.controller_namespaces)
        for pod in self.list_kind(by_kind["Pod"], None, keep=lambda p: (
                (p.get("metadata") or {}).get("namespace") != ns and self._is_controller(p))):
            self._see_pod(pod)
            yield pod
        found = sorted(self.controller_namespaces - before - {ns})
        for other in found:
            yield from self.list_kind(by_kind["Service"], other)
            yield from self.list_kind(by_kind["EndpointSlice"], other)
        if found:
            self.read.notes.append(
                f"the ingress controllers serving namespace {ns} run in "
                f"{', '.join(found)}: their pods, Services and EndpointSlices were read too")

    def _is_controller(self, pod: Obj) -> bool:
        for c in _containers(pod):
            image = str(c.get("image", ""))
            args = c.get("args") or []
            for hint in self.controllers:
                if any(i in image for i in hint.images) or (args and args[0] in hint.entrypoints):
                    return True
        return False

    def _get_cm(self, ns: str, name: str, lacks: str) -> Obj | None:
        try:
            return self.t.get_config_map(ns, name)
        except _Forbidden as exc:
            self.read.notes.append(f"cannot read ConfigMap {ns}/{name} ({exc.message}): {lacks}")
            self.forbidden.append(f"ConfigMap {ns}/{name}")
            return None

    def _config_maps(self) -> Iterator[Obj]:
        # kube-proxy: kubeadm's ConfigMap, EKS's, else the flags of its pods
        kp = self._get_cm("kube-system", "kube-proxy", "kube-proxy's defaults are assumed "
                          f"({KUBE_PROXY_DEFAULTS})")
        forbidden = "ConfigMap kube-system/kube-proxy" in self.forbidden
        if kp is not None and isinstance((kp.get("data") or {}).get("config.conf"), str):
            self._count("ConfigMap")
            yield kp
        elif not forbidden:
            eks = self._get_cm("kube-system", "kube-proxy-config", "")
            conf = (eks or {}).get("data", {}).get("config") if eks else None
            parsed = _yaml_mapping(conf) if isinstance(conf, str) else None
            flags = _kube_proxy_from_flags(self.kube_proxy_args or [])
            if parsed is not None and parsed.get("kind") == "KubeProxyConfiguration":
                self.read.notes.append("kube-proxy's configuration read from ConfigMap "
                                       "kube-system/kube-proxy-config (EKS's layout)")
                self._count("KubeProxyConfiguration")
                yield parsed
            elif flags is not None:
                self.read.notes.append(
                    "no kube-proxy ConfigMap (kube-system/kube-proxy): kube-proxy's settings "
                    "were read from its command-line flags ("
                    + " ".join(a for a in self.kube_proxy_args or [] if a.startswith("--")
                               and a.partition("=")[0] in _KP_FLAGS)
                    + "); other settings are kube-proxy's defaults")
                self._count("KubeProxyConfiguration")
                yield flags
            else:
                replacement = self._replacement()
                why = ("a kube-proxy replacement runs instead (" + replacement + "): sourceip "
                       "models kube-proxy's rules, so its answers may differ from the "
                       "replacement's" if replacement else
                       "a managed cluster that keeps kube-proxy's configuration out of reach, "
                       "or a kube-proxy replacement such as Cilium")
                what = ("the kube-proxy ConfigMap has no config.conf" if kp is not None else
                        "no kube-proxy ConfigMap (kube-system/kube-proxy)"
                        + ("" if self.kube_proxy_seen else " and no kube-proxy pods"))
                self.read.notes.append(
                    f"{what}: {why}; kube-proxy's defaults are assumed ({KUBE_PROXY_DEFAULTS}); "
                    "give the real settings as a KubeProxyConfiguration with -f")
        # the ingress controllers' ConfigMaps
        for (ns, name), who in sorted(self.config_refs.items()):
            cm = self._get_cm(ns, name, f"{who} is taken with its defaults")
            if cm is not None:
                self._count("ConfigMap")
                yield cm

    def _replacement(self) -> str:
        for ds in self.daemonsets:
            meta = ds.get("metadata") or {}
            if meta.get("name") in ("cilium", "anetd", "kube-router"):
                return f"DaemonSet {meta.get('namespace', '')}/{meta.get('name')}"
        return ""

    def _count(self, kind: str) -> None:
        self.read.counts[kind] = self.read.counts.get(kind, 0) + 1

    def _profile(self) -> Obj:
        """The proposed NetworkProfile, carrying every note of this reading."""
        hit = _match_cni(self.daemonsets, self.nodes)
        spec: dict[str, Any] = {}
        annotations: dict[str, str] = {}
        name = "default"
        if hit is not None:
            cni, seen = hit
            spec, why = _refine(cni, self.nodes)
            name = f"{cni.name}-guessed"
            annotations[GUESS_ANNOTATION] = seen
            note = (f"CNI guessed: {cni.name} (from {seen}); the NetworkProfile assumes {why}. "
                    "If the cluster differs, give a NetworkProfile with -f")
        else:
            note = ("CNI not recognised (no DaemonSet or node annotation of calico, cilium, "
                    "flannel, weave, kube-router or the AWS VPC CNI): the default "
                    "NetworkProfile is assumed (pods on a cni0 bridge, routes via the nodes, no "
                    "egress masquerade); give a NetworkProfile with -f")
        self.read.notes.insert(0, note)
        if self.forbidden and all(k in self.forbidden for k in _ESSENTIAL):
            raise LiveError(f"{self.t.server} (context {self.t.context}): may not list Nodes "
                            "or Services (403 Forbidden): nothing can be explained; "
                            "kubectl auth can-i list nodes,services -A")
        annotations[NOTES_ANNOTATION] = "\n".join(self.read.notes)
        self._count("NetworkProfile")
        return {"apiVersion": "sourceip.dev/v1alpha1", "kind": "NetworkProfile",
                "metadata": {"name": name, "annotations": annotations}, "spec": spec}


def _yaml_mapping(text: str) -> Obj | None:
    import yaml

    try:
        value = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------------------------

def iter_live(opts: LiveOptions, read: list[LiveRead], *,
              controllers: Sequence[ControllerHint] = (),
              progress: Progress | None = None) -> Iterator[Obj]:
    """Every object read from the cluster, as it streams in (pages are decoded one at a time);
    ``read[0]`` is the ``LiveRead`` (filled as reading goes, complete at the end: its objects
    list stays empty — keep the objects yourself if you need them)."""
    start = time.perf_counter()
    transport = _Transport(opts)
    reader = _Reader(opts, transport, controllers, progress)
    read.append(reader.read)
    try:
        yield from reader.objects()
    finally:
        transport.close()
        reader.read.seconds = time.perf_counter() - start


def read_live(opts: LiveOptions, *, controllers: Sequence[ControllerHint] = (),
              progress: Progress | None = None) -> LiveRead:
    """Everything read from the cluster, kept (``LiveRead.objects``), e.g. for a snapshot."""
    holder: list[LiveRead] = []
    objects = list(iter_live(opts, holder, controllers=controllers, progress=progress))
    holder[0].objects = objects
    return holder[0]


def load_live(opts: LiveOptions, *, controllers: Sequence[ControllerHint] = (),
              extra: Iterable[RawObject] = (),
              node_port_range: NodePortRange = DEFAULT_NODE_PORT_RANGE,
              progress: Progress | None = None) -> tuple[Cluster, LiveRead]:
    """The cluster read live, converted as it streams in (the objects are not kept twice);
    ``extra`` objects (``-f`` files given beside the cluster) are added, and a
    KubeProxyConfiguration or NetworkProfile among them replaces the one read or proposed."""
    holder: list[LiveRead] = []
    extra = list(extra)
    mine_kp = any(_is_kube_proxy_config(r.obj) for r in extra)
    mine_profile = any(r.kind == "NetworkProfile" for r in extra)

    def raws() -> Iterator[RawObject]:
        for obj in iter_live(opts, holder, controllers=controllers, progress=progress):
            if (mine_kp and _is_kube_proxy_config(obj)) or (
                    mine_profile and obj.get("kind") == "NetworkProfile"):
                continue  # the user's own replaces what was read or proposed
            yield RawObject(obj, source=_describe(holder, obj))
        yield from extra

    cluster = build_cluster(raws(), node_port_range=node_port_range)
    if mine_profile:  # the reading's notes but the CNI guess, which the user's profile replaces
        kept = [n for n in holder[0].notes if not n.startswith(("CNI guessed", "CNI not"))]
        cluster = cluster.with_(notes=(*kept, *cluster.notes))
    return cluster, holder[0]


def _is_kube_proxy_config(obj: Obj) -> bool:
    kind = obj.get("kind")
    return kind == "KubeProxyConfiguration" or (
        kind == "ConfigMap" and (obj.get("metadata") or {}).get("name") == "kube-proxy")


def _describe(holder: list[LiveRead], obj: Obj) -> str:
    """Where an object came from, for error messages: ``context NAME: Pod ns/name``."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "")
    where = holder[0].source if holder else "cluster"
    return f"{where}: {obj.get('kind')} {ns + '/' if ns else ''}{name}"


def raws_of(read: LiveRead) -> Iterator[RawObject]:
    """The objects of ``read`` as converter input (errors name the object)."""
    holder = [read]
    for obj in read.objects:
        yield RawObject(obj, source=_describe(holder, obj))


def snapshot_list(read: LiveRead) -> Obj:
    """What was read as one ``kind: List`` (the ``-f`` input format): re-running sourceip on
    it gives the same answer offline."""
    return {"apiVersion": "v1", "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": read.objects}
