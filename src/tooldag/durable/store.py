"""The run store: a journal of every run, so a crashed run can be resumed and inspected.

A SQLite file (WAL mode, a busy timeout, ``BEGIN IMMEDIATE`` writes retried on ``SQLITE_BUSY``), or
a PostgreSQL database for a ``postgresql://`` URL (``tooldag[postgres]``), holds the runs, their
plan versions, one row per (run id, step id) and an append-only event log: the same schema, the
same rules, the same answers, whichever database it is (a backend, :mod:`~tooldag.durable._sqlite`
or :mod:`~tooldag.durable._postgres`, supplies the connection, the locks and the liveness). The
store is
fed by executor events: ``store.attach(bus)`` subscribes the store as a *critical* callback, so a
failed write propagates to the executor, and the executor awaits the store's barrier so that a
step's start is committed before its tool runs and its output before the step counts as done
(write-ahead). The step events of one event-loop turn share one commit
(:mod:`~tooldag.durable._batch`). Outputs live once, in the step row; events reference it. Which
rows each event writes is :mod:`tooldag.durable.journal`'s business; this module owns the
transactions, the claims, the reads and what they return (:class:`RunInfo`). The schema is in
:mod:`~tooldag.durable._migrations`, the JSON encoding in :mod:`~tooldag.durable._codec` and the
probe of a run owner's process in :mod:`~tooldag.durable._liveness`; their public names are
re-exported here.

Where a run's owner is seen to be gone, the run reads as interrupted: with SQLite, when its
process (on this machine) is gone; with PostgreSQL, when its lease in the database ran out (the
owner renews it every ``lease / 3`` seconds; ``lease`` defaults to ``$TOOLDAG_STORE_LEASE``, else
15 s), so another host can see a dead host's run as interrupted and resume it.

Outputs that JSON cannot express are stored in their JSON form when pydantic knows one (models,
dataclasses, datetimes, sets, bytes as base64); anything else is replaced by
``{"__tooldag_unserializable__": {"type": ..., "repr": ...}}`` and a :class:`StoreWarning` is
issued.
A resumed run sees those stored forms, never the original objects.

Durability: each :meth:`RunStore.record` is one transaction, and so is each loop turn's step events
through an attached bus. With ``synchronous=NORMAL`` (the default) a commit
survives the process being killed; only a power loss (with PostgreSQL: a crash of the database
server) may drop the last few commits (pass ``synchronous="FULL"`` to wait for every commit to
reach the disk).

>>> store = RunStore(":memory:")
>>> store.list_runs()
[]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import RunStateError, StoreError
from ..events import Event, EventBus, EventType, RunFinished, payload_from_json
from ..plan.model import Plan
from ..result import RunResult, RunStatus, StepError, StepRecord, StepStatus, Usage
from ._backend import Backend, Connection, is_database_url, redact_url
from ._batch import BATCHED, Turn, Turns, running_loop
from ._codec import JSON_FALLBACK_KEY, StoreWarning, loads_json
from ._migrations import CURRENT_SCHEMA_VERSION, EVENT_CODES, MIGRATIONS, Migration
from ._sqlite import SqliteBackend
from .journal import Journal

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "INTERRUPTED",
    "JSON_FALLBACK_KEY",
    "MIGRATIONS",
    "Migration",
    "RunInfo",
    "RunStore",
    "StoreWarning",
    "default_store_path",
    "is_database_url",
    "redact_url",
]


log = logging.getLogger("tooldag.store")

# events.type holds numbers (EVENT_CODES): what each stands for.
_EVENT_TYPES = {code: EventType(name) for name, code in EVENT_CODES.items()}
_STARTED = EVENT_CODES[EventType.STEP_STARTED.value]
# A run's plans, steps and events reference it by runs.key (schema version 4); reads are asked
# for a run by its id.
_KEY_OF = "(SELECT key FROM runs WHERE id = ?)"

# The string form of RunStatus.INTERRUPTED, kept for code written before that member existed.
INTERRUPTED = RunStatus.INTERRUPTED.value


def default_store_path() -> Path:
    """``$TOOLDAG_HOME/runs.sqlite3``, else ``runs.sqlite3`` in the user's data directory."""
    home = os.environ.get("TOOLDAG_HOME")
    base = Path(home).expanduser() if home else Path(platformdirs.user_data_dir("tooldag"))
    return base / "runs.sqlite3"


# --------------------------------------------------------------------------- the read model


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's row: what ``tooldag runs list`` shows. ``status`` is
    :attr:`RunStatus.INTERRUPTED` for a run stored as running whose process is gone."""

    id: str
    goal: str
    stored_status: RunStatus
    created_at: float
    updated_at: float
    finished_at: float | None
    answer: str | None
    error: str | None
    usage: Usage
    plan_versions: int
    owner_pid: int | None
    owner_host: str | None
    interrupted: bool
    step_counts: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        return RunStatus.INTERRUPTED if self.interrupted else self.stored_status

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "goal": self.goal,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "answer": self.answer,
            "error": self.error,
            "usage": self.usage.to_dict(),
            "plan_versions": self.plan_versions,
            "steps": dict(self.step_counts),
            "owner": f"{self.owner_pid}@{self.owner_host}" if self.owner_pid else None,
        }


def _with_counts(info: RunInfo, counts: dict[str, int]) -> RunInfo:
    return dataclasses.replace(info, step_counts=counts)


# --------------------------------------------------------------------------- the store


class RunStore:
    """A run journal: a SQLite file, or a PostgreSQL database. Thread-safe; several processes
    (with PostgreSQL, on several hosts) may share one store.

    ``path`` is a file path or a ``postgresql://`` URL (libpq's form; ``?options=-csearch_path=x``
    picks a schema); it defaults to ``$TOOLDAG_STORE``, else :func:`default_store_path`.
    ``":memory:"`` gives a private SQLite store. ``busy_timeout`` bounds how long a write waits
    for another process's lock before :class:`StoreError` is raised. ``synchronous`` is how durable
    a commit is (see the module docstring); ``lease`` (seconds) is PostgreSQL's: how long a run
    whose owner stopped renewing it still reads as running.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "NORMAL",
        lease: float | None = None,
    ) -> None:
        raw: str | os.PathLike[str] = (
            path if path is not None else os.environ.get("TOOLDAG_STORE") or default_store_path()
        )
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._db: Backend = self._open(raw, busy_timeout, synchronous, lease)
        self.path = self._db.path
        self._journal = Journal(self._db.owner())
        self._turns = Turns(self._end_of_turn)
        # updated_at: the runs row is not rewritten per step (that would cost every step a
        # write), so the last event's time, read through the (run, seq) index, says when the
        # run last moved. db_now: the database's clock, which a lease is measured against.
        self._info_sql = (
            "SELECT r.*, (SELECT COUNT(*) FROM plans p WHERE p.run = r.key) AS plan_versions, "
            "(SELECT e.ts FROM events e WHERE e.run = r.key ORDER BY e.seq DESC LIMIT 1) "
            f"AS last_event, {self._db.now_sql} AS db_now FROM runs r"
        )
        try:
            self._migrate()
        except StoreError:
            self._db.close()
            raise
        except self._db.errors as exc:
            self._db.close()
            raise StoreError(self._cannot_open(exc)) from exc

    def _cannot_open(self, exc: BaseException) -> str:
        return (
            f"cannot open the run store {self.path}: {exc}; pass another path or URL (--store, "
            "TOOLDAG_STORE, TOOLDAG_HOME) if this is not a tooldag store"
        )

    @staticmethod
    def _open(
        raw: str | os.PathLike[str], busy_timeout: float, synchronous: str, lease: float | None
    ) -> Backend:
        if is_database_url(raw):
            try:
                from ._postgres import PostgresBackend
            except ImportError as exc:
                raise StoreError(
                    f"a postgresql:// store needs psycopg 3 ({exc}): pip install "
                    "'tooldag[postgres]'"
                ) from None
            url = str(raw)
            try:
                return PostgresBackend(
                    url, busy_timeout=busy_timeout, lease=lease, synchronous=synchronous
                )
            except StoreError:
                raise
            except Exception as exc:  # psycopg.Error: the server, the URL, the credentials
                why = " ".join(str(exc).split())  # libpq's message spans lines: one line here
                raise StoreError(
                    f"cannot open the run store {redact_url(url)}: {why}; check that the "
                    "server is up and the URL (--store, TOOLDAG_STORE) is right"
                ) from exc
        try:
            return SqliteBackend(raw, busy_timeout=busy_timeout, synchronous=synchronous)
        except StoreError:
            raise
        except Exception as exc:  # sqlite3.Error, OSError
            raise StoreError(
                f"cannot open the run store {raw}: {exc}; pass another path (or set "
                "TOOLDAG_HOME) if this file is not a tooldag store"
            ) from exc

    # -- plumbing
    def close(self) -> None:
        """Write what is pending, and close the store (StoreError if that write failed)."""
        with self._lock:
            try:
                self.flush()
            finally:
                self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunStore {self.path}>"

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    def _commit(self) -> None:
        self._db.commit()

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        """One write transaction: all of it is committed, or none of it. It writes the events
        pending (the loop turn's, those a failed commit carried) first: the journal's order."""
        with self._lock:
            turn, pending = self._turns.take()
            try:
                self._db.begin()
            except self._db.errors as exc:
                error = StoreError(
                    f"cannot write {what} to {self.path}: {exc}; {self._db.begin_hint}"
                )
                self._turns.settle(turn, pending, error)
                raise error from exc
            try:
                db = self._db.conn
                if pending:
                    self._journal.write_many(db, pending)
                yield db
                self._commit()
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.rollback()
                self._journal.forget()  # what it remembers writing was rolled back
                if not isinstance(exc, self._db.errors):
                    # The caller's own error (a claim refused): the pending events wait on.
                    self._turns.restore(turn, pending)
                    raise
                error = StoreError(
                    f"cannot write {what} to {self.path}: {exc}; {self._db.advice(exc)}"
                )
                self._turns.settle(turn, pending, error)
                raise error from exc
            self._turns.settle(turn, pending, None)

    def flush(self) -> None:
        """Write the step events gathered in this loop turn now (StoreError if that fails).

        Nothing needs to call it: the turn's events are written when the turn is over, and
        before any other write or read of the store (see :mod:`~tooldag.durable._batch`).
        """
        with self._lock:
            if self._turns.pending:
                with self._write("the journal's latest events"):
                    pass

    def _end_of_turn(self, turn: Turn) -> None:
        with self._lock:
            if self._turns.turn is not turn:
                return  # written already, with another write
            try:
                self.flush()
            except StoreError as exc:  # the waiting steps have it; the rest is carried
                log.error("%s", exc)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._lock:
            try:
                self.flush()
            except StoreError as exc:  # the steps waiting for those events have it
                log.error("%s", exc)
            try:
                yield self._db.conn
            except self._db.errors as exc:
                raise StoreError(
                    f"cannot read the run store {self.path}: {exc}; {self._db.begin_hint}"
                ) from exc

    def _migrate(self) -> None:
        # Raw database errors on purpose: the caller reports them as "cannot open the run store".
        db = self._db
        db.begin()
        try:
            db.lock_schema()
            self._apply_migrations(db.conn)
            db.commit()
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise

    def _apply_migrations(self, db: Connection) -> None:
        db.execute(self._db.schema_version_ddl)
        current = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if current > CURRENT_SCHEMA_VERSION:
            raise StoreError(
                f"the run store {self.path} has schema version {current}, newer than this "
                f"tooldag understands ({CURRENT_SCHEMA_VERSION}): upgrade tooldag or use "
                "another store"
            )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in self._db.statements(migration):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                (migration.version, time.time(), migration.description),
            )

    @property
    def schema_version(self) -> int:
        with self._read() as db:
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0])

    # -- writing: events
    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Journal every event of ``bus`` (critical: a failed write fails the emitter).

        A step's events emitted on an event loop are committed together at the end of the
        loop's turn; the executor awaits :meth:`barrier` (through the bus) where the contract
        needs one kept: before a tool runs, before a step's dependents start. Other events are
        written at once, as :meth:`record` writes them.
        """
        return bus.subscribe(self._on_event, critical=True, barrier=self.barrier)

    def _on_event(self, event: Event) -> None:
        # A thread without a loop has no turn to end: written at once.
        loop = running_loop() if type(event.data) in BATCHED else None
        if loop is None:
            self._turns.unmark()
            self.record(event)
            return
        self._db.check_owner(event.run_id)
        with self._lock:
            if not self._turns.add(event, loop):
                self.flush()  # another loop's turn goes first
                self._turns.add(event, loop)

    def barrier(self) -> Awaitable[None] | None:
        """What to await until the last step event this thread emitted through an attached bus
        is committed (None: it is); it raises :class:`StoreError` if its commit failed."""
        with self._lock:
            return self._turns.barrier()

    def record(self, event: Event) -> None:
        """Journal one event in one transaction; raises :class:`StoreError` if it cannot."""
        self._db.check_owner(event.run_id)
        started = event.type is EventType.RUN_STARTED
        with self._write(f"{event.type.value} of run {event.run_id}") as db:
            self._journal.write(db, event)
            if started:
                self._db.owned(db, event.run_id)
        if started:
            self._db.started(event.run_id)
        elif isinstance(event.data, RunFinished) and event.data.final:
            with self._lock:
                self._db.stopped(event.run_id)

    def open_run(self, run_id: str, goal: str) -> None:
        """Create ``run_id``'s row (``pending``) for ``goal`` before anything of the run happens.

        What :func:`~tooldag.agent.aplan_and_run` does first, with the user's words: the runs
        list shows them, not the plan's rewording (events give a run a goal only while it has
        none), and a run refused before it started (no valid plan, the policy) keeps them.
        An existing run keeps its goal unless it has none.
        """
        with self._write(f"the goal of run {run_id}") as db:
            self._journal.ensure_run(db, run_id, time.time(), goal)

    # -- writing: ownership
    def claim(
        self, run_id: str, *, plan: Plan | None = None, allow: Collection[str] = ()
    ) -> RunInfo:
        """Atomically mark ``run_id`` running in this process (creating it when ``plan`` is given).

        ``allow`` lists the statuses (``interrupted`` included) the run may be in; anything else,
        and a run running in a live process, raises :class:`RunStateError`. Two processes
        claiming the same run cannot both win: the loser is told which process holds it.
        """
        now = time.time()
        with self._write(f"the claim of run {run_id}") as db:
            self._db.lock_run(run_id)
            info = self._info(db, run_id)
            if info is None:
                if plan is None:
                    raise RunStateError(self._missing(run_id), run_id=run_id)
                self._journal.ensure_run(db, run_id, now, plan.goal)
            elif info.status is RunStatus.RUNNING:
                raise RunStateError(
                    f"run {run_id} is already running (process {info.owner_pid} on "
                    f"{info.owner_host}); wait for it, or stop that process and resume the run",
                    run_id=run_id,
                )
            elif info.status not in allow:
                raise RunStateError(_not_allowed(run_id, info.status), run_id=run_id)
            claimed = self._take(db, run_id, now, plan)
        self._db.started(run_id)
        # Read inside the transaction, before this process counted as its live owner.
        return dataclasses.replace(claimed, interrupted=False)

    def _take(self, db: Connection, run_id: str, now: float, plan: Plan | None) -> RunInfo:
        db.execute(
            "UPDATE runs SET status = 'running', updated_at = ?, finished_at = NULL, "
            "owner_pid = ?, owner_host = ?, owner_token = ? WHERE id = ?",
            (now, *self._db.owner(), run_id),
        )
        self._db.owned(db, run_id)
        if plan is not None:
            self._journal.add_plan(db, run_id, plan, now)
        claimed = self._info(db, run_id)
        assert claimed is not None
        return claimed

    def enqueue(self, run_id: str, plan: Plan) -> RunInfo:
        """Store ``plan`` as a new run ``run_id``, ``pending``, queued for a
        :class:`~tooldag.durable.pool.RunPool`'s workers (:meth:`claim_next` takes it)."""
        now = time.time()
        with self._write(f"the queued run {run_id}") as db:
            self._db.lock_run(run_id)
            if self._info(db, run_id) is not None:
                raise RunStateError(
                    f"run {run_id} exists already; queue the plan under a new run id",
                    run_id=run_id,
                )
            self._journal.ensure_run(db, run_id, now, plan.goal)
            self._journal.add_plan(db, run_id, plan, now)
            db.execute("UPDATE runs SET queued_at = ? WHERE id = ?", (now, run_id))
            info = self._info(db, run_id)
        assert info is not None
        return info

    def claim_next(self, *, interrupted: bool = True) -> RunInfo | None:
        """Atomically take the oldest queued run that nobody runs, for this process: a pending
        one, or (``interrupted``) one whose owner is gone; ``None`` if there is none.

        Every worker of a pool calls this: each queued run is owned by one of them at a time.
        """
        now = time.time()
        with self._write("the claim of a queued run") as db:
            candidates = db.execute(
                "SELECT id FROM runs WHERE queued_at IS NOT NULL AND status IN "
                "('pending', 'running') ORDER BY queued_at LIMIT 100"
            ).fetchall()
            for row in candidates:
                run_id = row[0]
                if not self._db.try_lock_run(run_id):
                    continue  # another worker is taking it right now
                info = self._info(db, run_id)
                if info is None or not (
                    info.status is RunStatus.PENDING
                    or (interrupted and info.status is RunStatus.INTERRUPTED)
                ):
                    continue
                claimed = self._take(db, run_id, now, None)
                break
            else:
                return None
        self._db.started(run_id)
        # Read inside the transaction, before this process counted as its live owner.
        return dataclasses.replace(claimed, interrupted=False)

    def release(self, run_id: str) -> None:
        """Forget that this process runs ``run_id`` (it finished or its executor died)."""
        with self._lock:
            self._db.stopped(run_id)

    def set_status(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        """Overwrite a run's status (what ``cancel`` of a stopped run uses)."""
        if status is RunStatus.INTERRUPTED:
            raise StoreError(
                f"cannot store run {run_id} as interrupted: a run reads as interrupted when its "
                "owner process is gone; store failed or cancelled instead"
            )
        now = time.time()
        with self._write(f"the status of run {run_id}") as db:
            db.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error), updated_at = ?, "
                "finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
                (status.value, error, now, status.finished, now, run_id),
            )

    # -- reading
    def _missing(self, run_id: str) -> str:
        return f"no run {run_id!r} in {self.path}: `tooldag runs list` shows the stored runs"

    def _info(self, db: Connection, run_id: str) -> RunInfo | None:
        row = db.execute(self._info_sql + " WHERE r.id = ?", (run_id,)).fetchone()
        return None if row is None else self._row_info(row)

    def _row_info(self, row: Any, counts: dict[str, int] | None = None) -> RunInfo:
        status = RunStatus(row["status"])
        interrupted = status is RunStatus.RUNNING and self._db.gone(row)
        usage = Usage(
            row["prompt_tokens"], row["completion_tokens"], row["total_tokens"], row["llm_calls"]
        )
        return RunInfo(
            id=row["id"],
            goal=row["goal"],
            stored_status=status,
            created_at=row["created_at"],
            updated_at=max(row["updated_at"], row["last_event"] or 0.0),
            finished_at=row["finished_at"],
            answer=row["answer"],
            error=row["error"],
            usage=usage,
            plan_versions=row["plan_versions"],
            owner_pid=row["owner_pid"],
            owner_host=row["owner_host"],
            interrupted=interrupted,
            step_counts=counts or {},
        )

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run's row, or ``None`` if the store has no such run."""
        with self._read() as db:
            info = self._info(db, run_id)
            if info is None:
                return None
            return _with_counts(info, self._counts(db, [run_id]).get(run_id, {}))

    def list_runs(self, status: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Runs, newest first; ``status`` may be any run status (``interrupted`` included)."""
        derived = status in (RunStatus.RUNNING, RunStatus.INTERRUPTED)
        sql, params = self._info_sql, []
        if status is not None:
            sql += " WHERE r.status = ?"
            params.append(RunStatus.RUNNING.value if derived else status)
        sql += f" ORDER BY {self._db.newest_first}"
        if limit is not None and not derived:
            sql += f" LIMIT {int(limit)}"
        with self._read() as db:
            infos = [self._row_info(row) for row in db.execute(sql, params)]
            if derived:
                infos = [i for i in infos if i.status == status][:limit]
            counts = self._counts(db, [i.id for i in infos])
        return [_with_counts(i, counts.get(i.id, {})) for i in infos]

    def _counts(self, db: Connection, run_ids: list[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = run_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT r.id, s.status, COUNT(*) FROM steps s JOIN runs r ON r.key = s.run "
                f"WHERE r.id IN ({marks}) GROUP BY r.id, s.status",
                chunk,
            )
            for run_id, st, n in rows:
                out.setdefault(run_id, {})[st] = n
        return out

    def plans(self, run_id: str) -> list[Plan]:
        """Every plan version of the run, oldest first."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT plan FROM plans WHERE run = {_KEY_OF} ORDER BY version", (run_id,)
            ).fetchall()
        return [Plan.model_validate(json.loads(r["plan"])) for r in rows]

    def events(self, run_id: str) -> list[Event]:
        """The run's journal, in order, as events whose payloads are rebuilt from the event log
        (:func:`~tooldag.events.payload_from_json`).

        The log leaves out what the run, step and plan rows hold: in these events outputs,
        arguments, plans and answers are ``None`` (:meth:`load_result` has them).
        """
        return [
            Event(
                payload_from_json(EventType(r["type"]), r["data"]),
                run_id,
                r["step_id"],
                r["attempt"],
                r["duration"],
                r["ts"],
            )
            for r in self.events_json(run_id)
        ]

    def events_json(self, run_id: str) -> list[dict[str, Any]]:
        """The run's journal as stored, in order: one JSON-ready dict per event, with its
        ``type``, ``step_id``, ``attempt``, ``ts``, ``duration`` and ``data`` (the payload's
        fields but outputs, arguments, plans and answers), as ``tooldag runs show --json``
        prints it."""
        events = self.events_since(run_id)
        for event in events:
            del event["seq"]
        return events

    def events_since(self, run_id: str, seq: int = 0) -> list[dict[str, Any]]:
        """The run's journal after position ``seq`` (0: all of it), as :meth:`events_json` has
        it, each event with its ``seq`` too. The log only grows, so the last ``seq`` seen is a
        cursor: what a viewer polls with to read only what is new."""
        # A step_started row leaves its tool to the step's row (schema version 3): put back.
        with self._read() as db:
            rows = db.execute(
                "SELECT e.seq, e.type, e.step_id, e.attempt, e.ts, e.duration, e.data, s.tool "
                "FROM events e LEFT JOIN steps s ON e.type = ? AND s.run = e.run "
                f"AND s.step_id = e.step_id WHERE e.run = {_KEY_OF} AND e.seq > ? ORDER BY e.seq",
                (_STARTED, run_id, seq),
            ).fetchall()
        out = []
        for r in rows:
            data = loads_json(r["data"]) or {}
            kind = _EVENT_TYPES[r["type"]]
            if kind is EventType.STEP_STARTED and "tool" not in data:
                data = {"tool": r["tool"] or "", **data}
            out.append(
                {
                    "seq": r["seq"],
                    "type": kind.value,
                    "step_id": r["step_id"],
                    "attempt": r["attempt"],
                    "ts": r["ts"],
                    "duration": r["duration"],
                    "data": data,
                }
            )
        return out

    def completed_outputs(self, run_id: str) -> dict[str, Any]:
        """Outputs of the run's succeeded steps: what a resume hands the executor as ``reuse``."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT step_id, output FROM steps WHERE run = {_KEY_OF} AND status = 'succeeded'",
                (run_id,),
            ).fetchall()
        return {r["step_id"]: loads_json(r["output"]) for r in rows}

    def load_result(self, run_id: str) -> RunResult:
        """The run as a :class:`RunResult`, rebuilt from the store (steps of the latest plan that
        never started are ``pending``). A run whose owner process is gone has the status
        :attr:`RunStatus.INTERRUPTED`, and an error that says how to resume it."""
        info = self.get_run(run_id)
        if info is None:
            raise RunStateError(self._missing(run_id), run_id=run_id)
        plans = self.plans(run_id)
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM steps WHERE run = {_KEY_OF} "
                "ORDER BY COALESCE(started_at, finished_at)",
                (run_id,),
            ).fetchall()
        steps: dict[str, StepRecord] = {}
        if plans:
            steps = {s.id: StepRecord(id=s.id, tool=s.tool) for s in plans[-1].steps}
        for r in rows:
            known = steps.get(r["step_id"])
            err = loads_json(r["error"])
            steps[r["step_id"]] = StepRecord(
                id=r["step_id"],
                tool=r["tool"] or (known.tool if known else ""),
                status=StepStatus(r["status"]),
                attempts=r["attempts"],
                args=loads_json(r["args"]),
                output=loads_json(r["output"]),
                error=StepError.model_validate(err) if err else None,
                reason=r["reason"],
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                reused=bool(r["reused"]),
            )
        error = info.error
        if info.interrupted:
            error = (
                f"interrupted: process {info.owner_pid} on {info.owner_host} "
                f"{self._db.gone_because}; "
                f"`tooldag runs resume {run_id}` continues the run"
            )
        return RunResult(
            run_id=run_id,
            status=info.status,
            outputs={k: s.output for k, s in steps.items() if s.status is StepStatus.SUCCEEDED},
            answer=info.answer,
            steps=steps,
            plans=plans,
            usage=info.usage,
            error=error,
            started_at=info.created_at,
            finished_at=info.finished_at,
        )


def _not_allowed(run_id: str, status: str) -> str:
    if status == RunStatus.SUCCEEDED.value:
        return f"run {run_id} already completed; start a new run id to run it again"
    if status == RunStatus.CANCELLED.value:
        return f"run {run_id} was cancelled (and compensated); start a new run id instead"
    return f"run {run_id} is {status}: that does not allow this operation"
