"""The lenient plan parser: whatever an LLM (or a person) wrote -> one canonical :class:`Plan`.

Accepted on input, and normalised: a fenced ```json block, prose around the JSON, trailing commas,
Python-literal dicts, a bare list of steps, ``{"plan": {...}}`` wrappers, ``tool_name``/``name``/
``function`` for ``tool``, ``parameters``/``arguments``/``params``/``input`` for ``args`` (also as a
JSON string), ``depends_on`` as a string or under ``dependencies``, numeric step ids (``1`` becomes
``step1`` and ``$1.x`` references follow), seed-style conditions (``field``/``operator``). JSON cut
off mid-way is reported as ``truncated_json``, never guessed at.

:func:`parse_plan` returns a ``Plan`` or raises :class:`PlanParseError` whose ``issues`` say what
is wrong; it raises nothing else on any input.

>>> parse_plan('Sure! ```json\\n[{"id": "a", "tool_name": "now", "parameters": {}}]\\n```').steps[0].tool
'now'
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any

import pydantic

from .errors import PlanParseError
from .issues import Issue
from .plan import Plan

__all__ = ["extract_json", "normalize_plan_data", "parse_plan"]

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.S)
_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")

_STEP_LIST_KEYS = ("steps", "tasks", "actions", "tool_calls", "calls", "nodes", "plan")
_TOOL_KEYS = ("tool", "tool_name", "toolName", "name", "function", "action")
_ARGS_KEYS = ("args", "arguments", "parameters", "params", "input", "inputs", "kwargs")
_ID_KEYS = ("id", "step_id", "stepId", "step", "key")
_DEPS_KEYS = ("depends_on", "dependsOn", "dependencies", "deps", "after", "requires")
_WHEN_KEYS = ("when", "condition", "if")
_DESC_KEYS = ("description", "thought", "reason", "reasoning", "comment")
_GOAL_KEYS = ("goal", "objective", "task", "query")
_ANSWER_KEYS = ("answer", "final_answer", "finalAnswer", "response")


class _Problem(Exception):
    """Internal: a normalisation failure that becomes an Issue."""

    def __init__(self, issue: Issue) -> None:
        self.issue = issue
        super().__init__(issue.message)


def _loads(text: str) -> Any:
    """json.loads, then the forgivable variants: trailing commas, Python literals."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    fixed = _TRAILING_COMMA_RE.sub(r"\1", text)
    if fixed != text:
        try:
            return json.loads(fixed)
        except json.JSONDecodeError:
            pass
    try:
        # Models sometimes answer in Python syntax (single quotes, True/None). literal_eval only
        # builds literals: no names, no calls.
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise json.JSONDecodeError("not JSON", text, 0) from None
    if isinstance(value, dict | list):
        return value
    raise json.JSONDecodeError("not a JSON object or list", text, 0)


def _truncated(text: str, start: int) -> Issue | None:
    """An issue if the JSON starting at ``start`` runs to the end of the text without closing."""
    depth = 0
    in_string = False
    escape = False
    for ch in text[start:]:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return None
    if depth > 0:
        line = text.count("\n", 0, len(text)) + 1
        return Issue(
            "truncated_json",
            f"the JSON plan is cut off mid-way (it ends at line {line} with {depth} unclosed "
            "bracket(s)); the reply was probably truncated",
            path="",
            hint="send the complete plan; if it is long, use fewer steps",
        )
    return None


def extract_json(text: str) -> Any:
    """The first JSON object or list in ``text`` (fenced or surrounded by prose).

    Raises :class:`PlanParseError` with a ``not_json`` or ``truncated_json`` issue.
    """
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise PlanParseError("empty plan", [Issue("not_json", "the plan text is empty")])
    fences = _FENCE_RE.findall(stripped)
    # Prefer fences labelled json, then any fence, then the raw text.
    candidates: list[str] = [
        body for lang, body in fences if lang.lower() in ("json", "jsonc", "json5")
    ]
    candidates += [body for lang, body in fences if lang.lower() not in ("json", "jsonc", "json5")]
    candidates.append(stripped)
    first_truncation: Issue | None = None
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate:
            continue
        try:
            return _loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            pass
        # Prose around the JSON: decode from each opening bracket (bounded, so junk stays cheap).
        decoder = json.JSONDecoder()
        starts = [m.start() for m in re.finditer(r"[{\[]", candidate)][:50]
        for pos in starts:
            try:
                value, _end = decoder.raw_decode(candidate, pos)
            except (json.JSONDecodeError, RecursionError):
                # Try the forgiving loader on the balanced span, if there is one.
                end = _balanced_end(candidate, pos)
                if end is None:
                    if first_truncation is None:
                        first_truncation = _truncated(candidate, pos)
                    continue
                try:
                    value = _loads(candidate[pos:end])
                except (json.JSONDecodeError, RecursionError):
                    continue
            if isinstance(value, dict | list):
                return value
    if first_truncation is not None:
        raise PlanParseError("the plan JSON is incomplete", [first_truncation])
    raise PlanParseError(
        "no JSON plan found",
        [
            Issue(
                "not_json",
                "no JSON object or list was found in the text",
                hint='reply with one JSON object: {"goal": ..., "steps": [...], "answer": ...}',
            )
        ],
    )


def _balanced_end(text: str, start: int) -> int | None:
    depth = 0
    in_string: str | None = None
    escape = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == in_string:
                in_string = None
            continue
        if ch in "\"'":
            in_string = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _first(data: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in data:
            return key, data[key]
    return None, None


_NUM_REF_RE = re.compile(r"\$(\{?)(\d+)(?=[.\[}\s]|$)")


def _renumber(value: Any, numeric: set[str]) -> Any:
    """Rewrite ``$1.x`` / ``${1.x}`` into ``$step1.x`` for plans whose step ids were numbers."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        return _NUM_REF_RE.sub(
            lambda m: f"${m.group(1)}step{m.group(2)}" if m.group(2) in numeric else m.group(0),
            value,
        )
    if isinstance(value, dict):
        return {k: _renumber(v, numeric) for k, v in value.items()}
    if isinstance(value, list):
        return [_renumber(v, numeric) for v in value]
    return value


def _normalize_condition(cond: Any) -> Any:
    """Seed-style ``{"field": "weather.temp", "operator": "<", "value": 0}`` -> canonical form."""
    if not isinstance(cond, dict):
        return cond
    out = dict(cond)
    if "ref" not in out:
        for key in ("field", "left", "path", "variable"):
            if key in out:
                ref = out.pop(key)
                if isinstance(ref, str) and not ref.startswith("$"):
                    ref = "$" + ref
                out["ref"] = ref
                break
    if "op" not in out:
        for key in ("operator", "comparison", "cmp"):
            if key in out:
                out["op"] = out.pop(key)
                break
    if "value" not in out:
        for key in ("right", "to", "expected"):
            if key in out:
                out["value"] = out.pop(key)
                break
    for key in ("all", "any"):
        if isinstance(out.get(key), list):
            out[key] = [_normalize_condition(c) for c in out[key]]
    if "not" in out:
        out["not"] = _normalize_condition(out["not"])
    return out


def _normalize_step(raw: Any, index: int) -> dict[str, Any]:
    path = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _Problem(
            Issue(
                "bad_step",
                f"step {index} is a {type(raw).__name__}, not an object",
                path=path,
                hint='write each step as {"id": ..., "tool": ..., "args": {...}}',
            )
        )
    # OpenAI tool-call shape: {"id": ..., "function": {"name": ..., "arguments": "<json>"}}.
    function = raw.get("function")
    if isinstance(function, dict):
        raw = {**raw, "tool": function.get("name"), "args": function.get("arguments", {})}
        raw.pop("function")
        raw.pop("type", None)
    tool_key, tool = _first(raw, _TOOL_KEYS)
    args_key, args = _first(raw, _ARGS_KEYS)
    id_key, step_id = _first(raw, tuple(k for k in _ID_KEYS if k != tool_key))
    step: dict[str, Any] = {}
    if step_id is None:
        step_id = f"step{index + 1}"
    if isinstance(step_id, bool) or not isinstance(step_id, str | int):
        raise _Problem(
            Issue(
                "invalid_id",
                f"step {index} has an id of type {type(step_id).__name__}",
                path=f"{path}.{id_key}",
                hint="use a short identifier such as 'weather'",
            )
        )
    step["id"] = step_id
    if not isinstance(tool, str) or not tool.strip():
        raise _Problem(
            Issue(
                "bad_step",
                f"step {step_id!r} names no tool" if tool is None else
                f"step {step_id!r} has a tool of type {type(tool).__name__}, not a name",
                step=str(step_id),
                path=f"{path}.tool",
                hint="give each step a 'tool' with the name of a registered tool",
            )
        )
    step["tool"] = tool.strip()
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise _Problem(
                Issue(
                    "bad_args",
                    f"the arguments of step {step_id!r} are a string that is not JSON",
                    step=str(step_id),
                    path=f"{path}.args",
                    hint="give 'args' as a JSON object of argument names to values",
                )
            ) from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _Problem(
            Issue(
                "bad_args",
                f"the arguments of step {step_id!r} are a {type(args).__name__}, not an object",
                step=str(step_id),
                path=f"{path}.{args_key}",
                hint="give 'args' as a JSON object of argument names to values",
            )
        )
    step["args"] = args
    _, deps = _first(raw, _DEPS_KEYS)
    if deps is None or deps == "":
        deps = []
    elif isinstance(deps, str | int):
        deps = [deps]
    if not isinstance(deps, list) or not all(
        isinstance(d, str | int) and not isinstance(d, bool) for d in deps
    ):
        raise _Problem(
            Issue(
                "bad_step",
                f"depends_on of step {step_id!r} must be a list of step ids",
                step=str(step_id),
                path=f"{path}.depends_on",
            )
        )
    step["depends_on"] = [d.lstrip("$") if isinstance(d, str) else d for d in deps]
    _, when = _first(raw, _WHEN_KEYS)
    if when is not None:
        if not isinstance(when, dict):
            raise _Problem(
                Issue(
                    "bad_condition",
                    f"the condition of step {step_id!r} must be an object like "
                    '{"ref": "$weather.temp", "op": "<", "value": 0}',
                    step=str(step_id),
                    path=f"{path}.when",
                )
            )
        step["when"] = _normalize_condition(when)
    timeout = raw.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        step["timeout"] = float(timeout)
    _, desc = _first(raw, _DESC_KEYS)
    if isinstance(desc, str):
        step["description"] = desc
    return step


def normalize_plan_data(data: Any) -> dict[str, Any]:
    """Turn any accepted plan shape (already decoded JSON) into the canonical dict form."""
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict):
        raise _Problem(
            Issue(
                "bad_plan",
                f"a plan must be a JSON object or a list of steps, not {type(data).__name__}",
                hint='reply with {"goal": ..., "steps": [...], "answer": ...}',
            )
        )
    # Unwrap {"plan": {...}} and similar single-key wrappers.
    for _ in range(3):
        inner = data.get("plan")
        if isinstance(inner, dict) and ("steps" in inner or any(k in inner for k in _STEP_LIST_KEYS)):
            data = {**{k: v for k, v in data.items() if k != "plan"}, **inner}
        else:
            break
    steps_key, steps = _first(data, _STEP_LIST_KEYS)
    if steps is None:
        if any(k in data for k in _TOOL_KEYS):
            steps = [data]  # a single step on its own
            data = {}
        else:
            steps = []
    if not isinstance(steps, list):
        raise _Problem(
            Issue(
                "bad_plan",
                f"'{steps_key}' must be a list of steps, not {type(steps).__name__}",
                path=steps_key or "steps",
            )
        )
    norm_steps = [_normalize_step(raw, i) for i, raw in enumerate(steps)]
    numeric = {str(s["id"]) for s in norm_steps if isinstance(s["id"], int)}
    numeric |= {s["id"] for s in norm_steps if isinstance(s["id"], str) and s["id"].isdigit()}
    _, goal = _first(data, _GOAL_KEYS)
    _, answer = _first(data, _ANSWER_KEYS)
    if answer is not None and not isinstance(answer, str):
        answer = json.dumps(answer, ensure_ascii=False)
    if numeric:
        for s in norm_steps:
            s["id"] = f"step{s['id']}" if str(s["id"]) in numeric else s["id"]
            s["args"] = _renumber(s["args"], numeric)
            s["depends_on"] = [f"step{d}" if str(d) in numeric else d for d in s["depends_on"]]
            if "when" in s:
                s["when"] = _renumber(s["when"], numeric)
        if isinstance(answer, str):
            answer = _renumber(answer, numeric)
    for s in norm_steps:
        s["id"] = str(s["id"])
        s["depends_on"] = [str(d) for d in s["depends_on"]]
    out: dict[str, Any] = {"goal": goal if isinstance(goal, str) else "", "steps": norm_steps}
    if answer is not None:
        out["answer"] = answer
    return out


def _pydantic_issues(exc: pydantic.ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors()[:20]:
        loc = err["loc"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        issues.append(Issue("bad_plan", f"{path}: {err['msg']}", path=path))
    return issues


def parse_plan(source: str | bytes | Mapping[str, Any] | list[Any] | Plan) -> Plan:
    """Parse a plan leniently; raise :class:`PlanParseError` (with issues) and nothing else."""
    if isinstance(source, Plan):
        return source
    try:
        data: Any
        if isinstance(source, bytes):
            source = source.decode("utf-8", errors="replace")
        if isinstance(source, str):
            data = extract_json(source)
        else:
            data = source
        canonical = normalize_plan_data(data if not isinstance(data, Mapping) else dict(data))
        return Plan.model_validate(canonical)
    except PlanParseError:
        raise
    except _Problem as problem:
        raise PlanParseError("the plan cannot be read", [problem.issue]) from None
    except pydantic.ValidationError as exc:
        raise PlanParseError("the plan has the wrong shape", _pydantic_issues(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the contract: nothing but PlanParseError escapes
        raise PlanParseError(
            "the plan cannot be read",
            [Issue("bad_plan", f"unreadable plan ({type(exc).__name__}: {exc})")],
        ) from None
