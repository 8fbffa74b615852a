"""Events: one typed payload per event type, whose JSON form round-trips, and EventBus.stream(),
which follows a run to its final ``run_finished``, past the non-final ones that the executions of
a replanned run emit."""

from __future__ import annotations

import asyncio
import dataclasses
import doctest
import json

import pytest

from tooldag import events as events_module
from tooldag.events import (
    PAYLOADS,
    Event,
    EventBus,
    EventType,
    LLMCall,
    Payload,
    PlanCreated,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepCancelled,
    StepCompensated,
    StepCompensationFailed,
    StepFailed,
    StepRetrying,
    StepReused,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    payload_from_json,
    payload_to_json,
)
from tooldag.plan import Plan
from tooldag.result import RunStatus, StepError, Usage

PLAN = Plan.model_validate({"goal": "g", "steps": [{"id": "a", "tool": "t", "args": {"x": 1}}]})
ERROR = StepError(type="ToolError", message="boom", transient=True)

# One of each, with every field set: what the producers emit.
SAMPLES: list[Payload] = [
    RunStarted(PLAN, "g"),
    RunFinished(RunStatus.FAILED, "an answer", "step 'a' failed", final=False),
    PlanCreated(PLAN, 2),
    StepStarted("t", {"x": 1}),
    StepRetrying(ERROR, 0.25),
    StepSucceeded({"v": [1, 2]}),
    StepFailed(ERROR),
    StepSkipped("condition not met: 1 < 0"),
    StepBlocked("needs a (failed)", ("a",)),
    StepCancelled("cancelled while running"),
    StepReused({"v": 1}),
    StepCompensated("undo"),
    StepCompensationFailed("undo", ERROR),
    LLMCall(Usage(10, 5, 15, 1), "plan", "json_schema", "gpt-x", usage_estimated=True),
]


def finished(final: bool = True) -> Event:
    return Event(RunFinished(RunStatus.FAILED, final=final), "r1")


def test_every_event_type_has_exactly_one_payload_class() -> None:
    assert set(PAYLOADS) == set(EventType)
    assert len(set(PAYLOADS.values())) == len(EventType)
    assert all(cls.type is kind for kind, cls in PAYLOADS.items())
    assert sorted(type(p).__name__ for p in SAMPLES) == sorted(
        c.__name__ for c in PAYLOADS.values()
    )


def test_an_events_type_is_its_payloads() -> None:
    for payload in SAMPLES:
        assert Event(payload, "r1").type is type(payload).type


def test_an_event_built_the_untyped_way_says_what_it_wants() -> None:
    with pytest.raises(TypeError, match=r"Event\(RunStarted\(\), run_id\)"):
        _ = Event(EventType.RUN_STARTED, "r1").type  # type: ignore[arg-type]


def test_payloads_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        StepStarted("t").tool = "other"  # type: ignore[misc]


def test_the_json_form_round_trips_every_payload() -> None:
    for payload in SAMPLES:
        text = json.dumps(payload_to_json(payload))
        assert payload_from_json(payload.type, json.loads(text)) == payload, payload


def test_the_json_form_holds_outputs_by_reference() -> None:
    output = {"big": list(range(1000))}
    assert payload_to_json(StepSucceeded(output))["output"] is output


def test_the_json_form_keeps_the_keys_and_values_the_journal_always_stored() -> None:
    heavy = {"output", "args", "plan", "answer"}
    assert payload_to_json(SAMPLES[1], exclude=heavy) == {
        "status": "failed",
        "error": "step 'a' failed",
        "final": False,
    }
    assert payload_to_json(StepFailed(ERROR)) == {
        "error": {"type": "ToolError", "message": "boom", "transient": True}
    }
    assert payload_to_json(SAMPLES[-1])["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "calls": 1,
    }
    assert payload_to_json(StepSucceeded(1), exclude=heavy) == {}


def test_a_payload_is_rebuilt_from_what_an_older_or_lighter_journal_kept() -> None:
    assert payload_from_json(EventType.RUN_FINISHED, {"status": "succeeded"}) == RunFinished(
        RunStatus.SUCCEEDED
    )
    assert payload_from_json(EventType.RUN_STARTED, None) == RunStarted()
    assert payload_from_json(EventType.STEP_STARTED, {"tool": "fetch"}) == StepStarted("fetch")
    assert payload_from_json(EventType.STEP_BLOCKED, {"reason": "needs b"}) == StepBlocked(
        "needs b"
    )
    assert payload_from_json(EventType.STEP_COMPENSATED, None) == StepCompensated("")
    assert payload_from_json(
        EventType.STEP_RETRYING, {"error": {"type": "T", "message": "slow"}}
    ) == StepRetrying(StepError(type="T", message="slow"))
    tool_call = {"usage": {"prompt_tokens": 4, "completion_tokens": 2}, "purpose": "tool"}
    assert payload_from_json(EventType.LLM_CALL, tool_call) == LLMCall(
        Usage(4, 2, 6, 0), "tool", ""
    )
    assert payload_from_json(EventType.RUN_FINISHED, {"status": "no such"}).status is (
        RunStatus.FAILED
    )


def test_the_module_example_runs() -> None:
    failures, tried = doctest.testmod(events_module)
    assert tried and not failures


# --------------------------------------------------------------------------- stream()


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
        Event(RunStarted(), "r1"),
        finished(False),
        Event(RunStarted(), "r1"),
        Event(StepCompensated("undo"), "r1", step_id="booking"),
        finished(True),
        Event(StepStarted("t"), "r2", step_id="after"),
    ]
    assert await follow(EventBus(), events) == events[:5]


async def test_a_run_finished_read_back_without_the_final_key_ends_the_stream() -> None:
    # Emitted by code that predates the key, and kept so in an old journal: final.
    old = Event(payload_from_json(EventType.RUN_FINISHED, {"status": "failed"}), "r1")
    events = [Event(RunStarted(), "r1"), old, finished(True)]
    assert await follow(EventBus(), events) == events[:2]


async def test_a_custom_stop_condition_replaces_the_default() -> None:
    bus = EventBus()
    events = [finished(True), Event(StepStarted("t"), "r1", step_id="s")]
    asyncio.get_running_loop().call_soon(lambda: [bus.emit(e) for e in events])
    seen = [e async for e in bus.stream(lambda e: e.type is EventType.STEP_STARTED)]
    assert seen == events
