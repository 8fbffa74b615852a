"""Where one tool call runs: the step-runner interface, and its default, in this process.

A :class:`StepRunner` carries out one call of one tool, and nothing else: it **submits** the call
(:meth:`~StepRunner.submit`, on the event loop, returning at once), **awaits** its raw output
(:meth:`~StepRunner.result`) and **cancels** it (:meth:`~StepRunner.cancel`); ``await
runner.run(call)`` does all three, cancelling the call when the awaiting task is cancelled (a
timeout, a cancelled run). Everything else stays in the driver, the process that runs the
executor: the scheduler, timeouts, retries (a new submission, with a new key, per attempt),
compensation, the journal and the events. A runner is shared by the runs of an executor and
outlives them; its owner closes it.

:class:`LocalRunner` is today's behaviour and the default: async tools are awaited on the event
loop, sync tools run in a thread pool of daemon threads (:mod:`~tooldag.execution.threads`).
:class:`~tooldag.execution.dask_runner.DaskRunner` sends calls to a Dask cluster.

Per tool, ``@tool(runner=...)`` (metadata ``placement``) says where its calls go: ``"local"``
keeps them in the driver whatever the executor's runner (tools that read or write the driver's
files); the name of a runner (``"dask"``) sends them there when the executor has that runner, and
runs them locally when it has not; a tool that says nothing goes to the executor's runner.

>>> from tooldag import Executor, tool
>>> @tool(runner="local")
... def read_config(path: str) -> str: ...
>>> executor = Executor(registry, runner=DaskRunner("local:2"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from ..registry.registry import Tool
from .threads import DaemonThreadPool

__all__ = ["LOCAL", "LocalRunner", "StepRunner", "ToolCall", "choose_runner"]

LOCAL = "local"
"""The placement that keeps a tool's calls in the driver process."""

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One attempt of one step: the tool, its validated arguments (with the
    :class:`~tooldag.registry.ToolContext` when the tool asks for one), and where it belongs."""

    tool: Tool
    kwargs: Mapping[str, Any]
    run_id: str
    step_id: str
    attempt: int
    max_output_bytes: int
    """The journal's cap on the output as JSON: a runner that can, refuses larger outputs where
    the call ran, before they cross the network."""

    @property
    def key(self) -> str:
        """``<tool>-<run>-<step>-<attempt>``: unique per (run, step, attempt)."""
        return f"{self.tool.name}-{self.run_id}-{self.step_id}-{self.attempt}"


class StepRunner(ABC, Generic[H]):
    """Carries out tool calls: submit, await, cancel (see the module docstring).

    ``name`` is what ``@tool(runner=...)`` names to send a tool's calls to this kind of runner.
    """

    name: ClassVar[str]

    @abstractmethod
    def submit(self, call: ToolCall) -> H:
        """Start ``call`` (on the running event loop) and return a handle to it at once."""

    @abstractmethod
    async def result(self, handle: H) -> Any:
        """The call's raw output (the executor turns it into JSON); its exception if it failed."""

    @abstractmethod
    def cancel(self, handle: H) -> None:
        """Ask the call to stop. Cooperative: what cannot be interrupted (a sync tool in a thread,
        a task running on a Dask worker) runs on, and its result is discarded."""

    async def run(self, call: ToolCall) -> Any:
        """Submit ``call`` and await it; cancelling the awaiting task cancels the call."""
        handle = self.submit(call)
        try:
            return await self.result(handle)
        except asyncio.CancelledError:
            self.cancel(handle)
            raise

    def close(self) -> None:
        """Release what the runner holds (threads, connections); the default holds nothing."""
        return None


class LocalRunner(StepRunner["Awaitable[Any]"]):
    """Calls tools in this process: async tools on the loop, sync tools on daemon threads (at most
    ``max_workers`` at once). ``close()`` lets running threads finish on their own."""

    name = LOCAL

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._pool: DaemonThreadPool | None = None
        self._is_async: dict[str, bool] = {}

    def start(self, tool: Tool, kwargs: Mapping[str, Any]) -> Awaitable[Any]:
        """:meth:`submit` without a :class:`ToolCall`: the executor's fast path."""
        func = tool.function
        assert func is not None  # the executor fails schema-only tools before they get here
        is_async = self._is_async.get(tool.name)
        if is_async is None:
            # inspect.iscoroutinefunction costs a microsecond: once per tool, not per call.
            is_async = self._is_async[tool.name] = tool.is_async
        if is_async:
            coro: Awaitable[Any] = func(**kwargs)
            return coro
        if self._pool is None:
            self._pool = DaemonThreadPool(self._max_workers)
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(ctx.run, func, **kwargs)
        )

    def submit(self, call: ToolCall) -> Awaitable[Any]:
        return self.start(call.tool, call.kwargs)

    async def result(self, handle: Awaitable[Any]) -> Any:
        return await handle

    def cancel(self, handle: Awaitable[Any]) -> None:
        # A coroutine is cancelled with the task that awaits it; a thread's future only if its
        # call has not started (a running thread cannot be stopped).
        if isinstance(handle, asyncio.Future):
            handle.cancel()

    def close(self) -> None:
        if self._pool is not None:
            # Threads of timed-out or cancelled sync tools are left to finish on their own.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def choose_runner(
    tool: Tool, local: LocalRunner, runner: StepRunner[Any] | None
) -> StepRunner[Any]:
    """Where ``tool``'s calls go, given the executor's ``runner`` (see the module docstring)."""
    if runner is None:
        return local
    placement = tool.placement
    if placement is None or placement == runner.name:
        return runner
    return local
