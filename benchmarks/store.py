"""Run store benchmarks: the cost of journalling every step, and the store's size (prints figures).

    .venv/bin/python benchmarks/store.py [--steps 10000] [--repeat 3] [--full-steps 1000]

1. 10,000 async no-op steps (a fan-out: one root, every other step reads it) run by the executor
   in memory, then again with a RunStore attached (a fresh file in a temp dir; WAL,
   ``synchronous=NORMAL``; the step events of one loop turn share a commit): wall time per step,
   best of ``--repeat``.
   Goal (issue 14): <= 150 us per step with the journal on. The journal's own share is the
   difference. The same with ``synchronous=FULL`` (an fsync per commit) on fewer steps, for scale.
2. ``RunStore.record`` alone on synthetic events (start + success per step): the store's raw cost.
3. Store size per 1,000 steps after a WAL checkpoint, for no-op steps (output ``null``) and for
   steps returning a small dict, plan included. Goal (issue 14): <= 250 KiB for no-op steps.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tooldag.durable.store import RunStore
from tooldag.events import Event, RunStarted, StepStarted, StepSucceeded
from tooldag.execution.executor import Executor
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool
from tooldag.result import new_run_id


@tool(side_effects=False)
async def noop(x: Any = None) -> None:
    """Do nothing."""
    return None


@tool(side_effects=False)
async def small(x: Any = None) -> dict[str, Any]:
    """Return a small record."""
    return {"id": 12345, "name": "a typical small result", "tags": ["a", "b"], "score": 0.75}


REGISTRY = ToolRegistry([noop, small])


def fan_out(n: int, tool_name: str = "noop") -> Plan:
    steps = [{"id": "s0", "tool": tool_name, "args": {}}]
    steps += [{"id": f"s{i}", "tool": tool_name, "args": {"x": "$s0"}} for i in range(1, n)]
    return Plan.model_validate({"goal": f"{n} no-op steps", "steps": steps})


def best(repeat: int, once: Callable[[], float]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        times.append(once())
    return min(times)


def run_once(plan: Plan, store_path: Path | None, synchronous: str = "NORMAL") -> float:
    executor = Executor(REGISTRY, max_concurrency=64)
    store = None
    if store_path is not None:
        store_path.unlink(missing_ok=True)
        store = RunStore(store_path, synchronous=synchronous)
        store.attach(executor.bus)
    start = time.perf_counter()
    # A real run id: its length counts, since it is in every row.
    result = asyncio.run(executor.run(plan, run_id=new_run_id()))
    took = time.perf_counter() - start
    assert result.ok, result.error
    if store is not None:
        store.close()
    return took


def record_only(n: int, path: Path) -> float:
    path.unlink(missing_ok=True)
    store = RunStore(path)
    plan = fan_out(n)
    store.record(Event(RunStarted(plan, plan.goal), "raw"))
    start = time.perf_counter()
    for i in range(n):
        sid = f"s{i}"
        store.record(Event(StepStarted("noop", {}), "raw", sid, 1))
        store.record(Event(StepSucceeded(None), "raw", sid, 1, 0.0))
    took = time.perf_counter() - start
    store.close()
    return took


def size_per_1000(n: int, path: Path, tool_name: str) -> float:
    run_once(fan_out(n, tool_name), path)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # count only the main file
    finally:
        db.close()
    return os.path.getsize(path) / (n / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-steps", type=int, default=1_000)
    args = parser.parse_args()
    n = args.steps
    plan = fan_out(n)
    us = 1e6 / n
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.sqlite3"
        bare = best(args.repeat, lambda: run_once(plan, None))
        journal = best(args.repeat, lambda: run_once(plan, db))
        full_plan = fan_out(args.full_steps)
        full = run_once(full_plan, db, synchronous="FULL") / args.full_steps * 1e6
        raw = best(args.repeat, lambda: record_only(n, db))
        size_null = size_per_1000(n, db, "noop")
        size_small = size_per_1000(n, db, "small")
    print(f"{n:,} no-op steps, fan-out, best of {args.repeat}")
    print(f"  executor in memory         {bare * us:7.1f} us/step")
    print(f"  executor + RunStore        {journal * us:7.1f} us/step   (goal <= 150)")
    print(f"  journal's share            {(journal - bare) * us:7.1f} us/step")
    print(f"  + RunStore synchronous=FULL {full:6.1f} us/step   ({args.full_steps:,} steps)")
    print(f"  RunStore.record alone      {raw * us:7.1f} us/step   (2 events, 2 commits)")
    print("store size per 1,000 steps (after checkpoint, plan included)")
    print(f"  output null                {size_null / 1024:7.1f} KiB      (goal <= 250)")
    print(f"  output a small dict        {size_small / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
