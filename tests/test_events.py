"""EventBus.stream(): it follows a run to its final ``run_finished``, past the non-final ones that
the executions of a replanned run emit."""

from __future__ import annotations

import asyncio
from typing import Any

from tooldag.events import Event, EventBus, EventType


def finished(final: bool | None) -> Event:
    data: dict[str, Any] = {"status": "failed"}
    if final is not None:
        data["final"] = final
    return Event(EventType.RUN_FINISHED, "r1", data=data)


async def follow(bus: EventBus, events: list[Event]) -> list[Event]:
    """The events ``stream()`` yields when ``events`` are emitted once it listens."""

    def emit_all() -> None:
        for event in events:
            bus.emit(event)

    # Runs at the stream's first wait for an event, when it is already subscribed.
    asyncio.get_running_loop().call_soon(emit_all)
    return [event async for event in bus.stream()]


async def test_the_stream_goes_past_a_non_final_run_finished_and_stops_at_the_final_one() -> None:
    events = [
        Event(EventType.RUN_STARTED, "r1"),
        finished(False),
        Event(EventType.RUN_STARTED, "r1"),
        Event(EventType.STEP_COMPENSATED, "r1", step_id="booking"),
        finished(True),
        Event(EventType.STEP_STARTED, "r2", step_id="after"),
    ]
    assert await follow(EventBus(), events) == events[:5]


async def test_a_run_finished_without_the_final_key_ends_the_stream() -> None:
    # Emitted by code that predates the key (or read back from an old journal): final.
    events = [Event(EventType.RUN_STARTED, "r1"), finished(None), finished(True)]
    assert await follow(EventBus(), events) == events[:2]


async def test_a_custom_stop_condition_replaces_the_default() -> None:
    bus = EventBus()
    events = [finished(True), Event(EventType.STEP_STARTED, "r1", step_id="s")]
    asyncio.get_running_loop().call_soon(lambda: [bus.emit(e) for e in events])
    seen = [e async for e in bus.stream(lambda e: e.type is EventType.STEP_STARTED)]
    assert seen == events
