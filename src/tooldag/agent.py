"""``plan_and_run(goal)``: plan -> validate -> approve -> execute -> replan on failure -> answer.

The one call most users need. It works from a script, from the REPL and from a Jupyter cell (a
running event loop runs it on a helper thread, see :func:`tooldag._sync.run_sync`):

>>> result = plan_and_run("What is the weather in Oslo, and what should I wear?")  # doctest: +SKIP
>>> result.answer, result.status, result.usage.total_tokens                       # doctest: +SKIP

What it promises:

- Failures go back to the LLM (at most ``max_replans`` times) with the completed results; a step
  the new plan keeps unchanged is not run again, its output is reused.
- The agent owns the run's saga ledger: every execution records what it did on it, and while a
  replan may still follow nothing is compensated; when the run is given up (replans spent,
  replanning impossible, a budget spent, a plan refused, cancelled at any point, also while the
  LLM replans) every step that succeeded with side effects, in any attempt, is compensated once,
  last finished first. An undone step of an earlier attempt that the last plan did not keep
  shows in the result as ``step@attempt`` (``booking@1``); a step whose undo failed keeps its
  ``succeeded`` status and carries the failure as its ``error`` (and in the run's ``error``).
- The agent decides when the run is finished: each execution's ``run_finished`` event is not
  final (:attr:`~tooldag.events.RunFinished.final` false), and the agent emits the run's own
  last one, final: what :meth:`EventBus.stream` waits for and what the store reads as the end
  of the run.
- ``usage`` is the sum over every LLM call of the run: plans, re-asks, replans and the calls of
  LLM-backed tools (``summarize``...). A spent budget ends the run with ``budget_exceeded``.
- ``approve(plan)`` sees each plan before it runs; a refusal ends the run ``rejected`` before
  anything of that plan ran (but for the read-only steps a streamed plan started early).
- ``policy`` (:mod:`tooldag.execution.policy`) decides what a plan through which private data
  can leave the machine needs (:func:`~tooldag.validate.flows`): ``ask`` (the default) approval
  of the steps concerned, ``strict`` a plan without such a flow (the planner is told and may
  write another), ``off`` nothing. Under ``ask`` with no ``approve_step`` hook there is no one
  to ask, so such a plan is refused before anything of it runs, naming the flows.
- ``approve_step(request)`` is asked just before each step with side effects, and each step a
  data flow reaches, runs: ``request`` is a :class:`~tooldag.execution.policy.StepApproval`
  (the step, its *resolved* arguments, the flows into it). ``True`` runs it, ``False`` skips it
  and what waits for it (the run goes on), :attr:`Verdict.ABORT` ends the run ``rejected``.
- ``stream=True`` streams each plan (:mod:`tooldag.planning.streaming`): every step is checked as
  it arrives, and read-only, idempotent steps that no data flow reaches start at once, in an
  execution that the complete, validated and approved plan then finishes; side effects still
  wait for the whole plan.
- ``join`` (``always``, ``auto``: when the plan has no answer template or says
  ``"answer": "llm"``, ``never``) asks the LLM, after a run that succeeded, for the answer or
  for another plan and why (:mod:`tooldag.planning.join`); its replans count against
  ``max_replans`` and reuse completed steps like those after a failure. ``on_answer`` receives
  the join's answer text as it streams.

A :class:`Session` keeps earlier goals, answers and outputs for follow-up goals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import openai

from ._sync import run_sync
from .durable.store import RunStore
from .errors import BudgetExceededError, LLMError, PlanRejected
from .events import Event, EventBus, EventCallback, LLMCall
from .execution.executor import Executor, RunHandle
from .execution.outcome import finished_event
from .execution.policy import ApproveStepHook, Policy, PolicyGate
from .execution.saga import Ledger
from .llm.client import LLMClient, LLMReply, OutputMode, UsageMeter
from .plan.model import Plan, Step
from .plan.reuse import reusable_outputs
from .planning.join import Finish, Join, join, join_setting, wants_join
from .planning.planner import Planner
from .planning.streaming import StreamingPlanner
from .registry.loading import load_registry, load_tools
from .registry.registry import Tool, ToolRegistry, tool
from .result import RunResult, RunStatus, StepRecord, StepRecords, Usage
from .validate.egress import EgressAllowList

__all__ = [
    "ApproveHook",
    "Session",
    "aplan_and_run",
    "plan_and_run",
    "resolve_llm",
    "resolve_tools",
]

log = logging.getLogger("tooldag.agent")

ApproveHook: TypeAlias = Callable[[Any], "bool | Awaitable[bool]"]
"""Called with each :class:`Plan` before it runs (``approve``); a false result refuses it. May be
async. (``approve_step`` is an :data:`~tooldag.execution.policy.ApproveStepHook`.)"""

ToolsSpec: TypeAlias = "ToolRegistry | Iterable[Tool | str | Callable[..., Any]] | str | None"
LLMSpec: TypeAlias = "LLMClient | openai.AsyncOpenAI | openai.OpenAI | str | None"


def resolve_tools(tools: ToolsSpec) -> ToolRegistry:
    """A registry from ``tools``: ``None`` (the built-in packs), a registry, a ``--tools`` SPEC,
    or an iterable of tools, SPECs and plain typed functions (made tools with ``@tool``)."""
    if tools is None:
        return load_registry(None)
    if isinstance(tools, ToolRegistry):
        return tools
    if isinstance(tools, str):
        return load_registry([tools])
    registry = ToolRegistry()
    for item in tools:
        if isinstance(item, Tool):
            registry.add(item, replace=True)
        elif isinstance(item, str):
            registry.extend(load_tools(item), replace=True)
        else:
            registry.add(tool(item), replace=True)
    return registry


def resolve_llm(llm: LLMSpec) -> LLMClient:
    """An :class:`LLMClient` from ``llm``: ``None`` (the environment), a client, an SDK client,
    or a model name (with the rest of the configuration from the environment)."""
    if isinstance(llm, LLMClient):
        return llm
    if llm is None:
        return LLMClient.from_env()
    if isinstance(llm, str):
        return LLMClient.from_env(model=llm)
    return LLMClient.from_env(client=llm)


async def _approved(hook: ApproveHook | None, subject: Any) -> bool:
    if hook is None:
        return True
    verdict = hook(subject)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return bool(verdict)


class _EarlyRun:
    """The open execution that a streamed plan's early steps go to, started with the first of
    them; the approved plan seals it (:meth:`_Agent.execute`)."""

    def __init__(self, agent: _Agent) -> None:
        self.agent = agent
        self.handle: RunHandle | None = None
        self.loop = asyncio.get_running_loop()

    def start(self, steps: Sequence[Step], reuse: Mapping[str, Any]) -> None:
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if not here:  # a sync OpenAI client streams on a worker thread
            self.loop.call_soon_threadsafe(self.start, steps, reuse)
            return
        if self.handle is not None:
            self.handle.extend(steps, reuse)
            return
        agent = self.agent
        self.handle = agent.executor.start(
            Plan(goal=agent.goal, steps=list(steps)),
            reuse=reuse,
            ledger=agent.ledger,
            compensate=False,
            final=False,
            sealed=False,
        )

    async def settle(self) -> Mapping[str, StepRecord]:
        return await self.handle.settle() if self.handle is not None else {}


class _Agent:
    """One run of :func:`aplan_and_run`: the state shared by its plans and executions."""

    def __init__(
        self,
        goal: str,
        registry: ToolRegistry,
        llm: LLMClient,
        *,
        run_id: str,
        bus: EventBus,
        meter: UsageMeter,
        max_replans: int,
        max_reasks: int,
        mode: OutputMode | str | None,
        approve: ApproveHook | None,
        gate: PolicyGate,
        context: Any,
        executor_options: Mapping[str, Any],
        stream: bool = False,
        join: Join | str = Join.AUTO,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        self.goal = goal
        self.registry = registry
        self.run_id = run_id
        self.bus = bus
        self.meter = meter
        self.max_replans = max_replans
        self.approve = approve
        self.gate = gate
        self.context = context
        planner = StreamingPlanner if stream else Planner
        self.planner = planner(
            registry,
            llm,
            max_reasks=max_reasks,
            mode=mode,
            bus=bus,
            meter=meter,
            run_id=run_id,
            check=gate.planner_issues if gate.policy is Policy.STRICT else None,
        )
        self.join = join_setting(join)
        self.on_answer = on_answer
        self.early: _EarlyRun | None = None
        """The open execution of the plan being streamed, if steps started early."""
        self.executor = Executor(registry, bus=bus, gate=gate, **dict(executor_options))
        self.plans: list[Plan] = []
        self.ledger = Ledger(run_id, self.executor.options)
        """What every execution did: undone when the run is given up."""
        self.last: RunResult | None = None
        """The latest execution's result (the one a replan builds on)."""
        self.started_at = time.time()

    async def run(self) -> RunResult:
        try:
            return await self.plan_and_execute()
        except asyncio.CancelledError:
            # Abandoned (Ctrl-C in the REPL, a cancelled task) wherever it was: in an execution,
            # while the LLM replans, in an approval hook. Every attempt's side effects are undone
            # before the cancellation goes on.
            with contextlib.suppress(Exception):
                await self.close_early()
                await self.give_up(self.last, RunStatus.CANCELLED, "cancelled")
            raise

    # -- streamed plans: where their early steps run (none without streaming)

    def streamed(self) -> dict[str, Any]:
        """The planner's ``early=``: a new open execution for the plan to come."""
        if not isinstance(self.planner, StreamingPlanner):
            return {}
        # Early steps meet the gate before the plan is prepared for it: none that a data flow
        # reaches starts early, so the gate must hold no findings of an earlier plan.
        self.gate.prepare(Plan(goal=self.goal))
        self.early = _EarlyRun(self)
        return {"early": self.early}

    async def close_early(self) -> None:
        """Cancel the open execution of a plan that will not run (refused, never valid): what
        started early is cancelled, and the execution becomes :attr:`last`."""
        early, self.early = self.early, None
        if early is None or early.handle is None:
            return
        early.handle.cancel()
        self.last = await early.handle.wait()

    async def plan_and_execute(self) -> RunResult:
        try:
            plan = await self.planner.plan(self.goal, self.context, **self.streamed())
        except BudgetExceededError as exc:
            await self.close_early()
            return self.finish(self.last, RunStatus.BUDGET_EXCEEDED, str(exc))
        except (PlanRejected, LLMError) as exc:
            await self.close_early()
            self.finish(self.last, RunStatus.FAILED, str(exc))  # journals the end of the run
            raise
        replans = 0
        while True:
            self.plans.append(plan)
            refusal = await self.refusal(plan)
            if refusal is not None:
                await self.close_early()
                return await self.give_up(self.last, RunStatus.REJECTED, refusal)
            reuse: dict[str, Any] = {}
            if self.last is not None:
                reuse = reusable_outputs(
                    previous=self.plans[-2], plan=plan, outputs=self.last.outputs
                )
            result = await self.execute(plan, reuse)
            reason: str | None = None
            if result.status is RunStatus.SUCCEEDED and wants_join(plan, self.join):
                joined = await self.joined(plan, result, can_replan=replans < self.max_replans)
                if isinstance(joined, RunResult):
                    return joined
                reason = joined  # the join asks for another plan
            elif result.status is not RunStatus.FAILED or replans >= self.max_replans:
                status = result.status
                error = result.error
                if status is RunStatus.FAILED:
                    error = f"gave up after {replans} replan(s): {result.error}"
                if status is RunStatus.SUCCEEDED:
                    return self.finish(result, status, error)
                return await self.give_up(result, status, error)
            replans += 1
            try:
                plan = await self.planner.replan(
                    self.goal, plan, result, self.context, reason=reason, **self.streamed()
                )
            except BudgetExceededError as exc:
                await self.close_early()
                return await self.give_up(self.last, RunStatus.BUDGET_EXCEEDED, str(exc))
            except (PlanRejected, LLMError) as exc:
                await self.close_early()
                why = f"first failure: {result.error}" if reason is None else f"asked: {reason}"
                return await self.give_up(
                    self.last, RunStatus.FAILED, f"replanning failed: {exc}; {why}"
                )

    async def joined(self, plan: Plan, result: RunResult, *, can_replan: bool) -> RunResult | str:
        """The join of a run that succeeded: the finished run with the LLM's answer, or the
        reason the LLM gives for another plan."""
        try:
            decision = await join(
                self.planner,
                self.goal,
                plan,
                result,
                can_replan=can_replan,
                context=self.context,
                on_text=self.on_answer,
                stream=isinstance(self.planner, StreamingPlanner),
            )
        except BudgetExceededError as exc:
            return await self.give_up(result, RunStatus.BUDGET_EXCEEDED, str(exc))
        except LLMError as exc:  # what ran stands; only the answer is missing
            why = f"the answer could not be written: {exc}"
            return self.finish(result, RunStatus.SUCCEEDED, why)
        if isinstance(decision, Finish):
            answered = result.model_copy(update={"answer": decision.answer})
            return self.finish(answered, RunStatus.SUCCEEDED, result.error)
        return decision.reason

    async def execute(self, plan: Plan, reuse: Mapping[str, Any]) -> RunResult:
        """Run ``plan``; its result becomes :attr:`last`, its side effects go on the ledger."""
        # Not final and nothing undone: a replan, compensation or approval may follow, and
        # give_up() and finish() decide.
        early, self.early = self.early, None
        if early is not None and early.handle is not None:
            handle = early.handle  # steps started while the plan streamed: it takes the rest
            handle.seal(plan, reuse)
        else:
            handle = self.executor.start(
                plan, reuse=reuse, ledger=self.ledger, compensate=False, final=False
            )
        try:
            result = await handle.wait()
        except asyncio.CancelledError:
            # The caller (run) compensates; first stop this execution (it records what it did).
            handle.cancel()
            with contextlib.suppress(Exception):
                await handle.wait()
            raise
        self.last = result
        return result

    def tool_llm_call(self, reply: LLMReply) -> None:
        """An LLM call made by a tool during the run: journalled like the planner's."""
        call = LLMCall(reply.usage, "tool", reply.mode.value, reply.model, reply.usage_estimated)
        self.bus.emit(Event(call, run_id=self.run_id))

    async def refusal(self, plan: Plan) -> str | None:
        if not await _approved(self.approve, plan):
            return f"plan version {len(self.plans)} was not approved"
        # The steps themselves are asked about as they come to run (the gate).
        self.gate.prepare(plan)
        return self.gate.refusal()

    async def give_up(
        self, result: RunResult | None, status: RunStatus, error: str | None
    ) -> RunResult:
        """Undo every side effect of every attempt, then finish with ``status``."""
        report = await self.ledger.compensate()
        base = result or RunResult(run_id=self.run_id, status=status)
        undone = report.apply(base.model_copy(update={"error": error}))
        return self.finish(undone, status, undone.error)

    def finish(self, result: RunResult | None, status: RunStatus, error: str | None) -> RunResult:
        usage = dataclasses.replace(self.meter.usage)
        base = result or RunResult(run_id=self.run_id, status=status)
        final = base.model_copy(
            update={
                "status": status,
                "error": error,
                "plans": list(self.plans),
                "usage": usage,
                "started_at": self.started_at,
                "finished_at": time.time(),
                "steps": StepRecords({k: v.model_copy() for k, v in base.steps.items()}),
            }
        )
        # The executions' run_finished events were not final: this one ends the run for
        # consumers (EventBus.stream, the store), with what the run as a whole came to.
        self.bus.emit(
            finished_event(self.run_id, status, answer=final.answer, error=error, final=True)
        )
        return final


async def aplan_and_run(
    goal: str,
    *,
    tools: ToolsSpec = None,
    llm: LLMSpec = None,
    max_replans: int = 2,
    store: RunStore | str | Path | None = None,
    approve: ApproveHook | None = None,
    approve_step: ApproveStepHook | None = None,
    policy: Policy | str = Policy.ASK,
    egress_allow: EgressAllowList | str | None = None,
    max_reasks: int = 2,
    mode: OutputMode | str | None = None,
    max_llm_calls: int | None = None,
    max_tokens: int | None = None,
    context: Any = None,
    bus: EventBus | None = None,
    on_event: EventCallback | None = None,
    run_id: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    stream: bool = False,
    join: Join | str = Join.AUTO,
    on_answer: Callable[[str], None] | None = None,
) -> RunResult:
    """Plan ``goal`` with the LLM, run it, replan on failure; the :class:`RunResult`.

    ``tools`` defaults to the built-in packs, ``llm`` to :meth:`LLMClient.from_env`. ``store`` (a
    :class:`RunStore` or a path) journals the run. ``max_llm_calls``/``max_tokens`` are the run's
    budgets. ``context`` is shown to the planner as data (earlier answers, see :class:`Session`).
    ``on_event`` (or ``bus``) sees every event. ``policy`` (``ask``, ``strict``, ``off``) and
    ``approve_step`` are as the module says; ``egress_allow`` (an
    :class:`~tooldag.validate.egress.EgressAllowList` or ``"host,*.domain,@mail.domain"``;
    default ``$TOOLDAG_EGRESS_ALLOW``) lifts the findings into destinations it names.
    ``executor_options`` go to
    :class:`~tooldag.execution.executor.Executor` (``max_concurrency``, ``tool_limits``,
    ``default_timeout``). ``stream``, ``join`` and ``on_answer`` are as the module says.

    Raises :class:`PlanRejected` when no valid first plan comes back (nothing ran), and
    :class:`LLMError` subclasses when the LLM cannot be reached or configured.
    """
    registry = resolve_tools(tools)
    if isinstance(egress_allow, str):
        egress_allow = EgressAllowList.parse(egress_allow, where="egress_allow")
    gate = PolicyGate(registry, policy=policy, approve_step=approve_step, egress_allow=egress_allow)
    client = resolve_llm(llm)
    bus = bus if bus is not None else EventBus()
    unsubscribe: list[Callable[[], None]] = []
    if on_event is not None:
        unsubscribe.append(bus.subscribe(on_event))
    owned_store = isinstance(store, str | Path)
    run_store = RunStore(store) if isinstance(store, str | Path) else store
    if run_store is not None:
        unsubscribe.append(run_store.attach(bus))
    agent = _Agent(
        goal,
        registry,
        client,
        run_id=run_id or uuid.uuid4().hex[:12],
        bus=bus,
        meter=UsageMeter(max_calls=max_llm_calls, max_tokens=max_tokens),
        max_replans=max_replans,
        max_reasks=max_reasks,
        mode=mode,
        approve=approve,
        gate=gate,
        context=context,
        executor_options=executor_options or {},
        stream=stream,
        join=join,
        on_answer=on_answer,
    )
    agent.meter.listener = agent.tool_llm_call
    try:
        if run_store is not None:
            # The user's words, before any event: the plans' goal is the LLM's rewording.
            run_store.open_run(agent.run_id, goal)
        with agent.meter.active():
            return await agent.run()
    finally:
        for undo in unsubscribe:
            undo()
        if owned_store and run_store is not None:
            run_store.close()


def plan_and_run(
    goal: str,
    *,
    tools: ToolsSpec = None,
    llm: LLMSpec = None,
    max_replans: int = 2,
    store: RunStore | str | Path | None = None,
    approve: ApproveHook | None = None,
    approve_step: ApproveStepHook | None = None,
    policy: Policy | str = Policy.ASK,
    egress_allow: EgressAllowList | str | None = None,
    max_reasks: int = 2,
    mode: OutputMode | str | None = None,
    max_llm_calls: int | None = None,
    max_tokens: int | None = None,
    context: Any = None,
    bus: EventBus | None = None,
    on_event: EventCallback | None = None,
    run_id: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    stream: bool = False,
    join: Join | str = Join.AUTO,
    on_answer: Callable[[str], None] | None = None,
) -> RunResult:
    """The sync form of :func:`aplan_and_run`, with the same options; safe inside a running loop.

    The parameters are spelled out (not ``**options``) so that editors complete and check them;
    ``tests/test_agent.py`` holds them equal to :func:`aplan_and_run`'s.
    """
    options = dict(locals())  # the parameters, and nothing else yet: passed on as they are
    del options["goal"]
    return run_sync(_on_own_loop(goal, options))


async def _on_own_loop(
    goal: str, options: dict[str, Any], session: Session | None = None
) -> RunResult:
    # The loop ends with this call: close the LLM connections opened on it now, or the
    # garbage collector tries to close them later on whatever other loop is running.
    llm = session.llm if session is not None else resolve_llm(options.pop("llm", None))
    try:
        if session is not None:
            return await session.arun(goal, **options)
        return await aplan_and_run(goal, llm=llm, **options)
    finally:
        await llm.aclose()


class Session:
    """Goals that follow each other: each plan sees the earlier goals, answers and outputs.

    >>> chat = Session()                                           # doctest: +SKIP
    >>> chat.run("What is the weather in Oslo?").answer            # doctest: +SKIP
    >>> chat.run("And in the city I asked about, tomorrow?")       # doctest: +SKIP

    The registry and the LLM client are built once. ``history`` bounds how many earlier turns
    are shown; ``usage`` sums every run of the session. Other options go to
    :func:`aplan_and_run` for every goal.
    """

    def __init__(
        self,
        *,
        tools: ToolsSpec = None,
        llm: LLMSpec = None,
        history: int = 5,
        **options: Any,
    ) -> None:
        self.registry = resolve_tools(tools)
        self._llm_spec = llm
        self._llm: LLMClient | None = llm if isinstance(llm, LLMClient) else None
        self.history = history
        self.options = options
        self.results: list[tuple[str, RunResult]] = []
        self.usage = Usage()

    @property
    def llm(self) -> LLMClient:
        if self._llm is None:
            self._llm = resolve_llm(self._llm_spec)
        return self._llm

    def context(self) -> dict[str, Any]:
        """What the next plan is shown of the earlier turns (most recent last)."""
        turns = self.results[-self.history :] if self.history > 0 else []
        start = len(self.results) - len(turns)
        return {
            f"turn {start + i + 1}": {
                "goal": goal,
                "status": result.status.value,
                "answer": result.answer,
                "outputs": result.outputs,
            }
            for i, (goal, result) in enumerate(turns)
        }

    async def arun(self, goal: str, **options: Any) -> RunResult:
        """Plan and run ``goal`` with the session's context."""
        merged = {**self.options, **options}
        result = await aplan_and_run(
            goal, tools=self.registry, llm=self.llm, context=self.context() or None, **merged
        )
        self.results.append((goal, result))
        self.usage += result.usage
        return result

    def run(self, goal: str, **options: Any) -> RunResult:
        """The sync form of :meth:`arun`; safe inside a running loop."""
        return run_sync(_on_own_loop(goal, options, self))

    def clear(self) -> None:
        """Forget the earlier turns (the next goal starts fresh)."""
        self.results.clear()
