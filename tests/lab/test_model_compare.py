"""Probe/prediction values validate on construction; compare() decides agreement as specified."""

from __future__ import annotations

import pytest

from sourceip.errors import ValidationError
from sourceip.lab.compare import compare, compare_all, describe_prediction
from sourceip.lab.model import Observation, PredictedOutcome, Prediction, ProbeSpec

SPEC = ProbeSpec(id="p1", client="pod/default/client2", dst_ip="10.96.0.100", dst_port=80)


def delivered(ep: str, seen: str, p: float = 1.0) -> PredictedOutcome:
    return PredictedOutcome(probability=p, disposition="delivered", endpoint=ep, seen_source=seen)


def obs(disposition: str, ep: str | None = None, seen: str | None = None,
        attempt: int = 0) -> Observation:
    return Observation(spec_id="p1", attempt=attempt, disposition=disposition,  # type: ignore
                       endpoint=ep, seen_source=seen)


@pytest.mark.parametrize("kw, field", [
    ({"client": "pod/default"}, "client"),
    ({"client": "somewhere"}, "client"),
    ({"proto": "sctp"}, "proto"),
    ({"dst_ip": "10.96.0.300"}, "dst_ip"),
    ({"dst_port": 0}, "dst_port"),
    ({"dst_port": 70000}, "dst_port"),
    ({"id": ""}, "id"),
])
def test_probe_spec_rejects_bad_fields(kw: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"id": "x", "client": "external", "dst_ip": "10.0.0.11",
                               "dst_port": 30080}
    args.update(kw)
    with pytest.raises(ValidationError) as err:
        ProbeSpec(**args)  # type: ignore[arg-type]
    assert err.value.field == field


def test_probe_spec_clients_and_target() -> None:
    assert ProbeSpec(id="a", client="node/node1", dst_ip="10.0.0.1", dst_port=1).client_kind \
        == "node"
    assert SPEC.target == "tcp/10.96.0.100:80"


@pytest.mark.parametrize("kw, field", [
    ({"disposition": "delivered", "endpoint": None, "seen_source": "10.0.0.1"}, "endpoint"),
    ({"disposition": "delivered", "endpoint": "10.0.0.1:80", "seen_source": None},
     "seen_source"),
    ({"disposition": "delivered", "endpoint": "10.0.0.1", "seen_source": "10.0.0.1"},
     "endpoint"),
    ({"disposition": "dropped", "endpoint": "10.0.0.1:80"}, "endpoint"),
    ({"disposition": "passed"}, "disposition"),
    ({"disposition": "dropped", "probability": 1.5}, "probability"),
])
def test_predicted_outcome_validation(kw: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"probability": 1.0}
    args.update(kw)
    with pytest.raises(ValidationError) as err:
        PredictedOutcome(**args)  # type: ignore[arg-type]
    assert err.value.field == field


def test_prediction_needs_outcomes() -> None:
    with pytest.raises(ValidationError):
        Prediction(spec=SPEC, outcomes=())


def test_agree_on_same_endpoint_ip_and_source_port_ignored() -> None:
    pred = Prediction(spec=SPEC, outcomes=(delivered("10.244.1.10:8080", "10.244.2.20"),))
    a = compare(SPEC, pred, [obs("delivered", "10.244.1.10:9999", "10.244.2.20")])
    assert a.agree, a.reason


def test_disagree_on_seen_source() -> None:
    pred = Prediction(spec=SPEC, outcomes=(delivered("10.244.1.10:8080", "10.244.2.20"),))
    a = compare(SPEC, pred, [obs("delivered", "10.244.1.10:8080", "10.0.0.12")])
    assert not a.agree
    assert "10.0.0.12" in a.reason and "10.244.2.20" in a.reason


def test_disagree_on_endpoint() -> None:
    pred = Prediction(spec=SPEC, outcomes=(delivered("10.244.1.10:8080", "10.244.2.20"),))
    assert not compare(SPEC, pred, [obs("delivered", "10.244.1.11:8080", "10.244.2.20")]).agree


def test_dispositions_must_match() -> None:
    pred = Prediction(spec=SPEC, outcomes=(PredictedOutcome(probability=1.0,
                                                            disposition="dropped"),))
    assert compare(SPEC, pred, [obs("dropped")]).agree
    assert not compare(SPEC, pred, [obs("rejected")]).agree
    assert not compare(SPEC, pred, [obs("error")]).agree
    assert not compare(SPEC, pred, [obs("delivered", "10.244.1.10:8080", "1.2.3.4")]).agree


def test_split_prediction_every_attempt_must_match_some_branch() -> None:
    pred = Prediction(spec=SPEC, outcomes=(delivered("10.244.1.10:8080", "10.0.0.12", 0.5),
                                           delivered("10.244.2.10:8080", "10.244.2.1", 0.5)))
    assert pred.split
    good = [obs("delivered", "10.244.1.10:8080", "10.0.0.12", 0),
            obs("delivered", "10.244.2.10:8080", "10.244.2.1", 1)]
    assert compare(SPEC, pred, good).agree
    # the right endpoint with the other branch's source is wrong
    bad = [*good, obs("delivered", "10.244.2.10:8080", "10.0.0.12", 2)]
    a = compare(SPEC, pred, bad)
    assert not a.agree and "attempt 2" in a.reason
    assert "50%" in describe_prediction(pred)


def test_zero_probability_outcome_never_agrees() -> None:
    pred = Prediction(spec=SPEC, outcomes=(
        delivered("10.244.1.10:8080", "10.244.2.20", 1.0),
        PredictedOutcome(probability=0.0, disposition="dropped")))
    assert not compare(SPEC, pred, [obs("dropped")]).agree


def test_no_prediction_or_no_observation_is_not_agreement() -> None:
    assert not compare(SPEC, None, [obs("dropped")]).agree
    pred = Prediction(spec=SPEC, outcomes=(PredictedOutcome(probability=1, disposition="dropped"),))
    assert compare_all([pred], [])[0].reason == "not probed"


def test_observation_json_round_trip() -> None:
    o = Observation(spec_id="p1", attempt=2, disposition="delivered", seen_source="10.0.0.12",
                    seen_port=4242, endpoint="10.244.1.10:8080", pod="default/server",
                    elapsed_ms=1.25)
    back = Observation.from_json(o.to_json())
    assert back.spec_id == "p1" and back.attempt == 2 and back.seen_port == 4242
    assert back.summary() == "10.0.0.12 at 10.244.1.10:8080 (default/server)"
