"""Execution: run a plan's steps the moment their inputs exist, in parallel, as events.

:mod:`~tooldag.execution.executor` is the entry (:class:`Executor`, :func:`run_plan`);
:mod:`~tooldag.execution.options` the settings every run shares (:class:`RunOptions`);
:mod:`~tooldag.execution.run` the ready/done state machine of one run;
:mod:`~tooldag.execution.invoke` calls a tool (threads, timeouts, retries);
:mod:`~tooldag.execution.gate` the hook asked about each step just before it runs
(:class:`Verdict`);
:mod:`~tooldag.execution.saga` the ledger its caller owns, which undoes what an abandoned run did
(:class:`Ledger`); :mod:`~tooldag.execution.scope` what a run's steps share (connections opened
on first use, closed with the run); and :mod:`~tooldag.execution.outcome` works out what a
finished run reports. Where a tool call runs is a step runner's business
(:mod:`~tooldag.execution.runners`: this process by default; :mod:`~tooldag.execution.dask_runner`:
a Dask cluster). Nothing here knows the LLM.
"""

from .dask_runner import DaskRunner
from .executor import Executor, RunHandle, run_plan
from .gate import Gate, Verdict, refused_steps
from .options import RunOptions
from .runners import LocalRunner, StepRunner, ToolCall
from .saga import CompensationFailure, CompensationReport, Ledger
from .scope import RunScope, current_scope, run_scope

__all__ = [
    "CompensationFailure",
    "CompensationReport",
    "DaskRunner",
    "Executor",
    "Gate",
    "Ledger",
    "LocalRunner",
    "RunHandle",
    "RunOptions",
    "RunScope",
    "StepRunner",
    "ToolCall",
    "Verdict",
    "current_scope",
    "refused_steps",
    "run_plan",
    "run_scope",
]
