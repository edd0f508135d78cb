"""Which load balancer is in front of a Service: ``detect_profile``.

Order: a ``LoadBalancerProfile`` that lists the Service, then one for its
``spec.loadBalancerClass``, then a catch-all profile (neither set); then the Service's own
annotations and ``spec.loadBalancerClass``; then sourceip's default (``generic``). Explicit
profile fields win over annotations, annotations over the provider row. The result is a
``LoadBalancerProfile`` with every field filled in and a sentence saying how it was decided.
"""

from __future__ import annotations

from dataclasses import replace

from sourceip.cluster import Cluster, LoadBalancerProfile, Service
from sourceip.loadbalancer.providers import PROVIDERS

AWS = "service.beta.kubernetes.io/aws-load-balancer-"
AWS_TYPE = AWS + "type"
AWS_TARGET_TYPE = AWS + "nlb-target-type"
AWS_PROXY_PROTOCOL = AWS + "proxy-protocol"
AWS_TG_ATTRIBUTES = AWS + "target-group-attributes"
AWS_LBC_CLASS = "service.k8s.aws/nlb"
AZURE = "service.beta.kubernetes.io/azure-"
AZURE_NO_FLOATING_IP = AZURE + "disable-load-balancer-floating-ip"
GCE_KEYS = ("cloud.google.com/l4-rbs", "networking.gke.io/load-balancer-type",
            "cloud.google.com/load-balancer-type")
METALLB_PREFIXES = ("metallb.universe.tf/", "metallb.io/")
OCTAVIA = "loadbalancer.openstack.org/"
OCTAVIA_PROXY_PROTOCOL = OCTAVIA + "proxy-protocol"


def load_balancer_class(service: Service) -> str:
    """``spec.loadBalancerClass`` when the model carries it (else "")."""
    value = getattr(service, "load_balancer_class", "")
    return value if isinstance(value, str) else ""


def tg_attributes(service: Service) -> dict[str, str]:
    """The AWS target-group-attributes annotation as a dict (``k=v,k=v``)."""
    out: dict[str, str] = {}
    for part in service.annotations.get(AWS_TG_ATTRIBUTES, "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _matching_profile(cluster: Cluster,
                      service: Service) -> tuple[LoadBalancerProfile | None, str]:
    cls = load_balancer_class(service)
    for prof in cluster.lb_profiles:
        if service.key in prof.services:
            return prof, f"LoadBalancerProfile {prof.name!r} lists {service.key}"
    if cls:
        for prof in cluster.lb_profiles:
            if prof.load_balancer_class == cls and not prof.services:
                return prof, f"LoadBalancerProfile {prof.name!r} for loadBalancerClass {cls}"
    for prof in cluster.lb_profiles:
        if not prof.services and not prof.load_balancer_class:
            return prof, f"LoadBalancerProfile {prof.name!r} (applies to every Service)"
    return None, ""


def _from_annotations(service: Service) -> tuple[str, dict[str, str], str]:
    """(provider, field overrides, how) read from annotations and loadBalancerClass, or
    ("", {}, "") when nothing names a provider."""
    ann = service.annotations
    cls = load_balancer_class(service)
    over: dict[str, str] = {}
    attrs = tg_attributes(service)
    lb_type = ann.get(AWS_TYPE, "")
    target_type = ann.get(AWS_TARGET_TYPE, "")
    provider = ""
    how = ""
    if cls == AWS_LBC_CLASS or lb_type in ("external", "nlb-ip"):
        # LBC: nlb-target-type decides; "instance" is the default with a loadBalancerClass.
        ip = lb_type == "nlb-ip" or target_type == "ip"
        provider = "aws-nlb-ip" if ip else "aws-nlb-instance"
        what = f"loadBalancerClass {cls}" if cls == AWS_LBC_CLASS else f"{AWS_TYPE}: {lb_type}"
        how = f"from {what}" + (f" + {AWS_TARGET_TYPE}: {target_type}" if target_type
                                else (" (target type ip)" if ip else " (instance targets)"))
    elif lb_type == "nlb":
        provider, how = "aws-nlb-instance", f"from {AWS_TYPE}: nlb (in-tree NLB, instance)"
    elif any(k.startswith(AWS) for k in ann):
        key = next(k for k in sorted(ann) if k.startswith(AWS))
        provider, how = "aws-clb", f"from annotation {key} (in-tree AWS default: Classic LB)"
    elif any(k in ann for k in GCE_KEYS):
        key = next(k for k in GCE_KEYS if k in ann)
        provider, how = "gce", f"from annotation {key}"
    elif any(k.startswith(AZURE) for k in ann):
        key = next(k for k in sorted(ann) if k.startswith(AZURE))
        provider, how = "azure", f"from annotation {key}"
    elif any(k.startswith(METALLB_PREFIXES) for k in ann) or cls.startswith("metallb"):
        key = next((k for k in sorted(ann) if k.startswith(METALLB_PREFIXES)),
                    f"loadBalancerClass {cls}")
        provider = "metallb-l2"
        how = (f"from {key} (layer 2 assumed: a LoadBalancerProfile with provider "
               "metallb-bgp says BGP)")
    elif any(k.startswith(OCTAVIA) for k in ann):
        key = next(k for k in sorted(ann) if k.startswith(OCTAVIA))
        provider, how = "octavia", f"from annotation {key}"
    if not provider:
        return "", {}, ""
    # Refinements the annotations spell out.
    if provider.startswith("aws-nlb"):
        preserve = attrs.get("preserve_client_ip.enabled", "").lower()
        if preserve == "true":
            over["mode"] = "forwarding"
            how += "; preserve_client_ip.enabled=true"
        elif preserve == "false":
            over["mode"] = "proxying"
            how += "; preserve_client_ip.enabled=false"
        if ann.get(AWS_PROXY_PROTOCOL) == "*" or \
                attrs.get("proxy_protocol_v2.enabled", "").lower() == "true":
            over["proxy_protocol"] = "v2"
            how += "; PROXY v2"
    elif provider == "aws-clb" and ann.get(AWS_PROXY_PROTOCOL) == "*":
        over["proxy_protocol"] = "v1"
        how += f"; {AWS_PROXY_PROTOCOL}: '*' (PROXY v1)"
    elif provider == "octavia":
        pp = ann.get(OCTAVIA_PROXY_PROTOCOL, "").lower()
        if pp in ("true", "v1"):
            over["proxy_protocol"] = "v1"
            how += "; PROXY v1"
        elif pp == "v2":
            over["proxy_protocol"] = "v2"
            how += "; PROXY v2"
    return provider, over, how


def azure_floating_ip(service: Service) -> bool:
    """Azure's floating IP (on unless the annotation disables it)."""
    return service.annotations.get(AZURE_NO_FLOATING_IP, "").lower() != "true"


def detect_profile(cluster: Cluster, service: Service) -> tuple[LoadBalancerProfile, str]:
    """The load balancer in front of ``service``, every field resolved (provider, mode,
    proxy_protocol, health_check_port, health_check_path, pool), and how that was decided."""
    prof, why = _matching_profile(cluster, service)
    ann_provider, ann_over, ann_how = _from_annotations(service)
    if prof is not None and prof.provider:
        provider = prof.provider
        decided = why
    elif ann_provider:
        provider = ann_provider
        decided = (why + "; provider " if why else "") + ann_how
    elif why:
        provider = "generic"
        decided = f"{why} (no provider named: generic, the profile's fields over its defaults)"
    else:
        provider = "generic"
        decided = ("default: no provider annotation, loadBalancerClass or "
                   "LoadBalancerProfile names the load balancer; a generic forwarding LB "
                   "that health-checks like GCE")
    row = PROVIDERS[provider]
    etp = service.external_traffic_policy
    base = prof if prof is not None else LoadBalancerProfile(name="detected")
    over = ann_over if provider == ann_provider else {}
    health = row.health(etp)
    health_port = base.health_check_port or health.port
    path = base.health_check_path
    if not path and health_port in ("healthCheckNodePort", "kubeProxyHealthz"):
        path = health.path if health.path else "/healthz"
    resolved = replace(
        base,
        provider=provider,
        mode=base.mode or over.get("mode", row.mode),
        proxy_protocol=base.proxy_protocol or over.get("proxy_protocol", "none"),
        health_check_port=health_port,
        health_check_path=path,
        pool=base.pool or row.pool(etp),
    )
    return resolved, decided


__all__ = [
    "AWS_LBC_CLASS",
    "AWS_PROXY_PROTOCOL",
    "AWS_TARGET_TYPE",
    "AWS_TG_ATTRIBUTES",
    "AWS_TYPE",
    "AZURE_NO_FLOATING_IP",
    "OCTAVIA_PROXY_PROTOCOL",
    "azure_floating_ip",
    "detect_profile",
    "load_balancer_class",
    "tg_attributes",
]
