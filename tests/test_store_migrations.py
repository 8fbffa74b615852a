"""Old stores open, migrate and stay writable: the frozen fixture of each schema version
(``tests/fixtures``, SQLite; version 3's is the current one's own), and a version-2 store built
in the test on both backends, migrated to version 3 (event types as numbers, a step_started
without its tool, compact plans and, with SQLite, a steps table keyed by its primary key alone)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from store_helpers import raw
from tooldag.durable._postgres import PostgresBackend
from tooldag.durable._sqlite import SqliteBackend
from tooldag.durable.store import (
    CURRENT_SCHEMA_VERSION,
    MIGRATIONS,
    RunStore,
    is_database_url,
)
from tooldag.events import Event, EventType, StepReused, StepStarted, StepSucceeded
from tooldag.plan import Plan
from tooldag.result import RunStatus, StepStatus

FIXTURES = Path(__file__).parent / "fixtures"


def test_frozen_v1_fixture_opens_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    shutil.copy(FIXTURES / "store_v1.sqlite3", path)
    with RunStore(path) as s:
        assert s.schema_version == CURRENT_SCHEMA_VERSION
        runs = s.list_runs()
        assert [r.id for r in runs] == ["run-failed", "run-ok"]  # newest first
        ok = s.load_result("run-ok")
        assert ok.status is RunStatus.SUCCEEDED
        assert ok.answer == "Wear a raincoat."
        assert ok.outputs == {
            "weather": {"temp": 12, "condition": "rain"},
            "outfit": {"outfit": "a raincoat"},
        }
        assert ok.usage.to_dict() == {
            "prompt_tokens": 120,
            "completion_tokens": 40,
            "total_tokens": 160,
            "calls": 2,
        }
        failed = s.load_result("run-failed")
        assert len(failed.plans) == 2 and failed.plan is not None
        assert failed.plan.ids == ["fetch", "parse", "report"]
        assert failed.steps["parse"].error is not None
        assert failed.steps["parse"].error.message == "bad markup"
        assert failed.steps["parse"].attempts == 3
        assert failed.steps["report"].status is StepStatus.BLOCKED
        assert s.completed_outputs("run-failed") == {"fetch": "<html>"}
        assert [e.type for e in s.events("run-failed")][-1] is EventType.RUN_FINISHED
        # A v1 store stays writable: a resume of the failed run journals into it.
        s.claim("run-failed", allow={"failed"})
        s.record(Event(StepReused(), "run-failed", "fetch"))
        assert s.completed_outputs("run-failed") == {"fetch": "<html>"}


def test_frozen_v2_fixture_opens_and_its_queue_is_served(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    shutil.copy(FIXTURES / "store_v2.sqlite3", path)
    with RunStore(path) as s:
        assert s.schema_version == CURRENT_SCHEMA_VERSION
        assert [(r.id, r.status) for r in s.list_runs()] == [
            ("run-queued", RunStatus.PENDING),
            ("run-done", RunStatus.SUCCEEDED),
        ]
        assert s.load_result("run-done").outputs == {"a": 3, "b": 6}
        events = s.events_json("run-done")
        assert [e["type"] for e in events] == [
            "run_started",
            *("step_started", "step_succeeded") * 2,
            "run_finished",
        ]
        assert events[1]["data"] == {"tool": "add"}
        claimed = s.claim_next()
        assert claimed is not None and claimed.id == "run-queued"
        assert s.claim_next() is None


def test_frozen_v3_fixture_opens_reads_back_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    shutil.copy(FIXTURES / "store_v3.sqlite3", path)
    with RunStore(path) as s:
        assert s.schema_version == CURRENT_SCHEMA_VERSION
        failed = s.load_result("run-failed")
        assert failed.status is RunStatus.FAILED and failed.error == "b failed"
        assert failed.outputs == {"a": 3}
        assert {k: r.status for k, r in failed.steps.items()} == {
            "a": StepStatus.SUCCEEDED,
            "b": StepStatus.FAILED,
            "c": StepStatus.SKIPPED,
        }
        events = s.events_json("run-failed")
        assert [(e["type"], e["step_id"]) for e in events] == [
            ("run_started", None),
            ("step_started", "a"),
            ("step_succeeded", "a"),
            ("step_started", "b"),
            ("step_skipped", "c"),
            ("step_failed", "b"),
            ("run_finished", None),
        ]
        assert events[3]["data"] == {"tool": "add"}
        (plan,) = s.plans("run-failed")
        s.claim("run-failed", plan=plan, allow={"failed"})  # the same plan: no new version
        assert len(s.plans("run-failed")) == 1
        s.record(Event(StepStarted("add", {"x": 3, "y": 3}), "run-failed", "b", 1))
        s.record(Event(StepSucceeded(6), "run-failed", "b", 1))
        assert s.completed_outputs("run-failed") == {"a": 3, "b": 6}


# --------------------------------------------------------------------------- version 2 -> 3

PLAN = Plan.model_validate(
    {
        "goal": "add up",
        "steps": [
            {"id": "a", "tool": "add", "args": {"x": 1, "y": 2}},
            {"id": "b", "tool": "add", "args": {"x": "$a", "y": 3}},
        ],
        "answer": "${b}",
    }
)
T0 = 1_767_225_600.0
ERROR = '{"type":"ToolError","message":"boom","transient":false}'
# A failed run as version 2 journalled it: text types, step_started rows with their tool.
V2_EVENTS = [
    ("run_started", None, 0, None, '{"goal":"add up"}'),
    ("step_started", "a", 1, None, '{"tool":"add"}'),
    ("step_succeeded", "a", 1, 0.5, None),
    ("step_started", "b", 1, None, '{"tool":"add"}'),
    ("step_failed", "b", 1, 0.5, '{"error":' + ERROR + "}"),
    ("run_finished", None, 0, None, '{"status":"failed","error":"b failed","final":true}'),
]


def build_v2(url: str) -> None:
    """A store at schema version 2, written with that version's SQL, holding one failed run."""
    if is_database_url(url):
        conn: Any = psycopg.connect(url, autocommit=True)
        ddl, statements = PostgresBackend.schema_version_ddl, [m.postgresql for m in MIGRATIONS]
        mark = "%s"
    else:
        conn = sqlite3.connect(url, isolation_level=None)
        ddl, statements = SqliteBackend.schema_version_ddl, [m.statements for m in MIGRATIONS]
        mark = "?"

    def run(sql: str, *params: Any) -> None:
        conn.execute(sql.replace("?", mark), params)

    try:
        run("BEGIN")
        run(ddl)
        for migration, sql in zip(MIGRATIONS[:2], statements, strict=False):
            for statement in sql:
                run(statement)
            run("INSERT INTO schema_version VALUES (?, ?, ?)", migration.version, T0, "v")
        run(
            "INSERT INTO runs (id, goal, status, created_at, updated_at, finished_at, error) "
            "VALUES ('r2', 'add up', 'failed', ?, ?, ?, 'b failed')",
            T0,
            T0 + 2,
            T0 + 2,
        )
        # Version 2 wrote plans with json.dumps' spaces.
        plan_text = json.dumps(PLAN.to_json(), sort_keys=True, ensure_ascii=False)
        run("INSERT INTO plans VALUES ('r2', 1, ?, ?)", plan_text, T0)
        run(
            "INSERT INTO steps VALUES ('r2', 'a', 'add', 'succeeded', 1, ?, '3', NULL, NULL, "
            "?, ?, 0)",
            '{"x":1,"y":2}',
            T0 + 0.5,
            T0 + 1,
        )
        run(
            "INSERT INTO steps VALUES ('r2', 'b', 'add', 'failed', 1, ?, NULL, ?, NULL, ?, ?, 0)",
            '{"x":3,"y":3}',
            ERROR,
            T0 + 1,
            T0 + 1.5,
        )
        for i, (kind, step, attempt, duration, data) in enumerate(V2_EVENTS):
            run(
                "INSERT INTO events (run_id, type, step_id, attempt, ts, duration, data) "
                "VALUES ('r2', ?, ?, ?, ?, ?, ?)",
                kind,
                step,
                attempt,
                T0 + i * 0.25,
                duration,
                data,
            )
        run("COMMIT")
    finally:
        conn.close()


def test_a_version_2_store_migrates_to_3_and_reads_back_as_it_was(store_url: str) -> None:
    build_v2(store_url)
    with RunStore(store_url) as s:
        assert s.schema_version == CURRENT_SCHEMA_VERSION == 4
        events = s.events_json("r2")
        assert [(e["type"], e["step_id"], e["data"]) for e in events] == [
            (kind, step, json.loads(data) if data else {}) for kind, step, _, _, data in V2_EVENTS
        ]
        assert [e["ts"] for e in events] == [T0 + i * 0.25 for i in range(len(V2_EVENTS))]
        codes = raw(s, "SELECT type FROM events ORDER BY seq")
        assert codes == [(2,), (0,), (1,), (0,), (6,), (3,)]
        result = s.load_result("r2")
        assert result.status is RunStatus.FAILED and result.outputs == {"a": 3}
        assert result.steps["b"].error is not None and result.steps["b"].error.message == "boom"
        assert [e.type for e in s.events("r2")][-1] is EventType.RUN_FINISHED

        # Started again with the same plan, which version 2 wrote in other text: no new version.
        s.claim("r2", plan=PLAN, allow={"failed"})
        assert len(s.plans("r2")) == 1 and s.plans("r2")[0] == PLAN
        s.record(Event(StepReused(3), "r2", "a"))
        s.record(Event(StepStarted("add", {"x": 3, "y": 3}), "r2", "b", 1))
        s.record(Event(StepSucceeded(6), "r2", "b", 1))
        assert s.completed_outputs("r2") == {"a": 3, "b": 6}
        assert s.load_result("r2").steps["b"].status is StepStatus.SUCCEEDED
        new = s.events_json("r2")[len(V2_EVENTS) :]
        assert [(e["type"], e["data"]) for e in new] == [
            ("step_reused", {}),
            ("step_started", {"tool": "add"}),  # from the step row: the event has no tool
            ("step_succeeded", {}),
        ]
        assert raw(s, "SELECT data FROM events WHERE type = 0 ORDER BY seq DESC LIMIT 1") == [
            (None,)
        ]
        if s.backend == "sqlite":
            (sql,) = raw(s, "SELECT sql FROM sqlite_master WHERE name = 'steps'")[0]
            assert "WITHOUT ROWID" in sql
