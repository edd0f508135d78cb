"""Predicted versus observed.

An observation agrees with a prediction when some predicted outcome has the same disposition
and, for ``delivered``, the same endpoint IP and the same ``seen_source``. A probe with several
attempts agrees when every attempt does (each attempt samples one load-balancing branch).

HTTP probes through an ingress controller are compared on more: every header the outcome
predicts (X-Forwarded-For, X-Real-IP, ...; names in any case, repeated fields joined with
``", "``), the client the app's strategy resolves (the prediction's ``strategy`` rebuilt with
``strategy_from_code`` and evaluated on the observed peer and headers), and the PROXY header's
source when one is predicted.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

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

# ----------------------------------------------------------------------------- strategies

_STRATEGY_NAMES = ("Chain", "RemoteAddress", "SingleIPHeader", "RightmostTrustedCount",
                   "RightmostTrustedRange", "UnsafeLeftmostNonPrivate")


def strategy_from_code(code: str) -> Any:
    """The ``sourceip.clientip`` strategy written as its constructor call (the text explain
    recommends, e.g. ``Chain(RightmostTrustedRange(trusted_proxies=["10.0.0.0/8"]),
    RemoteAddress())``), built without ``eval``: only calls of the strategy classes with
    literal arguments are accepted. Raises ``ValidationError``."""
    import sourceip.clientip as clientip

    text = code.strip()
    if text.startswith("strategy = "):
        text = text[len("strategy = "):]
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValidationError(f"{code!r} is not a strategy constructor: {exc.msg}",
                              field="strategy") from None

    def build(node: ast.expr) -> Any:
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else ""
            if name not in _STRATEGY_NAMES:
                raise ValidationError(f"{name or ast.dump(func)!r} is not a clientip strategy",
                                      field="strategy")
            args = [build(a) for a in node.args]
            kwargs = {k.arg: build(k.value) for k in node.keywords if k.arg is not None}
            try:
                return getattr(clientip, name)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a bad recommendation is reported
                raise ValidationError(f"{name}: {exc}", field="strategy") from None
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise ValidationError(f"{ast.unparse(node)!r}: only literal arguments are accepted",
                                  field="strategy") from None

    return build(tree.body)


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def resolve_observed(strategy: Any, obs: Observation) -> str | None:
    """The client ``strategy`` resolves from what the backend observed (peer + headers)."""
    if strategy is None or obs.disposition != "delivered" or obs.seen_source is None:
        return None
    result = strategy.resolve(obs.seen_source, _header_map(obs.headers or ()))
    return result.ip if result.ip else None


# Header values nobody can predict (ingress-nginx's $req_id is random per request): the
# prediction names them with a placeholder; only their presence is compared.
_UNPREDICTABLE = re.compile(r"^(\$\w+|<[^>]*>)$")


def header_mismatches(outcome: PredictedOutcome, obs: Observation) -> list[str]:
    """Each predicted header the backend did not receive as predicted."""
    if outcome.headers is None:
        return []
    got = _header_map(obs.headers or ())
    want = _header_map(outcome.headers)
    bad = []
    for name, value in want.items():
        seen = got.get(name)
        if seen is None:
            bad.append(f"{name}: missing (predicted {value!r})")
        elif _UNPREDICTABLE.match(value):
            continue
        elif seen != value:
            bad.append(f"{name}: {seen!r} (predicted {value!r})")
    return bad


def mismatches(outcome: PredictedOutcome, obs: Observation, *,
               strategy: Any = None) -> list[str]:
    """How ``obs`` differs from ``outcome`` (empty: it is what ``outcome`` describes)."""
    if outcome.disposition != obs.disposition:
        return [f"{obs.disposition} (predicted {outcome.disposition})"]
    if outcome.disposition != "delivered":
        return []
    if outcome.endpoint is None or obs.endpoint is None:
        return ["no endpoint"]
    bad = []
    if endpoint_ip(outcome.endpoint) != endpoint_ip(obs.endpoint):
        bad.append(f"answered by {obs.endpoint} (predicted {outcome.endpoint})")
    if outcome.seen_source != obs.seen_source:
        bad.append(f"peer {obs.seen_source} (predicted {outcome.seen_source})")
    bad += header_mismatches(outcome, obs)
    if strategy is not None and outcome.headers is not None:
        resolved = resolve_observed(strategy, obs)
        if resolved != outcome.resolved_client:
            bad.append(f"resolved client {resolved} (predicted {outcome.resolved_client})")
    if outcome.proxy_source is not None:
        src = obs.proxy.get("source") if isinstance(obs.proxy, dict) else obs.proxy
        if src != outcome.proxy_source:
            bad.append(f"PROXY source {src} (predicted {outcome.proxy_source})")
    return bad


def outcome_matches(outcome: PredictedOutcome, obs: Observation, *,
                    strategy: Any = None) -> bool:
    """``obs`` is what ``outcome`` describes."""
    return not mismatches(outcome, obs, strategy=strategy)


def observation_agrees(prediction: Prediction, obs: Observation, *,
                       strategy: Any = None) -> bool:
    return any(o.probability > 0 and outcome_matches(o, obs, strategy=strategy)
               for o in prediction.outcomes)


def describe_outcome(o: PredictedOutcome) -> str:
    if o.disposition != "delivered":
        return o.disposition
    text = f"{o.seen_source} at {o.endpoint}"
    if o.headers is not None:
        hm = _header_map(o.headers)
        xff, xri = hm.get("x-forwarded-for"), hm.get("x-real-ip")
        text += f", XFF {xff!r}, X-Real-IP {xri!r}, resolves {o.resolved_client}"
    return text


def describe_prediction(prediction: Prediction | None) -> str:
    """``10.244.1.1 at 10.244.1.5:8080`` / ``dropped``; split outcomes joined with `` | ``."""
    if prediction is None:
        return "(no prediction)"
    parts = []
    for o in prediction.outcomes:
        text = describe_outcome(o)
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
    strategy = None
    if prediction.strategy:
        try:
            strategy = strategy_from_code(prediction.strategy)
        except ValidationError as exc:
            return Agreement(spec=spec, prediction=prediction, observations=obs, agree=False,
                             reason=f"the predicted strategy cannot be built: {exc}")
        obs = tuple(dataclasses.replace(o, resolved_client=resolve_observed(strategy, o))
                    for o in obs)
    bad = [o for o in obs if not observation_agrees(prediction, o, strategy=strategy)]
    if bad:
        first = bad[0]
        live = [o for o in prediction.outcomes if o.probability > 0]
        closest = min(live, key=lambda o: len(mismatches(o, first, strategy=strategy)))
        why = "; ".join(mismatches(closest, first, strategy=strategy))
        return Agreement(
            spec=spec, prediction=prediction, observations=obs, agree=False,
            reason=(f"attempt {first.attempt} observed {first.summary()}"
                    + (f" ({why})" if why and first.disposition == closest.disposition else "")
                    + f"; predicted {describe_prediction(prediction)}"),
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
                        services: Sequence[str] | None = None, external_ip6: str = ""
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
    for pp in predicted_probes(cluster, external_ip=external_ip, external_ip6=external_ip6,
                               services=list(services) if services else None):
        if getattr(pp, "skip", ""):
            notes.append(f"{pp.id} ({pp.description}): not probed: {pp.skip}")
            continue
        try:
            spec = ProbeSpec(id=pp.id, client=pp.client, via_node=pp.via_node, proto=pp.proto,
                             dst_ip=pp.dst_ip, dst_port=pp.dst_port, description=pp.description,
                             via_lb=bool(getattr(pp, "via_lb", False)),
                             http_host=getattr(pp, "http_host", ""),
                             http_path=getattr(pp, "http_path", "/"),
                             http_headers=tuple(getattr(pp, "http_headers", ())))
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
                    seen_source=seen if disposition == "delivered" else None,
                    proxy_source=getattr(pp, "proxy_source", None)
                    if disposition == "delivered" else None))
            except ValidationError as exc:
                notes.append(f"{pp.id}: unusable predicted outcome: {exc}")
        for h in getattr(pp, "http_outcomes", ()):
            if h.disposition not in DISPOSITIONS:
                notes.append(f"{pp.id}: outcome {h.disposition!r} cannot be observed by a probe")
                continue
            delivered = h.disposition == "delivered"
            try:
                outcomes.append(PredictedOutcome(
                    probability=h.probability, disposition=h.disposition,
                    endpoint=h.endpoint if delivered else None,
                    seen_source=h.peer if delivered else None,
                    headers=tuple(h.headers) if delivered else None,
                    resolved_client=h.resolved_client if delivered else None,
                    note=h.note))
            except ValidationError as exc:
                notes.append(f"{pp.id}: unusable predicted outcome: {exc}")
        if outcomes:
            predictions.append(Prediction(spec=spec, outcomes=tuple(outcomes),
                                          strategy=getattr(pp, "strategy", ""),
                                          kind=getattr(pp, "kind", "")))
    return predictions, notes
