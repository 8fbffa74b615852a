"""Scale-out benchmarks: the Dask runner's cost and gain, and the journal on PostgreSQL (prints
figures).

    .venv/bin/python benchmarks/scale.py [--workers 2] [--cpu-seconds 0.5] [--parts 16]
                                         [--steps 200] [--journal-steps 2000] [--repeat 3]

1. Per-step overhead of the Dask runner (``local:N``, N worker processes) against the in-process
   default, for no-op sync steps: a chain (each step reads the one before: every step waits for a
   round trip to the cluster) and a fan-out (independent steps: the round trips overlap). The
   wall time per step is the executor's cost plus the runner's.
2. A fan-out of ``--parts`` steps of a CPU-bound pure-Python tool (``--cpu-seconds`` each, the
   work calibrated here), in process (a thread pool: the GIL runs one at a time) and on
   ``local:N`` (one process per worker). Aim with 2 workers: about half the in-process time.
3. What journalling costs per step: the same no-op fan-out in memory, then with a RunStore on a
   SQLite file (WAL) and on a PostgreSQL server started for the benchmark
   (``tooldag.testing.postgres``, its fsync on, over a Unix socket), each with the store's
   default ``synchronous=NORMAL`` (a commit survives a killed process) and with ``FULL`` (each
   commit waits for the disk), and ``RunStore.record`` alone (two events, two commits a step).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from store import best  # benchmarks/store.py: the best of a few timed tries

from tooldag.durable.store import RunStore
from tooldag.events import Event, RunStarted, StepStarted, StepSucceeded
from tooldag.execution.dask_runner import DaskRunner
from tooldag.execution.executor import Executor
from tooldag.execution.runners import StepRunner
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool
from tooldag.testing.postgres import TemporaryPostgres


@tool(side_effects=False)
def noop(x: Any = None) -> None:
    """Do nothing (a sync tool: a thread here, a task on a worker)."""
    return None


@tool(side_effects=False)
async def anoop(x: Any = None) -> None:
    """Do nothing, asynchronously (what the journal benchmark runs)."""
    return None


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@tool(side_effects=False)
def crunch(n: int, part: int = 0) -> int:
    """CPU-bound pure Python: ``n`` rounds of arithmetic (holds the GIL throughout)."""
    return spin(n) + part


REGISTRY = ToolRegistry([noop, anoop, crunch])


def chain(n: int, tool_name: str = "noop") -> Plan:
    steps = [{"id": "s0", "tool": tool_name, "args": {}}]
    steps += [{"id": f"s{i}", "tool": tool_name, "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return Plan.model_validate({"goal": f"a chain of {n}", "steps": steps})


def fan_out(n: int, tool_name: str = "noop") -> Plan:
    steps = [{"id": "s0", "tool": tool_name, "args": {}}]
    steps += [{"id": f"s{i}", "tool": tool_name, "args": {"x": "$s0"}} for i in range(1, n)]
    return Plan.model_validate({"goal": f"a fan-out of {n}", "steps": steps})


def timed(
    plan: Plan,
    runner: StepRunner[Any] | None = None,
    store: RunStore | None = None,
    max_concurrency: int = 64,
) -> float:
    executor = Executor(REGISTRY, max_concurrency=max_concurrency, runner=runner)
    detach = store.attach(executor.bus) if store is not None else None
    start = time.perf_counter()
    result = asyncio.run(executor.run(plan))
    took = time.perf_counter() - start
    if detach is not None:
        detach()
    assert result.ok, result.error
    return took


def calibrate(seconds: float) -> int:
    """Rounds of :func:`spin` that take ``seconds`` here (the median of a few tries)."""
    probe = 200_000
    tries = []
    for _ in range(5):
        start = time.perf_counter()
        spin(probe)
        tries.append(time.perf_counter() - start)
    return int(probe * seconds / statistics.median(tries))


def record_only(store: RunStore, n: int) -> float:
    run = f"raw-{time.monotonic_ns()}"
    store.record(Event(RunStarted(goal="raw"), run))
    start = time.perf_counter()
    for i in range(n):
        store.record(Event(StepStarted("anoop", {}), run, f"s{i}", 1))
        store.record(Event(StepSucceeded(None), run, f"s{i}", 1, 0.0))
    return time.perf_counter() - start


def overhead(args: argparse.Namespace, runner: DaskRunner) -> None:
    n = args.steps
    print(f"1. per-step overhead, {n} no-op sync steps, best of {args.repeat}")
    for name, shape in (("chain (dependent)", chain), ("fan-out (independent)", fan_out)):
        plan = shape(n)
        here = best(args.repeat, lambda plan=plan: timed(plan))
        there = best(args.repeat, lambda plan=plan: timed(plan, runner))
        print(
            f"  {name:22} in process {here / n * 1e6:8.1f} us/step   "
            f"Dask local:{args.workers} {there / n * 1e3:7.2f} ms/step   "
            f"(+{(there - here) / n * 1e3:.2f} ms)"
        )


def fan_out_cpu(args: argparse.Namespace, runner: DaskRunner) -> None:
    rounds = calibrate(args.cpu_seconds)
    steps = [
        {"id": f"p{i}", "tool": "crunch", "args": {"n": rounds, "part": i}}
        for i in range(args.parts)
    ]
    plan = Plan.model_validate({"goal": "CPU-bound parts", "steps": steps})
    # Alternating, so that both see the same background load.
    here, there = [], []
    for _ in range(args.repeat):
        here.append(timed(plan))
        there.append(timed(plan, runner))
    h, t = min(here), min(there)
    print(
        f"2. {args.parts} steps of {args.cpu_seconds:g} s of CPU-bound pure Python "
        f"({rounds:,} rounds each), best of {args.repeat}"
    )
    print(f"  {'in process (threads, one GIL)':30} {h:6.2f} s")
    print(
        f"  Dask local:{args.workers} ({args.workers} processes)   {t:6.2f} s   {h / t:.2f}x faster"
    )


def journal(args: argparse.Namespace) -> None:
    n = args.journal_steps
    plan = fan_out(n, "anoop")
    print(f"3. journal cost, {n:,} async no-op steps (fan-out), best of {args.repeat}")
    bare = best(args.repeat, lambda: timed(plan))
    print(f"  in memory                    {bare / n * 1e6:7.1f} us/step")
    with tempfile.TemporaryDirectory() as tmp, TemporaryPostgres(durable=True) as pg:
        stores = {
            "SQLite NORMAL": lambda: RunStore(Path(tmp) / f"{time.monotonic_ns()}.db"),
            "PostgreSQL NORMAL": lambda: RunStore(pg.new_schema()),
            "SQLite FULL": lambda: RunStore(
                Path(tmp) / f"{time.monotonic_ns()}.db", synchronous="FULL"
            ),
            "PostgreSQL FULL": lambda: RunStore(pg.new_schema(), synchronous="FULL"),
        }
        for name, make in stores.items():
            with make() as store:
                full = best(args.repeat, lambda store=store: timed(plan, store=store))
                raw = best(args.repeat, lambda store=store: record_only(store, n))
            print(
                f"  {name:18} executor + store {full / n * 1e6:7.1f} us/step   "
                f"journal's share {(full - bare) / n * 1e6:7.1f} us/step   "
                f"record() alone {raw / n * 1e6:7.1f} us/step"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpu-seconds", type=float, default=0.5)
    parser.add_argument("--parts", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--journal-steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} (figures are noisy on a busy machine)")
    with DaskRunner(f"local:{args.workers}") as runner:
        timed(fan_out(args.workers * 4), runner)  # warm the workers up
        overhead(args, runner)
        fan_out_cpu(args, runner)
    journal(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end {load:.2f}")


if __name__ == "__main__":
    main()
