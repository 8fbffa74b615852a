"""How an evaluation reads: a table of goals, a table of figures, and two results side by side.

>>> print_report(Console(), result)                          # doctest: +SKIP
>>> Console().print(compare_table(before, after))             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .metrics import Counts
from .outcome import EvalResult, GoalOutcome, Rate, Summary

__all__ = ["changed_goals", "compare_table", "goals_table", "print_report", "summary_table"]

_STATUS_STYLE = {
    "succeeded": "green",
    "planned": "green",
    "failed": "red",
    "no_plan": "red",
    "error": "red",
    "timeout": "dark_orange",
    "refused": "dark_orange",
}


def _f1(counts: Counts | None) -> str:
    value = counts.f1 if counts is not None else None
    return "-" if value is None else f"{value:.2f}"


def _rate(rate: Rate) -> str:
    if rate.value is None:
        return "-"
    return f"{rate.count}/{rate.total} ({rate.value:.0%})"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _short_seconds(value: float) -> str:
    return f"{value:.2f}s" if value < 10 else f"{value:.0f}s"


def _valid(o: GoalOutcome) -> Text:
    if o.valid_first:
        return Text("✓", style="green")
    if o.valid:
        return Text(f"✓+{o.reasks}", style="yellow")  # valid after that many re-asks
    return Text("✗", style="red")


def _answer(o: GoalOutcome) -> Text:
    if o.answer_correct is None:
        return Text("-", style="dim")
    return Text("✓", style="green") if o.answer_correct else Text("✗", style="red")


def goals_table(result: EvalResult) -> Table:
    """One row a goal: status, valid plan, answer, F1s, LLM calls, tokens, time."""
    table = Table(
        box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, title="goals", title_justify="left"
    )
    # Short headers: the table fits 80 columns (node and edge are F1, calls are LLM calls).
    table.add_column("goal", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("plan", no_wrap=True)
    table.add_column("answer", justify="center")
    for name in ("node", "edge", "calls", "tokens", "time"):
        table.add_column(name, justify="right")
    for o in result.outcomes:
        table.add_row(
            o.id,
            Text(o.status, style=_STATUS_STYLE.get(o.status, "")),
            _valid(o),
            _answer(o),
            _f1(o.node),
            _f1(o.edge),
            str(o.llm_calls),
            f"{o.tokens:,}",
            _short_seconds(o.latency),
        )
    return table


@dataclass(frozen=True)
class _Figure:
    label: str
    show: Callable[[Summary], str]
    score: Callable[[Summary], float | None]
    """The comparable value (None when there is none); higher is better unless ``lower``."""
    lower: bool = False


_FIGURES = (
    _Figure("goals", lambda s: str(s.goals), lambda s: float(s.goals)),
    _Figure(
        "valid on the first try", lambda s: _rate(s.valid_first), lambda s: s.valid_first.value
    ),
    _Figure("valid after re-asks", lambda s: _rate(s.valid), lambda s: s.valid.value),
    _Figure("succeeded", lambda s: _rate(s.succeeded), lambda s: s.succeeded.value),
    _Figure("answer correct", lambda s: _rate(s.answer_correct), lambda s: s.answer_correct.value),
    _Figure("node F1", lambda s: _f1(s.node), lambda s: s.node.f1),
    _Figure("edge F1", lambda s: _f1(s.edge), lambda s: s.edge.f1),
    _Figure("argument F1", lambda s: _f1(s.args), lambda s: s.args.f1),
    _Figure("re-asks", lambda s: str(s.reasks), lambda s: float(s.reasks), lower=True),
    _Figure("replans", lambda s: str(s.replans), lambda s: float(s.replans), lower=True),
    _Figure("LLM calls per goal", lambda s: _number(s.llm_calls, 2), lambda s: s.llm_calls, True),
    _Figure("tokens per goal", lambda s: _number(s.tokens, 0), lambda s: s.tokens, lower=True),
    _Figure("latency p50", lambda s: _seconds(s.latency_p50), lambda s: s.latency_p50, True),
    _Figure("latency p95", lambda s: _seconds(s.latency_p95), lambda s: s.latency_p95, True),
)


def _title(result: EvalResult, keys: tuple[str, ...] = ("model", "base_url", "set")) -> str:
    meta = result.meta
    parts = [str(meta[k]) for k in keys if meta.get(k)]
    return " · ".join(parts) or "evaluation"


def summary_table(result: EvalResult) -> Table:
    """The figures over all goals (see :mod:`tooldag.evaluation.outcome`)."""
    summary = result.summary
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for figure in _FIGURES:
        table.add_row(figure.label, figure.show(summary))
    return table


def print_report(console: Console, result: EvalResult, *, goals: bool = True) -> None:
    """The goals table (unless ``goals`` is false), what went wrong, and the figures."""
    parts: list[RenderableType] = []
    if goals:
        parts.append(goals_table(result))
        problems = [o for o in result.outcomes if o.error and o.status not in ("succeeded",)]
        for o in problems:
            parts.append(Text(f"{o.id}: {o.status}: {o.error}", style="dim", overflow="fold"))
        if problems:
            parts.append(Text(""))
    parts.append(Text(_title(result), style="bold", overflow="fold"))
    parts.append(summary_table(result))
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(result.summary.statuses.items()))
    took = result.meta.get("duration")
    note = statuses + (f" · {took:.1f}s in all" if isinstance(took, int | float) else "")
    parts.append(Text(note, style="dim"))
    console.print(Group(*parts))


def _delta(figure: _Figure, a: Summary, b: Summary) -> Text:
    x, y = figure.score(a), figure.score(b)
    if x is None or y is None or x == y:
        return Text("")
    better = (y < x) if figure.lower else (y > x)
    diff = y - x
    if figure.label.startswith(("valid", "succeeded", "answer")):
        shown = f"{diff * 100:+.0f} pts"
    elif "F1" in figure.label:
        shown = f"{diff:+.2f}"
    elif "latency" in figure.label:
        shown = f"{diff:+.2f}s"
    elif abs(diff) >= 10:
        shown = f"{diff:+,.0f}"
    else:
        shown = f"{diff:+,.2f}".rstrip("0").rstrip(".")
    return Text(shown, style="green" if better else "red")


def compare_table(a: EvalResult, b: EvalResult, names: tuple[str, str] = ("A", "B")) -> Table:
    """The figures of two results side by side, with B - A (green where B is better)."""
    sa, sb = a.summary, b.summary
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("figure")
    # The endpoint's URL would crowd the header: the file name, the model and the goal set.
    for name, result in zip(names, (a, b), strict=True):
        table.add_column(f"{name}\n{_title(result, ('model', 'set'))}", justify="right")
    table.add_column("B - A", justify="right")
    for figure in _FIGURES:
        table.add_row(figure.label, figure.show(sa), figure.show(sb), _delta(figure, sa, sb))
    return table


def _passed(o: GoalOutcome) -> bool:
    if o.answer_correct is not None:
        return o.answer_correct
    return o.status in ("succeeded", "planned")


def changed_goals(a: EvalResult, b: EvalResult) -> list[tuple[str, bool, bool]]:
    """Goals of both results that passed in one and not the other: ``(id, in A, in B)``.

    A goal passes when its answer is right (or, with no expected answer, when it succeeded or
    got a valid plan).
    """
    before = {o.id: o for o in a.outcomes}
    out = []
    for o in b.outcomes:
        old = before.get(o.id)
        if old is not None and _passed(old) != _passed(o):
            out.append((o.id, _passed(old), _passed(o)))
    return out
