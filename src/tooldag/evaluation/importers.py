"""Goal sets in other benchmarks' formats, read as tooldag goal rows: NesTools and NESTFUL.

Both describe tools by schema only (their functions are not part of the data), so imported goals
are planned, not run: what they measure is whether the plan is valid and how close it comes to
the gold calls (node, edge and argument F1).

**NesTools** (Han et al., "NesTools: A Dataset for Evaluating Nested Tool Learning Abilities of
Large Language Models", COLING 2025; ``data/test_data.jsonl`` of hhan1018/NesTools), one JSON
object a line::

    {"test_id": 1, "task": "Scan the ISBN ... then ...",
     "api": [{"api_name": "scan_isbn", "api_description": "...",
              "parameters": {"isbn": {"type": "str", "description": "..."}},
              "required": ["isbn"],
              "responses": {"book_details": {"type": "str", ...}, "availability": {...}}}, ...],
     "call": [{"api_name": "scan_isbn", "parameters": {"isbn": "978-3-16-148410-0"},
               "responses": ["API_call_0", "API_call_1"]},
              {"api_name": "locate_book", "parameters": {"book_info": "API_call_0"}, ...}]}

A call's ``responses`` name its outputs in the order of the API's ``responses`` keys, so
``API_call_0`` above is ``scan_isbn``'s ``book_details``; a later parameter whose value is that
placeholder reads it (``$scan_isbn.book_details``; inside longer text, ``${...}``).

**NESTFUL** (Basu et al., "NESTFUL: A Benchmark for Evaluating LLMs on Nested Sequences of API
Calls", IBM, 2024; ``data_v2/nestful_data.jsonl`` of IBM/NESTFUL)::

    {"sample_id": "4af7a62d-...", "input": "find the average of ...",
     "tools": [{"name": "add", "description": "adds two numbers",
                "parameters": {"arg_0": {"description": "...", "type": "int or float"}, ...},
                "output_parameter": {"result": {"description": "...", "type": "int or float"}}}],
     "output": [{"name": "add", "label": "$var_1", "arguments": {"arg_0": 6, "arg_1": 4}},
                {"name": "divide", "label": "$var_2",
                 "arguments": {"arg_0": "$var_1.result$", "arg_1": 2}}],
     "gold_answer": 20.0}

``$var_1.result$`` reads output ``result`` of the call labelled ``$var_1`` (``$var_1$``: its
whole output); the call named ``var_result``, when there is one, gathers the results to show
and becomes the plan's ``answer``. ``tools`` and ``output`` may be JSON text (as on Hugging
Face), a tool's parameters a JSON Schema (the coding half of the set) and the first version's
labels ``var1``; ``gold_answer`` becomes the expected answer (a number with a tolerance of 1e-6
relative, a text exact).

Literal dollars in the data are escaped (``$$``) so that no text is read as a reference.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["FORMATS", "convert_records", "detect_format", "nestful_row", "nestools_row"]

FORMATS = ("tooldag", "nestools", "nestful")

_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}
_TYPE_NAMES = {
    "str": "string",
    "string": "string",
    "text": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "double": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
    "none": "null",
    "null": "null",
}
_PLACEHOLDER = re.compile(r"\bAPI_call_\d+\b")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# $label$ or $label.path$ (the path may hold spaces: "$var1.Exchange Rate$").
_NESTFUL_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)(?:\.([^$]*))?\$")


def detect_format(records: list[tuple[int, Any]], source: str) -> str:
    """``tooldag``, ``nestools`` or ``nestful``, by the keys of the first record."""
    if not records:
        return "tooldag"
    number, first = records[0]
    if isinstance(first, Mapping):
        keys = set(first)
        if "goal" in keys:
            return "tooldag"
        if {"api", "call"} <= keys:
            return "nestools"
        if {"input", "output"} <= keys:
            return "nestful"
    raise ConfigError(
        f'{source} line {number}: not a goal row ({{"goal": ...}}), a NesTools row '
        '({"task", "api", "call"}) or a NESTFUL row ({"input", "tools", "output"}); '
        "pass --format if it is one of them"
    )


def convert_records(
    records: Iterable[tuple[int, Any]], kind: str, source: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each record of a ``kind`` file as a tooldag goal row (a mistake names the line)."""
    if kind not in FORMATS:
        raise ConfigError(f"unknown goal format {kind!r}: use one of {', '.join(FORMATS)}")
    convert = {"nestools": nestools_row, "nestful": nestful_row}.get(kind)
    for number, data in records:
        if convert is None:
            yield number, data
            continue
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source} line {number}: expected a JSON object, not {data!r:.40}")
        try:
            yield number, convert(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{source} line {number}: not a {kind} row as expected "
                f"({type(exc).__name__}: {exc})"
            ) from None


# ------------------------------------------------------------------------------------ schemas


def _json_type(name: Any) -> str | list[str] | None:
    """A JSON Schema type for a type name such as ``str``, ``int or float`` or ``["integer",
    "number"]``; ``None`` when it is not known (the parameter then takes any value)."""
    if isinstance(name, list):
        parts = [_json_type(n) for n in name]
    elif isinstance(name, str):
        parts = [_TYPE_NAMES.get(p.strip().lower()) for p in re.split(r"\bor\b|\||,", name)]
    else:
        return None
    flat: list[str] = []
    for part in parts:
        if part is None:
            return None
        for t in [part] if isinstance(part, str) else part:
            if t not in flat:
                flat.append(t)
    if {"integer", "number"} <= set(flat):  # an integer is a number
        flat.remove("integer")
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else flat


def _property(spec: Any) -> dict[str, Any]:
    """One parameter or output field as a JSON Schema."""
    if not isinstance(spec, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "required":  # a per-field flag in some sources, not JSON Schema's list
            continue
        if key == "type":
            if isinstance(value, str) and value in _JSON_TYPES:
                out["type"] = value
            elif (t := _json_type(value)) is not None:
                out["type"] = t
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {k: _property(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = _property(value)
        elif key in ("description", "enum", "default", "additionalProperties", "nullable"):
            out[key] = value
    return out


def _is_json_schema(params: Mapping[str, Any]) -> bool:
    return isinstance(params.get("properties"), Mapping) and set(params) <= {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "description",
        "title",
    }


def _object_schema(params: Any, required: Iterable[str] = ()) -> dict[str, Any]:
    """Parameters given as a JSON Schema object or as a mapping of name -> {type, description}
    (with per-field ``required`` flags in some sources) as one JSON Schema object."""
    if not isinstance(params, Mapping):
        return {"type": "object", "properties": {}}
    if _is_json_schema(params):
        fields = params["properties"]
        required = [*required, *(params.get("required") or [])]
    else:
        fields = params
        required = [
            *required,
            *(k for k, v in fields.items() if isinstance(v, Mapping) and v.get("required") is True),
        ]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _property(spec) for name, spec in fields.items()},
    }
    names = list(dict.fromkeys(r for r in required if r in schema["properties"]))
    if names:
        schema["required"] = names
    return schema


def _loaded(value: Any) -> Any:
    """A field that may be JSON text (Hugging Face stores NESTFUL's lists as strings)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        return json.loads(value)
    return value


def _literal(value: Any) -> Any:
    """A literal from the data with every ``$`` doubled, so none reads as a reference."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def _path(path: str | None) -> str:
    """A dotted output path of the data (``result``, ``Exchange Rate``, ``items.0``) in the
    reference language."""
    if not path:
        return ""
    out = ""
    for segment in path.split("."):
        if _IDENT.match(segment) or segment.isdigit():
            out += "." + segment
        else:
            out += "[" + json.dumps(segment) + "]"
    return out


def _unique_id(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "step"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "s_" + base
    ident, n = base, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


# ------------------------------------------------------------------------------------ NesTools


def nestools_row(data: Mapping[str, Any]) -> dict[str, Any]:
    """A NesTools record as a tooldag goal row (planned only; see the module docstring)."""
    apis = {api["api_name"]: api for api in data["api"]}
    tools = [
        {
            "name": api["api_name"],
            "description": api.get("api_description", ""),
            "parameters": _object_schema(api.get("parameters"), api.get("required") or ()),
            "output_schema": _object_schema(api.get("responses")),
        }
        for api in apis.values()
    ]
    taken: set[str] = set()
    placeholders: dict[str, str] = {}  # API_call_k -> the reference body: step id and path
    steps: list[dict[str, Any]] = []

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if not isinstance(value, str):
            return value
        if value.strip() in placeholders:
            return "$" + placeholders[value.strip()]
        parts = re.split(rf"({_PLACEHOLDER.pattern})", value)
        return "".join(
            "${" + placeholders[p] + "}" if p in placeholders else _literal(p) for p in parts
        )

    for call in data["call"]:
        name = call["api_name"]
        step_id = _unique_id(name, taken)
        steps.append({"id": step_id, "tool": name, "args": convert(call.get("parameters") or {})})
        fields = list((apis.get(name) or {}).get("responses") or {})
        for i, placeholder in enumerate(call.get("responses") or []):
            field = fields[i] if i < len(fields) else None
            placeholders[str(placeholder)] = step_id + (_path(field) if field else "")
    return {
        "id": f"nestools-{data.get('test_id', len(steps))}",
        "goal": data["task"],
        "tools": tools,
        "plan": {"goal": data["task"], "steps": steps},
        "tags": ["nestools", *([str(data["field"])] if data.get("field") else [])],
        "execute": False,
    }


# ------------------------------------------------------------------------------------ NESTFUL


def _nestful_tool(spec: Mapping[str, Any]) -> dict[str, Any]:
    params = spec.get("parameters", spec.get("query_parameters"))
    output = spec.get("output_parameter", spec.get("output_parameters"))
    return {
        "name": spec["name"],
        "description": spec.get("description", ""),
        "parameters": _object_schema(params, spec.get("required") or ()),
        "output_schema": _object_schema(output),
    }


def _expected(gold: Any) -> dict[str, Any] | None:
    if isinstance(gold, str):
        text = gold.strip()
        try:
            gold = json.loads(text)
        except json.JSONDecodeError:
            try:  # Hugging Face keeps it as Python literal text, to be read with eval
                gold = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return {"exact": text} if text else None
    if isinstance(gold, bool) or gold is None:
        return None if gold is None else {"exact": str(gold).lower()}
    if isinstance(gold, int | float):
        return {"number": float(gold)}
    if isinstance(gold, str):
        return {"exact": gold}
    return None  # lists and objects: no answer check


def nestful_row(data: Mapping[str, Any]) -> dict[str, Any]:
    """A NESTFUL record as a tooldag goal row (planned only; see the module docstring)."""
    tools = [_nestful_tool(t) for t in _loaded(data.get("tools") or [])]
    calls = _loaded(data["output"])
    taken: set[str] = set()
    labels: dict[str, str] = {}  # label without $ -> step id
    for i, call in enumerate(calls):
        if call.get("name") == "var_result":
            continue
        label = str(call.get("label") or f"call{i}").strip("$")
        labels[label] = _unique_id(label, taken)

    def convert(value: Any, *, whole_values: bool = True) -> Any:
        if isinstance(value, dict):
            return {k: convert(v, whole_values=whole_values) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v, whole_values=whole_values) for v in value]
        if not isinstance(value, str):
            return value
        whole = _NESTFUL_REF.fullmatch(value.strip())
        if whole_values and whole and whole.group(1) in labels:
            return "$" + labels[whole.group(1)] + _path(whole.group(2))
        out, last = "", 0
        for m in _NESTFUL_REF.finditer(value):
            if m.group(1) not in labels:
                continue
            out += _literal(value[last : m.start()])
            out += "${" + labels[m.group(1)] + _path(m.group(2)) + "}"
            last = m.end()
        return out + _literal(value[last:])

    steps: list[dict[str, Any]] = []
    answer: str | None = None
    for i, call in enumerate(calls):
        if call.get("name") == "var_result":
            # Text, not typed values: what the gathered results read as, one after the other.
            gathered = convert(call.get("arguments") or {}, whole_values=False)
            answer = "; ".join(f"{_literal(k)}: {v}" for k, v in gathered.items()) or None
            continue
        args = convert(call.get("arguments") or {})
        label = str(call.get("label") or f"call{i}").strip("$")
        steps.append({"id": labels[label], "tool": call["name"], "args": args})
    goal = data["input"]
    plan: dict[str, Any] = {"goal": goal, "steps": steps}
    if answer is not None:
        plan["answer"] = answer
    row: dict[str, Any] = {
        "id": str(data.get("sample_id") or f"nestful-{len(steps)}"),
        "goal": goal,
        "tools": tools,
        "plan": plan,
        "tags": ["nestful"],
        "execute": False,
    }
    expected = _expected(data.get("gold_answer"))
    if expected is not None:
        row["answer"] = expected
    return row
