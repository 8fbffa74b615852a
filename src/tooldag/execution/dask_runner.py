"""Steps on a Dask cluster: a :class:`~tooldag.execution.runners.StepRunner` over ``distributed``.

``Executor(registry, runner=DaskRunner(where))`` sends tool calls to Dask workers, where ``where``
is a :class:`distributed.Client`, a scheduler address (``tcp://host:8786``), or ``local`` /
``local:N``: a :class:`distributed.LocalCluster` of N single-threaded worker processes (default:
one per CPU) that the runner starts and stops. Needs ``tooldag[dask]``; the workers need tooldag
and the tools' own imports installed (a ``--tools path.py`` file is sent to them by value).

What stays in the driver: the scheduler of the plan, the journal, the events, timeouts, retries and
compensation. So:

- Each attempt is its own Dask task, ``pure=False`` with ``retries=0``, under a key unique per
  (run, step, attempt) (``<tool>-<run>-<step>-<attempt>-<nonce>``; the nonce keeps a resumed
  run's first attempt from meeting a task of the driver that died). Retries are tooldag's: the
  tool's retry policy decides whether a failure is tried again.
- A step's timeout counts from submission: time queued on the cluster is part of it.
- Cancellation is cooperative: a timed-out or cancelled step cancels its future, which stops it if
  it has not started; **Dask cannot interrupt a running task**, which runs to its end on its
  worker, its result discarded.
- A worker that dies during a step (``KilledWorker``, a lost connection) is a transient failure of
  that attempt. For a cluster this runner starts, Dask's own rescheduling of a dead worker's
  tasks is off (``distributed.scheduler.allowed-failures: 0``), so that tooldag alone retries;
  set it on a cluster of your own for the same behaviour.
- An output is turned into JSON on the worker, and refused there, with a clear error, when it is
  larger than the journal's cap (the executor's ``max_output_bytes``, or ``max_result_bytes`` if
  smaller): it never crosses the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pickle
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PermanentToolError, ToolError, TransientToolError
from ..registry.loading import USER_MODULE_PREFIX
from .invoke import normalise_output
from .runners import StepRunner, ToolCall

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

__all__ = ["DaskRunner", "parse_dask_spec"]


def parse_dask_spec(spec: str) -> tuple[str, int | None]:
    """``("local", N or None)`` for ``local`` / ``local:N``, else ``("address", None)`` for a
    scheduler address; ConfigError for anything else (what ``--dask`` takes)."""
    text = spec.strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if not count:
            return "local", None
        if count.isdigit() and int(count) >= 1:
            return "local", int(count)
        raise ConfigError(f"--dask {spec!r}: local:N takes a whole number of workers >= 1")
    if "://" in text:
        return "address", None
    raise ConfigError(
        f"--dask {spec!r}: give a scheduler address (tcp://HOST:PORT) or local[:N] (a cluster of "
        "N worker processes on this machine)"
    )


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to reach the driver as itself), else a ToolError that says
    what it was: a failure must come back as a failure, not as a serialisation error."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        transient = isinstance(exc, ToolError) and exc.transient
        return ToolError(f"{type(exc).__name__}: {exc}", transient=transient)
    return exc


async def _awaited(value: Any) -> Any:
    return await value


def _remote_call(function: bytes, kwargs: bytes, tool: str, max_bytes: int) -> Any:
    """What a Dask worker runs: the tool (an async one in an event loop of its own), its output
    as JSON data, refused here when larger than ``max_bytes``."""
    import cloudpickle

    try:
        out = cloudpickle.loads(function)(**cloudpickle.loads(kwargs))
        if inspect.isawaitable(out):
            out = asyncio.run(_awaited(out))
    except Exception as exc:
        raise _portable(exc) from None
    try:
        return normalise_output(out, tool=tool, max_bytes=max_bytes)
    except PermanentToolError as exc:
        raise PermanentToolError(f"{exc} (refused on the Dask worker: it was not sent)") from None


def _settle(waiter: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if waiter.done():  # the step was cancelled or timed out meanwhile
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(value)


class DaskRunner(StepRunner["Future[Any]"]):
    """Runs tool calls on a Dask cluster (see the module docstring). Use it as a context manager,
    or call :meth:`close`: it stops the client and the cluster it started (not a client given)."""

    name = "dask"

    def __init__(self, where: Client | str = "local", *, max_result_bytes: int | None = None):
        try:
            import distributed
        except ImportError as exc:
            raise ConfigError(
                f"the Dask runner needs distributed ({exc}): pip install 'tooldag[dask]'"
            ) from None
        if max_result_bytes is not None and max_result_bytes < 1:
            raise ConfigError(f"max_result_bytes must be positive, not {max_result_bytes!r}")
        self.max_result_bytes = max_result_bytes
        self._cluster: LocalCluster | None = None
        self._owns_client = not isinstance(where, distributed.Client)
        self._functions: dict[int, tuple[Callable[..., Any], bytes]] = {}
        self._lock = threading.Lock()
        if isinstance(where, distributed.Client):
            self.client = where
        else:
            kind, workers = parse_dask_spec(where)
            if kind == "local":
                self._cluster = self._local_cluster(workers)
                self.client = distributed.Client(self._cluster, set_as_default=False)
            else:
                try:
                    self.client = distributed.Client(where, set_as_default=False, timeout=30)
                except (OSError, TimeoutError) as exc:
                    raise ConfigError(
                        f"cannot reach the Dask scheduler at {where}: {exc}; start one "
                        "(dask scheduler) or use --dask local"
                    ) from None

    @staticmethod
    def _local_cluster(workers: int | None) -> LocalCluster:
        import dask
        import distributed

        # One single-threaded process per CPU: what beats the GIL for CPU-bound pure Python.
        # allowed-failures 0: a task whose worker dies errs at once (KilledWorker) instead of
        # being run again by Dask; whether to retry it is tooldag's to decide.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            return distributed.LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: two clusters on one machine coexist
            )

    @property
    def address(self) -> str:
        """The scheduler's address: what other processes pass to reach the same cluster."""
        scheduler = self.client.scheduler
        return str(scheduler.address) if scheduler is not None else ""

    def __repr__(self) -> str:
        return f"<DaskRunner {self.address}>"

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None

    # -- the interface
    def _function(self, call: ToolCall) -> bytes:
        """The tool's function, pickled by value where the workers could not import it."""
        import cloudpickle

        func = call.tool.function
        assert func is not None  # the executor fails schema-only tools before they get here
        with self._lock:
            cached = self._functions.get(id(func))
            if cached is not None and cached[0] is func:
                return cached[1]
            module = sys.modules.get(getattr(func, "__module__", "") or "")
            if module is not None and module.__name__.startswith(USER_MODULE_PREFIX):
                # A --tools file: imported by path, under a name no worker can import.
                cloudpickle.register_pickle_by_value(module)
            payload: bytes = cloudpickle.dumps(func)
            self._functions[id(func)] = (func, payload)
            return payload

    def submit(self, call: ToolCall) -> Future[Any]:
        import cloudpickle

        cap = call.max_output_bytes
        if self.max_result_bytes is not None:
            cap = min(cap, self.max_result_bytes)
        return self.client.submit(
            _remote_call,
            self._function(call),
            cloudpickle.dumps(dict(call.kwargs)),
            call.tool.name,
            cap,
            key=f"{call.key}-{uuid.uuid4().hex[:8]}",
            pure=False,
            retries=0,
        )

    async def result(self, handle: Future[Any]) -> Any:
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        try:
            return await self._wait(handle)
        except (KilledWorker, CommClosedError, FutureCancelledError) as exc:
            # Not the tool's failure: its worker died, or the scheduler was lost.
            raise TransientToolError(
                f"the Dask worker running this step was lost ({type(exc).__name__}: {exc}); "
                "the attempt counts as a transient failure (retried if the tool's retry policy "
                "allows)"
            ) from None

    def _wait(self, handle: Future[Any]) -> Coroutine[Any, Any, Any]:
        if self.client.asynchronous:  # a client of this very loop
            return self._await(handle)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def done(future: Future[Any]) -> None:  # on a Dask callback thread
            try:
                value, error = future.result(), None
            except BaseException as exc:
                value, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, waiter, value, error)

        handle.add_done_callback(done)
        return self._await(waiter)

    @staticmethod
    async def _await(awaitable: Any) -> Any:
        return await awaitable

    def cancel(self, handle: Future[Any]) -> None:
        # Future.cancel waits for the scheduler: off the event loop, on a thread that does not
        # hold up the exit of the process.
        threading.Thread(target=handle.cancel, name="tooldag-dask-cancel", daemon=True).start()
