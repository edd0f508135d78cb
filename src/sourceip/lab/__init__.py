"""The lab: a cluster's dataplane built for real in network namespaces, probed with real
connections, compared with the predictions (``docs/lab.md``).

* ``plan.plan_lab(cluster) -> LabPlan`` (pure) and ``plan.render_script(plan)`` (the dry run);
* ``run.Lab(plan)`` builds it (context manager), ``Lab.probe(specs) -> [Observation]``;
* ``model``: ``ProbeSpec``, ``PredictedOutcome``, ``Prediction``, ``Observation``, ``Agreement``;
* ``compare.compare_all(predictions, observations)``.

``echo_server``, ``probe`` and ``nfacct`` run inside the lab's namespaces as
``python -m sourceip.lab.<name>``; this package imports nothing eagerly so they start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "plan_lab": "sourceip.lab.plan",
    "render_script": "sourceip.lab.plan",
    "default_probe_specs": "sourceip.lab.plan",
    "Lab": "sourceip.lab.run",
    "probe_run": "sourceip.lab.run",
    "clean_stale": "sourceip.lab.run",
    "compare_all": "sourceip.lab.compare",
    "explain_predictions": "sourceip.lab.compare",
    "ProbeSpec": "sourceip.lab.model",
    "PredictedOutcome": "sourceip.lab.model",
    "Prediction": "sourceip.lab.model",
    "Observation": "sourceip.lab.model",
    "Agreement": "sourceip.lab.model",
    "LabPlan": "sourceip.lab.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sourceip.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
