"""Watching runs: the seed's workflow summary and step timeline, built only from events.

A :class:`Monitor` subscribes to an executor's bus (or is fed recorded events) and keeps, per run,
what each step did and when. It answers the seed's ``get_workflow_summary`` and
``get_step_timeline``, draws the plan as Mermaid coloured by status, and prints a terminal timeline
(rich) in which steps that ran at the same time visibly overlap.

>>> from tooldag import Plan, ToolRegistry, tool
>>> from tooldag.execution.executor import Executor
>>> @tool
... def ping() -> str:
...     return "pong"
>>> executor = Executor(ToolRegistry([ping]))
>>> monitor = Monitor(executor.bus)
>>> plan = Plan.model_validate({"steps": [{"id": "a", "tool": "ping"},
...                                          {"id": "b", "tool": "ping"}]})
>>> import asyncio
>>> _ = asyncio.run(executor.run(plan))
>>> summary = monitor.get_workflow_summary()
>>> summary["total"], summary["successful"], summary["is_active"]
(2, 2, False)
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .._terminal import printable
from ..errors import RunStateError
from ..events import (
    Event,
    EventBus,
    EventType,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepCancelled,
    StepCompensated,
    StepCompensationFailed,
    StepFailed,
    StepReused,
    StepSkipped,
    StepStarted,
)
from ..plan.model import Plan
from ..result import RunStatus, StepStatus
from .mermaid import to_mermaid

__all__ = ["Monitor", "STATUS_STYLES", "status_style"]

# The terminal look (a rich style) of every status word, step and run statuses alike: a status
# reads the same in the live table, the run list, a run's view and the summary line. (Charts and
# Mermaid use the fill/stroke palette of :data:`~tooldag.observe.mermaid.STATUS_COLOURS`.)
STATUS_STYLES: dict[str, str] = {
    StepStatus.PENDING: "grey50",
    StepStatus.RUNNING: "yellow",
    StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "bold red",
    StepStatus.SKIPPED: "blue",
    StepStatus.BLOCKED: "dark_orange",
    StepStatus.CANCELLED: "magenta",
    StepStatus.COMPENSATED: "cyan",
    RunStatus.PAUSED: "cyan",
    RunStatus.REJECTED: "dark_orange",
    RunStatus.BUDGET_EXCEEDED: "red",
    RunStatus.INTERRUPTED: "magenta",
}


def status_style(status: str) -> str:
    """The rich style of a step or run status (``""`` for a word that is no status)."""
    return STATUS_STYLES.get(status, "")


_FINISHING = {
    EventType.STEP_SUCCEEDED: StepStatus.SUCCEEDED,
    EventType.STEP_FAILED: StepStatus.FAILED,
    EventType.STEP_SKIPPED: StepStatus.SKIPPED,
    EventType.STEP_BLOCKED: StepStatus.BLOCKED,
    EventType.STEP_CANCELLED: StepStatus.CANCELLED,
    EventType.STEP_REUSED: StepStatus.SUCCEEDED,
}


@dataclass
class _StepView:
    id: str
    tool: str = ""
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration: float | None = None
    error: str | None = None
    reason: str | None = None
    reused: bool = False


# How many of the latest steps to finish, and to go wrong, a run's view keeps for its window.
_WINDOW = 20
_TROUBLED = frozenset({StepStatus.FAILED, StepStatus.BLOCKED, StepStatus.CANCELLED})


@dataclass
class _RunView:
    run_id: str
    goal: str = ""
    plan: Plan | None = None
    status: RunStatus = RunStatus.RUNNING
    started_at: float | None = None
    finished_at: float | None = None
    active: bool = True
    steps: dict[str, _StepView] = field(default_factory=dict)
    # The views of the run's previous execution (a resumed run): what a reused step did there.
    earlier: dict[str, _StepView] = field(default_factory=dict)
    # Kept up to date event by event, so that the live view costs the same at any plan size:
    # steps by status, the steps running (in start order), the latest to finish and to go wrong,
    # and the most that ran at once.
    counts: Counter[StepStatus] = field(default_factory=Counter)
    running: dict[str, _StepView] = field(default_factory=dict)
    recent: deque[_StepView] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    troubled: deque[_StepView] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    peak: int = 0

    def step(self, sid: str) -> _StepView:
        view = self.steps.get(sid)
        if view is None:
            view = self.steps[sid] = _StepView(sid)
            self.counts[view.status] += 1
        return view

    def tally(self, before: StepStatus, view: _StepView) -> None:
        """Count ``view``'s move from status ``before`` to its status now."""
        after = view.status
        if after is before:
            return
        self.counts[before] -= 1
        self.counts[after] += 1
        if before is StepStatus.RUNNING:
            self.running.pop(view.id, None)
        if after is StepStatus.RUNNING:
            self.running[view.id] = view
            self.peak = max(self.peak, len(self.running))
        elif after.finished and not before.finished:
            self.recent.append(view)
            if after in _TROUBLED:
                self.troubled.append(view)


def _apply(run: _RunView, event: Event) -> None:
    data = event.data
    if isinstance(data, RunStarted):
        # A resumed run starts afresh: carried over, an interrupted step would seem to run on
        # from the earlier execution and overlap steps it never met. Reused steps get their
        # record back from ``earlier`` when they are reused.
        run.earlier = run.steps
        run.steps = {}
        run.counts.clear()
        run.running.clear()
        run.recent.clear()
        run.troubled.clear()
        run.peak = 0
        run.status = RunStatus.RUNNING
        run.finished_at = None
        run.active = True
        run.started_at = event.ts
        run.goal = data.goal
        if data.plan is not None:
            run.plan = data.plan
            for step in data.plan.steps:
                run.step(step.id).tool = step.tool
        return
    if isinstance(data, RunFinished):
        run.finished_at = event.ts
        run.active = False
        run.status = data.status
        return
    if event.step_id is None:
        return
    before = run.step(event.step_id).status
    _apply_step(run, event)
    run.tally(before, run.steps[event.step_id])


def _apply_step(run: _RunView, event: Event) -> None:
    assert event.step_id is not None
    data = event.data
    earlier = run.earlier.get(event.step_id)
    kind = event.type
    if isinstance(data, StepReused) and earlier is not None:
        # Its tool, attempts and duration are the earlier execution's; it sits on this
        # execution's timeline only as the moment it was reused.
        run.steps[event.step_id] = dataclasses.replace(
            earlier,
            status=StepStatus.SUCCEEDED,
            started_at=None,
            finished_at=event.ts,
            reused=True,
        )
        return
    view = run.step(event.step_id)
    if isinstance(data, StepStarted):
        view.tool = data.tool or view.tool
        view.status = StepStatus.RUNNING
        view.attempts = event.attempt
        if view.started_at is None:
            view.started_at = event.ts
    elif kind in _FINISHING:
        view.status = _FINISHING[kind]
        view.finished_at = event.ts
        view.attempts = max(view.attempts, event.attempt)
        if event.duration is not None:
            view.duration = event.duration
        elif view.started_at is not None:
            view.duration = event.ts - view.started_at
        if isinstance(data, StepSkipped | StepBlocked | StepCancelled):
            view.reason = data.reason or view.reason
        elif isinstance(data, StepFailed):
            view.error = str(data.error)
        view.reused = isinstance(data, StepReused)
    elif isinstance(data, StepCompensated):
        view.status = StepStatus.COMPENSATED
    elif isinstance(data, StepCompensationFailed):
        view.error = f"compensation failed: {data.error.message}"


def _overlaps(views: list[_StepView], now: float) -> tuple[dict[str, list[str]], int]:
    """For each step that ran, the steps that ran at the same time, and the most that ran at
    once (a sweep over start and end times)."""
    points: list[tuple[float, int, str]] = []
    for view in views:
        if view.started_at is None:
            continue
        end = view.finished_at if view.finished_at is not None else now
        points.append((view.started_at, 1, view.id))
        points.append((max(end, view.started_at), 0, view.id))  # ends sort before starts
    points.sort()
    active: set[str] = set()
    peak = 0
    out: dict[str, list[str]] = {v.id: [] for v in views if v.started_at is not None}
    for _, is_start, sid in points:
        if is_start:
            for other in active:
                out[other].append(sid)
                out[sid].append(other)
            active.add(sid)
            peak = max(peak, len(active))
        else:
            active.discard(sid)
    return out, peak


def _counted(summary: dict[str, Any], shown: int) -> str:
    """``showing 12 of 20,000 steps: 5,100 succeeded, 16 running, 14,884 pending``."""
    counts = summary["counts"]
    parts = [f"{counts[s.value]:,} {s.value}" for s in StepStatus if counts.get(s.value)]
    return f"showing {shown:,} of {summary['total']:,} steps: " + ", ".join(parts)


def _row(view: _StepView, t0: float | None, overlaps: list[str]) -> dict[str, Any]:
    """One step of :meth:`Monitor.get_step_timeline`."""
    return {
        "step_id": view.id,
        "tool": view.tool,
        "status": view.status.value,
        "attempts": view.attempts,
        "started_at": view.started_at,
        "finished_at": view.finished_at,
        "duration": view.duration,
        "offset": view.started_at - t0 if view.started_at is not None and t0 else None,
        "success": view.status is StepStatus.SUCCEEDED,
        "error": view.error,
        "reason": view.reason,
        "reused": view.reused,
        "overlaps": sorted(overlaps),
    }


def _details(row: dict[str, Any], *, errors: bool = True) -> str:
    """What a timeline row says after its time: attempts, then the error or reason (or that
    the step was reused), on one line."""
    note = (row["error"] or row["reason"] or "") if errors else ""
    note = note or ("reused" if row["reused"] else "")
    if row["attempts"] > 1:
        note = f"{row['attempts']} attempts. {note}".strip()
    return " ".join(printable(note).split())


def _longest(cells: list[str], header: str) -> int:
    """The width of a column that must show every cell whole."""
    return max([cell_len(header), *(cell_len(cell) for cell in cells)])


class Monitor:
    """Follows runs through their events. Thread-safe: events may come from a helper thread."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self._runs: dict[str, _RunView] = {}
        self._lock = threading.Lock()
        if bus is not None:
            self.attach(bus)

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Monitor:
        """A monitor of recorded events (a journal replay)."""
        monitor = cls()
        for event in events:
            monitor.record(event)
        return monitor

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Follow ``bus``; returns the function that stops following it."""
        return bus.subscribe(self.record)

    def __call__(self, event: Event) -> None:
        self.record(event)

    def record(self, event: Event) -> None:
        if event.type is EventType.LLM_CALL or event.type is EventType.PLAN_CREATED:
            return
        with self._lock:
            run = self._runs.get(event.run_id)
            if run is None:
                run = self._runs[event.run_id] = _RunView(event.run_id)
            _apply(run, event)

    @property
    def run_ids(self) -> list[str]:
        """Runs seen, in the order they started."""
        with self._lock:
            return list(self._runs)

    def _run(self, run_id: str | None) -> _RunView:
        if run_id is None:
            if not self._runs:
                raise RunStateError("the monitor has seen no run yet; attach it before running")
            return next(reversed(self._runs.values()))
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunStateError(f"the monitor has seen no run {run_id!r}", run_id=run_id) from None

    # ------------------------------------------------------------------ the seed's queries

    def get_workflow_summary(self, run_id: str | None = None) -> dict[str, Any]:
        """Counts by status, durations (seconds) and whether the run is still going (default: the
        latest run). ``total_duration`` sums step durations (work done); ``wall_time`` is the
        run's elapsed time; ``max_parallel`` the most steps that ran at once."""
        with self._lock:
            run = self._run(run_id)
            views = list(run.steps.values())
            now = time.time()
            counts = {status: 0 for status in StepStatus}
            for view in views:
                counts[view.status] += 1
            durations = [v.duration for v in views if v.duration is not None and not v.reused]
            end = run.finished_at if run.finished_at is not None else now
            _, peak = _overlaps(views, now)
            return {
                "run_id": run.run_id,
                "goal": run.goal,
                "status": run.status.value,
                "total": len(views),
                "successful": counts[StepStatus.SUCCEEDED],
                "failed": counts[StepStatus.FAILED],
                "skipped": counts[StepStatus.SKIPPED],
                "blocked": counts[StepStatus.BLOCKED],
                "cancelled": counts[StepStatus.CANCELLED],
                "compensated": counts[StepStatus.COMPENSATED],
                "in_progress": counts[StepStatus.RUNNING],
                "pending": counts[StepStatus.PENDING],
                "reused": sum(1 for v in views if v.reused),
                "total_duration": sum(durations),
                "average_duration": sum(durations) / len(durations) if durations else 0.0,
                "wall_time": end - run.started_at if run.started_at is not None else 0.0,
                "max_parallel": peak,
                "is_active": run.active,
            }

    def get_step_timeline(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """One entry per step, in start order (steps that never started last): times are epoch
        seconds, ``offset`` is seconds from the run's start, ``overlaps`` the steps that ran at
        the same time."""
        with self._lock:
            run = self._run(run_id)
            views = list(run.steps.values())
            overlaps, _ = _overlaps(views, time.time())
            t0 = run.started_at
            views.sort(key=lambda v: (v.started_at is None, v.started_at or v.finished_at or 0.0))
            return [_row(v, t0, overlaps.get(v.id, [])) for v in views]

    def _window(self, run_id: str | None, rows: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """What the live view shows, in time independent of the plan's size: the run's summary
        from the tallies, and up to ``rows`` steps (running, then the latest to go wrong, then
        the latest to finish) in start order, as :meth:`get_step_timeline` gives them."""
        with self._lock:
            run = self._run(run_id)
            now = time.time()
            picked: dict[str, _StepView] = {}
            for views in (run.running.values(), reversed(run.troubled), reversed(run.recent)):
                for view in views:
                    if len(picked) == rows:
                        break
                    picked.setdefault(view.id, view)
            chosen = sorted(picked.values(), key=lambda v: v.started_at or v.finished_at or 0.0)
            end = run.finished_at if run.finished_at is not None else now
            summary = {
                "run_id": run.run_id,
                "status": run.status.value,
                "total": len(run.steps),
                "counts": {status.value: n for status, n in run.counts.items() if n},
                "wall_time": end - run.started_at if run.started_at is not None else 0.0,
                "max_parallel": run.peak,
            }
            return summary, [_row(v, run.started_at, []) for v in chosen]

    def statuses(self, run_id: str | None = None) -> dict[str, StepStatus]:
        with self._lock:
            return {sid: v.status for sid, v in self._run(run_id).steps.items()}

    def to_mermaid(self, run_id: str | None = None) -> str:
        """The run's plan as a Mermaid flowchart coloured by step status."""
        with self._lock:
            run = self._run(run_id)
            if run.plan is None:
                raise RunStateError(f"run {run.run_id!r} has no plan (its run_started was missed)")
            plan = run.plan
            statuses = {sid: v.status for sid, v in run.steps.items()}
        return to_mermaid(plan, statuses)

    # ------------------------------------------------------------------ terminal

    def timeline_table(
        self,
        run_id: str | None = None,
        *,
        width: int = 40,
        window: int | None = None,
        details: bool = True,
    ) -> Table:
        """A rich table: one row per step, with a bar over the run's span (overlapping bars ran
        at the same time) and what happened to it. Ids, tools and details (tool errors) are
        shown as text, never read as markup, with control characters escaped.

        Ids, tools and statuses are never cut: on a narrow terminal the details give way, one
        line each, cut with ``…``; a details column that would stay empty is left out.
        ``details=False`` leaves errors and reasons out of it (attempts and reuse stay), for a
        caller that prints them in full below the table.

        ``window``: at most that many steps (the running ones, then the latest to go wrong or
        to finish) and a caption counting them all by status, in time independent of the
        plan's size: the live view, redrawn several times a second during a run of any size.
        """
        if window is None:
            summary = self.get_workflow_summary(run_id)
            rows = self.get_step_timeline(run_id)
        else:
            summary, rows = self._window(run_id, window)
        with self._lock:
            run = self._run(run_id)
            t0 = run.started_at or 0.0
            t1 = run.finished_at or time.time()
        span = max(t1 - t0, 1e-9)
        # The look of the plan table drawn above it; no outer edge: two columns more for text.
        # The title and caption run on past a table narrower than they are, not wrapped to it.
        table = Table(
            title=Text(
                printable(
                    f"run {summary['run_id']} · {summary['status']} · "
                    f"{summary['wall_time']:.2f}s · up to {summary['max_parallel']} at once"
                ),
                no_wrap=True,
                overflow="ignore",
            ),
            title_justify="left",
            show_edge=False,
            pad_edge=False,
        )
        if window is not None:
            table.caption = Text(
                _counted(summary, len(rows)), style="dim", no_wrap=True, overflow="ignore"
            )
            table.caption_justify = "left"
        notes = [_details(row, errors=details) for row in rows]
        ids = [printable(row["step_id"]) for row in rows]
        tools = [printable(row["tool"]) for row in rows]
        statuses = [row["status"] for row in rows]
        # Measured, not guessed: a name or status is never cut to make room (rich shrinks
        # only the columns that may wrap, here the details).
        table.add_column("step", no_wrap=True, min_width=_longest(ids, "step"))
        table.add_column("tool", style="dim", no_wrap=True, min_width=_longest(tools, "tool"))
        table.add_column("status", no_wrap=True, min_width=_longest(statuses, "status"))
        table.add_column("timeline", no_wrap=True, min_width=width)
        table.add_column("time", justify="right", no_wrap=True, min_width=6)
        if any(notes):
            table.add_column("details")
        for row, step_id, tool, note in zip(rows, ids, tools, notes, strict=True):
            status = StepStatus(row["status"])
            style = STATUS_STYLES[status]
            start, end = row["started_at"], row["finished_at"] or t1
            if start is not None:
                # Clamped: a step of an earlier execution of the same run id may start before
                # t0, and an unclamped offset would draw a bar of millions of cells.
                a = max(0, min(width - 1, int((start - t0) / span * width)))
                # floor for starts, ceil for ends: steps that overlapped in time share a column.
                b = max(a + 1, min(width, math.ceil((end - t0) / span * width)))
                bar = Text(" " * a + "█" * (b - a) + " " * (width - b), style=style)
            else:
                at = row["finished_at"]
                a = max(0, min(width - 1, int((at - t0) / span * width))) if at is not None else 0
                bar = Text(" " * a + "·" + " " * (width - a - 1), style=style)
            duration = f"{row['duration']:.3f}s" if row["duration"] is not None else ""
            cells: list[RenderableType] = [
                Text(step_id),
                Text(tool),
                Text(status.value, style=style),
                bar,
                duration,
            ]
            if any(notes):
                # The column may shrink (it is the one that gives way); its text stays on one
                # line, cut with an ellipsis, so a row stays a row.
                cells.append(Text(note, no_wrap=True, overflow="ellipsis"))
            table.add_row(*cells)
        return table

    def print_timeline(
        self, run_id: str | None = None, *, console: Console | None = None, width: int = 40
    ) -> None:
        (console or Console()).print(self.timeline_table(run_id, width=width))
