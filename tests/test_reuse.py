"""The reuse rule: a completed step's output is taken as it is only if the new plan makes the same
call (tool, arguments, condition) on reused inputs; what does not change the call does not count."""

from __future__ import annotations

from typing import Any

import pytest

from tooldag.plan import Plan
from tooldag.plan.reuse import reusable_outputs, same_call

ALERT: dict[str, Any] = {
    "id": "alert",
    "tool": "send_alert",
    "args": {"text": "freezing"},
    "when": {"ref": "$w.temp", "op": "<", "value": 0},
}
WEATHER: dict[str, Any] = {"id": "w", "tool": "get_weather", "args": {"city": "Oslo"}}
BEFORE = Plan.model_validate({"steps": [WEATHER, ALERT]})
OUTPUTS = {"w": {"temp": -3}, "alert": "sent"}


def with_alert(**changes: Any) -> Plan:
    return Plan.model_validate({"steps": [WEATHER, {**ALERT, **changes}]})


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"tool": "send_sms"}, id="another tool"),
        pytest.param({"args": {"text": "icy"}}, id="other arguments"),
        pytest.param({"when": {"ref": "$w.temp", "op": "<", "value": 5}}, id="another condition"),
        pytest.param({"when": None}, id="the condition dropped"),
    ],
)
def test_a_step_whose_call_changed_runs_again(changes: dict[str, Any]) -> None:
    plan = with_alert(**changes)
    assert not same_call(BEFORE.step("alert"), plan.step("alert"))
    assert reusable_outputs(previous=BEFORE, plan=plan, outputs=OUTPUTS) == {"w": {"temp": -3}}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"description": "tell the team"}, id="a description"),
        pytest.param({"timeout": 5.0}, id="a timeout"),
        pytest.param({"depends_on": ["w"]}, id="an ordering-only edge to a reused step"),
    ],
)
def test_what_does_not_change_the_call_keeps_the_output(changes: dict[str, Any]) -> None:
    plan = with_alert(**changes)
    assert same_call(BEFORE.step("alert"), plan.step("alert"))
    assert reusable_outputs(previous=BEFORE, plan=plan, outputs=OUTPUTS) == OUTPUTS


def test_a_step_after_one_that_runs_again_runs_again_too() -> None:
    plan = Plan.model_validate({"steps": [{**WEATHER, "args": {"city": "Bergen"}}, ALERT]})
    assert same_call(BEFORE.step("alert"), plan.step("alert"))  # its condition reads w
    assert reusable_outputs(previous=BEFORE, plan=plan, outputs=OUTPUTS) == {}
