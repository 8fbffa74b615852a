"""Execution: run a plan's steps the moment their inputs exist, in parallel, as events.

:mod:`~tooldag.execution.executor` is the entry (:class:`Executor`, :func:`run_plan`);
:mod:`~tooldag.execution.options` the settings every run shares (:class:`RunOptions`);
:mod:`~tooldag.execution.run` the ready/done state machine of one run;
:mod:`~tooldag.execution.invoke` calls a tool (threads, timeouts, retries);
:mod:`~tooldag.execution.saga` the ledger its caller owns, which undoes what an abandoned run did
(:class:`Ledger`); and :mod:`~tooldag.execution.outcome` works out what a finished run reports.
Where a tool call runs is a step runner's business (:mod:`~tooldag.execution.runners`: this
process by default; :mod:`~tooldag.execution.dask_runner`: a Dask cluster). Nothing here knows
the LLM.
"""

from .dask_runner import DaskRunner
from .executor import Executor, RunHandle, run_plan
from .options import RunOptions
from .runners import LocalRunner, StepRunner, ToolCall
from .saga import CompensationFailure, CompensationReport, Ledger

__all__ = [
    "CompensationFailure",
    "CompensationReport",
    "DaskRunner",
    "Executor",
    "Ledger",
    "LocalRunner",
    "RunHandle",
    "RunOptions",
    "StepRunner",
    "ToolCall",
    "run_plan",
]
