"""Durable runs in one process: start, resume, pause, cancel, a status flip and a failed commit."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from store_helpers import db_error, integrity, orphan, raw
from tooldag.durable.runner import DurableExecutor, StatefulWorkflowExecutor, resume
from tooldag.durable.store import INTERRUPTED, RunStore
from tooldag.errors import PlanInvalidError, RunStateError
from tooldag.events import Event, EventBus, EventType
from tooldag.plan import Plan
from tooldag.plan.reuse import reusable_outputs
from tooldag.registry import Compensation, ToolContext, ToolRegistry, tool
from tooldag.result import RunStatus, StepStatus

CHAIN = Plan.model_validate(
    {
        "goal": "count up",
        "steps": [
            {"id": "a", "tool": "inc", "args": {"x": 1}},
            {"id": "b", "tool": "inc", "args": {"x": "$a"}},
            {"id": "c", "tool": "inc", "args": {"x": "$b"}},
        ],
        "answer": "c = ${c}",
    }
)


class Tools:
    """Tools that count their calls, with switches to fail or hold a step."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.keys: list[str] = []
        self.fail: set[str] = set()
        self.hold: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self.released: list[str] = []

        @tool
        async def inc(x: int, ctx: ToolContext) -> int:
            """Add one."""
            self.calls[ctx.step_id] += 1
            self.keys.append(ctx.idempotency_key)
            if ctx.step_id in self.entered:
                self.entered[ctx.step_id].set()
            if ctx.step_id in self.hold:
                await self.hold[ctx.step_id].wait()
            if ctx.step_id in self.fail:
                raise RuntimeError(f"{ctx.step_id} broke")
            return x + 1

        @tool
        def release(reservation: str) -> None:
            """Undo a reservation."""
            self.released.append(reservation)

        @tool(compensate=Compensation("release", {"reservation": "$output.id"}))
        def reserve(item: str, ctx: ToolContext) -> dict[str, str]:
            """Reserve an item."""
            self.calls[ctx.step_id] += 1
            return {"id": f"res-{item}"}

        self.registry = ToolRegistry([inc, release, reserve])


@pytest.fixture
def tools() -> Tools:
    return Tools()


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    s = RunStore(store_url)
    yield s
    s.close()


@pytest.fixture
def runner(tools: Tools, store: RunStore) -> Iterator[DurableExecutor]:
    r = DurableExecutor(tools.registry, store=store)
    yield r
    r.close()


async def test_start_runs_the_plan_and_journals_every_step(
    runner: DurableExecutor, store: RunStore
) -> None:
    result = await runner.astart("r1", CHAIN)
    assert result.ok and result.outputs == {"a": 2, "b": 3, "c": 4} and result.answer == "c = 4"
    stored = store.load_result("r1")
    assert stored.status is RunStatus.SUCCEEDED and stored.outputs == result.outputs
    assert stored.answer == "c = 4" and stored.plans == [CHAIN]
    assert [s.attempts for s in stored.steps.values()] == [1, 1, 1]
    assert store.get_run("r1").status == "succeeded"  # type: ignore[union-attr]
    assert runner.get_state("r1") == stored
    assert runner.get_state("nope") is None


def test_seed_name_and_sync_facade_work(tools: Tools, store: RunStore) -> None:
    executor = StatefulWorkflowExecutor(tools.registry, store=store)
    assert executor.start("r1", CHAIN).outputs["c"] == 4
    assert executor.get_state("r1").status is RunStatus.SUCCEEDED  # type: ignore[union-attr]


async def test_starting_a_completed_run_id_is_refused(runner: DurableExecutor) -> None:
    await runner.astart("r1", CHAIN)
    with pytest.raises(RunStateError, match="already completed"):
        await runner.astart("r1", CHAIN)
    with pytest.raises(RunStateError, match="already completed"):
        await runner.aresume("r1")


async def test_starting_or_resuming_a_running_run_id_is_refused(
    runner: DurableExecutor, tools: Tools
) -> None:
    tools.hold["b"], tools.entered["b"] = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(runner.astart("r1", CHAIN))
    await tools.entered["b"].wait()
    with pytest.raises(RunStateError, match="already running"):
        await runner.astart("r1", CHAIN)
    with pytest.raises(RunStateError, match="already running"):
        await runner.aresume("r1")
    tools.hold["b"].set()
    assert (await first).ok


async def test_resume_reuses_completed_steps_and_retries_the_failed_one(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    tools.fail.add("b")
    failed = await runner.astart("r1", CHAIN)
    assert failed.status is RunStatus.FAILED
    assert store.load_result("r1").steps["c"].status is StepStatus.BLOCKED
    tools.fail.clear()
    resumed = await runner.aresume("r1")
    assert resumed.ok and resumed.outputs == {"a": 2, "b": 3, "c": 4}
    assert tools.calls == {"a": 1, "b": 2, "c": 1}
    assert resumed.steps["a"].reused and not resumed.steps["b"].reused
    stored = store.load_result("r1")
    assert stored.status is RunStatus.SUCCEEDED and stored.steps["a"].reused
    kinds = [e.type for e in store.events("r1")]
    assert kinds.count(EventType.RUN_STARTED) == 2 and EventType.STEP_REUSED in kinds
    # Same step, same key, however many times it runs: what lets a tool make a repeat harmless.
    assert tools.keys.count("r1:b") == 2


async def test_status_flip_to_interrupted_then_resume_reruns_only_the_in_flight_step(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    await runner.astart("r1", CHAIN)
    # Make the store look as it would had the process died while c ran: the run row says running
    # (owned by a process that is gone), c's row says running.
    raw(store, "UPDATE runs SET status = 'running', finished_at = NULL")
    orphan(store)
    raw(store, "UPDATE steps SET status = 'running', output = NULL WHERE step_id = 'c'")
    assert store.get_run("r1").status == INTERRUPTED  # type: ignore[union-attr]
    stuck = runner.get_state("r1")
    assert stuck is not None and stuck.status is RunStatus.INTERRUPTED and not stuck.ok
    assert stuck.steps["c"].status is StepStatus.RUNNING and "runs resume r1" in (stuck.error or "")
    resumed = await runner.aresume("r1")
    assert resumed.ok and resumed.outputs == {"a": 2, "b": 3, "c": 4}
    assert tools.calls == {"a": 1, "b": 1, "c": 2}
    assert integrity(store) == "ok"


async def test_an_executor_that_died_in_this_process_leaves_an_interrupted_run(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    tools.hold["b"], tools.entered["b"] = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner.astart("r1", CHAIN))
    await tools.entered["b"].wait()
    assert store.get_run("r1").status == "running"  # type: ignore[union-attr]
    store.release("r1")  # what the run's owner does when it dies without finishing
    assert store.get_run("r1").status is RunStatus.INTERRUPTED  # type: ignore[union-attr]
    assert store.load_result("r1").status is RunStatus.INTERRUPTED
    tools.hold["b"].set()
    await task


async def test_a_failed_commit_does_not_count_the_step_done_and_resume_reruns_it(
    tools: Tools, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    armed: list[bool] = []
    fired: list[bool] = []

    def arm(event: Event) -> None:
        # Subscribed before the store: arms the fault for the first commit of b's output only.
        if event.type is EventType.STEP_SUCCEEDED and event.step_id == "b" and not fired:
            armed.append(True)

    bus.subscribe(arm)
    real_commit = store._commit

    def commit() -> None:
        if armed:
            armed.clear()
            fired.append(True)
            raise db_error(store, "disk I/O error")
        real_commit()

    monkeypatch.setattr(store, "_commit", commit)
    runner = DurableExecutor(tools.registry, store=store, bus=bus)
    result = await runner.astart("r1", CHAIN)
    assert result.status is RunStatus.FAILED
    assert "journal failed" in (result.error or "")
    assert "b" not in result.outputs and tools.calls == {"a": 1, "b": 1}
    stored = store.load_result("r1")
    assert stored.steps["b"].status is StepStatus.FAILED
    assert store.completed_outputs("r1") == {"a": 2}

    resumed = await runner.aresume("r1")
    assert resumed.ok and resumed.outputs == {"a": 2, "b": 3, "c": 4}
    assert tools.calls == {"a": 1, "b": 2, "c": 1}
    assert integrity(store) == "ok"


async def test_pause_lets_running_steps_finish_then_resume_continues(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    tools.hold["a"], tools.entered["a"] = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner.astart("r1", CHAIN))
    await tools.entered["a"].wait()
    runner.pause("r1")
    tools.hold["a"].set()
    paused = await task
    assert paused.status is RunStatus.PAUSED and paused.outputs == {"a": 2}
    assert store.get_run("r1").status == "paused"  # type: ignore[union-attr]
    assert store.load_result("r1").steps["b"].status is StepStatus.PENDING
    resumed = await runner.aresume("r1")
    assert resumed.ok and tools.calls == {"a": 1, "b": 1, "c": 1}


def test_pausing_a_run_that_is_not_running_here_is_an_error(runner: DurableExecutor) -> None:
    with pytest.raises(RunStateError, match="not running in this process"):
        runner.pause("r1")


SAGA = Plan.model_validate(
    {
        "goal": "reserve then count",
        "steps": [
            {"id": "hold", "tool": "reserve", "args": {"item": "seat"}},
            {"id": "a", "tool": "inc", "args": {"x": 1}, "depends_on": ["hold"]},
            {"id": "b", "tool": "inc", "args": {"x": "$a"}},
        ],
    }
)


async def test_cancel_of_a_running_run_compensates_then_cancels(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    tools.hold["a"], tools.entered["a"] = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner.astart("r1", SAGA))
    await tools.entered["a"].wait()
    cancelled = await runner.acancel_workflow("r1")
    assert cancelled.status is RunStatus.CANCELLED
    assert (await task).status is RunStatus.CANCELLED
    assert tools.released == ["res-seat"]
    stored = store.load_result("r1")
    assert stored.status is RunStatus.CANCELLED
    assert stored.steps["hold"].status is StepStatus.COMPENSATED
    with pytest.raises(RunStateError, match="cancelled"):
        await runner.aresume("r1")
    tools.hold.clear()
    again = await runner.astart("r1", SAGA)  # start may take a cancelled id up again
    assert again.ok and tools.calls["hold"] == 2


async def test_a_cancelled_run_ends_once_its_steps_are_undone(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    tools.hold["a"], tools.entered["a"] = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner.astart("r1", SAGA))
    await tools.entered["a"].wait()
    await runner.acancel_workflow("r1")
    await task
    kinds = [e.type for e in store.events("r1")]
    assert kinds.count(EventType.RUN_FINISHED) == 1 and kinds[-1] is EventType.RUN_FINISHED
    assert kinds.index(EventType.STEP_COMPENSATED) < kinds.index(EventType.RUN_FINISHED)


async def test_a_compensation_that_fails_is_recorded_on_the_cancelled_run(
    tools: Tools, store: RunStore
) -> None:
    @tool
    def release(reservation: str) -> None:
        """Cannot undo."""
        raise RuntimeError("the desk is closed")

    tools.registry.add(release, replace=True)
    tools.fail.add("b")
    runner = DurableExecutor(tools.registry, store=store)
    await runner.astart("r1", SAGA)
    result = await runner.acancel_workflow("r1")
    assert result.status is RunStatus.CANCELLED
    assert "the desk is closed" in (result.error or "")
    assert result.steps["hold"].status is StepStatus.SUCCEEDED  # its effect stands, visibly
    assert "compensation failed" in (result.steps["hold"].reason or "")


async def test_a_plan_the_executor_refuses_leaves_the_run_failed_not_running(
    runner: DurableExecutor, store: RunStore
) -> None:
    circle = Plan.model_validate(
        {
            "steps": [
                {"id": "a", "tool": "inc", "args": {"x": "$b"}},
                {"id": "b", "tool": "inc", "args": {"x": "$a"}},
            ]
        }
    )
    with pytest.raises(PlanInvalidError, match="cycle"):
        await runner.astart("r1", circle)
    info = store.get_run("r1")
    assert info is not None and info.status == "failed" and "a -> b -> a" in (info.error or "")


async def test_cancel_of_a_failed_run_compensates_from_the_store(
    tools: Tools, store: RunStore
) -> None:
    tools.fail.add("b")
    first = DurableExecutor(tools.registry, store=store)
    assert (await first.astart("r1", SAGA)).status is RunStatus.FAILED
    assert tools.released == []  # failed durable runs wait for a resume; they are not undone
    first.close()

    other = DurableExecutor(tools.registry, store=store)  # e.g. `tooldag runs cancel` later
    result = await other.acancel_workflow("r1")
    assert tools.released == ["res-seat"]
    assert result.status is RunStatus.CANCELLED
    assert result.steps["hold"].status is StepStatus.COMPENSATED
    assert store.events("r1")[-1].type is EventType.RUN_FINISHED


async def test_cancel_of_a_completed_run_is_refused(runner: DurableExecutor) -> None:
    await runner.astart("r1", CHAIN)
    with pytest.raises(RunStateError, match="already completed"):
        await runner.acancel_workflow("r1")


async def test_restarting_a_failed_run_with_a_new_plan_reuses_only_unchanged_work(
    runner: DurableExecutor, tools: Tools, store: RunStore
) -> None:
    tools.fail.add("c")
    await runner.astart("r1", CHAIN)
    tools.fail.clear()
    changed = CHAIN.model_copy(deep=True)
    changed.steps[1].args["x"] = 10  # b changes, so c (which reads b) must run again too
    result = await runner.astart("r1", changed)
    assert result.ok and result.outputs == {"a": 2, "b": 11, "c": 12}
    assert tools.calls == {"a": 1, "b": 2, "c": 2}
    assert len(store.plans("r1")) == 2


def test_reusable_outputs_keep_outputs_of_steps_the_new_plan_only_references() -> None:
    replan = Plan.model_validate(
        {"steps": [{"id": "d", "tool": "inc", "args": {"x": "$b"}}]}  # b is from the old plan
    )
    outputs = {"a": 2, "b": 3}
    assert reusable_outputs(previous=CHAIN, plan=replan, outputs=outputs) == {"a": 2, "b": 3}
    assert reusable_outputs(previous=CHAIN, plan=CHAIN, outputs=outputs) == {"a": 2, "b": 3}


async def test_module_resume_works_inside_a_running_loop(tools: Tools, store: RunStore) -> None:
    tools.fail.add("c")
    runner = DurableExecutor(tools.registry, store=store)
    await runner.astart("r1", CHAIN)
    runner.close()
    tools.fail.clear()
    result = resume("r1", tools.registry, store=store)  # sync, from inside this test's loop
    assert result.ok and tools.calls == {"a": 1, "b": 1, "c": 2}


def test_module_resume_defaults_to_the_store_under_tooldag_home(
    tools: Tools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_HOME", str(tmp_path / "home"))
    tools.fail.add("b")
    with RunStore() as default:
        DurableExecutor(tools.registry, store=default).start("r1", CHAIN)
    tools.fail.clear()
    assert resume("r1", tools.registry).outputs == {"a": 2, "b": 3, "c": 4}
    assert (tmp_path / "home" / "runs.sqlite3").is_file()


def test_resuming_an_unknown_run_says_how_to_find_runs(tools: Tools, store: RunStore) -> None:
    with pytest.raises(RunStateError, match="runs list"):
        resume("nope", tools.registry, store=store)
