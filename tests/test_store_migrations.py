"""Old stores open, migrate and stay writable: the frozen fixture of each schema version
(``tests/fixtures``, SQLite; version 4's is the current one's own, and a fresh store must have
its schema), and stores built in the test on both backends: a version-2 one, migrated past
version 3 (event types as numbers, a step_started without its tool, compact plans and, with
SQLite, a steps table keyed by its primary key alone), and a version-3 one with several runs,
migrated to version 4 (runs referenced by an integer key)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from store_helpers import raw, schema
from tooldag.durable._postgres import PostgresBackend
from tooldag.durable._sqlite import SqliteBackend
from tooldag.durable.store import (
    CURRENT_SCHEMA_VERSION,
    MIGRATIONS,
    RunStore,
    is_database_url,
)
from tooldag.events import (
    Event,
    EventType,
    RunStarted,
    StepReused,
    StepStarted,
    StepSucceeded,
)
from tooldag.plan import Plan
from tooldag.result import RunStatus, StepStatus
from tooldag.ui.cli import main as cli_main

FIXTURES = Path(__file__).parent / "fixtures"


@contextmanager
def frozen_fixture(tmp_path: Path, version: int) -> Iterator[RunStore]:
    """A copy of the frozen store of ``version``, opened (and so migrated) by this version."""
    path = tmp_path / f"v{version}.sqlite3"
    shutil.copy(FIXTURES / f"store_v{version}.sqlite3", path)
    with RunStore(path) as s:
        assert s.schema_version == CURRENT_SCHEMA_VERSION
        yield s


def test_frozen_v1_fixture_opens_and_reads_back(tmp_path: Path) -> None:
    with frozen_fixture(tmp_path, 1) as s:
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
    with frozen_fixture(tmp_path, 2) as s:
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
    with frozen_fixture(tmp_path, 3) as s:
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


def test_frozen_v4_fixture_opens_reads_back_and_resumes_one_run_of_two(tmp_path: Path) -> None:
    with frozen_fixture(tmp_path, 4) as s:
        # Made in one clock tick: the newer key is listed first.
        assert [(r.id, r.status) for r in s.list_runs()] == [
            ("run-done", RunStatus.SUCCEEDED),
            ("run-failed", RunStatus.FAILED),
        ]
        assert s.load_result("run-done").answer == "6"
        assert s.completed_outputs("run-done") == {"a": 3, "b": 6}
        failed = s.load_result("run-failed")
        assert failed.error == "b failed" and failed.outputs == {"a": 3}
        assert failed.steps["b"].error is not None and failed.steps["b"].error.message == "boom"
        assert [(e["type"], e["step_id"]) for e in s.events_json("run-failed")] == [
            ("run_started", None),
            ("step_started", "a"),
            ("step_succeeded", "a"),
            ("step_started", "b"),
            ("step_skipped", "c"),
            ("step_failed", "b"),
            ("run_finished", None),
        ]
        done_events = s.events_json("run-done")
        (plan,) = s.plans("run-failed")
        s.claim("run-failed", plan=plan, allow={"failed"})
        s.record(Event(StepStarted("add", {"x": 3, "y": 3}), "run-failed", "b", 1))
        s.record(Event(StepSucceeded(6), "run-failed", "b", 1))
        assert s.completed_outputs("run-failed") == {"a": 3, "b": 6}
        assert len(s.plans("run-failed")) == 1
        assert s.events_json("run-done") == done_events  # the other run's rows are its own


def _sqlite_master(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return list(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 2"))
    finally:
        db.close()


def test_a_fresh_store_has_the_schema_of_the_newest_frozen_fixture(tmp_path: Path) -> None:
    # The fixture froze what the current migrations build: a change to them (rather than a new
    # version, with a fixture of its own) fails here.
    newest = max(FIXTURES.glob("store_v*.sqlite3"), key=lambda f: int(f.stem.split("_v")[1]))
    assert newest.name == f"store_v{CURRENT_SCHEMA_VERSION}.sqlite3"
    RunStore(tmp_path / "fresh.sqlite3").close()
    assert _sqlite_master(tmp_path / "fresh.sqlite3") == _sqlite_master(newest)
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite3")
    frozen = sqlite3.connect(newest)
    try:
        versions = "SELECT version, description FROM schema_version ORDER BY 1"
        assert list(fresh.execute(versions)) == list(frozen.execute(versions))
    finally:
        fresh.close()
        frozen.close()


def test_the_cli_lists_shows_and_resumes_a_migrated_v3_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v3.sqlite3"
    shutil.copy(FIXTURES / "store_v3.sqlite3", path)
    tools = tmp_path / "add_tools.py"
    tools.write_text(
        "from tooldag.registry import tool\n\n\n"
        "@tool\ndef add(x: int, y: int) -> int:\n    return x + y\n"
    )
    assert cli_main(["runs", "list", "--json", "--store", str(path)]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["status"], listed["plan_versions"]) == ("run-failed", "failed", 1)
    assert listed["steps"] == {"failed": 1, "skipped": 1, "succeeded": 1}
    assert cli_main(["runs", "show", "run-failed", "--store", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "b failed" in shown and "boom" in shown
    assert (
        cli_main(["runs", "resume", "run-failed", "--tools", str(tools), "--store", str(path)]) == 0
    )
    capsys.readouterr()
    with RunStore(path) as s:
        result = s.load_result("run-failed")
        assert result.status is RunStatus.SUCCEEDED and result.outputs == {"a": 3, "b": 6}
        assert result.steps["a"].reused  # its output came from the store, as before


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


Run = Callable[..., None]


@contextmanager
def old_store(url: str, version: int) -> Iterator[Run]:
    """A store built by the migrations up to ``version`` (SQLite or PostgreSQL), and what runs
    SQL on it (``?`` parameters) in one transaction, committed at the end: the rows written
    are what that version's SQL wrote."""
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
        for migration, sql in zip(MIGRATIONS[:version], statements, strict=False):
            for statement in sql:
                run(statement)
            run("INSERT INTO schema_version VALUES (?, ?, ?)", migration.version, T0, "v")
        yield run
        run("COMMIT")
    finally:
        conn.close()


def build_v2(url: str) -> None:
    """A store at schema version 2, written with that version's SQL, holding one failed run."""
    with old_store(url, 2) as run:
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


def test_a_version_2_store_migrates_past_3_and_reads_back_as_it_was(store_url: str) -> None:
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


# --------------------------------------------------------------------------- version 3 -> 4

REPLAN = PLAN.model_copy(update={"answer": "b is ${b}"})


def compact(plan: Plan) -> str:
    """A plan as version 3 stores it: JSON without spaces."""
    return json.dumps(plan.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# (seq, run id, type code, step, data) as version 3 journalled two runs side by side, and a run
# with no runs row (step events recorded for it alone). A step_started has no data.
V3_EVENTS = [
    (1, "r-a", 2, None, '{"goal":"add up"}'),
    (2, "r-b", 2, None, '{"goal":"add up"}'),
    (3, "r-a", 0, "a", None),
    (4, "r-b", 0, "a", None),
    (5, "r-a", 1, "a", None),
    (6, "r-b", 6, "a", '{"error":' + ERROR + "}"),
    (7, "r-lost", 0, "x", None),
    (8, "r-b", 4, None, '{"version":2}'),
    (9, "r-a", 3, None, '{"status":"succeeded","answer":"3","final":true}'),
    (10, "r-lost", 1, "x", None),
    (11, "r-b", 3, None, '{"status":"failed","error":"a failed","final":true}'),
]


def build_v3(url: str) -> None:
    """A store at schema version 3: a succeeded run, a failed one that was replanned (with a
    lease, queued, with usage), and a run that has no runs row."""
    with old_store(url, 3) as run:
        run(
            "INSERT INTO runs (id, goal, status, created_at, updated_at, finished_at, answer) "
            "VALUES ('r-a', 'add up', 'succeeded', ?, ?, ?, '3')",
            T0,
            T0 + 9,
            T0 + 9,
        )
        run(
            "INSERT INTO runs (id, goal, status, created_at, updated_at, finished_at, error, "
            "prompt_tokens, completion_tokens, total_tokens, llm_calls, owner_pid, owner_host, "
            "owner_token, lease_until, queued_at) VALUES ('r-b', 'add up', 'failed', ?, ?, ?, "
            "'a failed', 10, 2, 12, 1, 4242, 'old-host', 'tok', ?, ?)",
            T0 + 1,
            T0 + 11,
            T0 + 11,
            T0 + 30,
            T0 + 0.5,
        )
        run("INSERT INTO plans VALUES ('r-a', 1, ?, ?)", compact(PLAN), T0)
        run("INSERT INTO plans VALUES ('r-b', 1, ?, ?)", compact(PLAN), T0 + 1)
        run("INSERT INTO plans VALUES ('r-b', 2, ?, ?)", compact(REPLAN), T0 + 8)
        for run_id, step, status, output, error in [
            ("r-a", "a", "succeeded", "3", None),
            ("r-b", "a", "failed", None, ERROR),
            ("r-lost", "x", "succeeded", '{"v":1}', None),
        ]:
            run(
                "INSERT INTO steps VALUES (?, ?, 'add', ?, 1, '{}', ?, ?, NULL, ?, ?, 0)",
                run_id,
                step,
                status,
                output,
                error,
                T0 + 3,
                T0 + 5,
            )
        for seq, run_id, code, step, data in V3_EVENTS:
            run(
                "INSERT INTO events (seq, run_id, type, step_id, attempt, ts, duration, data) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                seq,
                run_id,
                code,
                step,
                1 if step else 0,
                T0 + seq,
                data,
            )


def test_a_version_3_store_migrates_to_run_keys_with_every_run_intact(
    store_url: str, tmp_path: Path
) -> None:
    build_v3(store_url)
    with RunStore(store_url) as s:
        assert s.schema_version == 4
        columns = schema(s)["columns"]
        assert columns["runs"][:2] == ["key", "id"]
        assert [columns[t][0] for t in ("plans", "steps")] == ["run", "run"]
        assert columns["events"][:2] == ["seq", "run"]
        assert not any("run_id" in names for names in columns.values())
        assert schema(s)["indexes"] == {
            "runs_by_id",
            "runs_by_created",
            "runs_queued",
            "events_by_run",
        }
        if s.backend == "sqlite":  # as a store made at version 4 has it, statement for statement
            assert _sqlite_master(Path(store_url)) == _sqlite_master(FIXTURES / "store_v4.sqlite3")
        # Keys in the order the runs were made; the run without a row got one, pending.
        assert raw(s, "SELECT id, key FROM runs ORDER BY key") == [
            ("r-a", 1),
            ("r-b", 2),
            ("r-lost", 3),
        ]
        assert [(r.id, r.status) for r in s.list_runs()] == [
            ("r-lost", RunStatus.PENDING),
            ("r-b", RunStatus.FAILED),
            ("r-a", RunStatus.SUCCEEDED),
        ]
        for run_id in ("r-a", "r-b", "r-lost"):
            assert [e["seq"] for e in s.events_since(run_id)] == [
                seq for seq, r, *_ in V3_EVENTS if r == run_id
            ]
        assert s.events_json("r-b")[1]["data"] == {"tool": "add"}  # from r-b's own step row
        a = s.load_result("r-a")
        assert (a.status, a.answer, a.outputs) == (RunStatus.SUCCEEDED, "3", {"a": 3})
        b = s.get_run("r-b")
        assert b is not None and b.plan_versions == 2 and b.usage.total_tokens == 12
        assert (b.owner_pid, b.owner_host, b.step_counts) == (4242, "old-host", {"failed": 1})
        assert raw(s, "SELECT lease_until, queued_at FROM runs WHERE id = 'r-b'") == [
            (T0 + 30, T0 + 0.5)
        ]
        assert s.plans("r-b") == [PLAN, REPLAN]
        assert s.load_result("r-b").steps["a"].error is not None
        assert s.completed_outputs("r-lost") == {"x": {"v": 1}}

        # Journalled on: a new run takes the next key, new events the next seq.
        s.record(Event(RunStarted(PLAN, "more"), "r-new"))
        assert raw(s, "SELECT key FROM runs WHERE id = 'r-new'") == [(4,)]
        s.claim("r-b", plan=REPLAN, allow={"failed"})
        s.record(Event(StepStarted("add", {"x": 1, "y": 2}), "r-b", "a", 1))
        s.record(Event(StepSucceeded(3), "r-b", "a", 1))
        assert s.completed_outputs("r-b") == {"a": 3}
        assert [e["seq"] for e in s.events_since("r-b", 11)] == [13, 14]
        assert s.completed_outputs("r-a") == {"a": 3} and len(s.plans("r-b")) == 2
