"""The pool that runs sync tools: ThreadPoolExecutor's scheduling, with daemon threads."""

from __future__ import annotations

import threading

import pytest

from tooldag.execution.runners import DaemonThreadPool


def test_calls_run_side_by_side_up_to_max_workers_on_daemon_threads() -> None:
    pool = DaemonThreadPool(3)
    barrier = threading.Barrier(3, timeout=10)  # breaks unless all three run at once
    futures = [pool.submit(lambda: (barrier.wait(), threading.current_thread())) for _ in range(3)]
    threads = [f.result(timeout=10)[1] for f in futures]
    assert len(set(threads)) == 3 and all(t.daemon for t in threads)
    pool.shutdown()


def test_an_idle_thread_is_reused_rather_than_a_new_one_started() -> None:
    pool = DaemonThreadPool(4)
    first = pool.submit(threading.current_thread).result(timeout=10)
    second = pool.submit(threading.current_thread).result(timeout=10)
    assert first is second
    pool.shutdown()


def test_results_and_exceptions_come_back_through_the_future() -> None:
    pool = DaemonThreadPool(1)
    assert pool.submit(pow, 2, 10).result(timeout=10) == 1024
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=10)
    pool.shutdown()


def test_shutdown_cancels_what_waits_and_refuses_new_work() -> None:
    pool = DaemonThreadPool(1)
    release = threading.Event()
    running = pool.submit(release.wait)
    waiting = pool.submit(lambda: "never run")
    pool.shutdown(wait=False, cancel_futures=True)
    assert waiting.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)
    release.set()
    assert running.result(timeout=10) is True
