"""The lenient parser on what LLMs actually write, and its promise: a Plan or PlanParseError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tooldag.errors import PlanParseError
from tooldag.issues import Issue
from tooldag.plan import Plan
from tooldag.plan.parse import extract_json, parse_plan

SEED = {
    "goal": "Weather and outfit",
    "steps": [
        {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
        {
            "id": "outfit",
            "tool": "recommend_outfit",
            "args": {"temperature": "$weather.temp", "condition": "$weather.condition"},
        },
    ],
    "answer": "Wear ${outfit.outfit}",
}
SEED_JSON = json.dumps(SEED, indent=2)
# What every seed-shaped reply below must come out as.
SEED_STEPS = [
    ("weather", "get_weather", {"location": "London"}),
    (
        "outfit",
        "recommend_outfit",
        {"temperature": "$weather.temp", "condition": "$weather.condition"},
    ),
]


def shape(plan: Plan) -> list[tuple[str, str, dict[str, Any]]]:
    return [(s.id, s.tool, s.args) for s in plan.steps]


def parse_issues(text: Any) -> list[str]:
    with pytest.raises(PlanParseError) as error:
        parse_plan(text)
    assert error.value.issues, "a parse error always carries issues"
    return [issue.code for issue in error.value.issues]


# Replies that hold the seed plan, written the ways models write it.
SEED_REPLIES = {
    "bare json": SEED_JSON,
    "fenced json": f"```json\n{SEED_JSON}\n```",
    "fence without language": f"```\n{SEED_JSON}\n```",
    "fence with JSON in capitals and no final newline": f"```JSON\n{SEED_JSON}```",
    "chatty prose before and after": (
        "Sure! Here is the plan you asked for:\n\n"
        f"{SEED_JSON}\n\nLet me know if you want me to run it."
    ),
    "prose with brackets before the plan": (
        "I will do this in [2] steps (weather, then outfit) {roughly}:\n" + SEED_JSON
    ),
    "thinking block then fenced plan": (
        "<think>The user wants {weather}. I need get_weather first.</think>\n"
        f"```json\n{SEED_JSON}\n```"
    ),
    "two fences, python first": (
        "```python\nprint('hello')\n```\nand the plan:\n```json\n" + SEED_JSON + "\n```"
    ),
    "byte order mark and whitespace": "\ufeff  \n" + SEED_JSON + "\n\n",
    "trailing commas": SEED_JSON.replace('"London"', '"London",').replace("}\n  ]", "},\n  ]"),
    "python literal dict": repr(SEED),
    "json encoded twice": json.dumps(SEED_JSON),
    "plan wrapper": json.dumps({"plan": SEED}),
    "plan wrapper with thoughts": json.dumps({"thoughts": "easy", "plan": SEED}),
    "tasks key and tool_name/parameters aliases": json.dumps(
        {
            "objective": "Weather and outfit",
            "tasks": [
                {
                    "step_id": "weather",
                    "tool_name": "get_weather",
                    "parameters": {"location": "London"},
                },
                {
                    "step_id": "outfit",
                    "toolName": "recommend_outfit",
                    "params": {"temperature": "$weather.temp", "condition": "$weather.condition"},
                },
            ],
        }
    ),
    "name/arguments aliases with arguments as a JSON string": json.dumps(
        [
            {"id": "weather", "name": "get_weather", "arguments": '{"location": "London"}'},
            {
                "id": "outfit",
                "name": "recommend_outfit",
                "arguments": json.dumps(SEED["steps"][1]["args"]),  # type: ignore[index]
            },
        ]
    ),
    "openai tool_calls": json.dumps(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "weather",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "London"}'},
                },
                {
                    "id": "outfit",
                    "type": "function",
                    "function": {
                        "name": "recommend_outfit",
                        "arguments": json.dumps(SEED["steps"][1]["args"]),  # type: ignore[index]
                    },
                },
            ],
        }
    ),
    "bare list of steps": json.dumps(SEED["steps"]),
    "steps keyed by id": json.dumps(
        {
            "steps": {
                "weather": {"tool": "get_weather", "args": {"location": "London"}},
                "outfit": {"tool": "recommend_outfit", "args": SEED["steps"][1]["args"]},  # type: ignore[index]
            }
        }
    ),
    "action/input aliases": json.dumps(
        [
            {"id": "weather", "action": "get_weather", "input": {"location": "London"}},
            {"id": "outfit", "action": "recommend_outfit", "input": SEED["steps"][1]["args"]},  # type: ignore[index]
        ]
    ),
}


@pytest.mark.parametrize("reply", list(SEED_REPLIES.values()), ids=list(SEED_REPLIES))
def test_llm_reply_shapes_give_the_seed_plan(reply: str) -> None:
    assert shape(parse_plan(reply)) == SEED_STEPS


def test_goal_and_answer_are_kept() -> None:
    plan = parse_plan(f"```json\n{SEED_JSON}\n```")
    assert plan.goal == "Weather and outfit"
    assert plan.answer == "Wear ${outfit.outfit}"
    assert plan.dependencies() == {"weather": (), "outfit": ("weather",)}


def test_single_step_object_is_a_one_step_plan() -> None:
    plan = parse_plan('{"tool": "get_weather", "args": {"location": "Paris"}}')
    assert shape(plan) == [("step1", "get_weather", {"location": "Paris"})]


def test_depends_on_as_a_string_or_comma_list() -> None:
    plan = parse_plan(
        [
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t", "depends_on": "a"},
            {"id": "c", "tool": "t", "dependencies": "a, b"},
            {"id": "d", "tool": "t", "after": ["$c"]},
        ]
    )
    assert [s.depends_on for s in plan.steps] == [[], ["a"], ["a", "b"], ["c"]]


def test_numeric_ids_are_renamed_and_references_follow() -> None:
    plan = parse_plan(
        json.dumps(
            {
                "steps": [
                    {"id": 1, "tool": "get_weather", "args": {"location": "Oslo"}},
                    {
                        "id": 2,
                        "tool": "recommend_outfit",
                        "args": {"temperature": "$1.temp", "condition": "${1.condition}"},
                        "depends_on": [1],
                        "when": {"ref": "$1.temp", "op": "<", "value": 30},
                    },
                ],
                "answer": "Wear ${2.outfit} (costs $$1.50)",
            }
        )
    )
    assert plan.ids == ["step1", "step2"]
    second = plan.steps[1]
    assert second.args == {"temperature": "$step1.temp", "condition": "${step1.condition}"}
    assert second.depends_on == ["step1"]
    assert second.when is not None and second.when.ref == "$step1.temp"
    assert plan.answer == "Wear ${step2.outfit} (costs $$1.50)"


@pytest.mark.parametrize("as_text", [False, True])
def test_numbered_steps_read_as_they_are_agree_with_the_normaliser(as_text: bool) -> None:
    """Steps numbered but otherwise canonical skip the normaliser (100k-step plans): the plan
    must be the one the normaliser makes of the same steps written with an alias key."""
    steps: list[dict[str, Any]] = [
        {"id": 1, "tool": "get_weather", "args": {"location": "Oslo"}},
        {"id": "named", "tool": "t", "args": {"x": "${1.temp} and $1"}, "depends_on": [1]},
        {
            "id": 3,
            "tool": "t",
            "args": {"y": ["$1.temp", {"z": "$named"}]},
            "depends_on": [1, "named"],
        },
        {"id": 4, "tool": "t", "depends_on": [9], "description": "waits for a step not there"},
    ]
    aliased = [{("tool_name" if k == "tool" else k): v for k, v in s.items()} for s in steps]
    fast = {"steps": steps, "answer": "${3.y}"}
    plan = parse_plan(json.dumps(fast) if as_text else fast)
    assert plan.to_json() == parse_plan({"steps": aliased, "answer": "${3.y}"}).to_json()
    assert plan.ids == ["step1", "named", "step3", "step4"]
    assert [s.depends_on for s in plan.steps] == [[], ["step1"], ["step1", "named"], ["9"]]
    assert plan.steps[2].args == {"y": ["$step1.temp", {"z": "$named"}]}
    assert steps[0]["id"] == 1 and steps[2]["depends_on"] == [1, "named"]  # the caller's, as given


def test_missing_ids_are_numbered_by_position() -> None:
    plan = parse_plan([{"tool": "a"}, {"tool": "b"}])
    assert plan.ids == ["step1", "step2"]


def test_seed_style_condition_is_normalised() -> None:
    plan = parse_plan(
        [
            {"id": "weather", "tool": "get_weather", "args": {"location": "Oslo"}},
            {
                "id": "alert",
                "tool": "send_alert",
                "args": {"message": "cold"},
                "condition": {"field": "weather.temp", "operator": "<", "value": 0},
            },
            {
                "id": "warm",
                "tool": "send_alert",
                "args": {"message": "warm"},
                "if": {"all": [{"left": "${weather.temp}", "cmp": ">", "right": 25}]},
            },
        ]
    )
    alert, warm = plan.steps[1].when, plan.steps[2].when
    assert alert is not None and alert.to_json() == {"ref": "$weather.temp", "op": "<", "value": 0}
    assert warm is not None and warm.to_json() == {
        "all": [{"ref": "$weather.temp", "op": ">", "value": 25}]
    }


def test_input_dicts_are_not_mutated_and_the_plan_owns_its_args() -> None:
    raw = [{"id": 1, "tool": "t", "args": {"x": "$1.y"}}, {"id": "b", "tool": "t", "args": {}}]
    before = json.loads(json.dumps(raw))
    plan = parse_plan(raw)
    plan.steps[1].args["new"] = 1
    assert raw == before


def test_a_plan_passes_through_unchanged() -> None:
    plan = parse_plan(SEED_JSON)
    assert parse_plan(plan) is plan


def test_bytes_are_decoded() -> None:
    assert shape(parse_plan(SEED_JSON.encode())) == SEED_STEPS


# --------------------------------------------------------------------------- reported, not guessed


@pytest.mark.parametrize("cut", [40, 120, len(SEED_JSON) - 3])
def test_truncated_json_is_reported_not_guessed(cut: int) -> None:
    text = "Here is the plan:\n```json\n" + SEED_JSON[:cut]
    with pytest.raises(PlanParseError) as error:
        parse_plan(text)
    (issue,) = error.value.issues
    assert issue.code == "truncated_json"
    assert "cut off" in issue.message and issue.hint


def test_truncated_after_a_complete_first_step_is_still_truncated() -> None:
    # The first step is a complete object: taking it for the plan would drop the rest silently.
    text = SEED_JSON[: SEED_JSON.index('"id": "outfit"')]
    assert parse_issues(text) == ["truncated_json"]


def test_syntax_error_is_reported_with_its_position_not_a_fragment() -> None:
    text = SEED_JSON.replace('"London"', '"London" "units": "c"')
    with pytest.raises(PlanParseError) as error:
        parse_plan(text)
    (issue,) = error.value.issues
    assert issue.code == "not_json"
    assert "line 8 column 30" in issue.message


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "not_json"),
        ("   \n\t ", "not_json"),
        ("I cannot help with that.", "not_json"),
        ("42", "bad_plan"),
        ('"just a string"', "bad_plan"),
        ("null", "bad_plan"),
        ('{"steps": "get the weather"}', "bad_plan"),
        ('{"steps": [42]}', "bad_step"),
        ('{"steps": [{"id": "a"}]}', "bad_step"),
        ('{"steps": [{"id": "a", "tool": 7}]}', "bad_step"),
        ('{"steps": [{"id": "a", "tool": "t", "args": [1, 2]}]}', "bad_args"),
        ('{"steps": [{"id": "a", "tool": "t", "args": "location=London"}]}', "bad_args"),
        ('{"steps": [{"id": ["a"], "tool": "t"}]}', "invalid_id"),
        ('{"steps": [{"id": "a", "tool": "t", "depends_on": {"x": 1}}]}', "bad_step"),
        ('{"steps": [{"id": "a", "tool": "t", "when": "weather is cold"}]}', "bad_condition"),
        ('{"steps": [{"id": "a", "tool": "t", "when": {"all": "x"}}]}', "bad_condition"),
    ],
)
def test_unusable_replies_get_a_clear_issue(text: str, code: str) -> None:
    assert parse_issues(text)[0] == code


def test_deeply_nested_junk_is_a_parse_error_not_a_crash() -> None:
    assert parse_issues("[" * 5000 + "]" * 5000)
    assert parse_issues('{"steps": ' + "[" * 3000 + "]" * 3000 + "}")
    deep: Any = {"ref": "$a.b", "op": "==", "value": 1}
    for _ in range(400):
        deep = {"not": deep}
    # Either outcome is fine (pydantic may refuse the depth); a crash is not.
    with contextlib.suppress(PlanParseError):
        parse_plan(json.dumps([{"id": "a", "tool": "t", "when": deep}]))


def test_python_literal_values_become_json_values() -> None:
    plan = parse_plan("{'steps': [{'id': 'a', 'tool': 't', 'args': {'xs': (1, 2), 'flag': True}}]}")
    assert plan.steps[0].args == {"xs": [1, 2], "flag": True}
    json.dumps(plan.to_json())


def test_extract_json_prefers_the_json_fence() -> None:
    text = '```\n[1, 2]\n```\n```json\n{"a": 1}\n```'
    assert extract_json(text) == {"a": 1}


# --------------------------------------------------------------------------- the promise

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "tool",
                    "args",
                    "steps",
                    "plan",
                    "name",
                    "arguments",
                    "depends_on",
                    "when",
                    "ref",
                    "op",
                    "value",
                    "all",
                    "any",
                    "not",
                    "goal",
                    "answer",
                    "function",
                    "x",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


def _check_promise(source: Any) -> None:
    try:
        plan = parse_plan(source)
    except PlanParseError as error:
        assert error.issues and all(issue.code and issue.message for issue in error.issues)
    else:
        assert isinstance(plan, Plan)
        json.dumps(plan.to_json())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_parse_plan_on_any_text_returns_a_plan_or_raises_plan_parse_error(text: str) -> None:
    _check_promise(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values)
def test_parse_plan_on_any_json_value_returns_a_plan_or_raises_plan_parse_error(value: Any) -> None:
    _check_promise(value)
    _check_promise(json.dumps(value))
    _check_promise("Here you go:\n```json\n" + json.dumps(value) + "\n```")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_prefix_of_a_plan_parses_or_is_reported(data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(SEED_JSON)))
    _check_promise(SEED_JSON[:cut])


_canonical_steps = st.lists(
    st.builds(
        lambda i, tool, args, deps: {"id": f"s{i}", "tool": tool, "args": args, "depends_on": deps},
        st.integers(0, 3),
        st.sampled_from(["get_weather", "notify"]),
        st.dictionaries(st.sampled_from(["x", "y"]), st.integers() | st.just("$s0.v"), max_size=2),
        st.lists(st.sampled_from(["s0", "s1"]), max_size=2),
    ),
    min_size=1,
    max_size=3,
)
# One near miss each: what the normaliser changes, or what pydantic alone would read differently.
_NEAR_MISSES: dict[str, Any] = {
    "id with blanks": ("id", " s9 "),
    "numeric id": ("id", "7"),
    "integer id": ("id", 7),
    "tool with blanks": ("tool", "notify "),
    "dependency with $": ("depends_on", ["$s0"]),
    "dependency as text": ("depends_on", "s0"),
    "numeric dependency": ("depends_on", ["1"]),
    "timeout true": ("timeout", True),
    "timeout text": ("timeout", "5"),
    "negative timeout": ("timeout", -1),
    "good timeout": ("timeout", 2.5),
    "description number": ("description", 3),
    "seed-style condition": ("when", {"field": "s0.v", "operator": "<", "value": 1}),
    "field alias only": ("when", {"field": "$s0.v"}),
    "ref without $": ("when", {"ref": "s0.v", "op": "<", "value": 1}),
    "ref as template": ("when", {"ref": "${s0.v}", "op": "<", "value": 1}),
    "nested alias": ("when", {"not": {"left": "$s0.v", "op": "==", "right": 1}}),
    "canonical condition": ("when", {"all": [{"ref": "$s0.v", "op": "<", "value": 1}]}),
    "alias key": ("tool_name", "notify"),
}


@st.composite
def _near_canonical_plans(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(_canonical_steps)
    for name in draw(st.lists(st.sampled_from(sorted(_NEAR_MISSES)), max_size=2)):
        key, value = _NEAR_MISSES[name]
        draw(st.sampled_from(steps))[key] = value
    plan: dict[str, Any] = {"goal": "g", "steps": steps, "answer": draw(_answers)}
    plan_miss = draw(st.sampled_from([None, None, None, ("goal", 3), ("answer", 7)]))
    if plan_miss:
        plan[plan_miss[0]] = plan_miss[1]
    return plan


_answers = st.sampled_from(["${s0.v}", None])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_near_canonical_plans())
def test_json_text_and_the_decoded_value_parse_to_the_same_plan(data: dict[str, Any]) -> None:
    """Canonical JSON text takes a fast path (pydantic reads it directly); the value takes the
    normaliser. Both must agree on every input, including the almost-canonical ones."""
    text = json.dumps(data)
    try:
        from_value = parse_plan(data).to_json()
    except PlanParseError as error:
        with pytest.raises(PlanParseError) as again:
            parse_plan(text)
        assert [i.code for i in again.value.issues] == [i.code for i in error.issues]
        return
    assert parse_plan(text).to_json() == from_value


@pytest.mark.parametrize("miss", sorted(_NEAR_MISSES))
def test_each_near_miss_parses_the_same_from_text_and_from_the_value(miss: str) -> None:
    key, value = _NEAR_MISSES[miss]
    for deps in ([], ["s0"]):
        step = {"id": "s1", "tool": "notify", "args": {"x": "$s0.v"}, "depends_on": deps}
        data = {"goal": "g", "steps": [{"id": "s0", "tool": "notify"}, {**step, key: value}]}
        assert parse_plan(json.dumps(data)).to_json() == parse_plan(data).to_json()


# --------------------------------------------------------------------------- strings are kept


def test_the_trailing_comma_repair_leaves_strings_alone() -> None:
    text = '{"steps":[{"id":"a","tool":"echo","args":{"text":"keep this: [1, 2, ]"}},]}'
    assert parse_plan(text).steps[0].args == {"text": "keep this: [1, 2, ]"}


def test_json_with_python_constants_keeps_json_escapes() -> None:
    # Read as a Python literal, "\/" stayed two characters and the escaped emoji became two lone
    # surrogates; the constants are now repaired and the strings read by JSON's rules.
    args = r'{"u": "a\/b", "e": "\ud83d\ude00", "f": True}'
    text = '{"steps": [{"id": "a", "tool": "t", "args": ' + args + "}]}"
    assert parse_plan(text).steps[0].args == {"u": "a/b", "e": "\U0001f600", "f": True}


def test_a_plan_quoted_inside_a_string_of_cut_off_json_is_not_taken_for_the_plan() -> None:
    text = '{"goal": "g", "steps": [{"id": "a", "tool": "t", "args": {"x": "{\'steps\': []}"}}'
    assert parse_issues(text) == ["truncated_json"]


def test_renumbering_steps_leaves_literal_dollars_alone() -> None:
    plan = parse_plan(
        [
            {"id": 1, "tool": "t"},
            {
                "id": 2,
                "tool": "t",
                "args": {"price": "pay $1.50 now", "escaped": "$$1.x", "after": "cost: $$${1.x}"},
            },
        ]
    )
    assert plan.steps[1].args == {
        "price": "pay $1.50 now",
        "escaped": "$$1.x",
        "after": "cost: $$${step1.x}",
    }


# What the repairs look for, written inside strings, where no repair may touch it.
_TRICKY = [
    ", ]",
    ",}",
    "[1, 2, ]",
    "True",
    "None",
    "false",
    "{'steps': []}",
    "[{'tool': 'x'}]",
    '{"steps": [],}',
    "```json\n{}\n```",
    "```",
    "\\/",
    "$1.50",
    "$$",
    "${a.x}",
    "'",
    '"',
    "\\",
    "\U0001f600",
    "\n",
    "\t",
]
_texts = st.one_of(
    st.sampled_from(_TRICKY),
    st.text(max_size=12),
    st.lists(st.sampled_from(_TRICKY) | st.text(max_size=4), max_size=4).map("".join),
)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_texts, children, max_size=3),
    max_leaves=10,
)
_plain_ids = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@st.composite
def _plans_full_of_text(draw: st.DrawFn) -> dict[str, Any]:
    """A plan in canonical form (what ``Plan.to_json`` gives back) with text in every place a plan
    holds text: goal, argument names and values, descriptions, condition values, answer."""
    ids = draw(st.lists(_plain_ids, min_size=1, max_size=3, unique=True))
    steps = []
    for sid in ids:
        step: dict[str, Any] = {
            "id": sid,
            "tool": draw(st.sampled_from(["echo", "notify"])),
            "args": draw(st.dictionaries(_texts, _values, max_size=3)),
        }
        if draw(st.booleans()):
            step["when"] = {
                "ref": f"${draw(st.sampled_from(ids))}.x",
                "op": "==",
                "value": draw(_texts),
            }
        description = draw(_texts)
        if description:
            step["description"] = description
        steps.append(step)
    plan: dict[str, Any] = {"goal": draw(_texts), "steps": steps}
    if draw(st.booleans()):
        plan["answer"] = draw(_texts)
    return plan


def _sloppy_json(value: Any, draw: Any, *, ascii_only: bool, constants: bool) -> str:
    """JSON text of ``value`` as models write it: a trailing comma after some containers' last
    item and, with ``constants``, Python's True/False/None (outside strings, where they belong)."""

    def dump(item: Any) -> str:
        if isinstance(item, dict | list):
            parts = (
                [f"{json.dumps(k, ensure_ascii=ascii_only)}: {dump(v)}" for k, v in item.items()]
                if isinstance(item, dict)
                else [dump(v) for v in item]
            )
            comma = "," if parts and draw(st.booleans()) else ""
            opening, closing = "{}" if isinstance(item, dict) else "[]"
            return opening + ", ".join(parts) + comma + closing
        if constants and (item is None or isinstance(item, bool)):
            return repr(item)
        return json.dumps(item, ensure_ascii=ascii_only)

    return dump(value)


# Seven replies per plan: fewer examples than the cheaper properties above, no deadline.
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plans_full_of_text(), st.data())
def test_every_string_of_a_plan_comes_through_byte_for_byte(
    plan: dict[str, Any], data: st.DataObject
) -> None:
    ascii_only = data.draw(st.booleans())
    sloppy = _sloppy_json(plan, data.draw, ascii_only=ascii_only, constants=False)
    with_constants = _sloppy_json(plan, data.draw, ascii_only=ascii_only, constants=True)
    replies = {
        "json": json.dumps(plan, ensure_ascii=ascii_only),
        "indented json": json.dumps(plan, ensure_ascii=ascii_only, indent=2),
        "trailing commas": sloppy,
        "trailing commas and Python constants": with_constants,
        "fenced, trailing commas": f"Here is the plan:\n```json\n{sloppy}\n```\nDone.",
        "in prose, trailing commas": f"Sure! {sloppy} Let me know.",
        "python literal": repr(plan),
    }
    for how, reply in replies.items():
        assert parse_plan(reply).to_json() == plan, how


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plans_full_of_text(), st.data())
def test_a_cut_off_plan_is_reported_and_never_read_out_of_its_strings(
    plan: dict[str, Any], data: st.DataObject
) -> None:
    text = json.dumps(plan)
    cut = data.draw(st.integers(min_value=1, max_value=len(text) - 1))
    for reply in (text[:cut], "Here is the plan:\n" + text[:cut]):
        assert parse_issues(reply) == ["truncated_json"]


@pytest.mark.parametrize("where", ["whole", "in_args"])
def test_valid_json_nested_past_the_parser_depth_says_so(where: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = (
        deep
        if where == "whole"
        else ('{"steps": [{"id": "a", "tool": "t", "args": {"x": ' + deep + "}}]}")
    )
    with pytest.raises(PlanParseError, match="nested too deeply") as info:
        parse_plan(text)
    assert [i.code for i in info.value.issues] == ["not_json"]


# --------------------------------------------------------------------------- linear on junk

# Text shaped to make a bracket search slow: cut-off values everywhere, strings opened and never
# closed, brackets nested thousands deep, fences by the thousand.
_JUNK = {
    "open braces": "{" * 60_000,
    "brace, letter": "{a" * 30_000,
    "cut-off strings": '{"a": "x' * 8_000,
    "single quotes": "{'" * 30_000,
    "slowly deeper": "{{}" * 20_000,
    "never back to zero": "{" + "{}" * 30_000,
    "nested lists": "[{" * 30_000,
    "deep and closed": "[" * 30_000 + "]" * 30_000,
    "lists in prose": "x[1, " * 12_000,
    "fences": "```json\n{" * 7_000,
}


@pytest.mark.parametrize("name", sorted(_JUNK))
def test_junk_is_rejected_reading_each_character_a_bounded_number_of_times(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bracket scan reads from a candidate to where its value closes (or to the end): the
    scans together must cover the text a bounded number of times, not once per candidate (which
    made 3 MB of junk take minutes)."""
    from tooldag.plan import _jsontext

    text = _JUNK[name]
    scanned: list[int] = []
    searched: list[int] = []
    scan, search = _jsontext._scan, _jsontext._search

    def counting_scan(where: str, start: int) -> tuple[int | None, int]:
        end, depth = scan(where, start)
        scanned.append((len(where) if end is None else end) - start)
        return end, depth

    def counting_search(where: str) -> Any:
        searched.append(len(where))
        return search(where)

    monkeypatch.setattr(_jsontext, "_scan", counting_scan)
    monkeypatch.setattr(_jsontext, "_search", counting_search)
    with contextlib.suppress(PlanParseError):
        parse_plan(text)
    assert sum(scanned) <= 2 * len(text)
    assert sum(searched) <= 2 * len(text)  # the fences tried, and the whole text once


def test_a_complete_plan_after_a_cut_off_one_is_found() -> None:
    cut = SEED_JSON[: SEED_JSON.index('"id": "outfit"')]
    assert shape(parse_plan(f"Draft: {cut}\n\nSorry, the whole plan. {SEED_JSON}")) == SEED_STEPS


def test_a_big_text_is_not_read_as_a_python_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's parser takes about a microsecond a character (a minute for megabytes of junk):
    the literal fallback is for replies, and a plan that big is JSON."""
    import ast

    calls: list[int] = []
    literal_eval = ast.literal_eval

    def counting(text: str) -> Any:
        calls.append(len(text))
        return literal_eval(text)

    monkeypatch.setattr(ast, "literal_eval", counting)
    with pytest.raises(PlanParseError):
        parse_plan("[True,]" * 100_000)
    assert calls == []
    small = "{'steps': [{'id': 'a', 'tool': 't', 'args': {'xs': (1, 2)}}]}"
    assert parse_plan(small).steps[0].args == {"xs": [1, 2]}
    assert calls


def test_a_cut_off_plan_is_worded_for_whoever_wrote_it() -> None:
    text = '{"goal": "g", "steps": [\n  {"id": "a", "tool": "t", "args": {'
    with pytest.raises(PlanParseError) as by_llm:
        parse_plan(text)
    # The planner's re-ask speaks to the LLM...
    assert "the reply was probably truncated" in by_llm.value.issues[0].message
    assert by_llm.value.issues[0].hint == "send the complete plan; if it is long, use fewer steps"
    with pytest.raises(PlanParseError) as by_person:
        parse_plan(text, audience="person")
    # ...a plan file to the person who wrote it.
    [issue] = by_person.value.issues
    assert issue.code == "truncated_json"
    assert issue.message == (
        "the file ends before the JSON is complete (line 2: 4 bracket(s) still open)"
    )


def test_repairs_are_noted_only_when_asked_for() -> None:
    text = '{"goal": "g",\n "steps": [{"id": "a", "tool": "t", "args": {"x": True},},\n]}'
    notes: list[Issue] = []
    plan = parse_plan(text, audience="person", notes=notes)
    assert plan.steps[0].args == {"x": True}
    [note] = notes
    assert note.code == "repaired_json" and not note.is_error
    assert note.message == (
        "the JSON was read once repaired: 2 trailing commas dropped (line 2), True read as true "
        "(line 2)"
    )
    assert parse_plan(text) == plan  # nothing noted, same plan
