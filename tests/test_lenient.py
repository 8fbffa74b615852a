"""Lenient where it is safe, strict where it matters (issue 13, part 3).

Issues have a severity; warnings never stop a plan nor send the planner back to the LLM. A number
or boolean given to a parameter that takes free text is passed as its JSON text (found by the
validator, applied when the step runs); ``$step.path`` inside text is read as ``${step.path}``
when ``step`` is a step of the plan; what models write instead of a reference gets a precise hint;
an answer that reads no step is a guessed answer. The three plans a real small model lost to
strictness (tests/fixtures/lenient/) now validate with warnings and run end to end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import respx
from pydantic import Field
from rich.console import Console
from typing_extensions import TypedDict

from packs_fixtures import pack_registry
from test_cli_validate import flat, run
from tooldag import Severity, errors_of, warnings_of
from tooldag.errors import PlanRejected, ToolArgumentError
from tooldag.execution.executor import run_plan
from tooldag.issues import Issue
from tooldag.llm.client import LLMClient
from tooldag.plan import Plan
from tooldag.plan.parse import parse_plan
from tooldag.plan.refs import parse_string, read_bare_refs
from tooldag.planning.planner import Planner
from tooldag.registry import ToolRegistry, tool
from tooldag.registry.schemas import as_text
from tooldag.result import RunStatus
from tooldag.testing import mock_openai
from tooldag.ui.views import plan_view
from tooldag.validate.validator import WARNING_CODES, check_plan, validate

FIXTURES = Path(__file__).parent / "fixtures" / "lenient"
PACKS = ("calc", "text", "time")

# ----------------------------------------------------------------------------- a small tool set


class Stats(TypedDict):
    mean: float
    count: int
    ok: bool
    values: list[float]
    label: str


received: list[dict[str, Any]] = []


@tool(side_effects=False)
def measure() -> Stats:
    """Some figures."""
    return {"mean": 3.5, "count": 4, "ok": True, "values": [7.0], "label": "x"}


@tool(side_effects=False)
def note(text: str) -> dict[str, str]:
    """Keep a note."""
    received.append({"text": text})
    return {"text": text}


@tool(side_effects=False)
def scale(factor: float) -> dict[str, float]:
    """Scale by a factor."""
    received.append({"factor": factor})
    return {"factor": factor}


@tool(side_effects=False)
def pick(
    level: Annotated[str, Field(pattern=r"^(low|high)$")],
    code: Annotated[str, Field(max_length=2)] = "ab",
) -> dict[str, str]:
    """A level whose text the schema fixes, and a short code."""
    return {"level": level, "code": code}


@pytest.fixture
def registry() -> ToolRegistry:
    received.clear()
    return ToolRegistry([measure, note, scale, pick])


def plan_of(*steps: dict[str, Any], answer: str | None = None) -> Plan:
    data: dict[str, Any] = {"goal": "test", "steps": list(steps)}
    if answer is not None:
        data["answer"] = answer
    return Plan.model_validate(data)


M = {"id": "m", "tool": "measure", "args": {}}


def codes(issues: list[Issue]) -> list[tuple[str, str]]:
    return [(i.code, i.severity.value) for i in issues]


# ----------------------------------------------------------------------------- severity


def test_an_issue_is_an_error_unless_it_says_warning() -> None:
    error = Issue("cycle", "a -> b -> a", step="a")
    warning = Issue("bare_reference", "$a read as ${a}", step="b", severity=Severity.WARNING)
    assert error.severity is Severity.ERROR and error.is_error and not warning.is_error
    assert str(error) == "cycle: [a] a -> b -> a"
    assert str(warning) == "bare_reference (warning): [b] $a read as ${a}"
    assert warning.to_dict() == {
        "code": "bare_reference",
        "severity": "warning",
        "step": "b",
        "path": "",
        "message": "$a read as ${a}",
        "hint": None,
    }
    assert errors_of([error, warning]) == [error]
    assert warnings_of([error, warning]) == [warning]


def test_check_plan_raises_on_errors_only(registry: ToolRegistry) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": "$m.mean"}})
    assert codes(validate(plan, registry)) == [("coerced_argument", "warning")]
    assert check_plan(plan, registry) is plan


def test_every_warning_code_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for code in WARNING_CODES:
        assert f"`{code}`" in readme, code


# ----------------------------------------------------------------------------- coercions


@pytest.mark.parametrize(
    ("ref", "text"), [("$m.mean", "3.5"), ("$m.count", "4"), ("$m.ok", "true")]
)
def test_a_number_or_boolean_into_text_is_a_warning_and_the_tool_gets_its_text(
    registry: ToolRegistry, ref: str, text: str
) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": ref}})
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity, issue.path) == (
        "coerced_argument",
        Severity.WARNING,
        "steps[1].args.text",
    )
    assert f"note.text takes a string, and {ref} is" in issue.message
    assert issue.hint == f'write "${{{ref[1:]}}}" to pass the text itself'
    result = run_plan(plan, registry)
    assert result.status is RunStatus.SUCCEEDED
    assert received == [{"text": text}] and type(received[0]["text"]) is str


@pytest.mark.parametrize(("value", "text"), [(5, "5"), (2.5, "2.5"), (False, "false")])
def test_a_literal_number_or_boolean_into_text_is_a_warning_too(
    registry: ToolRegistry, value: Any, text: str
) -> None:
    plan = plan_of({"id": "n", "tool": "note", "args": {"text": value}})
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity) == ("coerced_argument", Severity.WARNING)
    assert issue.message.endswith(f"is passed as the text {json.dumps(text)}")
    assert run_plan(plan, registry).status is RunStatus.SUCCEEDED
    assert received == [{"text": text}]


def test_the_text_of_a_number_is_its_json_text_as_interpolation_gives() -> None:
    # Floats print as repr (the shortest text that reads back the same), booleans as JSON.
    assert [as_text(v) for v in (0.1 + 0.2, 1e20, 8.0, -3, True)] == [
        "0.30000000000000004",
        "1e+20",
        "8.0",
        "-3",
        "true",
    ]
    outputs = {"m": {"x": 0.1 + 0.2, "ok": True}}
    from tooldag.plan.refs import resolve

    assert resolve("${m.x}|${m.ok}", outputs) == f"{as_text(0.1 + 0.2)}|true"


def test_an_integer_into_a_number_is_no_coercion_at_all(registry: ToolRegistry) -> None:
    """JSON Schema's number includes the integers: valid, nothing to warn about."""
    plan = plan_of(M, {"id": "s", "tool": "scale", "args": {"factor": "$m.count"}})
    assert validate(plan, registry) == []
    assert run_plan(plan, registry).status is RunStatus.SUCCEEDED
    assert received == [{"factor": 4.0}]


def test_a_one_element_list_where_text_is_expected_stays_an_error(
    registry: ToolRegistry,
) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": "$m.values"}})
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity) == ("type_mismatch", Severity.ERROR)
    assert issue.message == "note.text takes a string, but $m.values is a list"
    assert issue.hint == (
        'a list, even of one item, is not a string: reference one item, e.g. "$m.values.0"'
    )
    literal = plan_of({"id": "n", "tool": "note", "args": {"text": ["one"]}})
    assert codes(validate(literal, registry)) == [("type_mismatch", "error")]
    with pytest.raises(ToolArgumentError):
        registry.get("note").validate_args({"text": ["one"]})


def test_a_number_into_text_of_a_fixed_form_stays_an_error_with_the_fix(
    registry: ToolRegistry,
) -> None:
    plan = plan_of(M, {"id": "p", "tool": "pick", "args": {"level": "$m.mean"}})
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity) == ("type_mismatch", Severity.ERROR)
    assert issue.message == "pick.level takes a string, but $m.mean is a number"
    assert issue.hint == (
        'if its text is meant, write "${m.mean}" (its pattern is checked on the text when the step '
        "runs)"
    )
    assert codes(validate(plan_of({"id": "p", "tool": "pick", "args": {"level": 3}}), registry))[
        0
    ] == ("type_mismatch", "error")
    with pytest.raises(ToolArgumentError):
        registry.get("pick").validate_args({"level": 3})


def test_a_coerced_literal_must_still_fit_the_texts_length(registry: ToolRegistry) -> None:
    short = plan_of({"id": "p", "tool": "pick", "args": {"level": "low", "code": 12}})
    assert codes(validate(short, registry)) == [("coerced_argument", "warning")]
    long = plan_of({"id": "p", "tool": "pick", "args": {"level": "low", "code": 123}})
    assert codes(validate(long, registry)) == [("type_mismatch", "error")]
    with pytest.raises(ToolArgumentError):
        registry.get("pick").validate_args({"level": "low", "code": 123})


def test_schema_only_tools_coerce_the_same_way() -> None:
    registry = ToolRegistry.from_json(
        [
            {"name": "src", "parameters": {"type": "object", "properties": {}},
             "output_schema": {"type": "object", "properties": {"n": {"type": "number"}}}},
            {"name": "dst", "parameters": {"type": "object", "properties": {
                "q": {"type": "string"}, "k": {"type": "string", "enum": ["a", "b"]}}}},
        ]
    )  # fmt: skip
    plan = plan_of(
        {"id": "s", "tool": "src", "args": {}},
        {"id": "d", "tool": "dst", "args": {"q": "$s.n"}},
    )
    assert codes(validate(plan, registry)) == [("coerced_argument", "warning")]
    assert registry.get("dst").validate_args({"q": 7}) == {"q": "7"}
    with pytest.raises(ToolArgumentError):
        registry.get("dst").validate_args({"k": 1})


# ----------------------------------------------------------------------------- $step inside text


def test_a_bare_reference_inside_text_is_read_and_run(registry: ToolRegistry) -> None:
    plan = plan_of(
        M,
        {"id": "n", "tool": "note", "args": {"text": "mean $m.mean of $m.count, $5 in $PATH"}},
        answer="Noted: $n.text",
    )
    assert plan.steps[1].args["text"] == "mean ${m.mean} of ${m.count}, $5 in $PATH"
    assert plan.dependencies()["n"] == ("m",)
    issues = validate(plan, registry)
    assert codes(issues) == [("bare_reference", "warning")] * 3
    assert [(i.step, i.path) for i in issues] == [
        ("n", "steps[1].args.text"),
        ("n", "steps[1].args.text"),
        (None, "answer"),
    ]
    assert issues[0].message == "$m.mean inside text is read as ${m.mean}, the output of step 'm'"
    result = run_plan(plan, registry)
    assert result.status is RunStatus.SUCCEEDED
    assert received == [{"text": "mean 3.5 of 4, $5 in $PATH"}]
    assert result.answer == "Noted: mean 3.5 of 4, $5 in $PATH"


def test_text_that_names_no_step_stays_literal(registry: ToolRegistry) -> None:
    text = "Costs $5 or $HOME/$PATH, $$m.mean escaped, ${m.mean} braced"
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": text}})
    assert plan.steps[1].args["text"] == text and plan.bare_references == ()
    assert validate(plan, registry) == []
    run_plan(plan, registry)
    assert received == [{"text": "Costs $5 or $HOME/$PATH, $m.mean escaped, 3.5 braced"}]


def test_bare_references_in_lists_objects_and_conditions_are_read() -> None:
    data = {"steps": [M, {"id": "n", "tool": "note", "args": {"text": ["a $m.label", {"k": "$m"}]},
            "when": {"ref": "$m.label", "op": "==", "value": "is $m.label"}}]}  # fmt: skip
    original = json.dumps(data)
    plan = Plan.model_validate(data)
    assert plan.steps[1].args["text"] == ["a ${m.label}", {"k": "$m"}]
    assert plan.steps[1].when is not None and plan.steps[1].when.value == "is ${m.label}"
    assert [b.path for b in plan.bare_references] == [
        "steps[1].args.text[0]",
        "steps[1].when.value",
    ]
    assert json.dumps(data) == original  # the caller's data is not changed
    # The plan's JSON is what was read, and reads back the same (with nothing left to read).
    again = parse_plan(plan.dumps())
    assert again.to_json() == plan.to_json() and again.bare_references == ()


def test_a_method_called_on_a_bare_reference_stays_an_error(registry: ToolRegistry) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": "about $m.mean.toFixed(1) C"}})
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity) == ("bad_reference", Severity.ERROR)
    assert "mentions $m.mean.toFixed(1), which is not a reference" in issue.message
    assert issue.hint is not None and 'expression "round(${m.mean}, 1)"' in issue.hint


def test_read_bare_refs_is_the_one_reading() -> None:
    steps = {"a", "weekday"}
    assert read_bare_refs('$a.b and $a["x y"].0 on $weekday.', steps) == (
        '${a.b} and ${a["x y"].0} on ${weekday}.',
        ["a.b", 'a["x y"].0', "weekday"],
    )
    for text in ("$a.b", "${a.b}", "$$a.b x", "$5 $PATH", "$a.b.toString() x", "$weekday."):
        assert read_bare_refs(text, steps) is None, text


# ----------------------------------------------------------------------------- JS/Python-isms

HINTS = [
    ("${m.mean.toString()}", "write ${m.mean}: inside text a value is already its text"),
    ("${String(m.mean)}", "write ${m.mean}: inside text a value is already its text"),
    ("${m.mean.toFixed(2)}", 'calculate with expression "round(${m.mean}, 2)"'),
    ("${m.mean + 1}", 'calculate with expression "${m.mean} + 1"'),
    ("${m.mean * m.count}", 'calculate with expression "${m.mean} * ${m.count}"'),
    ('${m.label + " kg"}', "write ${m.label} kg: text around ${...} is kept as it is"),
    ("${m.label || 'none'}", "write ${m.label}; to act only when a value is there"),
    ("${m.label ?? 'none'}", "write ${m.label}; to act only when a value is there"),
    ("${m.values?.0}", "write ${m.values.0}"),
    ("${len(m.values)}", "a reference cannot count"),
    ("${m.values.length()}", "a reference cannot count"),
    ("${m.values[-1]}", "write ${m.values.0} for the first item"),
    ("${m[label]}", 'write ${m.label} or ${m["label"]}'),
    ("${m.get('label')}", "write ${m.label}"),
    ("${m.mean:.2f}", 'calculate with expression "round(${m.mean}, 2)"'),
    ("${{m.label}}", "write ${m.label}, with one pair"),
]


@pytest.mark.parametrize(("text", "hint"), HINTS)
def test_what_models_write_instead_of_a_reference_gets_a_precise_hint(
    registry: ToolRegistry, text: str, hint: str
) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": f"it is {text}"}})
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity) == ("bad_reference", Severity.ERROR)
    assert issue.hint is not None and hint in issue.hint, issue.hint


def test_quoted_keys_and_bracket_indexes_are_references_already(registry: ToolRegistry) -> None:
    plan = plan_of(
        M,
        {
            "id": "n",
            "tool": "note",
            "args": {"text": "${m['label']} ${m[\"label\"]} ${m.values[0]}"},
        },
    )
    assert validate(plan, registry) == []
    run_plan(plan, registry)
    assert received == [{"text": "x x 7.0"}]


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("m.values.length", "a reference cannot count"),
        ("m.label.length", "a reference cannot count"),
        ("m.mean.toString", "write ${m.mean}: inside text a value is already its text"),
    ],
)
def test_a_js_property_on_a_path_gets_a_hint(registry: ToolRegistry, path: str, hint: str) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": f"${{{path}}}"}})
    (issue,) = validate(plan, registry)
    assert issue.code == "unknown_field"
    assert issue.hint is not None and hint in issue.hint


def test_a_malformed_reference_at_run_time_says_the_fix() -> None:
    parsed = parse_string("${a.b.toString()}")
    from tooldag.errors import ReferenceResolutionError
    from tooldag.plan.refs import resolve

    assert not isinstance(parsed, str)
    with pytest.raises(ReferenceResolutionError, match=r"write \$\{a\.b\}"):
        resolve("${a.b.toString()}", {"a": {"b": 1}})


# ----------------------------------------------------------------------------- guessed answers


def test_an_answer_that_reads_no_step_is_a_guessed_answer(registry: ToolRegistry) -> None:
    plan = plan_of(M, answer="The mean is 3.5.")
    (issue,) = validate(plan, registry)
    assert (issue.code, issue.severity, issue.path) == (
        "guessed_answer",
        Severity.WARNING,
        "answer",
    )
    for fine in (plan_of(M, answer="The mean is ${m.mean}."), plan_of(M), plan_of(answer="Hi")):
        assert validate(fine, registry) == []


# ----------------------------------------------------------------------------- the three real plans


@pytest.fixture
def text_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    for name in ("OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "TOOLDAG_OUTPUT_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("TOOLDAG_MODEL", "fake-model")
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


def real_plan(name: str) -> Plan:
    return parse_plan((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_stats_mean_into_calculate_expression_runs() -> None:
    registry = pack_registry(*PACKS)
    plan = real_plan("stats_mean_into_expression")
    issues = validate(plan, registry)
    assert not errors_of(issues)
    assert [str(i) for i in issues] == [
        "coerced_argument (warning): [calculate] calculate.expression takes a string, and "
        '$stats.mean is a number: it is passed as its JSON text (3.5 as "3.5") (write '
        '"${stats.mean}" to pass the text itself)'
    ]
    result = run_plan(plan, registry)
    assert result.status is RunStatus.SUCCEEDED
    assert result.steps["calculate"].output == {"expression": "8.0", "result": 8.0}
    assert result.answer == "The mean is 8.0; doubled, 16.0."


def test_calculate_result_into_extract_text_runs(text_llm: respx.MockRouter) -> None:
    registry = pack_registry(*PACKS)
    plan = real_plan("calculate_result_into_extract")
    issues = validate(plan, registry)
    assert codes(issues) == [("coerced_argument", "warning")]
    assert "extract.text takes a string, and $calculate.result is" in issues[0].message
    script = mock_openai(text_llm, ["398"])
    result = run_plan(plan, registry)
    assert result.status is RunStatus.SUCCEEDED, result.error
    prompt = script.requests[0]["messages"][0]["content"]
    assert '<data name="text">\n397.8\n</data>' in prompt  # the tool was given the text
    assert result.answer == "17% of 2,340 is about 398."


def test_a_bare_weekday_in_the_answer_runs() -> None:
    registry = pack_registry(*PACKS)
    plan = real_plan("bare_weekday_in_answer")
    assert plan.answer == "The date is ${date_add.result}, and the weekday is ${weekday}"
    assert codes(validate(plan, registry)) == [("bare_reference", "warning")]
    result = run_plan(plan, registry)
    assert result.status is RunStatus.SUCCEEDED
    assert result.answer is not None
    assert result.answer.startswith("The date is 2027-04-11, and the weekday is {")
    assert '"weekday": "Sunday"' in result.answer


# ----------------------------------------------------------------------------- where warnings show


def test_validate_cli_exits_0_with_warnings_printed_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(FIXTURES / "stats_mean_into_expression.json")
    code, out, _ = run(capsys, "validate", path, "--tools", "calc")
    assert code == 0
    text = flat(out)
    assert "valid plan, 3 step(s) over 2 tool(s), 1 warning(s)" in text
    assert "! coerced_argument (warning): [calculate] calculate.expression takes a string" in text
    assert "✗" not in text
    code, out, _ = run(capsys, "validate", path, "--tools", "calc", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["valid"] is True
    assert [(i["code"], i["severity"]) for i in data["issues"]] == [("coerced_argument", "warning")]


def test_validate_cli_lists_errors_then_warnings_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = {"steps": [{"id": "c", "tool": "calculate", "args": {"expression": 5}},
                      {"id": "d", "tool": "calculat", "args": {}}]}  # fmt: skip
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(path), "--tools", "calc")
    assert code == 1
    text = flat(out)
    assert "1 error(s), 1 warning(s)" in text
    assert text.index("✗ unknown_tool") < text.index("! coerced_argument")


def test_the_plan_view_shows_the_warnings(registry: ToolRegistry) -> None:
    plan = plan_of(M, {"id": "n", "tool": "note", "args": {"text": "$m.mean"}}, answer="ok")
    console = Console(width=200, record=True, color_system=None)
    console.print(plan_view(plan, registry))
    shown = console.export_text()
    assert "! coerced_argument (warning): [n] note.text takes a string" in shown
    assert "! guessed_answer (warning)" in shown
    console.print(plan_view(plan, registry, issues=[]))  # the caller's issues: none
    assert console.export_text().count("coerced_argument") == 0


# ----------------------------------------------------------------------------- the planner


WARNED = {
    "steps": [
        {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
        {
            "id": "outfit",
            "tool": "recommend_outfit",
            "args": {"temperature": "$weather.temp", "condition": "$weather.temp"},
        },
    ],
    "answer": "Wear $outfit.outfit.",
}
BROKEN = {**WARNED, "steps": [*WARNED["steps"], {"id": "x", "tool": "get_wether", "args": {}}]}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    LLMClient.forget_working_modes()
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def llm() -> LLMClient:
    return LLMClient.from_env(api_key="sk-test", env={})


async def test_the_planner_does_not_re_ask_for_warnings(
    router: respx.MockRouter, weather_registry: ToolRegistry
) -> None:
    registry = weather_registry
    script = mock_openai(router, [WARNED, WARNED])
    plan = await Planner(registry, llm()).plan("weather and an outfit")
    assert len(script.requests) == 1
    assert plan.answer == "Wear ${outfit.outfit}."
    assert {i.code for i in validate(plan, registry)} == {"coerced_argument", "bare_reference"}


async def test_a_re_ask_sends_back_the_errors_only(
    router: respx.MockRouter, weather_registry: ToolRegistry
) -> None:
    registry = weather_registry
    script = mock_openai(router, [BROKEN, BROKEN])
    with pytest.raises(PlanRejected) as rejected:
        await Planner(registry, llm(), max_reasks=1).plan("weather and an outfit")
    assert len(script.requests) == 2
    repair = script.requests[1]["messages"][-1]["content"]
    assert "unknown_tool" in repair
    assert "coerced_argument" not in repair and "bare_reference" not in repair
    assert [i.code for i in rejected.value.issues] == ["unknown_tool"]


async def test_the_mcp_server_validates_and_runs_a_plan_with_warnings_only() -> None:
    from mcp import Client

    from tooldag.registry.loading import load_registry
    from tooldag.ui.mcp_server import build_server

    plan = json.loads((FIXTURES / "stats_mean_into_expression.json").read_text(encoding="utf-8"))
    async with Client(build_server(load_registry(["calc"]))) as client:
        checked = (await client.call_tool("validate", {"plan": plan})).structured_content
        ran = await client.call_tool("exec", {"plan": plan})
    assert checked is not None and checked["valid"] is True
    assert [(i["code"], i["severity"]) for i in checked["issues"]] == [
        ("coerced_argument", "warning")
    ]
    assert not ran.is_error and ran.structured_content is not None
    assert ran.structured_content["answer"] == "The mean is 8.0; doubled, 16.0."
