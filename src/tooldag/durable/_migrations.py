"""The run store's schema, as the list of migrations that build it, and its version.

Kept apart from :mod:`tooldag.durable.store` (which applies them, in one transaction, when a store
is opened) because the schema is a frozen record: a released :class:`Migration` is never edited, a
new version is a new entry, and a frozen fixture per version (``tests/fixtures``) proves old
stores still open. Users import these names from :mod:`tooldag.durable.store`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CURRENT_SCHEMA_VERSION", "MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. Released migrations are never edited: add a new one instead."""

    version: int
    description: str
    statements: tuple[str, ...]


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
    ),
)
CURRENT_SCHEMA_VERSION = MIGRATIONS[-1].version
