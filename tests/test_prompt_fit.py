"""The planner's prompt for small models: its example uses only tools of the catalogue and is a
valid plan, and a 5-tool catalogue, a goal and a plan fit a 2,048-token context."""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Annotated, Any

import pytest
from pydantic import Field

from tooldag.issues import Issue
from tooldag.plan import Plan
from tooldag.plan.parse import parse_plan
from tooldag.planning.prompting import (
    example_plan,
    repair_prompt,
    system_prompt,
    tool_line,
    user_prompt,
)
from tooldag.registry import Tool, ToolRegistry, tool
from tooldag.registry.loading import builtin_packs, load_registry, load_tools
from tooldag.validate.validator import validate

PACKS = {pack: load_tools(pack) for pack in builtin_packs()}
COMBINATIONS = [
    combo for k in range(1, len(PACKS) + 1) for combo in itertools.combinations(sorted(PACKS), k)
]


def shown_example(system: str) -> Plan | None:
    """The example plan as the model reads it: the JSON after the example's heading."""
    heading = re.search(r"^# Example.*\n", system, re.MULTILINE)
    if heading is None:
        return None
    return parse_plan(json.loads(system[heading.end() :]))


def catalogue_tools(system: str) -> set[str]:
    return set(re.findall(r"^- ([\w-]+)\(", system, re.MULTILINE))


@pytest.mark.parametrize("combo", COMBINATIONS, ids="+".join)
def test_the_example_is_a_valid_plan_over_the_catalogue_of_every_pack_combination(
    combo: tuple[str, ...],
) -> None:
    registry = ToolRegistry([t for pack in combo for t in PACKS[pack]])
    system = system_prompt(registry)
    example = shown_example(system)
    assert example is not None, "every built-in pack has a tool the example can show"
    used = {s.tool for s in example.steps}
    assert used and used <= catalogue_tools(system), f"{used} not all in the catalogue"
    assert validate(example, registry) == []
    assert example.goal and example.answer and example.answer_refs()


def test_the_example_shows_a_reference_from_one_step_to_another() -> None:
    example = example_plan(load_registry(["web", "text"]))
    assert example is not None and len(example.steps) == 2
    first, second = example.steps
    assert first.id in second.dependencies()  # a "$first.field" argument: the lesson that matters


def test_the_prompt_never_shows_a_tool_the_registry_lacks() -> None:
    # The old example used get_weather, recommend_outfit and send_alert whatever the registry:
    # a 0.5B model put send_alert into 10 of 19 plans over tools that had none.
    system = system_prompt(load_registry(["calc", "time"]))
    for absent in ("send_alert", "recommend_outfit", "get_weather"):
        assert absent not in system


def test_the_example_prefers_read_only_tools_and_fills_arguments_from_their_descriptions() -> None:
    example = example_plan(load_registry(["mail", "web"]))
    assert example is not None
    assert "send_email" not in {s.tool for s in example.steps}
    search = example.steps[0]
    assert search.tool == "wikipedia_search" and search.args == {"query": "Ada Lovelace"}


@tool(side_effects=False)
def coded(code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")]) -> dict[str, str]:
    """Look up a code."""
    return {"name": code}


@tool(side_effects=False)
def nothing_to_show(code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")]) -> None:
    """A tool whose argument no example value fits."""


def test_a_tool_whose_arguments_cannot_be_made_up_is_left_out_of_the_example() -> None:
    weather = load_registry(["weather"]).get("get_weather")
    example = example_plan(ToolRegistry([nothing_to_show, weather]))
    assert example is not None and [s.tool for s in example.steps] == ["get_weather"]
    assert example_plan(ToolRegistry([nothing_to_show])) is None
    system = system_prompt(ToolRegistry([nothing_to_show]))
    assert "# Example" not in system and "- nothing_to_show(" in system
    assert "# Example" not in system_prompt(ToolRegistry())


def test_an_example_value_in_the_description_is_used_when_it_fits() -> None:
    @tool(side_effects=False)
    def lookup(code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")]) -> dict[str, str]:
        """Look up a code, e.g. "ABC-1234"."""
        return {"name": code}

    example = example_plan(ToolRegistry([lookup]))
    assert example is not None and example.steps[0].args == {"code": "ABC-1234"}


def test_the_example_of_an_mcp_style_tool_name_has_a_valid_step_id() -> None:
    @tool(name="_weather-get", side_effects=False)
    def get(city: str) -> dict[str, float]:
        """Temperature of a city, e.g. "Oslo"."""
        return {"temp": 1.0}

    dashed: Tool = get
    example = example_plan(ToolRegistry([dashed]))
    assert example is not None
    assert example.steps[0].tool == "_weather-get" and example.steps[0].id.isidentifier()
    assert validate(example, ToolRegistry([dashed])) == []


# --------------------------------------------------------------------------- size

# Tokens estimated from characters (tiktoken is not a dependency). Qwen2.5's tokenizer made 2,580
# tokens of the all-packs prompt of 9.6k characters, about 3.7 characters a token; 3.5 leaves a
# margin for JSON, which tokenizes worse than prose.
CHARS_PER_TOKEN = 3.5
CONTEXT = 2048
CHAT_TEMPLATE = 40  # role markers and separators of a chat template, per conversation
FIVE_TOOLS = ["calculate", "statistics", "now", "date_add", "date_diff"]
GOAL = "What is the mean of 3, 5 and 10, how many days are there until 2025-12-25, and what date is 30 days after that?"  # noqa: E501
# A typical 5-step plan, as a model writes it (indented: small models do).
FIVE_STEP_PLAN = {
    "goal": GOAL,
    "steps": [
        {"id": "stats", "tool": "statistics", "args": {"values": [3, 5, 10]}},
        {"id": "today", "tool": "now", "args": {"timezone": "UTC"}},
        {"id": "until", "tool": "date_diff", "args": {"start": "$today.date", "end": "2025-12-25"}},
        {"id": "later", "tool": "date_add", "args": {"start": "2025-12-25", "days": 30}},
        {"id": "double", "tool": "calculate", "args": {"expression": "${stats.mean} * 2"}},
    ],
    "answer": "The mean is ${stats.mean} (doubled ${double.result}); ${until.days} days to "
    "go until 2025-12-25, and 30 days after it is ${later.date}.",
}


def tokens(*texts: str) -> int:
    return math.ceil(sum(len(t) for t in texts) / CHARS_PER_TOKEN)


def registry_of(names: list[str]) -> ToolRegistry:
    everything = load_registry(None)
    return ToolRegistry([everything.get(name) for name in names])


# The 5 tools of the plan below, and the 5 built-in tools with the longest catalogue entries.
FIVE_TOOL_SETS = {
    "calc+time": FIVE_TOOLS,
    "longest": ["date_add", "get_weather", "sqlite_query", "list_files", "date_diff"],
}
PLAN_TEXT = json.dumps(FIVE_STEP_PLAN, indent=2)


def test_the_typical_plan_is_a_valid_plan_of_its_five_tools() -> None:
    assert validate(parse_plan(PLAN_TEXT), registry_of(FIVE_TOOLS)) == []


@pytest.mark.parametrize("names", FIVE_TOOL_SETS.values(), ids=FIVE_TOOL_SETS)
def test_a_five_tool_prompt_and_a_five_step_plan_fit_in_2048_tokens(names: list[str]) -> None:
    system, user = system_prompt(registry_of(names)), user_prompt(GOAL)
    used = tokens(system, user, PLAN_TEXT) + CHAT_TEMPLATE
    assert used <= CONTEXT, f"{used} tokens: system {len(system)} chars, plan {len(PLAN_TEXT)}"


@pytest.mark.parametrize("names", FIVE_TOOL_SETS.values(), ids=FIVE_TOOL_SETS)
def test_a_re_ask_with_the_earlier_attempts_still_fits_in_2048_tokens(names: list[str]) -> None:
    # The second re-ask: the latest reply in full, the issues of both attempts, the new plan.
    found = [
        Issue("unknown_field", "$today.day is not a field of now's output", "until", "x"),
        Issue("type_mismatch", "calculate.expression takes a string, not a number", "double"),
        Issue("unknown_tool", "tool 'mean' is not in the registry", "stats", "steps[0].tool"),
    ]
    repair = repair_prompt(found[:2], earlier=[(1, found[2:])], repeats=1)
    system = system_prompt(registry_of(names))
    used = tokens(system, user_prompt(GOAL), PLAN_TEXT, repair, PLAN_TEXT) + CHAT_TEMPLATE
    assert used <= CONTEXT, f"{used} tokens"


def test_the_catalogue_keeps_notes_on_required_arguments_and_cuts_at_a_sentence() -> None:
    line = tool_line(load_registry(["time"]).get("date_add"))
    assert "start: The date or date-time to start from" in line  # required: always described
    assert "seconds: Seconds" not in line  # optional and its default is in the signature
    assert "seconds?: int=0" in line
    description = line.split("\n", 1)[1]
    assert "..." not in description, "cut at a sentence's end, not mid-sentence"


def measure(registry: ToolRegistry) -> dict[str, Any]:
    system = system_prompt(registry)
    return {"chars": len(system), "tokens": tokens(system)}


def test_the_all_packs_prompt_stays_near_its_measured_size() -> None:
    # Not a fit (18 tools need more than 2,048 tokens) but a ratchet: 9.5k characters before
    # the prompt was trimmed for small models.
    assert measure(load_registry(None))["chars"] < 8500
