"""What the steps of one run share: resources opened on first use and closed when the run ends.

A tool that talks to a long-lived peer (an MCP server: a subprocess or an HTTP session) should
not open a connection per call, nor keep one open past the run that needed it: a connection
belongs to an event loop, and ``run_plan`` gives each run a loop of its own. So the executor
enters a :func:`run_scope` around every execution, and a tool asks :func:`current_scope` for
its connection by a key: the first step to ask opens it, every parallel step shares it, and it
is closed when the run ends (also when it ends failed or cancelled).

Scopes nest: a caller that drives several executions as one run (a replanning agent) may enter
a scope around all of them, and the executions then share it instead of opening their own.
Outside any run there is no scope: :func:`current_scope` is ``None`` and the tool opens and
closes what it needs per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Protocol, TypeVar

__all__ = ["Resource", "RunScope", "current_scope", "in_run_scope", "run_scope"]

log = logging.getLogger("tooldag.executor")


class Resource(Protocol):
    """What a scope holds: anything it can close."""

    async def aclose(self) -> None: ...


R = TypeVar("R", bound=Resource)
T = TypeVar("T")

_CURRENT: contextvars.ContextVar[RunScope | None] = contextvars.ContextVar(
    "tooldag_run_scope", default=None
)


class RunScope:
    """The resources of one run, by key. Use it from the run's own event loop."""

    def __init__(self) -> None:
        self._opening: dict[Hashable, asyncio.Future[Resource]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<RunScope {len(self._opening)} resource(s){' closed' if self._closed else ''}>"

    async def get(self, key: Hashable, open_: Callable[[], Awaitable[R]]) -> R:
        """The resource under ``key``, opened with ``open_()`` by the first caller; the callers
        that ask while it opens wait for the same one. A failed opening is forgotten (and
        raised to every waiter), so that the next call tries again."""
        if self._closed:
            raise RuntimeError("this run is over: its resources are closed")
        future = self._opening.get(key)
        if future is None:
            future = self._opening[key] = asyncio.ensure_future(open_())
            future.add_done_callback(lambda f: self._forget_failed(key, f))
        # Shielded: a waiter that is cancelled leaves the opening to the others (and to aclose).
        resource = await asyncio.shield(future)
        return resource  # type: ignore[return-value]

    def _forget_failed(self, key: Hashable, future: asyncio.Future[Resource]) -> None:
        if (future.cancelled() or future.exception() is not None) and (
            self._opening.get(key) is future
        ):
            del self._opening[key]

    async def discard(self, key: Hashable, resource: Resource) -> None:
        """Close ``resource`` and forget it, if it is still the one under ``key`` (a dead
        connection: the next :meth:`get` opens a new one)."""
        future = self._opening.get(key)
        if future is None or not future.done() or future.cancelled():
            return
        if future.exception() is None and future.result() is resource:
            del self._opening[key]
            await _close(key, resource)

    async def aclose(self) -> None:
        """Close every resource, newest first; one still opening is cancelled (a run that ends
        does not wait for a slow server to start)."""
        self._closed = True
        opening, self._opening = self._opening, {}
        for key, future in reversed(list(opening.items())):
            future.cancel()  # no-op once it is open
            try:
                resource = await future
            except BaseException:  # it never opened: nothing to close
                continue
            await _close(key, resource)


async def _close(key: Hashable, resource: Resource) -> None:
    try:
        await resource.aclose()
    except Exception:  # closing is best effort; the run's result stands
        log.warning("closing %r failed", key, exc_info=True)


def current_scope() -> RunScope | None:
    """The scope of the run this code is part of, or ``None`` outside a run."""
    return _CURRENT.get()


@contextlib.asynccontextmanager
async def run_scope() -> AsyncIterator[RunScope]:
    """Enter a run's scope: the one already entered (an outer caller's), else a new one that
    is closed on the way out."""
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    scope = RunScope()
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)
        # Shielded from a cancellation of the run: a connection left open would outlive it.
        closing = asyncio.ensure_future(scope.aclose())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await closing
            raise


async def in_run_scope(work: Awaitable[T]) -> T:
    """Await ``work`` inside :func:`run_scope` (how the executor runs each execution)."""
    async with run_scope():
        return await work
