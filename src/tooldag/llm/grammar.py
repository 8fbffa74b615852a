"""A JSON Schema fit for grammar-based servers, made from a strict OpenAI one.

OpenAI's strict mode wants every property required, optional ones spelled as nullable
(``"type": ["string", "null"]``). llama.cpp (``llama-server``, llama-cpp-python), Ollama and
vLLM turn a schema into a grammar instead, and there the strict spelling misleads: a small model
must write ``"when": null`` for every step (or, seen in practice, fills it with something
invented), and a bound such as ``maxItems: 100000`` unrolls into a rule with that many
repetitions (a two-million-character grammar that crashed llama-cpp-python). So
:func:`grammar_schema` makes a required-but-nullable property optional and non-null, and drops
bounds too large to matter.

>>> grammar_schema({"type": "object", "properties": {"a": {"type": "string"},
...     "b": {"type": ["integer", "null"]}}, "required": ["a", "b"],
...     "additionalProperties": False})["required"]
['a']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BOUND_LIMIT", "grammar_schema"]

# Length and count bounds above this are dropped: a grammar spells a bound out as that many
# optional repetitions, and no plan comes near it.
BOUND_LIMIT = 100
_BOUNDS = ("maxItems", "minItems", "maxLength", "minLength", "maxProperties", "minProperties")
_NULL = {"type": "null"}


def _without_null(schema: Any) -> Any:
    """``schema`` with its ``null`` alternative removed, or None if it is not nullable."""
    if not isinstance(schema, Mapping):
        return None
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        rest = [t for t in types if t != "null"]
        if not rest:
            return None
        return {**schema, "type": rest[0] if len(rest) == 1 else rest}
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and _NULL in options:
            rest = [o for o in options if o != _NULL]
            if not rest:
                return None
            others = {k: v for k, v in schema.items() if k != key}
            if len(rest) == 1 and isinstance(rest[0], Mapping):
                return {**others, **rest[0]}
            return {**others, key: rest}
    return None


def grammar_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in which a required property that accepts ``null`` becomes optional
    and no longer accepts ``null``, and length/count bounds above :data:`BOUND_LIMIT` are gone.
    Every reply it accepts is one the strict schema accepts too, up to fields left out."""
    result = _loosen(schema)
    assert isinstance(result, dict)
    return result


def _loosen(node: Any) -> Any:
    if isinstance(node, list):
        return [_loosen(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _BOUNDS and isinstance(value, int) and value > BOUND_LIMIT:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _loosen(sub) for name, sub in value.items()}
        elif key in ("required", "enum", "const"):
            out[key] = value
        else:
            out[key] = _loosen(value)
    properties = out.get("properties")
    required = out.get("required")
    if isinstance(properties, dict) and isinstance(required, list):
        kept = []
        for name in required:
            relaxed = _without_null(properties.get(name))
            if relaxed is None:
                kept.append(name)
            else:
                properties[name] = relaxed
        out["required"] = kept
    return out
