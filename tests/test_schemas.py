"""Schema exports: OpenAI strict-mode function schemas and the plan schema for structured output."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

import tooldag.registry
from tooldag.plan import Plan
from tooldag.planning.plan_schema import plan_json_schema
from tooldag.registry import ToolRegistry, tool
from tooldag.registry.loading import builtin_packs, load_registry
from tooldag.registry.schemas import (
    inline_refs,
    json_types,
    strict_schema,
    subschema_at,
    types_compatible,
)

# OpenAI's documented strict-mode subset, written out here rather than imported from the code
# under test, so the test checks the rules and not the implementation's idea of them.
STRICT_ALLOWED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "$defs",
    "description",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
}


def assert_strict(schema: dict[str, Any]) -> None:
    """Walk ``schema`` and fail on anything OpenAI's strict mode rejects."""
    root_defs = schema.get("$defs", {})
    assert schema.get("type") == "object", "the root must be an object"

    def walk(node: Any, where: str) -> None:
        assert isinstance(node, dict), f"{where}: a schema must be an object"
        unsupported = set(node) - STRICT_ALLOWED
        assert not unsupported, f"{where}: unsupported keywords {sorted(unsupported)}"
        assert {"type", "anyOf", "$ref", "enum", "const"} & set(node), f"{where}: no type"
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/$defs/")
            assert name in root_defs, f"{where}: dangling {node['$ref']}"
        types = node.get("type")
        types = [types] if isinstance(types, str) else types or []
        if "enum" in node and "null" in types:
            assert None in node["enum"], f"{where}: nullable enum without null"
        if "object" in types:
            props = node.get("properties")
            assert isinstance(props, dict), f"{where}: object without properties"
            assert node.get("additionalProperties") is False, f"{where}: additionalProperties"
            assert sorted(node.get("required", [])) == sorted(props), f"{where}: required"
            for name, sub in props.items():
                walk(sub, f"{where}.{name}")
        if "array" in types:
            walk(node.get("items"), f"{where}[]")
        for i, option in enumerate(node.get("anyOf", [])):
            walk(option, f"{where}|{i}")
        for name, sub in node.get("$defs", {}).items():
            walk(sub, f"{where}.$defs.{name}")

    walk(schema, "$")


class Address(BaseModel):
    street: str
    city: str = "London"


class Person(BaseModel):
    name: str
    address: Address
    previous: list[Address] = []


class Node(BaseModel):
    label: str
    children: list[Node] = []
    address: Address | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    meows: bool


class Dog(BaseModel):
    kind: Literal["dog"]
    barks: bool


@tool
def create_issue(
    title: str,
    body: str,
    definitions: list[str],
    default: int | None = None,
    labels: list[str] = [],  # noqa: B006 - a default the schema shows, never mutated
    priority: Literal["low", "high"] = "low",
    score: Annotated[float, Field(ge=0, le=1)] = 0.5,
    code: Annotated[str, Field(min_length=2, max_length=8)] = "AB",
) -> dict[str, str]:
    """Open an issue.

    Args:
        title: One line.
        body: The details.
        definitions: Glossary entries.
        default: Arguments may be named like keywords.
        labels: Tags.
        priority: How urgent.
        score: Confidence.
        code: A short code.
    """
    return {}


@tool
def register_person(person: Person, note: str | None = None) -> Person:
    """Register a person."""
    return person


Pet = Annotated[Cat | Dog, Field(discriminator="kind")]


@tool
def grow(tree: Node, pet: Pet, pair: tuple[int, str] = (1, "a")) -> None:
    """A recursive model, a tagged union and a tuple."""


TOOLS = [create_issue, register_person, grow]


@pytest.mark.parametrize("made", TOOLS, ids=lambda t: t.name)
def test_function_schema_passes_openai_strict_rules(made: Any) -> None:
    exported = made.openai_schema(strict=True)["function"]
    assert exported["strict"] is True
    assert_strict(exported["parameters"])


def test_strict_export_keeps_arguments_named_like_keywords() -> None:
    props = create_issue.openai_schema()["function"]["parameters"]["properties"]
    assert {"title", "definitions", "default"} <= set(props)
    assert props["title"] == {"type": "string", "description": "One line."}


def test_optional_arguments_become_nullable_and_required_ones_do_not() -> None:
    props = create_issue.openai_schema()["function"]["parameters"]["properties"]
    assert props["body"]["type"] == "string"
    assert props["labels"]["type"] == ["array", "null"]
    assert props["priority"]["enum"] == ["low", "high", None]
    assert {"type": "null"} in props["default"]["anyOf"]


def test_strict_schema_still_accepts_what_the_tool_accepts() -> None:
    params = create_issue.openai_schema()["function"]["parameters"]
    strict_args: dict[str, Any] = {
        "title": "t",
        "body": "b",
        "definitions": [],
        "default": None,
        "labels": None,
        "priority": None,
        "score": 0.5,
        "code": None,
    }
    jsonschema.Draft202012Validator(params).validate(strict_args)
    # ... and what a strict-mode model sends is valid for the tool itself (null = left out).
    create_issue.validate_args(strict_args)


def test_unsupported_constraints_are_dropped_and_unions_become_anyof() -> None:
    params = grow.openai_schema()["function"]["parameters"]
    assert "minLength" not in str(create_issue.openai_schema())
    pet = params["properties"]["pet"]
    assert "oneOf" not in pet and "discriminator" not in pet
    assert len(pet["anyOf"]) == 2
    assert params["properties"]["pair"]["items"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }


def test_nested_models_are_inlined_and_recursive_ones_kept_in_defs() -> None:
    person = register_person.parameters
    assert "$defs" not in person
    assert person["properties"]["person"]["properties"]["address"]["properties"]["city"]
    tree = grow.parameters
    assert set(tree["$defs"]) == {"Node"}
    node = tree["$defs"]["Node"]
    assert node["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    # Address, used inside the recursive Node, is inlined there (no dangling $ref).
    assert node["properties"]["address"]["anyOf"][0]["properties"]["street"]


def test_inline_refs_leaves_no_dangling_reference_for_mutual_recursion() -> None:
    schema = {
        "$defs": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
            "C": {"type": "string"},
        },
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "c": {"$ref": "#/$defs/C"}},
    }
    out = inline_refs(schema)
    assert out["properties"]["c"] == {"type": "string"}
    text = str(out)
    for name in ("A", "B"):
        if f"#/$defs/{name}" in text:
            assert name in out["$defs"]
    jsonschema.Draft202012Validator(out).validate({"a": {"b": {"a": {}}}, "c": "x"})


def test_strict_schema_does_not_mutate_its_input() -> None:
    before = copy.deepcopy(create_issue.parameters)
    strict_schema(create_issue.parameters)
    assert create_issue.parameters == before


def test_free_form_argument_is_exported_without_strict() -> None:
    @tool
    def post(url: str, payload: dict[str, Any], extra: Any = None) -> None:
        return None

    exported = post.openai_schema()["function"]
    assert "strict" not in exported
    assert exported["parameters"] == post.parameters


# --------------------------------------------------------------------------- the plan schema


def test_per_tool_plan_schema_is_strict_and_names_each_tool(weather_registry: ToolRegistry) -> None:
    schema = plan_json_schema(weather_registry)
    assert_strict(schema)
    variants = schema["properties"]["steps"]["items"]["anyOf"]
    assert [v["properties"]["tool"]["enum"] for v in variants] == [
        ["get_weather"],
        ["recommend_outfit"],
        ["send_alert"],
    ]
    step = variants[0]["properties"]
    # Strict mode needs every property; null is how the model leaves an optional one out.
    assert step["depends_on"]["type"] == ["array", "null"]
    assert {"type": "null"} in step["when"]["anyOf"]
    assert schema["properties"]["answer"]["type"] == ["string", "null"]
    outfit_args = variants[1]["properties"]["args"]
    temperature = outfit_args["properties"]["temperature"]
    # A number argument also takes a "$step.field" reference string.
    assert [o["type"] for o in temperature["anyOf"]] == ["number", "string"]
    assert "$step_id.field" in temperature["anyOf"][1]["description"]


def test_plan_schema_accepts_the_seed_plan(weather_registry: ToolRegistry) -> None:
    plan: dict[str, Any] = {
        "goal": "outfit",
        "steps": [
            {
                "id": "weather",
                "tool": "get_weather",
                "args": {"location": "London"},
                "depends_on": [],
                "when": None,
            },
            {
                "id": "outfit",
                "tool": "recommend_outfit",
                "args": {"temperature": "$weather.temp", "condition": "$weather.condition"},
                "depends_on": [],
                "when": {"ref": "$weather.temp", "op": ">", "value": -50},
            },
        ],
        "answer": "Wear ${outfit.outfit}",
    }
    jsonschema.Draft202012Validator(plan_json_schema(weather_registry)).validate(plan)
    with pytest.raises(jsonschema.ValidationError):
        bad = copy.deepcopy(plan)
        bad["steps"][0]["tool"] = "get_wether"
        jsonschema.Draft202012Validator(plan_json_schema(weather_registry)).validate(bad)


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("per_tool", [True, False])
def test_plan_schema_puts_goal_then_steps_then_answer(
    weather_registry: ToolRegistry, per_tool: bool, strict: bool
) -> None:
    # The order the model writes the keys in: steps can stream before the answer is written.
    # Grammar converters write required properties first, in order: so goal and steps are.
    schema = plan_json_schema(weather_registry, per_tool=per_tool, strict=strict)
    assert list(schema["properties"]) == ["goal", "steps", "answer"]
    assert schema["required"][:2] == ["goal", "steps"]
    items = schema["properties"]["steps"]["items"]
    for step in items.get("anyOf", [items]):
        assert list(step["properties"]) == ["id", "tool", "args", "depends_on", "when"]
        assert step["required"][:3] == ["id", "tool", "args"]


def test_the_registry_imports_nothing_from_planning() -> None:
    # The plan schema belongs to planning, which imports the registry: never the other way,
    # not even inside a function or under TYPE_CHECKING.
    package = Path(tooldag.registry.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert "planning" not in name.split("."), f"{module.name} imports {name}"


def test_plan_schema_hoists_recursive_definitions_to_the_root() -> None:
    schema = plan_json_schema(ToolRegistry([grow, create_issue]), per_tool=True)
    assert_strict(schema)
    assert "grow__Node" in schema["$defs"]
    jsonschema.Draft202012Validator.check_schema(schema)


def test_plan_schema_falls_back_to_a_tool_enum_with_free_form_args() -> None:
    registry = ToolRegistry([create_issue, register_person])
    schema = plan_json_schema(registry, per_tool=False)
    step = schema["properties"]["steps"]["items"]
    assert step["properties"]["tool"]["enum"] == ["create_issue", "register_person"]
    assert step["properties"]["args"] == {"type": "object"}


@pytest.mark.parametrize("per_tool", [None, True, False])
def test_plan_schema_of_an_empty_registry_is_strict_and_allows_only_no_steps(
    per_tool: bool | None,
) -> None:
    schema = plan_json_schema(ToolRegistry(), per_tool=per_tool)
    assert_strict(schema)
    assert "enum" not in schema["properties"]["steps"]["items"]["properties"]["tool"]
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate({"goal": "g", "steps": [], "answer": "nothing to do"})
    step = {"id": "a", "tool": "anything", "args": {}, "depends_on": [], "when": None}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"goal": "g", "steps": [step], "answer": None})


def test_plan_schema_is_not_per_tool_when_a_tool_has_free_form_arguments() -> None:
    @tool
    def post(url: str, payload: dict[str, Any]) -> None:
        return None

    schema = plan_json_schema(ToolRegistry([post, create_issue]))
    assert "anyOf" not in schema["properties"]["steps"]["items"]


@pytest.mark.parametrize("pack", [None, *builtin_packs()], ids=lambda p: p or "all")
def test_the_strict_plan_schema_of_the_packs_passes_the_strict_rules(pack: str | None) -> None:
    schema = plan_json_schema(load_registry(None if pack is None else [pack]))
    assert_strict(schema)
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_loose_plan_schema_leaves_optional_fields_optional(
    weather_registry: ToolRegistry,
) -> None:
    # For servers that compile the schema to a grammar: a required when/depends_on was filled
    # with a self-cycle by a small model that had nothing to write there.
    schema = plan_json_schema(weather_registry, strict=False)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["goal", "steps"]
    assert schema["properties"]["answer"]["type"] == "string"
    alert = schema["properties"]["steps"]["items"]["anyOf"][2]
    assert alert["required"] == ["id", "tool", "args"]
    assert alert["properties"]["depends_on"]["type"] == "array"
    assert "anyOf" not in alert["properties"]["when"]  # no null branch: just leave it out
    args = alert["properties"]["args"]
    assert args["required"] == ["message"] and args["additionalProperties"] is False
    assert args["properties"]["severity"]["type"] == "string"  # optional, not nullable
    minimal = {
        "goal": "g",
        "steps": [
            {"id": "w", "tool": "get_weather", "args": {"location": "Oslo"}},
            {"id": "a", "tool": "send_alert", "args": {"message": "Cold in ${w.location}"}},
        ],
    }
    jsonschema.Draft202012Validator(schema).validate(minimal)
    conditional = copy.deepcopy(minimal)
    conditional["steps"][1]["when"] = {"ref": "$w.temp", "op": "<", "value": 0}
    conditional["steps"][1]["depends_on"] = ["w"]
    jsonschema.Draft202012Validator(schema).validate(conditional)
    conditional["steps"][1]["when"] = {"ref": "$w.temp", "op": "is_none"}  # needs no value
    jsonschema.Draft202012Validator(schema).validate(conditional)
    with pytest.raises(jsonschema.ValidationError):
        conditional["steps"][1]["when"] = {"all": [], "any": []}  # one group kind at a time
        jsonschema.Draft202012Validator(schema).validate(conditional)


@tool(side_effects=False)
def bounded(
    values: Annotated[list[float], Field(min_length=1, max_length=100_000)],
    word: Annotated[str, Field(min_length=1, max_length=100_000, pattern=r"^a{1,5000}$")],
    tags: Annotated[list[str], Field(max_length=3)] = [],  # noqa: B006 - never mutated
) -> dict[str, float]:
    """Bounds of every size."""
    return {}


def count_bounds(schema: Any) -> list[tuple[str, int]]:
    """Every count bound and every counted repetition in a pattern, anywhere in ``schema``."""
    found: list[tuple[str, int]] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("minItems", "maxItems", "minLength", "maxLength") and isinstance(value, int):
                found.append((key, value))
            elif key == "pattern" and isinstance(value, str):
                for low, high in re.findall(r"\{(\d+)(?:,(\d*))?\}", value):
                    found += [("pattern", int(n)) for n in (low, high) if n]
            else:
                found += count_bounds(value)
    elif isinstance(schema, list):
        for item in schema:
            found += count_bounds(item)
    return found


@pytest.mark.parametrize("strict", [True, False])
def test_no_plan_schema_has_a_bound_that_blows_up_a_grammar(strict: bool) -> None:
    # maxItems: 100000 (statistics.values) became a 2-million-character llama.cpp grammar rule.
    registry = ToolRegistry([*load_registry(None), bounded])
    assert any(v == 100_000 for _, v in count_bounds(registry.get("statistics").parameters))
    schema = plan_json_schema(registry, per_tool=True, strict=strict)
    bounds = count_bounds(schema)
    assert all(value <= 16 for _, value in bounds), sorted(bounds, key=lambda b: -b[1])[:3]
    variant = next(
        v for v in schema["properties"]["steps"]["items"]["anyOf"]
        if v["properties"]["tool"]["enum"] == ["bounded"]
    )  # fmt: skip
    tags = variant["properties"]["args"]["properties"]["tags"]
    assert tags["anyOf"][0]["maxItems"] == 3  # a small bound is kept: it costs the grammar little


def test_a_bound_left_out_of_the_schema_is_still_enforced_by_the_validator() -> None:
    from tooldag.validate.validator import validate

    registry = load_registry(["calc"])
    too_many = Plan.model_validate(
        {"steps": [{"id": "s", "tool": "statistics", "args": {"values": [1.0] * 100_001}}]}
    )
    assert [i.code for i in validate(too_many, registry)] == ["type_mismatch"]


@pytest.mark.parametrize("strict", [True, False])
def test_references_fit_list_items_and_constrained_strings(strict: bool) -> None:
    schema = plan_json_schema(load_registry(["calc", "web"]), strict=strict)
    steps = [
        {"id": "a", "tool": "statistics", "args": {"values": ["$b.total_hits", 2, "$c.x"]}},
        {"id": "b", "tool": "wikipedia_search", "args": {"query": "x", "language": "$d.lang"}},
    ]
    if strict:  # every property, optional ones as null
        steps[0].update(depends_on=None, when=None)
        steps[1].update(depends_on=None, when=None)
        steps[1]["args"].update(limit=None)
    jsonschema.Draft202012Validator(schema).validate(
        {"goal": "g", "steps": steps, "answer": None if strict else "x"}
    )
    steps[1]["args"]["language"] = "English"  # neither a reference nor a language code
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(
            {"goal": "g", "steps": steps, "answer": None if strict else "x"}
        )


# --------------------------------------------------------------------------- type helpers


@pytest.mark.parametrize(
    ("schema", "types"),
    [
        ({"type": "string"}, {"string"}),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"integer", "null"}),
        ({"enum": ["a", 1, None]}, {"string", "integer", "null"}),
        ({"const": True}, {"boolean"}),
        ({"properties": {}}, {"object"}),
        ({"anyOf": [{"type": "string"}, {}]}, None),
        ({}, None),
    ],
)
def test_json_types(schema: dict[str, Any], types: set[str] | None) -> None:
    assert json_types(schema) == types


@pytest.mark.parametrize(
    ("produced", "accepted", "fits"),
    [
        ({"integer"}, {"number"}, True),
        ({"number"}, {"integer"}, True),
        ({"string"}, {"number"}, False),
        ({"number"}, {"string"}, False),
        ({"string", "null"}, {"string"}, True),
        (None, {"string"}, True),
    ],
)
def test_types_compatible(produced: set[str] | None, accepted: set[str], fits: bool) -> None:
    assert types_compatible(produced, accepted) is fits


def test_subschema_at_walks_keys_and_indexes_and_names_the_missing_segment() -> None:
    schema = {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {"type": "object", "properties": {"url": {"type": "string"}}},
            },
            "temp": {"type": "number"},
        },
    }
    assert subschema_at(schema, ["results", 0, "url"]) == {"type": "string"}
    with pytest.raises(KeyError) as missing:
        subschema_at(schema, ["results", 0, "link"])
    assert missing.value.args == ("link", 2)
    with pytest.raises(KeyError) as below_number:
        subschema_at(schema, ["temp", "value"])
    assert below_number.value.args == ("value", 1)
    with pytest.raises(KeyError):
        subschema_at(schema, ["results", "url"])  # a key into a list
    assert subschema_at({"type": "object"}, ["anything", 3]) is None
