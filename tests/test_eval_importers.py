"""NesTools and NESTFUL rows (fixtures in their published shapes) read as tooldag goals: tools,
gold plans with references, expected answers; and what goes wrong, said by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tooldag.errors import ConfigError
from tooldag.evaluation import load_goals
from tooldag.evaluation.importers import nestful_row, nestools_row
from tooldag.evaluation.metrics import edges
from tooldag.plan.refs import resolve
from tooldag.validate import validate

FIXTURES = Path(__file__).parent / "fixtures"
NESTOOLS = FIXTURES / "nestools_sample.jsonl"
NESTFUL = FIXTURES / "nestful_sample.jsonl"


def test_nestools_rows_are_detected_and_planned_only() -> None:
    goals = load_goals(NESTOOLS)
    assert [g.id for g in goals] == ["nestools-1", "nestools-2", "nestools-4"]
    assert all(not g.execute for g in goals)  # schema-only tools: nothing can run
    assert goals[0].tags == ["nestools", "Library Science/Library Augmented Reality"]


def test_nestools_placeholders_become_references_to_the_named_response() -> None:
    goal = load_goals(NESTOOLS)[0]
    assert goal.plan is not None
    steps = {s.id: s.args for s in goal.plan.steps}
    # scan_isbn's responses are [book_details, availability]: API_call_0 and API_call_1.
    assert steps["locate_book"] == {"book_info": "$scan_isbn.book_details"}
    assert steps["engage_ar_experience"] == {
        "availability": "$scan_isbn.availability",
        "exact_location": "$locate_book.location_desc",
    }
    assert edges(goal.plan) == {
        ("scan_isbn", "locate_book"),
        ("scan_isbn", "engage_ar_experience"),
        ("locate_book", "engage_ar_experience"),
    }


def test_nestools_types_and_required_become_json_schema() -> None:
    goal = load_goals(NESTOOLS)[1]
    tool = goal.registry.get("get_policy_document")
    assert tool.parameters["properties"]["year"]["type"] == "integer"
    assert tool.parameters["required"] == ["policy_code", "department"]
    assert tool.output_schema is not None
    assert tool.output_schema["properties"]["document_link"]["type"] == "string"
    assert goal.registry.get("analyze_effectiveness").output_schema == {
        "type": "object",
        "properties": {
            "analysis_results": {
                "type": "object",
                "description": "a summary of the analysis results and insights",
            }
        },
    }


@pytest.mark.parametrize("path", [NESTOOLS, NESTFUL], ids=["nestools", "nestful"])
def test_every_imported_gold_plan_validates_against_its_tools(path: Path) -> None:
    for goal in load_goals(path):
        assert goal.plan is not None
        assert validate(goal.plan, goal.registry) == [], goal.id


def test_placeholders_inside_text_and_literal_dollars() -> None:
    row = nestools_row(
        {
            "test_id": 9,
            "task": "t",
            "api": [
                {"api_name": "a", "parameters": {}, "responses": {"x": {"type": "int"}}},
                {"api_name": "b", "parameters": {"note": {"type": "str"}}, "responses": {}},
            ],
            "call": [
                {"api_name": "a", "parameters": {}, "responses": ["API_call_0"]},
                {"api_name": "b", "parameters": {"note": "got API_call_0 for $5"}, "responses": []},
                {"api_name": "a", "parameters": {}, "responses": ["API_call_1"]},
            ],
        }
    )
    steps = row["plan"]["steps"]
    assert [s["id"] for s in steps] == ["a", "b", "a_2"]  # a repeated call gets its own id
    assert steps[1]["args"] == {"note": "got ${a.x} for $$5"}
    assert resolve(steps[1]["args"]["note"], {"a": {"x": 7}}) == "got 7 for $5"


def test_nestful_labels_and_references() -> None:
    math, code, fx, hf = load_goals(NESTFUL)
    assert math.plan is not None and len(math.plan.steps) == 9
    assert math.plan.step("var_2").args == {"arg_0": 10000, "arg_1": "$var_1.result"}
    assert math.plan.step("var_9").dependencies() == ["var_3", "var_8"]
    assert math.answer is not None and math.answer.number == 6400.0
    # The coding half: labels without an underscore, JSON Schema parameters, a list answer.
    assert code.plan is not None and code.plan.step("var2").args == {"string": "$var1.output_0"}
    assert code.registry.get("kilometers_to_miles").parameters["properties"]["kilometers"] == {
        "description": "The distance in kilometers.",
        "type": "number",  # ["integer", "number"]: an integer is a number
    }
    assert code.answer is None  # a list: no answer check
    # The first version: an output key with a space, inside text; var_result is the answer.
    assert fx.plan is not None
    assert [s.id for s in fx.plan.steps] == ["var1", "var2"]
    numbers = fx.plan.step("var2").args["numbers"]
    assert numbers == '5 * ${var1["Exchange Rate"]}'
    assert resolve(numbers, {"var1": {"Exchange Rate": "2.5"}}) == "5 * 2.5"
    assert (
        fx.plan.answer
        == 'exchange_rate: ${var1["Exchange Rate"]}; calculated_value: ${var2.answer}'
    )
    fx_tool = fx.registry.get("Alpha_Vantage_CURRENCY_EXCHANGE_RATE")
    assert fx_tool.parameters["required"] == ["function", "from_currency", "to_currency"]
    # As on Hugging Face: tools, output and gold_answer as text.
    assert hf.plan is not None and hf.plan.step("var_2").args["arg_0"] == "$var_1.result"
    assert hf.answer is not None and hf.answer.number == 5.0


def test_nestful_types_are_json_schema_types() -> None:
    math = load_goals(NESTFUL)[0]
    assert math.registry.get("add").parameters["properties"]["arg_0"] == {
        "description": "The first number",
        "type": "number",  # "int or float"
    }


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        (20.0, {"number": 20.0}),
        ("20.0", {"number": 20.0}),
        ("'abc'", {"exact": "abc"}),  # Python literal text, as Hugging Face keeps it
        ("plain words", {"exact": "plain words"}),
        (True, {"exact": "true"}),
        ([1, 2], None),
        ("(1, 2)", None),
        (None, None),
    ],
)
def test_nestful_gold_answers(gold: object, expected: dict[str, object] | None) -> None:
    row = nestful_row({"input": "q", "output": [], "tools": [], "gold_answer": gold})
    assert row.get("answer") == expected


def test_the_format_is_forced_or_detected(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in NESTOOLS.read_text().splitlines()]
    path = tmp_path / "array.json"
    path.write_text(json.dumps(rows))  # a JSON array works as well as JSONL
    assert len(load_goals(path)) == 3
    with pytest.raises(ConfigError, match="line 1: not a nestful row as expected"):
        load_goals(NESTOOLS, format="nestful")
    path.write_text('{"question": "what?"}\n')
    with pytest.raises(ConfigError, match=r"line 1: not a goal row .* pass --format"):
        load_goals(path)


def test_a_malformed_row_names_its_line(tmp_path: Path) -> None:
    first = NESTOOLS.read_text().splitlines()[0]
    broken = json.loads(first)
    del broken["task"]
    path = tmp_path / "n.jsonl"
    path.write_text(first + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(ConfigError, match=r"n\.jsonl line 2: not a nestools row as expected"):
        load_goals(path)
