"""Which ingress controllers run in a cluster, how each is configured, which Ingresses
it serves.

A controller is recognised by its pods' container image or first argument, configured as the
controller itself reads its configuration (ingress-nginx and haproxytech: the ConfigMap named by
``--configmap``; Traefik: its ``--entryPoints...`` arguments), and matched to Ingresses the way
the controllers match them: ``spec.ingressClassName`` -> IngressClass ``spec.controller`` ->
the controller's ``--controller-class``; the legacy ``kubernetes.io/ingress.class`` annotation
-> the controller's ``--ingress-class``; an Ingress without a class -> the default IngressClass.
(ingress-nginx ``internal/ingress/controller/store/store.go`` / ``internal/ingress/annotations/
class``; haproxytech ``pkg/controller/...``; Traefik ``pkg/provider/kubernetes/ingress``.)

What differs per controller is the ``KNOWN`` table below; ``parse_settings`` (one module per
controller) reads the configuration itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sourceip.cluster import Cluster, ConfigMap, Ingress, IngressPath, Pod, Service
from sourceip.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerKind:
    """How to recognise one controller product and where its configuration lives."""

    controller: str  # the name used by sourceip.ingress (ingress-nginx, haproxy, traefik)
    images: tuple[str, ...]  # substrings of the container image
    entrypoints: tuple[str, ...]  # first container argument
    controller_class: str  # the default --controller-class (IngressClass spec.controller)
    ingress_class: str  # the default --ingress-class (legacy annotation value)
    class_flags: tuple[str, ...]  # flags that set the IngressClass controller value
    legacy_class_flags: tuple[str, ...]  # flags that set the annotation value
    configmap_flag: str  # the flag naming the ConfigMap ("" when configured by args)
    default_configmaps: tuple[str, ...]  # ConfigMap names the Helm charts use
    gateway_controller: str = ""  # GatewayClass spec.controllerName it implements
    per_gateway: bool = False  # one data plane per Gateway (Envoy Gateway's proxies)


# One row per controller product, cited: ingress-nginx cmd/nginx/flags.go (--configmap,
# --controller-class default "k8s.io/ingress-nginx", --ingress-class default "nginx");
# haproxytech kubernetes-ingress pkg/utils/flags.go (--configmap, --ingress.class,
# controller value "haproxy.org/ingress-controller/<class>"); Traefik
# pkg/provider/kubernetes/ingress/kubernetes.go (traefik.io/ingress-controller,
# --providers.kubernetesingress.ingressclass).
KNOWN: tuple[ControllerKind, ...] = (
    ControllerKind(controller="ingress-nginx", images=("ingress-nginx/controller",),
                   entrypoints=("/nginx-ingress-controller",),
                   controller_class="k8s.io/ingress-nginx", ingress_class="nginx",
                   class_flags=("--controller-class",), legacy_class_flags=("--ingress-class",),
                   configmap_flag="--configmap",
                   default_configmaps=("ingress-nginx-controller",)),
    ControllerKind(controller="haproxy", images=("haproxytech/kubernetes-ingress",),
                   entrypoints=("/haproxy-ingress-controller",),
                   controller_class="haproxy.org/ingress-controller/haproxy",
                   ingress_class="haproxy", class_flags=(),
                   legacy_class_flags=("--ingress.class",), configmap_flag="--configmap",
                   default_configmaps=("haproxy-kubernetes-ingress",)),
    ControllerKind(controller="traefik", images=("traefik:", "traefik/traefik", "/traefik"),
                   entrypoints=("traefik", "/entrypoint.sh"),
                   controller_class="traefik.io/ingress-controller", ingress_class="traefik",
                   class_flags=(),
                   legacy_class_flags=("--providers.kubernetesingress.ingressclass",),
                   configmap_flag="", default_configmaps=(),
                   gateway_controller="traefik.io/gateway-controller"),
    # Envoy Gateway's data plane: one Envoy Deployment per Gateway, labelled with the Gateway
    # it serves (envoy-gateway internal/infrastructure/kubernetes/proxy/resource.go
    # envoyLabels: gateway.envoyproxy.io/owning-gateway-{name,namespace}); configured by the
    # ClientTrafficPolicy attached to that Gateway.
    ControllerKind(controller="envoy-gateway", images=("envoyproxy/envoy",), entrypoints=(),
                   controller_class="", ingress_class="", class_flags=(),
                   legacy_class_flags=(), configmap_flag="", default_configmaps=(),
                   gateway_controller="gateway.envoyproxy.io/gatewayclass-controller",
                   per_gateway=True),
)
OWNING_GATEWAY = ("gateway.envoyproxy.io/owning-gateway-namespace",
                  "gateway.envoyproxy.io/owning-gateway-name")


@dataclass(frozen=True, slots=True, kw_only=True)
class Controller:
    """One ingress controller deployment found in the cluster."""

    kind: ControllerKind
    namespace: str
    pods: tuple[Pod, ...]
    args: tuple[str, ...]
    settings: Any  # the controller's settings value (sourceip.ingress.parse_settings)
    settings_from: str  # "ConfigMap ns/name", "container args", "defaults (...)"
    services: tuple[Service, ...]  # Services selecting the controller pods
    controller_class: str
    ingress_class: str
    gateways: tuple[str, ...] = ()  # Gateways (ns/name) whose routes this data plane serves

    @property
    def name(self) -> str:
        return self.kind.controller

    @property
    def label(self) -> str:
        return f"{self.kind.controller} ({self.namespace})"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressRoute:
    """One Ingress rule's backend and the controller that serves it (None: no controller)."""

    ingress: Ingress
    path: IngressPath
    service: Service | None
    controller: Controller | None
    finding: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    controllers: tuple[Controller, ...] = ()
    routes: tuple[IngressRoute, ...] = ()
    findings: tuple[str, ...] = field(default=())


def _flag(args: Iterable[str], names: Iterable[str]) -> str | None:
    """The value of the last ``--name=value`` / ``--name value`` among ``args``."""
    names = tuple(names)
    found: str | None = None
    args = list(args)
    for i, a in enumerate(args):
        for n in names:
            if a.startswith(n + "="):
                found = a[len(n) + 1:]
            elif a == n and i + 1 < len(args):
                found = args[i + 1]
    return found


def _kind_of(pod: Pod) -> tuple[ControllerKind, tuple[str, ...]] | None:
    for c in pod.containers:
        for k in KNOWN:
            if any(i in c.image for i in k.images) or (c.args and c.args[0] in k.entrypoints):
                return k, c.args
    return None


def _expand(value: str, pod: Pod) -> str:
    return value.replace("$(POD_NAMESPACE)", pod.namespace)


def _settings(kind: ControllerKind, pod: Pod, args: tuple[str, ...],
              cluster: Cluster) -> tuple[Any, str, list[str]]:
    from sourceip.ingress import default_settings, parse_settings

    findings: list[str] = []
    if kind.configmap_flag:
        ref = _flag(args, (kind.configmap_flag,))
        cm: ConfigMap | None = None
        if ref:
            ref = _expand(ref, pod)
            key = ref if "/" in ref else f"{pod.namespace}/{ref}"
            cm = cluster.config_map(key)
            if cm is None:
                findings.append(f"{kind.controller} in {pod.namespace}: {kind.configmap_flag}="
                                f"{key} names a ConfigMap that is not in the input: its "
                                "defaults are assumed (kubectl get configmap -n "
                                f"{key.split('/')[0]} {key.split('/')[1]} -o yaml)")
        else:
            for name in kind.default_configmaps:
                cm = cluster.config_map(f"{pod.namespace}/{name}")
                if cm is not None:
                    break
        if cm is None:
            return default_settings(kind.controller), "defaults (no ConfigMap)", findings
        try:
            return parse_settings(kind.controller, cm.data), f"ConfigMap {cm.key}", findings
        except InputError as exc:
            if cm.locate is not None:
                raise cm.locate(exc) from None
            raise
    if kind.per_gateway:
        gw = _owning_gateway(pod)
        for pol in cluster.policies:
            if pol.kind == "ClientTrafficPolicy" and f"Gateway/{gw}" in pol.targets:
                try:
                    return (parse_settings(kind.controller, pol.obj),
                            f"ClientTrafficPolicy {pol.namespace}/{pol.name}", findings)
                except InputError as exc:
                    if pol.locate is not None:
                        raise pol.locate(exc) from None
                    raise
        return default_settings(kind.controller), "defaults (no ClientTrafficPolicy)", findings
    conf = _flag(args, ("--configFile", "--configfile"))
    if conf:  # Traefik's static configuration file, mounted from a ConfigMap of its namespace
        base = conf.rsplit("/", 1)[-1]
        for cm in cluster.config_maps:
            if cm.namespace == pod.namespace and isinstance(cm.files.get(base), dict):
                try:
                    return (parse_settings(kind.controller, cm.files[base]),  # type: ignore[arg-type]
                            f"ConfigMap {cm.key} ({base})", findings)
                except InputError as exc:
                    exc.field = f'data["{base}"]'  # the file's own line is not tracked
                    if cm.locate is not None:
                        raise cm.locate(exc) from None
                    raise
        findings.append(f"{kind.controller} in {pod.namespace}: --configFile={conf} is not in "
                        "any ConfigMap of the input: only its command-line arguments are read")
    return parse_settings(kind.controller, list(args)), "container args", findings


def _owning_gateway(pod: Pod) -> str:
    ns, name = (pod.labels.get(k, "") for k in OWNING_GATEWAY)
    return f"{ns}/{name}" if ns and name else ""


def discover(cluster: Cluster) -> Discovery:
    """The controllers in ``cluster`` and every Ingress route with its controller.

    Raises ``InputError`` (located at the ConfigMap key) for a controller setting the
    controller would reject; routes whose Service or controller is missing are findings."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[Pod]] = {}
    kinds: dict[tuple[str, str, tuple[str, ...]], ControllerKind] = {}
    for pod in cluster.pods:
        if not pod.containers:
            continue
        hit = _kind_of(pod)
        if hit is None:
            continue
        kind, args = hit
        if kind.per_gateway:
            if not _owning_gateway(pod):
                continue  # an Envoy that no Gateway owns (a sidecar, a standalone proxy)
            args = (_owning_gateway(pod),)  # one data plane per Gateway
        key = (kind.controller, pod.namespace, args)
        groups.setdefault(key, []).append(pod)
        kinds[key] = kind
    controllers: list[Controller] = []
    findings: list[str] = []
    for key, pods in groups.items():
        kind = kinds[key]
        args = key[2]
        settings, src, f = _settings(kind, pods[0], args, cluster)
        findings.extend(f)
        services = tuple(
            s for s in cluster.services
            if s.namespace == pods[0].namespace and s.selector
            and any(all(p.labels.get(k) == v for k, v in s.selector.items()) for p in pods)
            and s.proxied)
        if kind.per_gateway:
            gateways: tuple[str, ...] = (args[0],)
        elif kind.gateway_controller:
            classes = {c.name for c in cluster.gateway_classes
                       if c.controller_name == kind.gateway_controller}
            gateways = tuple(g.key for g in cluster.gateways if g.gateway_class in classes)
        else:
            gateways = ()
        controllers.append(Controller(
            kind=kind, namespace=pods[0].namespace, pods=tuple(pods), args=args,
            settings=settings, settings_from=src, services=services,
            controller_class=_flag(args, kind.class_flags) or kind.controller_class,
            ingress_class=_flag(args, kind.legacy_class_flags) or kind.ingress_class,
            gateways=gateways))
    default_class = next((c for c in cluster.ingress_classes if c.default), None)
    routes: list[IngressRoute] = []
    for ing in cluster.ingresses:
        ctrl, why = _controller_for(ing, controllers, cluster, default_class)
        for p in ing.paths:
            svc = cluster.service_by_key.get(f"{ing.namespace}/{p.service_name}")
            finding = ""
            if svc is None:
                finding = (f"{ing.kind} {ing.key}: backend Service "
                           f"{ing.namespace}/{p.service_name} does not exist (the controller "
                           "answers 503 for this path)")
            elif ctrl is None:
                finding = f"{ing.kind} {ing.key}: {why}" if ing.kind == "Ingress" else why
            if finding:
                findings.append(finding)
            routes.append(IngressRoute(ingress=ing, path=p, service=svc, controller=ctrl,
                                       finding=finding))
    return Discovery(controllers=tuple(controllers), routes=tuple(routes),
                     findings=tuple(dict.fromkeys(findings)))


def _controller_for(ing: Ingress, controllers: list[Controller], cluster: Cluster,
                    default_class: Any) -> tuple[Controller | None, str]:
    if ing.kind == "HTTPRoute":
        return _gateway_controller(ing, controllers, cluster)
    name = ing.ingress_class
    by_annotation = bool(name) and "kubernetes.io/ingress.class" in ing.annotations \
        and ing.annotations.get("kubernetes.io/ingress.class") == name
    if by_annotation:
        for c in controllers:
            if c.ingress_class == name:
                return c, ""
        return None, (f"no controller in the input serves ingress class {name!r} "
                      "(kubernetes.io/ingress.class annotation)")
    klass = None
    if name:
        klass = next((c for c in cluster.ingress_classes if c.name == name), None)
        if klass is None:
            # Without the IngressClass object, controllers still match their own class name.
            for c in controllers:
                if c.ingress_class == name:
                    return c, ""
            return None, f"IngressClass {name!r} is not in the input and no controller uses it"
    else:
        klass = default_class
        if klass is None:
            return None, ("no ingressClassName and no default IngressClass: no controller "
                          "serves it (ingress-nginx needs --watch-ingress-without-class)")
    for c in controllers:
        if c.controller_class == klass.controller:
            return c, ""
    return None, (f"IngressClass {klass.name} names controller {klass.controller!r}, which is "
                  "not running in the input (include its pods: kubectl get pods -A -o yaml)")


def _gateway_controller(route: Ingress, controllers: list[Controller],
                        cluster: Cluster) -> tuple[Controller | None, str]:
    """The data plane serving an HTTPRoute: its parent Gateway's class names the controller
    (GatewayClass spec.controllerName); Envoy Gateway runs one Envoy per Gateway."""
    if not route.parents:
        return None, f"HTTPRoute {route.key} has no Gateway parentRef"
    why = ""
    for parent in route.parents:
        gw = next((g for g in cluster.gateways if g.key == parent), None)
        if gw is None:
            why = f"its Gateway {parent} is not in the input"
            continue
        gc = next((c for c in cluster.gateway_classes if c.name == gw.gateway_class), None)
        if gc is None:
            why = f"GatewayClass {gw.gateway_class!r} of Gateway {parent} is not in the input"
            continue
        for c in controllers:
            if c.kind.gateway_controller == gc.controller_name and parent in c.gateways:
                return c, ""
        why = (f"no data plane of {gc.controller_name!r} for Gateway {parent} is in the input "
               "(include its pods: kubectl get pods -A -o yaml)")
    return None, f"HTTPRoute {route.key}: {why}"
