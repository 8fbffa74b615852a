"""The lenient plan parser: whatever an LLM (or a person) wrote -> one canonical :class:`Plan`.

Accepted on input, and normalised: a fenced ```json block, prose around the JSON, trailing commas,
Python-literal dicts, JSON encoded twice (a JSON string holding the plan), a bare list of steps,
``steps`` as an object keyed by step id, ``{"plan": {...}}`` wrappers, ``tool_name``/``name``/
``function`` for ``tool``, ``parameters``/``arguments``/``params``/``input`` for ``args`` (also as a
JSON string), ``depends_on`` as a string or under ``dependencies``, numeric step ids (``1`` becomes
``step1`` and ``$1.x`` references follow), seed-style conditions (``field``/``operator``).

Never guessed at: JSON cut off mid-way is reported as ``truncated_json``, and JSON with a syntax
error as ``not_json`` naming the line and column. A complete object found *inside* broken JSON
(the first step of a truncated plan) is not taken for the plan.

:func:`parse_plan` returns a ``Plan`` or raises :class:`PlanParseError` whose ``issues`` say what
is wrong; it raises nothing else on any input. Getting the JSON out of the text is
:mod:`tooldag.plan._jsontext`'s half (:func:`extract_json`, re-exported here); this module turns the
decoded value into the canonical plan.

>>> reply = 'Sure! ```json\\n[{"id": "a", "tool_name": "now", "parameters": {}}]\\n```'
>>> parse_plan(reply).steps[0].tool
'now'
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Mapping
from typing import Any

import pydantic

from ..errors import PlanParseError
from ..issues import Issue
from ..registry.schemas import json_type_of

# extract_json is re-exported: it was defined here, and callers import it from here.
from ._jsontext import Audience, extract_json, lenient_loads
from .model import Condition, Plan
from .refs import Ref, parse_ref, parse_string

__all__ = ["extract_json", "normalize_plan_data", "parse_plan"]

_STEP_LIST_KEYS = ("steps", "tasks", "actions", "tool_calls", "calls", "nodes", "plan")
_TOOL_KEYS = ("tool", "tool_name", "toolName", "name", "function", "action")
_ARGS_KEYS = ("args", "arguments", "parameters", "params", "input", "inputs", "kwargs")
_ID_KEYS = ("id", "step_id", "stepId", "step", "key")
# The id keys that cannot also name the tool (computed once: this runs per step).
_STEP_ID_KEYS = tuple(k for k in _ID_KEYS if k not in _TOOL_KEYS)
_DEPS_KEYS = ("depends_on", "dependsOn", "dependencies", "deps", "after", "requires")
_WHEN_KEYS = ("when", "condition", "if")
_DESC_KEYS = ("description", "thought", "reason", "reasoning", "comment")
_GOAL_KEYS = ("goal", "objective", "task", "query")
_ANSWER_KEYS = ("answer", "final_answer", "finalAnswer", "response")
_CANONICAL_STEP_KEYS = frozenset({"id", "tool", "args", "depends_on", "description"})


class _Problem(Exception):
    """Internal: a normalisation failure that becomes an Issue."""

    def __init__(self, issue: Issue) -> None:
        self.issue = issue
        super().__init__(issue.message)


# --------------------------------------------------------------------------- normalising


def _first(data: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in data:
            return key, data[key]
    return None, None


# Numbered steps are referred to as a whole value (the string is exactly ``$1.temp``) or inside a
# template (``${1.temp}``); nowhere else is ``$1`` a reference (``"pay $1.50"`` is text). ``$$`` is
# matched first, so an escaped dollar is never read as the start of one (``$$${1.x}``).
_NUM_WHOLE_RE = re.compile(r"\$(\d+)(?=[.\[]|$)")
_NUM_TEMPLATE_RE = re.compile(r"\$\$|\$\{(\s*\$?)(\d+)(?=\s*[.\[}])")
_NUMBERED_ID_RE = re.compile(r'"id"\s*:\s*\d')
_TEMPLATE_ONLY_RE = re.compile(r"^\$\{([^{}$]*)\}$")


def _renumber_text(text: str, numeric: set[str]) -> str:
    """``$1.x`` / ``${1.x}`` -> ``$step1.x`` / ``${step1.x}``; literal text is left as it is."""
    whole = _NUM_WHOLE_RE.match(text)
    if whole is not None and whole.group(1) in numeric:
        renamed = f"$step{text[1:]}"
        # parse_string, not parse_ref: the same answer here, and its cache then serves the
        # plan's own reading of this string (bare references, the validator, the executor).
        if type(parse_string(renamed)) is Ref:
            return renamed
    return _NUM_TEMPLATE_RE.sub(
        lambda m: f"${{{m.group(1)}step{m.group(2)}" if m.group(2) in numeric else m.group(0),
        text,
    )


def _renumber(value: Any, numeric: set[str]) -> Any:
    """Rewrite references to numbered steps for plans whose step ids were numbers."""
    if isinstance(value, str):
        return _renumber_text(value, numeric) if "$" in value else value
    if isinstance(value, dict):
        return {k: _renumber(v, numeric) for k, v in value.items()}
    if isinstance(value, list):
        return [_renumber(v, numeric) for v in value]
    return value


def _renumber_step(step: dict[str, Any], numeric: set[str]) -> dict[str, Any]:
    """A copy of ``step`` (it may be the caller's own dict) with numbered ids ``stepN``."""
    out = dict(step)
    step_id = str(step["id"])
    out["id"] = f"step{step_id}" if step_id in numeric else step_id
    out["args"] = _renumber(step.get("args", {}), numeric)
    out["depends_on"] = [
        f"step{d}" if str(d) in numeric else str(d) for d in step.get("depends_on", ())
    ]
    if "when" in step:
        out["when"] = _renumber(step["when"], numeric)
    return out


def _condition_ref(ref: Any) -> Any:
    """``weather.temp`` and ``${weather.temp}`` -> ``$weather.temp`` (a condition's ``ref`` is
    always one reference)."""
    if not isinstance(ref, str):
        return ref
    text = ref.strip()
    only = _TEMPLATE_ONLY_RE.match(text)
    if only:
        text = "$" + only.group(1).strip()
    elif not text.startswith("$") and parse_ref("$" + text) is not None:
        text = "$" + text
    return text if parse_ref(text) is not None else ref


def _normalize_condition(cond: Any, depth: int = 0) -> Any:
    """Seed-style ``{"field": "weather.temp", "operator": "<", "value": 0}`` -> canonical form."""
    if not isinstance(cond, dict) or depth > 50:
        return cond
    out = dict(cond)
    if "ref" not in out:
        for key in ("field", "left", "path", "variable"):
            if key in out:
                out["ref"] = out.pop(key)
                break
    if "ref" in out:
        out["ref"] = _condition_ref(out["ref"])
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
            out[key] = [_normalize_condition(c, depth + 1) for c in out[key]]
    if "not" in out:
        out["not"] = _normalize_condition(out["not"], depth + 1)
    return out


def _plain_text(value: Any) -> bool:
    return type(value) is str and value == value.strip()


def _canonical_dep(dep: Any, numbered: bool) -> bool:
    return (numbered and type(dep) is int) or (
        _plain_text(dep) and dep[:1] != "$" and not dep.isdigit()
    )


def _canonical_step(
    step_id: Any, tool: Any, deps: Any, description: Any, *, numbered: bool = False
) -> bool:
    """The fields of a step that needs no normalising: string id (not a number) and tool without
    surrounding blanks, ``depends_on`` a list of such ids, ``description`` text or absent.
    ``numbered``: the ids are numbers instead (``"id": 3``, ``"depends_on": [1, "b"]``, what a
    model that numbers its steps writes), renamed later with the plan's references to them."""
    id_fits = (
        (type(step_id) is int) if numbered else (_plain_text(step_id) and not step_id.isdigit())
    )
    return (
        id_fits
        and _plain_text(tool)
        and bool(tool)
        and (description is None or type(description) is str)
        and (
            deps is None or (type(deps) is list and all(_canonical_dep(d, numbered) for d in deps))
        )
    )


def _fast_step(raw: dict[str, Any]) -> dict[str, Any] | None:
    """A step already in the canonical shape (or numbered) is used as it is (pydantic copies
    it): the common case, and the one that matters for plans of thousands of steps. None: needs
    normalising."""
    if type(raw.get("args", {})) is not dict:
        return None
    fields = raw.get("id"), raw.get("tool"), raw.get("depends_on"), raw.get("description")
    if _canonical_step(*fields) or _canonical_step(*fields, numbered=True):
        return raw
    return None


def _canonical_condition(cond: Condition) -> bool:
    """Whether :func:`_normalize_condition` would leave ``cond`` as it is."""
    if cond.model_extra:
        return False  # seed-style keys (field, operator, ...) to rename
    if isinstance(cond.ref, str) and _condition_ref(cond.ref) != cond.ref:
        return False
    children = [*(cond.all_ or ()), *(cond.any_ or ()), *([cond.not_] if cond.not_ else [])]
    return all(_canonical_condition(c) for c in children)


def _canonical_plan(text: str) -> Plan | None:
    """The plan, when ``text`` is exactly a canonical plan in JSON; None to take the lenient path.

    pydantic reads and validates the JSON in one pass (in Rust), which is most of the cost of a
    big plan. The result is kept only if every step is one the normaliser would leave unchanged,
    so both paths give the same plan.
    """
    if _NUMBERED_ID_RE.search(text, 0, 4096):
        # Numbered steps fail the validation of every step, and pydantic builds an error for
        # each: a third of a second for 100k steps, for nothing. Only a shortcut: both paths
        # give the same plan, so text that merely looks like this just takes the longer one.
        return None
    try:
        plan = Plan.model_validate_json(text)
    except Exception:  # anything that is not a plain canonical plan: the lenient path decides
        return None
    for step in plan.steps:
        # _canonical_step, inlined: this loop runs once per step of plans with 100k steps.
        step_id, tool, deps = step.id, step.tool, step.depends_on
        if (
            not tool
            or step_id.isdigit()
            or step_id != step_id.strip()
            or tool != tool.strip()
            or step.timeout is not None  # pydantic would coerce what the normaliser drops
            or (deps and not _canonical_step(step_id, tool, deps, None))
            or (step.when is not None and not _canonical_condition(step.when))
        ):
            return None
    return plan


def _normalize_step(raw: Any, index: int) -> dict[str, Any]:
    path = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _Problem(
            Issue(
                "bad_step",
                f"step {index} is a {json_type_of(raw)}, not an object",
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
    _, tool = _first(raw, _TOOL_KEYS)
    args_key, args = _first(raw, _ARGS_KEYS)
    id_key, step_id = _first(raw, _STEP_ID_KEYS)
    step: dict[str, Any] = {}
    if step_id is None:
        step_id = f"step{index + 1}"
    if isinstance(step_id, bool) or not isinstance(step_id, str | int):
        raise _Problem(
            Issue(
                "invalid_id",
                f"step {index} has an id of type {json_type_of(step_id)}",
                path=f"{path}.{id_key}",
                hint="use a short identifier such as 'weather'",
            )
        )
    step["id"] = step_id.strip() if isinstance(step_id, str) else step_id
    if not isinstance(tool, str) or not tool.strip():
        raise _Problem(
            Issue(
                "bad_step",
                f"step {step_id!r} names no tool"
                if tool is None
                else f"step {step_id!r} has a tool of type {json_type_of(tool)}, not a name",
                step=str(step_id),
                path=f"{path}.tool",
                hint="give each step a 'tool' with the name of a registered tool",
            )
        )
    step["tool"] = tool.strip()
    if isinstance(args, str):
        try:
            args = lenient_loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError, ValueError):
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
                f"the arguments of step {step_id!r} are a {json_type_of(args)}, not an object",
                step=str(step_id),
                path=f"{path}.{args_key}",
                hint="give 'args' as a JSON object of argument names to values",
            )
        )
    step["args"] = args
    _, deps = _first(raw, _DEPS_KEYS)
    if deps is None or deps == "":
        deps = []
    elif isinstance(deps, str):
        deps = [d for d in re.split(r"[,\s]+", deps) if d]
    elif isinstance(deps, int):
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
    step["depends_on"] = [d.strip().lstrip("$") if isinstance(d, str) else d for d in deps]
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


def _steps_from_mapping(steps: dict[str, Any]) -> list[Any] | None:
    """``{"weather": {"tool": ...}, ...}``: steps keyed by id (a common LLM variant)."""
    if not steps or not all(isinstance(v, dict) for v in steps.values()):
        return None
    out = []
    for key, value in steps.items():
        if any(k in value for k in _STEP_ID_KEYS):
            out.append(value)
        else:
            out.append({"id": key, **value})
    return out


def normalize_plan_data(data: Any) -> dict[str, Any]:
    """Turn any accepted plan shape (already decoded JSON) into the canonical dict form."""
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict):
        raise _Problem(
            Issue(
                "bad_plan",
                f"a plan must be a JSON object or a list of steps, not {json_type_of(data)}",
                hint='reply with {"goal": ..., "steps": [...], "answer": ...}',
            )
        )
    # Unwrap {"plan": {...}} and similar single-key wrappers.
    for _ in range(3):
        inner = data.get("plan")
        if isinstance(inner, dict) and any(k in inner for k in _STEP_LIST_KEYS):
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
    if isinstance(steps, dict):
        steps = _steps_from_mapping(steps) or steps
    if not isinstance(steps, list):
        raise _Problem(
            Issue(
                "bad_plan",
                f"'{steps_key}' must be a list of steps, not {json_type_of(steps)}",
                path=steps_key or "steps",
                hint='write "steps": [{"id": ..., "tool": ..., "args": {...}}, ...]',
            )
        )
    norm_steps: list[dict[str, Any]] = []
    slow: list[dict[str, Any]] = []  # steps that needed aliasing: only they can have numeric ids
    canonical = _CANONICAL_STEP_KEYS
    for i, raw in enumerate(steps):
        step = _fast_step(raw) if type(raw) is dict and raw.keys() <= canonical else None
        if step is None:
            step = _normalize_step(raw, i)
            slow.append(step)
        norm_steps.append(step)
    numeric = {str(s["id"]) for s in slow if isinstance(s["id"], int) or str(s["id"]).isdigit()}
    numeric.update(str(s["id"]) for s in norm_steps if type(s["id"]) is int)
    _, goal = _first(data, _GOAL_KEYS)
    _, answer = _first(data, _ANSWER_KEYS)
    if answer is not None and not isinstance(answer, str):
        answer = json.dumps(answer, ensure_ascii=False)
    for s in slow:
        s["id"] = str(s["id"])
        s["depends_on"] = [str(d) for d in s["depends_on"]]
    if numeric:
        norm_steps = [_renumber_step(s, numeric) for s in norm_steps]
        if isinstance(answer, str):
            answer = _renumber(answer, numeric)
    out: dict[str, Any] = {"goal": goal if isinstance(goal, str) else "", "steps": norm_steps}
    if answer is not None:
        out["answer"] = answer
    return out


def _pydantic_issues(exc: pydantic.ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors()[:20]:
        loc = err["loc"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        code = "bad_condition" if "when" in loc else "bad_plan"
        issues.append(Issue(code, f"{path}: {err['msg']}", path=path))
    return issues


def _pause_gc() -> bool:
    """Pause the cyclic garbage collector while a plan's objects are built or walked; return
    whether it was running (give that to :func:`_resume_gc`).

    Decoding and validating a plan allocates many small containers and no reference cycles;
    CPython counts those allocations and runs collections that rescan the growing heap for
    nothing, which made a 100k-step plan cost ~2x its real work. Reference counting still frees
    memory, and the objects are scanned once when the collector resumes. Plain calls rather than
    a context manager: creating one allocates, and that alone can set off the very collection
    this avoids.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    return was_enabled


def _resume_gc(was_enabled: bool) -> None:
    if was_enabled:
        gc.enable()


def parse_plan(
    source: str | bytes | Mapping[str, Any] | list[Any] | Plan,
    *,
    audience: Audience = "llm",
    notes: list[Issue] | None = None,
) -> Plan:
    """Parse a plan leniently; raise :class:`PlanParseError` (with issues) and nothing else.

    ``audience`` is who wrote the text and reads the issues: ``"llm"`` (the default: a reply, the
    issues go back to it in a re-ask) or ``"person"`` (a plan file: "the file ends before the
    JSON is complete"). ``notes``, when given, receives the warnings of a plan that was read
    only once repaired (``repaired_json``: a trailing comma, ``True`` for ``true``).
    """
    if isinstance(source, Plan):
        return source
    was_enabled = _pause_gc()
    try:
        return _parse_plan(source, audience, notes)
    finally:
        _resume_gc(was_enabled)


def _parse_plan(
    source: str | bytes | Mapping[str, Any] | list[Any],
    audience: Audience,
    notes: list[Issue] | None,
) -> Plan:
    try:
        data: Any
        if isinstance(source, bytes | bytearray):
            source = bytes(source).decode("utf-8", errors="replace")
        if isinstance(source, str):
            stripped = source.strip()
            plan = _canonical_plan(stripped) if stripped[:1] == "{" else None
            if plan is not None:
                return plan
        data = (
            extract_json(source, audience=audience, notes=notes)
            if isinstance(source, str)
            else source
        )
        canonical = normalize_plan_data(data if not isinstance(data, Mapping) else dict(data))
        return Plan.model_validate(canonical)
    except PlanParseError:
        raise
    except _Problem as problem:
        raise PlanParseError("the plan cannot be read", [problem.issue]) from None
    except pydantic.ValidationError as exc:
        raise PlanParseError("the plan has the wrong shape", _pydantic_issues(exc)) from None
    except Exception as exc:  # the contract: nothing but PlanParseError escapes
        raise PlanParseError(
            "the plan cannot be read",
            [Issue("bad_plan", f"unreadable plan ({type(exc).__name__}: {exc})")],
        ) from None
