"""JSON Schema helpers: inlining ``$ref``, OpenAI strict-mode conversion, JSON type checks.

Pure functions over plain dicts; the registry uses them to export function-calling schemas and the
plan schema, the validator to compare a reference's declared type with a parameter's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

__all__ = [
    "inline_refs",
    "json_types",
    "strict_schema",
    "subschema_at",
    "types_compatible",
]

# Keywords OpenAI's strict mode rejects; they carry no meaning the model needs (``title`` is noise,
# ``default`` is expressed by nullability instead).
_STRICT_DROP = {"default", "title", "examples", "$schema", "discriminator"}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local ``#/$defs/X`` references by their definitions (pydantic emits them for nested
    models). Recursive definitions are left as references, with ``$defs`` kept for them."""
    defs: dict[str, Any] = dict(schema.get("$defs", {}) or schema.get("definitions", {}))
    recursive: set[str] = set()

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            name = ref.rsplit("/", 1)[1]
            if name in stack or name not in defs:
                recursive.add(name)
                return node
            resolved = walk(defs[name], (*stack, name))
            extra = {k: walk(v, stack) for k, v in node.items() if k != "$ref"}
            return {**resolved, **extra} if extra else resolved
        return {k: walk(v, stack) for k, v in node.items() if k not in ("$defs", "definitions")}

    out = walk(schema, ())
    if recursive:
        out["$defs"] = {name: defs[name] for name in recursive if name in defs}
    return out  # type: ignore[no-any-return]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    t = schema.get("type")
    if isinstance(t, str):
        if t == "null":
            return schema
        return {**schema, "type": [t, "null"]}
    if isinstance(t, list):
        return schema if "null" in t else {**schema, "type": [*t, "null"]}
    if "anyOf" in schema:
        if any(s.get("type") == "null" for s in schema["anyOf"] if isinstance(s, dict)):
            return schema
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Convert a JSON Schema to one that passes OpenAI's strict structured-output rules.

    Every object gets ``additionalProperties: false`` and lists all its properties as required;
    properties that were optional become nullable so the model can still leave them out (by
    sending null). ``$ref`` are inlined where not recursive.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {k: walk(v) for k, v in node.items() if k not in _STRICT_DROP}
        if "allOf" in node and len(node["allOf"]) == 1:
            only = node.pop("allOf")[0]
            node = {**only, **node}
        if node.get("type") == "object" or "properties" in node:
            props: dict[str, Any] = node.get("properties", {})
            required = set(node.get("required", []))
            node["properties"] = {
                name: (sub if name in required else _nullable(sub)) for name, sub in props.items()
            }
            node["required"] = list(props)
            node["additionalProperties"] = False
            node.setdefault("type", "object")
        return node

    return walk(inline_refs(copy.deepcopy(schema)))  # type: ignore[no-any-return]


_PY_TO_JSON: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
    type(None): "null",
}


def json_types(schema: dict[str, Any] | None) -> set[str] | None:
    """The JSON types a schema admits, or None when it admits anything (or cannot be told)."""
    if not schema:
        return None
    if "const" in schema:
        value = schema["const"]
        return {_PY_TO_JSON.get(type(value), "string")}
    if "enum" in schema and isinstance(schema["enum"], list):
        return {_PY_TO_JSON.get(type(v), "string") for v in schema["enum"]}
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            out: set[str] = set()
            for sub in schema[key]:
                sub_types = json_types(sub) if isinstance(sub, dict) else None
                if sub_types is None:
                    return None
                out |= sub_types
            return out
    if "properties" in schema:
        return {"object"}
    if "items" in schema:
        return {"array"}
    return None


def types_compatible(produced: set[str] | None, accepted: set[str] | None) -> bool:
    """Whether a value of one of the ``produced`` JSON types can fit ``accepted``.

    Lenient where pydantic's lax mode would convert: an integer fits a number, and anything fits a
    string parameter only when it is a string (pydantic does not stringify numbers).
    """
    if produced is None or accepted is None:
        return True
    widened = set(produced)
    if "integer" in widened:
        widened.add("number")
    if "number" in accepted and "integer" in produced:
        return True
    if widened & accepted:
        return True
    # A float that happens to be whole fits an integer parameter in lax mode.
    return "number" in produced and "integer" in accepted


def subschema_at(schema: dict[str, Any] | None, path: Iterable[str | int]) -> dict[str, Any] | None:
    """The schema of the value at ``path`` inside a value of ``schema``.

    Returns ``None`` when the schema does not say (free-form object, missing schema): the caller
    must then accept the path. Raises ``KeyError`` naming the first segment that the schema proves
    cannot exist, so the validator can report ``unknown_field`` with the field's name.
    """
    node = schema
    for segment in path:
        if not node:
            return None
        node = _unwrap_nullable(node)
        if isinstance(segment, int):
            if "items" in node and isinstance(node["items"], dict):
                node = node["items"]
                continue
            if "prefixItems" in node:
                items = node["prefixItems"]
                node = items[segment] if 0 <= segment < len(items) else None
                continue
            return None
        props = node.get("properties")
        if isinstance(props, dict):
            if segment in props:
                node = props[segment]
                continue
            extra = node.get("additionalProperties")
            if extra is False or (extra is None and node.get("type") == "object" and props):
                raise KeyError(segment)
            node = extra if isinstance(extra, dict) else None
            continue
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            node = extra
            continue
        return None
    return node


def _unwrap_nullable(node: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list):
            non_null = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if len(non_null) == 1:
                return non_null[0]
    return node
