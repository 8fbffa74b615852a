"""Run a coroutine to completion from sync code, whether or not an event loop is already running.

Jupyter runs cells inside a live loop, where ``asyncio.run`` raises. There the coroutine runs on a
fresh loop in a worker thread and the caller blocks on it: the notebook's own loop is never
re-entered (no nest_asyncio monkey-patching).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["in_running_loop", "run_sync"]

T = TypeVar("T")


def in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, also from inside a running loop (then on a helper thread)."""
    if not in_running_loop():
        return asyncio.run(coro)
    ctx = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tooldag-sync") as pool:
        return pool.submit(ctx.run, asyncio.run, coro).result()
