"""The executor: runs a plan's steps the moment their inputs exist, in parallel, and reports every
transition as an event.

Scheduling is event-driven (:mod:`tooldag.execution.run`): a step starts the moment its last
dependency finishes, within a global and per-tool concurrency limit; :mod:`tooldag.execution.invoke`
calls the tools (thread pool for sync ones, timeouts, tenacity retries of transient errors) and
:mod:`tooldag.execution.saga` undoes what an abandoned run did.

>>> from tooldag import Plan, ToolRegistry, tool
>>> @tool
... def add(a: int, b: int) -> int:
...     return a + b
>>> plan = Plan.model_validate({"steps": [
...     {"id": "x", "tool": "add", "args": {"a": 1, "b": 2}},
...     {"id": "y", "tool": "add", "args": {"a": "$x", "b": 10}}], "answer": "y = ${y}"})
>>> run_plan(plan, ToolRegistry([add])).answer
'y = 13'

Rules worth knowing:

- ``when`` is evaluated when the step becomes ready; false -> ``skipped``. A step that reads a
  skipped step's output (in its arguments or its ``when``) is skipped too; one that only lists it
  in ``depends_on`` runs.
- A failed, blocked or cancelled step blocks every step that waits for it (references or
  ``depends_on``); independent branches run on unless ``fail_fast``.
- The scheduler never compensates; the caller decides (saga: succeeded steps whose tool declares
  ``compensate``, undone last finished first). By default a run that ends failed, cancelled or
  rejected (a gate aborted it) is compensated before it reports its end; ``compensate=`` names
  other end statuses (``False``: none). A caller that may go on after a failure (a replan)
  passes its own :class:`~tooldag.execution.saga.Ledger` with ``compensate=False``, and
  compensates the ledger when it gives up.
- ``gate=`` (:mod:`tooldag.execution.gate`) is asked about each step just before it runs, with
  its resolved arguments: it may let it run, skip it (and what waits for it) or abort the run,
  which then ends ``rejected``.
- Each execution emits one ``run_finished``, after its compensation; ``final=False`` marks it as
  not the run's last (the caller that drives the run emits that one).
- Outputs become JSON values (pydantic converts models, dataclasses, datetimes...); an output that
  cannot, or that is larger than ``max_output_bytes``, fails its step.
- Cancelling cancels running async tools; a sync tool in its thread is left to finish and its
  result is discarded (Python cannot stop a thread; it does not hold up the exit of the process,
  see :mod:`tooldag.execution.runners`).
- Write-ahead: if a critical event subscriber (the run store) raises, the step is not counted as
  done and the run stops, failed, saying that the journal failed.
- ``runner=`` sends tool calls elsewhere (a :class:`~tooldag.execution.dask_runner.DaskRunner`);
  the scheduling, retries, timeouts, compensation, events and journal stay here. See
  :mod:`~tooldag.execution.runners`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeAlias

from .._sync import run_sync
from ..errors import ConfigError, RunStateError
from ..events import EventBus
from ..plan.model import Plan, Step
from ..plan.parse import _pause_gc, _resume_gc
from ..registry.registry import ToolRegistry
from ..result import RunResult, RunStatus, StepRecord, records_from_attributes
from .gate import Gate
from .options import RunOptions
from .outcome import finished_event, render_answer
from .run import Run
from .runners import StepRunner
from .saga import Ledger
from .scope import in_run_scope

__all__ = ["ABANDONED", "CompensateWhen", "Executor", "RunHandle", "render_answer", "run_plan"]

log = logging.getLogger("tooldag.executor")

ABANDONED = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.REJECTED})
"""The end statuses after which a run is compensated by default (``compensate=True``)."""

CompensateWhen: TypeAlias = "bool | Collection[RunStatus | str]"
"""``compensate=``: ``True`` (failed, cancelled or rejected), ``False`` (never), or the end
statuses."""


def _statuses(compensate: CompensateWhen) -> frozenset[RunStatus]:
    if isinstance(compensate, bool):
        return ABANDONED if compensate else frozenset()
    try:
        return frozenset(RunStatus(s) for s in compensate)
    except (TypeError, ValueError):
        raise ConfigError(
            f"compensate= takes True, False or run statuses (e.g. {{'cancelled'}}), "
            f"not {compensate!r}"
        ) from None


class RunHandle:
    """A run started with :meth:`Executor.start`: cancel or pause it (from any thread), await it."""

    def __init__(
        self, run: Run, task: asyncio.Task[RunResult], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.run_id = run.run_id
        self._run = run
        self._task = task
        self._loop = loop

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {'done' if self._task.done() else 'running'}>"

    def _call(self, action: Callable[[], None]) -> None:
        # Always through the loop's queue, also from the loop's own thread: called from inside a
        # step's task (a tool cancelling its run), acting at once would spare that very task.
        # A closed loop means the run is over: cancelling it is then a no-op.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(action)
            # A worker running steps back to back lets the loop run before its next step.
            self._run.attention = True

    def cancel(self) -> None:
        """Start nothing new, cancel running steps, end ``cancelled`` (compensated first unless
        the run was started with a ``compensate=`` that leaves cancelled runs alone). Idempotent."""
        self._call(self._run.request_cancel)

    def pause(self) -> None:
        """Start nothing new and let running steps finish; the run ends ``paused`` (resume it by
        running the plan again with ``reuse=`` the outputs so far)."""
        self._call(self._run.request_pause)

    def done(self) -> bool:
        return self._task.done()

    @property
    def sealed(self) -> bool:
        """Every step of the run's plan has been given (always, unless started open)."""
        return self._run.sealed

    def extend(self, steps: Iterable[Step], reuse: Mapping[str, Any] | None = None) -> None:
        """Give an open run (:meth:`Executor.start` with ``sealed=False``) more steps, and
        ``reuse`` outputs (of these or of completed steps they reference): each starts as soon
        as its inputs exist. Call it on the run's loop. Raises PlanInvalidError for a duplicate
        id or a cycle, RunStateError once the run is sealed."""
        self._on_loop()
        if self._run.sealed or self._run.finishing:
            why = "sealed" if self._run.sealed else "over (it was stopped)"
            raise RunStateError(
                f"run {self.run_id} is {why}: it takes no more steps", run_id=self.run_id
            )
        self._run.add(steps, reuse)

    def seal(self, plan: Plan | None = None, reuse: Mapping[str, Any] | None = None) -> None:
        """Tell an open run that no more steps will come; with ``plan`` (the complete plan: the
        steps given so far must be its steps as they are), its other steps are added first, with
        ``reuse``. The run ends once every step has. Call it on the run's loop; idempotent.
        Raises PlanInvalidError if the plan changed a step given before."""
        self._on_loop()
        self._run.seal(plan, reuse)

    async def settle(self) -> dict[str, StepRecord]:
        """Wait until nothing of the run runs or is ready to start (for an open run: every step
        given so far has finished, or the run stopped); the records of its steps so far."""
        self._on_loop()
        await self._run.quiet.wait()
        return records_from_attributes(self._run.states)

    def _on_loop(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise RunStateError(
                "an open run takes steps on its own event loop only", run_id=self.run_id
            )

    async def wait(self) -> RunResult:
        """The result (awaiting it again is fine; cancelling the waiter does not cancel the run)."""
        return await asyncio.shield(self._task)


class Executor:
    """Runs plans against a registry. One executor can run many plans, one after another or at
    the same time; ``bus`` carries the events of all of them (``Event.run_id`` tells them apart).
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        max_concurrency: int = 16,
        tool_limits: Mapping[str, int] | None = None,
        fail_fast: bool = False,
        default_timeout: float | None = 60.0,
        bus: EventBus | None = None,
        max_output_bytes: int = 10_000_000,
        gate: Gate | None = None,
        runner: StepRunner[Any] | None = None,
    ) -> None:
        self.options = RunOptions(
            registry=registry,
            bus=bus if bus is not None else EventBus(),
            max_concurrency=max_concurrency,
            tool_limits=tool_limits or {},
            fail_fast=fail_fast,
            default_timeout=default_timeout,
            max_output_bytes=max_output_bytes,
            gate=gate,
            runner=runner,
        )

    @property
    def registry(self) -> ToolRegistry:
        return self.options.registry

    @property
    def bus(self) -> EventBus:
        """Carries the events of every run of this executor."""
        return self.options.bus

    def start(
        self,
        plan: Plan,
        *,
        run_id: str | None = None,
        reuse: Mapping[str, Any] | None = None,
        compensate: CompensateWhen = True,
        ledger: Ledger | None = None,
        final: bool = True,
        refused: Collection[str] = (),
        sealed: bool = True,
    ) -> RunHandle:
        """Start running ``plan`` on the running loop and return at once.

        ``reuse`` maps step ids to outputs of steps completed before (a resume, a replan): they are
        not run again and count as succeeded. What the run did is recorded on ``ledger`` (by
        default one of its own; the run id defaults to the ledger's), and when the run ends in a
        status that ``compensate`` names the ledger is compensated before the run reports its
        end. ``final=False`` says that more may follow under the same run id (a caller that may
        replan): the ``run_finished`` event's :attr:`~tooldag.events.RunFinished.final` is then
        false and the caller emits the run's final one. ``refused`` names steps a gate refused
        in an earlier execution (:func:`~tooldag.execution.gate.refused_steps`): the gate is
        asked about them again, and without a gate they are refused again. ``sealed=False``
        starts the run *open*: ``plan`` may be only its first steps (or none), more come through
        :meth:`RunHandle.extend` and the rest with :meth:`RunHandle.seal`, and the run does not
        end before it is sealed; it emits ``run_started`` with its first steps, without a plan
        (a streamed plan's steps start while the LLM still writes it). Raises PlanInvalidError
        for duplicate ids or a cycle.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RunStateError(
                "Executor.start() needs a running event loop; from sync code use run_plan()"
            ) from None
        run_id = run_id or (ledger.run_id if ledger is not None else uuid.uuid4().hex[:12])
        if ledger is None:
            ledger = Ledger(run_id, self.options)
        elif ledger.run_id != run_id:
            raise ConfigError(f"the ledger is run {ledger.run_id}'s, not run {run_id}'s")
        # As parse_plan does: the run's tables are many small objects and no cycles, which the
        # collector would rescan (the whole heap, plan included) for nothing.
        was_enabled = _pause_gc()
        try:
            run = Run(self.options, plan, run_id, reuse, refused, sealed=sealed)
        finally:
            _resume_gc(was_enabled)
        driven = _drive(run, ledger, _statuses(compensate), final)
        # In a run scope: what its steps open (an MCP session per server) closes with it.
        task = loop.create_task(in_run_scope(driven), name=f"tooldag-run-{run.run_id}")
        return RunHandle(run, task, loop)

    async def run(
        self,
        plan: Plan,
        *,
        run_id: str | None = None,
        reuse: Mapping[str, Any] | None = None,
        compensate: CompensateWhen = True,
        ledger: Ledger | None = None,
        final: bool = True,
    ) -> RunResult:
        """Run ``plan`` to the end (the options as in :meth:`start`). Cancelling the caller
        cancels the run."""
        handle = self.start(
            plan, run_id=run_id, reuse=reuse, compensate=compensate, ledger=ledger, final=final
        )
        try:
            return await handle.wait()
        except asyncio.CancelledError:
            handle.cancel()
            with contextlib.suppress(Exception):
                await handle.wait()
            raise


async def _drive(
    run: Run, ledger: Ledger, compensate: frozenset[RunStatus], final: bool
) -> RunResult:
    """One execution, start to end: the run, its record on the ledger, the compensation its
    caller asked for, then its ``run_finished``."""
    result = await run.main()
    ledger.record(result)
    if result.status in compensate:
        report = await ledger.compensate()
        result = report.apply(result).model_copy(update={"finished_at": time.time()})
    event = finished_event(
        result.run_id,
        result.status,
        answer=result.answer,
        error=result.error,
        final=final,
        duration=result.duration,
    )
    try:
        run.bus.emit(event)
    except Exception:  # the journal: the run is over, there is nothing left to stop
        log.exception("run %s: could not record that it finished", result.run_id)
    if run.interrupted:
        raise asyncio.CancelledError
    return result


def run_plan(
    plan: Plan,
    registry: ToolRegistry,
    *,
    run_id: str | None = None,
    reuse: Mapping[str, Any] | None = None,
    compensate: CompensateWhen = True,
    **executor_options: Any,
) -> RunResult:
    """Run ``plan`` from sync code: a plain script, or a Jupyter cell (a running loop), where the
    run happens on a helper thread's own loop and event callbacks are called on that thread.
    A run that ends failed or cancelled is compensated unless ``compensate`` says otherwise."""
    executor = Executor(registry, **executor_options)
    return run_sync(executor.run(plan, run_id=run_id, reuse=reuse, compensate=compensate))
