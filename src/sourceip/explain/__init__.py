"""explain: every path to a Service, the source IP the pod sees, why, and how to fix it."""

from sourceip.explain.engine import Explainer, Fix, PathResult, ServiceExplanation, explain

__all__ = ["Explainer", "Fix", "PathResult", "ServiceExplanation", "explain"]
