"""The validator: proves a plan is an acyclic graph of known tools whose references resolve and
whose arguments fit, or says why not.

``validate(plan, registry) -> list[Issue]`` never raises on bad input. It runs in time linear in
steps + references: one pass over the steps (each argument string is classified once, each
distinct ``(tool, output path)`` is looked up in a schema once), then Kahn's algorithm over the
step indexes for cycles. Step order in the list does not matter.

The walker (:class:`_Validator`) owns the state of one validation: the report, the step index, each
step's tool and the dependency edges. What it judges is in plain functions and one small class
that it hands exactly what they need: the references (:mod:`~tooldag.validate._references`), the
arguments (:mod:`~tooldag.validate._args`) and the ``when`` conditions
(:mod:`~tooldag.validate._conditions`).

Issue codes (stable). Errors: ``invalid_id``, ``duplicate_id``, ``unknown_tool``,
``unknown_step``, ``cycle``, ``bad_reference``, ``unknown_field``, ``missing_argument``,
``unexpected_argument``, ``type_mismatch``, ``bad_condition``, ``empty_plan``. Warnings
(:data:`WARNING_CODES`: the plan runs, and only errors send the planner back to the LLM):
``coerced_argument`` (a number or boolean passed to a text parameter as its JSON text),
``bare_reference`` (``$step.path`` inside text, read as ``${step.path}``), ``guessed_answer``
(an answer that reads no step's output). And ``data_flow``, which ``validate`` never returns: a
flow of private or untrusted data out of the machine is a finding of
:func:`~tooldag.validate.flows.flows`, for the caller's policy to weigh, not an error.
"""

from __future__ import annotations

import re

from ..issues import Issue, errors_of
from ..plan.model import Plan, Step
from ..plan.parse import _pause_gc, _resume_gc
from ..plan.refs import BadReference, Ref, Template, parse_string
from ..registry.registry import ToolRegistry
from ._args import (
    ToolView,
    check_container_arg,
    check_literal,
    check_ref_arg,
    check_template_arg,
    has_dollar,
    literal_issue,
    missing,
    unexpected,
)
from ._conditions import check_condition
from ._references import UNSEEN, Fields, References
from ._report import Report

__all__ = ["ISSUE_CODES", "WARNING_CODES", "check_plan", "validate"]

ISSUE_CODES = (
    "bad_condition",
    "bad_reference",
    "bare_reference",
    "coerced_argument",
    "cycle",
    "data_flow",
    "duplicate_id",
    "empty_plan",
    "guessed_answer",
    "invalid_id",
    "missing_argument",
    "type_mismatch",
    "unexpected_argument",
    "unknown_field",
    "unknown_step",
    "unknown_tool",
)
# The codes validate reports as warnings, never as errors.
WARNING_CODES = frozenset({"bare_reference", "coerced_argument", "guessed_answer"})


class _Validator:
    """One validation of ``plan`` against ``registry``: :meth:`run` walks it once."""

    def __init__(self, plan: Plan, registry: ToolRegistry) -> None:
        self.plan = plan
        self.registry = registry
        self.report = Report()
        self.index: dict[str, int] = {}
        self.views: dict[str, ToolView | None] = {}
        self.step_views: list[ToolView | None] = []
        self.deps: list[list[int]] = []
        self.fields: Fields = {}
        self.refs = References(self.index, self.step_views, self.fields, self.report)

    def view(self, name: str) -> ToolView | None:
        if name not in self.views:
            self.views[name] = ToolView(self.registry.get(name)) if name in self.registry else None
        return self.views[name]

    # -- ids
    def index_steps(self) -> None:
        views = self.views
        index = self.index
        step_views = self.step_views
        add = self.report.add
        for i, step in enumerate(self.plan.steps):
            view = views.get(step.tool, UNSEEN)
            if view is UNSEEN:
                view = self.view(step.tool)
            step_views.append(view)
            if not (step.id.isidentifier() and step.id.isascii()):  # [A-Za-z_][A-Za-z0-9_]*
                suggestion = re.sub(r"\W", "_", step.id).lstrip("0123456789") or f"step{i + 1}"
                add(
                    "invalid_id",
                    f"step id {step.id!r} is not an identifier",
                    step=step.id,
                    path=f"steps[{i}].id",
                    hint=f"use letters, digits and '_', starting with a letter: {suggestion!r}",
                )
            first = index.setdefault(step.id, i)
            if first != i:
                add(
                    "duplicate_id",
                    f"step id {step.id!r} is used by steps {first} and {i}",
                    step=step.id,
                    path=f"steps[{i}].id",
                    hint="give every step its own id",
                )

    # -- the steps
    def check_steps(self) -> None:
        """One pass over every step's arguments. This loop runs once per argument of a plan that
        may have 100k steps, so the common cases (a literal, a template, a reference to a known
        step whose output path was seen before) are handled inline; anything else, and every
        issue, goes through the reference checks and the argument checks."""
        report = self.report
        refs = self.refs
        step_views = self.step_views
        fields = self.fields
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
                    if type(parsed) is Template:
                        refs.check_template(parsed, value, owner, (index, arg), deps)
                        if view is not None:
                            accepted = view.accepted.get(arg, UNSEEN)
                            if (
                                accepted is UNSEEN
                                or arg not in view.props
                                or (isinstance(accepted, frozenset) and "string" not in accepted)
                            ):
                                check_template_arg(report, view, owner, index, arg)
                        continue
                    if type(parsed) is not Ref:
                        self.check_text_arg(view, owner, index, arg, value, parsed, deps)
                        continue
                    target = index_of(parsed.step)
                    producer = step_views[target] if target is not None else None
                    found = (
                        fields.get((producer.name, parsed.path), UNSEEN)
                        if producer is not None and parsed.step != owner
                        else UNSEEN
                    )
                    if found is UNSEEN or type(found) is KeyError:
                        produced = refs.check_ref(parsed, owner, (index, arg), deps)
                    else:
                        deps.append(target)  # type: ignore[arg-type]
                        produced = found
                    if view is not None and not view.fits.get((arg, produced)):
                        check_ref_arg(report, view, owner, index, arg, value, produced)
                    continue
                if (kind is list or kind is dict) and has_dollar(value):
                    has_refs = refs.check_nested(value, owner, index, arg, deps)
                    if view is not None:
                        check_container_arg(report, view, owner, index, arg, value, has_refs)
                    continue
                if view is None:
                    continue
                check = view.checks.get(arg)
                if check is None:
                    if arg not in view.props:
                        unexpected(report, view, owner, index, arg)
                        continue
                    check = view.compiled(arg)
                if value is None and arg not in view.required:
                    continue  # an optional argument sent as null counts as absent
                problem = check(value)
                if problem is not None:
                    literal_issue(report, view, owner, index, arg, value, problem)
            if view is not None:
                for name in view.required:
                    if name not in args:
                        missing(report, view, owner, index, name)
            if step.depends_on:
                self.check_depends_on(index, step, deps)
            if step.when is not None:
                check_condition(step.when, owner, f"steps[{index}].when", deps, refs, report)

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
        """A string argument with a ``$`` that is neither a whole reference nor a template: a
        malformed reference, or text whose ``$`` is literal."""
        kind = self.refs.check_text(value, owner, (index, arg), deps)
        if view is None:
            return
        if kind == "literal":
            check_literal(self.report, view, owner, index, arg, parsed)
        else:
            unexpected(self.report, view, owner, index, arg)

    def unknown_tool(self, index: int, step: Step) -> None:
        close = self.registry.closest(step.tool)
        names = self.registry.names()
        if close:
            hint = f"did you mean {close}?"
        elif names:
            hint = f"available tools: {', '.join(names[:15])}"
        else:
            hint = "no tools are registered"
        self.report.add(
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
                self.report.add(
                    "cycle",
                    f"step {step.id!r} depends on itself",
                    step=step.id,
                    path=path,
                    hint=f"cycle: {step.id} -> {step.id}; remove it from its own depends_on",
                )
            elif dep not in self.index:
                self.report.add(
                    "unknown_step",
                    f"depends_on names step {dep!r}, which is not in the plan",
                    step=step.id,
                    path=path,
                    hint=self.refs.closest_step(dep),
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
            self.report.add(
                "cycle",
                f"the steps depend on each other in a circle: {text}",
                step=steps[cycle[0]].id,
                path=f"steps[{cycle[0]}]",
                hint=f"cycle: {text}; remove one of these references",
            )

    def check_answer(self) -> None:
        answer = self.plan.answer
        if answer and "$" in answer:
            self.refs.check_text(answer, None, "answer", [])
        steps = self.plan.steps
        if answer and steps and not self.plan.answer_refs():
            if isinstance(parse_string(answer), BadReference):
                return  # reported above
            last = steps[-1].id
            self.report.warn(
                "guessed_answer",
                f"the answer reads no step's output, though the plan has {len(steps)} "
                f"step{'s' if len(steps) != 1 else ''}: it was written before anything ran",
                path="answer",
                hint=f"put what the steps find into it, e.g. ${{{last}.field}}",
            )

    def check_bare(self) -> None:
        """A warning for each ``$step.path`` inside text that the plan read as ``${step.path}``."""
        for bare in self.plan.bare_references:
            self.report.warn(
                "bare_reference",
                f"${bare.ref} inside text is read as ${{{bare.ref}}}, the output of step "
                f"{bare.ref.split('.', 1)[0].split('[', 1)[0]!r}",
                step=bare.owner,
                path=bare.path,
                hint=f"write ${{{bare.ref}}} to say so; $$ is a literal dollar",
            )

    def run(self) -> list[Issue]:
        if not self.plan.steps and not self.plan.answer:
            self.report.add(
                "empty_plan",
                "the plan has no steps and no answer",
                hint="add steps that use the tools, or an answer if no tool is needed",
            )
            return self.report.issues
        self.index_steps()
        self.check_bare()
        self.check_steps()
        self.check_answer()
        self.check_cycles()
        return self.report.issues


def _in_order(deps: list[list[int]]) -> bool:
    """Whether every edge points to an earlier step: how plans are usually written, and a proof
    of acyclicity that costs one look at each edge and allocates nothing."""
    for i, step_deps in enumerate(deps):
        for d in step_deps:
            if d >= i:
                return False
    return True


def validate(plan: Plan, registry: ToolRegistry) -> list[Issue]:
    """Every issue in ``plan`` against ``registry``, errors and warnings in the order found.

    The plan may run when ``errors_of(issues)`` is empty (an empty list: valid, nothing to say);
    warnings say how it is read (see :data:`WARNING_CODES`)."""
    was_enabled = _pause_gc()
    try:
        return _Validator(plan, registry).run()
    except Exception as exc:  # validate never raises on bad input
        return [Issue("bad_plan", f"the plan could not be validated ({type(exc).__name__}: {exc})")]
    finally:
        _resume_gc(was_enabled)


def check_plan(plan: Plan, registry: ToolRegistry) -> Plan:
    """``validate`` and raise :class:`PlanInvalidError` with the errors if there are any
    (warnings do not stop a plan)."""
    from ..errors import PlanInvalidError

    issues = errors_of(validate(plan, registry))
    if issues:
        raise PlanInvalidError(f"the plan has {len(issues)} issue(s)", issues)
    return plan
