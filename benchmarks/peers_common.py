"""What both sides of ``benchmarks/peers.py`` measure with: the standard library only, so that
tooldag's process and LangGraph's throw-away venv import the very same code."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Wall time by default; ``--cpu`` times the no-op overhead in this process's CPU time, which other
# processes on a busy machine disturb far less (a list, so that the sides can set it).
CLOCK: list[Callable[[], float]] = [time.perf_counter]


async def bare_tasks(n: int) -> float:
    """The floor: ``n`` no-op coroutines, each awaited in a task of its own, one after another
    (as in benchmarks/executor.py); seconds for all of them."""

    async def nothing(x: Any = None) -> None:
        return None

    gc.collect()
    start = CLOCK[0]()
    for i in range(n):
        await asyncio.create_task(nothing(i))
    return CLOCK[0]() - start


async def floor(n: int, repeats: int) -> float:
    """Seconds per bare task, the best of ``repeats``."""
    return min([await bare_tasks(n) for _ in range(repeats)]) / n


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    gc.collect()  # do not bill this run for the garbage of the previous one
    start = CLOCK[0]()
    await call()
    return CLOCK[0]() - start


async def best_of(tries: int, once: Callable[[], Awaitable[float]], spend: float = 10.0) -> float:
    """The least of up to ``tries`` timings, no more tried once ``spend`` seconds are spent."""
    walls: list[float] = []
    while len(walls) < tries and sum(walls) < spend:
        walls.append(await once())
    return min(walls)


def checkpointed_size(path: Path) -> int:
    """The database's bytes after a WAL checkpoint (the main file only)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return os.path.getsize(path)
