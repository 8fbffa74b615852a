"""The threads that run sync tools: a pool whose threads never hold up the process's exit.

A sync tool that timed out or was cancelled cannot be stopped (Python cannot kill a thread), so
it is left running and its result discarded. :class:`concurrent.futures.ThreadPoolExecutor` joins
its threads when the interpreter exits, so one tool stuck for ever (a read of a FIFO, a call with
no timeout of its own) would keep ``tooldag exec`` from exiting after its run ended. These
threads are daemon threads: the process exits when its work is done, and a tool still stuck then
is abandoned with it. A tool that must not be cut off mid-write should take a timeout of its own.

Scheduling is :class:`~concurrent.futures.ThreadPoolExecutor`'s: a call goes to an idle thread
if there is one, else to a new thread up to ``max_workers``, else waits its turn.
"""

from __future__ import annotations

import concurrent.futures
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["DaemonThreadPool"]

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple["concurrent.futures.Future[Any]", Callable[[], Any]]


class DaemonThreadPool(concurrent.futures.Executor):
    """A thread pool (for ``loop.run_in_executor``) of up to ``max_workers`` daemon threads."""

    def __init__(self, max_workers: int, *, name: str = "tooldag-tool") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut = False

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot run a tool on a thread pool that was shut down")
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            # An idle thread takes it; otherwise start one, if the limit allows.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, call  # let the result go before waiting for more work
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; threads end once they finish what they run (``wait`` waits)."""
        with self._lock:
            self._shut = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
