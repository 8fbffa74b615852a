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

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..issues import Issue
from ..plan.model import Plan, Step
from ..registry.registry import Tool, ToolRegistry
from ..registry.schemas import inline_refs, json_types, value_checker
from ..result import RunResult, StepRecord, StepStatus
from ..validate.validator import validate
from .plan_schema import GRAMMAR_BOUND, planner_tools

__all__ = [
    "OUTPUT_BUDGET",
    "TOTAL_OUTPUT_BUDGET",
    "continue_prompt",
    "delimit",
    "example_plan",
    "format_value",
    "join_prompt",
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
# A tool's description line: notes on optional arguments (their defaults are in the signature)
# are left out past this, so a catalogue of a few tools fits a small model's 2,048 tokens.
_DETAIL_CHARS = 320
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


def _sentences(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` at a sentence's end if one is not too early, else at a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    end = text.rfind(". ", 0, limit)
    return text[: end + 1] if end >= limit // 2 else _short(text, limit)


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
    parts = [_sentences(_first_paragraph(t.description), _DESCRIPTION_CHARS)]
    size, full = len(parts[0]), False
    for (_, doc), name in zip(args, props, strict=True):
        if not doc:
            continue
        note = f"{name}: {doc}" if doc.endswith(".") else f"{name}: {doc}."
        full = full or size + len(note) >= _DETAIL_CHARS  # then no more optional notes
        if name in required or not full:
            parts.append(note)
            size += len(note) + 1
    detail = " ".join(parts).strip()
    if detail:
        lines.append("  " + detail)
    return "\n".join(lines)


def tool_catalogue(registry: ToolRegistry | Iterable[Tool]) -> str:
    """Every tool, one compact entry each, in registration order."""
    return "\n".join(tool_line(t) for t in registry)


# ---------------------------------------------------------------------------- the example

# A few-shot example teaches the format, and small models copy it: one with a tool that is not
# in the catalogue was copied into 10 of 19 replies of a 0.5B model. So the example is built from
# the catalogue itself: real tools, their real argument names, a reference to a field their
# output really has, and it must pass the validator.

_NOTHING = object()
_EXAMPLE_TOOLS = 24  # tools looked at for the example (the pair search is quadratic)
_EG = re.compile(r"e\.g\.\s*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_FILL_DEPTH = 3
_CHECKED_TEXT = ("pattern", "format", "enum", "const")


def _hinted_values(texts: Sequence[str]) -> list[Any]:
    """Values a description shows: JSON after ``e.g.``, then any double-quoted string."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    for text in texts:
        for match in _EG.finditer(text):
            with contextlib.suppress(ValueError):
                found.append(decoder.raw_decode(text, match.end())[0])
    for text in texts:
        for quoted in _QUOTED.findall(text):
            with contextlib.suppress(ValueError):
                found.append(json.loads(quoted))
    return found


def _made_up(name: str, schema: Any, depth: int = 0) -> Any:
    """A value of ``schema``'s type, or ``_NOTHING`` if none is easy to make."""
    if not isinstance(schema, Mapping) or depth > _FILL_DEPTH:
        return _NOTHING
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for option in schema.get("anyOf") or schema.get("oneOf") or ():
        value = _made_up(name, option, depth)
        if value is not _NOTHING:
            return value
    types = json_types(dict(schema)) or {"string"}
    if "string" in types:
        return f"<{name}>"
    for kind in ("integer", "number"):
        if kind in types:
            low = schema.get("minimum", 1)
            high = schema.get("maximum", low if low > 1 else 1)
            return max(low, min(high, 1))
    if "boolean" in types:
        return True
    if "array" in types:
        item = _made_up(name, schema.get("items", {"type": "string"}), depth + 1)
        count = max(1, int(schema.get("minItems", 1)))
        return _NOTHING if item is _NOTHING or count > GRAMMAR_BOUND else [item] * count
    if "object" in types:
        props = schema.get("properties") or {}
        out = {k: _made_up(k, props.get(k), depth + 1) for k in schema.get("required", [])}
        return _NOTHING if _NOTHING in out.values() else out
    return None if "null" in types else _NOTHING


def _literal(t: Tool, name: str, schema: Mapping[str, Any]) -> Any:
    """A literal for argument ``name`` of ``t`` that fits its schema: an example the schema or a
    description gives, else one made up from the type; ``_NOTHING`` if none fits."""
    fits = value_checker(dict(schema), t.parameters.get("$defs"))
    texts = [str(schema.get("description") or "")]
    if len(t.required) == 1:
        texts.append(t.description)  # "Evaluate an expression, e.g. "2 * 3"": about this argument
    candidates = [*(schema.get("examples") or ()), *_hinted_values(texts)]
    candidates.append(_made_up(name, schema))
    for value in candidates:
        if value is _NOTHING or (isinstance(value, str) and "$" in value):
            continue
        if fits(value) is None:
            return value
    return _NOTHING


def _literal_args(t: Tool, skip: str | None = None) -> dict[str, Any] | None:
    """Literals for every required argument of ``t`` but ``skip``; None if one cannot be made."""
    props = inline_refs(t.parameters).get("properties") or {}
    args: dict[str, Any] = {}
    order = [n for n in props if n in t.required] + sorted(t.required - set(props))
    for name in order:
        if name == skip:
            continue
        value = _literal(t, name, props.get(name) or {})
        if value is _NOTHING:
            return None
        args[name] = value
    return args


def _output_fields(t: Tool) -> list[tuple[str, set[str] | None]]:
    """Paths into ``t``'s output a reference can read, with their JSON types: the top-level
    fields, and the fields of the first item of a list of objects (``results.0.title``)."""
    schema = inline_refs(t.output_schema) if t.output_schema else {}
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return []
    fields: list[tuple[str, set[str] | None]] = []
    for name, sub in props.items():
        if not isinstance(sub, Mapping) or not name.isidentifier():
            continue
        fields.append((name, json_types(dict(sub))))
        items = sub.get("items")
        if isinstance(items, Mapping) and isinstance(items.get("properties"), Mapping):
            for inner, deeper in items["properties"].items():
                if isinstance(deeper, Mapping) and inner.isidentifier():
                    fields.append((f"{name}.0.{inner}", json_types(dict(deeper))))
    return fields


def _fits(produced: set[str] | None, accepted: set[str] | None) -> bool:
    # Exact types only (an integer into a number at most): the example must need no coercion.
    if not produced or not accepted:
        return False
    return all(p in accepted or (p == "integer" and "number" in accepted) for p in produced)


def _link_score(
    path: str, produced: set[str] | None, arg: str, accepted: set[str] | None, hinted: bool
) -> int:
    """How natural feeding output ``path`` into argument ``arg`` looks; -1 if the types differ.
    The same name first (``entries.0.path`` into ``path``), then typed values, then text into an
    argument of free text (one whose description shows no example value, unlike a file name)."""
    if not _fits(produced, accepted):
        return -1
    last = path.rsplit(".", 1)[-1]
    alike = len(last) > 2 and len(arg) > 2 and (last in arg or arg in last)  # file_path <- path
    return 4 * (last == arg) + alike + 2 * (produced != {"string"}) + (not hinted)


def _shows_example(schema: Mapping[str, Any]) -> bool:
    text = str(schema.get("description") or "")
    return bool(schema.get("examples")) or "e.g." in text or '"' in text


def _step_id(tool_name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", tool_name).lstrip("0123456789_") or "step"
    step_id, n = base, 1
    while step_id in taken:
        n += 1
        step_id = f"{base}_{n}"
    taken.add(step_id)
    return step_id


def _answer_path(t: Tool) -> str:
    """What the example's answer reads from ``t``: a field of text or a number that is not just
    an argument echoed back (``read_file.content``, not ``read_file.path``), else all of it."""
    fields = [(p, types) for p, types in _output_fields(t) if "." not in p and types]
    fields.sort(key=lambda f: f[0] in t.properties)  # stable: echoes last, order kept
    for path, types in fields:
        if types and types <= {"string", "integer", "number"}:
            return path
    return ""


def _example_candidates(tools: Sequence[Tool]) -> Iterator[list[Step]]:
    """Example steps, best first: a pair where the second step reads a field of the first, then
    single steps."""
    fillable = {t.name: args for t in tools if (args := _literal_args(t)) is not None}
    # Per tool: the required arguments a reference can fill (no pattern or enum the output
    # would have to match at run time), with their types and whether they show an example value.
    inputs: dict[str, list[tuple[str, set[str] | None, bool]]] = {}
    for t in tools:
        props = inline_refs(t.parameters).get("properties") or {}
        inputs[t.name] = [
            (arg, json_types(dict(sub)), _shows_example(sub))
            for arg, sub in props.items()
            if arg in t.required
            and isinstance(sub, Mapping)
            and not any(key in sub for key in _CHECKED_TEXT)
        ]
    ranked: list[tuple[int, int, int, int, str, str, Tool, Tool]] = []
    for i, first in enumerate(tools):
        if first.name not in fillable:
            continue
        fields = _output_fields(first)
        for j, second in enumerate(tools):
            if second is first or json_types(second.output_schema) == {"null"}:
                continue  # a step that returns nothing gives the answer nothing to show
            for k, (arg, accepted, hinted) in enumerate(inputs[second.name]):
                for path, produced in fields:
                    score = _link_score(path, produced, arg, accepted, hinted)
                    if score >= 0:
                        ranked.append((-score, i, j, k, arg, path, first, second))
    ranked.sort(key=lambda r: r[:4])  # stable: a field's own order breaks the last ties
    for *_, arg, path, first, second in ranked[:8]:
        rest = _literal_args(second, skip=arg)
        if rest is None:
            continue
        taken: set[str] = set()
        a, b = _step_id(first.name, taken), _step_id(second.name, taken)
        args = {**rest, arg: f"${a}.{path}"}
        ordered = {k: args[k] for k in (second.properties or args) if k in args}
        yield [
            Step(id=a, tool=first.name, args=fillable[first.name]),
            Step(id=b, tool=second.name, args=ordered),
        ]
    for t in tools:
        if t.name in fillable:
            yield [Step(id=_step_id(t.name, set()), tool=t.name, args=fillable[t.name])]


def example_plan(registry: ToolRegistry | Iterable[Tool]) -> Plan | None:
    """A small valid plan over ``registry``'s own tools, for the system prompt's example.

    Read-only tools are preferred (an example should not teach sending mail); the plan is the
    first candidate the validator accepts without a single issue. Its ``goal`` is empty and its
    ``answer`` only the reference, for the template to word. None when no tool can be shown.
    """
    tools = planner_tools(registry)
    checked = ToolRegistry(tools)
    safe = [t for t in tools if not t.side_effects]
    pools = [safe[:_EXAMPLE_TOOLS]] if safe else []
    if len(safe) < len(tools):
        pools.append(tools[:_EXAMPLE_TOOLS])
    for pool in pools:
        for steps in _example_candidates(pool):
            last = steps[-1]
            path = _answer_path(checked.get(last.tool))
            answer = f"${{{last.id}.{path}}}" if path else f"${{{last.id}}}"
            plan = Plan(goal="", steps=steps, answer=answer)
            if not validate(plan, checked):
                return plan
    return None


# ---------------------------------------------------------------------------- prompts


def system_prompt(registry: ToolRegistry) -> str:
    """The planner's system prompt: catalogue (without compensation-only tools), plan format,
    reference rules, and an example over these very tools (:func:`example_plan`)."""
    tools = planner_tools(registry)
    example = example_plan(tools)
    shown = None
    if example is not None:
        shown = {
            "tools": list(dict.fromkeys(s.tool for s in example.steps)),
            "steps": [_dumps(s.to_json()) for s in example.steps],
            "answer_ref": example.answer,
        }
    return render(
        "system.j2", catalogue=tool_catalogue(tools), tool_count=len(tools), example=shown
    )


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


_ISSUES_SHOWN = 20
_EARLIER_ISSUES_SHOWN = 4


def repair_prompt(
    issues: Sequence[Issue],
    *,
    earlier: Sequence[tuple[int, Sequence[Issue]]] = (),
    repeats: int | None = None,
    ran: Sequence[tuple[Step, StepRecord]] = (),
    output_budget: int = OUTPUT_BUDGET,
    total_budget: int = TOTAL_OUTPUT_BUDGET,
) -> str:
    """Ask again, listing what was wrong with the last reply.

    ``earlier`` are ``(attempt number, issues)`` of attempts before it, shown as their issues
    only (a few each), so the model does not trade one mistake back for another; ``repeats`` the
    number of an earlier attempt that the last reply is identical to; ``ran`` the steps that ran
    while the reply streamed, with what came of them (outputs truncated and delimited), to be
    kept or referenced rather than run again.
    """
    budget = _Budget(output_budget, total_budget)
    done = []
    for step, record in ran:
        if record.status is StepStatus.SUCCEEDED:
            text = delimit(f"{step.id} output", budget.take(record.output))
        else:
            what = _error_text(record) if record.status is StepStatus.FAILED else record.reason
            text = delimit(f"{step.id} {record.status.value}", format_value(what or "", 600))
        entry = {"id": step.id, "tool": step.tool, "args": _dumps(step.args)}
        done.append({**entry, "status": record.status.value, "output": text})
    items = [{"text": str(issue), "path": issue.path, "code": issue.code} for issue in issues]
    before = [
        {
            "number": number,
            "issues": [str(issue) for issue in found[:_EARLIER_ISSUES_SHOWN]],
            "more": max(0, len(found) - _EARLIER_ISSUES_SHOWN),
        }
        for number, found in earlier
        if found
    ]
    return render(
        "repair.j2",
        issues=items[:_ISSUES_SHOWN],
        more=max(0, len(items) - _ISSUES_SHOWN),
        earlier=before,
        repeats=repeats,
        ran=done,
    )


def _error_text(record: Any) -> str:
    error = record.error
    if error is None:
        return record.reason or "failed"
    return f"{error.type}: {error.message}"


def _completed(
    step: Step, record: StepRecord | None, result: RunResult, budget: _Budget
) -> dict[str, Any] | None:
    """A succeeded step as a prompt shows it: its output truncated and delimited (None if the
    step did not succeed)."""
    if record is None or record.status is not StepStatus.SUCCEEDED:
        return None
    output = result.outputs.get(step.id, record.output)
    return {
        "id": step.id,
        "tool": step.tool,
        "args": _dumps(step.args),
        "output": delimit(f"{step.id} output", budget.take(output)),
    }


def replan_prompt(
    goal: str,
    previous: Plan,
    result: RunResult,
    *,
    context: Any = None,
    reason: str | None = None,
    output_budget: int = OUTPUT_BUDGET,
    total_budget: int = TOTAL_OUTPUT_BUDGET,
) -> str:
    """Ask for a new plan after a failed run: what completed (outputs truncated and delimited),
    what failed and why, what was blocked; completed steps can be reused by id. With
    ``reason`` (the join's words: the run succeeded but does not answer the goal), that is
    what the new plan must address."""
    budget = _Budget(output_budget, total_budget)
    completed, failed, blocked, not_run = [], [], [], []
    for step in previous.steps:
        record = result.steps.get(step.id)
        status = record.status if record is not None else StepStatus.PENDING
        entry: dict[str, Any] = {"id": step.id, "tool": step.tool, "args": _dumps(step.args)}
        shown = _completed(step, record, result, budget)
        if shown is not None:
            completed.append(shown)
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
        # The join read the outputs, which third parties may have written: data, like them.
        reason=delimit("why another plan", format_value(reason, 600)) if reason else None,
    )


def join_prompt(
    goal: str,
    plan: Plan,
    result: RunResult,
    *,
    can_replan: bool,
    context: Any = None,
    output_budget: int = OUTPUT_BUDGET,
    total_budget: int = TOTAL_OUTPUT_BUDGET,
) -> str:
    """Ask the LLM to answer ``goal`` from a run's results (outputs truncated and delimited as
    in a replan), or, if ``can_replan``, to ask for another plan and say why."""
    budget = _Budget(output_budget, total_budget)
    completed, others = [], []
    for step in plan.steps:
        record = result.steps.get(step.id)
        shown = _completed(step, record, result, budget)
        if shown is not None:
            completed.append(shown)
        else:
            status = record.status.value if record is not None else "not run"
            why = (_error_text(record) if record is not None else "") or status
            others.append({"id": step.id, "tool": step.tool, "status": status, "why": why})
    return render(
        "join.j2",
        goal=goal,
        plan=plan.dumps(indent=None),
        completed=completed,
        # Errors quote tools, which may quote third parties: data too.
        others=[
            {**o, "why": delimit(f"{o['id']} {o['status']}", format_value(o["why"], 300))}
            for o in others
        ],
        can_replan=can_replan,
        context_blocks=_context_blocks(context, budget),
    )


def continue_prompt(kept: Sequence[str], *, why: str | None) -> str:
    """Ask for the rest of a plan whose streamed reply broke off (``why``: ``length``, the
    token limit, or anything else for a broken connection) after the steps ``kept``."""
    return render("continue.j2", kept=list(kept), why=why or "")
