"""The SQLite backend of the run store: one file in WAL mode, shared by the processes of a machine.

Writers are serialised by ``BEGIN IMMEDIATE`` (retried with backoff on ``SQLITE_BUSY`` beyond
sqlite's own busy timeout), so a claim needs no lock of its own. A run's owner is a process of
this machine: :mod:`~tooldag.durable._liveness` probes it in ``/proc``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from .._files import private_file
from ..errors import StoreError
from ._backend import Backend, Connection, Owner
from ._liveness import owner_gone, owner_identity
from ._migrations import Migration

__all__ = ["SqliteBackend"]


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


class SqliteBackend(Backend):
    """A SQLite file (or ``":memory:"``). Raises sqlite3 or OS errors; the store reports them."""

    dialect = "sqlite"
    begin_hint = "another process may hold the store locked: retry, or raise busy_timeout"
    write_hint = "check the disk has room and the file is writable, then resume the run"
    schema_version_ddl = (
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "applied_at REAL NOT NULL, description TEXT NOT NULL)"
    )

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float, synchronous: str):
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self.key = self.path if self.path == ":memory:" else os.path.realpath(self.path)
        self.busy_timeout = busy_timeout
        self.errors = (sqlite3.Error, OSError)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous={synchronous!r}: use NORMAL, FULL or EXTRA")
        if self.path != ":memory:":
            private_file(Path(self.path))
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self.retry(lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")

    @property
    def conn(self) -> Connection:
        return self._conn

    def retry(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; on SQLITE_BUSY beyond sqlite's own timeout, back off and try again."""
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        retrying = Retrying(
            retry=retry_if_exception(_is_busy),
            stop=stop_after_delay(self.busy_timeout),
            wait=wait_random_exponential(multiplier=0.01, max=0.5),
            reraise=True,
        )
        return retrying(action)

    def begin(self) -> None:
        self.retry(lambda: self._conn.execute("BEGIN IMMEDIATE"))

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def close(self) -> None:
        self._conn.close()

    def statements(self, migration: Migration) -> tuple[str, ...]:
        return migration.statements

    def owner(self) -> Owner:
        return owner_identity()

    def gone(self, row: Any) -> bool:
        return owner_gone(
            self.key, row["id"], row["owner_pid"], row["owner_host"], row["owner_token"]
        )
