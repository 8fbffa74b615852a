"""Events: every state transition of a run, and the bus that hands them to consumers.

The executor emits; the monitor, the run store, the REPL's live view and user callbacks consume.
Emission is synchronous and in order, which is what gives the store its write-ahead guarantee:
a ``step_succeeded`` event is journalled before the scheduler counts the step as done.

>>> bus = EventBus()
>>> seen = []
>>> unsubscribe = bus.subscribe(seen.append)
>>> bus.emit(Event(EventType.RUN_STARTED, run_id="r1"))
>>> seen[0].type
<EventType.RUN_STARTED: 'run_started'>
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventBus", "EventCallback", "EventType"]

log = logging.getLogger("tooldag.events")


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    PLAN_CREATED = "plan_created"
    STEP_STARTED = "step_started"
    STEP_RETRYING = "step_retrying"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    STEP_SKIPPED = "step_skipped"
    STEP_BLOCKED = "step_blocked"
    STEP_CANCELLED = "step_cancelled"
    STEP_REUSED = "step_reused"
    STEP_COMPENSATED = "step_compensated"
    STEP_COMPENSATION_FAILED = "step_compensation_failed"
    LLM_CALL = "llm_call"


@dataclass(frozen=True, slots=True)
class Event:
    """One transition. ``data`` holds what it carries (tool, args, output, error, reason).

    Outputs are passed by reference, never copied, so a large output costs nothing per consumer.
    """

    type: EventType
    run_id: str
    step_id: str | None = None
    attempt: int = 0
    duration: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)


EventCallback = Callable[[Event], None]


def _run_over(event: Event) -> bool:
    return event.type is EventType.RUN_FINISHED and event.data.get("final", True) is not False


class EventBus:
    """Delivers events, in order, to callbacks and async iterators.

    A callback subscribed with ``critical=True`` (the run store) lets its exceptions propagate to
    the emitter: the executor must know when a journal write failed. Other callbacks are isolated:
    an exception in a user's callback is logged and never breaks a run.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[EventCallback, bool]] = []

    def subscribe(self, callback: EventCallback, *, critical: bool = False) -> Callable[[], None]:
        """Call ``callback(event)`` for each event; returns a function that unsubscribes."""
        entry = (callback, critical)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for callback, critical in list(self._subscribers):
            if critical:
                callback(event)
                continue
            try:
                callback(event)
            except Exception:
                log.exception("event callback %r failed on %s", callback, event.type)

    async def stream(self, until: Callable[[Event], bool] | None = None) -> AsyncIterator[Event]:
        """Yield events as they are emitted (from the loop this is iterated on).

        Stops after the first event for which ``until(event)`` is true; by default after the
        final ``run_finished`` (a replanned run has one per execution, all but the last with
        ``data["final"]`` false; one without the key is final).
        """
        stop = until or _run_over
        queue: asyncio.Queue[Event] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def push(event: Event) -> None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                queue.put_nowait(event)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, event)

        unsubscribe = self.subscribe(push)
        try:
            while True:
                event = await queue.get()
                yield event
                if stop(event):
                    return
        finally:
            unsubscribe()
