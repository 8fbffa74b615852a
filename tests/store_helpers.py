"""What the run store and scale-out tests share: SQL outside the store's API, the driver's error
type, an integrity check, a run made to look as if its owner died, processes started together,
and waiting for what a tool writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tooldag.durable.store import RunStore

__all__ = [
    "db_error",
    "integrity",
    "orphan",
    "raw",
    "schema",
    "start_together",
    "wait_for",
    "wait_for_file",
]


def raw(store: RunStore, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL (``?`` parameters) on the store's database, outside the store's API (SQLite: on
    a connection of its own)."""
    if store.backend == "sqlite":
        db = sqlite3.connect(store.path)
        try:
            rows = [tuple(r) for r in db.execute(sql, params)]
            db.commit()
            return rows
        finally:
            db.close()
    with store._read() as conn:  # its connection: the URL's password is not in store.path
        cursor: Any = conn.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


def schema(store: RunStore) -> dict[str, Any]:
    """The store's tables with their columns (in order), its indexes (but primary keys) and its
    schema versions, as its database lists them: what both backends must agree on."""
    if store.backend == "sqlite":
        tables = [r[0] for r in raw(store, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {t: [r[1] for r in raw(store, f"PRAGMA table_info({t})")] for t in tables}
        indexes = {
            r[0]
            for r in raw(
                store, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    else:
        columns = {}
        for table, column in raw(
            store,
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        ):
            columns.setdefault(table, []).append(column)
        indexes = {
            r[0]
            for r in raw(
                store,
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname NOT LIKE '%_pkey'",
            )
        }
    versions = [r[0] for r in raw(store, "SELECT version FROM schema_version ORDER BY 1")]
    return {"columns": columns, "indexes": indexes, "versions": versions}


def db_error(store: RunStore, message: str) -> Exception:
    """What the store's database driver raises when the disk or the server fails."""
    if store.backend == "sqlite":
        return sqlite3.OperationalError(message)
    return psycopg.OperationalError(message)


def integrity(store: RunStore) -> str:
    """SQLite's integrity check; a PostgreSQL server keeps its own (``ok`` when it answers)."""
    if store.backend == "sqlite":
        return str(raw(store, "PRAGMA integrity_check")[0][0])
    return "ok" if raw(store, "SELECT 1") == [(1,)] else "no answer"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def orphan(store: RunStore, where: str = "1 = 1") -> None:
    """Make the runs ``where`` picks look owned by a process that died: with SQLite a pid that is
    gone, with PostgreSQL another process whose lease ran out."""
    raw(
        store,
        "UPDATE runs SET owner_pid = ?, owner_token = 'gone', lease_until = 0 WHERE " + where,
        _dead_pid(),
    )


def start_together(
    scripts: list[list[str]], env: Mapping[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """Start Python ``-c`` scripts (each argv after ``-c``) that print ``ready`` and then wait for
    a line on stdin, and release them at once when all are ready: a barrier across processes."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
        )
        for argv in scripts
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds: for what another process or a lease (time in the
    database's clock) brings about; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_file(path: Path, timeout: float = 60.0) -> str:
    """The text of ``path`` once a tool has written some."""
    wait_for(lambda: path.exists() and path.read_text(), f"{path} to be written", timeout)
    return path.read_text()
