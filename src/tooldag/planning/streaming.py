"""Streamed planning: each step of the plan is checked the moment it arrives, and read-only steps
start while the LLM is still writing the rest.

:class:`StreamingPlanner` asks for the plan with ``stream=True`` (in every output mode) and feeds
the text, piece by piece, to a :class:`~tooldag.plan.stream.StepScanner`, which returns each step
exactly when its closing brace arrives. A step is *accepted* when it is valid on its own: a
known tool, arguments that fit, references only to steps accepted before it (or, in a replan,
completed in the run before), an id not taken. An accepted step *starts early*, through the
:class:`EarlySteps` the caller gives (an open execution, see
:meth:`~tooldag.execution.executor.RunHandle.extend`), when

- its tool is read-only and idempotent (``side_effects=False, idempotent=True``),
- every step it waits for started early too (or completed in the run before), and
- no private or untrusted output can reach an argument of it that leaves the machine (a
  conservative, incremental form of :func:`~tooldag.validate.flows.flows`: any such source
  upstream of a tool with egress keeps it waiting);

a step of a replan that keeps a completed step as it was (same call, inputs reused) is taken as
it was at once. Everything else, side effects above all, waits for the complete plan to be
validated and approved, as without streaming.

What can go wrong while the plan streams:

- The finished plan is invalid: the re-ask carries the issues and the steps that already ran,
  with their outputs (:func:`~tooldag.planning.prompting.repair_prompt`); the next reply may keep
  or reference them, and they are never run again. An id of a step that ran may not be given to
  another step (an ``already_ran`` issue).
- The reply is cut off (``finish_reason="length"``) or the connection breaks mid-stream
  (:class:`~tooldag.errors.LLMStreamInterrupted`): the steps that arrived complete are kept (the
  started ones run on) and the LLM is asked for the rest only, at most
  ``max_continuations`` times.
- The caller is cancelled: the stream is closed (the LLM client closes it, which stops the
  generation) and the caller cancels the execution.
"""

from __future__ import annotations

import dataclasses
import graphlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..errors import LLMStreamInterrupted, PlanParseError
from ..issues import Issue, errors_of
from ..llm.client import LLMReply
from ..plan.model import Plan, Step
from ..plan.parse import normalize_plan_data, parse_plan
from ..plan.refs import read_bare_refs
from ..plan.reuse import reusable_outputs, same_call
from ..plan.stream import StepScanner
from ..result import RunResult, StepRecord, StepStatus
from ..validate.validator import validate
from .planner import Planner, completed_steps
from .prompting import continue_prompt

__all__ = ["EarlySteps", "StreamingPlanner"]

log = logging.getLogger("tooldag.planner")

_ID_KEYS = ("id", "step_id", "stepId", "step", "key")


class EarlySteps(Protocol):
    """Where steps that may start before the plan is complete go: an open execution."""

    def start(self, steps: Sequence[Step], reuse: Mapping[str, Any]) -> None:
        """Run ``steps`` as soon as their inputs exist; ``reuse`` are outputs taken as they are
        (of these steps, or of completed steps they read)."""

    async def settle(self) -> Mapping[str, StepRecord]:
        """Wait until every step started so far has finished; what came of them."""


class _AnyStep:
    """Every name is a step id: the names a plan may yet give its steps."""

    def __contains__(self, name: object) -> bool:
        return True


def _may_read_bare(value: Any) -> bool:
    """Whether ``value`` holds text with a ``$name.path`` without braces, which the finished plan
    reads as a reference if one of its steps is called ``name`` (the lenient reading of
    :class:`~tooldag.plan.model.Plan`): until the plan is complete, that cannot be told."""
    if isinstance(value, str):
        return "$" in value and read_bare_refs(value, _AnyStep()) is not None
    if isinstance(value, list):
        return any(_may_read_bare(v) for v in value)
    if isinstance(value, dict):
        return any(_may_read_bare(v) for v in value.values())
    return False


def _bare_in(step: Step) -> bool:
    if _may_read_bare(step.args):
        return True
    leaves = step.when.iter_leaves() if step.when is not None else []
    return any(_may_read_bare(leaf.value) for leaf in leaves)


def _step_of(raw: Any) -> Step | None:
    """A streamed element as the lenient parser would make it, or None when it cannot be told
    on its own: not an object, a numbered id (whose references the whole plan renames), or text
    the whole plan may read as a reference."""
    if not isinstance(raw, dict):
        return None
    for key in _ID_KEYS:
        ident = raw.get(key)
        if isinstance(ident, int) or (isinstance(ident, str) and ident.strip().isdigit()):
            return None
    try:
        step = Step.model_validate(normalize_plan_data({"steps": [raw]})["steps"][0])
    except Exception:  # the whole reply's parse reports it
        return None
    return None if _bare_in(step) else step


class _Session:
    """One :meth:`StreamingPlanner.plan` or ``replan``, over all its attempts: what started early,
    and what the run before it completed."""

    def __init__(
        self,
        planner: StreamingPlanner,
        sink: EarlySteps | None,
        previous: Plan | None = None,
        result: RunResult | None = None,
    ) -> None:
        self.planner = planner
        self.sink = sink
        self.previous = previous
        self.done: dict[str, Step] = (
            completed_steps(previous, result) if previous is not None and result else {}
        )
        self.outputs: Mapping[str, Any] = result.outputs if result is not None else {}
        self.started: dict[str, Step] = {}
        """Steps given to the sink (to run, or taken as they were), by id."""
        self.reused: set[str] = set()
        """Of those, the completed steps taken as they were."""
        self.pinned: dict[str, Step] = {}
        """Completed steps whose outputs early steps read without the new plan restating them:
        the plan may keep them, not change them."""
        self.tainted: dict[str, bool] = {}
        if previous is not None:
            self._taint_done(previous)

    def _taint_done(self, previous: Plan) -> None:
        graph = {s.id: s.dependencies() for s in previous.steps}
        try:
            order = list(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError:
            order = list(graph)
        steps = {s.id: s for s in previous.steps}
        for sid in order:
            if sid in steps:
                self.taint(steps[sid])

    def taint(self, step: Step) -> bool:
        """Whether ``step``'s output may carry private or untrusted data (its tool's, or of any
        step it waits for), remembered by id."""
        registry = self.planner.registry
        tool = registry.get(step.tool) if step.tool in registry else None
        own = tool is None or tool.reads_private or tool.untrusted_output
        value = bool(own) or any(self.tainted.get(d, True) for d in step.dependencies())
        self.tainted[step.id] = value
        return value

    def ran(self, records: Mapping[str, StepRecord]) -> list[tuple[Step, StepRecord]]:
        """The started steps that ran (not those taken as they were), with their records."""
        return [
            (step, records[sid])
            for sid, step in self.started.items()
            if sid not in self.reused and sid in records
        ]


class _Take:
    """One reply and its continuations: the steps that arrived complete, those accepted."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.scanner = StepScanner()
        self.kept: list[Step] = []
        """Every step that arrived complete, in order (what a continuation goes on from)."""
        self.accepted: dict[str, Step] = {}

    def feed(self, piece: str) -> None:
        for raw in self.scanner.feed(piece):
            step = _step_of(raw)
            if step is None:
                continue
            self.kept.append(step)
            try:
                self.arrive(step)
            except Exception:  # never lose the plan to early starting: the step just waits
                log.exception("step %r could not be started early", step.id)

    def known(self, sid: str) -> Step | None:
        s = self.session
        return self.accepted.get(sid) or s.started.get(sid) or s.done.get(sid)

    def arrive(self, step: Step) -> None:
        s = self.session
        sid = step.id
        if sid in self.accepted:
            return  # a second step of that id: the validator says so at the end
        earlier = s.started.get(sid) or s.pinned.get(sid)
        if earlier is not None:
            if earlier == step or (sid in s.pinned and same_call(earlier, step)):
                self.accepted[sid] = step  # it ran, or is running, as it is
            return  # else it changed a step that ran: the finished plan is told so (_check)
        if self.issues(step):
            return
        self.accepted[sid] = step
        s.taint(step)
        if s.sink is not None and s.planner.early_start:
            self.start(step)

    def issues(self, step: Step) -> list[Issue]:
        """The validator's issues of ``step`` on its own: a plan of it and the steps it reads
        (each checked before), so that the cost is the step's, not the plan's."""
        deps = [d for d in step.dependencies() if d != step.id]
        inputs = [known for d in deps if (known := self.known(d)) is not None]
        mine = f"steps[{len(inputs)}]"
        found = errors_of(validate(Plan(steps=[*inputs, step]), self.session.planner.registry))
        return [i for i in found if i.step == step.id or i.path in (mine, *_under(mine, i.path))]

    def reusable(self, sid: str) -> bool:
        """A completed step whose output the new plan can take: kept as it was, or not restated."""
        s = self.session
        return sid in s.reused or (sid in s.done and sid not in self.accepted)

    def start(self, step: Step) -> None:
        s = self.session
        assert s.sink is not None
        deps = step.dependencies()
        old = s.done.get(step.id)
        if (
            old is not None
            and same_call(old, step)
            and step.id in s.outputs
            and all(self.reusable(d) for d in deps)
        ):
            # A completed step the replan keeps: taken as it was, whatever its tool.
            self.give(step, {step.id: s.outputs[step.id]}, deps)
            s.reused.add(step.id)
            return
        if not s.planner.may_start_early(step, s):
            return
        if all(d in s.started or self.reusable(d) for d in deps):
            self.give(step, {}, deps)

    def give(self, step: Step, reuse: dict[str, Any], deps: Sequence[str]) -> None:
        s = self.session
        assert s.sink is not None
        for d in deps:
            if d not in s.started and d in s.done and d in s.outputs:
                reuse[d] = s.outputs[d]
                s.pinned[d] = s.done[d]
        s.sink.start([step], reuse)
        s.started[step.id] = step

    def merged(self, reply: LLMReply, parts: int) -> LLMReply:
        """The reply as one plan: a continuation's steps after the steps kept before it."""
        if parts == 1:
            return reply
        try:
            rest = parse_plan(reply.text)
        except PlanParseError:
            return reply  # the re-ask shows the model what was wrong with it
        before = {s.id: s for s in self.kept[: self.kept_before]}
        steps = [*before.values(), *(s for s in rest.steps if before.get(s.id) != s)]
        plan = Plan(goal=rest.goal, steps=steps, answer=rest.answer)
        return dataclasses.replace(reply, text=plan.dumps(indent=None))

    kept_before = 0
    """How many of ``kept`` arrived before the latest continuation."""


def _under(prefix: str, path: str) -> tuple[str, ...]:
    """``(path,)`` if ``path`` lies inside ``prefix`` (``steps[1].args.x`` in ``steps[1]``, not
    ``steps[10]``), else ``()``."""
    return (path,) if path.startswith((prefix + ".", prefix + "[")) else ()


def _conflict(sid: str, earlier: Step) -> Issue:
    return Issue(
        "already_ran",
        f"step {sid!r} already ran while the plan arrived, as {earlier.tool} with "
        f"{earlier.args}: keep it exactly as it was",
        step=sid,
        hint="give the new step another id, and reference the one that ran as $" + sid,
    )


class StreamingPlanner(Planner):
    """A :class:`Planner` that streams its plans and starts read-only steps as they arrive.

    ``plan`` and ``replan`` take ``early``: where early steps go (None: steps are checked as they
    arrive, but none starts before the plan is complete). ``early_start=False`` streams without
    starting anything early. ``max_continuations`` bounds the requests for the rest of a reply
    that was cut off. Other options are :class:`Planner`'s.
    """

    def __init__(
        self,
        *args: Any,
        early_start: bool = True,
        max_continuations: int = 3,
        **options: Any,
    ) -> None:
        super().__init__(*args, **options)
        self.early_start = early_start
        self.max_continuations = max_continuations
        self._session = _Session(self, None)

    async def plan(
        self, goal: str, context: Any = None, *, early: EarlySteps | None = None
    ) -> Plan:
        self._session = _Session(self, early)
        return await super().plan(goal, context)

    async def replan(
        self,
        goal: str,
        previous_plan: Plan,
        result: RunResult,
        context: Any = None,
        *,
        reason: str | None = None,
        early: EarlySteps | None = None,
    ) -> Plan:
        self._session = _Session(self, early, previous_plan, result)
        return await super().replan(goal, previous_plan, result, context, reason=reason)

    def may_start_early(self, step: Step, session: _Session) -> bool:
        """Whether an accepted step is the kind that may run before its plan is approved."""
        tool = self.registry.get(step.tool)
        if tool.side_effects or not tool.idempotent:
            return False
        return not (tool.egress and any(session.tainted.get(d, True) for d in step.dependencies()))

    # ------------------------------------------------------------------ the hooks

    async def _ask(
        self,
        messages: list[dict[str, str]],
        purpose: str,
        attempt: int,
        temperature: float | None = None,
    ) -> LLMReply:
        take = _Take(self._session)
        request = messages
        for part in range(1, self.max_continuations + 2):
            take.scanner = StepScanner()
            take.kept_before = len(take.kept)
            try:
                reply = await self.call(
                    request,
                    purpose if part == 1 else "continue",
                    schema=self._plan_schema(),
                    schema_name="tooldag_plan",
                    attempt=attempt,
                    temperature=temperature,
                    on_delta=take.feed,
                )
            except LLMStreamInterrupted as exc:
                if exc.reply is not None:
                    self.announce(exc.reply, purpose if part == 1 else "continue", attempt)
                text, why = exc.partial_text, "broken"
                log.info("the plan's stream broke off after %d steps: %s", len(take.kept), exc)
                if part > self.max_continuations:
                    raise
            else:
                if reply.finish_reason != "length" or part > self.max_continuations:
                    return take.merged(reply, part)
                text, why = reply.text, "length"
                log.info("the plan was cut off at the token limit after %d steps", len(take.kept))
            kept = [s.id for s in take.kept]
            request = [
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": continue_prompt(kept, why=why)},
            ]
        raise AssertionError("unreachable: the last part returns or raises")

    def _check(self, plan: Plan) -> list[Issue]:
        """A valid plan must keep the steps that ran as they ran, and the completed steps early
        steps read as they were (their outputs are what those steps saw)."""
        s = self._session
        ids = set(plan.ids)
        issues = [
            _conflict(sid, step)
            for sid, step in s.started.items()
            if sid in ids and sid not in s.reused and plan.step(sid) != step
        ]
        if s.pinned or s.reused:
            keep = reusable_outputs(previous=s.previous, plan=plan, outputs=s.outputs)
            for sid in [*s.pinned, *s.reused]:
                if sid not in keep and sid in ids:
                    issues.append(_conflict(sid, s.done[sid]))
        return issues

    async def _ran(self) -> Sequence[tuple[Step, StepRecord]]:
        s = self._session
        if s.sink is None or not s.started:
            return ()
        records = await s.sink.settle()
        return [
            (step, record)
            for step, record in s.ran(records)
            if record.status is not StepStatus.PENDING
        ]
