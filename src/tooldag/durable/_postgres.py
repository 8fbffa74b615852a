"""The PostgreSQL backend of the run store (psycopg 3): one database shared by many hosts.

What differs from SQLite, and why:

- **Claims** take a transaction-level advisory lock on the run id (``pg_advisory_xact_lock``), so
  two hosts claiming one run are serialised: the second sees the first's committed claim and is
  told who holds the run. (SQLite's ``BEGIN IMMEDIATE`` serialises every writer anyway.)
- **Liveness is a lease**, not a process probe: hosts cannot see each other's processes (and
  containers share host names and pids). The owner writes ``lease_until`` (the database's clock
  plus ``lease`` seconds) when it takes a run, and a daemon thread with its own connection renews
  it every ``lease / 3`` seconds while the run executes here. A run stored as running whose lease
  has passed, in the database's clock (so the hosts' clocks need not agree), reads as
  interrupted: its host died, hung, or lost the database. A run this process stops executing
  without finishing (its executor died) has its lease ended at once.
- **Fencing**: if a renewal finds the run owned by another process (this host was cut off past
  its lease and another took the run over), the run is marked lost here, and its next journal
  write raises :class:`~tooldag.errors.StoreError`, which stops the run: two owners never both
  journal one run for more than a renewal interval.

- **Durability** follows the store's ``synchronous``, as with SQLite: ``NORMAL`` (the default)
  commits without waiting for the server's disk (``synchronous_commit = off`` for the store's
  sessions): a commit survives the owner process being killed, and only a crash of the server
  (or of its machine) may lose the last few commits, never out of order, so a resume runs those
  steps again. ``FULL`` (or ``EXTRA``) waits for each commit to be flushed (the server's own
  setting). The difference is tens of times the cost of a step on a disk with slow fsyncs.

``lease`` defaults to ``$TOOLDAG_STORE_LEASE``, else 15 seconds. The SQL the store sends uses
``?`` parameters, turned into psycopg's ``%s`` once per statement text.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from ..errors import ConfigError, StoreError
from ._backend import Backend, Connection, Cursor, Owner, redact_url
from ._migrations import Migration

__all__ = ["DEFAULT_LEASE", "PostgresBackend", "lease_from_env"]

log = logging.getLogger("tooldag.store")

DEFAULT_LEASE = 15.0
_HOST = socket.gethostname()
# One token per process: a run row owned by it is this process's, whatever the pid looks like.
_TOKEN = uuid.uuid4().hex
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"


def lease_from_env() -> float:
    raw = os.environ.get("TOOLDAG_STORE_LEASE", "").strip()
    if not raw:
        return DEFAULT_LEASE
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigError(f"TOOLDAG_STORE_LEASE must be a positive number of seconds, not {raw!r}")
    return value


class _Row:
    """A row readable by position and by column name, as ``sqlite3.Row`` is."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: _Row(values, index)


_SQL: dict[str, str] = {}


def _psycopg_sql(sql: str) -> str:
    converted = _SQL.get(sql)
    if converted is None:
        converted = _SQL[sql] = sql.replace("%", "%%").replace("?", "%s")
    return converted


class _Connection:
    """A psycopg connection that takes the store's ``?`` SQL."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.raw.execute(_psycopg_sql(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        # psycopg sends the statements in one pipeline: one round trip, not one per row.
        with self.raw.cursor() as cursor:
            cursor.executemany(_psycopg_sql(sql), parameters)


class _Heartbeat:
    """Renews the leases of the runs this process executes, on a thread and connection of its
    own (so a busy or blocked event loop does not let them lapse)."""

    def __init__(self, url: str, lease: float) -> None:
        self.url = url
        self.lease = lease
        self.interval = lease / 3
        self.runs: set[str] = set()
        self.lost: dict[str, str] = {}  # run id -> who holds it now
        self.lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, run_id: str) -> None:
        with self.lock:
            self.runs.add(run_id)
            self.lost.pop(run_id, None)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, name="tooldag-lease", daemon=True
                )
                self._thread.start()

    def remove(self, run_id: str) -> None:
        with self.lock:
            self.runs.discard(run_id)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            while not self._closed.wait(self.interval):
                with self.lock:
                    ids = sorted(self.runs)
                if not ids:
                    continue
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = psycopg.connect(self.url, autocommit=True)
                    self._renew(conn, ids)
                except psycopg.Error as exc:
                    log.warning("cannot renew the lease of runs %s: %s", ", ".join(ids), exc)
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def _renew(self, conn: psycopg.Connection[Any], ids: list[str]) -> None:
        renewed = conn.execute(
            f"UPDATE runs SET lease_until = {_NOW} + %s WHERE id = ANY(%s) AND owner_token = %s "
            "RETURNING id",
            (self.lease, ids, _TOKEN),
        ).fetchall()
        missing = set(ids) - {row[0] for row in renewed}
        if not missing:
            return
        # Owned by another process now: this host was cut off past its lease and the run was
        # taken over. Stop journalling it here (see check_owner); undo nothing.
        holders = conn.execute(
            "SELECT id, owner_pid, owner_host FROM runs WHERE id = ANY(%s)", (sorted(missing),)
        ).fetchall()
        with self.lock:
            for run_id, pid, host in holders:
                if run_id in self.runs:
                    self.runs.discard(run_id)
                    self.lost[run_id] = f"process {pid} on {host}"
                    log.error("run %s was taken over by process %s on %s", run_id, pid, host)


class PostgresBackend(Backend):
    """A PostgreSQL database (a ``postgresql://`` URL, as libpq reads it)."""

    dialect = "postgresql"
    gone_because = "let its lease run out (it died, hung, or lost the database)"
    begin_hint = "check that the database server is up and reachable"
    write_hint = "check that the database server is up and reachable, then resume the run"
    now_sql = _NOW
    schema_version_ddl = (
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "applied_at DOUBLE PRECISION NOT NULL, description TEXT NOT NULL)"
    )

    def __init__(
        self, url: str, *, busy_timeout: float, lease: float | None, synchronous: str = "NORMAL"
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous={synchronous!r}: use NORMAL, FULL or EXTRA")
        # NORMAL: as SQLite's WAL NORMAL, a killed process loses nothing committed, a crash of
        # the database's machine may lose the last few commits.
        self._commit_mode = "off" if synchronous.upper() in ("OFF", "NORMAL") else "on"
        self.url = url
        self.path = redact_url(url)
        self.key = self.path
        self.busy_timeout = busy_timeout
        self.lease = lease_from_env() if lease is None else float(lease)
        if self.lease <= 0:
            raise StoreError(f"lease={lease!r}: give a positive number of seconds")
        self.errors = (psycopg.Error, OSError)
        self._heartbeat = _Heartbeat(url, self.lease)
        self._raw: psycopg.Connection[Any] | None = None
        self._conn = _Connection(self._connect())

    def _connect(self) -> psycopg.Connection[Any]:
        raw = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory)
        # A write waits at most busy_timeout for another process's lock, as with SQLite.
        raw.execute(f"SET lock_timeout = {max(1, int(self.busy_timeout * 1000))}")
        raw.execute(f"SET synchronous_commit = {self._commit_mode}")
        self._raw = raw
        return raw

    @property
    def conn(self) -> Connection:
        raw = self._raw
        if raw is None or raw.closed or raw.broken:
            self._conn = _Connection(self._connect())
        return self._conn

    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        raw = self._raw
        if raw is not None and not raw.broken:
            raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        raw = self._raw
        if raw is None or raw.broken:
            return False
        return raw.info.transaction_status is not TransactionStatus.IDLE

    def close(self) -> None:
        self._heartbeat.close()
        if self._raw is not None:
            self._raw.close()

    def advice(self, exc: BaseException) -> str:
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return "another process holds the run locked: retry, or raise busy_timeout"
        return self.write_hint

    def statements(self, migration: Migration) -> tuple[str, ...]:
        return migration.postgresql

    def lock_schema(self) -> None:
        self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':migrate', 0))"
        )

    def lock_run(self, run_id: str) -> None:
        self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || ?, 0))",
            (run_id,),
        )

    def try_lock_run(self, run_id: str) -> bool:
        row = self.conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || ':' || ?, 0))",
            (run_id,),
        ).fetchone()
        return bool(row[0])

    # -- the lease
    def owner(self) -> Owner:
        return (os.getpid(), _HOST, _TOKEN)

    def owned(self, db: Connection, run_id: str) -> None:
        db.execute(f"UPDATE runs SET lease_until = {_NOW} + ? WHERE id = ?", (self.lease, run_id))

    def started(self, run_id: str) -> None:
        super().started(run_id)
        self._heartbeat.add(run_id)

    def stopped(self, run_id: str) -> None:
        super().stopped(run_id)
        self._heartbeat.remove(run_id)
        try:
            # Still running under this process, yet no longer executed here: end the lease, so
            # other hosts see it interrupted now rather than when the lease runs out.
            self.conn.execute(
                "UPDATE runs SET lease_until = NULL WHERE id = ? AND owner_token = ? "
                "AND status = 'running'",
                (run_id, _TOKEN),
            )
        except psycopg.Error as exc:  # the lease runs out by itself
            log.warning("cannot end the lease of run %s: %s", run_id, exc)

    def check_owner(self, run_id: str) -> None:
        with self._heartbeat.lock:
            holder = self._heartbeat.lost.get(run_id)
        if holder is not None:
            raise StoreError(
                f"run {run_id} was taken over by {holder} after this process's lease on it ran "
                f"out (no renewal for {self.lease:g}s); this process stopped journalling it: "
                "see `tooldag runs show` there"
            )

    def gone(self, row: Any) -> bool:
        if row["owner_token"] == _TOKEN:
            return not self.executes_here(row["id"])
        lease = row["lease_until"]
        return lease is None or lease < row["db_now"]
