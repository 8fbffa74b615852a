"""Charts of runs: the bars behind the Gantt chart (from records, monitor rows and events), what
gets drawn, the plan drawing, and the error when matplotlib is missing."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display in tests

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from tooldag.errors import ConfigError, PlanInvalidError
from tooldag.events import (
    Event,
    EventBus,
    Payload,
    RunFinished,
    RunStarted,
    StepCompensated,
    StepRetrying,
    StepReused,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from tooldag.execution.executor import run_plan
from tooldag.observe.mermaid import STATUS_COLOURS
from tooldag.observe.monitor import Monitor
from tooldag.observe.plotting import Span, gantt, plot_dag, timeline_bars
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool
from tooldag.result import RunResult, RunStatus, StepError, StepRecord, StepStatus

T0 = 1_700_000_000.0


def axes() -> Axes:
    return Figure().subplots()


def fill_of(status: StepStatus) -> str:
    return STATUS_COLOURS[status].split(",")[0].removeprefix("fill:")


def bars_drawn(ax: Axes) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def result_of(*records: StepRecord) -> RunResult:
    return RunResult(run_id="r1", status=RunStatus.SUCCEEDED, steps={r.id: r for r in records})


def event(data: Payload, step: str | None, ts: float, attempt: int = 0) -> Event:
    return Event(data, "r1", step_id=step, attempt=attempt, ts=T0 + ts)


# A run with a retried step, a skipped one, a reused one, and a compensation at the end.
EVENTS = [
    event(
        RunStarted(
            Plan.model_validate(
                {
                    "steps": [
                        {"id": "fetch", "tool": "fetch_data"},
                        {"id": "alert", "tool": "send_alert"},
                        {"id": "cached", "tool": "fetch_data"},
                    ]
                }
            )
        ),
        None,
        0.0,
    ),
    event(StepReused(), "cached", 0.0),
    event(StepStarted("fetch_data"), "fetch", 0.1, attempt=1),
    event(StepRetrying(StepError(type="Timeout", message="slow")), "fetch", 0.3, attempt=1),
    event(StepStarted("fetch_data"), "fetch", 0.5, attempt=2),
    event(StepSucceeded(), "fetch", 0.9, attempt=2),
    event(StepSkipped("condition not met"), "alert", 0.95),
    event(RunFinished(RunStatus.FAILED), None, 1.0),
    event(StepCompensated("undo_fetch"), "fetch", 1.2),
    Event(StepStarted("x"), "other-run", step_id="x", attempt=1, ts=T0 + 0.05),
]


def record(
    step_id: str, status: StepStatus, start: float | None, end: float, **more: Any
) -> StepRecord:
    started = None if start is None else T0 + start
    return StepRecord(
        id=step_id, tool="t", status=status, started_at=started, finished_at=T0 + end, **more
    )


def test_bars_from_a_result_are_in_start_order_and_relative_to_the_first_moment() -> None:
    result = result_of(
        record("slow", StepStatus.SUCCEEDED, 1.0, 3.0, attempts=1),
        record("fast", StepStatus.FAILED, 0.5, 1.5, attempts=2),
        record("skipped", StepStatus.SKIPPED, None, 2.0),
        record("reused", StepStatus.SUCCEEDED, None, 0.5, reused=True),
    )
    bars = timeline_bars(result)
    assert [b.step_id for b in bars] == ["fast", "reused", "slow", "skipped"]
    by_id = {b.step_id: b for b in bars}
    assert by_id["fast"].spans == [Span(0.0, 1.0, StepStatus.FAILED)]
    assert by_id["slow"].spans == [Span(0.5, 2.5, StepStatus.SUCCEEDED)]
    assert (by_id["skipped"].spans, by_id["skipped"].at) == ([], 1.5)
    assert (by_id["reused"].spans, by_id["reused"].at, by_id["reused"].reused) == ([], 0.0, True)


def test_events_give_a_span_per_attempt_and_the_moments_steps_were_settled_or_undone() -> None:
    bars = {b.step_id: b for b in timeline_bars(EVENTS)}
    assert set(bars) == {"fetch", "alert", "cached"}  # the other run is left out
    fetch = bars["fetch"]
    assert [(round(s.start, 6), round(s.end, 6), s.status) for s in fetch.spans] == [
        (0.1, 0.3, StepStatus.FAILED),
        (0.5, 0.9, StepStatus.SUCCEEDED),
    ]
    assert (fetch.attempts, fetch.status) == (2, StepStatus.COMPENSATED)
    assert fetch.compensated_at == pytest.approx(1.2)
    # Steps that never started still get their tool, from the plan in run_started.
    assert (bars["alert"].tool, bars["alert"].status) == ("send_alert", StepStatus.SKIPPED)
    assert bars["alert"].at == pytest.approx(0.95)
    assert (bars["cached"].reused, bars["cached"].at) == (True, 0.0)


def test_run_id_picks_one_run_out_of_mixed_events() -> None:
    bars = timeline_bars(EVENTS, run_id="other-run")
    assert [(b.step_id, b.status) for b in bars] == [("x", StepStatus.RUNNING)]
    assert bars[0].spans[0].status is StepStatus.RUNNING  # started, never seen to end


def test_a_run_drawn_from_its_result_shows_parallel_steps_overlapping() -> None:
    both_running = asyncio.Barrier(2)  # each step returns only once the other one is running

    @tool(side_effects=False)
    async def meet(name: str) -> str:
        """Return once the other branch is running too."""
        await both_running.wait()
        return name

    @tool(side_effects=False)
    def join(left: str, right: str) -> str:
        """Join both branches."""
        return left + right

    plan = Plan.model_validate(
        {
            "steps": [
                {"id": "left", "tool": "meet", "args": {"name": "l"}},
                {"id": "right", "tool": "meet", "args": {"name": "r"}},
                {"id": "both", "tool": "join", "args": {"left": "$left", "right": "$right"}},
            ]
        }
    )
    bus = EventBus()
    monitor = Monitor(bus)
    result = run_plan(plan, ToolRegistry([meet, join]), bus=bus)
    assert result.ok, result.error

    ax = gantt(result, ax=axes())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels[:2]) == ["left  (meet)", "right  (meet)"]
    assert labels[2] == "both  (join)"
    drawn = dict(zip(labels, bars_drawn(ax), strict=True))
    left, right, both = drawn["left  (meet)"], drawn["right  (meet)"], drawn["both  (join)"]
    assert left.get_x() < right.get_x() + right.get_width()
    assert right.get_x() < left.get_x() + left.get_width()
    assert both.get_x() >= max(left.get_x() + left.get_width(), right.get_x() + right.get_width())
    # The monitor's rows tell the same story.
    assert [b.step_id for b in timeline_bars(monitor)] == [b.step_id for b in timeline_bars(result)]


def test_gantt_colours_attempts_by_how_they_ended_and_hatches_failed_ones() -> None:
    ax = gantt(EVENTS, ax=axes())
    rectangles = bars_drawn(ax)
    assert len(rectangles) == 2  # the two attempts of fetch; the other steps are markers
    failed, succeeded = sorted(rectangles, key=lambda r: r.get_x())
    assert to_hex(failed.get_facecolor()) == fill_of(StepStatus.FAILED)
    assert failed.get_hatch() == "///"
    # fetch was compensated afterwards: its successful attempt shows it.
    assert to_hex(succeeded.get_facecolor()) == fill_of(StepStatus.COMPENSATED)
    assert succeeded.get_hatch() is None
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "failed",
        "compensated",
        "reused, not run again",
        "skipped",
        "compensation ran",
    ]


def test_gantt_without_axes_draws_a_new_figure() -> None:
    ax = gantt(EVENTS)
    try:
        assert ax.get_title(loc="left") == "3 steps · 1.20s"
        assert len(ax.get_yticklabels()) == 3
    finally:
        plt.close(ax.figure)


def test_a_source_that_is_not_a_run_is_refused_with_what_to_pass() -> None:
    with pytest.raises(ConfigError, match="pass a RunResult, a Monitor"):
        timeline_bars(["not", "events"])
    with pytest.raises(ConfigError, match="pass a RunResult"):
        timeline_bars(42)


def test_without_matplotlib_drawing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ConfigError, match=r"pip install 'tooldag\[notebooks\]'"):
        gantt(EVENTS)
    with pytest.raises(ConfigError, match=r"pip install 'tooldag\[notebooks\]'"):
        plot_dag(Plan.model_validate({"steps": [{"id": "a", "tool": "t"}]}))
    assert timeline_bars(EVENTS)  # the data behind the chart needs no matplotlib


PIPELINE = Plan.model_validate(
    {
        "goal": "a small pipeline",
        "steps": [
            {"id": "fetch", "tool": "fetch", "args": {}},
            {"id": "clean", "tool": "clean", "args": {"data": "$fetch"}},
            {"id": "audit", "tool": "audit", "args": {}},
            {"id": "report", "tool": "report", "args": {"rows": "$clean"}, "depends_on": ["audit"]},
            {
                "id": "alert",
                "tool": "alert",
                "args": {"text": "${report}"},
                "when": {"ref": "$clean.bad", "op": ">", "value": 0},
            },
        ],
    }
)


def test_plot_dag_puts_each_step_right_of_the_steps_it_needs() -> None:
    ax = plot_dag(PIPELINE, {"fetch": "succeeded", "clean": StepStatus.FAILED}, ax=axes())
    x = {t.get_text(): t.get_position()[0] for t in ax.texts}
    for step in PIPELINE.steps:
        for dep in step.dependencies():
            assert x[step.id] > x[dep], (dep, step.id)
    assert x["fetch"] == x["audit"]  # both start the plan: the same column
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == sum(len(s.dependencies()) for s in PIPELINE.steps)
    # An ordering-only edge (report waits for audit) is dotted; data edges are solid.
    assert sorted(a.get_linestyle() for a in arrows).count(":") == 1
    # Boxes are coloured by status; a step without one stays white.
    centre = {
        (round(t.get_position()[0], 6), round(t.get_position()[1] - 0.1, 6)): t.get_text()
        for t in ax.texts
    }
    fills = {
        centre[
            (round(b.get_x() + b.get_width() / 2, 6), round(b.get_y() + b.get_height() / 2, 6))
        ]: to_hex(b.get_facecolor())
        for b in ax.patches
        if isinstance(b, FancyBboxPatch)
    }
    assert fills["fetch"] == fill_of(StepStatus.SUCCEEDED)
    assert fills["clean"] == fill_of(StepStatus.FAILED)
    assert fills["audit"] == "#ffffff"
    # A conditional step has a dashed border.
    dashed = [b for b in ax.patches if isinstance(b, FancyBboxPatch) and b.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert ax.get_title(loc="left") == "a small pipeline"


def test_plot_dag_refuses_a_cycle_and_names_it() -> None:
    cyclic = Plan.model_validate(
        {
            "steps": [
                {"id": "a", "tool": "t", "args": {"x": "$b"}},
                {"id": "b", "tool": "t", "args": {"x": "$a"}},
            ]
        }
    )
    with pytest.raises(PlanInvalidError, match=r"cycle \((a -> b -> a|b -> a -> b)\)"):
        plot_dag(cyclic, ax=axes())
