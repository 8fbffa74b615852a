"""Failures: retries (transient only), timeouts, bad tool output, compensation and cancellation.

Every test ends: a tool that hangs forever is cut by a timeout or a cancel, and the test asserts
the structured error, the attempt count and the events.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from test_executor import Events, plan_of, step
from tooldag import Compensation, Plan, RetryPolicy, ToolRegistry, tool
from tooldag.errors import PermanentToolError, TransientToolError
from tooldag.events import (
    EventType,
    RunFinished,
    StepCompensated,
    StepCompensationFailed,
    StepRetrying,
)
from tooldag.execution.executor import Executor, RunHandle
from tooldag.execution.saga import Ledger
from tooldag.result import RunStatus, StepError, StepStatus

GATE_TIMEOUT = 5.0
FAST_RETRY = RetryPolicy(attempts=3, initial_backoff=0.001, max_backoff=0.001, jitter=0.0)


async def run(tools: list[Any], plan: Plan, **options: Any) -> tuple[Any, Events]:
    executor = Executor(ToolRegistry(tools), **options)
    events = Events(executor.bus)
    return await asyncio.wait_for(executor.run(plan), GATE_TIMEOUT * 2), events


def flaky(exc: Exception, failures: int, **options: Any) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @tool(name="flaky", retry=FAST_RETRY, **options)
    def flaky_tool() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc
        return "ok"

    return flaky_tool, calls


# --------------------------------------------------------------------------- retries


async def test_a_transient_error_is_retried_until_it_succeeds() -> None:
    flaky_tool, calls = flaky(TransientToolError("rate limited"), failures=2)
    result, events = await run([flaky_tool], plan_of(step("s", "flaky")))
    assert result.ok and len(calls) == 3
    assert result.steps["s"].attempts == 3
    assert [e.attempt for e in events.of(EventType.STEP_STARTED)] == [1, 2, 3]
    retrying = events.of(EventType.STEP_RETRYING)
    assert [e.attempt for e in retrying] == [1, 2]
    first = retrying[0].data
    assert isinstance(first, StepRetrying)
    assert first.error == StepError(
        type="TransientToolError", message="rate limited", transient=True
    )
    assert first.delay == pytest.approx(0.001)
    assert events.of(EventType.STEP_SUCCEEDED)[0].attempt == 3


async def test_transient_errors_stop_after_the_policy_attempts() -> None:
    flaky_tool, calls = flaky(ConnectionError("connection reset"), failures=10)
    result, events = await run([flaky_tool], plan_of(step("s", "flaky")))
    assert result.status is RunStatus.FAILED and len(calls) == 3
    error = result.steps["s"].error
    assert error is not None and error.type == "ConnectionError" and error.transient
    assert error.message == "connection reset (after 3 attempts)"
    assert len(events.of(EventType.STEP_RETRYING)) == 2
    assert events.of(EventType.STEP_FAILED)[0].attempt == 3


@pytest.mark.parametrize(
    "exc",
    [PermanentToolError("no such city"), ValueError("bad input"), KeyError("x")],
)
async def test_a_permanent_error_fails_at_once(exc: Exception) -> None:
    flaky_tool, calls = flaky(exc, failures=10)
    result, events = await run([flaky_tool], plan_of(step("s", "flaky")))
    assert result.status is RunStatus.FAILED and len(calls) == 1
    error = result.steps["s"].error
    assert error is not None and error.type == type(exc).__name__ and not error.transient
    assert not events.of(EventType.STEP_RETRYING)


async def test_an_httpx_transport_error_is_transient() -> None:
    import httpx

    flaky_tool, calls = flaky(httpx.ConnectError("refused"), failures=1)
    result, _ = await run([flaky_tool], plan_of(step("s", "flaky")))
    assert result.ok and len(calls) == 2


# --------------------------------------------------------------------------- timeouts


def hanging(**options: Any) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @tool(name="hang", retry=FAST_RETRY, **options)
    async def hang_tool() -> None:
        calls.append(1)
        await asyncio.Event().wait()  # never set

    return hang_tool, calls


async def test_a_hanging_tool_times_out_and_is_not_retried_if_it_has_side_effects() -> None:
    hang_tool, calls = hanging(side_effects=True)
    result, events = await run([hang_tool], plan_of({**step("s", "hang"), "timeout": 0.05}))
    error = result.steps["s"].error
    assert error is not None and error.type == "TimeoutError"
    assert "did not finish within 0.05s" in error.message and not error.transient
    assert len(calls) == 1 and not events.of(EventType.STEP_RETRYING)


async def test_a_timeout_of_a_read_only_tool_is_retried() -> None:
    hang_tool, calls = hanging(side_effects=False)
    result, _ = await run([hang_tool], plan_of({**step("s", "hang"), "timeout": 0.02}))
    assert result.steps["s"].status is StepStatus.FAILED and len(calls) == 3
    assert result.steps["s"].error is not None and result.steps["s"].error.transient


async def test_timeout_comes_from_the_step_then_the_tool_then_the_default() -> None:
    hang_tool, _ = hanging(side_effects=True, timeout=0.03)
    result, _ = await run([hang_tool], plan_of(step("s", "hang")), default_timeout=30)
    assert result.steps["s"].error is not None
    assert "within 0.03s" in result.steps["s"].error.message
    hang_tool, _ = hanging(side_effects=True)
    result, _ = await run([hang_tool], plan_of(step("s", "hang")), default_timeout=0.04)
    assert result.steps["s"].error is not None
    assert "within 0.04s" in result.steps["s"].error.message


async def test_parallel_steps_each_time_out_at_their_own_deadline() -> None:
    """One timer serves the run's deadlines: each step still times out at its own, and a step
    that finishes in time is left alone."""
    hang_tool, _ = hanging(side_effects=True)

    @tool
    async def quick() -> str:
        return "done"

    plan = plan_of(
        {**step("late", "hang"), "timeout": 0.2},
        {**step("soon", "hang"), "timeout": 0.02},
        {**step("fine", "quick"), "timeout": 0.01},
    )
    result, events = await run([hang_tool, quick], plan)
    messages = {sid: r.error.message for sid, r in result.steps.items() if r.error is not None}
    assert "within 0.2s" in messages["late"] and "within 0.02s" in messages["soon"]
    assert result.outputs == {"fine": "done"}
    failed = [e.step_id for e in events.of(EventType.STEP_FAILED)]
    assert failed == ["soon", "late"]  # in the order of their deadlines


async def test_a_run_arms_a_timer_per_deadline_it_waits_for_not_per_step() -> None:
    """asyncio.timeout around every call put a timer per step in the loop's heap: about 5 us of
    a no-op step's cost."""

    @tool
    async def quick(x: Any = None) -> None:
        return None

    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, *args, **kwargs)

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        steps = [step("s0", "quick")] + [
            {**step(f"s{i}", "quick"), "args": {"x": f"$s{i - 1}"}} for i in range(1, 200)
        ]
        result, _ = await run([quick], plan_of(*steps))
    finally:
        del loop.call_at
    assert result.ok
    assert len(armed) <= 2


async def test_a_step_cancelled_as_its_deadline_passes_is_cancelled_not_timed_out() -> None:
    """As under asyncio.timeout: a cancellation someone else asked for as well stays one."""
    deadline_hit, never = asyncio.Event(), asyncio.Event()

    @tool(side_effects=True)
    async def stubborn() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:  # the deadline's: hold on until the run is cancelled too
            deadline_hit.set()
            await never.wait()

    executor = Executor(ToolRegistry([stubborn]))
    handle = executor.start(plan_of({**step("s", "stubborn"), "timeout": 0.01}))
    await asyncio.wait_for(deadline_hit.wait(), GATE_TIMEOUT)
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), GATE_TIMEOUT)
    assert result.status is RunStatus.CANCELLED
    assert result.steps["s"].status is StepStatus.CANCELLED


async def test_a_hanging_sync_tool_times_out_and_its_thread_is_left_behind() -> None:
    release = threading.Event()

    @tool
    def stuck() -> str:
        release.wait(GATE_TIMEOUT)
        return "too late"

    try:
        result, _ = await run([stuck], plan_of({**step("s", "stuck"), "timeout": 0.05}))
        assert result.steps["s"].status is StepStatus.FAILED
        assert result.steps["s"].error is not None
        assert result.steps["s"].error.type == "TimeoutError"
        assert "s" not in result.outputs
    finally:
        release.set()


# --------------------------------------------------------------------------- bad output


async def test_an_output_that_is_not_json_is_a_clear_failure() -> None:
    calls: list[int] = []

    @tool(retry=FAST_RETRY)
    def opaque() -> Any:
        calls.append(1)
        return {"lock": threading.Lock()}

    result, _ = await run([opaque], plan_of(step("s", "opaque")))
    error = result.steps["s"].error
    assert error is not None and error.type == "PermanentToolError"
    assert "cannot be turned into JSON" in error.message and "pydantic models" in error.message
    assert calls == [1]


async def test_a_huge_output_is_a_clear_failure() -> None:
    @tool
    def huge() -> str:
        return "x" * 5_000

    @tool
    def big_list() -> list[int]:
        return list(range(2_000))

    result, _ = await run(
        [huge, big_list],
        plan_of(step("text", "huge"), step("numbers", "big_list")),
        max_output_bytes=1_000,
    )
    for sid in ("text", "numbers"):
        error = result.steps[sid].error
        assert error is not None and "more than the limit of 1,000" in error.message


async def test_output_missing_the_referenced_key_fails_the_reader_by_name() -> None:
    @tool
    def weather() -> dict[str, Any]:
        return {"temperature": 18}

    @tool
    def use(temp: int) -> int:
        return temp

    result, _ = await run(
        [weather, use], plan_of(step("w", "weather"), step("u", "use", temp="$w.temp"))
    )
    error = result.steps["u"].error
    assert error is not None and error.type == "ReferenceResolutionError"
    assert error.message == (
        "step 'u', argument 'temp': reference $w.temp does not resolve: "
        "$w has no key 'temp' (keys: temperature)"
    )


async def test_an_incomparable_condition_fails_its_step_and_the_run_goes_on() -> None:
    @tool
    def weather() -> dict[str, Any]:
        return {"temp": "warm"}

    @tool
    def alert(msg: str) -> str:
        return msg

    plan = plan_of(
        step("w", "weather"),
        {**step("cold", "alert", msg="cold"), "when": {"ref": "$w.temp", "op": "<", "value": 0}},
        step("other", "alert", msg="still runs"),
    )
    result, _ = await run([weather, alert], plan)
    error = result.steps["cold"].error
    assert error is not None and error.type == "ConditionError"
    assert error.message.startswith("step 'cold': its 'when' condition: $w.temp < 0: cannot order")
    assert result.steps["other"].status is StepStatus.SUCCEEDED


# --------------------------------------------------------------------------- compensation


def saga_tools(fail_step: str | None = None, failing_undo: str | None = None) -> dict[str, Any]:
    """reserve -> charge -> ship; each undone by its own tool; ``calls`` records everything."""
    calls: list[tuple[str, Any]] = []

    @tool(compensate=Compensation("release", {"reservation_id": "$output.id"}))
    def reserve(items: list[str]) -> dict[str, Any]:
        calls.append(("reserve", items))
        return {"id": "R1"}

    @tool(compensate=Compensation("refund", {"txn": "$output.txn", "amount": "$args.amount"}))
    def charge(amount: int, reservation: str) -> dict[str, Any]:
        calls.append(("charge", amount))
        if fail_step == "charge":
            raise PermanentToolError("card declined")
        return {"txn": "T1", "order_id": "O1"}

    @tool(compensate=Compensation("cancel_shipment", {"shipment_id": "$output.id"}))
    def ship(order_id: str) -> dict[str, Any]:
        calls.append(("ship", order_id))
        if fail_step == "ship":
            raise PermanentToolError("no courier")
        return {"id": "S1"}

    @tool
    def notify(text: str) -> str:  # no compensation: nothing to undo
        calls.append(("notify", text))
        return text

    def undo(name: str) -> Any:
        def run_undo(**kwargs: Any) -> str:
            calls.append((name, kwargs))
            if failing_undo == name:
                raise PermanentToolError(f"{name} is down")
            return "undone"

        return run_undo

    @tool
    def release(reservation_id: str) -> str:
        return str(undo("release")(reservation_id=reservation_id))

    @tool
    def refund(txn: str, amount: int) -> str:
        return str(undo("refund")(txn=txn, amount=amount))

    @tool
    def cancel_shipment(shipment_id: str) -> str:
        return str(undo("cancel_shipment")(shipment_id=shipment_id))

    tools = [reserve, charge, ship, notify, release, refund, cancel_shipment]
    return {"tools": tools, "calls": calls}


SAGA = plan_of(
    step("reserve", "reserve", items=["item1", "item2"]),
    step("charge", "charge", amount=100, reservation="$reserve.id"),
    step("notify", "notify", text="charged ${charge.txn}"),
    step("ship", "ship", order_id="$charge.order_id"),
    {**step("done", "notify", text="shipped"), "depends_on": ["ship"]},
)


async def test_a_failed_run_is_compensated_in_reverse_completion_order() -> None:
    saga = saga_tools(fail_step="ship")
    result, events = await run(saga["tools"], SAGA)
    assert result.status is RunStatus.FAILED
    undo_calls = [c for c in saga["calls"] if c[0] in ("release", "refund", "cancel_shipment")]
    assert undo_calls == [
        ("refund", {"txn": "T1", "amount": 100}),
        ("release", {"reservation_id": "R1"}),
    ]
    assert [e.step_id for e in events.of(EventType.STEP_COMPENSATED)] == ["charge", "reserve"]
    assert [e.data for e in events.of(EventType.STEP_COMPENSATED)] == [
        StepCompensated("refund"),
        StepCompensated("release"),
    ]
    statuses = {sid: r.status.value for sid, r in result.steps.items()}
    assert statuses == {
        "reserve": "compensated",
        "charge": "compensated",
        "notify": "succeeded",  # its tool declares no compensation
        "ship": "failed",
        "done": "blocked",
    }
    finished = events.of(EventType.RUN_FINISHED)[0]
    assert events.all.index(finished) > events.all.index(events.of(EventType.STEP_COMPENSATED)[-1])


async def test_a_compensation_failure_is_recorded_and_the_others_still_run() -> None:
    saga = saga_tools(fail_step="ship", failing_undo="refund")
    result, events = await run(saga["tools"], SAGA)
    assert [c[0] for c in saga["calls"] if c[0] in ("refund", "release")] == ["refund", "release"]
    (failed,) = events.of(EventType.STEP_COMPENSATION_FAILED)
    assert isinstance(failed.data, StepCompensationFailed)
    assert failed.step_id == "charge" and failed.data.tool == "refund"
    assert failed.data.error.type == "PermanentToolError"
    charge = result.steps["charge"]
    assert charge.status is StepStatus.SUCCEEDED  # its effect is still there
    assert charge.error is not None
    assert charge.error.message == ("compensation 'refund' of step 'charge' failed: refund is down")
    assert result.steps["reserve"].status is StepStatus.COMPENSATED
    assert result.error is not None and "compensation 'refund'" in result.error


async def test_a_successful_run_is_not_compensated() -> None:
    saga = saga_tools()
    result, events = await run(saga["tools"], SAGA)
    assert result.ok and not events.of(EventType.STEP_COMPENSATED)


async def test_compensation_can_be_left_to_the_caller() -> None:
    saga = saga_tools(fail_step="charge")
    executor = Executor(ToolRegistry(saga["tools"]))
    ledger = Ledger("r1", executor.options)
    result = await executor.run(SAGA, ledger=ledger, compensate=False)
    assert result.steps["reserve"].status is StepStatus.SUCCEEDED
    assert not [c for c in saga["calls"] if c[0] == "release"]
    undone = (await ledger.compensate()).apply(result)
    assert undone.steps["reserve"].status is StepStatus.COMPENSATED
    assert result.steps["reserve"].status is StepStatus.SUCCEEDED  # the original is untouched
    assert [c[0] for c in saga["calls"] if c[0] == "release"] == ["release"]
    again = (await ledger.compensate()).apply(undone)  # nothing left to undo
    assert [c[0] for c in saga["calls"] if c[0] == "release"] == ["release"]
    assert again.steps["reserve"].status is StepStatus.COMPENSATED


# --------------------------------------------------------------------------- cancellation


async def test_cancel_from_another_thread_stops_the_run_and_compensates() -> None:
    saga = saga_tools()
    started = threading.Event()
    never = asyncio.Event()

    @tool
    async def wait_forever(order_id: str) -> str:
        started.set()
        await never.wait()
        return "unreachable"

    plan = plan_of(
        step("reserve", "reserve", items=["a"]),
        step("charge", "charge", amount=5, reservation="$reserve.id"),
        step("wait", "wait_forever", order_id="$charge.order_id"),
        step("after", "notify", text="$wait"),
    )
    executor = Executor(ToolRegistry([*saga["tools"], wait_forever]))
    events = Events(executor.bus)
    handle = executor.start(plan)

    def canceller() -> None:
        assert started.wait(GATE_TIMEOUT)
        handle.cancel()
        handle.cancel()  # idempotent

    thread = threading.Thread(target=canceller)
    thread.start()
    result = await asyncio.wait_for(handle.wait(), GATE_TIMEOUT)
    thread.join()
    assert result.status is RunStatus.CANCELLED
    statuses = {sid: r.status.value for sid, r in result.steps.items()}
    assert statuses == {
        "reserve": "compensated",
        "charge": "compensated",
        "wait": "cancelled",
        "after": "blocked",
    }
    assert result.steps["wait"].reason == "cancelled while running (the run was cancelled)"
    assert [e.step_id for e in events.of(EventType.STEP_COMPENSATED)] == ["charge", "reserve"]
    assert events.of(EventType.STEP_CANCELLED, "wait")
    finished = events.of(EventType.RUN_FINISHED)[0].data
    assert isinstance(finished, RunFinished) and finished.status is RunStatus.CANCELLED
    assert result.error is not None and result.error.startswith("the run was cancelled")


async def test_cancelling_a_sync_tool_discards_its_late_result() -> None:
    in_thread = threading.Event()
    release = threading.Event()
    handle: RunHandle | None = None

    @tool
    def blocking() -> str:
        in_thread.set()
        release.wait(GATE_TIMEOUT)
        return "late"

    executor = Executor(ToolRegistry([blocking]))
    handle = executor.start(plan_of(step("s", "blocking")))
    try:
        await asyncio.get_running_loop().run_in_executor(None, in_thread.wait, GATE_TIMEOUT)
        handle.cancel()
        result = await asyncio.wait_for(handle.wait(), GATE_TIMEOUT)
    finally:
        release.set()
    assert result.status is RunStatus.CANCELLED
    assert result.steps["s"].status is StepStatus.CANCELLED and result.outputs == {}


async def test_cancelling_the_caller_cancels_the_run_with_compensation() -> None:
    saga = saga_tools()
    started = asyncio.Event()

    @tool
    async def wait_forever(x: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    plan = plan_of(
        step("reserve", "reserve", items=["a"]),
        step("wait", "wait_forever", x="$reserve"),
    )
    executor = Executor(ToolRegistry([*saga["tools"], wait_forever]))
    events = Events(executor.bus)
    caller = asyncio.ensure_future(executor.run(plan))
    await asyncio.wait_for(started.wait(), GATE_TIMEOUT)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert [e.step_id for e in events.of(EventType.STEP_COMPENSATED)] == ["reserve"]
    finished = events.of(EventType.RUN_FINISHED)[0].data
    assert isinstance(finished, RunFinished) and finished.status is RunStatus.CANCELLED


async def test_cancel_before_anything_starts_cancels_every_step() -> None:
    @tool
    def work() -> int:
        return 1

    executor = Executor(ToolRegistry([work]))
    events = Events(executor.bus)
    handle = executor.start(plan_of(step("a", "work"), step("b", "work")))
    handle.cancel()
    result = await handle.wait()
    assert result.status is RunStatus.CANCELLED
    assert {r.status for r in result.steps.values()} == {StepStatus.CANCELLED}
    assert not events.of(EventType.STEP_STARTED)


async def test_cancelling_the_run_task_itself_still_compensates() -> None:
    # What asyncio.run does to leftover tasks on shutdown (e.g. after Ctrl-C on Windows).
    saga = saga_tools()
    started = asyncio.Event()

    @tool
    async def wait_forever(x: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    plan = plan_of(step("reserve", "reserve", items=["a"]), step("w", "wait_forever", x="$reserve"))
    executor = Executor(ToolRegistry([*saga["tools"], wait_forever]))
    events = Events(executor.bus)
    handle = executor.start(plan)
    await asyncio.wait_for(started.wait(), GATE_TIMEOUT)
    handle._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handle._task
    assert [e.step_id for e in events.of(EventType.STEP_COMPENSATED)] == ["reserve"]
    finished = events.of(EventType.RUN_FINISHED)[0].data
    assert isinstance(finished, RunFinished) and finished.status is RunStatus.CANCELLED
