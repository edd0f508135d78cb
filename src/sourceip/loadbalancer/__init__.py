"""The load balancer in front of each LoadBalancer Service.

* ``providers``: ``PROVIDERS``, the one table of provider behaviour (cited row by row);
* ``detect``: ``detect_profile`` — LoadBalancerProfile objects, then the Service's annotations
  and loadBalancerClass, then the default (a generic forwarding LB that health-checks like GCE);
* ``plan``: ``plan_load_balancer`` — per-node health checks answered by
  ``sourceip.kubeproxy.healthcheck``, the pool, the MetalLB L2 leader, what the LB sends to,
  notes; ``fixes`` — changes with their cost.
"""

from sourceip.loadbalancer.detect import detect_profile
from sourceip.loadbalancer.plan import (
    CHECK_KINDS,
    EXCLUDE_LABEL,
    Fix,
    HealthCheck,
    LoadBalancerPlan,
    NodeCheck,
    fixes,
    metallb_l2_leader,
    plan_load_balancer,
)
from sourceip.loadbalancer.providers import PROVIDERS, HealthDefault, Provider

__all__ = [
    "CHECK_KINDS",
    "EXCLUDE_LABEL",
    "PROVIDERS",
    "Fix",
    "HealthCheck",
    "HealthDefault",
    "LoadBalancerPlan",
    "NodeCheck",
    "Provider",
    "detect_profile",
    "fixes",
    "metallb_l2_leader",
    "plan_load_balancer",
]
