"""The journal batches the step events of one event-loop turn into one commit, and keeps the
at-least-once contract: a step's start is committed before its tool runs, its output before its
dependents start, and a failed commit fails the steps that wait for it (never a silent loss).

What is committed is read on a connection of the test's own, as another process would see it.
Both backends (``store_url``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from store_helpers import db_error
from tooldag.durable.runner import DurableExecutor
from tooldag.durable.store import RunStore, is_database_url
from tooldag.errors import StoreError
from tooldag.events import Event, EventBus, RunFinished, StepSkipped, StepStarted
from tooldag.plan import Plan
from tooldag.registry import ToolContext, ToolRegistry, tool
from tooldag.result import RunStatus, StepStatus


def committed(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """``sql``'s rows as a connection of its own sees them: only what is committed."""
    if is_database_url(url):
        with psycopg.connect(url) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params)]
    db = sqlite3.connect(url)
    try:
        return [tuple(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def step_row(url: str, step: str) -> tuple[Any, ...] | None:
    rows = committed(
        url,
        "SELECT s.status, output FROM steps s JOIN runs r ON r.key = s.run "
        "WHERE r.id = 'r1' AND step_id = ?",
        step,
    )
    return rows[0] if rows else None


def started_events(url: str, step: str) -> int:
    rows = committed(
        url,
        "SELECT COUNT(*) FROM events e JOIN runs r ON r.key = e.run "
        "WHERE r.id = 'r1' AND step_id = ? AND type = 0",
        step,
    )
    return int(rows[0][0])


class Seen:
    """Tools that record what the database held, committed, when their bodies ran."""

    def __init__(self, url: str) -> None:
        self.at_start: dict[str, tuple[Any, ...] | None] = {}
        self.dependency: dict[str, tuple[Any, ...] | None] = {}
        self.calls: list[str] = []

        def look(ctx: ToolContext, needs: str | None) -> None:
            self.calls.append(ctx.step_id)
            self.at_start[ctx.step_id] = (
                step_row(url, ctx.step_id),
                started_events(url, ctx.step_id),
            )
            if needs is not None:
                self.dependency[ctx.step_id] = step_row(url, needs)

        @tool
        def work(n: int, ctx: ToolContext, needs: str | None = None) -> dict[str, int]:
            """A sync step (it runs on a thread)."""
            look(ctx, needs)
            return {"n": n + 1}

        @tool
        async def awork(n: int, ctx: ToolContext, needs: str | None = None) -> dict[str, int]:
            """An async step (its body starts in the loop)."""
            look(ctx, needs)
            return {"n": n + 1}

        self.registry = ToolRegistry([work, awork])


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    s = RunStore(store_url)
    yield s
    s.close()


def fan(width: int, tool_name: str) -> Plan:
    """A root, ``width`` steps that need it (they start together), and one that needs them."""
    steps: list[dict[str, Any]] = [{"id": "root", "tool": tool_name, "args": {"n": 0}}]
    steps += [
        {"id": f"s{i}", "tool": tool_name, "args": {"n": "$root.n", "needs": "root"}}
        for i in range(width)
    ]
    steps.append(
        {"id": "last", "tool": tool_name, "args": {"n": "$s0.n", "needs": "s0"}, "depends_on": [
            f"s{i}" for i in range(width)
        ]}
    )  # fmt: skip
    return Plan.model_validate({"goal": "fan", "steps": steps})


@pytest.mark.parametrize("tool_name", ["work", "awork"])
async def test_a_tool_runs_once_its_start_is_committed_and_after_its_inputs_are(
    store: RunStore, store_url: str, monkeypatch: pytest.MonkeyPatch, tool_name: str
) -> None:
    commits: list[int] = []
    real_commit = store._commit

    def commit() -> None:
        commits.append(1)
        real_commit()

    monkeypatch.setattr(store, "_commit", commit)
    seen = Seen(store_url)
    runner = DurableExecutor(seen.registry, store=store)
    result = await runner.astart("r1", fan(8, tool_name))
    assert result.ok, result.error
    assert sorted(seen.calls) == sorted(result.steps)
    for step, (row, starts) in seen.at_start.items():
        assert row == ("running", None), f"{step} ran before its start was committed"
        assert starts == 1, f"{step}'s step_started was not in the log when it ran"
    for step, row in seen.dependency.items():
        assert row is not None and row[0] == "succeeded", f"{step} ran on an uncommitted input"
        assert row[1] == '{"n":1}' or step == "last"
    # The eight steps that start together share a commit (the claim has one, each event would
    # have one); async no-op bodies finish together too, sync ones on threads when they do.
    shared = 7 if tool_name == "work" else 14
    assert len(commits) <= 1 + len(store.events_json("r1")) - shared


async def test_a_failed_commit_of_their_starts_fails_the_steps_before_their_tools_run(
    store: RunStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = Seen(store_url)
    bus = EventBus()
    armed: list[bool] = []

    def arm(event: Event) -> None:
        # Subscribed before the store: the commit after s0's start (its turn's) fails, once.
        if isinstance(event.data, StepStarted) and event.step_id == "s0" and not armed:
            armed.append(True)

    bus.subscribe(arm)
    real_commit = store._commit

    def commit() -> None:
        if armed == [True]:
            armed.append(False)
            raise db_error(store, "disk I/O error")
        real_commit()

    monkeypatch.setattr(store, "_commit", commit)
    plan = Plan.model_validate(
        {
            "goal": "two at once",
            "steps": [
                {"id": "s0", "tool": "awork", "args": {"n": 0}},
                {"id": "s1", "tool": "work", "args": {"n": 0}},
                {"id": "after", "tool": "awork", "args": {"n": "$s0.n"}},
            ],
        }
    )
    runner = DurableExecutor(seen.registry, store=store, bus=bus)
    result = await runner.astart("r1", plan)
    assert armed == [True, False]
    assert seen.calls == []  # neither tool ran: their starts were never committed
    assert result.status is RunStatus.FAILED and "journal failed" in (result.error or "")
    error = result.steps["s0"].error
    assert error is not None and "could not be recorded" in error.message
    # s1 was told too, after s0's failure had stopped the run: it ends cancelled for that.
    assert result.steps["s1"].status is StepStatus.CANCELLED
    assert "the run journal failed" in (result.steps["s1"].reason or "")
    assert result.steps["after"].status is StepStatus.BLOCKED
    stored = store.load_result("r1")  # what came after the failed commit is kept
    assert stored.status is RunStatus.FAILED
    assert {s: stored.steps[s].status for s in ("s0", "s1", "after")} == {
        "s0": StepStatus.FAILED,
        "s1": StepStatus.CANCELLED,
        "after": StepStatus.BLOCKED,
    }


async def test_events_no_step_waits_for_are_carried_past_a_failed_commit(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    store.attach(bus)
    real_commit = store._commit
    failures = [db_error(store, "disk I/O error")]

    def commit() -> None:
        if failures:
            raise failures.pop()
        real_commit()

    monkeypatch.setattr(store, "_commit", commit)
    bus.emit(Event(StepSkipped("condition not met"), "r1", "skipped"))
    bus.emit(Event(StepStarted("t", {}), "r1", "waits", 1))
    kept = bus.barrier()
    assert kept is not None
    with pytest.raises(StoreError, match="disk I/O error"):
        await kept  # the turn's commit failed: the step that waits is told
    bus.emit(Event(RunFinished(RunStatus.FAILED, error="journal failed"), "r1"))
    events = [(e["type"], e["step_id"]) for e in store.events_json("r1")]
    # The skip (no one waited for it) went in with the next commit; the start did not.
    assert events == [("step_skipped", "skipped"), ("run_finished", None)]


async def test_reads_and_close_write_the_turn_so_far(store_url: str) -> None:
    store = RunStore(store_url)
    bus = EventBus()
    store.attach(bus)
    bus.emit(Event(StepSkipped("not needed"), "r1", "a"))
    assert [e["step_id"] for e in store.events_json("r1")] == ["a"]  # a read writes first
    bus.emit(Event(StepSkipped("not needed"), "r1", "b"))
    assert step_row(store_url, "b") is None  # not committed yet: the turn is not over
    store.close()  # before the turn ends
    assert step_row(store_url, "b") == ("skipped", None)


def test_events_from_a_thread_without_a_loop_are_committed_at_once(
    store: RunStore, store_url: str
) -> None:
    bus = EventBus()
    store.attach(bus)
    thread = threading.Thread(target=bus.emit, args=(Event(StepSkipped("x"), "r1", "a"),))
    thread.start()
    thread.join()
    assert step_row(store_url, "a") == ("skipped", None)
    assert bus.barrier() is None


async def test_a_cancelled_waiter_does_not_cancel_the_others(store: RunStore) -> None:
    bus = EventBus()
    store.attach(bus)
    bus.emit(Event(StepStarted("t", {}), "r1", "a", 1))
    first = bus.barrier()
    bus.emit(Event(StepStarted("t", {}), "r1", "b", 1))
    second = bus.barrier()
    assert first is not None and second is not None
    gone = asyncio.ensure_future(first)
    gone.cancel()
    await second  # committed, whatever became of the first
    assert [e["step_id"] for e in store.events_json("r1")] == ["a", "b"]
