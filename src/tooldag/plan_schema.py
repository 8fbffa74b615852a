"""The JSON Schema of a whole plan, for structured output (``response_format: json_schema``).

With ``per_tool`` (the default while the registry is small enough) each step is an ``anyOf`` over
the tools: ``tool`` is a ``const`` and ``args`` that tool's own strict argument schema in which
every argument also accepts a reference string. Past OpenAI's size limits it falls back to one step
shape with ``tool`` as an enum and free-form ``args``, which cannot be strict.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .plan import CONDITION_OPS
from .schemas import strict_schema

if TYPE_CHECKING:
    from .registry import ToolRegistry

__all__ = ["PER_TOOL_LIMIT", "plan_json_schema"]

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


def _step(tool_name: str | None, args: dict[str, Any], names: list[str]) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "string", "const": tool_name} if tool_name else {
        "type": "string",
        "enum": names,
    }
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


def plan_json_schema(registry: ToolRegistry, *, per_tool: bool | None = None) -> dict[str, Any]:
    """A JSON Schema that every plan over ``registry`` fits (strict-mode compliant when per-tool)."""
    names = registry.names()
    if per_tool is None:
        per_tool = 0 < len(names) <= PER_TOOL_LIMIT
    if per_tool and names:
        variants = []
        for t in registry:
            args = strict_schema(copy.deepcopy(t.parameters))
            args["properties"] = {k: _accepts_ref(v) for k, v in args.get("properties", {}).items()}
            variants.append(_step(t.name, args, names))
        step: dict[str, Any] = {"anyOf": variants} if len(variants) > 1 else variants[0]
    else:
        step = _step(None, {"type": "object"}, names)
    return {
        "type": "object",
        "properties": {
            "goal": {"type": "string"},
            "steps": {"type": "array", "items": step},
            "answer": {
                "type": ["string", "null"],
                "description": "final answer template over step outputs, e.g. 'It is ${w.temp} C'",
            },
        },
        "required": ["goal", "steps", "answer"],
        "additionalProperties": False,
        "$defs": {"condition": _condition_schema()},
    }
