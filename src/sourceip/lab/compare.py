"""Predicted versus observed.

An observation agrees with a prediction when some predicted outcome has the same disposition
and, for ``delivered``, the same endpoint IP and the same ``seen_source``. A probe with several
attempts agrees when every attempt does (each attempt samples one load-balancing branch).
"""

from __future__ import annotations

from collections.abc import Sequence

from sourceip.cluster import Cluster
from sourceip.errors import ValidationError
from sourceip.lab.model import (
    DISPOSITIONS,
    Agreement,
    Observation,
    PredictedOutcome,
    Prediction,
    ProbeSpec,
    endpoint_ip,
)


def outcome_matches(outcome: PredictedOutcome, obs: Observation) -> bool:
    """``obs`` is what ``outcome`` describes."""
    if outcome.disposition != obs.disposition:
        return False
    if outcome.disposition != "delivered":
        return True
    if outcome.endpoint is None or obs.endpoint is None:
        return False
    return (endpoint_ip(outcome.endpoint) == endpoint_ip(obs.endpoint)
            and outcome.seen_source == obs.seen_source)


def observation_agrees(prediction: Prediction, obs: Observation) -> bool:
    return any(o.probability > 0 and outcome_matches(o, obs) for o in prediction.outcomes)


def describe_prediction(prediction: Prediction | None) -> str:
    """``10.244.1.1 at 10.244.1.5:8080`` / ``dropped``; split outcomes joined with `` | ``."""
    if prediction is None:
        return "(no prediction)"
    parts = []
    for o in prediction.outcomes:
        text = (f"{o.seen_source} at {o.endpoint}" if o.disposition == "delivered"
                else o.disposition)
        if len(prediction.outcomes) > 1:
            text += f" ({o.probability:.0%})"
        parts.append(text)
    return " | ".join(parts)


def compare(spec: ProbeSpec, prediction: Prediction | None,
            observations: Sequence[Observation]) -> Agreement:
    """The verdict for one probe. Without a prediction nothing can agree."""
    obs = tuple(observations)
    if prediction is None:
        return Agreement(spec=spec, prediction=None, observations=obs, agree=False,
                         reason="no prediction for this path")
    if not obs:
        return Agreement(spec=spec, prediction=prediction, observations=obs, agree=False,
                         reason="not probed")
    bad = [o for o in obs if not observation_agrees(prediction, o)]
    if bad:
        first = bad[0]
        return Agreement(
            spec=spec, prediction=prediction, observations=obs, agree=False,
            reason=(f"attempt {first.attempt} observed {first.summary()}; predicted "
                    f"{describe_prediction(prediction)}"),
        )
    return Agreement(spec=spec, prediction=prediction, observations=obs, agree=True)


def compare_all(predictions: Sequence[Prediction],
                observations: Sequence[Observation]) -> list[Agreement]:
    """One agreement per prediction, observations grouped by probe id."""
    by_id: dict[str, list[Observation]] = {}
    for o in observations:
        by_id.setdefault(o.spec_id, []).append(o)
    return [compare(p.spec, p, sorted(by_id.get(p.spec.id, []), key=lambda o: o.attempt))
            for p in predictions]


class PredictionsUnavailable(Exception):
    """The explain engine cannot predict probes in this build (the message says why)."""


def explain_predictions(cluster: Cluster, *, external_ip: str,
                        services: Sequence[str] | None = None
                        ) -> tuple[list[Prediction], list[str]]:
    """The explain engine's predictions for every path with a real client, and notes about
    paths that cannot be checked (a disposition the lab cannot observe, such as ``passed``).
    Uses ``sourceip.explain.lab_predictions`` when the engine provides it, else converts
    ``sourceip.explain.probes.predicted_probes``. Raises ``PredictionsUnavailable``."""
    try:
        import sourceip.explain as explain
    except ImportError as exc:  # pragma: no cover - explain is part of the package
        raise PredictionsUnavailable(f"sourceip.explain cannot be imported: {exc}") from exc
    direct = getattr(explain, "lab_predictions", None)
    if direct is not None:
        return list(direct(cluster)), []
    try:
        from sourceip.explain.probes import predicted_probes
    except ImportError as exc:
        raise PredictionsUnavailable(
            "the explain engine provides no lab predictions in this build "
            f"(neither sourceip.explain.lab_predictions nor explain.probes: {exc})"
        ) from exc
    predictions: list[Prediction] = []
    notes: list[str] = []
    for pp in predicted_probes(cluster, external_ip=external_ip,
                               services=list(services) if services else None):
        try:
            spec = ProbeSpec(id=pp.id, client=pp.client, via_node=pp.via_node, proto=pp.proto,
                             dst_ip=pp.dst_ip, dst_port=pp.dst_port, description=pp.description)
        except ValidationError as exc:
            notes.append(f"{pp.id}: not probed: {exc}")
            continue
        outcomes: list[PredictedOutcome] = []
        for probability, disposition, endpoint, seen in pp.outcomes:
            if disposition not in DISPOSITIONS:
                notes.append(f"{pp.id}: outcome {disposition!r} cannot be observed by a probe")
                continue
            try:
                outcomes.append(PredictedOutcome(
                    probability=probability, disposition=disposition,  # type: ignore[arg-type]
                    endpoint=endpoint if disposition == "delivered" else None,
                    seen_source=seen if disposition == "delivered" else None))
            except ValidationError as exc:
                notes.append(f"{pp.id}: unusable predicted outcome: {exc}")
        if outcomes:
            predictions.append(Prediction(spec=spec, outcomes=tuple(outcomes)))
    return predictions, notes
