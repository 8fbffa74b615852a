"""The validator: proves a plan is an acyclic graph of known tools whose references resolve and
whose arguments fit, or says why not.

``validate(plan, registry) -> list[Issue]`` never raises on bad input. It runs in time linear in
steps + references: one pass over the steps, one over the references, one topological sort.
Issue codes (stable): ``invalid_id``, ``duplicate_id``, ``unknown_tool``, ``unknown_step``,
``cycle``, ``bad_reference``, ``unknown_field``, ``missing_argument``, ``unexpected_argument``,
``type_mismatch``, ``bad_condition``, ``empty_plan``.
"""

from __future__ import annotations

import difflib
import graphlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from .issues import Issue
from .plan import CONDITION_OPS, Condition, Plan, Step
from .refs import BadReference, Ref, Template, iter_refs, parse_string
from .registry import Tool, ToolRegistry
from .schemas import json_types, subschema_at, types_compatible

__all__ = ["ISSUE_CODES", "check_plan", "validate"]

ISSUE_CODES = (
    "bad_condition",
    "bad_reference",
    "cycle",
    "duplicate_id",
    "empty_plan",
    "invalid_id",
    "missing_argument",
    "type_mismatch",
    "unexpected_argument",
    "unknown_field",
    "unknown_step",
    "unknown_tool",
)

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ORDERING_OPS = {"<", "<=", ">", ">="}
_UNARY_OPS = {"is_none", "not_none"}

_JSON_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def _type_of(value: Any) -> str:
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


def _describe_types(types: Iterable[str]) -> str:
    return " or ".join(_JSON_TYPE_NAMES.get(t, t) for t in sorted(types))


_PRIMITIVE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
# Keywords that do not constrain a value (so a schema made only of these and "type" is "simple").
_ANNOTATIONS = {"type", "description", "title", "default", "examples"}


class _ArgChecker:
    """Checks a literal argument value against a parameter schema, fast for the common cases."""

    __slots__ = ("_check",)

    def __init__(self, schema: dict[str, Any]) -> None:
        t = schema.get("type")
        if set(schema) <= _ANNOTATIONS and isinstance(t, str) and t in _PRIMITIVE_CHECKS:
            self._check: Callable[[Any], str | None] = self._primitive(t)
        elif not schema or set(schema) <= {"description", "title", "default"}:
            self._check = lambda v: None
        else:
            self._check = self._full(schema)

    @staticmethod
    def _primitive(t: str) -> Callable[[Any], str | None]:
        check = _PRIMITIVE_CHECKS[t]

        def run(value: Any) -> str | None:
            if check(value):
                return None
            return f"expected {_JSON_TYPE_NAMES[t]}, got {_type_of(value)} {_short(value)}"

        return run

    @staticmethod
    def _full(schema: dict[str, Any]) -> Callable[[Any], str | None]:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)

        def run(value: Any) -> str | None:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if error is None:
                return None
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            return f"{where.lstrip('.') + ': ' if where else ''}{error.message}"

        return run

    def __call__(self, value: Any) -> str | None:
        return self._check(value)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _contains_ref(value: Any) -> bool:
    return any(True for _ in iter_refs(value))


class _Validator:
    def __init__(self, plan: Plan, registry: ToolRegistry) -> None:
        self.plan = plan
        self.registry = registry
        self.issues: list[Issue] = []
        self.steps: dict[str, tuple[int, Step]] = {}
        self.checkers: dict[tuple[str, str], _ArgChecker] = {}

    def add(self, code: str, message: str, step: str | None = None, path: str = "",
            hint: str | None = None) -> None:
        self.issues.append(Issue(code, message, step=step, path=path, hint=hint))

    # -- ids and tools
    def index_steps(self) -> None:
        for i, step in enumerate(self.plan.steps):
            path = f"steps[{i}].id"
            if not _ID_RE.match(step.id):
                self.add(
                    "invalid_id",
                    f"step id {step.id!r} is not an identifier",
                    step=step.id,
                    path=path,
                    hint="use letters, digits and '_', starting with a letter, e.g. "
                    + repr(re.sub(r"\W", "_", step.id).lstrip("0123456789") or "step1"),
                )
            if step.id in self.steps:
                first = self.steps[step.id][0]
                self.add(
                    "duplicate_id",
                    f"step id {step.id!r} is used by steps {first} and {i}",
                    step=step.id,
                    path=path,
                    hint="give every step its own id",
                )
                continue
            self.steps[step.id] = (i, step)

    def tool_of(self, step_id: str) -> Tool | None:
        entry = self.steps.get(step_id)
        if entry is None:
            return None
        name = entry[1].tool
        return self.registry.get(name) if name in self.registry else None

    def closest_step(self, name: str) -> str | None:
        match = difflib.get_close_matches(name, list(self.steps), n=1, cutoff=0.6)
        return f"did you mean ${match[0]}?" if match else (
            f"known steps: {', '.join(list(self.steps)[:10])}" if self.steps else None
        )

    # -- references
    def check_ref(self, ref: Ref | BadReference, owner: str | None, path: str) -> set[str] | None:
        """Report problems with one reference; return the JSON types it can produce (None = any)."""
        if isinstance(ref, BadReference):
            self.add("bad_reference", f"malformed reference {ref.text!r}: {ref.reason}",
                     step=owner, path=path)
            return None
        if ref.step not in self.steps:
            self.add(
                "unknown_step",
                f"reference {ref} names step {ref.step!r}, which is not in the plan",
                step=owner,
                path=path,
                hint=self.closest_step(ref.step) if ref.step != owner else None,
            )
            return None
        if ref.step == owner:
            self.add("cycle", f"step {owner!r} references its own output ({ref})",
                     step=owner, path=path, hint=f"cycle: {owner} -> {owner}")
            return None
        producer = self.tool_of(ref.step)
        if producer is None or producer.output_schema is None:
            return None
        try:
            sub = subschema_at(producer.output_schema, ref.path)
        except KeyError as missing:
            field = missing.args[0]
            props = _fields_at(producer.output_schema, ref.path, field)
            close = difflib.get_close_matches(str(field), props, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"{producer.name} returns: {', '.join(props)}" if props else None
            )
            self.add(
                "unknown_field",
                f"reference {ref}: {producer.name}'s output has no field {field!r}",
                step=owner,
                path=path,
                hint=hint,
            )
            return None
        return json_types(sub)

    # -- a step
    def check_step(self, index: int, step: Step) -> None:
        base = f"steps[{index}]"
        tool = self.registry.get(step.tool) if step.tool in self.registry else None
        if tool is None:
            close = self.registry.closest(step.tool)
            self.add(
                "unknown_tool",
                f"step {step.id!r} uses tool {step.tool!r}, which is not registered",
                step=step.id,
                path=f"{base}.tool",
                hint=f"did you mean {close}?" if close else (
                    f"available tools: {', '.join(self.registry.names()[:15])}"
                    if len(self.registry) else "no tools are registered"
                ),
            )
        for arg, value in step.args.items():
            arg_path = f"{base}.args.{arg}"
            produced = self._check_value_refs(step.id, value, arg_path)
            if tool is None:
                continue
            schema = tool.properties.get(arg)
            if schema is None:
                extra = tool.parameters.get("additionalProperties")
                if extra is True or isinstance(extra, dict):
                    continue
                params = list(tool.properties)
                close = difflib.get_close_matches(arg, params, n=1, cutoff=0.5)
                self.add(
                    "unexpected_argument",
                    f"{tool.name} has no argument {arg!r}",
                    step=step.id,
                    path=arg_path,
                    hint=f"did you mean {close[0]!r}?" if close else (
                        f"its arguments: {', '.join(params)}" if params else f"{tool.name} takes no arguments"
                    ),
                )
                continue
            self._check_type(tool, arg, schema, value, produced, step.id, arg_path)
        if tool is not None:
            for name in tool.parameters.get("required", []):
                if name not in step.args:
                    schema = tool.properties.get(name, {})
                    types = json_types(schema)
                    self.add(
                        "missing_argument",
                        f"{tool.name} needs argument {name!r}"
                        + (f" ({_describe_types(types)})" if types else ""),
                        step=step.id,
                        path=f"{base}.args",
                        hint=schema.get("description") if isinstance(schema, dict) else None,
                    )
        for j, dep in enumerate(step.depends_on):
            dpath = f"{base}.depends_on[{j}]"
            if dep == step.id:
                self.add("cycle", f"step {step.id!r} depends on itself", step=step.id, path=dpath,
                         hint=f"cycle: {step.id} -> {step.id}")
            elif dep not in self.steps:
                self.add("unknown_step", f"depends_on names step {dep!r}, which is not in the plan",
                         step=step.id, path=dpath, hint=self.closest_step(dep))
        if step.when is not None:
            self.check_condition(step.when, step.id, f"{base}.when")

    def _check_value_refs(self, owner: str, value: Any, path: str) -> set[str] | None:
        """Check every reference in an argument; return the produced types for a whole-value ref."""
        if isinstance(value, str):
            if "$" not in value:
                return {"string"}
            parsed = parse_string(value)
            if isinstance(parsed, Ref | BadReference):
                return self.check_ref(parsed, owner, path)
            if isinstance(parsed, Template):
                for ref in parsed.refs:
                    self.check_ref(ref, owner, path)
            return {"string"}
        for ref, sub in iter_refs(value, path):
            self.check_ref(ref, owner, sub)
        return None

    def _check_type(self, tool: Tool, arg: str, schema: dict[str, Any], value: Any,
                    produced: set[str] | None, owner: str, path: str) -> None:
        if isinstance(value, str) and "$" in value and isinstance(parse_string(value), Ref):
            accepted = json_types(schema)
            if not types_compatible(produced, accepted):
                assert produced is not None and accepted is not None
                self.add(
                    "type_mismatch",
                    f"{tool.name}.{arg} takes {_describe_types(accepted)}, but {value} is "
                    f"{_describe_types(produced)}",
                    step=owner,
                    path=path,
                    hint="reference a field of the right type, or add a step that converts it",
                )
            return
        if _contains_ref(value):
            if isinstance(value, str):
                accepted = json_types(schema)
                if accepted is not None and "string" not in accepted:
                    self.add(
                        "type_mismatch",
                        f"{tool.name}.{arg} takes {_describe_types(accepted)}, but the value is "
                        "text with ${...} interpolation",
                        step=owner,
                        path=path,
                        hint=f"pass the value itself as a whole reference, e.g. \"$step.field\"",
                    )
            return
        key = (tool.name, arg)
        checker = self.checkers.get(key)
        if checker is None:
            checker = self.checkers[key] = _ArgChecker(schema)
        problem = checker(value)
        if problem is not None and not (value is None and arg not in tool.required):
            self.add("type_mismatch", f"{tool.name}.{arg}: {problem}", step=owner, path=path,
                     hint=schema.get("description"))

    # -- conditions
    def check_condition(self, cond: Condition, owner: str, path: str) -> None:
        groups = [(k, v) for k, v in (("all", cond.all_), ("any", cond.any_)) if v is not None]
        if groups:
            key, items = groups[0]
            if not items:
                self.add("bad_condition", f"'{key}' needs at least one condition", step=owner,
                         path=f"{path}.{key}")
            for i, sub in enumerate(items):
                self.check_condition(sub, owner, f"{path}.{key}[{i}]")
            return
        if cond.not_ is not None:
            self.check_condition(cond.not_, owner, f"{path}.not")
            return
        example = '{"ref": "$weather.temp", "op": "<", "value": 0}'
        if cond.ref is None:
            self.add("bad_condition", "the condition has no 'ref' (nor all/any/not)", step=owner,
                     path=path, hint=f"write it as {example}")
            return
        ref_types: set[str] | None = None
        parsed = parse_string(cond.ref) if isinstance(cond.ref, str) else None
        if not isinstance(parsed, Ref | BadReference):
            self.add("bad_condition", f"'ref' must be a reference like \"$weather.temp\", not "
                     f"{_short(cond.ref)}", step=owner, path=f"{path}.ref", hint=f"e.g. {example}")
        else:
            ref_types = self.check_ref(parsed, owner, f"{path}.ref")
        if cond.op not in CONDITION_OPS:
            close = difflib.get_close_matches(str(cond.op), CONDITION_OPS, n=1, cutoff=0.4)
            self.add("bad_condition", f"unknown condition operator {cond.op!r}", step=owner,
                     path=f"{path}.op",
                     hint=(f"did you mean {close[0]!r}? " if close else "")
                     + f"operators: {', '.join(CONDITION_OPS)}")
            return
        value = cond.value
        if isinstance(value, str) and "$" in value:
            vparsed = parse_string(value)
            if isinstance(vparsed, Ref | BadReference):
                self.check_ref(vparsed, owner, f"{path}.value")
                return
        if cond.op in _UNARY_OPS:
            return
        if cond.op == "in" and not isinstance(value, list | str | dict):
            self.add("bad_condition", f"'in' needs a list (or text) to look in, got "
                     f"{_type_of(value)}", step=owner, path=f"{path}.value")
            return
        if cond.op in _ORDERING_OPS:
            if not isinstance(value, int | float | str) or isinstance(value, bool):
                self.add("bad_condition", f"'{cond.op}' compares numbers or text, not "
                         f"{_type_of(value)} {_short(value)}", step=owner, path=f"{path}.value")
                return
            if ref_types is not None:
                vtype = "string" if isinstance(value, str) else "number"
                numeric = {"integer", "number"}
                fits = bool(ref_types & numeric) if vtype == "number" else "string" in ref_types
                if not fits:
                    self.add(
                        "bad_condition",
                        f"'{cond.op}' compares {cond.ref} ({_describe_types(ref_types)}) with "
                        f"{_type_of(value)} {_short(value)}: they cannot be ordered",
                        step=owner,
                        path=f"{path}.value",
                    )

    # -- the graph
    def check_cycles(self) -> None:
        graph: dict[str, list[str]] = {}
        for sid, (_i, step) in self.steps.items():
            graph[sid] = [d for d in step.dependencies() if d in self.steps and d != sid]
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle: list[str] = list(exc.args[1])
            # graphlib reports the cycle reversed (each node's predecessor follows it).
            cycle.reverse()
            text = " -> ".join(cycle)
            self.add(
                "cycle",
                f"the steps depend on each other in a circle: {text}",
                step=cycle[0],
                path=f"steps[{self.steps[cycle[0]][0]}]",
                hint=f"cycle: {text}; remove one of these references",
            )

    def check_answer(self) -> None:
        answer = self.plan.answer
        if not answer or "$" not in answer:
            return
        for ref, _ in iter_refs(answer):
            self.check_ref(ref, None, "answer")

    def run(self) -> list[Issue]:
        if not self.plan.steps and not self.plan.answer:
            self.add("empty_plan", "the plan has no steps and no answer",
                     hint="add steps that use the tools, or an answer if no tool is needed")
            return self.issues
        self.index_steps()
        for i, step in enumerate(self.plan.steps):
            self.check_step(i, step)
        self.check_answer()
        self.check_cycles()
        return self.issues


def _fields_at(schema: dict[str, Any], path: tuple[Any, ...], missing: Any) -> list[str]:
    """The field names available where ``missing`` was looked up (for hints)."""
    prefix: list[Any] = []
    for seg in path:
        if seg == missing:
            break
        prefix.append(seg)
    try:
        node = subschema_at(schema, prefix)
    except KeyError:
        return []
    if not isinstance(node, dict):
        return []
    for key in ("anyOf", "oneOf"):
        for option in node.get(key, []) if isinstance(node.get(key), list) else []:
            if isinstance(option, dict) and "properties" in option:
                node = option
    props = node.get("properties", {})
    return list(props) if isinstance(props, dict) else []


def validate(plan: Plan, registry: ToolRegistry) -> list[Issue]:
    """Every issue in ``plan`` against ``registry``; an empty list means the plan is valid."""
    try:
        return _Validator(plan, registry).run()
    except Exception as exc:  # noqa: BLE001 - validate never raises on bad input
        return [Issue("bad_plan", f"the plan could not be validated ({type(exc).__name__}: {exc})")]


def check_plan(plan: Plan, registry: ToolRegistry) -> Plan:
    """``validate`` and raise :class:`PlanInvalidError` with the issues if there are any."""
    from .errors import PlanInvalidError

    issues = validate(plan, registry)
    if issues:
        raise PlanInvalidError(f"the plan has {len(issues)} issue(s)", issues)
    return plan

