"""Many runs at once: a pool of worker processes that share one run store.

:meth:`RunPool.submit` stores a plan as a new run, ``pending`` and queued (it returns at once with
the run id); each worker process takes the oldest queued run nobody runs
(:meth:`~tooldag.durable.store.RunStore.claim_next`, atomic: each run is owned by one worker at a
time), runs it as a :class:`~tooldag.durable.runner.DurableExecutor` would resume it, and takes
the next. The store is the only channel: results are read from it (:meth:`RunPool.wait`), and
another process, or another host with a PostgreSQL store, sees the runs as they go. A worker that
dies leaves its run interrupted (at once with SQLite; when its lease runs out with PostgreSQL),
and another worker of a pool on that store resumes it, reusing its completed steps.

Workers are started with ``spawn``: they load the tools from ``tools`` (``--tools`` specs: a
module, a ``.py`` file, a pack name; default the built-in packs) and open the store themselves.
``dask`` gives them a Dask runner: ``local[:N]`` starts one cluster in this process for all of
them, an address is shared as it is.

>>> with RunPool("runs.sqlite3", tools=["my_tools.py"], workers=4) as pool:   # doctest: +SKIP
...     ids = [pool.submit(plan) for plan in plans]
...     results = pool.wait(ids)                 # {run id: RunResult}
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._sync import run_sync
from ..errors import ConfigError, RunStateError
from ..plan.model import Plan
from ..result import RunResult, RunStatus, new_run_id
from .runner import DurableExecutor
from .store import RunStore, is_database_url

if TYPE_CHECKING:
    import multiprocessing.synchronize

__all__ = ["RunPool"]

log = logging.getLogger("tooldag.pool")

# A run in one of these may still change: it waits for a worker, runs, or waits for a resume.
_UNSETTLED = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.INTERRUPTED})


class RunPool:
    """Worker processes that run the plans submitted here, sharing the store at ``store`` (a
    file or a ``postgresql://`` URL). ``executor_options`` (``max_concurrency``, ``fail_fast``,
    ``default_timeout``...) go to each worker's executor; ``poll`` is how often an idle worker
    looks for queued runs, and :meth:`wait` for finished ones, in seconds.
    """

    def __init__(
        self,
        store: str | os.PathLike[str],
        *,
        tools: Sequence[str] | None = None,
        workers: int = 2,
        dask: str | None = None,
        poll: float = 0.05,
        **executor_options: Any,
    ) -> None:
        if str(store) == ":memory:":
            raise ConfigError(
                "a pool's workers share its store: give a file or a postgresql:// URL, not "
                "':memory:'"
            )
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a whole number >= 1, not {workers!r}")
        self.store_path = str(store) if is_database_url(str(store)) else str(Path(store))
        self.tools = list(tools) if tools is not None else None
        self.workers = workers
        self.poll = poll
        self.executor_options = dict(executor_options)
        self.store = RunStore(self.store_path)
        self._dask = None
        address = dask
        if dask is not None and (dask == "local" or dask.startswith("local:")):
            from ..execution.dask_runner import DaskRunner

            self._dask = DaskRunner(dask)  # one cluster for every worker
            address = self._dask.address
        import multiprocessing  # only for a pool: `import tooldag` stays quick

        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._cancel = self._context.Event()
        self._ready: Any = self._context.Queue()
        args = (
            self.store_path,
            self.tools,
            self.executor_options,
            address,
            poll,
            self._stop,
            self._cancel,
            self._ready,
        )
        self._procs = [
            self._context.Process(target=_serve, args=args, name=f"tooldag-worker-{i}")
            for i in range(workers)
        ]
        try:
            for proc in self._procs:
                proc.start()
            self._await_ready()
        except BaseException:
            self.close(cancel=True)
            raise

    def _await_ready(self) -> None:
        for _ in self._procs:
            try:
                kind, message = self._ready.get(timeout=120)
            except queue.Empty:
                raise ConfigError("the pool's workers did not start within 120 s") from None
            if kind != "ready":
                raise ConfigError(f"a pool worker could not start: {message}")

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [p.pid for p in self._procs if p.pid is not None]

    def __enter__(self) -> RunPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)

    # -- runs
    def submit(self, plan: Plan, run_id: str | None = None) -> str:
        """Queue ``plan`` as a new run (``run_id``, default a fresh id) and return its id."""
        run_id = run_id or new_run_id()
        self.store.enqueue(run_id, plan)
        return run_id

    def wait(self, run_ids: Iterable[str], *, timeout: float | None = None) -> dict[str, RunResult]:
        """Wait until every run of ``run_ids`` has ended, and return them as the store has
        them. Raises :class:`RunStateError` if the workers all died, TimeoutError after
        ``timeout`` seconds."""
        waiting = list(dict.fromkeys(run_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            infos = {run_id: self.store.get_run(run_id) for run_id in waiting}
            unknown = [r for r, info in infos.items() if info is None]
            if unknown:
                raise RunStateError(f"no run {unknown[0]!r} in {self.store.path}")
            if all(info.status not in _UNSETTLED for info in infos.values() if info):
                return {run_id: self.store.load_result(run_id) for run_id in waiting}
            if not any(p.is_alive() for p in self._procs):
                codes = ", ".join(str(p.exitcode) for p in self._procs)
                raise RunStateError(
                    f"every worker of the pool has exited (exit codes {codes}) with runs still "
                    "to do; `tooldag runs list` shows them, `tooldag runs resume ID` continues one"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the runs did not all end within {timeout:g}s")
            time.sleep(self.poll)

    def run(self, plans: Iterable[Plan]) -> list[RunResult]:
        """Submit ``plans``, wait for all of them, and return their results in order."""
        ids = [self.submit(plan) for plan in plans]
        results = self.wait(ids)
        return [results[run_id] for run_id in ids]

    def cancel(self) -> None:
        """Cancel the runs the workers are running (compensated, as a cancel of a journalled
        run is), and stop them taking more."""
        self._cancel.set()
        self._stop.set()

    def close(self, *, cancel: bool = False, timeout: float = 60.0) -> None:
        """Stop the workers once their current runs end (``cancel``: cancel those first); runs
        still queued stay queued in the store, for the next pool on it."""
        if cancel:
            self._cancel.set()
        self._stop.set()
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            if proc.pid is None:
                continue
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("pool worker %s did not stop within %gs: killing it", proc.pid, timeout)
                proc.kill()
                proc.join()
        if self._dask is not None:
            self._dask.close()
            self._dask = None
        self.store.close()


def _serve(
    store_path: str,
    tools: list[str] | None,
    options: Mapping[str, Any],
    dask: str | None,
    poll: float,
    stop: multiprocessing.synchronize.Event,
    cancel: multiprocessing.synchronize.Event,
    ready: Any,
) -> None:
    """A worker process: take queued runs from the store and run them, one at a time."""
    # Ctrl-C in a terminal reaches the whole process group: the pool's driver decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from ..registry.loading import load_registry

        registry = load_registry(tools)
        runner = None
        if dask is not None:
            from ..execution.dask_runner import DaskRunner

            runner = DaskRunner(dask)
        store = RunStore(store_path)
        durable = DurableExecutor(registry, store=store, runner=runner, **options)
    except Exception as exc:
        ready.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    ready.put(("ready", os.getpid()))
    try:
        while not stop.is_set():
            info = store.claim_next()
            if info is None:
                stop.wait(poll)
                continue
            try:
                run_sync(_run_one(durable, info.id, cancel, poll))
            except Exception:  # the run is journalled as it ended; the worker goes on
                log.exception("run %s ended with an error", info.id)
    finally:
        durable.close()
        if runner is not None:
            runner.close()
        store.close()


async def _run_one(
    durable: DurableExecutor, run_id: str, cancel: multiprocessing.synchronize.Event, poll: float
) -> RunResult:
    work = asyncio.ensure_future(durable.acontinue(run_id))
    cancelling = False
    while not work.done():
        await asyncio.wait({work}, timeout=poll)
        if cancel.is_set() and not cancelling and durable._active(run_id) is not None:
            cancelling = True
            await durable.acancel_workflow(run_id)
    return work.result()
