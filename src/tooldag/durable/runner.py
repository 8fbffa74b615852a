"""Durable runs: start, resume, pause and cancel runs whose every step is journalled in a RunStore.

This is the seed's ``StatefulWorkflowExecutor`` contract on top of
:class:`~tooldag.execution.executor.Executor` and :class:`~tooldag.durable.store.RunStore`:

- ``start(run_id, plan)`` runs a plan under an id. Starting an id that is running (in any live
  process) or completed raises :class:`RunStateError`; an id that failed, paused, was interrupted
  or cancelled is continued with the plan given (steps unchanged since, whose inputs are
  unchanged too, are reused: see :func:`~tooldag.plan.reuse.reusable_outputs`).
- ``resume(run_id)`` continues a failed, paused or interrupted run with its latest plan: completed
  steps are not executed again (their outputs come from the store), failed steps are retried, and
  the step that was in flight when a process died runs again (at-least-once: tools get an
  idempotency key, ``ToolContext.idempotency_key``, to make that harmless).
- ``pause(run_id)`` stops starting steps, lets running ones finish, and persists ``paused``.
- ``cancel_workflow(run_id)`` compensates the succeeded steps (saga) and persists ``cancelled``.
- ``get_state(run_id)`` is the run as stored (a :class:`RunResult`), or ``None``.

A step that a gate refused (``Executor(gate=...)``, the approval of ``tooldag chat``) is
journalled ``skipped`` as not approved; a resume or a later start does not quietly run it: the
runner's gate (``DurableExecutor(registry, gate=...)``) is asked again, and without one it is
refused again.

Only a cancel undoes anything here: a failed run is left as it is, to be resumed (cancel it to
undo its effects). A run going in this process is started with ``compensate={cancelled}``, so a
cancel undoes its steps, reused ones included, before its ``run_finished``; a stopped run is
compensated from what the store holds, and this runner emits the ``run_finished`` that ends it.

>>> from tooldag import ToolRegistry, tool
>>> @tool
... def add(x: int, y: int) -> int:
...     return x + y
>>> runs = DurableExecutor(ToolRegistry([add]), store=RunStore(":memory:"))
>>> plan = Plan.model_validate({"steps": [{"id": "a", "tool": "add", "args": {"x": 1, "y": 2}}]})
>>> runs.start("demo", plan).outputs
{'a': 3}
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from .._sync import run_sync
from ..errors import RunStateError
from ..execution.executor import Executor, RunHandle
from ..execution.gate import refused_steps
from ..execution.outcome import finished_event
from ..execution.saga import Ledger
from ..plan.model import Plan
from ..plan.reuse import reusable_outputs
from ..registry.registry import ToolRegistry
from ..result import RunResult, RunStatus
from .store import RunStore

__all__ = ["DurableExecutor", "StatefulWorkflowExecutor", "aresume", "resume"]

# What each operation accepts, besides a run that does not exist yet (start only).
_RESUMABLE = frozenset(s for s in RunStatus if s.resumable)
_STARTABLE = _RESUMABLE | {RunStatus.CANCELLED, RunStatus.REJECTED, RunStatus.BUDGET_EXCEEDED}
_CANCELLABLE = _RESUMABLE | {RunStatus.BUDGET_EXCEEDED}


class DurableExecutor:
    """Runs plans under run ids, journalled in ``store`` (default: :class:`RunStore` at its default
    path). ``executor_options`` go to :class:`Executor` (``max_concurrency``, ``bus``, ...).

    The async methods (``astart``, ``aresume``, ``acancel_workflow``) are the core; ``start``,
    ``resume`` and ``cancel_workflow`` are their blocking forms, usable in Jupyter too.
    ``pause`` and ``cancel_workflow`` may be called from any thread while a run is going.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        store: RunStore | None = None,
        **executor_options: Any,
    ) -> None:
        self.registry = registry
        self.store = store if store is not None else RunStore()
        self.executor = Executor(registry, **executor_options)
        # One subscription for the executor's bus, however many runs go through it.
        self._detach = self.store.attach(self.executor.bus)
        self._handles: dict[str, tuple[RunHandle, concurrent.futures.Future[RunResult]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop journalling this executor's events (the store stays open)."""
        self._detach()

    # -- running
    async def astart(self, run_id: str, plan: Plan) -> RunResult:
        """Run ``plan`` as ``run_id`` (see the module docstring for which ids are allowed)."""
        previous = self.store.plans(run_id)
        self.store.claim(run_id, plan=plan, allow=_STARTABLE)
        reuse = reusable_outputs(
            previous=previous[-1] if previous else None, plan=plan, outputs=self._outputs(run_id)
        )
        return await self._execute(run_id, plan, reuse)

    async def aresume(self, run_id: str) -> RunResult:
        """Continue a failed, paused or interrupted run with its latest plan."""
        self.store.claim(run_id, allow=_RESUMABLE)
        return await self.acontinue(run_id)

    async def acontinue(self, run_id: str) -> RunResult:
        """Run ``run_id``, which this process has just claimed (:meth:`RunStore.claim`,
        :meth:`RunStore.claim_next`), with its latest plan: its completed steps are reused."""
        plans = self.store.plans(run_id)
        if not plans:
            self.store.release(run_id)
            raise RunStateError(
                f"run {run_id} has no stored plan, so there is nothing to resume; start it "
                "again with a plan",
                run_id=run_id,
            )
        plan = plans[-1]
        reuse = reusable_outputs(previous=plan, plan=plan, outputs=self._outputs(run_id))
        return await self._execute(run_id, plan, reuse)

    def _outputs(self, run_id: str) -> dict[str, Any]:
        return self.store.completed_outputs(run_id)

    async def _execute(self, run_id: str, plan: Plan, reuse: dict[str, Any]) -> RunResult:
        # The future lets a canceller on another thread or loop wait for the outcome.
        done: concurrent.futures.Future[RunResult] = concurrent.futures.Future()
        try:
            refused = refused_steps(self.store.load_result(run_id).steps)
            try:
                # Rejected: a gate aborted the run, which is then undone as a cancelled one.
                handle = self.executor.start(
                    plan,
                    run_id=run_id,
                    reuse=reuse,
                    compensate={RunStatus.CANCELLED, RunStatus.REJECTED},
                    refused=refused,
                )
            except Exception as exc:  # a plan the executor refuses (cycle, duplicate ids)
                self.store.set_status(run_id, RunStatus.FAILED, error=str(exc))
                raise
            with self._lock:
                self._handles[run_id] = (handle, done)
            result = await handle.wait()
            done.set_result(result)
            return result
        except BaseException as exc:
            done.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._handles.pop(run_id, None)
            self.store.release(run_id)

    def start(self, run_id: str, plan: Plan) -> RunResult:
        """Blocking :meth:`astart`."""
        return run_sync(self.astart(run_id, plan))

    def resume(self, run_id: str) -> RunResult:
        """Blocking :meth:`aresume`."""
        return run_sync(self.aresume(run_id))

    # -- steering
    def _active(self, run_id: str) -> tuple[RunHandle, concurrent.futures.Future[RunResult]] | None:
        with self._lock:
            return self._handles.get(run_id)

    def pause(self, run_id: str) -> None:
        """Stop starting new steps of ``run_id``; running ones finish; the run ends ``paused``."""
        active = self._active(run_id)
        if active is None:
            raise RunStateError(
                f"run {run_id} is not running in this process, so it cannot be paused here; "
                "pause it where it runs",
                run_id=run_id,
            )
        active[0].pause()

    async def acancel_workflow(self, run_id: str) -> RunResult:
        """Cancel ``run_id``: compensate its succeeded steps, then persist ``cancelled``.

        A run going in this process is cancelled through its executor and awaited; a stopped one
        (failed, paused, interrupted) is compensated here from what the store holds.
        """
        active = self._active(run_id)
        if active is not None:
            active[0].cancel()
            return await asyncio.wrap_future(active[1])
        try:
            self.store.claim(run_id, allow=_CANCELLABLE)
        except RunStateError as exc:
            info = self.store.get_run(run_id)
            if info is not None and info.status is RunStatus.RUNNING:
                raise RunStateError(
                    f"run {run_id} is running in process {info.owner_pid} on {info.owner_host}: "
                    "stop it there (Ctrl-C cancels and compensates), or kill it and cancel again",
                    run_id=run_id,
                ) from None
            raise exc from None
        try:
            ledger = Ledger(run_id, self.executor.options)
            ledger.record(self.store.load_result(run_id))
            report = await ledger.compensate()
            # No execution drives this run: ending it is this runner's to say.
            end = finished_event(
                run_id, RunStatus.CANCELLED, answer=None, error=report.error, final=True
            )
            self.executor.bus.emit(end)
        finally:
            self.store.release(run_id)
        return self.store.load_result(run_id)

    def cancel_workflow(self, run_id: str) -> RunResult:
        """Blocking :meth:`acancel_workflow`. From the thread whose loop runs the run, await
        :meth:`acancel_workflow` instead: blocking there would stop the run from finishing."""
        return run_sync(self.acancel_workflow(run_id))

    def get_state(self, run_id: str) -> RunResult | None:
        """The run as stored, or ``None`` for an unknown id."""
        if self.store.get_run(run_id) is None:
            return None
        return self.store.load_result(run_id)


StatefulWorkflowExecutor = DurableExecutor
"""The seed's name for :class:`DurableExecutor`."""


async def aresume(
    run_id: str, registry: ToolRegistry, store: RunStore | None = None, **executor_options: Any
) -> RunResult:
    """Continue a failed, paused or interrupted run (see :meth:`DurableExecutor.aresume`); ``store``
    defaults to the store at :func:`~tooldag.durable.store.default_store_path`."""
    own = store is None
    runner = DurableExecutor(registry, store=store, **executor_options)
    try:
        return await runner.aresume(run_id)
    finally:
        runner.close()
        if own:
            runner.store.close()


def resume(
    run_id: str, registry: ToolRegistry, store: RunStore | None = None, **executor_options: Any
) -> RunResult:
    """Blocking :func:`aresume`: ``resume("run-id", registry)`` picks up a crashed run."""
    return run_sync(aresume(run_id, registry, store, **executor_options))
