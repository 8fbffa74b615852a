"""Open runs: an execution started before its plan is complete, fed steps as they come, ended by
its seal. Proved with events and gates, never with timing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tooldag import Plan, Step, ToolRegistry, tool
from tooldag.errors import PlanInvalidError, RunStateError
from tooldag.events import Event, EventType, RunStarted
from tooldag.execution.executor import Executor
from tooldag.result import RunStatus, StepStatus

GATE_TIMEOUT = 5.0


def make_registry(gate: asyncio.Event | None = None) -> ToolRegistry:
    @tool(side_effects=False, idempotent=True)
    async def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    @tool(side_effects=False, idempotent=True)
    async def wait(x: int) -> int:
        """x, once the gate opens."""
        assert gate is not None
        await asyncio.wait_for(gate.wait(), GATE_TIMEOUT)
        return x

    return ToolRegistry([double, wait])


def step(sid: str, tool_name: str, **args: Any) -> Step:
    return Step(id=sid, tool=tool_name, args=args)


def events_of(executor: Executor) -> list[Event]:
    seen: list[Event] = []
    executor.bus.subscribe(seen.append)
    return seen


async def test_an_open_run_runs_steps_as_they_come_and_ends_only_when_sealed() -> None:
    executor = Executor(make_registry())
    seen = events_of(executor)
    handle = executor.start(Plan(goal="g", steps=[step("a", "double", x=1)]), sealed=False)
    records = await handle.settle()
    assert records["a"].status is StepStatus.SUCCEEDED and records["a"].output == 2
    assert not handle.done()  # finished steps, but not a finished run: more may come
    handle.extend([step("b", "double", x="$a")])
    assert (await handle.settle())["b"].output == 4
    plan = Plan(
        goal="g",
        steps=[step("a", "double", x=1), step("b", "double", x="$a"), step("c", "double", x="$b")],
        answer="${c}",
    )
    handle.seal(plan)
    result = await handle.wait()
    assert result.status is RunStatus.SUCCEEDED
    assert result.answer == "8"
    assert result.plans == [plan]
    started = [e for e in seen if isinstance(e.data, RunStarted)]
    assert len(started) == 1 and started[0].data.plan is None  # the plan was not known yet


async def test_a_step_waits_for_a_step_given_with_it_or_before_it() -> None:
    gate = asyncio.Event()
    executor = Executor(make_registry(gate))
    seen = events_of(executor)
    handle = executor.start(Plan(steps=[step("slow", "wait", x=3)]), sealed=False)
    handle.extend([step("next", "double", x="$slow")])
    await asyncio.sleep(0)
    assert not [e for e in seen if e.type is EventType.STEP_STARTED and e.step_id == "next"]
    gate.set()
    handle.seal()
    result = await handle.wait()
    assert result.steps["next"].output == 6


async def test_a_sealed_run_takes_no_more_steps_and_a_step_id_is_taken_once() -> None:
    executor = Executor(make_registry())
    handle = executor.start(Plan(steps=[step("a", "double", x=1)]), sealed=False)
    with pytest.raises(PlanInvalidError, match="its own id"):
        handle.extend([step("a", "double", x=2)])
    handle.seal()
    with pytest.raises(RunStateError, match="sealed"):
        handle.extend([step("b", "double", x=2)])
    assert (await handle.wait()).status is RunStatus.SUCCEEDED


async def test_the_seal_refuses_a_plan_that_changed_a_step_given_before() -> None:
    executor = Executor(make_registry())
    handle = executor.start(Plan(steps=[step("a", "double", x=1)]), sealed=False)
    with pytest.raises(PlanInvalidError, match="changed steps"):
        handle.seal(Plan(steps=[step("a", "double", x=5)]))
    assert not handle.sealed
    handle.cancel()
    await handle.wait()


async def test_the_seal_adds_the_rest_with_its_reuse_and_keeps_what_ran() -> None:
    executor = Executor(make_registry())
    handle = executor.start(Plan(steps=[step("a", "double", x=1)]), sealed=False)
    await handle.settle()
    plan = Plan(steps=[step("a", "double", x=1), step("old", "double", x=7)], answer="${old}")
    # "a" ran here: an output offered for it is not taken over what it returned.
    handle.seal(plan, reuse={"a": 999, "old": 14})
    result = await handle.wait()
    assert result.outputs == {"a": 2, "old": 14}
    assert result.steps["old"].reused and not result.steps["a"].reused


async def test_a_cycle_in_the_steps_given_together_is_refused() -> None:
    executor = Executor(make_registry())
    handle = executor.start(Plan(), sealed=False)
    with pytest.raises(PlanInvalidError, match="cycle"):
        handle.extend([step("a", "double", x="$b"), step("b", "double", x="$a")])
    handle.cancel()
    assert (await handle.wait()).status is RunStatus.CANCELLED


async def test_cancelling_an_open_run_cancels_its_running_steps() -> None:
    gate = asyncio.Event()  # never opened
    executor = Executor(make_registry(gate))
    handle = executor.start(Plan(steps=[step("slow", "wait", x=1)]), sealed=False)
    seen = events_of(executor)
    while not [e for e in seen if e.type is EventType.STEP_STARTED]:
        await asyncio.sleep(0)
    handle.cancel()
    result = await handle.wait()
    assert result.status is RunStatus.CANCELLED
    assert result.steps["slow"].status is StepStatus.CANCELLED


async def test_an_open_run_that_never_got_a_step_ends_when_cancelled() -> None:
    executor = Executor(make_registry())
    handle = executor.start(Plan(goal="g"), sealed=False)
    await asyncio.sleep(0)
    handle.cancel()
    result = await handle.wait()
    assert result.status is RunStatus.CANCELLED and result.steps == {}


async def test_an_open_run_takes_steps_on_its_own_loop_only() -> None:
    executor = Executor(make_registry())
    handle = executor.start(Plan(), sealed=False)
    with pytest.raises(RunStateError, match="own event loop"):
        await asyncio.to_thread(handle.extend, [step("a", "double", x=1)])
    handle.cancel()
    await handle.wait()
