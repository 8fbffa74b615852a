"""The run store's schema, as the list of migrations that build it, and its version.

Kept apart from :mod:`tooldag.durable.store` (which applies them, in one transaction, when a store
is opened) because the schema is a frozen record: a released :class:`Migration` is never edited, a
new version is a new entry, and a frozen fixture per version (``tests/fixtures``) proves old
stores still open. Users import these names from :mod:`tooldag.durable.store`.

Each migration holds the same schema step twice: ``statements`` in SQLite's dialect (as released)
and ``postgresql`` in PostgreSQL's (``DOUBLE PRECISION`` for SQLite's 8-byte ``REAL``, an identity
column for ``INTEGER PRIMARY KEY``). Both backends are at the same version with the same tables,
columns and indexes (``tests/test_store_postgres.py`` compares them), stored as each database keeps
them smallest: from version 3, SQLite's ``steps`` is a ``WITHOUT ROWID`` table and its
``events_by_run`` covers ``run_id`` alone (every SQLite index entry holds the rowid, ``seq``).
``tests/test_store_migrations.py`` migrates old stores of both.

Version 3 is about size (a step's journal went from about 300 to 225 bytes, plan included): event
types are numbers (:data:`EVENT_CODES`), and what the journal writes changed too (a
``step_started`` row no longer repeats the step's tool; plans are stored without spaces).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CURRENT_SCHEMA_VERSION", "EVENT_CODES", "MIGRATIONS", "Migration"]

_V3_CODES = {
    "step_started": 0,
    "step_succeeded": 1,
    "run_started": 2,
    "run_finished": 3,
    "plan_created": 4,
    "step_retrying": 5,
    "step_failed": 6,
    "step_skipped": 7,
    "step_blocked": 8,
    "step_cancelled": 9,
    "step_reused": 10,
    "step_compensated": 11,
    "step_compensation_failed": 12,
    "llm_call": 13,
}
EVENT_CODES: dict[str, int] = {**_V3_CODES}
"""Each event type's number in ``events.type`` (from version 3; text before). Frozen as the
migrations are: a code is never changed or reused, a new event type takes the next one (here, not
in ``_V3_CODES``, which version 3 rewrote older stores' text types with). The two events of every
step have 0 and 1, which SQLite stores in no bytes at all."""

_TYPE_CODE = "CASE type {} END".format(
    " ".join(f"WHEN '{name}' THEN {code}" for name, code in _V3_CODES.items())
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. Released migrations are never edited: add a new one instead."""

    version: int
    description: str
    statements: tuple[str, ...]
    postgresql: tuple[str, ...] = ()


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, plans, steps and the event log",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY, goal TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
                created_at REAL NOT NULL, updated_at REAL NOT NULL, finished_at REAL,
                answer TEXT, error TEXT,
                prompt_tokens INTEGER NOT NULL DEFAULT 0,
                completion_tokens INTEGER NOT NULL DEFAULT 0,
                total_tokens INTEGER NOT NULL DEFAULT 0, llm_calls INTEGER NOT NULL DEFAULT 0,
                owner_pid INTEGER, owner_host TEXT, owner_token TEXT)""",
            "CREATE INDEX runs_by_created ON runs(created_at)",
            """CREATE TABLE plans (
                run_id TEXT NOT NULL, version INTEGER NOT NULL, plan TEXT NOT NULL,
                created_at REAL NOT NULL, PRIMARY KEY (run_id, version))""",
            """CREATE TABLE steps (
                run_id TEXT NOT NULL, step_id TEXT NOT NULL, tool TEXT, status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, args TEXT, output TEXT, error TEXT,
                reason TEXT, started_at REAL, finished_at REAL, reused INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (run_id, step_id))""",
            """CREATE TABLE events (
                seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, type TEXT NOT NULL, step_id TEXT,
                attempt INTEGER NOT NULL DEFAULT 0, ts REAL NOT NULL, duration REAL, data TEXT)""",
            "CREATE INDEX events_by_run ON events(run_id, seq)",
        ),
        postgresql=(
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY, goal TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION, answer TEXT, error TEXT,
                prompt_tokens BIGINT NOT NULL DEFAULT 0,
                completion_tokens BIGINT NOT NULL DEFAULT 0,
                total_tokens BIGINT NOT NULL DEFAULT 0, llm_calls BIGINT NOT NULL DEFAULT 0,
                owner_pid BIGINT, owner_host TEXT, owner_token TEXT)""",
            "CREATE INDEX runs_by_created ON runs(created_at)",
            """CREATE TABLE plans (
                run_id TEXT NOT NULL, version BIGINT NOT NULL, plan TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, version))""",
            """CREATE TABLE steps (
                run_id TEXT NOT NULL, step_id TEXT NOT NULL, tool TEXT, status TEXT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0, args TEXT, output TEXT, error TEXT,
                reason TEXT, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
                reused BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (run_id, step_id))""",
            """CREATE TABLE events (
                seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, run_id TEXT NOT NULL,
                type TEXT NOT NULL, step_id TEXT, attempt BIGINT NOT NULL DEFAULT 0,
                ts DOUBLE PRECISION NOT NULL, duration DOUBLE PRECISION, data TEXT)""",
            "CREATE INDEX events_by_run ON events(run_id, seq)",
        ),
    ),
    Migration(
        2,
        "a lease on each running run (liveness across hosts) and the queue of a run pool",
        (
            # When the owner's lease ends, in the database's clock (PostgreSQL stores renew it;
            # SQLite stores, on one machine, probe the owner's process instead).
            "ALTER TABLE runs ADD COLUMN lease_until REAL",
            # When the run was submitted to a RunPool: its workers take queued runs in order.
            "ALTER TABLE runs ADD COLUMN queued_at REAL",
            "CREATE INDEX runs_queued ON runs(queued_at) WHERE queued_at IS NOT NULL",
        ),
        postgresql=(
            "ALTER TABLE runs ADD COLUMN lease_until DOUBLE PRECISION",
            "ALTER TABLE runs ADD COLUMN queued_at DOUBLE PRECISION",
            "CREATE INDEX runs_queued ON runs(queued_at) WHERE queued_at IS NOT NULL",
        ),
    ),
    Migration(
        3,
        "a smaller journal: event types as numbers, steps keyed by their primary key alone",
        (
            # SQLite changes a column's type or a table's kind only by copying the table.
            # WITHOUT ROWID: the (run_id, step_id) key is the table, not a second index beside a
            # rowid table (a fifth of a step's bytes). Rows stay small (outputs above about a
            # kilobyte go to overflow pages, as in any table).
            """CREATE TABLE steps_v3 (
                run_id TEXT NOT NULL, step_id TEXT NOT NULL, tool TEXT, status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, args TEXT, output TEXT, error TEXT,
                reason TEXT, started_at REAL, finished_at REAL, reused INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (run_id, step_id)) WITHOUT ROWID""",
            "INSERT INTO steps_v3 SELECT run_id, step_id, tool, status, attempts, args, output, "
            "error, reason, started_at, finished_at, reused FROM steps",
            "DROP TABLE steps",
            "ALTER TABLE steps_v3 RENAME TO steps",
            # type: a number (EVENT_CODES). A step_started row no longer repeats its tool (the
            # step row has it); older rows keep theirs.
            """CREATE TABLE events_v3 (
                seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, type INTEGER NOT NULL,
                step_id TEXT, attempt INTEGER NOT NULL DEFAULT 0, ts REAL NOT NULL,
                duration REAL, data TEXT)""",
            f"INSERT INTO events_v3 SELECT seq, run_id, {_TYPE_CODE}, step_id, attempt, ts, "
            "duration, data FROM events",
            "DROP TABLE events",
            "ALTER TABLE events_v3 RENAME TO events",
            # seq is the rowid, which every SQLite index entry holds anyway: an index on run_id
            # reads a run's events in seq order without storing seq twice.
            "CREATE INDEX events_by_run ON events(run_id)",
        ),
        postgresql=(
            # PostgreSQL's heap has no rowid index to save, and its index on run_id alone would
            # not give a run's events in seq order: only the type changes here.
            f"ALTER TABLE events ALTER COLUMN type TYPE SMALLINT USING {_TYPE_CODE}",
        ),
    ),
)
CURRENT_SCHEMA_VERSION = MIGRATIONS[-1].version
