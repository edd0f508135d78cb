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
imported when a cluster is read, never at import time, and only in ``sources/kubeclient.py``
(untyped there: what it returns is ``Any`` until turned into plain dicts). Responses are read
as raw JSON, not the client's model objects: see docs/performance.md, "live".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sourceip.cluster.cluster import Cluster
from sourceip.sources.convert import (
    DEFAULT_NODE_PORT_RANGE,
    NodePortRange,
    RawObject,
    build_cluster,
)
from sourceip.sources.kubeclient import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
    INSTALL_HINT,
    Forbidden,
    LiveError,
    LiveOptions,
    NotFound,
    Resource,
    Transport,
)

__all__ = ["DEFAULT_PAGE_SIZE", "DEFAULT_TIMEOUT", "INSTALL_HINT", "ControllerHint",
           "LiveError", "LiveOptions", "LiveRead", "load_live", "read_live", "snapshot_list"]

Obj = dict[str, Any]
NOTES_ANNOTATION = "sourceip.dev/notes"
GUESS_ANNOTATION = "sourceip.dev/guessed-from"


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

KINDS: tuple[Resource, ...] = (
    Resource("Node", "", ("v1",), "nodes", False,
          lacks="no path can be traced (Nodes give the addresses and pod CIDRs)"),
    Resource("Pod", "", ("v1",), "pods", True,
          lacks="endpoints come from EndpointSlices alone; hostNetwork clients, ingress "
                "controllers and named target ports are unknown"),
    Resource("Service", "", ("v1",), "services", True, lacks="no Service can be explained"),
    Resource("EndpointSlice", "discovery.k8s.io", ("v1", "v1beta1"), "endpointslices", True,
          lacks="endpoints are derived from the Pods, as the EndpointSlice controller would"),
    Resource("Ingress", "networking.k8s.io", ("v1",), "ingresses", True,
          lacks="no Ingress route is explained"),
    Resource("IngressClass", "networking.k8s.io", ("v1",), "ingressclasses", False,
          lacks="Ingresses are matched to controllers by the legacy class annotation only"),
    Resource("ServiceCIDR", "networking.k8s.io", ("v1", "v1beta1"), "servicecidrs", False,
          crd=True, lacks="ClusterIPs are not checked against the service CIDRs"),
    Resource("GatewayClass", "gateway.networking.k8s.io", ("v1", "v1beta1"), "gatewayclasses",
          False, crd=True, lacks="HTTPRoutes are not matched to their controller"),
    Resource("Gateway", "gateway.networking.k8s.io", ("v1", "v1beta1"), "gateways", True,
          crd=True, lacks="HTTPRoutes are not routed through their Gateway"),
    Resource("HTTPRoute", "gateway.networking.k8s.io", ("v1", "v1beta1"), "httproutes", True,
          crd=True, lacks="no HTTPRoute is explained"),
    Resource("ClientTrafficPolicy", "gateway.envoyproxy.io", ("v1alpha1",),
          "clienttrafficpolicies", True, crd=True,
          lacks="Envoy Gateway's data planes are taken with their defaults"),
)
_DAEMONSETS = Resource("DaemonSet", "apps", ("v1",), "daemonsets", True,
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
    def __init__(self, opts: LiveOptions, transport: Transport,
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
    def list_kind(self, kind: Resource, namespace: str | None, *,
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
            except NotFound:
                continue
            except Forbidden as exc:
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

    def _controllers_elsewhere(self, ns: str, by_kind: dict[str, Resource]) -> Iterator[Obj]:
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
        except Forbidden as exc:
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
    transport = Transport(opts)
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
