"""The executor's scheduling and step rules, proved with events and gates (never with timing).

Gates are asyncio/threading events a tool waits on: a schedule that serialised what should
overlap, or batched by levels, would deadlock on them and fail the test through its timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from tooldag import Plan, ToolContext, ToolRegistry, tool
from tooldag.errors import ConfigError, PlanInvalidError, RunStateError, StoreError
from tooldag.events import (
    Event,
    EventBus,
    EventType,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepReused,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from tooldag.execution.executor import Executor, RunHandle, render_answer, run_plan
from tooldag.execution.run import _SLICE
from tooldag.result import RunStatus, StepStatus

GATE_TIMEOUT = 5.0


class Events:
    """Every event of a bus, in order."""

    def __init__(self, bus: EventBus) -> None:
        self.all: list[Event] = []
        bus.subscribe(self.all.append)

    def of(self, kind: EventType, step: str | None = None) -> list[Event]:
        return [e for e in self.all if e.type is kind and (step is None or e.step_id == step)]

    def at(self, kind: EventType, step: str) -> int:
        return next(i for i, e in enumerate(self.all) if e.type is kind and e.step_id == step)


def plan_of(*steps: dict[str, Any], answer: str | None = None) -> Plan:
    return Plan.model_validate({"goal": "test", "steps": list(steps), "answer": answer})


def step(sid: str, tool_name: str, **args: Any) -> dict[str, Any]:
    return {"id": sid, "tool": tool_name, "args": args}


async def run(registry: ToolRegistry, plan: Plan, **options: Any) -> tuple[Any, Events]:
    executor = Executor(registry, **options)
    events = Events(executor.bus)
    result = await asyncio.wait_for(executor.run(plan), GATE_TIMEOUT * 2)
    return result, events


# --------------------------------------------------------------------------- tools


@tool(side_effects=False)
def get_weather(location: str) -> dict[str, Any]:
    return {"location": location, "temp": 18, "condition": "rainy"}


@tool(side_effects=False)
async def recommend_outfit(temperature: int, condition: str) -> dict[str, str]:
    return {"outfit": "Raincoat" if condition == "rainy" else "T-shirt"}


@tool
def echo(value: Any = None) -> Any:
    return value


@tool
def boom(value: Any = None) -> Any:
    raise ValueError("boom: the tool broke")


BASIC = ToolRegistry([get_weather, recommend_outfit, echo, boom])


# --------------------------------------------------------------------------- basics


async def test_chain_passes_typed_outputs_and_renders_the_answer() -> None:
    plan = plan_of(
        step("weather", "get_weather", location="London"),
        step(
            "outfit",
            "recommend_outfit",
            temperature="$weather.temp",
            condition="$weather.condition",
        ),
        answer="Wear ${outfit.outfit}: ${weather.temp} C in ${weather.location}.",
    )
    result, events = await run(BASIC, plan)
    assert result.status is RunStatus.SUCCEEDED and result.ok
    assert result.answer == "Wear Raincoat: 18 C in London."
    assert result.outputs["outfit"] == {"outfit": "Raincoat"}
    assert result.steps["outfit"].args == {"temperature": 18, "condition": "rainy"}
    assert result.plans == [plan] and len(result.run_id) >= 8
    kinds = [e.type for e in events.all]
    assert kinds[0] is EventType.RUN_STARTED and kinds[-1] is EventType.RUN_FINISHED
    assert events.all[0].data == RunStarted(plan, plan.goal)
    assert events.all[-1].data == RunFinished(RunStatus.SUCCEEDED, result.answer, None, True)
    assert events.at(EventType.STEP_SUCCEEDED, "weather") < events.at(
        EventType.STEP_STARTED, "outfit"
    )
    started = events.of(EventType.STEP_STARTED, "outfit")[0]
    assert started.attempt == 1
    assert started.data == StepStarted(
        "recommend_outfit", {"temperature": 18, "condition": "rainy"}
    )


async def test_succeeded_event_carries_the_output_by_reference() -> None:
    plan = plan_of(step("a", "echo", value={"big": list(range(100))}))
    result, events = await run(BASIC, plan)
    (done,) = events.of(EventType.STEP_SUCCEEDED, "a")
    assert isinstance(done.data, StepSucceeded)
    assert done.data.output is result.outputs["a"]
    assert done.duration is not None and done.duration >= 0


async def test_run_finished_carries_the_runs_error_and_whether_it_is_final() -> None:
    executor = Executor(BASIC)
    events = Events(executor.bus)
    failed = await executor.run(plan_of(step("bad", "boom")))
    await executor.run(plan_of(step("ok", "echo", value=1)), final=False)
    first, second = (e.data for e in events.of(EventType.RUN_FINISHED))
    assert isinstance(first, RunFinished) and isinstance(second, RunFinished)
    assert failed.error is not None and "boom: the tool broke" in failed.error
    assert first.error == failed.error and first.final is True
    assert second.error is None and second.final is False


async def test_events_can_be_followed_with_an_async_iterator() -> None:
    executor = Executor(BASIC)
    stream = executor.bus.stream()
    follow = asyncio.ensure_future(_collect(stream))
    await asyncio.sleep(0)  # let the iterator subscribe before the run starts
    await executor.run(plan_of(step("w", "get_weather", location="Paris")))
    kinds = await asyncio.wait_for(follow, GATE_TIMEOUT)
    assert kinds == ["run_started", "step_started", "step_succeeded", "run_finished"]


async def _collect(stream: Any) -> list[str]:
    return [event.type.value async for event in stream]


async def test_outputs_are_normalised_to_json_values() -> None:
    class Point(BaseModel):
        x: int
        y: int

    @dataclasses.dataclass
    class Box:
        corner: Point
        when: dt.date

    @tool
    def shapes() -> Any:
        return {"box": Box(Point(x=1, y=2), dt.date(2024, 5, 1)), "tags": ("a", "b")}

    result, _ = await run(ToolRegistry([shapes]), plan_of(step("s", "shapes")))
    assert result.outputs["s"] == {
        "box": {"corner": {"x": 1, "y": 2}, "when": "2024-05-01"},
        "tags": ["a", "b"],
    }


async def test_an_empty_plan_succeeds() -> None:
    result, events = await run(BASIC, plan_of(answer="nothing to do"))
    assert result.ok and result.answer == "nothing to do"
    assert [e.type for e in events.all] == [EventType.RUN_STARTED, EventType.RUN_FINISHED]


# --------------------------------------------------------------------------- parallelism


async def test_independent_branches_overlap() -> None:
    gates = {"left": asyncio.Event(), "right": asyncio.Event()}

    @tool
    async def meet(me: str, other: str) -> str:
        gates[me].set()
        # Only returns if the other branch is running at the same time.
        await asyncio.wait_for(gates[other].wait(), GATE_TIMEOUT)
        return me

    plan = plan_of(
        step("left", "meet", me="left", other="right"),
        step("right", "meet", me="right", other="left"),
    )
    result, events = await run(ToolRegistry([meet]), plan)
    assert result.ok
    first_done = min(events.at(EventType.STEP_SUCCEEDED, s) for s in ("left", "right"))
    assert max(events.at(EventType.STEP_STARTED, s) for s in ("left", "right")) < first_done


async def test_a_slow_branch_does_not_delay_an_unrelated_fast_chain() -> None:
    fast_chain_done = asyncio.Event()

    @tool
    async def slow() -> str:
        # Finishes only after the whole fast chain did: if the fast chain waited for this
        # branch (serial or level-by-level execution), the run would deadlock.
        await asyncio.wait_for(fast_chain_done.wait(), GATE_TIMEOUT)
        return "slow"

    @tool
    async def fast(x: Any = None, last: bool = False) -> str:
        if last:
            fast_chain_done.set()
        return "fast"

    plan = plan_of(
        step("slow", "slow"),
        step("f1", "fast"),
        step("f2", "fast", x="$f1"),
        step("f3", "fast", x="$f2", last=True),
    )
    result, events = await run(ToolRegistry([slow, fast]), plan)
    assert result.ok
    assert events.at(EventType.STEP_SUCCEEDED, "f3") < events.at(EventType.STEP_SUCCEEDED, "slow")


async def test_a_step_starts_when_its_last_dependency_finishes_not_when_its_level_does() -> None:
    # Levels: {a, b}, {c}. c depends only on b; a waits for c to have started. A level-by-level
    # executor would wait for a before starting c: deadlock.
    c_started = asyncio.Event()

    @tool
    async def waits_for_c() -> str:
        await asyncio.wait_for(c_started.wait(), GATE_TIMEOUT)
        return "a"

    @tool
    async def quick(x: Any = None, signal: bool = False) -> str:
        if signal:
            c_started.set()
        return "ok"

    plan = plan_of(
        step("a", "waits_for_c"), step("b", "quick"), step("c", "quick", x="$b", signal=True)
    )
    result, events = await run(ToolRegistry([waits_for_c, quick]), plan)
    assert result.ok
    assert events.at(EventType.STEP_STARTED, "c") < events.at(EventType.STEP_SUCCEEDED, "a")


def _max_in_flight(events: Events, steps: set[str] | None = None) -> int:
    running, peak = 0, 0
    ends = (EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_CANCELLED)
    for event in events.all:
        if steps is not None and event.step_id not in steps:
            continue
        if event.type is EventType.STEP_STARTED and event.attempt == 1:
            running += 1
            peak = max(peak, running)
        elif event.type in ends:
            running -= 1
    return peak


async def test_the_global_concurrency_cap_is_never_exceeded() -> None:
    in_flight, peak = 0, 0

    @tool
    async def work(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):  # let every other ready step try to start meanwhile
            await asyncio.sleep(0)
        in_flight -= 1
        return i

    plan = plan_of(*(step(f"w{i}", "work", i=i) for i in range(12)))
    result, events = await run(ToolRegistry([work]), plan, max_concurrency=3)
    assert result.ok
    assert peak == 3
    assert _max_in_flight(events) == 3


def _spin(seconds: float) -> None:
    """Busy for ``seconds`` without letting the loop run (a tool that computes)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


async def test_a_chain_of_tools_that_never_suspend_still_lets_the_loop_run() -> None:
    # Steps run in workers that take the next ready step themselves (no task per step), back to
    # back while they take less than a slice together: a step that computes for longer must let
    # the loop run before the next one starts.
    ticks = 0
    seen: list[int] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    @tool
    async def compute(after: Any = None) -> int:
        seen.append(ticks)
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        _spin(3 * _SLICE)
        return len(seen)

    steps = [step("c0", "compute")]
    steps += [step(f"c{i}", "compute", after=f"$c{i - 1}") for i in range(1, 10)]
    ticking = asyncio.create_task(ticker())
    try:
        result, _ = await run(ToolRegistry([compute]), plan_of(*steps))
    finally:
        ticking.cancel()
    assert result.ok and result.outputs["c9"] == 10
    assert all(b > a for a, b in itertools.pairwise(seen)), seen
    assert len(tasks) == 1  # the chain ran in one worker


async def test_cancelling_a_chain_between_two_steps_cancels_the_rest() -> None:
    reached = asyncio.Event()
    handles: list[RunHandle] = []

    @tool
    async def hop(after: Any = None) -> int:
        return 1

    @tool
    async def stop(after: Any = None) -> int:
        handles[0].cancel()  # acted on by the loop, before the worker takes the next step
        reached.set()
        return 1

    steps = [step("h0", "hop"), step("h1", "stop", after="$h0")]
    steps += [step(f"h{i}", "hop", after=f"$h{i - 1}") for i in range(2, 20)]
    executor = Executor(ToolRegistry([hop, stop]))
    handles.append(executor.start(plan_of(*steps)))
    result = await asyncio.wait_for(handles[0].wait(), GATE_TIMEOUT)
    assert reached.is_set()
    assert result.status is RunStatus.CANCELLED
    assert result.steps["h1"].status is StepStatus.SUCCEEDED
    assert result.steps["h2"].status is StepStatus.CANCELLED  # taken, but never started
    assert result.steps["h2"].started_at is None
    assert {result.steps[f"h{i}"].status for i in range(3, 20)} == {StepStatus.BLOCKED}


async def test_a_per_tool_limit_caps_that_tool_only() -> None:
    counts: dict[str, int] = {"limited": 0, "free": 0}
    peaks: dict[str, int] = {"limited": 0, "free": 0}

    async def busy(kind: str) -> None:
        counts[kind] += 1
        peaks[kind] = max(peaks[kind], counts[kind])
        for _ in range(5):
            await asyncio.sleep(0)
        counts[kind] -= 1

    @tool
    async def limited(i: int) -> None:
        await busy("limited")

    @tool
    async def free(i: int) -> None:
        await busy("free")

    steps = [step(f"l{i}", "limited", i=i) for i in range(5)]
    steps += [step(f"f{i}", "free", i=i) for i in range(5)]
    result, events = await run(
        ToolRegistry([limited, free]),
        plan_of(*steps),
        max_concurrency=6,
        tool_limits={"limited": 1},
    )
    assert result.ok
    assert peaks["limited"] == 1
    assert peaks["free"] == 5
    assert _max_in_flight(events) <= 6
    assert _max_in_flight(events, {f"l{i}" for i in range(5)}) == 1


async def test_sync_tools_run_in_worker_threads_in_parallel() -> None:
    barrier = threading.Barrier(2, timeout=GATE_TIMEOUT)
    threads: list[str] = []

    @tool
    def blocking(i: int) -> int:
        threads.append(threading.current_thread().name)
        barrier.wait()  # both calls must be in flight at once
        return i

    plan = plan_of(step("a", "blocking", i=1), step("b", "blocking", i=2))
    result, _ = await run(ToolRegistry([blocking]), plan)
    assert result.ok, result.error
    assert all(name.startswith("tooldag-tool") for name in threads)


async def test_tools_asking_for_context_get_run_step_and_attempt() -> None:
    seen: list[ToolContext] = []

    @tool
    def ctx_tool(x: int, ctx: ToolContext) -> int:
        seen.append(ctx)
        return x

    executor = Executor(ToolRegistry([ctx_tool]))
    result = await executor.run(plan_of(step("s", "ctx_tool", x=1)), run_id="run-7")
    assert result.ok and result.run_id == "run-7"
    assert seen == [ToolContext("run-7", "s", 1)]
    assert seen[0].idempotency_key == "run-7:s"


# --------------------------------------------------------------------------- skip / block


async def test_skip_rules_false_condition_reference_and_depends_on() -> None:
    plan = plan_of(
        step("weather", "get_weather", location="London"),
        {
            **step("alert", "echo", value="freezing"),
            "when": {"ref": "$weather.temp", "op": "<", "value": 0},
        },
        step("uses_alert", "echo", value="$alert"),
        {**step("after_alert", "echo", value="runs anyway"), "depends_on": ["alert"]},
        step("uses_uses", "echo", value="${uses_alert} text"),
    )
    result, events = await run(BASIC, plan)
    statuses = {sid: r.status for sid, r in result.steps.items()}
    assert statuses == {
        "weather": StepStatus.SUCCEEDED,
        "alert": StepStatus.SKIPPED,
        "uses_alert": StepStatus.SKIPPED,
        "after_alert": StepStatus.SUCCEEDED,
        "uses_uses": StepStatus.SKIPPED,
    }
    assert result.ok  # skipping is not failing
    assert result.steps["alert"].reason == "condition not met: $weather.temp < 0 (got 18)"
    assert "'alert', which was skipped" in (result.steps["uses_alert"].reason or "")
    assert [e.step_id for e in events.of(EventType.STEP_SKIPPED)] == [
        "alert",
        "uses_alert",
        "uses_uses",
    ]
    skipped = events.of(EventType.STEP_SKIPPED, "alert")[0].data
    assert isinstance(skipped, StepSkipped) and skipped.reason.startswith("condition")
    assert not events.of(EventType.STEP_STARTED, "alert")


async def test_a_condition_reading_a_skipped_step_skips_too() -> None:
    plan = plan_of(
        {**step("a", "echo", value=1), "when": {"all": []}},
        {**step("b", "echo", value=2), "when": {"any": []}},
        {**step("c", "echo", value=3), "when": {"ref": "$b", "op": "is_none"}},
    )
    result, _ = await run(BASIC, plan)
    assert result.steps["a"].status is StepStatus.SUCCEEDED
    assert result.steps["b"].status is StepStatus.SKIPPED
    assert result.steps["c"].status is StepStatus.SKIPPED


async def test_a_failed_step_blocks_dependants_and_independent_branches_continue() -> None:
    plan = plan_of(
        step("bad", "boom"),
        step("reads_bad", "echo", value="$bad.x"),
        {**step("after_bad", "echo", value=1), "depends_on": ["bad"]},
        step("transitive", "echo", value="$reads_bad"),
        step("independent", "echo", value="fine"),
        answer="${independent} / ${transitive}",
    )
    result, events = await run(BASIC, plan)
    assert result.status is RunStatus.FAILED
    statuses = {sid: r.status.value for sid, r in result.steps.items()}
    assert statuses == {
        "bad": "failed",
        "reads_bad": "blocked",
        "after_bad": "blocked",
        "transitive": "blocked",
        "independent": "succeeded",
    }
    error = result.steps["bad"].error
    assert error is not None and error.type == "ValueError" and not error.transient
    assert error.message == "boom: the tool broke"
    blocked = events.of(EventType.STEP_BLOCKED, "transitive")[0]
    assert blocked.data == StepBlocked("needs reads_bad (blocked)", ("reads_bad",))
    assert result.outputs == {"independent": "fine"}  # error text never becomes output
    assert result.answer == "fine / [$transitive unavailable: transitive blocked]"
    assert result.error is not None and "boom" in result.error and "blocked: " in result.error


async def test_fail_fast_stops_the_run_at_the_first_failure() -> None:
    never = asyncio.Event()
    started = asyncio.Event()

    @tool
    async def hang() -> None:
        started.set()
        await never.wait()

    @tool
    async def fail_after_hang_started() -> None:
        await asyncio.wait_for(started.wait(), GATE_TIMEOUT)
        raise ValueError("first failure")

    plan = plan_of(
        step("hang", "hang"),
        step("fails", "fail_after_hang_started"),
        step("dependant", "echo", value="$fails"),
        {**step("later", "echo", value=1), "depends_on": ["hang"]},
        step("queued", "echo", value=1),  # waits for a slot: max_concurrency=2
    )
    reg = ToolRegistry([hang, fail_after_hang_started, echo])
    result, events = await run(reg, plan, fail_fast=True, max_concurrency=2)
    assert result.status is RunStatus.FAILED
    statuses = {sid: r.status.value for sid, r in result.steps.items()}
    assert statuses == {
        "hang": "cancelled",
        "fails": "failed",
        "dependant": "blocked",
        "later": "blocked",
        "queued": "cancelled",
    }
    assert "fail_fast" in (result.steps["hang"].reason or "")
    assert result.steps["queued"].reason == (
        "not started: fail_fast: the run stopped after step 'fails' failed"
    )
    assert events.of(EventType.STEP_CANCELLED, "hang")
    assert not events.of(EventType.STEP_STARTED, "queued")


# --------------------------------------------------------------------------- reuse, answer


async def test_reused_steps_are_not_run_and_feed_their_dependants() -> None:
    calls: list[str] = []

    @tool
    def counted(name: str, x: Any = None) -> dict[str, Any]:
        calls.append(name)
        return {"name": name, "x": x}

    plan = plan_of(
        step("first", "counted", name="first"),
        step("second", "counted", name="second", x="$first.name"),
    )
    executor = Executor(ToolRegistry([counted]))
    events = Events(executor.bus)
    result = await executor.run(plan, reuse={"first": {"name": "from before"}})
    assert calls == ["second"]
    assert result.outputs["second"] == {"name": "second", "x": "from before"}
    first = result.steps["first"]
    assert first.status is StepStatus.SUCCEEDED and first.reused and first.attempts == 0
    assert [e.data for e in events.of(EventType.STEP_REUSED)] == [
        StepReused({"name": "from before"})
    ]
    assert not events.of(EventType.STEP_STARTED, "first")


async def test_reuse_may_hold_outputs_of_steps_outside_the_plan() -> None:
    plan = plan_of(step("next", "echo", value="$old.value"))
    executor = Executor(BASIC)
    result = await executor.run(plan, reuse={"old": {"value": 42}})
    assert result.outputs == {"next": 42}


def test_answer_placeholders_never_crash() -> None:
    records = {}
    text = render_answer("${a.x} ${a.missing} ${b} ${nosuch.y} $$5", {"a": {"x": 1}}, records)
    assert text == (
        "1 [$a.missing unavailable: $a has no key 'missing' (keys: x)] "
        "[$b unavailable: no step 'b'] [$nosuch.y unavailable: no step 'nosuch'] $5"
    )
    assert render_answer("$a.x", {"a": {"x": [1, 2]}}) == "[1, 2]"
    assert render_answer(None, {}) is None
    assert render_answer("${unclosed", {}) == "${unclosed"


# --------------------------------------------------------------------------- sync facade


def test_run_plan_works_in_a_plain_script() -> None:
    plan = plan_of(step("w", "get_weather", location="Oslo"), answer="${w.location}")
    assert run_plan(plan, BASIC).answer == "Oslo"


async def test_run_plan_works_inside_a_running_event_loop() -> None:
    assert asyncio.get_running_loop().is_running()
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(threading.current_thread().name))
    plan = plan_of(step("w", "get_weather", location="Oslo"), answer="${w.temp}")
    result = run_plan(plan, BASIC, bus=bus, max_concurrency=2)
    assert result.ok and result.answer == "18"
    assert seen and all(name.startswith("tooldag-sync") for name in seen)


async def test_start_returns_a_handle_that_waits() -> None:
    executor = Executor(BASIC)
    handle = executor.start(plan_of(step("e", "echo", value=1)), run_id="h1")
    assert isinstance(handle, RunHandle) and handle.run_id == "h1"
    first = await handle.wait()
    assert handle.done() and (await handle.wait()) is first
    handle.cancel()  # after the end: a no-op
    assert first.status is RunStatus.SUCCEEDED


def test_start_needs_a_running_loop() -> None:
    with pytest.raises(RunStateError, match="run_plan"):
        Executor(BASIC).start(plan_of())


# --------------------------------------------------------------------------- bad plans, options


async def test_a_cycle_or_duplicate_ids_are_refused_before_anything_runs() -> None:
    executor = Executor(BASIC)
    cyclic = plan_of(step("a", "echo", value="$b"), step("b", "echo", value="$a"))
    with pytest.raises(PlanInvalidError) as info:
        await executor.run(cyclic)
    assert info.value.issues[0].code == "cycle"
    assert info.value.issues[0].hint in ("a -> b -> a", "b -> a -> b")
    twice = plan_of(step("a", "echo"), step("a", "echo"))
    with pytest.raises(PlanInvalidError) as info:
        await executor.run(twice)
    assert info.value.issues[0].code == "duplicate_id"


async def test_steps_written_before_the_steps_they_wait_for_run_after_them() -> None:
    plan = plan_of(
        step("c", "echo", value="${b} and ${a}"),
        step("b", "echo", value="$a"),
        step("a", "echo", value="A"),
    )
    result, events = await run(BASIC, plan)
    assert result.ok and result.outputs["c"] == "A and A"
    order = [e.step_id for e in events.of(EventType.STEP_SUCCEEDED)]
    assert order == ["a", "b", "c"]
    for cyclic in (
        plan_of(step("a", "echo", value="$a")),
        plan_of(step("x", "echo", value="$z"), step("y", "echo"), step("z", "echo", value="$x")),
    ):
        with pytest.raises(PlanInvalidError) as info:
            await Executor(BASIC).run(cyclic)
        assert info.value.issues[0].code == "cycle"


async def test_unknown_tool_and_unknown_step_fail_the_step_not_the_executor() -> None:
    plan = plan_of(
        step("a", "get_wether", location="x"),
        {**step("b", "echo", value=1), "depends_on": ["ghost"]},
        step("c", "echo", value="$ghost2.x"),
    )
    result, _ = await run(BASIC, plan)
    errors = {sid: r.error for sid, r in result.steps.items()}
    assert errors["a"] is not None and "did you mean get_weather?" in errors["a"].message
    assert errors["b"] is not None and "'ghost'" in errors["b"].message
    assert errors["c"] is not None and errors["c"].type == "ReferenceResolutionError"


async def test_a_bad_upstream_value_names_the_step_argument_and_reference() -> None:
    @tool
    def weather_text() -> dict[str, str]:
        return {"temp": "warm", "condition": "sunny"}

    plan = plan_of(
        step("w", "weather_text"),
        step("outfit", "recommend_outfit", temperature="$w.temp", condition="$w.condition"),
    )
    result, _ = await run(ToolRegistry([weather_text, recommend_outfit]), plan)
    error = result.steps["outfit"].error
    assert error is not None and error.type == "ToolArgumentError"
    assert "step 'outfit'" in error.message
    assert "recommend_outfit.temperature" in error.message
    assert "(the value came from $w.temp)" in error.message


@pytest.mark.parametrize(
    "options",
    [
        {"max_concurrency": 0},
        {"tool_limits": {"echo": 0}},
        {"default_timeout": -1},
        {"max_output_bytes": 0},
    ],
)
def test_bad_options_are_a_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Executor(BASIC, **options)


# --------------------------------------------------------------------------- write-ahead


async def test_a_journal_failure_on_success_means_the_step_is_not_done() -> None:
    calls: list[str] = []

    @tool
    def work(name: str, x: Any = None) -> str:
        calls.append(name)
        return name

    def journal(event: Event) -> None:
        if event.type is EventType.STEP_SUCCEEDED and event.step_id == "a":
            raise StoreError("disk full")

    executor = Executor(ToolRegistry([work]))
    executor.bus.subscribe(journal, critical=True)
    plan = plan_of(step("a", "work", name="a"), step("b", "work", name="b", x="$a"))
    result = await executor.run(plan)
    assert calls == ["a"]  # b never ran on an output the journal did not keep
    assert result.status is RunStatus.FAILED
    assert result.steps["a"].status is StepStatus.FAILED
    assert result.steps["a"].output is None and "a" not in result.outputs
    assert result.steps["a"].error is not None
    assert "could not be recorded" in result.steps["a"].error.message
    assert result.steps["b"].status is StepStatus.BLOCKED
    assert result.error is not None and "journal failed" in result.error


async def test_a_journal_failure_on_start_means_the_tool_is_never_called() -> None:
    calls: list[int] = []

    @tool
    def work() -> int:
        calls.append(1)
        return 1

    def journal(event: Event) -> None:
        if event.type is EventType.STEP_STARTED:
            raise StoreError("database is locked")

    executor = Executor(ToolRegistry([work]))
    executor.bus.subscribe(journal, critical=True)
    result = await executor.run(plan_of(step("a", "work")))
    assert calls == []
    assert result.status is RunStatus.FAILED
    assert result.steps["a"].error is not None
    assert result.steps["a"].error.type == "StoreError"


async def test_a_failing_ordinary_subscriber_does_not_break_the_run() -> None:
    executor = Executor(BASIC)
    executor.bus.subscribe(lambda e: 1 / 0)  # type: ignore[func-returns-value]
    result = await executor.run(plan_of(step("e", "echo", value=1)))
    assert result.ok


# --------------------------------------------------------------------------- pause


async def test_pause_lets_running_steps_finish_and_starts_nothing_new() -> None:
    handle: RunHandle | None = None
    calls: list[str] = []

    @tool
    async def pauser(name: str, x: Any = None) -> str:
        calls.append(name)
        if name == "first":
            assert handle is not None
            handle.pause()
        return name

    plan = plan_of(
        step("first", "pauser", name="first"), step("second", "pauser", name="second", x="$first")
    )
    executor = Executor(ToolRegistry([pauser]))
    handle = executor.start(plan)
    result = await asyncio.wait_for(handle.wait(), GATE_TIMEOUT)
    assert result.status is RunStatus.PAUSED
    assert result.steps["first"].status is StepStatus.SUCCEEDED
    assert result.steps["second"].status is StepStatus.PENDING
    assert calls == ["first"]
    # Resume: run the plan again reusing what completed.
    resumed = await executor.run(plan, run_id=result.run_id, reuse=result.outputs)
    assert resumed.ok and calls == ["first", "second"]
