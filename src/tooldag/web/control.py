"""The viewer's buttons: resume a stopped run here, cancel a run (compensating what it did).

A resume runs in the viewer's own process, on its event loop, journalled in the same store, so
the page follows it like any other run. A cancel reaches a run going in this process (one the
viewer resumed, or the ``tooldag exec --ui`` run it was started with) through its executor; a
stopped run is compensated from the store. A run going in another process cannot be reached
from here: the store says which process it is, and the refusal says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..durable.runner import DurableExecutor
from ..durable.store import RunStore
from ..errors import RunStateError, TooldagError
from ..registry.registry import ToolRegistry
from ..result import RunStatus

__all__ = ["Controls"]

log = logging.getLogger("tooldag.web")


class Controls:
    """Resume and cancel for the runs of ``store``. ``registry`` (a function, so that loading
    ``--tools`` files waits until a button needs them) gives the tools a resume or a
    compensation calls; ``runner`` and ``here`` are an executor already running runs in this
    process, and the ids of those runs."""

    def __init__(
        self,
        store: RunStore,
        registry: Callable[[], ToolRegistry] | None,
        *,
        runner: DurableExecutor | None = None,
        here: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self._registry = registry
        self._loaded: ToolRegistry | None = None
        self._runners: dict[str, DurableExecutor] = dict.fromkeys(here, runner) if runner else {}
        self._own: DurableExecutor | None = None
        self._tasks: dict[str, asyncio.Task[object]] = {}  # the resumes going on here

    def _tools(self) -> ToolRegistry:
        if self._registry is None:
            raise RunStateError(
                "this viewer has no tools to run steps with: start it with tooldag ui "
                "(--tools SPEC), or resume from the terminal"
            )
        if self._loaded is None:
            self._loaded = self._registry()
        return self._loaded

    def _runner(self) -> DurableExecutor:
        if self._own is None:
            self._own = DurableExecutor(self._tools(), store=self.store)
        return self._own

    async def resume(self, run_id: str) -> None:
        """Start resuming ``run_id`` in this process (it goes on after the request returns);
        :class:`RunStateError` when the run cannot be resumed."""
        info = self.store.get_run(run_id)
        if info is None:
            raise RunStateError(f"no run {run_id!r} in {self.store.path}", run_id=run_id)
        if not info.status.resumable:
            where = ""
            if info.status is RunStatus.RUNNING:
                where = f" (in process {info.owner_pid} on {info.owner_host})"
            raise RunStateError(
                f"run {run_id} is {info.status.value}{where}: only a failed, paused or "
                "interrupted run can be resumed",
                run_id=run_id,
            )
        runner = self._runner()
        task: asyncio.Task[object] = asyncio.create_task(runner.aresume(run_id))
        self._runners[run_id] = runner
        self._tasks[run_id] = task
        task.add_done_callback(self._done)
        # The task runs up to its first await before this returns: its claim of the run (the
        # first thing aresume does) has been made, or refused, by then.
        await asyncio.sleep(0)
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            raise exc if isinstance(exc, TooldagError) else RunStateError(str(exc))

    def _done(self, task: asyncio.Task[object]) -> None:
        for run_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[run_id]
        if not task.cancelled() and task.exception() is not None:
            log.warning("a resume from the viewer failed: %s", task.exception())

    async def cancel(self, run_id: str) -> RunStatus:
        """Cancel ``run_id`` and wait until it is compensated; its status then."""
        info = self.store.get_run(run_id)
        if info is None:
            raise RunStateError(f"no run {run_id!r} in {self.store.path}", run_id=run_id)
        runner = self._runners.get(run_id)
        if runner is None:
            if info.status is RunStatus.RUNNING:
                raise RunStateError(
                    f"run {run_id} is running in process {info.owner_pid} on "
                    f"{info.owner_host}, not in this viewer: stop it there (Ctrl-C cancels and "
                    "compensates)",
                    run_id=run_id,
                )
            runner = self._runner()
        result = await runner.acancel_workflow(run_id)
        return result.status

    async def close(self) -> None:
        """Cancel (and compensate) the resumes still going on here, as Ctrl-C in the terminal
        would: the viewer that runs them is going away. Then stop journalling through its
        executor."""
        for run_id in list(self._tasks):
            with contextlib.suppress(Exception):
                await self.cancel(run_id)
        if self._own is not None:
            self._own.close()
