"""How the run store turns executor events into rows: one handler per event type.

Kept apart from :mod:`tooldag.durable.store`, which owns the connection, the transactions and the
reads: a :class:`Journal` only writes, inside a transaction the store has opened, so every event's
rows and its line in the event log are committed together or not at all. It is internal; users go
through :class:`~tooldag.durable.store.RunStore`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from ..events import Event, EventType
from ..result import RunStatus, StepStatus
from ._codec import dumps_json, error_json, error_text, plan_json
from ._liveness import owner_identity

__all__ = ["Journal"]

# Keys whose values live in the runs/steps/plans rows: never copied into the event log.
HEAVY_KEYS = frozenset({"output", "args", "plan", "answer"})


class Journal:
    """Writes the rows for events (and plans) into a connection whose transaction is open.

    Holds the last plan written per run so that an unchanged plan costs no query; one journal per
    store, guarded by the store's lock.
    """

    def __init__(self) -> None:
        self._plans_seen: dict[str, str] = {}  # run id -> last plan JSON written (dedup)

    def write(self, db: sqlite3.Connection, event: Event) -> None:
        """Update the run and step rows for ``event``, then append it to the event log."""
        handler = self._HANDLERS.get(event.type)
        data = event.data
        light = {k: v for k, v in data.items() if k not in HEAVY_KEYS} if data else None
        if handler is not None:
            handler(self, db, event)
        db.execute(
            "INSERT INTO events (run_id, type, step_id, attempt, ts, duration, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.run_id,
                event.type.value,
                event.step_id,
                event.attempt,
                event.ts,
                event.duration,
                dumps_json(light) if light else None,
            ),
        )

    def ensure_run(self, db: sqlite3.Connection, run_id: str, ts: float, goal: str = "") -> None:
        """Create the run's row (``pending``) unless it exists."""
        db.execute(
            "INSERT OR IGNORE INTO runs (id, goal, status, created_at, updated_at) "
            "VALUES (?, ?, 'pending', ?, ?)",
            (run_id, goal, ts, ts),
        )

    def add_plan(self, db: sqlite3.Connection, run_id: str, plan: Any, ts: float) -> None:
        """Store ``plan`` as the run's next version, unless it equals the latest one."""
        text = json.dumps(plan_json(plan), sort_keys=True, ensure_ascii=False, default=str)
        if self._plans_seen.get(run_id) == text:
            return
        latest = db.execute(
            "SELECT version, plan FROM plans WHERE run_id = ? ORDER BY version DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        if latest is None or latest["plan"] != text:
            version = 1 if latest is None else latest["version"] + 1
            db.execute("INSERT INTO plans VALUES (?, ?, ?, ?)", (run_id, version, text, ts))
        self._plans_seen[run_id] = text

    # -- one handler per event type (see _HANDLERS)
    def _on_run_started(self, db: sqlite3.Connection, e: Event) -> None:
        goal = str(e.data.get("goal") or "")
        self.ensure_run(db, e.run_id, e.ts, goal)
        db.execute(
            "UPDATE runs SET status = 'running', goal = CASE WHEN ? != '' THEN ? ELSE goal END, "
            "updated_at = ?, finished_at = NULL, error = NULL, owner_pid = ?, owner_host = ?, "
            "owner_token = ? WHERE id = ?",
            (goal, goal, e.ts, *owner_identity(), e.run_id),
        )
        if e.data.get("plan") is not None:
            self.add_plan(db, e.run_id, e.data["plan"], e.ts)

    def _on_plan_created(self, db: sqlite3.Connection, e: Event) -> None:
        plan = e.data.get("plan")
        goal = str(plan_json(plan).get("goal") or "") if plan is not None else ""
        self.ensure_run(db, e.run_id, e.ts, goal)
        if plan is not None:
            self.add_plan(db, e.run_id, plan, e.ts)
        db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (e.ts, e.run_id))

    def _on_llm_call(self, db: sqlite3.Connection, e: Event) -> None:
        # One event is one call, whatever a "calls" field in its usage says.
        usage = e.data.get("usage") or {}
        if not isinstance(usage, Mapping):  # a Usage dataclass or an SDK object
            usage = getattr(usage, "to_dict", lambda: vars(usage))()
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = usage.get("total_tokens")
        self.ensure_run(db, e.run_id, e.ts)
        db.execute(
            "UPDATE runs SET prompt_tokens = prompt_tokens + ?, "
            "completion_tokens = completion_tokens + ?, total_tokens = total_tokens + ?, "
            "llm_calls = llm_calls + 1, updated_at = ? WHERE id = ?",
            (
                prompt,
                completion,
                int(total) if total is not None else prompt + completion,
                e.ts,
                e.run_id,
            ),
        )

    def _on_run_finished(self, db: sqlite3.Connection, e: Event) -> None:
        status = RunStatus(str(e.data.get("status") or RunStatus.FAILED.value))
        if e.data.get("final") is False:
            # One execution of a run the agent goes on with (it replans next): the run is still
            # running, and must not read as failed or finished meanwhile.
            status = RunStatus.RUNNING
        answer = e.data.get("answer")
        error = e.data.get("error")
        db.execute(
            "UPDATE runs SET status = ?, answer = ?, error = ?, updated_at = ?, "
            "finished_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
            (
                status.value,
                None if answer is None else str(answer),
                None if error is None else str(error),
                e.ts,
                status.finished and status is not RunStatus.PAUSED,
                e.ts,
                e.run_id,
            ),
        )

    def _on_step_started(self, db: sqlite3.Connection, e: Event) -> None:
        args = e.data.get("args")
        db.execute(
            "INSERT INTO steps (run_id, step_id, tool, status, attempts, args, started_at) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?) ON CONFLICT (run_id, step_id) DO UPDATE SET "
            "tool = COALESCE(excluded.tool, tool), status = 'running',"
            " attempts = excluded.attempts, args = excluded.args, output = NULL, error = NULL,"
            " reason = NULL, reused = 0,"
            " finished_at = NULL, started_at = CASE WHEN excluded.attempts > 1 AND"
            " status = 'running' THEN started_at ELSE excluded.started_at END",
            (
                e.run_id,
                e.step_id,
                e.data.get("tool"),
                max(e.attempt, 1),
                None if args is None else dumps_json(args),
                e.ts,
            ),
        )

    def _upsert_end(
        self,
        db: sqlite3.Connection,
        e: Event,
        status: StepStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO steps (run_id, step_id, tool, status, attempts, output, error, reason,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id)"
            " DO UPDATE SET tool = COALESCE(excluded.tool, tool), status = excluded.status,"
            " attempts = MAX(attempts, excluded.attempts), output = excluded.output,"
            " error = excluded.error, reason = excluded.reason, finished_at = excluded.finished_at",
            (e.run_id, e.step_id, e.data.get("tool"), status.value, e.attempt, output, error,
             reason, e.ts),
        )  # fmt: skip

    def _on_step_succeeded(self, db: sqlite3.Connection, e: Event) -> None:
        what = f"the output of step {e.step_id!r} (run {e.run_id})"
        output = dumps_json(e.data.get("output"), what=what)
        self._upsert_end(db, e, StepStatus.SUCCEEDED, output=output)

    def _on_step_failed(self, db: sqlite3.Connection, e: Event) -> None:
        self._upsert_end(db, e, StepStatus.FAILED, error=error_json(e.data.get("error")))

    def _on_step_retrying(self, db: sqlite3.Connection, e: Event) -> None:
        db.execute(
            "UPDATE steps SET attempts = MAX(attempts, ?), error = ? "
            "WHERE run_id = ? AND step_id = ?",
            (e.attempt, error_json(e.data.get("error")), e.run_id, e.step_id),
        )

    def _on_step_ended(self, db: sqlite3.Connection, e: Event) -> None:
        status = _END_STATUS[e.type]
        reason = e.data.get("reason")
        self._upsert_end(db, e, status, reason=None if reason is None else str(reason))

    def _on_step_reused(self, db: sqlite3.Connection, e: Event) -> None:
        # The output is already in the row (that is where reuse read it from): not written again.
        updated = db.execute(
            "UPDATE steps SET status = 'succeeded', reused = 1 WHERE run_id = ? AND step_id = ?",
            (e.run_id, e.step_id),
        ).rowcount
        if not updated:
            what = f"the reused output of step {e.step_id!r} (run {e.run_id})"
            output = dumps_json(e.data.get("output"), what=what)
            self._upsert_end(db, e, StepStatus.SUCCEEDED, output=output)
            db.execute(
                "UPDATE steps SET reused = 1 WHERE run_id = ? AND step_id = ?",
                (e.run_id, e.step_id),
            )

    def _on_compensation(self, db: sqlite3.Connection, e: Event) -> None:
        if e.type is EventType.STEP_COMPENSATED:
            db.execute(
                "UPDATE steps SET status = 'compensated' WHERE run_id = ? AND step_id = ?",
                (e.run_id, e.step_id),
            )
        else:  # the step's effect stands: keep it succeeded, say why it could not be undone
            db.execute(
                "UPDATE steps SET reason = ? WHERE run_id = ? AND step_id = ?",
                (f"compensation failed: {error_text(e.data.get('error'))}", e.run_id, e.step_id),
            )

    # Event types absent here change no row: they only get their line in the event log.
    _HANDLERS: dict[EventType, Callable[[Journal, sqlite3.Connection, Event], None]] = {
        EventType.RUN_STARTED: _on_run_started,
        EventType.RUN_FINISHED: _on_run_finished,
        EventType.PLAN_CREATED: _on_plan_created,
        EventType.LLM_CALL: _on_llm_call,
        EventType.STEP_STARTED: _on_step_started,
        EventType.STEP_RETRYING: _on_step_retrying,
        EventType.STEP_SUCCEEDED: _on_step_succeeded,
        EventType.STEP_FAILED: _on_step_failed,
        EventType.STEP_SKIPPED: _on_step_ended,
        EventType.STEP_BLOCKED: _on_step_ended,
        EventType.STEP_CANCELLED: _on_step_ended,
        EventType.STEP_REUSED: _on_step_reused,
        EventType.STEP_COMPENSATED: _on_compensation,
        EventType.STEP_COMPENSATION_FAILED: _on_compensation,
    }


_END_STATUS = {
    EventType.STEP_SKIPPED: StepStatus.SKIPPED,
    EventType.STEP_BLOCKED: StepStatus.BLOCKED,
    EventType.STEP_CANCELLED: StepStatus.CANCELLED,
}
