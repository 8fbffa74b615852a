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
- A run that ends failed or cancelled is compensated (saga: succeeded steps whose tool declares
  ``compensate``, in reverse completion order) unless ``compensate_on_failure=False`` (a caller that
  may replan turns it off and calls :meth:`Executor.compensate` when it gives up).
- Outputs become JSON values (pydantic converts models, dataclasses, datetimes...); an output that
  cannot, or that is larger than ``max_output_bytes``, fails its step.
- Cancelling cancels running async tools; a sync tool in its thread is left to finish and its
  result is discarded (Python cannot stop a thread: the process waits for it on exit).
- Write-ahead: if a critical event subscriber (the run store) raises, the step is not counted as
  done and the run stops, failed, saying that the journal failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .._sync import run_sync
from ..errors import RunStateError
from ..events import EventBus
from ..plan.model import Plan
from ..registry.registry import ToolRegistry
from ..result import RunResult
from .invoke import Invoker
from .options import RunOptions
from .outcome import render_answer
from .run import Run
from .saga import compensate_records

__all__ = ["Executor", "RunHandle", "render_answer", "run_plan"]


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

    def cancel(self) -> None:
        """Start nothing new, cancel running steps, compensate, end ``cancelled``. Idempotent."""
        self._call(self._run.request_cancel)

    def pause(self) -> None:
        """Start nothing new and let running steps finish; the run ends ``paused`` (resume it by
        running the plan again with ``reuse=`` the outputs so far)."""
        self._call(self._run.request_pause)

    def done(self) -> bool:
        return self._task.done()

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
        compensate_on_failure: bool = True,
        max_output_bytes: int = 10_000_000,
    ) -> None:
        self.options = RunOptions(
            registry=registry,
            bus=bus if bus is not None else EventBus(),
            max_concurrency=max_concurrency,
            tool_limits=tool_limits or {},
            fail_fast=fail_fast,
            default_timeout=default_timeout,
            max_output_bytes=max_output_bytes,
        )
        self.compensate_on_failure = compensate_on_failure

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
        final: bool = True,
    ) -> RunHandle:
        """Start running ``plan`` on the running loop and return at once.

        ``reuse`` maps step ids to outputs of steps completed before (a resume, a replan): they are
        not run again and count as succeeded. ``final=False`` says that more may follow under the
        same run id (a caller that may replan): the ``run_finished`` event then carries
        ``final: false`` and the caller emits the run's final one. Raises PlanInvalidError for
        duplicate ids or a cycle.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RunStateError(
                "Executor.start() needs a running event loop; from sync code use run_plan()"
            ) from None
        run = Run(
            self.options,
            plan,
            run_id or uuid.uuid4().hex[:12],
            reuse,
            final=final,
            compensate=self.compensate_on_failure,
        )
        task = loop.create_task(run.main(), name=f"tooldag-run-{run.run_id}")
        return RunHandle(run, task, loop)

    async def run(
        self,
        plan: Plan,
        *,
        run_id: str | None = None,
        reuse: Mapping[str, Any] | None = None,
        final: bool = True,
    ) -> RunResult:
        """Run ``plan`` to the end (``final`` as in :meth:`start`). Cancelling the caller cancels
        the run (with compensation)."""
        handle = self.start(plan, run_id=run_id, reuse=reuse, final=final)
        try:
            return await handle.wait()
        except asyncio.CancelledError:
            handle.cancel()
            with contextlib.suppress(Exception):
                await handle.wait()
            raise

    async def compensate(self, result: RunResult) -> RunResult:
        """Undo ``result``'s succeeded steps (saga), last finished first; a copy of the result with
        those steps ``compensated``. A compensation that fails is recorded on its step (``error``)
        and in the result's ``error``, and emitted as ``step_compensation_failed``."""
        steps = {sid: record.model_copy() for sid, record in result.steps.items()}
        invoker = Invoker(max_workers=1, max_output_bytes=self.options.max_output_bytes)
        try:
            failures = await compensate_records(
                self.registry,
                self.bus,
                result.run_id,
                steps,
                invoker,
                default_timeout=self.options.default_timeout,
            )
        finally:
            invoker.close()
        error = "; ".join(p for p in (result.error, *failures) if p) or None
        return result.model_copy(update={"steps": steps, "error": error})


def run_plan(
    plan: Plan,
    registry: ToolRegistry,
    *,
    run_id: str | None = None,
    reuse: Mapping[str, Any] | None = None,
    **executor_options: Any,
) -> RunResult:
    """Run ``plan`` from sync code: a plain script, or a Jupyter cell (a running loop), where the
    run happens on a helper thread's own loop and event callbacks are called on that thread."""
    executor = Executor(registry, **executor_options)
    return run_sync(executor.run(plan, run_id=run_id, reuse=reuse))
