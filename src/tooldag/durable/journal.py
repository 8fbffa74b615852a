"""How the run store turns executor events into rows: one handler per event type.

Kept apart from :mod:`tooldag.durable.store`, which owns the connection, the transactions and the
reads: a :class:`Journal` only writes, inside a transaction the store has opened, so every event's
rows and its line in the event log are committed together or not at all. Its SQL is what SQLite
and PostgreSQL both speak (``ON CONFLICT``, ``CASE`` for the larger of two values, the target
table named in an upsert's ``SET``), with ``?`` parameters. It is internal; users go through
:class:`~tooldag.durable.store.RunStore`.

A run's plans, steps and events reference it by ``runs.key``, an integer (schema version 4), not by
its text id: the journal asks the database for a run's key once and keeps it, since it never
changes once committed (a store may have several writing processes: the key is the database's
choice, never this process's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, assert_never

from ..events import (
    Event,
    EventType,
    LLMCall,
    PlanCreated,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepCancelled,
    StepCompensated,
    StepCompensationFailed,
    StepFailed,
    StepRetrying,
    StepReused,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    payload_to_json,
)
from ..result import RunStatus, StepStatus
from ._backend import Connection, Owner
from ._codec import dumps_json, error_json, plan_json
from ._migrations import EVENT_CODES

__all__ = ["Journal"]

# Payload fields whose values live in the runs/steps/plans rows: never copied into the event log.
HEAVY_KEYS = frozenset({"output", "args", "plan", "answer"})
_CODES = {EventType(name): code for name, code in EVENT_CODES.items()}


# A step's start: its row (a new one, or the previous attempt's or execution's, reset).
_START = (
    "INSERT INTO steps (run, step_id, tool, status, attempts, args, started_at) "
    "VALUES (?, ?, ?, 'running', ?, ?, ?) ON CONFLICT (run, step_id) DO UPDATE SET "
    "tool = COALESCE(excluded.tool, steps.tool), status = 'running',"
    " attempts = excluded.attempts, args = excluded.args, output = NULL, error = NULL,"
    " reason = NULL, reused = 0,"
    " finished_at = NULL, started_at = CASE WHEN excluded.attempts > 1 AND"
    " steps.status = 'running' THEN steps.started_at ELSE excluded.started_at END"
)
# A step's end (run, step_id, status, attempt, output, error, reason, finished_at). The tool is
# known from the step's start, or from the plan: an ending does not say it.
_END = (
    "INSERT INTO steps (run, step_id, tool, status, attempts, output, error, reason,"
    " finished_at) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, step_id)"
    " DO UPDATE SET status = excluded.status, attempts = CASE WHEN steps.attempts >"
    " excluded.attempts THEN steps.attempts ELSE excluded.attempts END,"
    " output = excluded.output,"
    " error = excluded.error, reason = excluded.reason, finished_at = excluded.finished_at"
)
_LOG = (
    "INSERT INTO events (run, type, step_id, attempt, ts, duration, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _start_params(run: int, e: Event, data: StepStarted) -> tuple[Any, ...]:
    args = None if data.args is None else dumps_json(data.args)
    return (run, e.step_id, data.tool, e.attempt if e.attempt > 1 else 1, args, e.ts)


def _success_params(run: int, e: Event, data: StepSucceeded) -> tuple[Any, ...]:
    output = data.output
    if output is None:
        text = "null"
    else:
        text = dumps_json(output, what=f"the output of step {e.step_id!r} (run {e.run_id})")
    return (run, e.step_id, "succeeded", e.attempt, text, None, None, e.ts)


def _execute(db: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if len(rows) > 1:
        db.executemany(sql, rows)
    elif rows:
        db.execute(sql, rows[0])


class Journal:
    """Writes the rows for events (and plans) into a connection whose transaction is open.

    Holds the last plan written per run so that an unchanged plan costs no query, and each run's
    key; one journal per store, guarded by the store's lock. ``owner`` is what a ``run_started``
    records as the run's owner: this process, as the store's backend names it.
    """

    def __init__(self, owner: Owner) -> None:
        self._plans_seen: dict[str, str] = {}  # run id -> last plan JSON written (dedup)
        self._keys: dict[str, int] = {}  # run id -> runs.key
        self._owner = owner

    def forget(self) -> None:
        """Forget the plans written and the keys learnt: their transaction was rolled back (a run
        row made in it is gone, and its key may go to another run)."""
        self._plans_seen.clear()
        self._keys.clear()

    def run_key(self, db: Connection, run_id: str, ts: float) -> int:
        """The run's ``runs.key``. A run without a row gets one (``pending``, made at ``ts``): the
        step events recorded for a run the store does not know are kept (version 3 kept them
        without a row), and the runs list shows it."""
        key = self._keys.get(run_id)
        if key is None:
            row = db.execute("SELECT key FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                self.ensure_run(db, run_id, ts)
                row = db.execute("SELECT key FROM runs WHERE id = ?", (run_id,)).fetchone()
            key = self._keys[run_id] = row[0]
        return key

    def write(self, db: Connection, event: Event) -> None:
        """Update the run and step rows for ``event``, then append it to the event log."""
        self.write_many(db, (event,))

    def write_many(self, db: Connection, events: Sequence[Event]) -> None:
        """Update the run and step rows for ``events``, in order, then append them to the log.

        Steps' starts and successes, nearly all of a journal, are the fast path: each stretch of
        either is one ``executemany`` (as is the log), which saves most of what a statement costs
        beyond its row. Their log lines carry no data (the step row has it all).
        """
        stretch: list[tuple[Any, ...]] = []
        stretch_sql = ""
        log: list[tuple[Any, ...]] = []
        keys = self._keys
        for e in events:
            run = keys.get(e.run_id)
            if run is None:
                run = self.run_key(db, e.run_id, e.ts)
            data = e.data
            kind = type(data)
            if kind is StepStarted or kind is StepSucceeded:
                if kind is StepStarted:
                    sql, params = _START, _start_params(run, e, data)  # type: ignore[arg-type]
                else:
                    sql, params = _END, _success_params(run, e, data)  # type: ignore[arg-type]
                if sql is not stretch_sql:
                    _execute(db, stretch_sql, stretch)
                    stretch, stretch_sql = [], sql
                stretch.append(params)
                text = None
            else:
                _execute(db, stretch_sql, stretch)
                stretch = []
                self._rows(db, e, run)
                light = payload_to_json(data, exclude=HEAVY_KEYS)
                text = dumps_json(light) if light else None
            log.append((run, _CODES[data.type], e.step_id, e.attempt, e.ts, e.duration, text))
        _execute(db, stretch_sql, stretch)
        _execute(db, _LOG, log)

    def ensure_run(self, db: Connection, run_id: str, ts: float, goal: str = "") -> None:
        """Create the run's row (``pending``) unless it exists; a run without a goal yet gets
        ``goal``. The first goal a run is given stays: the user's words, when the agent gave
        them (:meth:`RunStore.open_run`), are not replaced by a plan's rewording of them."""
        db.execute(
            "INSERT INTO runs (id, goal, status, created_at, updated_at) "
            "VALUES (?, ?, 'pending', ?, ?) ON CONFLICT (id) DO UPDATE SET goal = excluded.goal "
            "WHERE runs.goal = '' AND excluded.goal != ''",
            (run_id, goal, ts, ts),
        )

    def add_plan(self, db: Connection, run_id: str, plan: Any, ts: float) -> None:
        """Store ``plan`` as the run's next version, unless it equals the latest one."""
        text = json.dumps(
            plan_json(plan), sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":")
        )
        if self._plans_seen.get(run_id) == text:
            return
        run = self.run_key(db, run_id, ts)
        latest = db.execute(
            "SELECT version, plan FROM plans WHERE run = ? ORDER BY version DESC LIMIT 1", (run,)
        ).fetchone()
        # Stores before version 3 wrote plans with spaces: the same plan in other text is no
        # new version.
        if latest is None or (
            latest["plan"] != text and json.loads(latest["plan"]) != json.loads(text)
        ):
            version = 1 if latest is None else latest["version"] + 1
            db.execute("INSERT INTO plans VALUES (?, ?, ?, ?)", (run, version, text, ts))
        self._plans_seen[run_id] = text

    def _rows(self, db: Connection, e: Event, run: int) -> None:
        """The run, step and plan rows ``e`` (of the run whose key is ``run``) changes (the most
        frequent events first)."""
        match e.data:
            case StepStarted() as data:
                db.execute(_START, _start_params(run, e, data))
            case StepSucceeded() as data:
                db.execute(_END, _success_params(run, e, data))
            case StepFailed(error=error):
                self._upsert_end(db, e, run, StepStatus.FAILED, error=error_json(error))
            case StepRetrying(error=error):
                db.execute(
                    "UPDATE steps SET attempts = CASE WHEN attempts > ? THEN attempts ELSE ? END,"
                    " error = ? WHERE run = ? AND step_id = ?",
                    (e.attempt, e.attempt, error_json(error), run, e.step_id),
                )
            case StepSkipped(reason=reason):
                self._upsert_end(db, e, run, StepStatus.SKIPPED, reason=reason)
            case StepBlocked(reason=reason):
                self._upsert_end(db, e, run, StepStatus.BLOCKED, reason=reason)
            case StepCancelled(reason=reason):
                self._upsert_end(db, e, run, StepStatus.CANCELLED, reason=reason)
            case StepReused(output=output):
                self._on_step_reused(db, e, run, output)
            case RunStarted() as data:
                self._on_run_started(db, e, data)
            case RunFinished() as data:
                self._on_run_finished(db, e, data)
            case PlanCreated(plan=plan):
                goal = plan.goal if plan is not None else ""
                self.ensure_run(db, e.run_id, e.ts, goal)
                if plan is not None:
                    self.add_plan(db, e.run_id, plan, e.ts)
                db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (e.ts, e.run_id))
            case LLMCall() as data:
                self._on_llm_call(db, e, data)
            case StepCompensated():
                db.execute(
                    "UPDATE steps SET status = 'compensated' WHERE run = ? AND step_id = ?",
                    (run, e.step_id),
                )
            case StepCompensationFailed(error=error):
                # The step's effect stands: keep it succeeded, say why it could not be undone.
                db.execute(
                    "UPDATE steps SET reason = ? WHERE run = ? AND step_id = ?",
                    (f"compensation failed: {error}", run, e.step_id),
                )
            case _:
                assert_never(e.data)

    def _on_run_started(self, db: Connection, e: Event, data: RunStarted) -> None:
        goal = data.goal
        self.ensure_run(db, e.run_id, e.ts, goal)
        db.execute(
            "UPDATE runs SET status = 'running', updated_at = ?, finished_at = NULL, "
            "error = NULL, owner_pid = ?, owner_host = ?, owner_token = ? WHERE id = ?",
            (e.ts, *self._owner, e.run_id),
        )
        if data.plan is not None:
            self.add_plan(db, e.run_id, data.plan, e.ts)

    def _on_llm_call(self, db: Connection, e: Event, data: LLMCall) -> None:
        # One event is one call, whatever the "calls" field of its usage says.
        usage = data.usage
        db.execute(
            "UPDATE runs SET prompt_tokens = prompt_tokens + ?, "
            "completion_tokens = completion_tokens + ?, total_tokens = total_tokens + ?, "
            "llm_calls = llm_calls + 1, updated_at = ? WHERE id = ?",
            (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, e.ts, e.run_id),
        )

    def _on_run_finished(self, db: Connection, e: Event, data: RunFinished) -> None:
        status = data.status
        if not data.final:
            # One execution of a run the agent goes on with (it replans next): the run is still
            # running, and must not read as failed or finished meanwhile.
            status = RunStatus.RUNNING
        db.execute(
            "UPDATE runs SET status = ?, answer = ?, error = ?, updated_at = ?, "
            "finished_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
            (
                status.value,
                data.answer,
                data.error,
                e.ts,
                status.finished and status is not RunStatus.PAUSED,
                e.ts,
                e.run_id,
            ),
        )

    def _upsert_end(
        self,
        db: Connection,
        e: Event,
        run: int,
        status: StepStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        db.execute(_END, (run, e.step_id, status.value, e.attempt, output, error, reason, e.ts))

    def _on_step_reused(self, db: Connection, e: Event, run: int, output: Any) -> None:
        # The output is already in the row (that is where reuse read it from): not written again.
        updated = db.execute(
            "UPDATE steps SET status = 'succeeded', reused = 1 WHERE run = ? AND step_id = ?",
            (run, e.step_id),
        ).rowcount
        if not updated:
            what = f"the reused output of step {e.step_id!r} (run {e.run_id})"
            self._upsert_end(db, e, run, StepStatus.SUCCEEDED, output=dumps_json(output, what=what))
            db.execute(
                "UPDATE steps SET reused = 1 WHERE run = ? AND step_id = ?", (run, e.step_id)
            )
