"""API-shaped dicts → cluster objects, shared by every source (files, examples, tests, live).

``build_cluster`` takes ``RawObject``s (a dict plus where it came from) and returns a complete
``Cluster`` or raises an ``InputError`` located at ``file:line`` and a field path such as
``spec.ports[0].nodePort``; nothing half-loaded is ever returned.

What it does beyond a field-by-field copy:

* checks what the model cannot: IP strings, port ranges, nodePorts inside the API server's
  ``--service-node-port-range``, a ClusterIP outside the service CIDRs, a named targetPort
  that none of the selected pods declares, duplicate objects;
* fills in what the API server would have allocated for a hand-written manifest (a ClusterIP
  from the service CIDR, nodePorts and a healthCheckNodePort from the node port range), with a
  note naming each allocation;
* derives EndpointSlices from Pods for Services with a selector and no EndpointSlice given, as
  the EndpointSlice controller does (``pkg/controller/endpointslice``: ``podToEndpoint``,
  ``getEndpointPorts``, ``ShouldPodBeInEndpoints``);
* skips (and counts in ``Cluster.skipped``) every kind that does not change a packet's path.

Performance: the loader converts 150,000 pods and endpoints in a few seconds: IP strings are
parsed once per load into a shared dict (pods and endpoints share address objects), field
paths for messages are built only on the error path where possible.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import ipaddress
import re
import socket
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from sourceip.cluster.cluster import Cluster
from sourceip.cluster.model import (
    IP_FAMILY_NAMES,
    ZONE_LABEL,
    ConfigMap,
    Container,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Gateway,
    GatewayClass,
    Ingress,
    IngressClass,
    IngressPath,
    KubeProxyConfig,
    LoadBalancerIngress,
    LoadBalancerProfile,
    NetworkProfile,
    Node,
    Pod,
    PolicyObject,
    Service,
    ServicePort,
    family_name,
    kube_proxy_release_text,
)
from sourceip.errors import InputError, ManifestError, ValidationError
from sourceip.net.addr import IPAddress, IPNetwork

Obj = dict[str, Any]
PathSeg = str | int
NodePortRange = tuple[int, int] | None

DEFAULT_NODE_PORT_RANGE: tuple[int, int] = (30000, 32767)
# kubeadm's default --service-cluster-ip-range, used only to allocate a missing ClusterIP; IPv6
# has no upstream default: kind's (fd00:10:96::/112) is used, as kubeproxy/nftables.py does.
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_SERVICE_CIDRS: dict[int, IPNetwork] = {
    4: ipaddress.IPv4Network(DEFAULT_SERVICE_CIDR),
    6: ipaddress.IPv6Network("fd00:10:96::/112"),
}
_APISERVER_RANGE_FLAG = "--service-cluster-ip-range"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

WORKLOAD_KINDS = frozenset(
    {"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob",
     "ReplicationController"}
)
_IPV4 = ipaddress.IPv4Address
_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_from_bytes = int.from_bytes
_SPEC_PATHS = {"containers": "spec.containers", "initContainers": "spec.initContainers"}
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_DETECT_LOCAL_MODES = ("", "ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_PATH_TOKEN = re.compile(r'\.?([A-Za-z0-9_\-]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


# ---------------------------------------------------------------------------------------------
# field paths
# ---------------------------------------------------------------------------------------------

def key_path(parent: str, key: str) -> str:
    """``parent.key``, or ``parent["key.with/odd chars"]`` when the key is not a plain word."""
    if _PLAIN_KEY.match(key):
        return f"{parent}.{key}" if parent else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{parent}["{escaped}"]'


def parse_path(text: str | None) -> list[PathSeg]:
    """Inverse of the path notation: ``spec.ports[0].nodePort`` → ``["spec","ports",0,"nodePort"]``.

    Parsing stops at the first part it cannot read (the prefix still locates a line)."""
    out: list[PathSeg] = []
    if not text:
        return out
    pos = 0
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(re.sub(r"\\(.)", r"\1", m.group(3)))
        pos = m.end()
    return out


def _join(prefix: str, field: str | None) -> str:
    if not field:
        return prefix
    if not prefix:
        return field
    return prefix + field if field.startswith("[") else f"{prefix}.{field}"


# ---------------------------------------------------------------------------------------------
# where an object came from
# ---------------------------------------------------------------------------------------------

class Origin(Protocol):
    """A source of documents that can turn a path inside a document into a line number."""

    name: str

    def line_of(self, doc: int, path: Sequence[PathSeg]) -> int | None:
        """1-based line of the deepest part of ``path`` present in document ``doc``."""

    def block_text_line(self, doc: int, path: Sequence[PathSeg]) -> int | None:
        """For a string value written as a YAML block scalar (``|``): the line before its first
        text line (so text line ``n`` is at ``result + n``); otherwise None."""


class RawObject:
    """One Kubernetes-shaped object and where it came from (``doc``-th document of ``origin``,
    at ``prefix`` inside it, e.g. ``("items", 3)`` for the fourth item of a ``kind: List``)."""

    __slots__ = ("obj", "origin", "doc", "prefix", "source")

    def __init__(
        self,
        obj: Obj,
        *,
        origin: Origin | None = None,
        doc: int = 0,
        prefix: tuple[PathSeg, ...] = (),
        source: str = "<objects>",
    ) -> None:
        self.obj = obj
        self.origin = origin
        self.doc = doc
        self.prefix = prefix
        self.source = origin.name if origin is not None else source

    def where(self, field: str | None = None) -> tuple[str, int | None]:
        """``(file, line)`` of ``field`` (a path relative to the object)."""
        if self.origin is None:
            return self.source, None
        try:
            line = self.origin.line_of(self.doc, (*self.prefix, *parse_path(field)))
        except Exception:  # locating is best effort; never hide the real error behind it
            line = None
        return self.source, line

    def locate(self, exc: InputError) -> InputError:
        """Fill in ``exc``'s file and line from its field path; returns ``exc``."""
        file, line = self.where(exc.field)
        exc.located(file=file, line=line)
        return exc

    def describe(self) -> str:
        file, line = self.where()
        return f"{file}:{line}" if line is not None else file

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))


def expand(
    value: Any,
    *,
    origin: Origin | None,
    doc: int,
    prefix: tuple[PathSeg, ...] = (),
    source: str = "<objects>",
) -> Iterator[RawObject]:
    """The objects in one document: itself, or the items of a ``kind: List`` (and ``*List``
    kinds as ``kubectl get -o yaml`` prints them), recursively. ``None`` (an empty document)
    yields nothing."""
    if value is None:
        return
    if not isinstance(value, dict):
        raw = RawObject({}, origin=origin, doc=doc, prefix=prefix, source=source)
        raise raw.locate(ManifestError(
            f"expected a Kubernetes object (a mapping with apiVersion and kind), "
            f"got {_type_name(value)}"))
    kind = value.get("kind")
    if not isinstance(kind, str) or not kind:
        raw = RawObject(value, origin=origin, doc=doc, prefix=prefix, source=source)
        raise raw.locate(ManifestError(
            "is required: every object needs a kind" if kind is None
            else f"{kind!r} is not a kind", field="kind"))
    if kind.endswith("List") and isinstance(value.get("items"), list):
        for i, item in enumerate(value["items"]):
            yield from expand(item, origin=origin, doc=doc, prefix=(*prefix, "items", i),
                              source=source)
        return
    yield RawObject(value, origin=origin, doc=doc, prefix=prefix, source=source)


# ---------------------------------------------------------------------------------------------
# small typed readers (they raise ValidationError with the field path)
# ---------------------------------------------------------------------------------------------

def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, int | float):
        return f"the number {v}"
    return f"{v!r}"


def _map(v: Any, field: str) -> Obj:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValidationError(f"expected a mapping, got {_type_name(v)}", field=field)
    return v


def _list(v: Any, field: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise ValidationError(f"expected a list, got {_type_name(v)}", field=field)
    return v


def _str(v: Any, field: str, default: str = "") -> str:
    if v is None:
        return default
    if not isinstance(v, str):
        raise ValidationError(f"expected a string, got {_type_name(v)}", field=field)
    return v


def _bool(v: Any, field: str, default: bool) -> bool:
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ValidationError(f"expected true or false, got {_type_name(v)}", field=field)
    return v


def _int(v: Any, field: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, str) and v.isdigit():
            return int(v)
        raise ValidationError(f"expected an integer, got {_type_name(v)}", field=field)
    return v


def _port(v: Any, field: str, *, allow_zero: bool = False) -> int:
    value = _int(v, field)
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ValidationError(f"{value} is outside {low}-65535", field=field)
    return value


def _protocol(v: Any, field: str) -> str:
    if v is None:
        return "tcp"
    try:
        return _PROTOCOLS[v]
    except (KeyError, TypeError):
        raise ValidationError(
            f"{v!r} is not a protocol (TCP, UDP or SCTP)", field=field) from None


def _str_map(v: Any, field: str) -> dict[str, str]:
    m = _map(v, field)
    for k, val in m.items():
        if not isinstance(val, str) or not isinstance(k, str):
            raise ValidationError(
                f"expected a string, got {_type_name(val)}", field=key_path(field, str(k)))
    return m


def _network(v: Any, field: str) -> IPNetwork:
    if not isinstance(v, str):
        raise ValidationError(f"expected a CIDR string, got {_type_name(v)}", field=field)
    try:
        return ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        raise ValidationError(f"{v!r} is not a valid CIDR", field=field) from None


def _model(cls: Any, prefix: str, **kwargs: Any) -> Any:
    """Construct a model value; its ValidationError's field is made absolute with ``prefix``."""
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        exc.field = _join(prefix, exc.field)
        raise


# ---------------------------------------------------------------------------------------------
# the converter
# ---------------------------------------------------------------------------------------------

KUBE_PROXY_VERSION_ANNOTATION = "sourceip.dev/kubeProxyVersion"


class Converter:
    """Converts single objects; holds the per-load IP cache and what it noticed (IPv6)."""

    def __init__(self, *, node_port_range: NodePortRange = DEFAULT_NODE_PORT_RANGE) -> None:
        self.node_port_range = node_port_range
        self.saw_ipv6 = False
        self.outside_range: list[str] = []  # node ports read from a cluster outside the range
        self._ips: dict[str, IPAddress] = {}
        self._container_ports: dict[tuple[Any, ...], ContainerPort] = {}

    # ---- addresses ----
    def ip(self, text: Any, field: str) -> IPAddress:
        """The address ``text`` (parsed once per load and shared)."""
        try:
            return self._ips[text]
        except (KeyError, TypeError):
            pass
        if not isinstance(text, str):
            raise ValidationError(f"expected an IP address, got {_type_name(text)}", field=field)
        try:
            addr: IPAddress
            if ":" in text:
                addr = ipaddress.IPv6Address(text)
                self.saw_ipv6 = True
            else:
                # inet_pton is strict dotted-quad (no leading zeros, no short forms) and 4x
                # faster than parsing the string in ipaddress.
                addr = _IPV4(_from_bytes(_pton(_AF_INET, text), "big"))
        except (ValueError, OSError):
            raise ValidationError(f"{text!r} is not a valid IP address", field=field) from None
        self._ips[text] = addr
        return addr

    def network(self, text: Any, field: str) -> IPNetwork:
        net = _network(text, field)
        if net.version == 6:
            self.saw_ipv6 = True
        return net

    def node_port(self, v: Any, field: str, *, meta: Obj | None = None) -> int:
        """A nodePort / healthCheckNodePort inside the node port range; outside it only when
        ``meta`` (the object's metadata) carries server-set fields (``uid``,
        ``resourceVersion``): that object was read from a cluster whose API server accepted
        the port (its --service-node-port-range differs), and ``outside_range`` notes it."""
        port = _port(v, field)
        rng = self.node_port_range
        if rng is not None and not rng[0] <= port <= rng[1]:
            if not (meta and (meta.get("uid") or meta.get("resourceVersion"))):
                raise ValidationError(
                    f"{port} is outside the node port range {rng[0]}-{rng[1]} "
                    "(the API server's --service-node-port-range)", field=field)
            self.outside_range.append(
                f"{meta.get('namespace') or 'default'}/{meta.get('name')} {field} {port}")
        return port

    @staticmethod
    def meta(obj: Obj, *, namespaced: bool = True) -> tuple[str, str]:
        """(namespace, name); the namespace defaults to ``default``."""
        meta = _map(obj.get("metadata"), "metadata")
        name = _str(meta.get("name"), "metadata.name")
        if not name:
            raise ValidationError("is required", field="metadata.name")
        ns = _str(meta.get("namespace"), "metadata.namespace") or "default" if namespaced else ""
        return ns, name

    # ---- Node ----
    def node(self, obj: Obj) -> Node:
        _, name = self.meta(obj, namespaced=False)
        meta = obj["metadata"]
        spec = _map(obj.get("spec"), "spec")
        status = _map(obj.get("status"), "status")
        internal: list[IPAddress] = []
        external: list[IPAddress] = []
        for i, a in enumerate(_list(status.get("addresses"), "status.addresses")):
            a = _map(a, f"status.addresses[{i}]")
            typ = a.get("type")
            if typ == "InternalIP":
                internal.append(self.ip(a.get("address"), f"status.addresses[{i}].address"))
            elif typ == "ExternalIP":
                external.append(self.ip(a.get("address"), f"status.addresses[{i}].address"))
        cidrs_raw = spec.get("podCIDRs")
        if cidrs_raw:
            cidrs = tuple(self.network(c, f"spec.podCIDRs[{i}]")
                          for i, c in enumerate(_list(cidrs_raw, "spec.podCIDRs")))
            # ValidateNode: podCIDR, when given, is podCIDRs[0]
            if spec.get("podCIDR") and self.network(spec["podCIDR"], "spec.podCIDR") != cidrs[0]:
                raise ValidationError(f"{spec['podCIDR']!r} must match the first element of "
                                      "spec.podCIDRs", field="spec.podCIDR")
        elif spec.get("podCIDR"):
            cidrs = (self.network(spec["podCIDR"], "spec.podCIDR"),)
        else:
            cidrs = ()
        deleted = meta.get("deletionTimestamp")
        if hasattr(deleted, "isoformat"):  # YAML reads an unquoted timestamp as a datetime
            deleted = deleted.isoformat().replace("+00:00", "Z")
        taints: list[str] = []
        for i, t in enumerate(_list(spec.get("taints"), "spec.taints")):
            key = _str(_map(t, f"spec.taints[{i}]").get("key"), f"spec.taints[{i}].key")
            if not key:
                raise ValidationError("a taint needs a key", field=f"spec.taints[{i}].key")
            taints.append(key)
        node: Node = _model(Node, "", name=name, internal_ips=tuple(internal),
                      external_ips=tuple(external), pod_cidrs=cidrs,
                      labels=_str_map(meta.get("labels"), "metadata.labels"),
                      deletion_timestamp=_str(deleted, "metadata.deletionTimestamp"),
                      taints=tuple(taints))
        return node

    # ---- Pod ----
    def pod(self, obj: Obj, nodes: Mapping[str, Node]) -> Pod:
        """A Pod. Without a ``status`` it is taken as Running and Ready (a hand-written pod);
        a hostNetwork pod without a podIP gets its node's InternalIPs."""
        ns, name = self.meta(obj)
        meta = obj["metadata"]
        spec = _map(obj.get("spec"), "spec")
        status_raw = obj.get("status")
        status = _map(status_raw, "status")
        host_network = _bool(spec.get("hostNetwork"), "spec.hostNetwork", False)
        node_name = _str(spec.get("nodeName"), "spec.nodeName")
        ips: tuple[IPAddress, ...]
        pod_ips = status.get("podIPs")
        if pod_ips:
            ips = tuple(
                self.ip(_map(p, f"status.podIPs[{i}]").get("ip"), f"status.podIPs[{i}].ip")
                for i, p in enumerate(_list(pod_ips, "status.podIPs")))
        elif status.get("podIP"):
            ips = (self.ip(status["podIP"], "status.podIP"),)
        elif host_network and node_name in nodes:
            ips = nodes[node_name].internal_ips
        else:
            ips = ()
        ports: list[ContainerPort] = []
        port_cache = self._container_ports
        for ckey in ("containers", "initContainers"):
            containers = spec.get(ckey)
            if not containers:
                continue
            for ci, c in enumerate(_list(containers, _SPEC_PATHS[ckey])):
                if ckey == "initContainers" and (not isinstance(c, dict)
                                                 or c.get("restartPolicy") != "Always"):
                    continue  # only sidecar (restartable) init containers keep serving
                try:
                    c = _map(c, "")
                    for pi, p in enumerate(_list(c.get("ports"), "ports")):
                        try:
                            key = (p.get("containerPort"), p.get("name"), p.get("protocol"),
                                   p.get("hostPort"), p.get("hostIP"))
                            cp = port_cache.get(key)
                        except (AttributeError, TypeError):  # not a mapping / unhashable
                            key, cp = None, None
                        if cp is None:
                            cp = self._container_port(p, pi)
                            if key is not None:
                                port_cache[key] = cp
                        if host_network and cp.host_port not in (None, cp.container_port):
                            # the API server: hostPort must match containerPort when
                            # hostNetwork is true (and defaults it to containerPort)
                            raise ValidationError(
                                f"{cp.host_port} must equal containerPort "
                                f"{cp.container_port} on a hostNetwork pod",
                                field=f"ports[{pi}].hostPort")
                        ports.append(cp)
                except ValidationError as exc:
                    exc.field = _join(f"spec.{ckey}[{ci}]", exc.field)
                    raise
        if status_raw is None:
            phase, ready = "Running", True
        else:
            phase = _str(status.get("phase"), "status.phase", "Running")
            ready = phase == "Running"
            for cond in _list(status.get("conditions"), "status.conditions"):
                if isinstance(cond, dict) and cond.get("type") == "Ready":
                    ready = cond.get("status") == "True"
                    break
        return Pod(
            namespace=ns, name=name, node_name=node_name, ips=ips, host_network=host_network,
            labels=_str_map(meta.get("labels"), "metadata.labels"), ports=tuple(ports),
            phase=phase, ready=ready, terminating=meta.get("deletionTimestamp") is not None,
            containers=self._containers(spec))

    @staticmethod
    def _containers(spec: Obj) -> tuple[Container, ...]:
        """Containers that carry args (ingress controllers are configured by them); other
        containers are not kept, so 150,000 plain pods cost nothing here."""
        out: list[Container] = []
        containers = spec.get("containers")
        if not isinstance(containers, list):
            return ()
        for ci, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            args = c.get("args")
            if not args:
                continue
            cp = f"spec.containers[{ci}]"
            out.append(Container(
                name=_str(c.get("name"), cp + ".name"), image=_str(c.get("image"), cp + ".image"),
                args=tuple(_str(a, f"{cp}.args[{i}]") for i, a in
                           enumerate(_list(args, cp + ".args")))))
        return tuple(out)

    def _container_port(self, p: Any, pi: int) -> ContainerPort:
        pp = f"ports[{pi}]"
        p = _map(p, pp)
        hp = p.get("hostPort")
        cp: ContainerPort = _model(
            ContainerPort, pp,
            container_port=_port(p.get("containerPort"), pp + ".containerPort"),
            name=_str(p.get("name"), pp + ".name"),
            protocol=_protocol(p.get("protocol"), pp + ".protocol"),
            host_port=_port(hp, pp + ".hostPort") if hp else None,
            host_ip=self.ip(p["hostIP"], pp + ".hostIP") if p.get("hostIP") else None)
        return cp

    # ---- Service ----
    def service(self, obj: Obj) -> tuple[Service, bool]:
        """A Service, and its ``spec.publishNotReadyAddresses`` (used to derive slices)."""
        ns, name = self.meta(obj)
        meta = obj["metadata"]
        spec = _map(obj.get("spec"), "spec")
        status = _map(obj.get("status"), "status")
        type_raw = spec.get("type")
        stype = _str(type_raw, "spec.type", "ClusterIP")
        if stype not in _SERVICE_TYPES:
            raise ValidationError(
                f"{stype!r} is not a Service type ({', '.join(_SERVICE_TYPES)})",
                field="spec.type")
        cip = _str(spec.get("clusterIP"), "spec.clusterIP")
        cips_raw = _list(spec.get("clusterIPs"), "spec.clusterIPs")
        headless = cip == "None" or (bool(cips_raw) and cips_raw[0] == "None")
        cluster_ips: tuple[IPAddress, ...] = ()
        if not headless:
            if cips_raw:
                cluster_ips = tuple(self.ip(c, f"spec.clusterIPs[{i}]")
                                    for i, c in enumerate(cips_raw))
                if cip and self.ip(cip, "spec.clusterIP") != cluster_ips[0]:
                    raise ValidationError(
                        f"{cips_raw[0]!r} must equal spec.clusterIP {cip!r}",
                        field="spec.clusterIPs[0]")
            elif cip:
                cluster_ips = (self.ip(cip, "spec.clusterIP"),)
        ports: list[ServicePort] = []
        for i, p in enumerate(_list(spec.get("ports"), "spec.ports")):
            pp = f"spec.ports[{i}]"
            p = _map(p, pp)
            tp = p.get("targetPort")
            target: int | str
            if tp is None:
                target = 0
            elif isinstance(tp, str) and not tp.isdigit():
                target = tp
            else:
                target = _port(tp, pp + ".targetPort", allow_zero=True)
            np_raw = p.get("nodePort")
            node_port = None
            if np_raw is not None and np_raw != 0:
                if stype in ("ClusterIP", "ExternalName"):
                    raise ValidationError(
                        f"may not be used when type is {stype}", field=pp + ".nodePort")
                node_port = self.node_port(np_raw, pp + ".nodePort", meta=meta)
            ports.append(_model(
                ServicePort, pp, port=_port(p.get("port"), pp + ".port"),
                name=_str(p.get("name"), pp + ".name"),
                protocol=_protocol(p.get("protocol"), pp + ".protocol"),
                target_port=target, node_port=node_port))
        selector_raw = spec.get("selector")
        selector = _str_map(selector_raw, "spec.selector") or None
        ingress: list[LoadBalancerIngress] = []
        lb = _map(status.get("loadBalancer"), "status.loadBalancer")
        for i, ing in enumerate(_list(lb.get("ingress"), "status.loadBalancer.ingress")):
            ip_ = f"status.loadBalancer.ingress[{i}]"
            ing = _map(ing, ip_)
            mode = _str(ing.get("ipMode"), ip_ + ".ipMode", "VIP")
            if mode not in ("VIP", "Proxy"):
                raise ValidationError(f"{mode!r} is not VIP or Proxy", field=ip_ + ".ipMode")
            ingress.append(LoadBalancerIngress(
                ip=self.ip(ing["ip"], ip_ + ".ip") if ing.get("ip") else None,
                hostname=_str(ing.get("hostname"), ip_ + ".hostname"), ip_mode=mode))  # type: ignore[arg-type]
        etp = _str(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy", "Cluster")
        if etp == "Global":  # the pre-1.14 spelling of Cluster
            etp = "Cluster"
        if etp not in ("Cluster", "Local"):
            raise ValidationError(f"{etp!r} is not Cluster or Local",
                                  field="spec.externalTrafficPolicy")
        itp = _str(spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", "Cluster")
        if itp not in ("Cluster", "Local"):
            raise ValidationError(f"{itp!r} is not Cluster or Local",
                                  field="spec.internalTrafficPolicy")
        hc_raw = spec.get("healthCheckNodePort")
        hc = self.node_port(hc_raw, "spec.healthCheckNodePort", meta=meta) if hc_raw else None
        # kube-proxy trims spaces around each range (proxyutil.MapCIDRsByIPFamily).
        ranges = tuple(self.network(r, f"spec.loadBalancerSourceRanges[{i}]") for i, r in
                       enumerate(_list(spec.get("loadBalancerSourceRanges"),
                                       "spec.loadBalancerSourceRanges")))
        affinity = _str(spec.get("sessionAffinity"), "spec.sessionAffinity", "None")
        if affinity not in ("None", "ClientIP"):
            raise ValidationError(f"{affinity!r} is not None or ClientIP",
                                  field="spec.sessionAffinity")
        timeout = 10800
        sac = _map(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
        client = _map(sac.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
        if client.get("timeoutSeconds") is not None:
            timeout = _int(client["timeoutSeconds"],
                           "spec.sessionAffinityConfig.clientIP.timeoutSeconds")
        families = tuple(_str(f, f"spec.ipFamilies[{i}]") for i, f in
                         enumerate(_list(spec.get("ipFamilies"), "spec.ipFamilies")))
        policy = _str(spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy")
        external_name = _str(spec.get("externalName"), "spec.externalName")
        if stype == "ExternalName" and not external_name:
            raise ValidationError("is required for type ExternalName", field="spec.externalName")
        lb_ip = spec.get("loadBalancerIP")
        svc = _model(
            Service, "", namespace=ns, name=name, type=stype, cluster_ips=cluster_ips,
            headless=headless, ports=tuple(ports), selector=selector,
            external_ips=tuple(self.ip(e, f"spec.externalIPs[{i}]") for i, e in
                               enumerate(_list(spec.get("externalIPs"), "spec.externalIPs"))),
            load_balancer_ip=self.ip(lb_ip, "spec.loadBalancerIP") if lb_ip else None,
            lb_ingress=tuple(ingress), external_traffic_policy=etp,
            internal_traffic_policy=itp, health_check_node_port=hc, lb_source_ranges=ranges,
            session_affinity=affinity, affinity_timeout=timeout,
            allocate_lb_node_ports=_bool(spec.get("allocateLoadBalancerNodePorts"),
                                         "spec.allocateLoadBalancerNodePorts", True),
            ip_families=families, ip_family_policy=policy, external_name=external_name,
            annotations=_str_map(meta.get("annotations"), "metadata.annotations"),
            load_balancer_class=_str(spec.get("loadBalancerClass"), "spec.loadBalancerClass"),
            type_set=type_raw is not None)
        publish = _bool(spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses",
                        False)
        return svc, publish

    # ---- EndpointSlice ----
    def endpoint_slice(self, obj: Obj) -> EndpointSlice | None:
        """An EndpointSlice (discovery.k8s.io/v1 or v1beta1); None for FQDN slices (kube-proxy
        ignores them)."""
        ns, name = self.meta(obj)
        labels = _str_map(obj["metadata"].get("labels"), "metadata.labels")
        service_name = labels.get(SERVICE_NAME_LABEL, "")
        if not service_name:
            raise ValidationError(
                f"is required: kube-proxy ignores a slice without the {SERVICE_NAME_LABEL} label",
                field=key_path("metadata.labels", SERVICE_NAME_LABEL))
        atype = _str(obj.get("addressType"), "addressType", "IPv4")
        if atype == "FQDN":
            return None
        if atype not in ("IPv4", "IPv6"):
            raise ValidationError(f"{atype!r} is not IPv4, IPv6 or FQDN", field="addressType")
        want = 4 if atype == "IPv4" else 6
        endpoints: list[Endpoint] = []
        for i, ep in enumerate(_list(obj.get("endpoints"), "endpoints")):
            try:
                endpoints.append(self._endpoint(ep, want, atype, ns))
            except ValidationError as exc:  # paths are built only when something is wrong
                exc.field = _join(f"endpoints[{i}]", exc.field)
                raise
        ports: list[EndpointPort] = []
        for i, p in enumerate(_list(obj.get("ports"), "ports")):
            p = _map(p, f"ports[{i}]")
            if p.get("port") is None:
                continue  # a nil port: kube-proxy skips it (endpointslicecache.go)
            ports.append(EndpointPort(
                port=_port(p["port"], f"ports[{i}].port"),
                name=_str(p.get("name"), f"ports[{i}].name"),
                protocol=_protocol(p.get("protocol"), f"ports[{i}].protocol")))
        return EndpointSlice(namespace=ns, name=name, service_name=service_name,
                             address_type=atype, endpoints=tuple(endpoints),  # type: ignore[arg-type]
                             ports=tuple(ports))

    def _endpoint(self, ep: Any, want: int, atype: str, ns: str) -> Endpoint:
        """One endpoint; error fields are relative to it."""
        if not isinstance(ep, dict):
            raise ValidationError(f"expected a mapping, got {_type_name(ep)}")
        addrs = ep.get("addresses")
        if not isinstance(addrs, list) or not addrs:
            raise ValidationError("an endpoint needs at least one address", field="addresses")
        ip = self.ip
        if len(addrs) == 1:
            parsed: tuple[IPAddress, ...] = (ip(addrs[0], "addresses[0]"),)
        else:
            parsed = tuple(ip(a, f"addresses[{j}]") for j, a in enumerate(addrs))
        for j, a in enumerate(parsed):
            if a.version != want:
                raise ValidationError(f"{a} is not an {atype} address (addressType)",
                                      field=f"addresses[{j}]")
        cond = ep.get("conditions") or {}
        topo = ep.get("topology") or {}  # v1beta1
        hints = ep.get("hints")
        ref = ep.get("targetRef")
        target = ""
        if isinstance(ref, dict) and ref.get("name"):
            kind = ref.get("kind") or "Pod"
            rns = ref.get("namespace") or ns
            target = f"{rns}/{ref['name']}" if kind == "Pod" else f"{kind}/{rns}/{ref['name']}"
        node_name = ep.get("nodeName") or topo.get("kubernetes.io/hostname") or ""
        zone = ep.get("zone") or topo.get(ZONE_LABEL) or ""
        if not isinstance(node_name, str):
            raise ValidationError(f"expected a string, got {_type_name(node_name)}",
                                  field="nodeName")
        if not isinstance(zone, str):
            raise ValidationError(f"expected a string, got {_type_name(zone)}", field="zone")
        return Endpoint(
            addresses=parsed,
            ready=_opt_bool(cond.get("ready"), "conditions.ready"),
            serving=_opt_bool(cond.get("serving"), "conditions.serving"),
            terminating=_opt_bool(cond.get("terminating"), "conditions.terminating"),
            node_name=node_name, zone=zone,
            hint_zones=_hint_names(hints, "forZones") if hints else (),
            hint_nodes=_hint_names(hints, "forNodes") if hints else (),
            target_ref=target)

    # ---- Ingress ----
    def ingress(self, obj: Obj) -> Ingress:
        ns, name = self.meta(obj)
        meta = obj["metadata"]
        spec = _map(obj.get("spec"), "spec")
        annotations = _str_map(meta.get("annotations"), "metadata.annotations")
        klass = _str(spec.get("ingressClassName"), "spec.ingressClassName") or annotations.get(
            "kubernetes.io/ingress.class", "")
        paths: list[IngressPath] = []

        def backend(b: Any, field: str, host: str, path: str) -> None:
            svc = _map(_map(b, field).get("service"), field + ".service")
            if not svc:
                return  # a resource backend: not a Service
            port = _map(svc.get("port"), field + ".service.port")
            target: int | str = (
                _port(port["number"], field + ".service.port.number")
                if port.get("number") is not None
                else _str(port.get("name"), field + ".service.port.name"))
            paths.append(IngressPath(host=host, path=path,
                                     service_name=_str(svc.get("name"), field + ".service.name"),
                                     service_port=target))

        if spec.get("defaultBackend"):
            backend(spec["defaultBackend"], "spec.defaultBackend", "", "")
        for i, rule in enumerate(_list(spec.get("rules"), "spec.rules")):
            rule = _map(rule, f"spec.rules[{i}]")
            host = _str(rule.get("host"), f"spec.rules[{i}].host")
            http = _map(rule.get("http"), f"spec.rules[{i}].http")
            for j, p in enumerate(_list(http.get("paths"), f"spec.rules[{i}].http.paths")):
                pp = f"spec.rules[{i}].http.paths[{j}]"
                p = _map(p, pp)
                backend(p.get("backend"), pp + ".backend", host,
                        _str(p.get("path"), pp + ".path", "/"))
        status = _map(obj.get("status"), "status")
        lb = _map(status.get("loadBalancer"), "status.loadBalancer")
        ips = tuple(
            self.ip(ing["ip"], f"status.loadBalancer.ingress[{i}].ip")
            for i, ing in enumerate(_list(lb.get("ingress"), "status.loadBalancer.ingress"))
            if isinstance(ing, dict) and ing.get("ip"))
        return Ingress(namespace=ns, name=name, ingress_class=klass, paths=tuple(paths),
                       lb_ips=ips, annotations=annotations)

    # ---- IngressClass, ConfigMap, LoadBalancerProfile ----
    def ingress_class(self, obj: Obj) -> IngressClass:
        _, name = self.meta(obj, namespaced=False)
        meta = obj["metadata"]
        spec = _map(obj.get("spec"), "spec")
        ann = _str_map(meta.get("annotations"), "metadata.annotations")
        return IngressClass(
            name=name, controller=_str(spec.get("controller"), "spec.controller"),
            default=ann.get("ingressclass.kubernetes.io/is-default-class", "") == "true")

    def config_map(self, obj: Obj, locate: Any = None) -> ConfigMap:
        ns, name = self.meta(obj)
        meta = obj["metadata"]
        data = _map(obj.get("data"), "data")
        values: dict[str, str] = {}
        for k, v in data.items():
            field = key_path("data", str(k))
            if isinstance(v, bool):  # a YAML `true` where the API wants a string
                raise ValidationError(
                    f"expected a string, got a boolean (quote it: \"{str(v).lower()}\"); the "
                    "API server rejects a ConfigMap whose data values are not strings",
                    field=field)
            values[str(k)] = _str(v, field)
        files: dict[str, object] = {}
        for k, text in values.items():
            parsed = _config_file(k, text)
            if parsed is not None:
                files[k] = parsed
        return ConfigMap(namespace=ns, name=name, data=values,
                         labels=_str_map(meta.get("labels"), "metadata.labels"), locate=locate,
                         files=files)

    def lb_profile(self, obj: Obj) -> LoadBalancerProfile:
        meta = _map(obj.get("metadata"), "metadata")
        spec = _map(obj.get("spec"), "spec")
        known = {"provider", "services", "loadBalancerClass", "mode", "proxyProtocol",
                 "healthCheck", "pool", "sourceAddress"}
        for key in spec:
            if key not in known:
                raise ValidationError(
                    f"unknown field (known: {', '.join(sorted(known))})",
                    field=key_path("spec", str(key)))
        hc = _map(spec.get("healthCheck"), "spec.healthCheck")
        for key in hc:
            if key not in ("port", "path"):
                raise ValidationError("unknown field (known: path, port)",
                                      field=key_path("spec.healthCheck", str(key)))
        src = spec.get("sourceAddress")
        pp = spec.get("proxyProtocol")
        if pp is False:  # YAML `none`-ish spellings people write
            pp = "none"
        kwargs: dict[str, Any] = dict(
            name=_str(meta.get("name"), "metadata.name", "default") or "default",
            provider=_str(spec.get("provider"), "spec.provider"),
            services=tuple(_str(x, f"spec.services[{i}]") for i, x in
                           enumerate(_list(spec.get("services"), "spec.services"))),
            load_balancer_class=_str(spec.get("loadBalancerClass"), "spec.loadBalancerClass"),
            mode=_str(spec.get("mode"), "spec.mode"),
            proxy_protocol=_str(pp, "spec.proxyProtocol"),
            health_check_port=_str(hc.get("port"), "spec.healthCheck.port"),
            health_check_path=_str(hc.get("path"), "spec.healthCheck.path"),
            pool=_str(spec.get("pool"), "spec.pool"),
            source_address=self.ip(src, "spec.sourceAddress") if src else None)
        prof: LoadBalancerProfile = _model(LoadBalancerProfile, "", **kwargs)
        return prof

    # ---- Gateway API (gateway.networking.k8s.io) and implementation policies ----
    def gateway_class(self, obj: Obj) -> GatewayClass:
        _, name = self.meta(obj, namespaced=False)
        spec = _map(obj.get("spec"), "spec")
        return GatewayClass(name=name,
                            controller_name=_str(spec.get("controllerName"),
                                                 "spec.controllerName"))

    def gateway(self, obj: Obj) -> Gateway:
        ns, name = self.meta(obj)
        spec = _map(obj.get("spec"), "spec")
        ports: list[int] = []
        for i, lst in enumerate(_list(spec.get("listeners"), "spec.listeners")):
            lst = _map(lst, f"spec.listeners[{i}]")
            proto = _str(lst.get("protocol"), f"spec.listeners[{i}].protocol", "HTTP")
            if proto in ("HTTP", "HTTPS"):
                ports.append(_port(lst.get("port"), f"spec.listeners[{i}].port"))
        return Gateway(namespace=ns, name=name,
                       gateway_class=_str(spec.get("gatewayClassName"),
                                          "spec.gatewayClassName"),
                       listener_ports=tuple(ports))

    def http_route(self, obj: Obj) -> Ingress:
        """An HTTPRoute as an ``Ingress`` of kind HTTPRoute: every hostname x rule's first path
        match x Service backendRef in the route's namespace (cross-namespace backends need a
        ReferenceGrant and are left out with a note by explain's discovery)."""
        ns, name = self.meta(obj)
        spec = _map(obj.get("spec"), "spec")
        parents: list[str] = []
        for i, ref in enumerate(_list(spec.get("parentRefs"), "spec.parentRefs")):
            ref = _map(ref, f"spec.parentRefs[{i}]")
            kind = _str(ref.get("kind"), f"spec.parentRefs[{i}].kind", "Gateway")
            if kind != "Gateway":
                continue
            pns = _str(ref.get("namespace"), f"spec.parentRefs[{i}].namespace", ns) or ns
            parents.append(f"{pns}/{_str(ref.get('name'), f'spec.parentRefs[{i}].name')}")
        hosts = [_str(h, f"spec.hostnames[{i}]")
                 for i, h in enumerate(_list(spec.get("hostnames"), "spec.hostnames"))] or [""]
        paths: list[IngressPath] = []
        for i, rule in enumerate(_list(spec.get("rules"), "spec.rules")):
            rp = f"spec.rules[{i}]"
            rule = _map(rule, rp)
            path = "/"
            for j, m in enumerate(_list(rule.get("matches"), rp + ".matches")[:1]):
                pm = _map(_map(m, f"{rp}.matches[{j}]").get("path"), f"{rp}.matches[{j}].path")
                path = _str(pm.get("value"), f"{rp}.matches[{j}].path.value", "/") or "/"
            for j, b in enumerate(_list(rule.get("backendRefs"), rp + ".backendRefs")):
                bp = f"{rp}.backendRefs[{j}]"
                b = _map(b, bp)
                if _str(b.get("kind"), bp + ".kind", "Service") != "Service" or \
                        _str(b.get("group"), bp + ".group", "") not in ("", "core"):
                    continue
                if _str(b.get("namespace"), bp + ".namespace", ns) not in ("", ns):
                    continue
                port = _port(b.get("port"), bp + ".port")
                svc = _str(b.get("name"), bp + ".name")
                paths.extend(IngressPath(host=h, path=path, service_name=svc, service_port=port)
                             for h in hosts)
        return Ingress(namespace=ns, name=name, paths=tuple(paths), kind="HTTPRoute",
                       parents=tuple(parents),
                       annotations=_str_map(obj["metadata"].get("annotations"),
                                            "metadata.annotations"))

    def policy(self, obj: Obj, locate: Any = None) -> PolicyObject:
        ns, name = self.meta(obj)
        spec = _map(obj.get("spec"), "spec")
        refs = list(_list(spec.get("targetRefs"), "spec.targetRefs"))
        if spec.get("targetRef") is not None:
            refs.append(spec["targetRef"])
        targets = []
        for i, r in enumerate(refs):
            r = _map(r, f"spec.targetRefs[{i}]")
            targets.append(f"{_str(r.get('kind'), f'spec.targetRefs[{i}].kind')}/{ns}/"
                           f"{_str(r.get('name'), f'spec.targetRefs[{i}].name')}")
        return PolicyObject(kind=str(obj.get("kind")), namespace=ns, name=name,
                            targets=tuple(targets), obj=obj, locate=locate)

    # ---- ServiceCIDR ----
    def service_cidrs(self, obj: Obj) -> tuple[IPNetwork, ...]:
        self.meta(obj, namespaced=False)
        spec = _map(obj.get("spec"), "spec")
        return tuple(self.network(c, f"spec.cidrs[{i}]")
                     for i, c in enumerate(_list(spec.get("cidrs"), "spec.cidrs")))

    # ---- kube-apiserver's --service-cluster-ip-range ----
    def apiserver_service_cidrs(self, obj: Obj) -> tuple[IPNetwork, ...]:
        """The CIDRs of ``--service-cluster-ip-range`` (one, or one per family for a dual-stack
        cluster) when ``obj`` is a kube-apiserver Pod (kubeadm's static pod), else ()."""
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list):
            return ()
        out: list[IPNetwork] = []
        for ci, c in enumerate(spec["containers"]):
            if not isinstance(c, dict):
                continue
            words = [("command", j, w) for j, w in enumerate(c.get("command") or ())] + [
                ("args", j, w) for j, w in enumerate(c.get("args") or ())]
            if not any(isinstance(w, str) and "kube-apiserver" in w for _, _, w in words):
                continue
            for key, j, w in words:
                if not isinstance(w, str) or not w.startswith(_APISERVER_RANGE_FLAG + "="):
                    continue
                field = f"spec.containers[{ci}].{key}[{j}]"
                nets = tuple(self.network(t, field) for t in w.split("=", 1)[1].split(",")
                             if t.strip())
                if not nets or len(nets) > 2 or len({n.version for n in nets}) != len(nets):
                    # kube-apiserver's options validation (ServiceClusterIPRange)
                    raise ValidationError(
                        f"{w!r}: one CIDR, or one IPv4 and one IPv6 CIDR for a dual-stack "
                        "cluster", field=field)
                out.extend(nets)
        return tuple(out)

    # ---- KubeProxyConfiguration ----
    def kube_proxy(self, obj: Obj) -> KubeProxyConfig:
        """kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration, as kube-proxy reads it:
        ``masqueradeAll``/``masqueradeBit`` come from the section of the mode in use
        (``nftables.*`` in nftables mode, ``iptables.*`` otherwise; conversion.go), falling
        back to top-level fields some versions have."""
        mode = _str(obj.get("mode"), "mode") or "iptables"
        section_name = "nftables" if mode == "nftables" else "iptables"
        section = _map(obj.get(section_name), section_name)
        ipt = _map(obj.get("iptables"), "iptables")
        detect = _map(obj.get("detectLocal"), "detectLocal")
        conntrack = _map(obj.get("conntrack"), "conntrack")
        cidrs_text = _str(obj.get("clusterCIDR"), "clusterCIDR")
        cidrs = tuple(self.network(c, "clusterCIDR")
                      for c in cidrs_text.split(",") if c.strip())
        dlm = _str(obj.get("detectLocalMode"), "detectLocalMode")
        if dlm not in _DETECT_LOCAL_MODES:
            raise ValidationError(f"{dlm!r} is not one of {', '.join(_DETECT_LOCAL_MODES[1:])}",
                                  field="detectLocalMode")
        masq_all = _bool(section.get("masqueradeAll"), f"{section_name}.masqueradeAll", False)
        if not masq_all:
            masq_all = _bool(obj.get("masqueradeAll"), "masqueradeAll", False)
        bit_field = f"{section_name}.masqueradeBit"
        bit_raw = section.get("masqueradeBit")
        if bit_raw is None:
            bit_field, bit_raw = "masqueradeBit", obj.get("masqueradeBit")
        bit = 14 if bit_raw is None else _int(bit_raw, bit_field)
        if not 0 <= bit <= 31:
            raise ValidationError(f"{bit} is outside 0-31", field=bit_field)
        npa = tuple(_str(a, f"nodePortAddresses[{i}]").strip() for i, a in
                    enumerate(_list(obj.get("nodePortAddresses"), "nodePortAddresses")))
        if mode not in ("iptables", "nftables", "ipvs"):
            raise ValidationError(
                f"{mode!r}: sourceip models the iptables, nftables and ipvs modes", field="mode")
        # ipvs mode reads masqueradeAll/masqueradeBit from the iptables section, as above.
        ipvs = _map(obj.get("ipvs"), "ipvs")
        excl = tuple(_str(c, f"ipvs.excludeCIDRs[{i}]").strip() for i, c in
                     enumerate(_list(ipvs.get("excludeCIDRs"), "ipvs.excludeCIDRs")))
        cfg: KubeProxyConfig = _model(
            KubeProxyConfig, "", mode=mode, cluster_cidrs=cidrs, detect_local_mode=dlm,
            bridge_interface=_str(detect.get("bridgeInterface"), "detectLocal.bridgeInterface"),
            interface_name_prefix=_str(detect.get("interfaceNamePrefix"),
                                       "detectLocal.interfaceNamePrefix"),
            masquerade_all=masq_all, masquerade_bit=bit,
            localhost_node_ports=_bool(ipt.get("localhostNodePorts"),
                                       "iptables.localhostNodePorts", True),
            node_port_addresses=npa,
            conntrack_tcp_be_liberal=_bool(conntrack.get("tcpBeLiberal"),
                                           "conntrack.tcpBeLiberal", False),
            hostname_override=_str(obj.get("hostnameOverride"), "hostnameOverride"),
            ipvs_scheduler=_str(ipvs.get("scheduler"), "ipvs.scheduler"),
            ipvs_strict_arp=_bool(ipvs.get("strictARP"), "ipvs.strictARP", False),
            ipvs_exclude_cidrs=excl,
            version=self.kube_proxy_version(obj))
        return cfg

    def kube_proxy_version(self, obj: Obj) -> str:
        """The ``sourceip.dev/kubeProxyVersion`` annotation (``1.35``, ``v1.35.2``, ``master``)
        of a KubeProxyConfiguration, normalized to ``1.NN``; empty when absent."""
        meta = _map(obj.get("metadata"), "metadata")
        notes = _map(meta.get("annotations"), "metadata.annotations")
        field = "metadata.annotations[sourceip.dev/kubeProxyVersion]"
        raw = _str(notes.get(KUBE_PROXY_VERSION_ANNOTATION), field)
        if not raw.strip():
            return ""
        try:
            return kube_proxy_release_text(raw)
        except ValueError as exc:
            raise ValidationError(str(exc), field=field) from None

    # ---- NetworkProfile ----
    def profile(self, obj: Obj) -> NetworkProfile:
        meta = _map(obj.get("metadata"), "metadata")
        spec = _map(obj.get("spec"), "spec")
        base = NetworkProfile()
        attach = _str(spec.get("podAttach"), "spec.podAttach", base.pod_attach)
        if attach not in ("bridge", "routed"):
            raise ValidationError(f"{attach!r} is not bridge or routed", field="spec.podAttach")
        inter = _str(spec.get("interNode"), "spec.interNode", base.inter_node)
        if inter not in ("direct", "tunnel"):
            raise ValidationError(f"{inter!r} is not direct or tunnel", field="spec.interNode")
        known = {"podAttach", "bridgeName", "interNode", "tunnelDevice", "nodeInterface",
                 "egressMasquerade", "podCIDRs", "serviceCIDRs"}
        for key in spec:
            if key not in known:
                raise ValidationError(
                    f"unknown field (known: {', '.join(sorted(known))})",
                    field=key_path("spec", str(key)))
        return NetworkProfile(
            name=_str(meta.get("name"), "metadata.name", "default") or "default",
            pod_attach=attach,  # type: ignore[arg-type]
            bridge_name=_str(spec.get("bridgeName"), "spec.bridgeName", base.bridge_name),
            inter_node=inter,  # type: ignore[arg-type]
            tunnel_device=_str(spec.get("tunnelDevice"), "spec.tunnelDevice", base.tunnel_device),
            node_interface=_str(spec.get("nodeInterface"), "spec.nodeInterface",
                                base.node_interface),
            egress_masquerade=_bool(spec.get("egressMasquerade"), "spec.egressMasquerade",
                                    base.egress_masquerade),
            pod_cidrs=tuple(self.network(c, f"spec.podCIDRs[{i}]") for i, c in
                            enumerate(_list(spec.get("podCIDRs"), "spec.podCIDRs"))),
            service_cidrs=tuple(self.network(c, f"spec.serviceCIDRs[{i}]") for i, c in
                                enumerate(_list(spec.get("serviceCIDRs"), "spec.serviceCIDRs"))))


def _profile_notes(obj: Obj) -> list[str]:
    """The ``sourceip.dev/notes`` annotation of a NetworkProfile: one note a line."""
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    text = ann.get("sourceip.dev/notes") if isinstance(ann, dict) else None
    return [ln for ln in text.splitlines() if ln.strip()] if isinstance(text, str) else []


def _config_file(key: str, text: str) -> object | None:
    """A ConfigMap value that is a YAML/TOML configuration file (by its key's suffix), parsed;
    None when it is not one or does not parse."""
    import yaml

    low = key.lower()
    try:
        if low.endswith((".yaml", ".yml")):
            value = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        elif low.endswith(".toml"):
            import tomllib

            value = tomllib.loads(text)
        else:
            return None
    except (yaml.YAMLError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _opt_bool(v: Any, field: str) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    raise ValidationError(f"expected true or false, got {_type_name(v)}", field=field)


def _hint_names(hints: Any, key: str) -> tuple[str, ...]:
    items = _map(hints, "hints").get(key)
    if not items:
        return ()
    field = f"hints.{key}"
    return tuple(_str(_map(h, f"{field}[{j}]").get("name"), f"{field}[{j}].name")
                 for j, h in enumerate(_list(items, field)))


# ---------------------------------------------------------------------------------------------
# the whole cluster
# ---------------------------------------------------------------------------------------------

_KUBE_PROXY_API = "kubeproxy.config.k8s.io/"
_PROFILE_API = "sourceip.dev/"
_GATEWAY_API = "gateway.networking.k8s.io/"


def build_cluster(
    raws: Iterable[RawObject],
    *,
    node_port_range: NodePortRange = DEFAULT_NODE_PORT_RANGE,
    notes: Sequence[str] = (),
) -> Cluster:
    """Build a ``Cluster`` from objects, or raise the first ``InputError`` located at the
    object's file, line and field path.

    The cyclic garbage collector is paused meanwhile: loading allocates millions of dicts and
    frozen values and nothing cyclic, and its generation-2 passes made ``json.load`` of the
    150,000-pod benchmark 7x slower (16 s instead of 2.4 s)."""
    with _gc_paused():
        return _Builder(node_port_range).build(raws, notes)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cluster_from_objects(
    objs: Iterable[Obj],
    *,
    source: str = "<objects>",
    node_port_range: NodePortRange = DEFAULT_NODE_PORT_RANGE,
) -> Cluster:
    """Build a ``Cluster`` from API-shaped dicts (``kind: List`` dicts are expanded). Errors
    name ``source`` and the field path (there are no lines)."""
    def raws() -> Iterator[RawObject]:
        for i, obj in enumerate(objs):
            yield from expand(obj, origin=None, doc=i, source=source)

    return build_cluster(raws(), node_port_range=node_port_range)


class _Builder:
    def __init__(self, node_port_range: NodePortRange) -> None:
        self.conv = Converter(node_port_range=node_port_range)
        self.node_port_range = node_port_range
        self.notes: list[str] = []
        self.skipped: dict[str, int] = {}
        self.seen: dict[tuple[str, ...], RawObject] = {}

    def _unique(self, key: tuple[str, ...], raw: RawObject, what: str) -> None:
        first = self.seen.get(key)
        if first is not None:
            raise raw.locate(ValidationError(
                f"duplicate {what} (first at {first.describe()})", field="metadata.name"))
        self.seen[key] = raw

    def _skip(self, kind: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1

    def build(self, raws: Iterable[RawObject], notes: Sequence[str]) -> Cluster:
        self.notes.extend(notes)
        conv = self.conv
        by_kind: dict[str, list[RawObject]] = defaultdict(list)
        workloads: list[RawObject] = []
        kp_raw: RawObject | None = None
        kp_obj: Obj | None = None
        prof_raw: RawObject | None = None
        for raw in raws:
            obj = raw.obj
            kind = obj.get("kind")
            api = obj.get("apiVersion") or ""
            if not isinstance(api, str):
                raise raw.locate(ValidationError(f"expected a string, got {_type_name(api)}",
                                                 field="apiVersion"))
            if kind in ("Node", "Pod", "Service", "EndpointSlice", "Ingress", "ServiceCIDR"):
                if kind == "Ingress" and not api.startswith("networking.k8s.io/"):
                    self._skip(f"Ingress ({api})")
                    continue
                by_kind[kind].append(raw)  # type: ignore[index]
            elif kind == "KubeProxyConfiguration" and (not api or api.startswith(_KUBE_PROXY_API)):
                if kp_raw is not None:
                    raise raw.locate(ManifestError(
                        f"a second KubeProxyConfiguration (first at {kp_raw.describe()})",
                        field="kind"))
                kp_raw, kp_obj = raw, obj
            elif kind == "NetworkProfile" and (not api or api.startswith(_PROFILE_API)):
                if prof_raw is not None:
                    raise raw.locate(ManifestError(
                        f"a second NetworkProfile (first at {prof_raw.describe()})",
                        field="kind"))
                prof_raw = raw
            elif kind in ("GatewayClass", "Gateway", "HTTPRoute") and \
                    api.startswith(_GATEWAY_API):
                by_kind[kind].append(raw)
            elif kind == "ClientTrafficPolicy" and api.startswith("gateway.envoyproxy.io/"):
                by_kind["Policy"].append(raw)
            elif kind == "IngressClass" and api.startswith("networking.k8s.io/"):
                by_kind["IngressClass"].append(raw)
            elif kind == "LoadBalancerProfile" and (not api or api.startswith(_PROFILE_API)):
                by_kind["LoadBalancerProfile"].append(raw)
            elif kind == "ConfigMap" and not _is_kube_proxy_cm(obj):
                by_kind["ConfigMap"].append(raw)
            elif kind == "ConfigMap" and _is_kube_proxy_cm(obj):
                if kp_raw is not None:
                    raise raw.locate(ManifestError(
                        f"a second KubeProxyConfiguration (first at {kp_raw.describe()})",
                        field='data["config.conf"]'))
                kp_raw, kp_obj = raw, _embedded_kube_proxy(raw)
            else:
                self._skip(str(kind))
                if kind in WORKLOAD_KINDS:
                    workloads.append(raw)

        # cluster-scoped configuration first
        kube_proxy = KubeProxyConfig()
        if kp_raw is not None and kp_obj is not None:
            kube_proxy = self._convert(kp_raw, lambda: conv.kube_proxy(kp_obj), kp_obj)
        profile = NetworkProfile()
        if prof_raw is not None:
            profile = self._convert(prof_raw, lambda: conv.profile(prof_raw.obj))
            # notes a live reading left on the profile it proposed (sources/live.py), so that
            # its snapshot re-run offline says the same
            self.notes.extend(_profile_notes(prof_raw.obj))
        svc_cidrs: list[IPNetwork] = list(profile.service_cidrs)
        for raw in by_kind["ServiceCIDR"]:
            svc_cidrs.extend(self._convert(raw, lambda r=raw: conv.service_cidrs(r.obj)))
            name = raw.obj["metadata"]["name"]
            self._unique(("ServiceCIDR", name), raw, f"ServiceCIDR {name}")
        for raw in by_kind["Pod"]:
            svc_cidrs.extend(self._convert(raw, lambda r=raw: conv.apiserver_service_cidrs(r.obj)))
        if svc_cidrs != list(profile.service_cidrs):
            profile = dataclasses.replace(profile, service_cidrs=tuple(dict.fromkeys(svc_cidrs)))

        nodes: list[Node] = []
        for raw in by_kind["Node"]:
            node = self._convert(raw, lambda r=raw: conv.node(r.obj))
            self._unique(("Node", node.name), raw, f"Node {node.name}")
            nodes.append(node)
        node_map = {n.name: n for n in nodes}

        pods: list[Pod] = []
        for raw in by_kind["Pod"]:
            pod = self._convert(raw, lambda r=raw: conv.pod(r.obj, node_map))
            self._unique(("Pod", pod.namespace, pod.name), raw, f"Pod {pod.key}")
            pods.append(pod)

        services: list[Service] = []
        svc_raw: dict[str, RawObject] = {}
        publish: dict[str, bool] = {}
        for raw in by_kind["Service"]:
            svc, pub = self._convert(raw, lambda r=raw: conv.service(r.obj))
            self._unique(("Service", svc.namespace, svc.name), raw, f"Service {svc.key}")
            services.append(svc)
            svc_raw[svc.key] = raw
            publish[svc.key] = pub

        slices: list[EndpointSlice] = []
        fqdn = 0
        for raw in by_kind["EndpointSlice"]:
            es = self._convert(raw, lambda r=raw: conv.endpoint_slice(r.obj))
            if es is None:
                fqdn += 1
                continue
            self._unique(("EndpointSlice", es.namespace, es.name), raw,
                         f"EndpointSlice {es.namespace}/{es.name}")
            slices.append(es)
        if fqdn:
            self.skipped["EndpointSlice (FQDN)"] = fqdn

        ingresses: list[Ingress] = []
        for raw in by_kind["Ingress"]:
            ing = self._convert(raw, lambda r=raw: conv.ingress(r.obj))
            self._unique(("Ingress", ing.namespace, ing.name), raw,
                         f"Ingress {ing.namespace}/{ing.name}")
            ingresses.append(ing)

        classes: list[IngressClass] = []
        for raw in by_kind["IngressClass"]:
            ic = self._convert(raw, lambda r=raw: conv.ingress_class(r.obj))
            self._unique(("IngressClass", ic.name), raw, f"IngressClass {ic.name}")
            classes.append(ic)
        config_maps: list[ConfigMap] = []
        for raw in by_kind["ConfigMap"]:
            cm = self._convert(raw, lambda r=raw: conv.config_map(r.obj, r.locate))
            self._unique(("ConfigMap", cm.namespace, cm.name), raw, f"ConfigMap {cm.key}")
            config_maps.append(cm)
        gw_classes: list[GatewayClass] = []
        for raw in by_kind["GatewayClass"]:
            gc_ = self._convert(raw, lambda r=raw: conv.gateway_class(r.obj))
            self._unique(("GatewayClass", gc_.name), raw, f"GatewayClass {gc_.name}")
            gw_classes.append(gc_)
        gateways: list[Gateway] = []
        for raw in by_kind["Gateway"]:
            gw = self._convert(raw, lambda r=raw: conv.gateway(r.obj))
            self._unique(("Gateway", gw.namespace, gw.name), raw, f"Gateway {gw.key}")
            gateways.append(gw)
        for raw in by_kind["HTTPRoute"]:
            rt = self._convert(raw, lambda r=raw: conv.http_route(r.obj))
            self._unique(("HTTPRoute", rt.namespace, rt.name), raw, f"HTTPRoute {rt.key}")
            ingresses.append(rt)
        policies: list[PolicyObject] = []
        for raw in by_kind["Policy"]:
            pol = self._convert(raw, lambda r=raw: conv.policy(r.obj, r.locate))
            self._unique((pol.kind, pol.namespace, pol.name), raw,
                         f"{pol.kind} {pol.namespace}/{pol.name}")
            policies.append(pol)
        lb_profiles: list[LoadBalancerProfile] = []
        for raw in by_kind["LoadBalancerProfile"]:
            prof = self._convert(raw, lambda r=raw: conv.lb_profile(r.obj))
            self._unique(("LoadBalancerProfile", prof.name), raw,
                         f"LoadBalancerProfile {prof.name}")
            lb_profiles.append(prof)

        families = cluster_families(profile, kube_proxy, nodes, services)
        services = [self._convert(svc_raw[svc.key], lambda s=svc: init_ip_families(s, families))
                    for svc in services]
        if self.node_port_range is not None:
            # node_port_range=None means "as given" (kube-proxy's own test objects): no
            # API-server range checks (node ports, ClusterIPs in the service CIDRs: upstream's
            # IPv6 fake proxier has fd00:172:30::41 outside its fd00:10:96::/112) and nothing
            # allocated that kube-proxy would not see.
            services = self._allocate(services, svc_raw, profile.service_cidrs)
            self._check_service_cidrs(services, svc_raw, profile.service_cidrs)
        selected = _select_pods(services, pods)
        self._check_named_ports(services, svc_raw, selected)
        slices.extend(self._derive(services, slices, selected, publish, node_map))

        unexpanded = _workloads_without_pods(workloads, pods)
        if unexpanded:
            shown = ", ".join(unexpanded[:5]) + (", ..." if len(unexpanded) > 5 else "")
            self.notes.append(
                f"no Pods given for {len(unexpanded)} workload(s) ({shown}): pods are not "
                "expanded from workloads; include the Pods themselves (kubectl get pods -o yaml) "
                "or use --example")
        if conv.outside_range:
            lo, hi = self.node_port_range or DEFAULT_NODE_PORT_RANGE
            shown = "; ".join(conv.outside_range[:5]) + ("; ..." if len(conv.outside_range) > 5
                                                        else "")
            self.notes.append(
                f"node ports outside {lo}-{hi} accepted as read from a cluster (metadata.uid/"
                f"resourceVersion set: its API server allowed them): {shown}; pass the "
                "cluster's --service-node-port-range to check them")
        if conv.saw_ipv6 and kube_proxy.mode == "ipvs":
            # iptables and nftables modes build one ruleset per family (kubeproxy family=6)
            self.notes.append("IPv6 addresses are loaded; ipvs mode is modelled for IPv4 only")
        return Cluster(
            nodes=tuple(nodes), pods=tuple(pods), services=tuple(services),
            endpoint_slices=tuple(slices), ingresses=tuple(ingresses),
            ingress_classes=tuple(classes), config_maps=tuple(config_maps),
            lb_profiles=tuple(lb_profiles), gateway_classes=tuple(gw_classes),
            gateways=tuple(gateways), policies=tuple(policies), kube_proxy=kube_proxy,
            profile=profile, ip_families=families, notes=tuple(self.notes),
            skipped=dict(sorted(self.skipped.items())))

    @staticmethod
    def _convert(raw: RawObject, fn: Any, embedded: Obj | None = None) -> Any:
        try:
            return fn()
        except InputError as exc:
            if embedded is not None and embedded is not raw.obj:
                raise _locate_embedded(raw, exc) from None
            raise raw.locate(exc) from None

    # ---- what the API server would have allocated ----
    def _allocate(self, services: list[Service], svc_raw: dict[str, RawObject],
                  cidrs: Sequence[IPNetwork]) -> list[Service]:
        used_ports = {p.node_port for s in services for p in s.ports if p.node_port}
        used_ports.update(s.health_check_node_port for s in services if s.health_check_node_port)
        used_ips = {ip for s in services for ip in s.cluster_ips}
        lo, hi = self.node_port_range or DEFAULT_NODE_PORT_RANGE
        next_port = lo
        # one allocator per family (alloc.go serviceIPAllocatorsByFamily): the first service
        # CIDR of the family, else the default
        pools = {fam: next((c for c in cidrs if c.version == fam), DEFAULT_SERVICE_CIDRS[fam])
                 for fam in (4, 6)}
        next_ip = {4: 10, 6: 10}
        allocated: list[str] = []
        out: list[Service] = []

        def take_port() -> int:
            nonlocal next_port
            while next_port in used_ports:
                next_port += 1
            if next_port > hi:
                raise svc_raw[svc.key].locate(ValidationError(
                    f"no free node port left in {lo}-{hi} to allocate", field="spec.ports"))
            used_ports.add(next_port)
            return next_port

        for svc in services:
            changes: dict[str, Any] = {}
            missing = svc.families[len(svc.cluster_ips):]
            if (missing and not svc.headless and svc.type != "ExternalName"
                    and (svc.ports or svc.cluster_ips)):
                # allocClusterIPs: a ClusterIP for each ipFamilies entry without one
                new_ips = list(svc.cluster_ips)
                for fam in missing:
                    pool = pools[fam]
                    while True:
                        if next_ip[fam] >= pool.num_addresses - 1:
                            raise svc_raw[svc.key].locate(ValidationError(
                                f"no free ClusterIP left in {pool} to allocate",
                                field=f"spec.clusterIPs[{len(new_ips)}]"))
                        ip = pool.network_address + next_ip[fam]
                        next_ip[fam] += 1
                        if ip not in used_ips:
                            break
                    used_ips.add(ip)
                    new_ips.append(ip)
                    allocated.append(f"ClusterIP {ip} to {svc.key}")
                changes["cluster_ips"] = tuple(new_ips)
            wants_np = svc.type == "NodePort" or (
                svc.type == "LoadBalancer" and svc.allocate_lb_node_ports)
            if wants_np and any(not p.node_port for p in svc.ports):
                ports = []
                for p in svc.ports:
                    if not p.node_port:
                        p = dataclasses.replace(p, node_port=take_port())
                        allocated.append(f"nodePort {p.node_port} to {svc.key} port "
                                         f"{p.name or p.port}")
                    ports.append(p)
                changes["ports"] = tuple(ports)
            if svc.needs_health_check and not svc.health_check_node_port:
                changes["health_check_node_port"] = take_port()
                allocated.append(
                    f"healthCheckNodePort {changes['health_check_node_port']} to {svc.key}")
            out.append(dataclasses.replace(svc, **changes) if changes else svc)
        if allocated:
            shown = "; ".join(allocated[:8]) + ("; ..." if len(allocated) > 8 else "")
            self.notes.append(
                f"allocated what the API server would have (the manifests leave them unset): "
                f"{shown}")
        return out

    def _check_service_cidrs(self, services: list[Service], svc_raw: dict[str, RawObject],
                             cidrs: Sequence[IPNetwork]) -> None:
        if not cidrs:
            return
        families = {c.version for c in cidrs}
        for svc in services:
            for i, ip in enumerate(svc.cluster_ips):
                if ip.version in families and not any(ip in c for c in cidrs):
                    # allocIPs -> ipallocator Allocate's ErrNotInRange (alloc.go)
                    field = f"spec.clusterIPs[{i}]" if "clusterIPs" in (
                        svc_raw[svc.key].obj.get("spec") or {}) else "spec.clusterIP"
                    valid = ", ".join(str(c) for c in cidrs if c.version == ip.version)
                    raise svc_raw[svc.key].locate(ValidationError(
                        f"{ip} is outside the IPv{ip.version} service CIDRs ({valid}): the API "
                        "server rejects it (the provided IP is not in the valid range)",
                        field=field))

    def _check_named_ports(self, services: list[Service], svc_raw: dict[str, RawObject],
                           selected: dict[str, list[Pod]]) -> None:
        for svc in services:
            pods = selected.get(svc.key)
            if not pods:
                continue
            for i, p in enumerate(svc.ports):
                target = p.target_port
                if not isinstance(target, str):
                    continue
                if any(pod.port_named(target, p.protocol) for pod in pods):
                    continue
                names = ", ".join(pod.name for pod in pods[:3]) + (
                    ", ..." if len(pods) > 3 else "")
                raise svc_raw[svc.key].locate(ValidationError(
                    f"no selected pod ({names}) declares a {p.protocol.upper()} container "
                    f"port named {target!r}", field=f"spec.ports[{i}].targetPort"))

    # ---- the EndpointSlice controller ----
    def _derive(self, services: list[Service], given: list[EndpointSlice],
                selected: dict[str, list[Pod]], publish: dict[str, bool],
                nodes: Mapping[str, Node]) -> list[EndpointSlice]:
        have = {f"{s.namespace}/{s.service_name}" for s in given}
        out: list[EndpointSlice] = []
        derived_for: list[str] = []
        for svc in services:
            if svc.selector is None or svc.key in have or svc.type == "ExternalName":
                continue
            slices = derive_slices(svc, selected.get(svc.key, []), nodes,
                                   publish_not_ready=publish.get(svc.key, False))
            if slices:
                derived_for.append(svc.key)
            out.extend(slices)
        if derived_for:
            shown = ", ".join(derived_for[:5]) + (", ..." if len(derived_for) > 5 else "")
            self.notes.append(
                f"EndpointSlices derived from Pods for {len(derived_for)} Service(s) without "
                f"any EndpointSlice given ({shown})")
        return out


def cluster_families(profile: NetworkProfile, kube_proxy: KubeProxyConfig,
                     nodes: Sequence[Node], services: Sequence[Service]) -> tuple[int, ...]:
    """The IP families the cluster serves Services in, primary first (alloc.go's
    ``serviceIPAllocatorsByFamily`` and ``defaultServiceIPFamily``): those of the service CIDRs
    when any is given; otherwise what the input shows of a second family (kube-proxy's
    clusterCIDR, nodes' podCIDRs, Services' clusterIPs — a snapshot of a dual-stack cluster
    loads without its API server flags), IPv4 when it shows nothing."""
    if profile.service_cidrs:
        return tuple(dict.fromkeys(c.version for c in profile.service_cidrs))
    seen: dict[int, None] = {}
    for net in kube_proxy.cluster_cidrs:
        seen[net.version] = None
    for node in nodes:
        for net in node.pod_cidrs:
            seen[net.version] = None
    for svc in services:
        for ip in svc.cluster_ips:
            seen[ip.version] = None
    return tuple(seen) or (4,)


def init_ip_families(svc: Service, families: Sequence[int]) -> Service:
    """``svc`` with ``ipFamilyPolicy`` and ``ipFamilies`` defaulted as the API server does on
    create, for a cluster serving ``families`` (primary first); a ``ValidationError`` naming
    the field for what it rejects. Mirrors initIPFamilyFields
    (pkg/registry/core/service/storage/alloc.go, kubernetes commit b0d609f0): a dual-stack
    Service on a single-stack cluster is rejected (RequireDualStack: spec.ipFamilyPolicy; a
    family or ClusterIP of a family the cluster lacks: spec.ipFamilies[i] / spec.clusterIPs[i]);
    PreferDualStack and RequireDualStack get the cluster's second family appended."""
    if svc.type == "ExternalName":
        return svc
    policy = svc.ip_family_policy
    selectorless_headless = svc.headless and svc.selector is None
    if not policy:
        # headless + selectorless defaults to RequireDualStack, anything else to SingleStack
        policy = "RequireDualStack" if selectorless_headless else "SingleStack"
    names = list(svc.ip_families)
    if policy == "SingleStack":
        if len(svc.cluster_ips) == 2:
            raise ValidationError("must be 'RequireDualStack' or 'PreferDualStack' when multiple "
                                  "cluster IPs are specified", field="spec.ipFamilyPolicy")
        if len(names) == 2:
            raise ValidationError("must be 'RequireDualStack' or 'PreferDualStack' when multiple "
                                  "IP families are specified", field="spec.ipFamilyPolicy")
    for i, ip in enumerate(svc.cluster_ips):  # infer ipFamilies from clusterIPs
        if i >= len(names):
            if ip.version not in families:
                raise ValidationError(
                    f"{ip}: {family_name(ip.version)} is not configured on this cluster "
                    f"(service CIDRs: {_families_text(families)})", field=f"spec.clusterIPs[{i}]")
            names.append(family_name(ip.version))
    if selectorless_headless:
        if not names:
            names = [family_name(families[0])]
        if len(names) < 2 and policy != "SingleStack":
            names.append(family_name(10 - IP_FAMILY_NAMES[names[0]]))
        return dataclasses.replace(svc, ip_family_policy=policy, ip_families=tuple(names))
    if policy == "RequireDualStack" and len(families) < 2:
        raise ValidationError(
            "this cluster is not configured for dual-stack services (service CIDRs: "
            f"{_families_text(families)})", field="spec.ipFamilyPolicy")
    for i, name in enumerate(names):
        if IP_FAMILY_NAMES[name] not in families:
            raise ValidationError(
                f"{name} not configured on this cluster (service CIDRs: "
                f"{_families_text(families)})", field=f"spec.ipFamilies[{i}]")
    if not names:
        names = [family_name(families[0])]
    if policy != "SingleStack" and len(names) == 1 and len(families) == 2:
        names.append(family_name(10 - IP_FAMILY_NAMES[names[0]]))
    return dataclasses.replace(svc, ip_family_policy=policy, ip_families=tuple(names))


def _families_text(families: Sequence[int]) -> str:
    return " and ".join(family_name(f) for f in families) + " only" * (len(families) == 1)


def _dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _workloads_without_pods(workloads: Sequence[RawObject], pods: Sequence[Pod]) -> list[str]:
    """``Kind ns/name`` of each skipped workload whose pod template labels match no given Pod."""
    out: list[str] = []
    for raw in workloads:
        obj = raw.obj
        ns = _dig(obj, "metadata", "namespace") or "default"
        name = _dig(obj, "metadata", "name") or "?"
        spec = obj.get("spec")
        if obj.get("kind") == "CronJob":
            spec = _dig(spec, "jobTemplate", "spec")
        labels = _dig(spec, "template", "metadata", "labels")
        if isinstance(labels, dict) and labels and any(
                p.namespace == ns and all(p.labels.get(k) == v for k, v in labels.items())
                for p in pods):
            continue
        out.append(f"{obj.get('kind')} {ns}/{name}")
    return out


def _select_pods(services: Sequence[Service], pods: Sequence[Pod]) -> dict[str, list[Pod]]:
    """Pods matching each Service's selector in its namespace, indexed by label to stay fast."""
    index: dict[tuple[str, str, str], list[Pod]] = defaultdict(list)
    for pod in pods:
        for k, v in pod.labels.items():
            index[(pod.namespace, k, v)].append(pod)
    out: dict[str, list[Pod]] = {}
    for svc in services:
        if not svc.selector or svc.type == "ExternalName":
            continue
        candidates = [index.get((svc.namespace, k, v), []) for k, v in svc.selector.items()]
        smallest = min(candidates, key=len)
        sel = svc.selector.items()
        out[svc.key] = [p for p in smallest if all(p.labels.get(k) == v for k, v in sel)]
    return out


def derive_slices(svc: Service, pods: Sequence[Pod], nodes: Mapping[str, Node], *,
                  publish_not_ready: bool = False) -> list[EndpointSlice]:
    """EndpointSlices for ``svc`` from its selected ``pods``, as the EndpointSlice controller
    writes them (``pkg/controller/endpointslice/utils.go`` podToEndpoint / getEndpointPorts):

    * pods with an IP of the slice's family that are not Succeeded/Failed;
    * ``serving`` = Ready (or publishNotReadyAddresses), ``terminating`` = deletionTimestamp
      set, ``ready`` = serving and not terminating (or publishNotReadyAddresses);
    * each Service port's targetPort resolved per pod; a named port the pod does not declare
      (with that protocol) is left out for that pod; pods are grouped into one slice per
      address family and resolved port set.
    """
    if svc.ip_families:
        families = [4 if f == "IPv4" else 6 for f in svc.ip_families]
    elif svc.cluster_ips:
        families = list(dict.fromkeys(ip.version for ip in svc.cluster_ips))
    else:
        families = sorted({ip.version for p in pods for ip in p.ips})
    groups: dict[tuple[int, tuple[tuple[str, str, int], ...]], list[Endpoint]] = {}
    for pod in sorted(pods, key=lambda p: p.name):
        if pod.phase in ("Succeeded", "Failed") or not pod.ips:
            continue
        ports: list[tuple[str, str, int]] = []
        for sp in svc.ports:
            target = sp.effective_target
            if isinstance(target, str):
                cp = pod.port_named(target, sp.protocol)
                if cp is None:
                    continue
                target = cp.container_port
            ports.append((sp.name, sp.protocol, target))
        if svc.ports and not ports:
            continue
        serving = publish_not_ready or pod.ready
        ready = publish_not_ready or (serving and not pod.terminating)
        node = nodes.get(pod.node_name)
        for fam in families:
            addr = next((ip for ip in pod.ips if ip.version == fam), None)
            if addr is None:
                continue
            groups.setdefault((fam, tuple(ports)), []).append(Endpoint(
                addresses=(addr,), ready=ready, serving=serving, terminating=pod.terminating,
                node_name=pod.node_name, zone=node.zone if node is not None else "",
                target_ref=pod.key))
    out: list[EndpointSlice] = []
    counters: dict[int, int] = defaultdict(int)
    for (fam, port_key), eps in groups.items():
        n = counters[fam]
        counters[fam] += 1
        out.append(EndpointSlice(
            namespace=svc.namespace, name=f"{svc.name}-derived-ipv{fam}" + (f"-{n}" if n else ""),
            service_name=svc.name, address_type="IPv4" if fam == 4 else "IPv6",
            endpoints=tuple(eps),
            ports=tuple(EndpointPort(port=port, name=name, protocol=proto)
                        for name, proto, port in port_key),
            derived=True))
    return out


# ---------------------------------------------------------------------------------------------
# kube-proxy's config as kubeadm stores it: ConfigMap kube-proxy, data["config.conf"]
# ---------------------------------------------------------------------------------------------

def _is_kube_proxy_cm(obj: Obj) -> bool:
    meta = obj.get("metadata")
    data = obj.get("data")
    return (isinstance(meta, dict) and meta.get("name") == "kube-proxy"
            and isinstance(data, dict) and isinstance(data.get("config.conf"), str))


_CM_FIELD = 'data["config.conf"]'


def _embedded_kube_proxy(raw: RawObject) -> Obj:
    import yaml

    text = raw.obj["data"]["config.conf"]
    try:
        value = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        err = ManifestError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                            field=_CM_FIELD)
        if mark is not None:
            err.line = _embedded_line(raw, mark.line + 1)
        raise raw.locate(err) from None
    if not isinstance(value, dict) or value.get("kind") != "KubeProxyConfiguration":
        raise raw.locate(ManifestError("is not a KubeProxyConfiguration", field=_CM_FIELD))
    return value


def _embedded_line(raw: RawObject, inner: int) -> int | None:
    if raw.origin is None:
        return None
    path = (*raw.prefix, "data", "config.conf")
    try:
        base = raw.origin.block_text_line(raw.doc, path)
    except Exception:
        base = None
    if base is not None:
        return base + inner
    return raw.where(_CM_FIELD)[1]


def _locate_embedded(raw: RawObject, exc: InputError) -> InputError:
    """An error inside the embedded config: the field reads ``data["config.conf"].<path>`` and
    the line is the line inside the ConfigMap's block scalar."""
    import yaml

    inner_field = exc.field
    exc.field = _join(_CM_FIELD, inner_field)
    text = raw.obj["data"]["config.conf"]
    inner_line = None
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        inner_line = _node_line(node, parse_path(inner_field))
    except Exception:
        pass
    line = _embedded_line(raw, inner_line) if inner_line is not None else None
    exc.located(file=raw.source, line=line if line is not None else raw.where(_CM_FIELD)[1])
    return exc


def _node_line(node: Any, path: Sequence[PathSeg]) -> int | None:
    """1-based line of the deepest part of ``path`` under a composed YAML node (a mapping
    member is located at its key)."""
    import yaml

    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for seg in path:
        if isinstance(node, yaml.MappingNode) and isinstance(seg, str):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == seg:
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) \
                and 0 <= seg < len(node.value):
            node = node.value[seg]
            line = node.start_mark.line + 1
        else:
            return line
    return line
