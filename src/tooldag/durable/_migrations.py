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
``events_by_run`` covers the run alone (every SQLite index entry holds the rowid, ``seq``).
``tests/test_store_migrations.py`` migrates old stores of both.

Version 3 is about size (a step's journal went from about 300 to 225 bytes, plan included): event
types are numbers (:data:`EVENT_CODES`), and what the journal writes changed too (a
``step_started`` row no longer repeats the step's tool; plans are stored without spaces).

Version 4 is about size too (about 60 bytes a step: 261 to 200 KiB per 1,000 no-op steps, plan
included): a run is referenced by an integer. ``runs`` gets ``key`` (SQLite's ``INTEGER PRIMARY
KEY``, an identity column in PostgreSQL) and ``id`` (the text run id every API speaks) gets a
unique index (``runs_by_id``, the same in both databases); ``plans``, ``steps`` and ``events``
hold the key in their ``run`` column, where the text id was repeated in every row and every index
entry. The key is the database's (a plain rowid, which VACUUM may renumber, would not do),
immutable, and never reused: runs are never deleted (PostgreSQL's keys may skip numbers: an upsert
of a run that exists draws one too). The rows of a run that had no ``runs`` row (step events
recorded for a run the store did not know) get one, ``pending``, as the journal now makes.
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


# Version 4's statements that both databases speak: the copies into the new tables (each
# old table's rows, with the run's key for its id) and the indexes of runs.
_RUN_COLUMNS = (
    "id, goal, status, created_at, updated_at, finished_at, answer, error, prompt_tokens, "
    "completion_tokens, total_tokens, llm_calls, owner_pid, owner_host, owner_token, "
    "lease_until, queued_at"
)
_COPY_RUNS = (
    f"INSERT INTO runs_v4 ({_RUN_COLUMNS}) SELECT {_RUN_COLUMNS} FROM runs ORDER BY {{order}}"
)
_RUNS_INDEXES = (
    "CREATE UNIQUE INDEX runs_by_id ON runs(id)",
    "CREATE INDEX runs_by_created ON runs(created_at)",
    "CREATE INDEX runs_queued ON runs(queued_at) WHERE queued_at IS NOT NULL",
)
# A row for every run that had none: the copies below join on it, and would drop its rows.
_ORPHAN_RUNS = """INSERT INTO runs (id, status, created_at, updated_at)
        SELECT run_id, 'pending', COALESCE(MIN(ts), 0), COALESCE(MAX(ts), 0) FROM (
            SELECT run_id, created_at AS ts FROM plans
            UNION ALL SELECT run_id, COALESCE(started_at, finished_at) FROM steps
            UNION ALL SELECT run_id, ts FROM events) AS old
        WHERE run_id NOT IN (SELECT id FROM runs) GROUP BY run_id ORDER BY 3, 1"""
_COPY_PLANS = (
    "INSERT INTO plans_v4 SELECT r.key, p.version, p.plan, p.created_at "
    "FROM plans p JOIN runs r ON r.id = p.run_id"
)
_COPY_STEPS = (
    "INSERT INTO steps_v4 SELECT r.key, s.step_id, s.tool, s.status, s.attempts, s.args, "
    "s.output, s.error, s.reason, s.started_at, s.finished_at, s.reused "
    "FROM steps s JOIN runs r ON r.id = s.run_id"
)
_COPY_EVENTS = (
    "INSERT INTO events_v4 SELECT e.seq, r.key, e.type, e.step_id, e.attempt, e.ts, "
    "e.duration, e.data FROM events e JOIN runs r ON r.id = e.run_id"
)


def _pg_renamed(table: str, identity: str | None = None) -> tuple[str, ...]:
    """PostgreSQL: ``table_v4`` replaces ``table``, under the names ``table`` would have had."""
    statements: tuple[str, ...] = (
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v4 RENAME TO {table}",
        f"ALTER INDEX {table}_v4_pkey RENAME TO {table}_pkey",
    )
    if identity is not None:
        sequence = f"{table}_v4_{identity}_seq"
        statements += (f"ALTER SEQUENCE {sequence} RENAME TO {table}_{identity}_seq",)
    return statements


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
    Migration(
        4,
        "runs referenced by an integer key instead of their text id",
        (
            # SQLite's way to change a table's columns: a new table, a copy, the old one dropped.
            # key is the rowid, made stable by naming it (VACUUM may renumber a hidden rowid).
            """CREATE TABLE runs_v4 (
                key INTEGER PRIMARY KEY, id TEXT NOT NULL, goal TEXT NOT NULL DEFAULT '',
                status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                finished_at REAL, answer TEXT, error TEXT,
                prompt_tokens INTEGER NOT NULL DEFAULT 0,
                completion_tokens INTEGER NOT NULL DEFAULT 0,
                total_tokens INTEGER NOT NULL DEFAULT 0, llm_calls INTEGER NOT NULL DEFAULT 0,
                owner_pid INTEGER, owner_host TEXT, owner_token TEXT, lease_until REAL,
                queued_at REAL)""",
            # In rowid order: runs made in one clock tick keep their order (newest_first).
            _COPY_RUNS.format(order="rowid"),
            "DROP TABLE runs",
            "ALTER TABLE runs_v4 RENAME TO runs",
            *_RUNS_INDEXES,
            _ORPHAN_RUNS,
            """CREATE TABLE plans_v4 (
                run INTEGER NOT NULL, version INTEGER NOT NULL, plan TEXT NOT NULL,
                created_at REAL NOT NULL, PRIMARY KEY (run, version))""",
            _COPY_PLANS,
            "DROP TABLE plans",
            "ALTER TABLE plans_v4 RENAME TO plans",
            """CREATE TABLE steps_v4 (
                run INTEGER NOT NULL, step_id TEXT NOT NULL, tool TEXT, status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, args TEXT, output TEXT, error TEXT,
                reason TEXT, started_at REAL, finished_at REAL, reused INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (run, step_id)) WITHOUT ROWID""",
            _COPY_STEPS,
            "DROP TABLE steps",
            "ALTER TABLE steps_v4 RENAME TO steps",
            """CREATE TABLE events_v4 (
                seq INTEGER PRIMARY KEY, run INTEGER NOT NULL, type INTEGER NOT NULL,
                step_id TEXT, attempt INTEGER NOT NULL DEFAULT 0, ts REAL NOT NULL,
                duration REAL, data TEXT)""",
            _COPY_EVENTS,
            "DROP TABLE events",
            "ALTER TABLE events_v4 RENAME TO events",
            "CREATE INDEX events_by_run ON events(run)",
        ),
        postgresql=(
            # The same new tables; each renamed table's primary key index and identity sequence
            # get the names a table made under its final name has.
            """CREATE TABLE runs_v4 (
                key BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL,
                goal TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION, answer TEXT, error TEXT,
                prompt_tokens BIGINT NOT NULL DEFAULT 0,
                completion_tokens BIGINT NOT NULL DEFAULT 0,
                total_tokens BIGINT NOT NULL DEFAULT 0, llm_calls BIGINT NOT NULL DEFAULT 0,
                owner_pid BIGINT, owner_host TEXT, owner_token TEXT,
                lease_until DOUBLE PRECISION, queued_at DOUBLE PRECISION)""",
            # Version 3 broke created_at ties by id: so do the keys, made here.
            _COPY_RUNS.format(order="created_at, id"),
            *_pg_renamed("runs", identity="key"),
            *_RUNS_INDEXES,
            _ORPHAN_RUNS,
            """CREATE TABLE plans_v4 (
                run BIGINT NOT NULL, version BIGINT NOT NULL, plan TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (run, version))""",
            _COPY_PLANS,
            *_pg_renamed("plans"),
            """CREATE TABLE steps_v4 (
                run BIGINT NOT NULL, step_id TEXT NOT NULL, tool TEXT, status TEXT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0, args TEXT, output TEXT, error TEXT,
                reason TEXT, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
                reused BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (run, step_id))""",
            _COPY_STEPS,
            *_pg_renamed("steps"),
            """CREATE TABLE events_v4 (
                seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, run BIGINT NOT NULL,
                type SMALLINT NOT NULL, step_id TEXT, attempt BIGINT NOT NULL DEFAULT 0,
                ts DOUBLE PRECISION NOT NULL, duration DOUBLE PRECISION, data TEXT)""",
            _COPY_EVENTS,
            *_pg_renamed("events", identity="seq"),
            # The copied rows kept their seq: new ones go on after the last.
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), "
            "COALESCE((SELECT MAX(seq) FROM events), 0) + 1, false)",
            "CREATE INDEX events_by_run ON events(run, seq)",
        ),
    ),
)
CURRENT_SCHEMA_VERSION = MIGRATIONS[-1].version
