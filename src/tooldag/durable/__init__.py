"""Durable runs: every step journalled in a run store, so a killed run resumes where it stopped.

:mod:`~tooldag.durable.store` is the store (:class:`RunStore`, a SQLite file or a PostgreSQL
database) and its read model (:class:`RunInfo`), :mod:`~tooldag.durable.journal` writes each
event's rows, :mod:`~tooldag.durable.runner` starts, resumes, pauses and cancels runs under run
ids (:class:`DurableExecutor`), and :mod:`~tooldag.durable.pool` runs many at once in worker
processes sharing a store (:class:`RunPool`). Underneath: the backends
(:mod:`~tooldag.durable._backend`, :mod:`~tooldag.durable._sqlite`,
:mod:`~tooldag.durable._postgres`), :mod:`~tooldag.durable._migrations` (the schema),
:mod:`~tooldag.durable._codec` (values as JSON) and :mod:`~tooldag.durable._liveness` (is a run's
owner process alive).
"""

from .pool import RunPool
from .runner import DurableExecutor, StatefulWorkflowExecutor, aresume, resume
from .store import RunInfo, RunStore, StoreWarning, default_store_path

__all__ = [
    "DurableExecutor",
    "RunInfo",
    "RunPool",
    "RunStore",
    "StatefulWorkflowExecutor",
    "StoreWarning",
    "aresume",
    "default_store_path",
    "resume",
]
