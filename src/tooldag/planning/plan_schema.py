"""The JSON Schema of a whole plan, for structured output.

Two variants. ``strict=True`` (the default) passes OpenAI's strict mode: every property is
required, so the optional ones (``depends_on``, ``when``, optional tool arguments) are nullable
and the model writes ``null`` to leave one out. ``strict=False`` is for everything else (a
non-strict ``json_schema``, a ``json_object`` reply with a schema, Ollama's ``format``, any
grammar-based server): optional fields are simply optional. A small model filled a required
``when``/``depends_on`` with a self-cycle; it had nothing to write there.

With ``per_tool`` (the default while the registry is small enough) each step is an ``anyOf`` over
the tools: ``tool`` is a one-value enum and ``args`` that tool's own argument schema in which
every argument (and every item or field inside one) also accepts a reference string. Past that
(or, when strict, with a tool whose arguments strict mode cannot express) one step shape has
``tool`` as an enum and free-form ``args``, which cannot be strict.

Neither variant carries bounds that blow up grammars: a grammar-based server turns
``maxItems: 100000`` into a rule repeated 100,000 times (2 million characters, which crashed a
llama.cpp server). Such bounds are left out; the tools' own schemas still enforce them when the
validator checks literal arguments and when a step runs.

The keys come in the order a model should write them: ``goal``, ``steps``, ``answer`` (steps can
stream before the answer is written), and in a step ``id``, ``tool``, ``args``, then the
optional ones; grammar converters keep this order (required properties first).

Tools marked ``metadata["compensation_only"]`` (``restore_file``) are left out: they exist to undo
other steps, never to be planned (:func:`planner_tools`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..plan.model import CONDITION_OPS
from ..registry.schemas import inline_refs, strict_loses_meaning, strict_schema

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..registry.tool import Tool

__all__ = ["GRAMMAR_BOUND", "PER_TOOL_LIMIT", "plan_json_schema", "planner_tools"]

# OpenAI caps strict schemas (about 5000 properties, 1000 enum values, 10 levels of nesting);
# beyond this many tools the per-tool union is too big to be worth it.
PER_TOOL_LIMIT = 64

GRAMMAR_BOUND = 16
"""The largest count bound (``maxItems``, ``minLength``, a ``{n,m}`` in a pattern, ...) kept in a
plan schema: a grammar repeats its rule that many times."""

_COUNT_BOUNDS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)
_PATTERN_COUNT = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")
# Keywords a loose schema drops: they constrain nothing a model writes, or name $defs that
# inlining removed, or cost request size for nothing.
_LOOSE_DROPPED = frozenset({"title", "examples", "default", "discriminator", "$comment"})
# A string schema with one of these would refuse a "$step.field" reference in its place.
_TEXT_CONSTRAINTS = ("enum", "const", "pattern", "format", "minLength", "maxLength")

# Starts with "$", so that where the reference stands in for an enum or a pattern it does not
# let every other string through. ``^...$`` and ``[$]`` read the same in every regex dialect
# (llama.cpp's grammar converter wants both anchors).
_REF_STRING = {
    "type": "string",
    "pattern": "^[$].+$",
    "description": 'a reference to an earlier step\'s output: "$step_id.field"',
}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_CONDITION = {"$ref": "#/$defs/condition"}


def _children(node: dict[str, Any], fn: Any) -> dict[str, Any]:
    """``node`` with ``fn`` applied to each sub-schema; data (``enum``, ``const``) left alone."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties") and isinstance(value, dict):
            out[key] = {name: fn(sub) for name, sub in value.items()}
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [fn(sub) for sub in value]
        elif key in ("items", "additionalProperties", "not", "contains") and isinstance(
            value, dict
        ):
            out[key] = fn(value)
        else:
            out[key] = value
    return out


def _grammar_safe(node: Any) -> Any:
    """``node`` without count bounds above :data:`GRAMMAR_BOUND` (see the module docstring)."""
    if not isinstance(node, dict):
        return node
    kept = {
        k: v
        for k, v in node.items()
        if not (k in _COUNT_BOUNDS and isinstance(v, int) and v > GRAMMAR_BOUND)
        and not (k == "pattern" and isinstance(v, str) and _pattern_too_big(v))
    }
    return _children(kept, _grammar_safe)


def _pattern_too_big(pattern: str) -> bool:
    for low, high in _PATTERN_COUNT.findall(pattern):
        if int(low) > GRAMMAR_BOUND or (high and int(high) > GRAMMAR_BOUND):
            return True
    return False


def _loose(node: Any) -> Any:
    """A tool's (inlined) schema as a non-strict schema: ``oneOf`` read as ``anyOf`` (the
    options of a tagged union do not overlap, and a reference string may fit two), annotations
    dropped."""
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in _LOOSE_DROPPED}
    if "oneOf" in node:
        node["anyOf"] = [*node.get("anyOf", []), *node.pop("oneOf")]
    return _children(node, _loose)


def _accepts_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or a reference string, at every level: a list item or an object's field may be
    a reference too (``"values": ["$a.result", "$b.result"]``)."""
    if not isinstance(schema, dict):
        return schema
    inner = dict(schema)
    if isinstance(inner.get("items"), dict):
        inner["items"] = _accepts_ref(inner["items"])
    if isinstance(inner.get("properties"), dict):
        inner["properties"] = {k: _accepts_ref(v) for k, v in inner["properties"].items()}
    if isinstance(inner.get("anyOf"), list):
        options = [_accepts_ref(o) if isinstance(o, dict) else o for o in inner["anyOf"]]
        if any(o == _REF_STRING or _takes_any_text(o) for o in options):
            return {**inner, "anyOf": options}
        return {**inner, "anyOf": [*options, _REF_STRING]}
    if _takes_any_text(inner):
        return inner
    return {"anyOf": [inner, _REF_STRING]}


def _takes_any_text(schema: Any) -> bool:
    if not isinstance(schema, dict) or any(k in schema for k in _TEXT_CONSTRAINTS):
        return False
    types = schema.get("type")
    return types == "string" or (isinstance(types, list) and "string" in types)


def _condition_schema(strict: bool) -> dict[str, Any]:
    leaf: dict[str, Any] = {
        "type": "object",
        "properties": {
            "ref": {"type": "string", "description": "$step_id.field"},
            "op": {"type": "string", "enum": list(CONDITION_OPS)},
            "value": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
        },
        # is_none / not_none need no value: only strict mode must have one (null).
        "required": ["ref", "op", "value"] if strict else ["ref", "op"],
        "additionalProperties": False,
    }
    many = {"type": "array", "items": _CONDITION}
    group: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if strict:
        group["properties"] = {
            "all": {**many, "type": ["array", "null"]},
            "any": {**many, "type": ["array", "null"]},
            "not": {"anyOf": [_CONDITION, {"type": "null"}]},
        }
        group["required"] = ["all", "any", "not"]
        return {"anyOf": [leaf, group]}
    # Loose: one group form per key, so a grammar cannot produce an empty or mixed group.
    groups = [
        {**group, "properties": {key: sub}, "required": [key]}
        for key, sub in (("all", many), ("any", many), ("not", _CONDITION))
    ]
    return {"anyOf": [leaf, *groups]}


def _step(names: list[str], args: dict[str, Any], strict: bool) -> dict[str, Any]:
    # A one-value enum rather than ``const``: every strict-mode implementation takes enum. Strict
    # mode rejects an empty enum; with no names the caller forbids steps altogether.
    tool: dict[str, Any] = {"type": "string", "enum": names} if names else {"type": "string"}
    depends_on: dict[str, Any] = {
        "type": "array",
        "items": {"type": "string"},
        "description": "ids of other steps to wait for, only when no data flows between them",
    }
    when: dict[str, Any] = {**_CONDITION, "description": "run the step only if this holds"}
    if strict:
        depends_on = {**depends_on, "type": ["array", "null"]}
        when = {"anyOf": [_CONDITION, {"type": "null"}], "description": when["description"]}
    properties = {
        "id": {"type": "string", "description": "unique identifier, e.g. weather"},
        "tool": tool,
        "args": args,
        "depends_on": depends_on,
        "when": when,
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if strict else ["id", "tool", "args"],
        "additionalProperties": False,
    }


def planner_tools(registry: Iterable[Tool]) -> list[Tool]:
    """The tools a planner is offered: all but those marked ``compensation_only``, which stay in
    the registry so that compensation can call them."""
    return [t for t in registry if not t.metadata.get("compensation_only")]


def plan_json_schema(
    registry: Iterable[Tool], *, per_tool: bool | None = None, strict: bool = True
) -> dict[str, Any]:
    """A JSON Schema that every plan over ``registry`` fits.

    ``strict`` gives the OpenAI strict-mode variant (every property required, the optional ones
    nullable); ``strict=False`` the variant where optional fields are optional. ``per_tool=None``
    chooses: per tool while the registry is small enough and (when strict) every tool's arguments
    survive strict mode (a free-form ``dict`` argument would be forced to ``{}``).
    """
    tools = planner_tools(registry)
    names = [t.name for t in tools]
    if per_tool is None:
        per_tool = 0 < len(names) <= PER_TOOL_LIMIT and not (
            strict and any(strict_loses_meaning(t.parameters) for t in tools)
        )
    defs: dict[str, Any] = {"condition": _condition_schema(strict)}
    if per_tool and names:
        variants = [_step([t.name], _tool_args(t, strict, defs), strict) for t in tools]
        step: dict[str, Any] = {"anyOf": variants} if len(variants) > 1 else variants[0]
    else:
        # Free-form args; with no tools, an empty strict object (no step can occur anyway).
        free: dict[str, Any] = {"type": "object"}
        if not names:
            free.update(properties={}, required=[], additionalProperties=False)
        step = _step(names, free, strict)
    steps: dict[str, Any] = {"type": "array", "items": step}
    if not names:
        steps["maxItems"] = 0  # nothing to call: the only plan is one without steps
    answer: dict[str, Any] = {
        "type": ["string", "null"] if strict else "string",
        "description": "final answer template over step outputs, e.g. 'It is ${w.temp} C'",
    }
    schema = {
        "type": "object",
        "properties": {"goal": {"type": "string"}, "steps": steps, "answer": answer},
        "required": ["goal", "steps", "answer"] if strict else ["goal", "steps"],
        "additionalProperties": False,
        "$defs": defs,
    }
    return _grammar_safe(schema)  # type: ignore[no-any-return]


def _tool_args(t: Tool, strict: bool, defs: dict[str, Any]) -> dict[str, Any]:
    """``t``'s argument schema for one step variant; its ``$defs`` go to ``defs``."""
    if strict:
        args = _hoist_defs(strict_schema(t.parameters), t.name, defs)
    else:
        args = _hoist_defs(_loose(inline_refs(t.parameters)), t.name, defs)
        args.setdefault("type", "object")
        args.setdefault("properties", {})
        # Unknown arguments are an error of the validator's anyway: the grammar need not offer them.
        args["additionalProperties"] = False
    args["properties"] = {k: _accepts_ref(v) for k, v in args.get("properties", {}).items()}
    return args


def _hoist_defs(schema: dict[str, Any], tool: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Move a tool's own ``$defs`` (recursive models) to the plan's root, where ``#/$defs/...``
    resolves once the tool schema is nested in the plan, renaming them per tool."""
    own = schema.pop("$defs", None)
    if not own:
        return schema
    renames = {f"#/$defs/{name}": f"#/$defs/{tool}__{name}" for name in own}

    def rename(node: Any) -> Any:
        if isinstance(node, list):
            return [rename(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {
            k: renames.get(v, v) if k == "$ref" and isinstance(v, str) else rename(v)
            for k, v in node.items()
        }

    for name, definition in own.items():
        defs[f"{tool}__{name}"] = rename(definition)
    return rename(schema)  # type: ignore[no-any-return]
