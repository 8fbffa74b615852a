"""Calling one tool, once or a few times: the part of the executor that touches user code.

It owns what every call needs and nothing about the graph: each attempt goes to a step runner
(:mod:`~tooldag.execution.runners`: in this process, async tools awaited and sync tools in a thread
pool, unless the executor has a runner such as Dask's for the tool), each attempt has a timeout,
transient failures are retried with tenacity (exponential backoff with jitter), and what comes back
is turned into a JSON value or a clear error.

A sync tool cannot be interrupted: when its step times out or the run is cancelled, the thread is
left to finish and its result is discarded (Python offers no safe way to kill a thread).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic_core
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ..errors import PermanentToolError, ToolArgumentError, ToolError
from ..registry.registry import Tool, ToolContext
from ..result import StepError
from .runners import LocalRunner, StepRunner, ToolCall, choose_runner

__all__ = ["Invoker", "error_of", "is_transient", "normalise_output"]

_JSON_TYPES = frozenset({type(None), bool, int, float, str, list, dict})

# Called as each attempt starts; what it returns, when not None, is awaited before the tool runs.
AttemptHook = Callable[[int], Awaitable[None] | None]
RetryHook = Callable[[int, BaseException, float], None]


def is_transient(tool: Tool, exc: BaseException) -> bool:
    """Whether retrying ``exc`` may help: a tool's transient ToolError, a dropped connection, or a
    timeout of a tool that is safe to call twice (no side effects, or idempotent)."""
    if isinstance(exc, ToolError):
        return exc.transient
    if isinstance(exc, TimeoutError):
        return tool.idempotent or not tool.side_effects
    if isinstance(exc, ConnectionError):
        return True
    # Only an httpx error if httpx was imported; importing it here would cost every run.
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, httpx.TransportError)


def error_of(exc: BaseException, *, transient: bool = False) -> StepError:
    """A failure as a value (what records and events carry)."""
    message = str(exc) or repr(exc)
    return StepError(type=type(exc).__name__, message=message, transient=transient)


def _size_hint(value: Any) -> int:
    """A cheap lower bound of the JSON size: exact enough to skip serialising small scalars."""
    if value is None or isinstance(value, bool | int | float):
        return 32
    if isinstance(value, str):
        return len(value)
    return -1


def normalise_output(output: Any, *, tool: str, max_bytes: int) -> Any:
    """``output`` as plain JSON data (models, dataclasses, datetimes... converted by pydantic).

    Raises PermanentToolError when it cannot be converted or is larger than ``max_bytes`` as JSON.
    """
    try:
        value = pydantic_core.to_jsonable_python(output)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
        raise PermanentToolError(
            f"tool {tool!r} returned a {type(output).__name__}, which cannot be turned into JSON "
            f"({exc}); return dicts, lists, text, numbers, pydantic models or dataclasses"
        ) from None
    hint = _size_hint(value)
    # Text is at most 4 bytes a character in UTF-8 (+ quotes and escapes, bounded by 6x).
    if hint < 0 or hint * 6 + 2 > max_bytes:
        try:
            size = len(pydantic_core.to_json(value))
        except (pydantic_core.PydanticSerializationError, ValueError, RecursionError) as exc:
            raise PermanentToolError(
                f"tool {tool!r} returned a value that is not JSON: {exc}"
            ) from None
        if size > max_bytes:
            raise PermanentToolError(
                f"tool {tool!r} returned {size:,} bytes of JSON, more than the limit of "
                f"{max_bytes:,}; return a summary or a reference (a path, a URL), or raise "
                "max_output_bytes"
            )
    return value


class _Deadlines:
    """The timeouts of the calls of one invoker, on one timer of the event loop.

    ``asyncio.timeout`` around each call costs a Timeout and a TimerHandle in the loop's heap
    (about 5 us, as much as the rest of a no-op call); here a call costs a dict entry, and one
    handle is armed for the earliest deadline. When it fires, the calls past their deadline are
    cancelled, and each sees TimeoutError, exactly as under ``asyncio.timeout`` (whose rules
    this follows: a cancellation asked for by someone else as well stays a cancellation).
    The caller brackets its ``await`` with :meth:`start`, :meth:`expired` (on CancelledError)
    and :meth:`end`.
    """

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}  # the calls waiting, by their deadline
        self._expired: set[asyncio.Task[Any]] = set()  # cancelled for their deadline
        self._timer: asyncio.TimerHandle | None = None

    def start(self, timeout: float) -> tuple[asyncio.Task[Any], int]:
        """Give the current task's call ``timeout`` seconds; what :meth:`expired` and
        :meth:`end` take. (Methods, not a coroutine around the call: one less per step.)"""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._due[task] = deadline
        if self._timer is None or deadline < self._timer.when():
            self._arm(loop, deadline)
        return task, task.cancelling()

    def expired(self, started: tuple[asyncio.Task[Any], int], timeout: float, name: str) -> None:
        """Called on the call's CancelledError: raise TimeoutError if the deadline did it."""
        task, cancelling = started
        if task in self._expired:
            self._expired.discard(task)
            if task.uncancel() <= cancelling:  # no one else asked for this cancellation
                raise TimeoutError(
                    f"tool {name!r} did not finish within {timeout:g}s; raise the step's "
                    "'timeout' (or the tool's) if it needs longer"
                ) from None

    def end(self, started: tuple[asyncio.Task[Any], int]) -> None:
        """The call is over, however it ended."""
        task = started[0]
        self._due.pop(task, None)
        if task in self._expired:  # it expired as it ended some other way: take that back
            self._expired.discard(task)
            task.uncancel()

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire, loop, when)

    def _fire(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = None
        # The loop may run a timer a clock tick early: what it was armed for is due.
        now = max(loop.time(), when)
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        if self._due:
            self._arm(loop, min(self._due.values()))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Invoker:
    """Calls tools for one run, in this process or on the executor's ``runner`` (which outlives
    the run). ``close()`` releases the thread pool (without waiting for it)."""

    def __init__(
        self, *, max_workers: int, max_output_bytes: int, runner: StepRunner[Any] | None = None
    ) -> None:
        self._max_output_bytes = max_output_bytes
        self._local = LocalRunner(max_workers)
        self._runner = runner
        self._deadlines = _Deadlines()

    def close(self) -> None:
        self._local.close()
        self._deadlines.close()

    async def _once(
        self,
        tool: Tool,
        kwargs: Mapping[str, Any],
        timeout: float | None,
        attempt: tuple[str, str, int],
    ) -> Any:
        if tool.function is None:
            raise ToolArgumentError(
                tool.name, "schema-only tool: it has no Python function to run; register a callable"
            )
        runner = choose_runner(tool, self._local, self._runner)
        if runner is self._local:
            call = self._local.start(tool, kwargs)
        else:
            call = runner.run(ToolCall(tool, kwargs, *attempt, self._max_output_bytes))
        if timeout is None:
            out = await call
        else:
            started = self._deadlines.start(timeout)
            try:
                out = await call
            except asyncio.CancelledError:
                self._deadlines.expired(started, timeout, tool.name)
                raise
            finally:
                self._deadlines.end(started)
        # A sync callable that returns an awaitable (functools.partial of a coroutine, ...).
        # JSON values, the usual outputs, are never awaitable: inspect's test (an ABC check that
        # costs as much as the rest of a call) is for the other objects.
        if type(out) not in _JSON_TYPES and inspect.isawaitable(out):
            out = await out
        return out

    @staticmethod
    def _kwargs(
        tool: Tool, args: Mapping[str, Any], run_id: str, step_id: str, attempt: int
    ) -> Mapping[str, Any]:
        if not tool.context_param:
            return args
        return {**args, tool.context_param: ToolContext(run_id, step_id, attempt)}

    async def call(
        self,
        tool: Tool,
        args: Mapping[str, Any],
        *,
        run_id: str,
        step_id: str,
        timeout: float | None,
        on_attempt: AttemptHook | None = None,
        on_retry: RetryHook | None = None,
    ) -> tuple[Any, int]:
        """Call ``tool`` until it succeeds, fails permanently or runs out of attempts.

        Returns (JSON output, attempts made). Exceptions of the last attempt propagate; those of
        ``on_attempt`` / ``on_retry`` (the journal failing) propagate at once, never retried.
        """
        # The first attempt runs outside tenacity: tenacity's per-call bookkeeping (~20 us) would
        # be most of a step's overhead. A transient first failure is replayed into tenacity, so
        # backoff, jitter, stop and the retry notices are tenacity's alone.
        if on_attempt is not None:
            kept = on_attempt(1)
            if kept is not None:
                await kept
        try:
            kwargs = self._kwargs(tool, args, run_id, step_id, 1)
            out = await self._once(tool, kwargs, timeout, (run_id, step_id, 1))
            attempts = 1
        except Exception as exc:
            if tool.retry.attempts <= 1 or not is_transient(tool, exc):
                raise
            out, attempts = await self._retry(
                tool, args, exc, run_id, step_id, timeout, on_attempt, on_retry
            )
        return normalise_output(out, tool=tool.name, max_bytes=self._max_output_bytes), attempts

    async def _retry(
        self,
        tool: Tool,
        args: Mapping[str, Any],
        first_error: BaseException,
        run_id: str,
        step_id: str,
        timeout: float | None,
        on_attempt: AttemptHook | None,
        on_retry: RetryHook | None,
    ) -> tuple[Any, int]:
        attempts = 0
        hook_error: BaseException | None = None

        def retryable(exc: BaseException) -> bool:
            return exc is not hook_error and is_transient(tool, exc)

        async def attempt() -> Any:
            nonlocal attempts, hook_error
            attempts += 1
            if attempts == 1:
                raise first_error
            if on_attempt is not None:
                try:
                    kept = on_attempt(attempts)
                    if kept is not None:
                        await kept
                except BaseException as exc:
                    hook_error = exc
                    raise
            kwargs = self._kwargs(tool, args, run_id, step_id, attempts)
            return await self._once(tool, kwargs, timeout, (run_id, step_id, attempts))

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if on_retry is not None and error is not None:
                on_retry(state.attempt_number, error, state.upcoming_sleep)

        policy = tool.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential_jitter(
                multiplier=policy.initial_backoff, max=policy.max_backoff, jitter=policy.jitter
            ),
            retry=retry_if_exception(retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        out: Any = await retrying(attempt)
        return out, attempts
