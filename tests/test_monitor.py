"""The monitor: the seed's summary and timeline, Mermaid by status and the rich timeline, all
built from events only (live from a bus, or replayed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rich.console import Console

from test_executor import plan_of, step
from tooldag import ToolRegistry, tool
from tooldag.errors import RunStateError
from tooldag.events import Event, EventType, RunStarted
from tooldag.execution.executor import Executor
from tooldag.observe.mermaid import STATUS_COLOURS
from tooldag.observe.monitor import Monitor, status_style
from tooldag.plan import Plan
from tooldag.result import RunStatus, StepStatus

GATE_TIMEOUT = 5.0


def overlapping_tools() -> list[Any]:
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}

    @tool
    async def meet(me: str, other: str) -> str:
        gates[me].set()
        await asyncio.wait_for(gates[other].wait(), GATE_TIMEOUT)
        return me

    @tool
    def fail(x: Any = None) -> None:
        raise ValueError("nope")

    @tool
    def echo(x: Any = None) -> Any:
        return x

    return [meet, fail, echo]


MIXED = plan_of(
    step("a", "meet", me="a", other="b"),
    step("b", "meet", me="b", other="a"),
    step("merge", "echo", x=["$a", "$b"]),
    {**step("skipped", "echo", x=1), "when": {"ref": "$a", "op": "==", "value": "z"}},
    step("broken", "fail", x="$merge"),
    step("blocked", "echo", x="$broken"),
)


async def run_mixed() -> tuple[Monitor, list[Event], str]:
    executor = Executor(ToolRegistry(overlapping_tools()))
    monitor = Monitor(executor.bus)
    events: list[Event] = []
    executor.bus.subscribe(events.append)
    result = await executor.run(MIXED, run_id="mixed")
    return monitor, events, result.run_id


async def test_summary_counts_every_outcome() -> None:
    monitor, _, run_id = await run_mixed()
    summary = monitor.get_workflow_summary(run_id)
    assert {
        k: summary[k]
        for k in (
            "total",
            "successful",
            "failed",
            "skipped",
            "blocked",
            "in_progress",
            "pending",
            "is_active",
        )
    } == {
        "total": 6,
        "successful": 3,
        "failed": 1,
        "skipped": 1,
        "blocked": 1,
        "in_progress": 0,
        "pending": 0,
        "is_active": False,
    }
    assert summary["status"] == "failed" and summary["goal"] == "test"
    assert summary["max_parallel"] == 2  # a and b met each other
    assert summary["total_duration"] > 0
    assert summary["average_duration"] == pytest.approx(summary["total_duration"] / 4)
    assert summary["wall_time"] >= 0
    assert monitor.get_workflow_summary() == monitor.get_workflow_summary(run_id)


async def test_summary_while_running_shows_the_step_in_progress() -> None:
    seen: dict[str, Any] = {}
    executor = Executor(ToolRegistry([]))
    monitor = Monitor(executor.bus)

    @tool
    def look() -> None:
        seen.update(monitor.get_workflow_summary())

    executor.registry.add(look)
    await executor.run(plan_of(step("first", "look"), step("second", "look")))
    assert seen["is_active"] is True
    assert seen["in_progress"] + seen["successful"] + seen["pending"] == 2
    assert seen["in_progress"] >= 1


async def test_timeline_lists_steps_in_start_order_with_overlaps() -> None:
    monitor, _, run_id = await run_mixed()
    timeline = monitor.get_step_timeline(run_id)
    assert [row["step_id"] for row in timeline][:2] == ["a", "b"]
    rows = {row["step_id"]: row for row in timeline}
    assert rows["a"]["overlaps"] == ["b"] and rows["b"]["overlaps"] == ["a"]
    assert rows["merge"]["started_at"] >= max(rows["a"]["finished_at"], rows["b"]["finished_at"])
    assert rows["broken"]["error"] == "ValueError: nope" and not rows["broken"]["success"]
    assert rows["skipped"]["started_at"] is None and rows["skipped"]["reason"].startswith(
        "condition not met"
    )
    assert rows["blocked"]["status"] == "blocked"
    assert rows["a"]["tool"] == "meet" and rows["a"]["attempts"] == 1
    assert rows["a"]["offset"] is not None and rows["a"]["offset"] >= 0


async def test_a_replay_of_the_events_gives_the_same_views() -> None:
    live, events, run_id = await run_mixed()
    replayed = Monitor.from_events(events)
    assert replayed.get_workflow_summary(run_id) == live.get_workflow_summary(run_id)
    assert replayed.get_step_timeline(run_id) == live.get_step_timeline(run_id)


async def test_mermaid_is_coloured_by_status() -> None:
    monitor, _, run_id = await run_mixed()
    text = monitor.to_mermaid(run_id)
    assert text.startswith("flowchart TD")
    assert "merge" in text and "blocked" in text and "failed" in text


async def test_the_terminal_timeline_draws_overlapping_bars() -> None:
    monitor, _, run_id = await run_mixed()
    console = Console(record=True, width=140, color_system=None)
    monitor.print_timeline(run_id, console=console, width=30)
    text = console.export_text()
    assert "up to 2 at once" in text
    lines = {line.split("│")[0].strip(): line for line in text.splitlines() if "│" in line}
    assert {"a", "b", "merge", "skipped", "broken", "blocked"} <= set(lines)
    bar_a = lines["a"].split("│")[3]
    bar_b = lines["b"].split("│")[3]
    assert "█" in bar_a and "█" in bar_b
    # a and b ran at the same time: their bars share at least one column.
    assert any(x == y == "█" for x, y in zip(bar_a, bar_b, strict=True))
    assert "ValueError: nope" in lines["broken"]
    assert "·" in lines["skipped"].split("│")[3]


async def test_compensation_and_reuse_are_tracked() -> None:
    from tooldag import Compensation

    @tool(compensate=Compensation("undo", {}))
    def do() -> int:
        return 1

    @tool
    def undo() -> None:
        return None

    @tool
    def fail(x: Any = None) -> None:
        raise ValueError("x")

    executor = Executor(ToolRegistry([do, undo, fail]))
    monitor = Monitor(executor.bus)
    plan = plan_of(step("kept", "do"), step("did", "do"), step("f", "fail", x="$did"))
    await executor.run(plan, reuse={"kept": 1})
    summary = monitor.get_workflow_summary()
    assert summary["reused"] == 1 and summary["compensated"] == 2 and summary["failed"] == 1


def test_an_unknown_run_is_a_clear_error() -> None:
    monitor = Monitor()
    with pytest.raises(RunStateError, match="no run yet"):
        monitor.get_workflow_summary()
    monitor.record(Event(RunStarted(Plan(steps=[])), "r1"))
    assert monitor.run_ids == ["r1"]
    with pytest.raises(RunStateError, match="'r2'"):
        monitor.get_step_timeline("r2")
    assert monitor.get_workflow_summary("r1")["is_active"] is True


async def test_a_resumed_runs_journal_shows_only_the_last_execution() -> None:
    from tooldag import PermanentToolError
    from tooldag.durable.runner import DurableExecutor
    from tooldag.durable.store import RunStore

    broken = {"b": True}

    @tool
    def work(name: str, after: Any = None) -> str:
        if broken.get(name):
            raise PermanentToolError(f"{name} is broken")
        return name

    plan = plan_of(
        step("a", "work", name="a"),
        step("b", "work", name="b", after="$a"),
        step("c", "work", name="c", after="$b"),
    )
    with RunStore(":memory:") as store:
        runner = DurableExecutor(ToolRegistry([work]), store=store)
        first = await runner.astart("again", plan)
        assert first.status.value == "failed"
        broken.clear()
        second = await runner.aresume("again")
        assert second.ok
        events = store.events("again")
    assert sum(e.type is EventType.RUN_STARTED for e in events) == 2

    monitor = Monitor.from_events(events)
    summary = monitor.get_workflow_summary("again")
    assert summary["status"] == "succeeded" and summary["is_active"] is False
    assert (summary["total"], summary["successful"], summary["failed"]) == (3, 3, 0)
    assert summary["reused"] == 1
    # a, then b, then c: nothing ran at the same time, in either execution.
    assert summary["max_parallel"] == 1
    rows = {row["step_id"]: row for row in monitor.get_step_timeline("again")}
    assert all(row["overlaps"] == [] for row in rows.values())
    run_start = next(e.ts for e in reversed(events) if e.type is EventType.RUN_STARTED)
    assert rows["b"]["started_at"] >= run_start and rows["b"]["error"] is None
    # a keeps the record of the execution that ran it.
    assert rows["a"]["reused"] and rows["a"]["tool"] == "work" and rows["a"]["attempts"] == 1
    assert rows["a"]["duration"] is not None and rows["a"]["started_at"] is None


def test_every_step_and_run_status_has_one_terminal_style() -> None:
    for status in [*StepStatus, *RunStatus]:
        assert status_style(status), status
    # A word that is both a step and a run status looks the same for both.
    for status in RunStatus:
        if status.value in set(StepStatus):
            assert status_style(status) == status_style(StepStatus(status.value))
    assert status_style("no such status") == ""
    assert set(STATUS_COLOURS) == set(StepStatus)  # charts and Mermaid: their own palette


# --------------------------------------------------------------------------- the live window


def caption(table: Any) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(table.caption)
    return console.export_text().strip()


def counted(monitor: Monitor, run_id: str) -> str:
    """What the window's caption must say, worked out from every step's status."""
    statuses = list(monitor.statuses(run_id).values())
    parts = [f"{statuses.count(s):,} {s.value}" for s in StepStatus if statuses.count(s)]
    return f"of {len(statuses):,} steps: " + ", ".join(parts)


async def test_the_window_shows_what_runs_and_went_wrong_and_counts_the_rest() -> None:
    monitor, _, run_id = await run_mixed()
    table = monitor.timeline_table(run_id, width=20, window=2)
    assert table.row_count == 2
    console = Console(record=True, width=200, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "broken" in text and "blocked" in text  # the latest to go wrong come first
    assert caption(table) == "showing 2 " + counted(monitor, run_id)
    assert "3 succeeded, 1 failed, 1 skipped, 1 blocked" in caption(table)


async def test_the_windows_tallies_follow_compensation_reuse_and_a_resume() -> None:
    from tooldag import Compensation, PermanentToolError
    from tooldag.durable.runner import DurableExecutor
    from tooldag.durable.store import RunStore

    broken = {"b": True}

    @tool(compensate=Compensation("undo", {}))
    def work(name: str, after: Any = None) -> str:
        if broken.get(name):
            raise PermanentToolError(f"{name} is broken")
        return name

    @tool
    def undo() -> None:
        return None

    plan = plan_of(
        step("a", "work", name="a"),
        step("b", "work", name="b", after="$a"),
        step("c", "work", name="c", after="$b"),
        step("d", "work", name="d"),
    )
    with RunStore(":memory:") as store:
        runner = DurableExecutor(ToolRegistry([work, undo]), store=store)
        live = Monitor(runner.executor.bus)
        first = await runner.astart("again", plan)
        assert first.status is RunStatus.FAILED
        window = caption(live.timeline_table("again", window=3))
        assert window == "showing 3 " + counted(live, "again")
        broken.clear()
        assert (await runner.aresume("again")).ok
        events = store.events("again")
    for monitor in (live, Monitor.from_events(events)):
        window = caption(monitor.timeline_table("again", window=3))
        assert window == "showing 3 " + counted(monitor, "again")
        assert "4 succeeded" in window


def test_drawing_the_window_costs_the_same_at_any_plan_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live view is redrawn several times a second: drawing every step of a 20,000-step run
    took seconds a frame, and the run ten times as long."""
    from tooldag.events import StepStarted, StepSucceeded
    from tooldag.observe import monitor as monitor_module

    drawn: list[str] = []
    row = monitor_module._row

    def counting_row(view: Any, *args: Any) -> dict[str, Any]:
        drawn.append(view.id)
        return row(view, *args)

    monkeypatch.setattr(monitor_module, "_row", counting_row)
    for size in (100, 5_000):
        monitor = Monitor()
        plan = Plan.model_validate({"steps": [step(f"s{i}", "t") for i in range(size)]})
        monitor.record(Event(RunStarted(plan), "r"))
        for i in range(size - 3):
            monitor.record(Event(StepStarted("t", {}), "r", f"s{i}", 1))
            monitor.record(Event(StepSucceeded(None), "r", f"s{i}", 1))
        monitor.record(Event(StepStarted("t", {}), "r", f"s{size - 1}", 1))
        drawn.clear()
        table = monitor.timeline_table("r", window=12)
        assert len(drawn) == table.row_count == 12
        assert drawn[-1] == f"s{size - 1}"  # the running step, started last
        assert caption(table) == (
            f"showing 12 of {size:,} steps: 2 pending, 1 running, {size - 3:,} succeeded"
        )
