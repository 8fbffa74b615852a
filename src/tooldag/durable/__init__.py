"""Durable runs: every step journalled in a run store, so a killed run resumes where it stopped.

:mod:`~tooldag.durable.store` is the SQLite store (:class:`RunStore`) and its read model
(:class:`RunInfo`), :mod:`~tooldag.durable.journal` writes each event's rows, and
:mod:`~tooldag.durable.runner` starts, resumes, pauses and cancels runs under run ids
(:class:`DurableExecutor`). Underneath: :mod:`~tooldag.durable._migrations` (the schema),
:mod:`~tooldag.durable._codec` (values as JSON) and :mod:`~tooldag.durable._liveness` (is a run's
owner process alive).
"""

from .runner import DurableExecutor, StatefulWorkflowExecutor, aresume, resume
from .store import RunInfo, RunStore, StoreWarning, default_store_path

__all__ = [
    "DurableExecutor",
    "RunInfo",
    "RunStore",
    "StatefulWorkflowExecutor",
    "StoreWarning",
    "aresume",
    "default_store_path",
    "resume",
]
