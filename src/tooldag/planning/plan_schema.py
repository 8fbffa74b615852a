"""The JSON Schema of a whole plan, for structured output (``response_format: json_schema``).

With ``per_tool`` (the default while the registry is small enough) each step is an ``anyOf`` over
the tools: ``tool`` is a one-value enum and ``args`` that tool's own strict argument schema in
which every argument also accepts a reference string. Past OpenAI's size limits (or with a tool
whose arguments strict mode cannot express) it falls back to one step shape with ``tool`` as an
enum and free-form ``args``, which cannot be strict.

Tools marked ``metadata["compensation_only"]`` (``restore_file``) are left out: they exist to undo
other steps, never to be planned (:func:`planner_tools`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..plan.model import CONDITION_OPS
from ..registry.schemas import strict_loses_meaning, strict_schema

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..registry.tool import Tool

__all__ = ["PER_TOOL_LIMIT", "plan_json_schema", "planner_tools"]

# OpenAI caps strict schemas (about 5000 properties, 1000 enum values, 10 levels of nesting);
# beyond this many tools the per-tool union is too big to be worth it.
PER_TOOL_LIMIT = 64

_REF_STRING = {
    "type": "string",
    "description": 'a reference to an earlier step\'s output: "$step_id.field"',
}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}


def _accepts_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or a reference string."""
    types = schema.get("type")
    takes_text = types == "string" or (isinstance(types, list) and "string" in types)
    if takes_text and "enum" not in schema:
        return schema
    return {"anyOf": [schema, _REF_STRING]}


def _condition_schema() -> dict[str, Any]:
    leaf = {
        "type": "object",
        "properties": {
            "ref": {"type": "string", "description": "$step_id.field"},
            "op": {"type": "string", "enum": list(CONDITION_OPS)},
            "value": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
        },
        "required": ["ref", "op", "value"],
        "additionalProperties": False,
    }
    group = {
        "type": "object",
        "properties": {
            "all": {"type": ["array", "null"], "items": {"$ref": "#/$defs/condition"}},
            "any": {"type": ["array", "null"], "items": {"$ref": "#/$defs/condition"}},
            "not": {"anyOf": [{"$ref": "#/$defs/condition"}, {"type": "null"}]},
        },
        "required": ["all", "any", "not"],
        "additionalProperties": False,
    }
    return {"anyOf": [leaf, group]}


def _step(names: list[str], args: dict[str, Any]) -> dict[str, Any]:
    # A one-value enum rather than ``const``: every strict-mode implementation takes enum. Strict
    # mode rejects an empty enum; with no names the caller forbids steps altogether.
    tool: dict[str, Any] = {"type": "string", "enum": names} if names else {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "unique identifier, e.g. weather"},
            "tool": tool,
            "args": args,
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "when": {"anyOf": [{"$ref": "#/$defs/condition"}, {"type": "null"}]},
        },
        "required": ["id", "tool", "args", "depends_on", "when"],
        "additionalProperties": False,
    }


def planner_tools(registry: Iterable[Tool]) -> list[Tool]:
    """The tools a planner is offered: all but those marked ``compensation_only``, which stay in
    the registry so that compensation can call them."""
    return [t for t in registry if not t.metadata.get("compensation_only")]


def plan_json_schema(registry: Iterable[Tool], *, per_tool: bool | None = None) -> dict[str, Any]:
    """A JSON Schema that every plan over ``registry`` fits (strict-mode compliant per tool).

    ``per_tool=None`` chooses: per tool while the registry is small enough and every tool's
    arguments survive strict mode (a free-form ``dict`` argument would be forced to ``{}``).
    """
    tools = planner_tools(registry)
    names = [t.name for t in tools]
    if per_tool is None:
        per_tool = 0 < len(names) <= PER_TOOL_LIMIT and not any(
            strict_loses_meaning(t.parameters) for t in tools
        )
    defs: dict[str, Any] = {"condition": _condition_schema()}
    if per_tool and names:
        variants = []
        for t in tools:
            args = _hoist_defs(strict_schema(t.parameters), t.name, defs)
            args["properties"] = {k: _accepts_ref(v) for k, v in args.get("properties", {}).items()}
            variants.append(_step([t.name], args))
        step: dict[str, Any] = {"anyOf": variants} if len(variants) > 1 else variants[0]
    else:
        # Free-form args; with no tools, an empty strict object (no step can occur anyway).
        free: dict[str, Any] = {"type": "object"}
        if not names:
            free.update(properties={}, required=[], additionalProperties=False)
        step = _step(names, free)
    steps: dict[str, Any] = {"type": "array", "items": step}
    if not names:
        steps["maxItems"] = 0  # nothing to call: the only plan is one without steps
    return {
        "type": "object",
        "properties": {
            "goal": {"type": "string"},
            "steps": steps,
            "answer": {
                "type": ["string", "null"],
                "description": "final answer template over step outputs, e.g. 'It is ${w.temp} C'",
            },
        },
        "required": ["goal", "steps", "answer"],
        "additionalProperties": False,
        "$defs": defs,
    }


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
