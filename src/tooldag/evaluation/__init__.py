"""Measuring an endpoint's planning on a goal set (``tooldag eval``): valid plans on the first try
and after re-asks, runs that succeed, right answers, node and edge F1 against gold plans
(TaskBench's definitions), LLM calls, tokens and latency per goal.

>>> from tooldag.evaluation import evaluate, load_goals          # doctest: +SKIP
>>> result = evaluate(load_goals(), llm="gpt-4o-mini")          # doctest: +SKIP
>>> result.summary.valid_first.value                           # doctest: +SKIP

:func:`load_goals` reads a goal file (JSONL; ``None``: the set shipped with tooldag, 45 goals
over the calc, time, text, data and files packs), also in NesTools' and NESTFUL's formats;
:func:`evaluate` runs it; :func:`~tooldag.evaluation.report.print_report` and
:func:`~tooldag.evaluation.report.compare_table` show results.
"""

from __future__ import annotations

from .answers import Expected, check_answer, numbers_in
from .goals import BUILTIN_SET, Goal, GoalRow, build_workspace, load_goals
from .metrics import Counts, percentile
from .outcome import EvalResult, GoalOutcome, Summary
from .runner import EvalOptions, aevaluate, evaluate, run_goal

__all__ = [
    "BUILTIN_SET",
    "Counts",
    "EvalOptions",
    "EvalResult",
    "Expected",
    "Goal",
    "GoalOutcome",
    "GoalRow",
    "Summary",
    "aevaluate",
    "build_workspace",
    "check_answer",
    "evaluate",
    "load_goals",
    "numbers_in",
    "percentile",
    "run_goal",
]
