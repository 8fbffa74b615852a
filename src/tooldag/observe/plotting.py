"""Pictures of runs for notebooks: a Gantt chart of when each step ran, and the plan as a graph.

People judge "did the branches overlap?" and "where did the time go?" faster from a chart than from
a table, so :func:`gantt` draws one row per step from what a run left behind: a
:class:`~tooldag.result.RunResult`, a :class:`~tooldag.observe.monitor.Monitor`, its
``get_step_timeline()`` rows, or the events themselves (live, or ``RunStore.events(run_id)``).
Events are the richest source: every attempt of a retried step is its own bar segment.
:func:`plot_dag` draws a plan left to right, coloured like
:func:`tooldag.observe.mermaid.to_mermaid`, for front ends that do not render Mermaid.

matplotlib is optional (``pip install 'tooldag[notebooks]'``) and imported only when drawing;
:func:`timeline_bars`, the data behind the chart, needs nothing.

>>> ax = gantt(result)                        # doctest: +SKIP
>>> ax.figure.savefig("timeline.png")         # doctest: +SKIP
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PlanInvalidError
from ..events import Event, EventType, RunStarted, StepStarted
from ..plan.model import Plan
from ..result import RunResult, StepStatus
from .mermaid import STATUS_COLOURS
from .monitor import Monitor

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Span", "TimelineBar", "gantt", "plot_dag", "timeline_bars"]

_INSTALL_HINT = (
    "drawing charts needs matplotlib, which is not installed: "
    "pip install 'tooldag[notebooks]' (or pip install matplotlib)"
)

# What a step-ending event says about the attempt that was running.
_ENDINGS = {
    EventType.STEP_SUCCEEDED: StepStatus.SUCCEEDED,
    EventType.STEP_FAILED: StepStatus.FAILED,
    EventType.STEP_CANCELLED: StepStatus.CANCELLED,
}
# Events that settle a step without it running (drawn as a marker, not a bar).
_SETTLED = {
    EventType.STEP_SKIPPED: StepStatus.SKIPPED,
    EventType.STEP_BLOCKED: StepStatus.BLOCKED,
    EventType.STEP_REUSED: StepStatus.SUCCEEDED,
}


@dataclass(frozen=True, slots=True)
class Span:
    """One attempt of a step: seconds since the run's first recorded moment, and how it ended
    (``failed`` for a retried attempt, ``running`` if the source saw no end)."""

    start: float
    end: float
    status: StepStatus


@dataclass(slots=True)
class TimelineBar:
    """One row of the chart: the step's attempts (``spans``); the moment a step that did not
    run here (skipped, blocked, reused) was settled (``at``); when it was undone, if it was
    (``compensated_at``, known from events only)."""

    step_id: str
    tool: str
    status: StepStatus
    spans: list[Span] = field(default_factory=list)
    at: float | None = None
    attempts: int = 0
    reused: bool = False
    compensated_at: float | None = None

    @property
    def start(self) -> float | None:
        """When the row begins on the time axis (first attempt, else the marker)."""
        return self.spans[0].start if self.spans else self.at

    @property
    def end(self) -> float | None:
        """When the row ends on the time axis (last attempt or marker, whichever is later)."""
        last = self.spans[-1].end if self.spans else None
        return max((t for t in (last, self.at, self.compensated_at) if t is not None), default=None)


# --------------------------------------------------------------------------- data


def _bars_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[TimelineBar]:
    bars = []
    for row in rows:
        status = StepStatus(row["status"])
        start, end = row.get("started_at"), row.get("finished_at")
        bar = TimelineBar(
            str(row["step_id"]),
            str(row.get("tool") or ""),
            status,
            attempts=int(row.get("attempts") or 0),
            reused=bool(row.get("reused")),
        )
        if start is not None and not bar.reused:
            final = status if status.finished else StepStatus.RUNNING
            bar.spans.append(Span(start, end if end is not None else start, final))
        else:
            bar.at = end
        bars.append(bar)
    return bars


def _bars_from_events(events: Sequence[Event], run_id: str | None) -> list[TimelineBar]:
    if run_id is None:
        run_id = next((e.run_id for e in events), None)
    bars: dict[str, TimelineBar] = {}
    open_at: dict[str, float] = {}
    tools: dict[str, str] = {}  # from the plans in run_started (live events carry them)

    def bar(event: Event) -> TimelineBar:
        assert event.step_id is not None
        found = bars.get(event.step_id)
        if found is None:
            found = bars[event.step_id] = TimelineBar(event.step_id, "", StepStatus.PENDING)
        return found

    def close(sid: str, ts: float, status: StepStatus) -> bool:
        start = open_at.pop(sid, None)
        if start is None:
            return False
        bars[sid].spans.append(Span(start, ts, status))
        return True

    last = 0.0
    for event in events:
        if event.run_id != run_id:
            continue
        last = max(last, event.ts)
        kind, sid, data = event.type, event.step_id, event.data
        if isinstance(data, RunStarted):
            if data.plan is not None:
                tools.update((step.id, step.tool) for step in data.plan.steps)
            continue
        if kind is EventType.RUN_FINISHED:
            for open_sid in list(open_at):  # no step end was journalled: show what ran
                close(open_sid, event.ts, StepStatus.CANCELLED)
            continue
        if sid is None:
            continue
        row = bar(event)
        row.tool = row.tool or tools.get(sid, "")
        if isinstance(data, StepStarted):
            # A second start without an end: the first attempt's process died (resume).
            close(sid, event.ts, StepStatus.CANCELLED)
            open_at[sid] = event.ts
            row.tool = data.tool or row.tool
            row.status = StepStatus.RUNNING
            row.attempts = max(row.attempts, event.attempt)
            row.reused = False
        elif kind is EventType.STEP_RETRYING:
            close(sid, event.ts, StepStatus.FAILED)
        elif kind in _ENDINGS:
            row.status = _ENDINGS[kind]
            if not close(sid, event.ts, row.status):
                row.at = event.ts
        elif kind in _SETTLED:
            row.status = _SETTLED[kind]
            row.reused = kind is EventType.STEP_REUSED
            row.at = event.ts
        elif kind is EventType.STEP_COMPENSATED:
            row.status = StepStatus.COMPENSATED
            row.compensated_at = event.ts
    for sid, start in open_at.items():
        bars[sid].spans.append(Span(start, last, StepStatus.RUNNING))
    return list(bars.values())


def _bars(source: Any, run_id: str | None) -> list[TimelineBar]:
    if isinstance(source, RunResult):
        return _bars_from_rows(
            [
                {
                    "step_id": r.id,
                    "tool": r.tool,
                    "status": r.status,
                    "attempts": r.attempts,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "reused": r.reused,
                }
                for r in source.steps.values()
            ]
        )
    if isinstance(source, Monitor):
        return _bars_from_rows(source.get_step_timeline(run_id))
    if isinstance(source, Iterable) and not isinstance(source, str | bytes | Mapping):
        items = list(source)
        if all(isinstance(i, Event) for i in items):
            return _bars_from_events(items, run_id)
        if all(isinstance(i, Mapping) and "step_id" in i for i in items):
            return _bars_from_rows(items)
    raise ConfigError(
        f"cannot draw a timeline from {type(source).__name__}: pass a RunResult, a Monitor, "
        "Monitor.get_step_timeline() rows, or a list of events (e.g. RunStore.events(run_id))"
    )


def timeline_bars(source: Any, run_id: str | None = None) -> list[TimelineBar]:
    """The rows :func:`gantt` draws, in start order, times in seconds since the earliest one.

    ``source``: a RunResult, a Monitor, ``Monitor.get_step_timeline()`` rows, or events (of one
    run, or of several: ``run_id`` picks one, default the first seen; for a monitor, default its
    latest run).
    """
    bars = _bars(source, run_id)
    times = [t for b in bars for t in (b.start, b.at) if t is not None]
    t0 = min(times, default=0.0)
    for b in bars:
        b.spans = [Span(s.start - t0, s.end - t0, s.status) for s in b.spans]
        b.at = b.at - t0 if b.at is not None else None
        b.compensated_at = b.compensated_at - t0 if b.compensated_at is not None else None
    # Stable: steps that started together keep the plan's order.
    return sorted(bars, key=lambda b: (b.start is None, b.start or 0.0))


# --------------------------------------------------------------------------- drawing


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None


def _colours(status: StepStatus) -> tuple[str, str]:
    """(fill, edge) of a status, the same as the Mermaid picture's."""
    parts = dict(p.split(":", 1) for p in STATUS_COLOURS[status].split(","))
    return parts["fill"], parts["stroke"]


def _new_axes(width: float, height: float) -> Axes:
    import matplotlib.pyplot as plt  # pyplot, so that Jupyter shows the figure by itself

    _, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return ax


# Marker shapes, in legend order: the moment a step was settled without running, or undone.
_MARKS = {
    "reused, not run again": "D",
    "skipped": "o",
    "blocked": "X",
    "cancelled": "X",
    "compensation ran": "<",
}


def _settled_mark(bar: TimelineBar) -> str:
    """The legend label of the moment ``bar.at``."""
    if bar.reused:
        return "reused, not run again"
    return bar.status.value if bar.status.value in _MARKS else "cancelled"


def _bar_note(bar: TimelineBar) -> str:
    """What colours and markers do not say: how long the last attempt took, how many ran."""
    last = bar.spans[-1]
    note = f"{(last.end - last.start) * 1000:.0f} ms"
    return f"{note} · {bar.attempts} attempts" if bar.attempts > 1 else note


def gantt(
    source: Any,
    *,
    run_id: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw a Gantt chart of a run: one row per step, a bar per attempt, coloured by status
    (failed attempts hatched), markers for steps settled without running (skipped, blocked,
    reused) and for compensations. Returns the matplotlib Axes (``ax.figure.savefig(path)``
    keeps it). ``source`` is as for :func:`timeline_bars`."""
    _require_matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bars = timeline_bars(source, run_id)
    if ax is None:
        ax = _new_axes(9.0, 1.4 + 0.42 * max(len(bars), 1))
    span = max((b.end or 0.0 for b in bars), default=0.0) or 1.0
    statuses: set[StepStatus] = set()
    marks: set[str] = set()
    for row, bar in enumerate(bars):
        for s in bar.spans:
            undone = bar.status is StepStatus.COMPENSATED and s.status is StepStatus.SUCCEEDED
            shown = StepStatus.COMPENSATED if undone else s.status
            statuses.add(shown)
            fill, edge = _colours(shown)
            ax.barh(
                row,
                max(s.end - s.start, span / 400),  # an instant step stays visible
                left=s.start,
                height=0.6,
                color=fill,
                edgecolor=edge,
                linewidth=1.2,
                hatch="///" if shown is StepStatus.FAILED else None,
            )
        points = []
        if bar.at is not None:
            points.append((bar.at, bar.status, _settled_mark(bar)))
        if bar.compensated_at is not None:
            points.append((bar.compensated_at, StepStatus.COMPENSATED, "compensation ran"))
        for x, status, label in points:
            marks.add(label)
            fill, edge = _colours(status)
            ax.plot(
                x, row, _MARKS[label], markersize=9, color=edge, markerfacecolor=fill, clip_on=False
            )
        if bar.spans:
            ax.annotate(
                _bar_note(bar),
                (bar.spans[-1].end, row),
                xytext=(5, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color="#444444",
            )
    ax.set_yticks(
        range(len(bars)), [f"{b.step_id}  ({b.tool})" if b.tool else b.step_id for b in bars]
    )
    ax.set_ylim(len(bars) - 0.4, -0.6)  # first step on top
    ax.set_xlim(0, span * 1.25)  # room for the note after the last bar
    ax.set_xlabel("seconds since the run's first step")
    ax.grid(axis="x", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles: list[Any] = [
        Patch(
            facecolor=_colours(s)[0],
            edgecolor=_colours(s)[1],
            hatch="///" if s is StepStatus.FAILED else None,
            label=s.value,
        )
        for s in StepStatus
        if s in statuses
    ]
    handles += [
        Line2D([], [], marker=shape, linestyle="none", color="#555555", label=label)
        for label, shape in _MARKS.items()
        if label in marks
    ]
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
    )
    if title is None:
        title = _default_title(source, bars)
    ax.set_title(title, loc="left", fontsize=11)
    return ax


def _default_title(source: Any, bars: list[TimelineBar]) -> str:
    end = max((b.end or 0.0 for b in bars), default=0.0)
    if isinstance(source, RunResult):
        return f"run {source.run_id} · {source.status.value} · {end:.2f}s of steps"
    return f"{len(bars)} steps · {end:.2f}s"


# --------------------------------------------------------------------------- the plan


def _layers(plan: Plan) -> dict[str, int]:
    """Each step's column: one past its deepest dependency (longest path from a root)."""
    ids = set(plan.ids)
    graph = {s.id: [d for d in s.dependencies() if d in ids] for s in plan.steps}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(str(n) for n in exc.args[1])
        raise PlanInvalidError(
            f"cannot draw a plan with a cycle ({cycle}); check it with validate() first"
        ) from None
    layer: dict[str, int] = {}
    for sid in order:
        layer[sid] = 1 + max((layer[d] for d in graph[sid]), default=-1)
    return layer


def _positions(plan: Plan, layer: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Columns by layer; within a column, steps sorted by their parents' mean height (one
    barycentre pass: enough to untangle the plans people write)."""
    columns: dict[int, list[str]] = {}
    for step in plan.steps:
        columns.setdefault(layer[step.id], []).append(step.id)
    y: dict[str, float] = {}
    pos: dict[str, tuple[float, float]] = {}
    deps = plan.dependencies()
    for col in sorted(columns):
        members = columns[col]
        if col > 0:

            def height(sid: str) -> float:
                ups = [y[d] for d in deps[sid] if d in y]
                return sum(ups) / len(ups) if ups else 0.0

            members.sort(key=height, reverse=True)
        for i, sid in enumerate(members):
            y[sid] = (len(members) - 1) / 2 - i
            pos[sid] = (float(col), y[sid])
    return pos


def plot_dag(
    plan: Plan,
    statuses: Mapping[str, StepStatus | str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw ``plan`` left to right: a box per step (id and tool), an arrow per dependency
    (dotted: ``depends_on`` ordering only), conditional (``when``) steps with a dashed border,
    boxes coloured by ``statuses`` when given. Raises PlanInvalidError for a cyclic plan."""
    _require_matplotlib()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    layer = _layers(plan)
    pos = _positions(plan, layer)
    columns = max(layer.values(), default=0) + 1
    rows = max((sum(1 for v in layer.values() if v == c) for c in range(columns)), default=1)
    if ax is None:
        ax = _new_axes(max(4.0, 2.0 * columns), max(1.8, 0.9 * rows + 0.6))
    width, height = 0.78, 0.62
    for step in plan.steps:
        x, y = pos[step.id]
        raw = (statuses or {}).get(step.id)
        fill, edge = _colours(StepStatus(raw)) if raw is not None else ("#ffffff", "#555555")
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0,rounding_size=0.08",
                facecolor=fill,
                edgecolor=edge,
                linewidth=1.4,
                zorder=2,
                linestyle="--" if step.when is not None else "-",
            )
        )
        ax.text(
            x,
            y + 0.1,
            _fit(step.id, 18),
            ha="center",
            va="center",
            fontsize=9,
            fontweight="bold",
            zorder=3,
        )
        ax.text(
            x,
            y - 0.14,
            _fit(step.tool, 22),
            ha="center",
            va="center",
            fontsize=7.5,
            style="italic",
            color="#555555",
            zorder=3,
        )
    for step in plan.steps:
        data = set(step.data_dependencies())
        for dep in step.dependencies():
            if dep not in pos:
                continue
            (x1, y1), (x2, y2) = pos[dep], pos[step.id]
            ax.add_patch(
                FancyArrowPatch(
                    (x1 + width / 2, y1),
                    (x2 - width / 2, y2),
                    arrowstyle="-|>",
                    mutation_scale=11,
                    color="#555555",
                    linewidth=1.0,
                    zorder=1,
                    linestyle="-" if dep in data else ":",
                )
            )
    top = max((p[1] for p in pos.values()), default=0.0)
    bottom = min((p[1] for p in pos.values()), default=0.0)
    ax.set_xlim(-0.5, columns - 0.5)
    ax.set_ylim(bottom - 0.5, top + 0.5)
    ax.set_axis_off()
    if title is None:
        title = plan.goal or f"plan of {len(plan.steps)} steps"
    ax.set_title(_fit(title, 90), loc="left", fontsize=10)
    return ax


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
