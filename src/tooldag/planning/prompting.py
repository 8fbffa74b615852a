"""Prompt building: the compact tool catalogue, safe rendering of the ``prompts/*.j2`` templates,
and truncated, delimited tool outputs.

Prompt text lives only in the templates (installed as the package ``tooldag.prompts``). They are
rendered by a sandboxed Jinja2 environment, and user text (goals, tool outputs, session context)
is only ever passed in as data, never compiled as a template. Everything a tool produced is cut
to a budget and wrapped in ``<data>`` delimiters, with any closing delimiter inside it escaped,
so that an output cannot pose as instructions.

>>> from tooldag import ToolRegistry, tool
>>> @tool
... def add(a: int, b: int = 0) -> int:
...     '''Add two integers.'''
...     return a + b
>>> tool_line(add)
'- add(a: int, b?: int=0) -> int\\n  Add two integers.'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..issues import Issue
from ..plan.model import Plan
from ..registry.registry import Tool, ToolRegistry
from ..result import RunResult, StepStatus
from .plan_schema import planner_tools

__all__ = [
    "OUTPUT_BUDGET",
    "TOTAL_OUTPUT_BUDGET",
    "delimit",
    "format_value",
    "render",
    "repair_prompt",
    "replan_prompt",
    "system_prompt",
    "tool_catalogue",
    "tool_line",
    "type_text",
    "user_prompt",
]

OUTPUT_BUDGET = 1500
"""Characters of one tool output shown to the LLM (replans, session context)."""
TOTAL_OUTPUT_BUDGET = 8000
"""Characters of all tool outputs in one prompt; later outputs get less room once it is spent."""

_DESCRIPTION_CHARS = 160
_ARG_DESCRIPTION_CHARS = 70
_ENUM_SHOWN = 8
_FIELDS_SHOWN = 24


# ---------------------------------------------------------------------------- templates


def _load_template(name: str) -> str:
    try:
        return files("tooldag.prompts").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise jinja2.TemplateNotFound(name) from None


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FunctionLoader(_load_template),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["tojson_compact"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


def render(name: str, **context: Any) -> str:
    """Render ``prompts/<name>`` with ``context`` as data."""
    return _environment().get_template(name).render(**context).strip()


# ---------------------------------------------------------------------------- values


def _shrink(value: Any, depth: int = 0) -> Any:
    """A smaller value of the same shape: long strings, lists and objects cut, with a note."""
    if isinstance(value, str):
        return value if len(value) <= 200 else f"{value[:200]}... (+{len(value) - 200} chars)"
    if depth >= 5 and isinstance(value, dict | list | tuple):
        return "..."
    if isinstance(value, list | tuple):
        items = [_shrink(v, depth + 1) for v in value[:10]]
        if len(value) > 10:
            items.append(f"... {len(value) - 10} more items")
        return items
    if isinstance(value, Mapping):
        keys = list(value)[:30]
        out = {str(k): _shrink(value[k], depth + 1) for k in keys}
        if len(value) > 30:
            out["..."] = f"{len(value) - 30} more keys"
        return out
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def format_value(value: Any, limit: int = OUTPUT_BUDGET) -> str:
    """``value`` as JSON of at most about ``limit`` characters.

    Over the limit, long strings, lists and objects are shortened first (so field names stay
    visible); if that is not enough the text is cut, and the cut is said.
    """
    text = value if isinstance(value, str) else _dumps(value)
    if len(text) <= limit:
        return text
    if not isinstance(value, str):
        shrunk = _dumps(_shrink(value))
        if len(shrunk) <= limit:
            return shrunk
        text = shrunk
    return f"{text[:limit]}... [truncated: {len(text)} chars in all]"


def delimit(label: str, text: str) -> str:
    """Wrap ``text`` in ``<data>`` delimiters; a closing delimiter inside it is escaped."""
    body = text.replace("</data", "<\\/data")
    safe_label = label.replace('"', "'")
    return f'<data name="{safe_label}">\n{body}\n</data>'


class _Budget:
    """Shares a total character budget between the outputs of one prompt."""

    def __init__(self, per_item: int, total: int) -> None:
        self.per_item = per_item
        self.left = total

    def take(self, value: Any) -> str:
        limit = max(80, min(self.per_item, self.left))
        text = format_value(value, limit)
        self.left = max(0, self.left - len(text))
        return text


# ---------------------------------------------------------------------------- catalogue


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0]


_SCALARS = {
    "string": "str",
    "integer": "int",
    "number": "num",
    "boolean": "bool",
    "null": "null",
    "array": "list",
    "object": "obj",
}


def type_text(schema: Any, depth: int = 0) -> str:
    """A compact type for a JSON Schema: ``str``, ``list[int]``, ``{temp: num, city: str}``,
    ``"c"|"f"``."""
    if not isinstance(schema, Mapping) or not schema:
        return "any"
    if "const" in schema:
        return _dumps(schema["const"])
    if isinstance(schema.get("enum"), list):
        values = [_dumps(v) for v in schema["enum"][:_ENUM_SHOWN]]
        if len(schema["enum"]) > _ENUM_SHOWN:
            values.append("...")
        return "|".join(values)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            parts = dict.fromkeys(type_text(o, depth) for o in options)
            return "|".join(parts)
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(type_text({**schema, "type": k}, depth) for k in kind)
    if kind == "array" or "items" in schema:
        items = schema.get("items")
        # A list adds no nesting level: list[{title: str, url: str}] shows what $s.items.0.x reads.
        return f"list[{type_text(items, depth)}]" if items else "list"
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        if isinstance(props, Mapping) and props and depth < 2:
            return _object_text(schema, props, depth)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and extra:
            return f"dict[str, {type_text(extra, depth + 1)}]"
        return "obj"
    return _SCALARS.get(str(kind), "any")


def _object_text(schema: Mapping[str, Any], props: Mapping[str, Any], depth: int) -> str:
    required = set(schema.get("required", []))
    fields = [
        f"{name}{'' if name in required else '?'}: {type_text(sub, depth + 1)}"
        for name, sub in list(props.items())[:_FIELDS_SHOWN]
    ]
    if len(props) > _FIELDS_SHOWN:
        fields.append("...")
    return "{" + ", ".join(fields) + "}"


def _argument(name: str, schema: Any, required: bool) -> tuple[str, str | None]:
    text = f"{name}{'' if required else '?'}: {type_text(schema)}"
    if isinstance(schema, Mapping):
        if not required and "default" in schema and schema["default"] is not None:
            text += f"={_dumps(schema['default'])}"
        doc = schema.get("description")
        if isinstance(doc, str) and doc.strip():
            return text, _short(doc, _ARG_DESCRIPTION_CHARS)
    return text, None


def tool_line(t: Tool) -> str:
    """One tool for the catalogue: signature with types, output shape, short description."""
    props = t.properties
    required = t.required
    args = [_argument(name, sub, name in required) for name, sub in props.items()]
    signature = ", ".join(text for text, _ in args)
    output = type_text(t.output_schema) if t.output_schema else "any"
    lines = [f"- {t.name}({signature}) -> {output}"]
    description = _short(_first_paragraph(t.description), _DESCRIPTION_CHARS)
    notes = [f"{text.split(':', 1)[0].rstrip('?')}: {doc}" for text, doc in args if doc]
    detail = " ".join([description, *(f"{n}." if not n.endswith(".") else n for n in notes)])
    if detail.strip():
        lines.append("  " + detail.strip())
    return "\n".join(lines)


def tool_catalogue(registry: ToolRegistry | Iterable[Tool]) -> str:
    """Every tool, one compact entry each, in registration order."""
    return "\n".join(tool_line(t) for t in registry)


# ---------------------------------------------------------------------------- prompts


def system_prompt(registry: ToolRegistry) -> str:
    """The planner's system prompt: catalogue (without compensation-only tools), plan format,
    reference rules, an example."""
    tools = planner_tools(registry)
    return render("system.j2", catalogue=tool_catalogue(tools), tool_count=len(tools))


def _context_blocks(context: Any, budget: _Budget) -> list[str]:
    if context is None or context == {} or context == []:
        return []
    if isinstance(context, str):
        return [delimit("context", format_value(context, budget.per_item))]
    if isinstance(context, Mapping):
        return [delimit(str(label), budget.take(value)) for label, value in context.items()]
    if isinstance(context, Sequence):
        return [delimit(f"context {i + 1}", budget.take(v)) for i, v in enumerate(context)]
    return [delimit("context", budget.take(context))]


def user_prompt(
    goal: str,
    context: Any = None,
    *,
    output_budget: int = OUTPUT_BUDGET,
    total_budget: int = TOTAL_OUTPUT_BUDGET,
) -> str:
    """The goal, with earlier context (session answers and outputs) as delimited data."""
    budget = _Budget(output_budget, total_budget)
    return render("user.j2", goal=goal, context_blocks=_context_blocks(context, budget))


def repair_prompt(issues: Sequence[Issue]) -> str:
    """Ask again, listing what was wrong with the last reply."""
    items = [{"text": str(issue), "path": issue.path, "code": issue.code} for issue in issues[:20]]
    return render("repair.j2", issues=items, more=max(0, len(issues) - 20))


def _error_text(record: Any) -> str:
    error = record.error
    if error is None:
        return record.reason or "failed"
    return f"{error.type}: {error.message}"


def replan_prompt(
    goal: str,
    previous: Plan,
    result: RunResult,
    *,
    context: Any = None,
    output_budget: int = OUTPUT_BUDGET,
    total_budget: int = TOTAL_OUTPUT_BUDGET,
) -> str:
    """Ask for a new plan after a failed run: what completed (outputs truncated and delimited),
    what failed and why, what was blocked; completed steps can be reused by id."""
    budget = _Budget(output_budget, total_budget)
    completed, failed, blocked, not_run = [], [], [], []
    for step in previous.steps:
        record = result.steps.get(step.id)
        status = record.status if record is not None else StepStatus.PENDING
        entry: dict[str, Any] = {"id": step.id, "tool": step.tool, "args": _dumps(step.args)}
        if status is StepStatus.SUCCEEDED:
            output = result.outputs.get(step.id, record.output if record else None)
            entry["output"] = delimit(f"{step.id} output", budget.take(output))
            completed.append(entry)
        elif status is StepStatus.FAILED:
            assert record is not None
            entry["error"] = delimit(f"{step.id} error", format_value(_error_text(record), 600))
            entry["attempts"] = record.attempts
            failed.append(entry)
        elif status is StepStatus.BLOCKED:
            entry["reason"] = (record.reason if record else None) or "a step it needs failed"
            blocked.append(entry)
        elif status is StepStatus.SKIPPED:
            continue  # its condition was false: nothing to repair
        else:
            entry["status"] = status.value
            not_run.append(entry)
    return render(
        "replan.j2",
        goal=goal,
        previous_plan=previous.dumps(indent=None),
        completed=completed,
        failed=failed,
        blocked=blocked,
        not_run=not_run,
        # The run's error quotes tool errors, which third parties may have written: data, like them.
        run_error=delimit("run error", format_value(result.error, 600)) if result.error else None,
        context_blocks=_context_blocks(context, budget),
    )
