"""The saga ledger its caller owns: what each execution did is recorded once, undone once (also
when cancelled halfway), last finished first, and its failures come back as values."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from test_executor import Events, plan_of, step
from test_executor_failures import GATE_TIMEOUT, SAGA, saga_tools
from tooldag import Compensation, ToolRegistry, tool
from tooldag.errors import ConfigError
from tooldag.events import EventType, RunFinished
from tooldag.execution import CompensationFailure, Executor, Ledger
from tooldag.result import RunStatus, StepStatus


def saga(**options: Any) -> tuple[Executor, Ledger, dict[str, Any]]:
    tools = saga_tools(**options)
    executor = Executor(ToolRegistry(tools["tools"]))
    return executor, Ledger("r1", executor.options), tools


def undos(tools: dict[str, Any]) -> list[str]:
    return [c[0] for c in tools["calls"] if c[0] in ("release", "refund", "cancel_shipment")]


async def test_failures_come_back_as_values_and_the_other_steps_are_still_undone() -> None:
    executor, ledger, tools = saga(failing_undo="refund")
    result = await executor.run(SAGA, ledger=ledger, compensate=False)
    assert result.ok and undos(tools) == []
    report = await ledger.compensate()
    assert undos(tools) == ["cancel_shipment", "refund", "release"]
    assert [r.id for r in report.compensated] == ["ship", "reserve"]
    (failure,) = report.failures
    assert isinstance(failure, CompensationFailure)
    assert (failure.step_id, failure.tool, failure.error.type) == (
        "charge",
        "refund",
        "PermanentToolError",
    )
    assert report.error == "compensation 'refund' of step 'charge' failed: refund is down"
    undone = report.apply(result)
    assert undone.steps["charge"].status is StepStatus.SUCCEEDED  # its effect stands, visibly
    assert undone.steps["charge"].error == failure.error
    assert undone.error == report.error


async def test_a_compensation_cancelled_halfway_never_undoes_a_step_twice() -> None:
    undone: list[str] = []
    hanging = asyncio.Event()

    @tool
    async def undo(name: str) -> None:
        undone.append(name)
        if name == "second":
            hanging.set()
            await asyncio.Event().wait()

    @tool(compensate=Compensation("undo", {"name": "$args.name"}))
    def do(name: str) -> str:
        return name

    executor = Executor(ToolRegistry([do, undo]))
    ledger = Ledger("r1", executor.options)
    plan = plan_of(
        step("a", "do", name="first"), {**step("b", "do", name="second"), "depends_on": ["a"]}
    )
    await executor.run(plan, ledger=ledger, compensate=False)
    compensating = asyncio.ensure_future(ledger.compensate())
    await asyncio.wait_for(hanging.wait(), GATE_TIMEOUT)
    compensating.cancel()
    with pytest.raises(asyncio.CancelledError):
        await compensating
    again = await ledger.compensate()
    assert undone == ["second"] and again.entries == () and len(ledger) == 0


async def test_a_step_reused_by_a_later_execution_is_undone_once() -> None:
    executor, ledger, tools = saga()
    first = plan_of(step("reserve", "reserve", items=["a"]))
    second = plan_of(
        step("reserve", "reserve", items=["a"]), step("n", "notify", text="$reserve.id")
    )
    await executor.run(first, ledger=ledger, compensate=False)
    result = await executor.run(
        second, ledger=ledger, compensate=False, reuse={"reserve": {"id": "R1"}}
    )
    assert result.steps["reserve"].reused
    report = await ledger.compensate()
    assert undos(tools) == ["release"]
    undone = report.apply(result)
    assert undone.steps["reserve"].status is StepStatus.COMPENSATED
    assert "reserve@1" not in undone.steps


async def test_a_resumed_run_undoes_the_steps_it_reused_from_before() -> None:
    # Its earlier executions are on no ledger: what it reused is undone with what it ran.
    executor, _, tools = saga(fail_step="charge")
    result = await executor.run(SAGA, reuse={"reserve": {"id": "R0"}})
    assert result.status is RunStatus.FAILED
    assert [c for c in tools["calls"] if c[0] == "release"] == [
        ("release", {"reservation_id": "R0"})
    ]
    assert result.steps["reserve"].status is StepStatus.COMPENSATED


async def test_an_earlier_executions_step_that_the_result_lacks_shows_under_its_key() -> None:
    executor, ledger, tools = saga(failing_undo="release")
    await executor.run(
        plan_of(step("reserve", "reserve", items=["a"])), ledger=ledger, compensate=False
    )
    result = await executor.run(
        plan_of(step("charge", "charge", amount=1, reservation="R1")),
        ledger=ledger,
        compensate=False,
    )
    undone = (await ledger.compensate()).apply(result)
    assert undos(tools) == ["refund", "release"]
    assert undone.steps["charge"].status is StepStatus.COMPENSATED
    earlier = undone.steps["reserve@1"]
    assert earlier.status is StepStatus.SUCCEEDED and earlier.error is not None
    assert "release is down" in earlier.error.message


async def test_compensate_names_the_end_statuses_that_undo_a_run() -> None:
    executor, _, tools = saga(fail_step="charge")
    events = Events(executor.bus)
    failed = await executor.run(SAGA, compensate={"cancelled"})  # what the durable runner asks
    assert failed.status is RunStatus.FAILED and undos(tools) == []
    assert failed.steps["reserve"].status is StepStatus.SUCCEEDED
    finished = events.of(EventType.RUN_FINISHED)[0].data
    assert isinstance(finished, RunFinished) and finished.final is True
    with pytest.raises(ConfigError, match="compensate="):
        executor.start(SAGA, compensate={"sometimes"})


async def test_a_run_refuses_a_ledger_of_another_run() -> None:
    executor, ledger, _ = saga()
    with pytest.raises(ConfigError, match="ledger"):
        executor.start(SAGA, run_id="r2", ledger=ledger)
    handle = executor.start(plan_of(step("n", "notify", text="hi")), ledger=ledger)
    assert handle.run_id == "r1"
    await handle.wait()
