"""`when` conditions: every operator, references on both sides, combinators, and bad input that
must be a clear ConditionError (never a TypeError from deep inside Python)."""

from __future__ import annotations

from typing import Any

import pytest

from tooldag.errors import ConditionError, ReferenceResolutionError
from tooldag.plan import Condition
from tooldag.plan.conditions import describe, evaluate, evaluate_explained

OUT: dict[str, Any] = {
    "weather": {"temp": -3, "condition": "light snow", "tags": ["cold", "wet"], "alert": None},
    "limits": {"low": 0, "high": 35, "allowed": ["snow", "rain"]},
    "flag": {"on": True, "count": 1},
}


@pytest.mark.parametrize(
    ("ref", "op", "value", "expected"),
    [
        ("$weather.temp", "==", -3, True),
        ("$weather.temp", "!=", -3, False),
        ("$weather.temp", "<", 0, True),
        ("$weather.temp", "<=", -3, True),
        ("$weather.temp", ">", 0, False),
        ("$weather.temp", ">=", -3.5, True),
        ("$weather.condition", "<", "m", True),  # text orders as text
        ("$weather.condition", "contains", "snow", True),
        ("$weather.tags", "contains", "wet", True),
        ("$weather.tags", "contains", "dry", False),
        ("$weather", "contains", "temp", True),  # an object contains its keys
        ("$weather.condition", "in", "light snow, heavy rain", True),
        ("$weather.condition", "in", ["snow", "rain"], False),
        ("$weather.alert", "is_none", None, True),
        ("$weather.alert", "not_none", None, False),
        ("$weather.temp", "not_none", None, True),
    ],
)
def test_each_operator(ref: str, op: str, value: Any, expected: bool) -> None:
    assert evaluate({"ref": ref, "op": op, "value": value}, OUT) is expected


def test_value_may_itself_be_a_reference() -> None:
    assert evaluate({"ref": "$weather.temp", "op": "<", "value": "$limits.low"}, OUT)
    assert not evaluate({"ref": "$weather.temp", "op": ">", "value": "$limits.high"}, OUT)
    assert evaluate({"ref": "$weather.tags.0", "op": "in", "value": ["cold"]}, OUT)


def test_all_any_not_combine() -> None:
    cold = {"ref": "$weather.temp", "op": "<", "value": 0}
    hot = {"ref": "$weather.temp", "op": ">", "value": 35}
    assert evaluate({"all": [cold, {"not": hot}]}, OUT)
    assert evaluate({"any": [hot, cold]}, OUT)
    assert not evaluate({"any": [hot, {"not": cold}]}, OUT)
    assert evaluate({"all": []}, OUT) and not evaluate({"any": []}, OUT)


def test_accepts_the_condition_model() -> None:
    cond = Condition.model_validate({"ref": "$flag.count", "op": "==", "value": 1})
    assert evaluate(cond, OUT)


def test_true_is_not_one() -> None:
    # JSON semantics, not Python's (where True == 1).
    assert not evaluate({"ref": "$flag.on", "op": "==", "value": 1}, OUT)
    assert not evaluate({"ref": "$flag.count", "op": "==", "value": True}, OUT)
    assert evaluate({"ref": "$flag.on", "op": "==", "value": True}, OUT)


@pytest.mark.parametrize(
    ("cond", "words"),
    [
        ({"ref": "$weather.condition", "op": "<", "value": 0}, ["cannot order", "text", "number"]),
        ({"ref": "$weather.alert", "op": ">", "value": 3}, ["cannot order", "null"]),
        ({"ref": "$weather.tags", "op": ">=", "value": ["a"]}, ["cannot order", "list"]),
        ({"ref": "$flag.on", "op": "<", "value": 2}, ["cannot order", "boolean"]),
        ({"ref": "$weather.temp", "op": "contains", "value": 3}, ["nothing can be looked up"]),
        ({"ref": "$weather.condition", "op": "contains", "value": 3}, ["inside text"]),
        ({"ref": "$weather.temp", "op": "in", "value": 5}, ["not text, a list or an object"]),
        ({"ref": "$weather.temp", "op": "~=", "value": 5}, ["unknown operator", "'~='"]),
        ({"op": "==", "value": 5}, ["needs 'ref'"]),
    ],
)
def test_incomparable_values_are_a_clear_condition_error(
    cond: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ConditionError) as info:
        evaluate(cond, OUT)
    for word in words:
        assert word in str(info.value)


def test_a_missing_key_is_a_reference_error_except_for_none_checks() -> None:
    with pytest.raises(ReferenceResolutionError, match="no key 'humidity'"):
        evaluate({"ref": "$weather.humidity", "op": ">", "value": 50}, OUT)
    # "is there a value?" is answered by an absent key too.
    assert evaluate({"ref": "$weather.humidity", "op": "is_none"}, OUT)
    assert not evaluate({"ref": "$weather.humidity", "op": "not_none"}, OUT)
    with pytest.raises(ReferenceResolutionError):
        evaluate({"ref": "$nosuchstep.x", "op": "is_none"}, OUT)
    with pytest.raises(ReferenceResolutionError):
        evaluate({"ref": "$weather.temp.deeper", "op": "is_none"}, OUT)


def test_explanation_shows_what_was_compared() -> None:
    ok, why = evaluate_explained({"ref": "$weather.temp", "op": ">", "value": 35}, OUT)
    assert not ok
    assert why == "$weather.temp > 35 (got -3)"
    text = describe(
        {
            "all": [
                {"ref": "$a.x", "op": "is_none"},
                {"not": {"ref": "$b", "op": "==", "value": "$c"}},
            ]
        }
    )
    assert text == "all($a.x is_none, not($b == $c))"


def test_a_condition_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(ConditionError, match="must be an object"):
        evaluate(["$weather.temp", "<", 0], OUT)  # type: ignore[arg-type]
