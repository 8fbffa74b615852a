"""What the run store tests of both backends share: SQL outside the store's API, the driver's
error type, an integrity check, and a run made to look as if its owner died."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from typing import Any

import psycopg

from tooldag.durable.store import RunStore

__all__ = ["db_error", "integrity", "orphan", "raw"]


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
