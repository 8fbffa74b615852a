"""Ctrl-C while a run goes: cancel it, wait for its compensation, and say so.

One wiring for every face that runs something (``tooldag exec``, ``runs resume`` and ``run``, and
the REPL of ``chat`` and ``demo``). The first Ctrl-C calls the run's cancel (running steps are
cancelled, the steps that succeeded are compensated, last finished first) and the work is still
awaited to its end, so that the face can show the cancelled run. A second Ctrl-C aborts at once
(``KeyboardInterrupt``, exit 130 without waiting) in a command; in the REPL, whose session should
not be lost to an impatient key, it only says that the cancel is under way. Where no signal
handler can be installed (Windows, a thread other than the main one), Ctrl-C stays Python's
``KeyboardInterrupt``.

>>> handle = executor.start(plan)                                       # doctest: +SKIP
>>> result = await cancellable(console, handle.wait(), handle.cancel)   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from .._terminal import printable
from .views import print_line

__all__ = ["CtrlC", "cancellable"]

T = TypeVar("T")


class CtrlC:
    """Turns SIGINT into a cancel of the work :meth:`run` awaits; messages go to ``console``.

    ``second_aborts``: a second Ctrl-C raises ``KeyboardInterrupt`` (commands) instead of only
    saying that the cancel is under way (the REPL).
    """

    def __init__(self, console: Console, *, second_aborts: bool = True) -> None:
        self.console = console
        self.second_aborts = second_aborts
        self._cancel: Callable[[], object] | None = None
        self._cancelling = False
        # The cancels that are coroutines run as tasks; a reference keeps each one alive.
        self._pending: set[asyncio.Future[Any]] = set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT calls :meth:`interrupt` while inside (call from the running event loop)."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    async def run(self, work: Awaitable[T], cancel: Callable[[], object]) -> T:
        """Await ``work``; a Ctrl-C meanwhile calls ``cancel`` once. ``cancel`` may return an
        awaitable (``lambda: runner.acancel_workflow(run_id)``): it runs as a task, and ``run``
        returns once that task is done too, so the compensation it waits for is over."""
        self._cancel, self._cancelling = cancel, False
        try:
            result = await work
        finally:
            self._cancel = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        return result

    def interrupt(self) -> None:
        """What SIGINT calls: cancel what :meth:`run` awaits (nothing when nothing runs)."""
        if self._cancel is None:
            return
        if self._cancelling:
            if self.second_aborts:
                raise KeyboardInterrupt
            self.console.print(Text("still cancelling: undoing what ran...", style="yellow"))
            return
        self._cancelling = True
        again = " (Ctrl-C again to abort)" if self.second_aborts else "..."
        self.console.print(Text(f"cancelling: undoing what ran{again}", style="yellow"))
        outcome = self._cancel()
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._pending.add(task)
            task.add_done_callback(self._cancel_done)

    def _cancel_done(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            message = printable(f"could not cancel: {task.exception()}")
            print_line(self.console, Text(message, style="red"))


async def cancellable(console: Console, work: Awaitable[T], cancel: Callable[[], object]) -> T:
    """``work`` with Ctrl-C wired to ``cancel`` for as long as it runs (a second Ctrl-C aborts):
    what a command that runs one thing uses."""
    ctrl_c = CtrlC(console)
    with ctrl_c.installed():
        return await ctrl_c.run(work, cancel)
