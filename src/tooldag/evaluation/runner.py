"""Running a goal set against an LLM: each goal planned and run as ``plan_and_run`` would, at most
``concurrency`` at once, each in a temporary workspace of its own, within a per-goal timeout.

>>> result = evaluate(load_goals(), llm="gpt-4o-mini")          # doctest: +SKIP
>>> result.summary.answer_correct.value                        # doctest: +SKIP

What each goal's events tell (see :class:`~tooldag.events.LLMCall` purposes): a ``plan`` call,
then a ``repair`` call for each re-ask, until the first ``plan_created``; ``replan`` calls after
a failed execution; ``tool`` calls by LLM-backed tools. Their usage is the goal's tokens.

**An evaluation never sends anything.** The file and data tools work in the goal's temporary
workspace; a plan with a step whose tool sends data off the machine is refused before any of
it runs (the goal counts as ``refused``): ``send_email`` and every other side-effecting tool
with egress always, and read-only tools with egress (``http_get``, ``wikipedia_*``,
``get_weather``) unless ``allow_egress`` lets them fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._sync import run_sync
from ..agent import LLMSpec, aplan_and_run, resolve_llm
from ..errors import LLMError, PlanParseError, PlanRejected, TooldagError
from ..events import Event, EventBus, LLMCall, PlanCreated
from ..llm.client import LLMClient, UsageMeter
from ..plan.model import Plan
from ..plan.parse import parse_plan
from ..planning.planner import Planner
from ..result import RunResult, RunStatus
from .answers import check_answer
from .goals import Goal, build_workspace
from .metrics import argument_counts, edge_counts, node_counts
from .outcome import EvalResult, GoalOutcome

__all__ = ["EvalOptions", "aevaluate", "evaluate", "run_goal"]

log = logging.getLogger("tooldag.evaluation")


@dataclass(frozen=True)
class EvalOptions:
    """How goals are run. ``timeout`` is seconds per goal (``None``: no limit)."""

    concurrency: int = 4
    timeout: float | None = 300.0
    max_reasks: int = 2
    max_replans: int = 2
    mode: str | None = None
    allow_egress: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds (or None)")


class _Recorder:
    """What one goal's events say: LLM calls and tokens, re-asks, replans, the first plan."""

    def __init__(self) -> None:
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reasks = 0
        self.replans = 0
        self.first_plan: Plan | None = None

    def __call__(self, event: Event) -> None:
        match event.data:
            case LLMCall(usage=usage, purpose=purpose):
                self.calls += 1
                self.prompt_tokens += usage.prompt_tokens
                self.completion_tokens += usage.completion_tokens
                if purpose == "repair" and self.first_plan is None:
                    self.reasks += 1
                elif purpose == "replan":
                    self.replans += 1
            case PlanCreated(plan=plan) if self.first_plan is None:
                self.first_plan = plan


@contextlib.contextmanager
def _workspace(goal: Goal) -> Iterator[None]:
    """A temporary directory holding the goal's files, where its file and data tools work."""
    # tooldag.packs is the tools/ folder, installed as a package of its own: found at run time,
    # as --tools finds the packs.
    packs_common: Any = importlib.import_module("tooldag.packs._common")
    with tempfile.TemporaryDirectory(prefix="tooldag-eval-") as tmp:
        root = Path(tmp)
        build_workspace(root, goal.files)
        with packs_common.using_workspace(root):
            yield


def _sending_step(goal: Goal, plan: Plan, allow_egress: bool) -> str | None:
    """Why ``plan`` may not run in an evaluation, or None."""
    for step in plan.steps:
        if step.tool not in goal.registry:
            continue
        t = goal.registry.get(step.tool)
        if t.egress and (t.side_effects or not allow_egress):
            what = "acts on the world" if t.side_effects else "fetches from the network"
            hint = "" if t.side_effects else " (--allow-egress lets it)"
            return (
                f"step {step.id!r} calls {t.name}, which sends data off the machine and {what}; "
                f"an evaluation never does{hint}"
            )
    return None


def _last_reply_plan(exc: PlanRejected) -> Plan | None:
    try:
        return parse_plan(exc.last_text) if exc.last_text.strip() else None
    except PlanParseError:
        return None


async def _plan_only(goal: Goal, llm: LLMClient, options: EvalOptions, bus: EventBus) -> str:
    planner = Planner(
        goal.registry,
        llm,
        max_reasks=options.max_reasks,
        mode=options.mode,
        bus=bus,
        meter=UsageMeter(),
        run_id=uuid.uuid4().hex[:12],
    )
    await planner.plan(goal.goal)
    return "planned"


async def run_goal(goal: Goal, llm: LLMClient, options: EvalOptions) -> GoalOutcome:
    """Plan (and, unless it is planned only, run) one goal; never raises for what the goal does."""
    recorder = _Recorder()
    bus = EventBus()
    bus.subscribe(recorder)
    refusal: list[str] = []
    result: RunResult | None = None
    rejected: Plan | None = None
    error: str | None = None
    started = time.perf_counter()

    def approve(plan: Plan) -> bool:
        why = _sending_step(goal, plan, options.allow_egress)
        if why is not None:
            refusal.append(why)
        return why is None

    try:
        async with asyncio.timeout(options.timeout) as scope:
            try:
                with _workspace(goal):
                    if not goal.execute:
                        status = await _plan_only(goal, llm, options, bus)
                    else:
                        result = await aplan_and_run(
                            goal.goal,
                            tools=goal.registry,
                            llm=llm,
                            max_replans=options.max_replans,
                            max_reasks=options.max_reasks,
                            mode=options.mode,
                            approve=approve,
                            bus=bus,
                        )
                        status = result.status.value
                        error = result.error
            except PlanRejected as exc:
                status, error = "no_plan", str(exc)
                rejected = _last_reply_plan(exc)
    except TimeoutError:
        if not scope.expired():
            raise
        status, error = "timeout", f"took longer than the {options.timeout:g}s timeout"
    except LLMError as exc:
        status, error = "error", str(exc)
    except TooldagError as exc:  # e.g. the goal's workspace could not be built
        status, error = "error", str(exc)
    latency = time.perf_counter() - started
    if refusal and result is not None and result.status is RunStatus.REJECTED:
        status, error = "refused", refusal[0]
    predicted = recorder.first_plan or rejected
    answer = result.answer if result is not None else None
    return GoalOutcome(
        id=goal.id,
        goal=goal.goal,
        status=status,
        executed=goal.execute,
        valid_first=recorder.first_plan is not None and recorder.reasks == 0,
        valid=recorder.first_plan is not None,
        reasks=recorder.reasks,
        replans=recorder.replans,
        answer=answer,
        expected=goal.answer.describe() if goal.answer is not None else None,
        answer_correct=(
            check_answer(goal.answer, answer) if goal.answer is not None and goal.execute else None
        ),
        node=node_counts(predicted, goal.plan) if goal.plan is not None else None,
        edge=edge_counts(predicted, goal.plan) if goal.plan is not None else None,
        args=argument_counts(predicted, goal.calls) if goal.calls is not None else None,
        llm_calls=recorder.calls,
        prompt_tokens=recorder.prompt_tokens,
        completion_tokens=recorder.completion_tokens,
        latency=latency,
        error=error,
        plan=predicted.to_json() if predicted is not None else None,
        tags=list(goal.tags),
    )


async def aevaluate(
    goals: Sequence[Goal],
    llm: LLMSpec = None,
    options: EvalOptions | None = None,
    *,
    on_goal: Callable[[GoalOutcome], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> EvalResult:
    """Run every goal (at most ``options.concurrency`` at once); the outcomes in goal order.

    ``on_goal`` is told of each outcome as it comes (progress). ``llm`` is resolved as
    :func:`~tooldag.plan_and_run` does; a client passed in is left open for the caller.
    """
    options = options or EvalOptions()
    client = resolve_llm(llm)
    slots = asyncio.Semaphore(options.concurrency)
    started = time.time()

    async def one(goal: Goal) -> GoalOutcome:
        async with slots:
            outcome = await run_goal(goal, client, options)
        if on_goal is not None:
            on_goal(outcome)
        return outcome

    try:
        outcomes = list(await asyncio.gather(*(one(g) for g in goals)))
    finally:
        if client is not llm:
            await client.aclose()
    info = {
        "model": client.model,
        "base_url": client.base_url,
        "started_at": started,
        "duration": time.time() - started,
        "options": asdict(options),
        **(meta or {}),
    }
    return EvalResult(outcomes, info)


def evaluate(
    goals: Sequence[Goal],
    llm: LLMSpec = None,
    options: EvalOptions | None = None,
    **kwargs: Any,
) -> EvalResult:
    """The sync form of :func:`aevaluate`; safe inside a running loop (Jupyter)."""
    return run_sync(aevaluate(goals, llm, options, **kwargs))
