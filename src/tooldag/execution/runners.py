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
loop, sync tools run in a :class:`DaemonThreadPool`, a pool whose threads never hold up the
process's exit. A sync tool that timed out or was cancelled cannot be stopped (Python cannot kill
a thread), so it is left running and its result discarded.
:class:`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, so
one tool stuck for ever (a read of a FIFO, a call with no timeout of its own) would keep ``tooldag
exec`` from exiting after its run ended. These threads are daemon threads: the process exits when
its work is done, and a tool still stuck then is abandoned with it. A tool that must not be cut
off mid-write should take a timeout of its own. The pool schedules as
:class:`~concurrent.futures.ThreadPoolExecutor` does: a call goes to an idle thread if there is
one, else to a new thread up to ``max_workers``, else waits its turn.
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
import concurrent.futures
import contextvars
import functools
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar

from ..registry.registry import Tool

__all__ = ["DaemonThreadPool", "LOCAL", "LocalRunner", "StepRunner", "ToolCall", "choose_runner"]

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


P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple["concurrent.futures.Future[Any]", Callable[[], Any]]


class DaemonThreadPool(concurrent.futures.Executor):
    """A thread pool (for ``loop.run_in_executor``) of up to ``max_workers`` daemon threads."""

    def __init__(self, max_workers: int, *, name: str = "tooldag-tool") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut = False

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot run a tool on a thread pool that was shut down")
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            # An idle thread takes it; otherwise start one, if the limit allows.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, call  # let the result go before waiting for more work
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; threads end once they finish what they run (``wait`` waits)."""
        with self._lock:
            self._shut = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


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
