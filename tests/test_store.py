"""RunStore on its own, fed synthetic executor events: what it stores, where, how it reads back.

The conformance suite: every test that takes ``store`` (or ``store_url``) runs against both
backends, a SQLite file and a schema of a real PostgreSQL server (``tests/conftest.py``); what only
one backend has (SQLite's file, WAL and process probe) takes ``sqlite_store``, and PostgreSQL's
lease and cross-host claims are in ``test_store_postgres.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from store_helpers import db_error, raw, start_together
from tooldag.durable.store import (
    CURRENT_SCHEMA_VERSION,
    INTERRUPTED,
    JSON_FALLBACK_KEY,
    RunStore,
    StoreWarning,
    default_store_path,
)
from tooldag.errors import RunStateError, StoreError
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
)
from tooldag.plan import Plan
from tooldag.result import RunStatus, StepError, StepStatus, Usage

PLAN = Plan.model_validate(
    {
        "goal": "add things",
        "steps": [
            {"id": "a", "tool": "add", "args": {"x": 1, "y": 2}},
            {"id": "b", "tool": "add", "args": {"x": "$a", "y": 3}},
            {"id": "c", "tool": "add", "args": {"x": "$b", "y": 4}},
        ],
        "answer": "${c}",
    }
)


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    s = RunStore(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "runs.sqlite3")
    yield s
    s.close()


def ev(data: Payload, run: str = "r1", step: str | None = None, **kw: Any) -> Event:
    return Event(data, run, step_id=step, **kw)


def start(store: RunStore, run: str = "r1", plan: Plan = PLAN) -> None:
    store.record(ev(RunStarted(plan, plan.goal), run))


def succeed(store: RunStore, step: str, output: Any, run: str = "r1", tool: str = "add") -> None:
    store.record(ev(StepStarted(tool, {}), run, step, attempt=1))
    store.record(ev(StepSucceeded(output), run, step, attempt=1))


# --------------------------------------------------------------------------- location and schema


def test_default_path_is_under_tooldag_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOOLDAG_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "runs.sqlite3"
    with RunStore() as s:
        assert Path(s.path) == tmp_path / "home" / "runs.sqlite3"
    assert (tmp_path / "home" / "runs.sqlite3").is_file()


def test_default_path_falls_back_to_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("TOOLDAG_HOME", raising=False)
    assert default_store_path() == Path(platformdirs.user_data_dir("tooldag")) / "runs.sqlite3"


def test_a_sqlite_store_uses_wal(sqlite_store: RunStore) -> None:
    assert raw(sqlite_store, "PRAGMA journal_mode") == [("wal",)]


def test_the_store_records_its_schema_version(store: RunStore) -> None:
    assert store.schema_version == CURRENT_SCHEMA_VERSION
    assert raw(store, "SELECT version FROM schema_version ORDER BY 1") == [(1,), (2,), (3,), (4,)]


def test_a_store_from_a_newer_tooldag_is_refused(store: RunStore, store_url: str) -> None:
    raw(store, "INSERT INTO schema_version VALUES (?, 0, 'future')", CURRENT_SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this tooldag understands"):
        RunStore(store_url)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text, long enough to have a header page? " * 100)
    with pytest.raises(StoreError, match="cannot open the run store"):
        RunStore(path)


# --------------------------------------------------------------------------- journalling


def test_the_event_log_keeps_each_payload_but_its_outputs_args_plans_and_answers(
    store: RunStore,
) -> None:
    # The JSON of the events.data column, as version 1 has always written it for each type, but
    # for step_started, whose tool (read back from the step row) version 3 no longer repeats.
    error = StepError(type="ToolError", message="boom")
    usage = Usage()
    usage.add(10, 5)
    journal: list[tuple[Payload, str | None]] = [
        (PlanCreated(PLAN, 1), '{"version":1}'),
        (LLMCall(usage, "plan", "json_schema", "m", False), (
            '{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"calls":1},'
            '"purpose":"plan","mode":"json_schema","model":"m","usage_estimated":false}'
        )),
        (RunStarted(PLAN, "add things"), '{"goal":"add things"}'),
        (StepStarted("add", {"x": 1, "y": 2}), None),
        (StepRetrying(error, 0.5), (
            '{"error":{"type":"ToolError","message":"boom","transient":false},"delay":0.5}'
        )),
        (StepSucceeded(3), None),
        (StepReused(3), None),
        (StepFailed(error), '{"error":{"type":"ToolError","message":"boom","transient":false}}'),
        (StepSkipped("condition not met"), '{"reason":"condition not met"}'),
        (StepBlocked("needs b", ("b",)), '{"reason":"needs b","blocked_by":["b"]}'),
        (StepCancelled("cancelled while running"), '{"reason":"cancelled while running"}'),
        (StepCompensated("undo"), '{"tool":"undo"}'),
        (StepCompensationFailed("undo", error), (
            '{"tool":"undo","error":{"type":"ToolError","message":"boom","transient":false}}'
        )),
        (RunFinished(RunStatus.FAILED, "an answer", "b failed", True), (
            '{"status":"failed","error":"b failed","final":true}'
        )),
    ]  # fmt: skip
    assert {type(p) for p, _ in journal} == set(PAYLOADS.values())
    for payload, _ in journal:
        store.record(
            ev(payload, step=None if payload.type.startswith(("run", "plan", "llm")) else "a")
        )
    assert raw(store, "SELECT data FROM events ORDER BY seq") == [(text,) for _, text in journal]
    heavy = {"output": None, "args": None, "plan": None, "answer": None}
    for (payload, _), event in zip(journal, store.events("r1"), strict=True):
        light = dataclasses.replace(
            payload, **{k: v for k, v in heavy.items() if hasattr(payload, k)}
        )
        assert event.data == light


def test_step_output_lives_once_in_its_step_row_not_in_events(store: RunStore) -> None:
    big = {"rows": ["x" * 100] * 100}
    start(store)
    succeed(store, "a", big)
    assert store.completed_outputs("r1") == {"a": big}
    blob = json.dumps(big, separators=(",", ":"))
    rows = raw(store, "SELECT COUNT(*) FROM steps WHERE output = ?", blob)
    assert rows == [(1,)]
    event_data = raw(store, "SELECT COALESCE(data, '') FROM events")
    assert all("xxxxxxxxxx" not in d for (d,) in event_data)
    assert all('"output"' not in d and '"steps"' not in d for (d,) in event_data)


def test_a_run_between_an_execution_and_its_replan_still_reads_running(store: RunStore) -> None:
    start(store)
    store.record(ev(RunFinished(RunStatus.FAILED, error="b failed", final=False)))
    info = store.get_run("r1")
    assert info is not None and info.status == "running" and info.finished_at is None
    store.record(ev(RunFinished(RunStatus.SUCCEEDED, final=True)))
    info = store.get_run("r1")
    assert info is not None and info.status == "succeeded" and info.finished_at is not None


def test_load_result_rebuilds_the_run(store: RunStore) -> None:
    start(store)
    succeed(store, "a", 3)
    store.record(ev(StepStarted("add", {"x": 3, "y": 3}), step="b", attempt=1))
    store.record(ev(StepRetrying(StepError(type="T", message="slow")), step="b", attempt=1))
    store.record(ev(StepStarted("add", {"x": 3, "y": 3}), step="b", attempt=2))
    err = {"type": "ToolError", "message": "boom", "transient": False}
    store.record(ev(StepFailed(StepError.model_validate(err)), step="b", attempt=2))
    store.record(ev(StepBlocked("needs b", ("b",)), step="c"))
    store.record(ev(RunFinished(RunStatus.FAILED, answer=None)))

    result = store.load_result("r1")
    assert result.status is RunStatus.FAILED
    assert result.outputs == {"a": 3}
    assert result.plans == [PLAN]
    b = result.steps["b"]
    assert (b.status, b.attempts, b.args) == (StepStatus.FAILED, 2, {"x": 3, "y": 3})
    assert b.error is not None and b.error.model_dump() == err
    assert result.steps["c"].status is StepStatus.BLOCKED
    assert result.steps["c"].reason == "needs b"
    assert result.steps["c"].tool == "add"  # from the plan: the step never started
    assert result.finished_at is not None
    assert [e.type for e in store.events("r1")] == [
        EventType.RUN_STARTED,
        EventType.STEP_STARTED,
        EventType.STEP_SUCCEEDED,
        EventType.STEP_STARTED,
        EventType.STEP_RETRYING,
        EventType.STEP_STARTED,
        EventType.STEP_FAILED,
        EventType.STEP_BLOCKED,
        EventType.RUN_FINISHED,
    ]


def test_steps_that_never_started_load_as_pending(store: RunStore) -> None:
    start(store)
    succeed(store, "a", 3)
    result = store.load_result("r1")
    assert [result.steps[s].status for s in "abc"] == [
        StepStatus.SUCCEEDED,
        StepStatus.PENDING,
        StepStatus.PENDING,
    ]


def test_a_restarted_step_forgets_its_previous_output(store: RunStore) -> None:
    start(store)
    succeed(store, "a", 3)
    store.record(ev(StepStarted("add", {}), step="a", attempt=1))
    assert store.completed_outputs("r1") == {}
    assert store.load_result("r1").steps["a"].status is StepStatus.RUNNING


def test_reused_step_is_flagged_and_its_output_not_rewritten(store: RunStore) -> None:
    start(store)
    succeed(store, "a", {"v": 1})
    store.record(ev(StepReused({"v": 1}), step="a"))
    rec = store.load_result("r1").steps["a"]
    assert rec.reused and rec.status is StepStatus.SUCCEEDED and rec.output == {"v": 1}


def test_compensation_marks_steps_and_keeps_failures_visible(store: RunStore) -> None:
    start(store)
    succeed(store, "a", 1)
    succeed(store, "b", 2)
    store.record(ev(StepCompensated("undo_b"), step="b"))
    store.record(
        ev(StepCompensationFailed("undo_a", StepError(type="E", message="no undo")), step="a")
    )
    result = store.load_result("r1")
    assert result.steps["b"].status is StepStatus.COMPENSATED
    assert result.steps["a"].status is StepStatus.SUCCEEDED
    assert result.steps["a"].reason == "compensation failed: E: no undo"


def test_plan_versions_are_kept_and_identical_plans_not_duplicated(store: RunStore) -> None:
    replan = PLAN.model_copy(update={"answer": "done: ${c}"})
    store.record(ev(PlanCreated(PLAN, 1)))
    assert store.get_run("r1") is not None
    assert store.get_run("r1").status == "pending"  # type: ignore[union-attr]
    start(store)  # the executor starts the very plan the planner made
    store.record(ev(PlanCreated(replan, 2)))
    start(store, plan=replan)
    assert store.plans("r1") == [PLAN, replan]
    assert store.get_run("r1").plan_versions == 2  # type: ignore[union-attr]
    assert store.get_run("r1").goal == "add things"  # type: ignore[union-attr]


def test_a_run_opened_with_a_goal_keeps_it_over_its_plans_rewording(store: RunStore) -> None:
    store.open_run("r1", "please add 1 and 2, then 3, then 4")
    assert store.get_run("r1").status == "pending"  # type: ignore[union-attr]
    store.record(ev(PlanCreated(PLAN, 1)))  # the plan's goal is "add things"
    start(store)
    store.record(ev(RunFinished(RunStatus.SUCCEEDED)))
    assert [r.goal for r in store.list_runs()] == ["please add 1 and 2, then 3, then 4"]
    store.open_run("r1", "another goal")  # an existing run keeps the goal it has
    assert store.get_run("r1").goal == "please add 1 and 2, then 3, then 4"  # type: ignore[union-attr]


@pytest.mark.parametrize("planned", [True, False])
def test_a_run_refused_before_it_started_keeps_its_goal(store: RunStore, planned: bool) -> None:
    store.open_run("r1", "please mail the report")
    store.record(ev(LLMCall(Usage(10, 2, 12), "plan", "json_schema")))
    if planned:  # refused by the policy; else no valid plan came back
        store.record(ev(PlanCreated(PLAN, 1)))
    store.record(ev(RunFinished(RunStatus.REJECTED, error="refused")))
    [info] = store.list_runs()
    assert (info.goal, info.status, info.plan_versions) == (
        "please mail the report",
        RunStatus.REJECTED,
        int(planned),
    )


def test_a_run_without_a_goal_takes_its_first_plans(store: RunStore) -> None:
    store.record(ev(LLMCall(Usage(10, 2, 12), "plan", "json_schema")))
    assert store.get_run("r1").goal == ""  # type: ignore[union-attr]
    store.record(ev(PlanCreated(PLAN, 1)))
    start(store, plan=PLAN.model_copy(update={"goal": "a replan's wording"}))
    assert store.get_run("r1").goal == "add things"  # type: ignore[union-attr]


def test_llm_usage_is_summed_on_the_run(store: RunStore) -> None:
    for prompt, completion in [(100, 20), (50, 5)]:
        usage = Usage()
        usage.add(prompt, completion)
        store.record(ev(LLMCall(usage, "plan", "json_schema")))
    start(store)
    usage = store.load_result("r1").usage
    assert usage.to_dict() == {
        "prompt_tokens": 150,
        "completion_tokens": 25,
        "total_tokens": 175,
        "calls": 2,
    }


# --------------------------------------------------------------------------- odd outputs


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    size: int


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_json_like_outputs_are_stored_in_their_json_form_without_warning(
    store: RunStore, recwarn: pytest.WarningsRecorder
) -> None:
    start(store)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    succeed(store, "a", {"p": Point(x=1, y=2), "box": Box(3), "when": when, "tags": ("t",)})
    assert store.completed_outputs("r1")["a"] == {
        "p": {"x": 1, "y": 2},
        "box": {"size": 3},
        "when": "2026-01-02T03:04:05Z",
        "tags": ["t"],
    }
    assert not [w for w in recwarn if issubclass(w.category, StoreWarning)]


def test_unserialisable_output_is_stored_as_marked_repr_with_a_warning(store: RunStore) -> None:
    start(store)
    with pytest.warns(StoreWarning, match="step 'a'.*Opaque"):
        succeed(store, "a", {"ok": 1, "thing": Opaque()})
    stored = store.completed_outputs("r1")["a"]
    assert stored["ok"] == 1
    assert stored["thing"] == {
        JSON_FALLBACK_KEY: {"type": f"{__name__}.Opaque", "repr": "<Opaque thing>"}
    }


def test_a_circular_output_is_stored_as_its_repr_not_a_crash(store: RunStore) -> None:
    start(store)
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.warns(StoreWarning):
        succeed(store, "a", loop)
    assert store.completed_outputs("r1")["a"][JSON_FALLBACK_KEY]["repr"] == "[1, [...]]"


# --------------------------------------------------------------------------- failures and listing


def test_a_failed_commit_rolls_back_and_raises_store_error(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(store)
    store.record(ev(StepStarted("add", {}), step="a", attempt=1))

    def broken_commit() -> None:
        raise db_error(store, "disk I/O error")

    monkeypatch.setattr(store, "_commit", broken_commit)
    bus = EventBus()
    store.attach(bus)
    with pytest.raises(StoreError, match=r"disk I/O error.*then resume the run"):
        bus.emit(ev(StepSucceeded(3), step="a", attempt=1))
    monkeypatch.undo()
    assert store.completed_outputs("r1") == {}
    assert store.load_result("r1").steps["a"].status is StepStatus.RUNNING
    assert EventType.STEP_SUCCEEDED not in [e.type for e in store.events("r1")]


def test_stores_sharing_a_database_take_run_keys_from_it(store: RunStore, store_url: str) -> None:
    # As the processes of a RunPool do: each store keeps the keys it learnt, none invents one.
    with RunStore(store_url) as other:
        start(store, "r1")
        start(other, "r2")
        succeed(store, "a", 1, run="r1")
        succeed(other, "a", 2, run="r2")
        succeed(other, "b", 3, run="r1")
        succeed(store, "b", 4, run="r2")
        assert other.completed_outputs("r1") == store.completed_outputs("r1") == {"a": 1, "b": 3}
        assert other.completed_outputs("r2") == store.completed_outputs("r2") == {"a": 2, "b": 4}
    # Distinct, in the order the runs were made (PostgreSQL's may have gaps: an upsert of an
    # existing row draws a number too).
    assert [r[0] for r in raw(store, "SELECT id FROM runs ORDER BY key")] == ["r1", "r2"]


def test_a_run_row_rolled_back_takes_its_key_with_it(
    store: RunStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_commit() -> None:
        raise db_error(store, "disk I/O error")

    monkeypatch.setattr(store, "_commit", broken_commit)
    with pytest.raises(StoreError, match="disk I/O error"):
        start(store, "r1")  # made r1's row and learnt its key, then rolled back
    monkeypatch.undo()
    with RunStore(store_url) as other:
        start(other, "r2")  # SQLite gives r2 the key r1 had in the rolled-back transaction
    succeed(store, "a", 1, run="r1")
    assert store.completed_outputs("r1") == {"a": 1}
    assert store.completed_outputs("r2") == {}
    assert [e.type for e in store.events("r2")] == [EventType.RUN_STARTED]


def test_step_events_of_a_run_without_a_row_give_it_one(store: RunStore) -> None:
    succeed(store, "a", 1, run="r-bare")
    info = store.get_run("r-bare")
    assert info is not None and info.status is RunStatus.PENDING
    assert store.completed_outputs("r-bare") == {"a": 1}


def test_a_write_that_cannot_get_the_lock_fails_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = RunStore(path, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match=r"locked.*busy_timeout"):
            start(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    start(store)  # the lock is free again: the same write goes through
    assert store.get_run("r1") is not None


def test_list_runs_newest_first_filtered_and_limited(store: RunStore) -> None:
    for i, status in enumerate([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SUCCEEDED]):
        run = f"r{i}"
        store.record(Event(RunStarted(PLAN, f"g{i}"), run, ts=100.0 + i))
        store.record(Event(RunFinished(status), run, ts=101.0 + i))
    assert [r.id for r in store.list_runs()] == ["r2", "r1", "r0"]
    assert [r.id for r in store.list_runs(status="succeeded")] == ["r2", "r0"]
    assert [r.id for r in store.list_runs(limit=2)] == ["r2", "r1"]
    assert store.list_runs()[0].to_json()["goal"] == "g2"


def test_claim_refuses_running_and_completed_runs(store: RunStore) -> None:
    assert store.claim("r1", plan=PLAN).status is RunStatus.RUNNING
    with pytest.raises(RunStateError, match="already running"):
        store.claim("r1", plan=PLAN, allow={"failed"})
    store.record(ev(RunFinished(RunStatus.SUCCEEDED)))
    with pytest.raises(RunStateError, match="already completed"):
        store.claim("r1", allow={"failed", INTERRUPTED})
    with pytest.raises(RunStateError, match="no run 'nope'"):
        store.claim("nope", allow={"failed"})


def test_only_one_of_two_stores_claims_an_interrupted_run(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    first, second = RunStore(path), RunStore(path)
    first.claim("r1", plan=PLAN)
    first.release("r1")  # the executor died without finishing: interrupted
    assert second.get_run("r1").status == INTERRUPTED  # type: ignore[union-attr]
    second.claim("r1", allow={INTERRUPTED})
    with pytest.raises(RunStateError, match="already running"):
        first.claim("r1", allow={INTERRUPTED})


def test_queued_runs_are_claimed_oldest_first_each_once(store: RunStore) -> None:
    store.record(ev(PlanCreated(PLAN, 1), "planned"))  # pending, but nobody queued it
    store.enqueue("q1", PLAN)
    store.enqueue("q2", PLAN)
    with pytest.raises(RunStateError, match="exists already"):
        store.enqueue("q1", PLAN)
    assert store.get_run("q2").status is RunStatus.PENDING  # type: ignore[union-attr]
    assert store.plans("q2") == [PLAN]
    first = store.claim_next()
    assert first is not None and (first.id, first.status) == ("q1", RunStatus.RUNNING)
    second = store.claim_next()
    assert second is not None and second.id == "q2"
    assert store.claim_next() is None  # q1 and q2 run here; "planned" was never queued
    assert store.get_run("planned").status is RunStatus.PENDING  # type: ignore[union-attr]


def test_a_queued_run_whose_worker_died_is_claimed_again(store: RunStore) -> None:
    store.enqueue("q1", PLAN)
    assert store.claim_next() is not None
    store.release("q1")  # its executor died: interrupted, still queued
    assert store.claim_next(interrupted=False) is None
    again = store.claim_next()
    assert again is not None and again.id == "q1" and again.status is RunStatus.RUNNING
    store.record(ev(RunFinished(RunStatus.SUCCEEDED), "q1"))
    assert store.claim_next() is None  # finished runs stay finished


# --------------------------------------------------------------------------- liveness


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(
    sqlite_store: RunStore,
) -> None:
    store = sqlite_store
    start(store)
    raw_db = sqlite3.connect(store.path)
    raw_db.execute("UPDATE runs SET owner_pid = ?, owner_token = NULL", (_dead_pid(),))
    raw_db.commit()
    raw_db.close()
    info = store.get_run("r1")
    assert info is not None and info.status is RunStatus.INTERRUPTED
    assert info.stored_status is RunStatus.RUNNING and info.to_json()["status"] == "interrupted"
    assert [r.id for r in store.list_runs(status=RunStatus.INTERRUPTED)] == ["r1"]
    assert [r.id for r in store.list_runs(status=INTERRUPTED)] == ["r1"]  # the string still works
    assert store.list_runs(status="running") == []
    loaded = store.load_result("r1")
    assert loaded.status is RunStatus.INTERRUPTED and loaded.finished_at is None
    assert "runs resume r1" in (loaded.error or "")
    assert loaded.to_json()["status"] == "interrupted"


def test_the_interrupted_string_is_the_run_status_member() -> None:
    assert INTERRUPTED == RunStatus.INTERRUPTED.value == "interrupted"
    assert RunStatus(INTERRUPTED) is RunStatus.INTERRUPTED
    # Nothing executes an interrupted run any more, yet it may be resumed, like a paused one.
    assert RunStatus.INTERRUPTED.finished and RunStatus.PAUSED.finished


def test_set_status_refuses_interrupted_which_is_read_not_stored(store: RunStore) -> None:
    start(store)
    with pytest.raises(StoreError, match="store failed or cancelled instead"):
        store.set_status("r1", RunStatus.INTERRUPTED)
    assert store.get_run("r1").stored_status is RunStatus.RUNNING  # type: ignore[union-attr]


def test_a_run_owned_by_a_live_process_reads_as_running(sqlite_store: RunStore) -> None:
    store = sqlite_store
    start(store)
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        db = sqlite3.connect(store.path)
        db.execute("UPDATE runs SET owner_pid = ?, owner_token = NULL", (sleeper.pid,))
        db.commit()
        db.close()
        assert store.get_run("r1").status is RunStatus.RUNNING  # type: ignore[union-attr]
        assert store.load_result("r1").status is RunStatus.RUNNING
    finally:
        sleeper.communicate(b"")
    assert store.get_run("r1").status is RunStatus.INTERRUPTED  # type: ignore[union-attr]


# --------------------------------------------------------------------------- concurrency

WRITER = """
import sys
from tooldag.events import Event, RunFinished, RunStarted, StepStarted, StepSucceeded
from tooldag.durable.store import RunStore
from tooldag.result import RunStatus

path, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RunStore(path)
print("ready", flush=True)
sys.stdin.readline()  # the barrier: both writers start together
store.record(Event(RunStarted(goal=run), run))
for i in range(n):
    store.record(Event(StepStarted("t", {"i": i}), run, f"s{i}", attempt=1))
    store.record(Event(StepSucceeded(i), run, f"s{i}", attempt=1))
store.record(Event(RunFinished(RunStatus.SUCCEEDED), run))
"""


@pytest.mark.slow
def test_two_processes_share_a_store_without_losing_events(store_url: str) -> None:
    path, n = store_url, 1000
    RunStore(path).close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = start_together([[WRITER, str(path), run, str(n)] for run in ("p1", "p2")], env)
    for p in procs:
        assert p.wait(timeout=60) == 0
    with RunStore(path) as s:
        for run in ("p1", "p2"):
            assert s.get_run(run).status == "succeeded"  # type: ignore[union-attr]
            assert s.completed_outputs(run) == {f"s{i}": i for i in range(n)}
            assert len(s.events(run)) == 2 * n + 2
        if s.backend == "sqlite":
            assert raw(s, "PRAGMA integrity_check") == [("ok",)]


def test_threads_sharing_one_store_keep_every_event(store: RunStore) -> None:
    start(store)
    barrier = threading.Barrier(4)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(50):
            succeed(store, f"t{t}_{i}", i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(store.completed_outputs("r1")) == 200
    assert len(store.events("r1")) == 1 + 400


def test_a_new_store_and_its_wal_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "made" / "for" / "runs.sqlite3"
    with RunStore(path) as store:
        bus = EventBus()
        store.attach(bus)
        bus.emit(Event(RunStarted(goal="private goal"), "r1"))
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
            f.name: 0o600 for f in files
        }
    for folder in (tmp_path / "made", tmp_path / "made" / "for"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_an_existing_store_keeps_the_permissions_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    RunStore(path).close()
    path.chmod(0o640)
    RunStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
