"""JSON Schema helpers: inlining ``$ref``, OpenAI strict-mode conversion, JSON type checks.

Pure functions over plain dicts; the registry uses them to export function-calling schemas and the
plan schema, the validator to compare a reference's declared type with a parameter's.

The walks below follow the *structure* of JSON Schema (``properties`` is a map of names to
schemas, ``enum`` and ``default`` are data): a tool argument named ``title`` or ``definitions``
is an argument, not a keyword to drop.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any

__all__ = [
    "STRICT_KEYWORDS",
    "TEXT_COERCIBLE",
    "ValueCheck",
    "as_text",
    "describe_types",
    "inline_refs",
    "json_type_of",
    "json_types",
    "strict_loses_meaning",
    "strict_schema",
    "subschema_at",
    "takes_free_text",
    "text_coercion",
    "types_compatible",
    "value_checker",
]

# Keywords whose value is a map of names to schemas, a schema, or a list of schemas.
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")
_SCHEMA_VALUES = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")

# What OpenAI's strict mode accepts (its "supported schemas" list); anything else is dropped from
# the export. Dropped constraints (minLength, uniqueItems, ...) are still enforced when the tool's
# arguments are validated before a call.
STRICT_KEYWORDS = frozenset(
    {
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
)
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
# An argument declared ``Any`` has no type; strict mode needs one. Scalars are what an LLM can
# write without a schema to follow.
_ANY_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}


def _map_schema(node: dict[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """``node`` with ``fn`` applied to each sub-schema (structure-aware, data left alone)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: fn(sub) for name, sub in value.items()}
        elif (key in _SCHEMA_LISTS or key == "items") and isinstance(value, list):
            out[key] = [fn(sub) for sub in value]
        elif key in _SCHEMA_VALUES:
            out[key] = fn(value)
        else:
            out[key] = value
    return out


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local ``#/$defs/X`` references by their definitions (pydantic emits them for nested
    models). Recursive definitions stay references, and ``$defs`` keeps exactly those (each one
    itself inlined the same way, so no reference is left dangling)."""
    if not isinstance(schema, dict):
        return schema
    defs: dict[str, Any] = dict(schema.get("$defs") or schema.get("definitions") or {})
    recursive: set[str] = set()

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            name = ref.rsplit("/", 1)[1]
            extra = {k: v for k, v in node.items() if k != "$ref"}
            if name in defs and name not in stack and name not in recursive:
                resolved = walk(defs[name], (*stack, name))
                if name not in recursive:
                    more = _map_schema(extra, lambda sub: walk(sub, stack))
                    return {**resolved, **more} if more else resolved
            if name in defs:
                recursive.add(name)
            kept = _map_schema(extra, lambda sub: walk(sub, stack))
            return {"$ref": f"#/$defs/{name}", **kept}
        kept = {k: v for k, v in node.items() if k not in ("$defs", "definitions")}
        discriminator = kept.get("discriminator")
        if isinstance(discriminator, dict) and "mapping" in discriminator:
            # OpenAPI's mapping names $defs entries that inlining removes.
            kept["discriminator"] = {k: v for k, v in discriminator.items() if k != "mapping"}
        return _map_schema(kept, lambda sub: walk(sub, stack))

    out: dict[str, Any] = walk(schema, ())
    if recursive:
        kept: dict[str, Any] = {}
        while len(kept) < len(recursive):
            for name in sorted(recursive - set(kept)):
                kept[name] = walk(defs[name], (name,))
        out["$defs"] = kept
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (how strict mode says an argument may be left out)."""
    if "enum" in schema and isinstance(schema["enum"], list) and None not in schema["enum"]:
        schema = {**schema, "enum": [*schema["enum"], None]}
    if "const" in schema:
        const = schema["const"]
        schema = {k: v for k, v in schema.items() if k != "const"}
        schema["enum"] = [const] if const is None else [const, None]
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
    if "enum" in schema:
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    parts = node.pop("allOf")
    merged: dict[str, Any] = {}
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged.setdefault("properties", {}).update(value)
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return {**merged, **node}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Convert a JSON Schema to one that passes OpenAI's strict structured-output rules.

    Every object gets ``additionalProperties: false`` and lists all its properties as required;
    properties that were optional become nullable so the model can still leave them out (by
    sending null). ``$ref`` are inlined where not recursive, ``oneOf`` becomes ``anyOf``, a tuple's
    ``prefixItems`` become ``items: {anyOf: [...]}``, and keywords strict mode rejects are dropped.
    A free-form object can only be ``{}`` in strict mode: see :func:`strict_loses_meaning`.
    """

    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if "oneOf" in node:
            node["anyOf"] = [*node.get("anyOf", []), *node.pop("oneOf")]
        if "allOf" in node:
            node = _merge_all_of(node)
        if "prefixItems" in node:
            prefix = node.pop("prefixItems")
            if not isinstance(node.get("items"), dict) and isinstance(prefix, list) and prefix:
                node["items"] = prefix[0] if len(prefix) == 1 else {"anyOf": prefix}
        if node.get("format") not in _STRICT_FORMATS:
            node.pop("format", None)
        node = _map_schema({k: v for k, v in node.items() if k in STRICT_KEYWORDS}, walk)
        t = node.get("type")
        if t == "object" or (isinstance(t, list) and "object" in t) or "properties" in node:
            props: dict[str, Any] = node.get("properties", {})
            required = set(node.get("required", []))
            node["properties"] = {
                name: (sub if name in required else _nullable(sub)) for name, sub in props.items()
            }
            node["required"] = list(props)
            node["additionalProperties"] = False
            node.setdefault("type", "object")
        elif (t == "array" or (isinstance(t, list) and "array" in t)) and not isinstance(
            node.get("items"), dict
        ):
            node["items"] = dict(_ANY_SCALAR)
        if not any(k in node for k in ("type", "anyOf", "$ref", "enum", "const")):
            node = {**node, **_ANY_SCALAR}
        return node

    inlined = inline_refs(copy.deepcopy(schema))
    out: dict[str, Any] = walk(inlined)
    return out


def strict_loses_meaning(schema: dict[str, Any]) -> bool:
    """Whether :func:`strict_schema` would change what ``schema`` accepts in a way a model would
    notice: a free-form object (``dict[str, Any]``) becomes ``{}`` only, ``Any`` only scalars.
    Such a tool is better exported non-strict."""

    def lossy(node: Any, top: bool) -> bool:
        if not isinstance(node, dict):
            return False
        types = json_types(node)
        if types is None and not top and not any(k in node for k in ("$ref", "allOf")):
            return True
        declared = node.get("type")
        if declared == "object" or (isinstance(declared, list) and "object" in declared):
            props = node.get("properties")
            extra = node.get("additionalProperties")
            if not props and extra is not False and not (top and isinstance(props, dict)):
                return True
            if isinstance(extra, dict) or (extra is True and props):
                return True
        found = False

        def visit(sub: Any) -> Any:
            nonlocal found
            found = found or lossy(sub, False)
            return sub

        _map_schema({k: v for k, v in node.items() if k != "additionalProperties"}, visit)
        return found

    return lossy(inline_refs(schema), True)


_JSON_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def json_type_of(value: Any) -> str:
    """The JSON type name of a Python value (``True`` is a "boolean", not an "integer")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe_types(types: Iterable[str]) -> str:
    """``{"integer", "null"}`` -> ``"an integer or null"``: types as a message reads them."""
    return " or ".join(_JSON_TYPE_NAMES.get(t, t) for t in sorted(types))


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- checking values

# A value -> None if it fits, else what is wrong, in words.
ValueCheck = Callable[[Any], "str | None"]

_PRIMITIVE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    # Lax like pydantic (and JSON Schema): 2.0 is an integer.
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
# Keywords that do not constrain a value.
_ANNOTATIONS = frozenset(
    {
        "description",
        "title",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "format",
        "readOnly",
        "writeOnly",
    }
)


def _ok(_value: Any) -> str | None:
    return None


def _json_equal(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _type_check(types: list[str]) -> ValueCheck | None:
    checks = [_PRIMITIVE_CHECKS[t] for t in types if t in _PRIMITIVE_CHECKS]
    if len(checks) != len(types):
        return None
    wanted = describe_types(types)

    def run(value: Any) -> str | None:
        for check in checks:
            if check(value):
                return None
        return f"expected {wanted}, got {json_type_of(value)} {_short(value)}"

    return run


def value_checker(schema: Any, defs: dict[str, Any] | None = None) -> ValueCheck:
    """A function telling whether a value fits ``schema`` (None) or what is wrong with it.

    Fast for the schemas tools usually have (types, enums, unions, lists of those), which a plan
    of 100k steps checks 100k times; anything else goes to ``jsonschema``, with ``defs`` as the
    ``$defs`` its references point into. A schema ``jsonschema`` cannot use checks nothing.
    """
    if not isinstance(schema, dict):
        return _ok
    keys = set(schema) - _ANNOTATIONS
    if not keys:
        return _ok
    t = schema.get("type")
    types = [t] if isinstance(t, str) else t if isinstance(t, list) else None
    base = _type_check(types) if types is not None else _ok
    if base is None:
        return _jsonschema_check(schema, defs)
    if keys <= {"type"}:
        return base
    if keys <= {"type", "enum"} and isinstance(schema.get("enum"), list):
        options = schema["enum"]

        def enum(value: Any) -> str | None:
            if any(_json_equal(value, o) for o in options):
                return None
            return f"expected one of {', '.join(map(repr, options))}, got {_short(value)}"

        return enum
    if keys <= {"type", "const"}:
        const = schema["const"]

        def is_const(value: Any) -> str | None:
            return None if _json_equal(value, const) else f"expected {const!r}, got {_short(value)}"

        return is_const
    for union in ("anyOf", "oneOf"):
        if keys == {union} and isinstance(schema[union], list):
            # oneOf is read as anyOf: pydantic emits it only for disjoint (tagged) unions.
            return _any_of([value_checker(sub, defs) for sub in schema[union]])
    if keys <= {"type", "items"} and types == ["array"] and isinstance(schema.get("items"), dict):
        item_check = value_checker(schema["items"], defs)

        def array(value: Any) -> str | None:
            problem = base(value)
            if problem:
                return problem
            for i, item in enumerate(value):
                problem = item_check(item)
                if problem:
                    return f"item {i}: {problem}"
            return None

        return array
    return _jsonschema_check(schema, defs)


def _any_of(subs: list[ValueCheck]) -> ValueCheck:
    def run(value: Any) -> str | None:
        for sub in subs:
            if sub(value) is None:
                return None
        return " / ".join(e for e in (sub(value) for sub in subs) if e)

    return run


def _jsonschema_check(schema: dict[str, Any], defs: dict[str, Any] | None) -> ValueCheck:
    import jsonschema

    try:
        validator = jsonschema.Draft202012Validator({**schema, "$defs": defs} if defs else schema)
    except Exception:
        return _ok

    def run(value: Any) -> str | None:
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except Exception:
            return None  # a schema jsonschema cannot use: say nothing rather than guess
        if error is None:
            return None
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        return f"{where.lstrip('.') + ': ' if where else ''}{error.message}"

    return run


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
    if not schema or not isinstance(schema, dict):
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
        return {x for x in t if isinstance(x, str)}
    for key in ("anyOf", "oneOf"):
        if key in schema and isinstance(schema[key], list):
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


def types_compatible(produced: AbstractSet[str] | None, accepted: AbstractSet[str] | None) -> bool:
    """Whether a value of one of the ``produced`` JSON types can fit ``accepted``.

    Lenient where pydantic's lax mode would convert: an integer fits a number, and a whole float
    an integer; a number does not fit a string parameter (pydantic does not stringify numbers).
    """
    if produced is None or accepted is None:
        return True
    if produced & accepted:
        return True
    if "integer" in produced and "number" in accepted:
        return True
    # A float that happens to be whole fits an integer parameter in lax mode.
    return "number" in produced and "integer" in accepted


# --------------------------------------------------------------------------- safe coercions

# The JSON types a parameter that takes free text is given as their JSON text (see
# takes_free_text): nothing is lost, and it is what ``${...}`` interpolation would give. A list,
# even of one item, or an object is never turned into text: that is a mistake, not a spelling.
TEXT_COERCIBLE = frozenset({"integer", "number", "boolean"})
# What a parameter may ask of its text that a number's text cannot be trusted to meet.
_TEXT_RULES = ("enum", "const", "pattern", "format")


def takes_free_text(schema: Any) -> bool:
    """Whether a parameter of ``schema`` takes a string whose text it leaves free (no ``enum``,
    ``const``, ``pattern`` or ``format``; a length limit is checked on the text as usual): the
    parameters a number or boolean is passed to as its JSON text."""
    if not isinstance(schema, dict):
        return False
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            return any(takes_free_text(option) for option in options)
    types = json_types(schema)
    return types is not None and "string" in types and not any(k in schema for k in _TEXT_RULES)


def as_text(value: Any) -> str:
    """A number or boolean as its JSON text: ``3`` -> ``"3"``, ``2.5`` -> ``"2.5"``, ``True`` ->
    ``"true"``: the text that ``${...}`` interpolation gives for the same value."""
    return json.dumps(value)


def text_coercion(value: Any, accepted: AbstractSet[str]) -> str | None:
    """The text that ``value`` is passed as to a parameter that takes free text and accepts the
    JSON types ``accepted``; None when it is passed as it is (it fits, or it is no number or
    boolean)."""
    kind = type(value)
    if kind is not int and kind is not float and kind is not bool:
        return None
    for name in accepted:
        check = _PRIMITIVE_CHECKS.get(name)
        if check is not None and name != "string" and check(value):
            return None
    return as_text(value)


def subschema_at(schema: dict[str, Any] | None, path: Iterable[str | int]) -> dict[str, Any] | None:
    """The schema of the value at ``path`` inside a value of ``schema``.

    Returns ``None`` when the schema does not say (free-form object, missing schema): the caller
    must then accept the path. Raises ``KeyError(segment, position)`` for the first segment that
    the schema proves cannot exist (a key an object does not declare, anything below a number or
    string, a key into a list), so the validator can report ``unknown_field`` with its name.
    """
    node = schema
    for position, segment in enumerate(path):
        if not node:
            return None
        node = _unwrap_nullable(node)
        types = json_types(node)
        if types is not None and not types & {"object", "array"}:
            raise KeyError(segment, position)
        # refs.lookup indexes a list with an int or with a key spelled as a number.
        is_index = isinstance(segment, int) or segment.isdecimal()
        if is_index and (types is None or "array" in types):
            items = node.get("items")
            if isinstance(items, dict):
                node = items
                continue
            prefix = node.get("prefixItems")
            if isinstance(prefix, list):
                index = int(segment)
                node = prefix[index] if 0 <= index < len(prefix) else None
                continue
            if types is not None and "object" not in types:
                return None
        if types is not None and "object" not in types:
            raise KeyError(segment, position)
        key = str(segment)
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if isinstance(props, dict):
            if key in props:
                node = props[key]
                continue
            if extra is False or (extra is None and node.get("type") == "object" and props):
                raise KeyError(segment, position)
        node = extra if isinstance(extra, dict) else None
    return node


def _value_schema(node: dict[str, Any]) -> dict[str, Any] | None:
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _unwrap_nullable(node: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list):
            non_null = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if len(non_null) == 1:
                return non_null[0]
    return node
