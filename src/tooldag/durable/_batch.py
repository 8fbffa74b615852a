"""The run store's write batching: the step events of one event-loop turn share one commit.

A commit costs several times what the rows of an event do (about 75 us against 10 us with SQLite,
a round trip with PostgreSQL), and the steps that start or finish together do so in one turn of
the event loop: a fan-out of 64 parallel steps starts 64 steps in one turn. So
:meth:`RunStore.attach <tooldag.durable.store.RunStore.attach>` journals a step's events (those of
:data:`BATCHED`) emitted on an event loop into a :class:`Turn`, and the store writes the turn in
one transaction from ``loop.call_soon``, once the turn is over. Everything else is written at once,
together with the turn so far, in order: the run's and plans' events, LLM calls, events from a
thread without a loop, and any other write, read or ``close()`` of the store.

The at-least-once contract is kept by the executor, which awaits the bus's barrier (here
:meth:`Turns.barrier`) before a tool runs on its ``step_started`` and before a step that
succeeded counts as done (its dependents start) on its ``step_succeeded``. A failed commit raises
:class:`~tooldag.errors.StoreError` in the steps that wait (each then fails as the journal's
failure, which stops the run); the turn's other events (a skip, a block: no one waits for those)
are carried into the next transaction, so a failure loses nothing silently: either a later commit
keeps them, or it fails too and whoever writes (the run's ``run_finished`` at the latest) is told.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from ..events import PAYLOADS, Event

__all__ = ["BATCHED", "Turn", "Turns", "running_loop"]

BATCHED = frozenset(cls for cls in PAYLOADS.values() if cls.type.value.startswith("step_"))
"""The events a turn gathers (by payload class): a step's. The rest are rare and are written at
once."""


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Turn:
    """The events of one loop turn, and the futures (on that loop) of the steps waiting for them."""

    __slots__ = ("awaited", "error", "events", "loop", "waiters", "written")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: list[Event] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.awaited: set[int] = set()  # the events someone waits for: not carried on failure
        self.written = False
        self.error: BaseException | None = None


class Turns:
    """The turn being gathered (one per store: a write from another loop or thread writes it
    first) and the events a failed commit left to carry. The store's lock guards it all."""

    def __init__(self, flush: Callable[[Turn], None]) -> None:
        self._flush = flush  # what the loop calls when the turn is over
        self.turn: Turn | None = None
        self.carried: list[Event] = []
        self._local = threading.local()  # .last: (turn, index) of this thread's last event

    def add(self, event: Event, loop: asyncio.AbstractEventLoop) -> bool:
        """Gather ``event`` into this loop's turn; False if another loop's turn is pending (the
        store writes that one first)."""
        turn = self.turn
        if turn is None:
            turn = self.turn = Turn(loop)
            # FIFO: whatever is scheduled after this (the steps this turn's events wake) runs
            # after the commit.
            loop.call_soon(self._flush, turn)
        elif turn.loop is not loop:
            return False
        turn.events.append(event)
        self._local.last = (turn, len(turn.events) - 1)
        return True

    def unmark(self) -> None:
        """This thread's latest event was written at once: no turn of it to wait for."""
        self._local.last = None

    def take(self) -> tuple[Turn | None, list[Event]]:
        """What a transaction starting now writes first: the carried events, then the turn's."""
        turn, self.turn = self.turn, None
        events = self.carried
        self.carried = []
        if turn is not None:
            events = events + turn.events if events else turn.events
        return turn, events

    @property
    def pending(self) -> bool:
        return self.turn is not None or bool(self.carried)

    def restore(self, turn: Turn | None, events: list[Event]) -> None:
        """Undo :meth:`take`: the transaction was given up for a reason of its caller's."""
        self.turn = turn
        self.carried = events[: len(events) - len(turn.events)] if turn is not None else events

    def settle(self, turn: Turn | None, events: list[Event], error: BaseException | None) -> None:
        """The transaction that wrote ``events`` (:meth:`take`'s) committed, or failed with
        ``error``: carry what no step waits for, and wake those that do."""
        if turn is None:
            if error is not None:
                self.carried = events
            return
        if error is not None:
            before = events[: len(events) - len(turn.events)]
            mine = [e for i, e in enumerate(turn.events) if i not in turn.awaited]
            self.carried = before + mine
        turn.written, turn.error = True, error
        if not turn.waiters:
            return
        if running_loop() is turn.loop:
            _wake(turn.waiters, error)
        elif not turn.loop.is_closed():
            turn.loop.call_soon_threadsafe(_wake, turn.waiters, error)

    def barrier(self) -> Awaitable[None] | None:
        """What the step that emitted this thread's last event awaits until it is kept."""
        last = getattr(self._local, "last", None)
        if last is None:
            return None
        self._local.last = None
        turn, index = last
        turn.awaited.add(index)
        if turn.written and turn.error is None:
            return None  # written at once by another write meanwhile
        waiter: asyncio.Future[None] = turn.loop.create_future()
        if turn.error is not None:  # the commit failed before its step asked: not carried then
            event = turn.events[index]
            self.carried = [e for e in self.carried if e is not event]
            waiter.set_exception(turn.error)
        else:
            turn.waiters.append(waiter)
        return waiter


def _wake(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():  # its step was cancelled meanwhile
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
