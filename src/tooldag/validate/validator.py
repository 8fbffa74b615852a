"""The validator: proves a plan is an acyclic graph of known tools whose references resolve and
whose arguments fit, or says why not.

``validate(plan, registry) -> list[Issue]`` never raises on bad input. It runs in time linear in
steps + references: one pass over the steps (each argument string is classified once, each
distinct ``(tool, output path)`` is looked up in a schema once), then Kahn's algorithm over the
step indexes for cycles. Step order in the list does not matter.

Issue codes (stable): ``invalid_id``, ``duplicate_id``, ``unknown_tool``, ``unknown_step``,
``cycle``, ``bad_reference``, ``unknown_field``, ``missing_argument``, ``unexpected_argument``,
``type_mismatch``, ``bad_condition``, ``empty_plan``.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..issues import Issue
from ..plan.model import Plan, Step
from ..plan.parse import _pause_gc, _resume_gc
from ..plan.refs import BadReference, Ref, Template, parse_string
from ..registry.registry import Tool, ToolRegistry
from ..registry.schemas import describe_types, json_types, subschema_at
from ._args import ToolView, Types, Where, has_dollar
from ._conditions import ConditionChecks, short

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

# A ``$step...`` written inside text without braces: read literally, which is never what was meant
# when ``step`` is a step of the plan. ``$$`` is consumed first so an escaped dollar never matches.
_LOOSE_REF_RE = re.compile(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)")
_UNSEEN = object()


# --------------------------------------------------------------------------- the validator


class _Validator(ConditionChecks):
    def __init__(self, plan: Plan, registry: ToolRegistry) -> None:
        self.plan = plan
        self.registry = registry
        self.issues: list[Issue] = []
        self.index: dict[str, int] = {}
        self.views: dict[str, ToolView | None] = {}
        self.step_views: list[ToolView | None] = []
        self.deps: list[list[int]] = []
        # (tool name, path) -> the JSON types at that path of its output, or the KeyError saying
        # which segment cannot exist.
        self.fields: dict[tuple[str, tuple[str | int, ...]], Any] = {}
        # (tool name, argument, produced types) -> whether a reference of those types fits.
        self.fits: dict[tuple[str, str, Types], bool] = {}

    def view(self, name: str) -> ToolView | None:
        if name not in self.views:
            self.views[name] = ToolView(self.registry.get(name)) if name in self.registry else None
        return self.views[name]

    # -- ids
    def index_steps(self) -> None:
        views = self.views
        index = self.index
        step_views = self.step_views
        for i, step in enumerate(self.plan.steps):
            view = views.get(step.tool, _UNSEEN)
            if view is _UNSEEN:
                view = self.view(step.tool)
            step_views.append(view)  # type: ignore[arg-type]
            if not (step.id.isidentifier() and step.id.isascii()):  # [A-Za-z_][A-Za-z0-9_]*
                suggestion = re.sub(r"\W", "_", step.id).lstrip("0123456789") or f"step{i + 1}"
                self.add(
                    "invalid_id",
                    f"step id {step.id!r} is not an identifier",
                    step=step.id,
                    path=f"steps[{i}].id",
                    hint=f"use letters, digits and '_', starting with a letter: {suggestion!r}",
                )
            first = index.setdefault(step.id, i)
            if first != i:
                self.add(
                    "duplicate_id",
                    f"step id {step.id!r} is used by steps {first} and {i}",
                    step=step.id,
                    path=f"steps[{i}].id",
                    hint="give every step its own id",
                )

    def closest_step(self, name: str) -> str | None:
        match = difflib.get_close_matches(name, list(self.index), n=1, cutoff=0.6)
        if match:
            return f"did you mean ${match[0]}?"
        return f"known steps: {', '.join(list(self.index)[:10])}" if self.index else None

    # -- references
    def check_ref(
        self,
        ref: Ref | BadReference,
        owner: str | None,
        where: Where,
        deps: list[int],
        *,
        absent_is_null: bool = False,
    ) -> Types:
        """Report problems with one reference and record its edge; return the JSON types the
        reference can produce (None = unknown)."""
        if type(ref) is Ref:
            # The common case first: a known step whose output path was already looked up.
            target = self.index.get(ref.step)
            if target is not None and ref.step != owner:
                producer = self.step_views[target]
                if producer is not None:
                    found = self.fields.get((producer.name, ref.path), _UNSEEN)
                    if found is not _UNSEEN and type(found) is not KeyError:
                        deps.append(target)
                        return found  # type: ignore[no-any-return]
        if isinstance(ref, BadReference):
            self.add(
                "bad_reference",
                f"malformed reference {ref.text!r}: {ref.reason}",
                step=owner,
                path=where,
            )
            return None
        target = self.index.get(ref.step)
        if target is None:
            self.add(
                "unknown_step",
                f"reference {ref} names step {ref.step!r}, which is not in the plan",
                step=owner,
                path=where,
                hint=self.closest_step(ref.step),
            )
            return None
        if ref.step == owner:
            self.add(
                "cycle",
                f"step {owner!r} references its own output ({ref})",
                step=owner,
                path=where,
                hint=f"cycle: {owner} -> {owner}; a step can only use other steps' outputs",
            )
            return None
        deps.append(target)
        view = self.step_views[target]
        if view is None:
            return None
        key = (view.name, ref.path)
        if view.output is None:
            self.fields[key] = None  # nothing to check: lets the inline path take it next time
            return None
        found = self.fields.get(key, _UNSEEN)
        if found is _UNSEEN:
            try:
                types = json_types(subschema_at(view.output, ref.path))
                found = frozenset(types) if types is not None else None
            except KeyError as missing:
                found = missing
            self.fields[key] = found
        if not isinstance(found, KeyError):
            return found  # type: ignore[no-any-return]
        segment, position = found.args[0], found.args[1]
        if absent_is_null and position == len(ref.path) - 1:
            return frozenset({"null"})  # is_none / not_none: an absent last key reads as null
        self.add(
            "unknown_field",
            f"reference {ref}: {view.name}'s output has no field {segment!r}",
            step=owner,
            path=where,
            hint=self._field_hint(view.tool, ref, segment, position),
        )
        return None

    @staticmethod
    def _field_hint(tool: Tool, ref: Ref, segment: Any, position: int) -> str | None:
        prefix = Ref(ref.step, ref.path[:position])
        try:
            node = subschema_at(tool.output_schema, ref.path[:position]) or {}
        except KeyError:
            return None
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            for option in options if isinstance(options, list) else []:
                if isinstance(option, dict) and "properties" in option:
                    node = option
        props = node.get("properties")
        if isinstance(props, dict) and props:
            close = difflib.get_close_matches(str(segment), list(props), n=1, cutoff=0.5)
            if close:
                return f"did you mean {Ref(ref.step, (*ref.path[:position], close[0]))}?"
            return f"{prefix} has: {', '.join(props)}"
        types = json_types(node)
        if types:
            return f"{prefix} is {describe_types(types)}; reference it whole"
        return None

    def check_text(self, value: str, owner: str | None, where: Where, deps: list[int]) -> str:
        """Check the references of one string that holds a ``$``; return its kind: ``ref``,
        ``template``, ``bad`` or ``literal``."""
        parsed = parse_string(value)
        if isinstance(parsed, Ref | BadReference):
            self.check_ref(parsed, owner, where, deps)
            return "ref" if isinstance(parsed, Ref) else "bad"
        if isinstance(parsed, Template):
            loose = False
            for part in parsed.parts:
                if isinstance(part, str):
                    loose = loose or "$" in part
                else:
                    self.check_ref(part, owner, where, deps)
            if loose:
                self.check_loose(value, owner, where)
            return "template"
        self.check_loose(value, owner, where)
        return "literal"

    def check_loose(self, text: str, owner: str | None, where: Where) -> None:
        """``"Wear $outfit.outfit"``: a reference without braces inside text stays literal text."""
        for m in _LOOSE_REF_RE.finditer(text):
            step = m.group(1)
            if step is None or step not in self.index:
                continue
            body = step + (m.group(2) or "")
            self.add(
                "bad_reference",
                f"{short(text, 60)} mentions ${body} as plain text, so it will not be replaced",
                step=owner,
                path=where,
                hint=f"inside text write ${{{body}}}; for the value itself write exactly "
                f'"${body}"; for a literal dollar write $$',
            )
            return

    # -- the steps
    def check_steps(self) -> None:
        """One pass over every step's arguments. This loop runs once per argument of a plan that
        may have 100k steps, so the common cases (a literal, a reference to a known step whose
        output path was seen before) are handled inline; anything else, and every issue, goes
        through the methods below."""
        step_views = self.step_views
        fields = self.fields
        fits = self.fits
        index_of = self.index.get
        all_deps = self.deps
        for index, step in enumerate(self.plan.steps):
            view = step_views[index]
            deps: list[int] = []
            all_deps.append(deps)
            owner = step.id
            if view is None:
                self.unknown_tool(index, step)
            args = step.args
            for arg, value in args.items():
                kind = type(value)
                if kind is str and "$" in value:
                    parsed = parse_string(value)
                    if type(parsed) is not Ref:
                        self.check_text_arg(view, owner, index, arg, value, parsed, deps)
                        continue
                    target = index_of(parsed.step)
                    producer = step_views[target] if target is not None else None
                    found = (
                        fields.get((producer.name, parsed.path), _UNSEEN)
                        if producer is not None and parsed.step != owner
                        else _UNSEEN
                    )
                    if found is _UNSEEN or type(found) is KeyError:
                        produced = self.check_ref(parsed, owner, (index, arg), deps)
                    else:
                        deps.append(target)  # type: ignore[arg-type]
                        produced = found  # type: ignore[assignment]
                    if view is not None and not fits.get((view.name, arg, produced)):
                        self.check_ref_arg(view, owner, index, arg, value, produced)
                    continue
                if (kind is list or kind is dict) and has_dollar(value):
                    self.check_container(view, owner, index, arg, value, deps)
                    continue
                if view is None:
                    continue
                check = view.checks.get(arg)
                if check is None:
                    if arg not in view.props:
                        self.unexpected(view, owner, index, arg)
                        continue
                    check = view.compiled(arg)
                if value is None and arg not in view.required:
                    continue  # an optional argument sent as null counts as absent
                problem = check(value)
                if problem is not None:
                    self.type_issue(view, owner, index, arg, problem)
            if view is not None:
                for name in view.required:
                    if name not in args:
                        self.missing(view, owner, index, name)
            if step.depends_on:
                self.check_depends_on(index, step, deps)
            if step.when is not None:
                self.check_condition(step.when, owner, f"steps[{index}].when", deps)

    def check_text_arg(
        self,
        view: ToolView | None,
        owner: str,
        index: int,
        arg: str,
        value: str,
        parsed: str | Template | BadReference | Ref,
        deps: list[int],
    ) -> None:
        if type(parsed) is Template:
            loose = False
            for part in parsed.parts:
                if type(part) is str:
                    loose = loose or "$" in part
                else:
                    self.check_ref(part, owner, (index, arg), deps)  # type: ignore[arg-type]
            if loose:
                self.check_loose(value, owner, (index, arg))
            if view is not None:
                accepted = view.accepted.get(arg, _UNSEEN)
                if (
                    accepted is _UNSEEN
                    or arg not in view.props
                    or (isinstance(accepted, frozenset) and "string" not in accepted)
                ):
                    self.check_template_arg(view, owner, index, arg)
            return
        kind = self.check_text(value, owner, (index, arg), deps)
        if view is None:
            return
        if kind == "literal":
            self.check_literal(view, owner, index, arg, parsed)
        else:
            self.unexpected(view, owner, index, arg)

    def unknown_tool(self, index: int, step: Step) -> None:
        close = self.registry.closest(step.tool)
        names = self.registry.names()
        if close:
            hint = f"did you mean {close}?"
        elif names:
            hint = f"available tools: {', '.join(names[:15])}"
        else:
            hint = "no tools are registered"
        self.add(
            "unknown_tool",
            f"step {step.id!r} uses tool {step.tool!r}, which is not registered",
            step=step.id,
            path=f"steps[{index}].tool",
            hint=hint,
        )

    def check_depends_on(self, index: int, step: Step, deps: list[int]) -> None:
        for j, dep in enumerate(step.depends_on):
            path = f"steps[{index}].depends_on[{j}]"
            if dep == step.id:
                self.add(
                    "cycle",
                    f"step {step.id!r} depends on itself",
                    step=step.id,
                    path=path,
                    hint=f"cycle: {step.id} -> {step.id}; remove it from its own depends_on",
                )
            elif dep not in self.index:
                self.add(
                    "unknown_step",
                    f"depends_on names step {dep!r}, which is not in the plan",
                    step=step.id,
                    path=path,
                    hint=self.closest_step(dep),
                )
            else:
                deps.append(self.index[dep])

    # -- the graph
    def check_cycles(self) -> None:
        """Kahn's algorithm over step indexes; each cycle left is walked once and reported as
        ``a -> b -> a`` (``a`` waits for ``b``)."""
        n = len(self.deps)
        if _in_order(self.deps):
            return  # every step waits only on steps before it in the list: no cycle possible
        waiting = [len(d) for d in self.deps]
        dependents: list[list[int]] = [[] for _ in range(n)]
        for i, deps in enumerate(self.deps):
            for d in deps:
                dependents[d].append(i)
        ready = [i for i in range(n) if not waiting[i]]
        done = 0
        while ready:
            node = ready.pop()
            done += 1
            for child in dependents[node]:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)
        if done == n:
            return
        seen: set[int] = set()
        steps = self.plan.steps
        for start in range(n):
            if not waiting[start] or start in seen:
                continue
            walk: dict[int, int] = {}
            node = start
            while node not in walk and node not in seen:
                walk[node] = len(walk)
                # A node left waiting always waits on another node left waiting.
                node = next(d for d in self.deps[node] if waiting[d])
            seen.update(walk)
            if node not in walk:
                continue  # led into a cycle already reported
            cycle = list(walk)[walk[node] :]
            first = cycle.index(min(cycle))
            cycle = cycle[first:] + cycle[:first]
            text = " -> ".join(steps[i].id for i in [*cycle, cycle[0]])
            self.add(
                "cycle",
                f"the steps depend on each other in a circle: {text}",
                step=steps[cycle[0]].id,
                path=f"steps[{cycle[0]}]",
                hint=f"cycle: {text}; remove one of these references",
            )

    def check_answer(self) -> None:
        answer = self.plan.answer
        if answer and "$" in answer:
            self.check_text(answer, None, "answer", [])

    def run(self) -> list[Issue]:
        if not self.plan.steps and not self.plan.answer:
            self.add(
                "empty_plan",
                "the plan has no steps and no answer",
                hint="add steps that use the tools, or an answer if no tool is needed",
            )
            return self.issues
        self.index_steps()
        self.check_steps()
        self.check_answer()
        self.check_cycles()
        return self.issues


def _in_order(deps: list[list[int]]) -> bool:
    """Whether every edge points to an earlier step: how plans are usually written, and a proof
    of acyclicity that costs one look at each edge and allocates nothing."""
    for i, step_deps in enumerate(deps):
        for d in step_deps:
            if d >= i:
                return False
    return True


def validate(plan: Plan, registry: ToolRegistry) -> list[Issue]:
    """Every issue in ``plan`` against ``registry``; an empty list means the plan is valid."""
    was_enabled = _pause_gc()
    try:
        return _Validator(plan, registry).run()
    except Exception as exc:  # validate never raises on bad input
        return [Issue("bad_plan", f"the plan could not be validated ({type(exc).__name__}: {exc})")]
    finally:
        _resume_gc(was_enabled)


def check_plan(plan: Plan, registry: ToolRegistry) -> Plan:
    """``validate`` and raise :class:`PlanInvalidError` with the issues if there are any."""
    from ..errors import PlanInvalidError

    issues = validate(plan, registry)
    if issues:
        raise PlanInvalidError(f"the plan has {len(issues)} issue(s)", issues)
    return plan
