"""Executor benchmarks: parallel efficiency and per-step overhead (prints figures).

    .venv/bin/python benchmarks/executor.py [--seed N] [--steps 200] [--overhead-steps N] [--cpu]

1. Parallel efficiency. A random DAG of 200 steps, at most 20 per level, each step an async sleep
   of 10-50 ms, is run by the executor (no concurrency cap), by a level-by-level batch executor
   (every level gathered in parallel, the next level started when the whole level is done) and by a
   sequential one. The lesson's ``DAGWorkflow.execute`` computes those levels but then runs each
   level's steps one after another, which makes it the sequential figure. Each wall time is given
   as a ratio to the critical path (the longest chain of sleeps: no schedule can beat it).
2. Overhead. 10,000 no-op steps as a chain (each reads the previous one's output) and as a
   fan-out (one root, every other step reads it), in memory, with the default options: the
   wall time per step is the executor's cost, everything a user pays for included (reference
   resolution, argument validation, events, the final RunResult; its step records are built when
   first read, and what reading them costs is printed apart). Goal (issue 14): <= 35 us per
   async step, and <= 5x a bare ``await asyncio.create_task(noop(x))`` per step measured in the
   same process (the ratio is what survives a busy machine).
3. Scaling. The same per-step cost at 100, 1,000, 10,000 and 100,000 steps (async tool): it
   should stay flat (O(1) per step).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tooldag.execution.executor import Executor
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool


@tool(side_effects=False)
async def sleep_ms(ms: float, after: Any = None) -> float:
    """Sleep for ``ms`` milliseconds; ``after`` only carries the dependency."""
    await asyncio.sleep(ms / 1000)
    return ms


@tool(side_effects=False)
async def noop(x: Any = None) -> None:
    """Do nothing (fast)."""
    return None


@tool(side_effects=False)
def noop_sync(x: Any = None) -> None:
    """Do nothing, in the thread pool."""
    return None


REGISTRY = ToolRegistry([sleep_ms, noop, noop_sync])
# Wall time by default; --cpu measures the overhead figures in this process's CPU time, which
# other processes on a busy machine disturb far less (parallel efficiency is always wall time).
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def random_dag(rng: random.Random, steps: int, width: int) -> tuple[Plan, dict[str, float]]:
    """Steps in levels of 1..width; each step after the first level reads 1-3 earlier steps."""
    durations: dict[str, float] = {}
    levels: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    made = 0
    while made < steps:
        size = min(rng.randint(1, width), steps - made)
        level = []
        for _ in range(size):
            sid = f"s{made}"
            made += 1
            ms = rng.uniform(10, 50)
            durations[sid] = ms
            earlier = [s for lvl in levels[-3:] for s in lvl]
            deps = rng.sample(earlier, k=min(len(earlier), rng.randint(1, 3))) if earlier else []
            # The first dependency is read (a data edge), the others are ordering-only edges.
            args: dict[str, Any] = {"ms": ms}
            if deps:
                args["after"] = f"${deps[0]}"
            raw.append({"id": sid, "tool": "sleep_ms", "args": args, "depends_on": deps[1:]})
            level.append(sid)
        levels.append(level)
    return Plan.model_validate({"goal": "benchmark", "steps": raw}), durations


def critical_path(plan: Plan, durations: Mapping[str, float]) -> float:
    finish: dict[str, float] = {}
    for step in plan.steps:  # generated in topological order
        start = max((finish[d] for d in step.dependencies()), default=0.0)
        finish[step.id] = start + durations[step.id]
    return max(finish.values()) / 1000


def levels_of(plan: Plan) -> list[list[str]]:
    """Kahn's algorithm by levels: the batches of a level-by-level executor."""
    deps = {s.id: set(s.dependencies()) for s in plan.steps}
    done: set[str] = set()
    levels = []
    while len(done) < len(deps):
        ready = [sid for sid, d in deps.items() if sid not in done and d <= done]
        levels.append(ready)
        done.update(ready)
    return levels


async def level_batches(plan: Plan, durations: Mapping[str, float]) -> float:
    start = time.perf_counter()
    for level in levels_of(plan):
        await asyncio.gather(*(asyncio.sleep(durations[sid] / 1000) for sid in level))
    return time.perf_counter() - start


async def sequential(plan: Plan, durations: Mapping[str, float]) -> float:
    start = time.perf_counter()
    for level in levels_of(plan):
        for sid in level:
            await asyncio.sleep(durations[sid] / 1000)
    return time.perf_counter() - start


async def executor_wall(plan: Plan, **options: Any) -> float:
    executor = Executor(REGISTRY, **options)
    gc.collect()  # do not bill this run for the garbage of the previous one
    start = CLOCK[0]()
    result = await executor.run(plan)
    wall = CLOCK[0]() - start
    assert result.ok, result.error
    return wall


async def records_read(plan: Plan) -> float:
    """What reading ``result.steps`` costs after a run: the records are built when first read."""
    result = await Executor(REGISTRY).run(plan)
    gc.collect()
    start = CLOCK[0]()
    records = result.steps.values()
    took = CLOCK[0]() - start
    assert len(records) == len(plan.steps)
    return took


def overhead_plan(shape: str, n: int, tool_name: str) -> Plan:
    if shape == "chain":
        steps = [{"id": "s0", "tool": tool_name, "args": {}}] + [
            {"id": f"s{i}", "tool": tool_name, "args": {"x": f"$s{i - 1}"}} for i in range(1, n)
        ]
    else:
        steps = [{"id": "s0", "tool": tool_name, "args": {}}] + [
            {"id": f"s{i}", "tool": tool_name, "args": {"x": "$s0"}} for i in range(1, n)
        ]
    return Plan.model_validate({"goal": shape, "steps": steps})


async def bare_tasks(n: int) -> float:
    """The floor: ``n`` no-op coroutines, each awaited in a task of its own, one after another."""

    async def nothing(x: Any = None) -> None:
        return None

    gc.collect()
    start = CLOCK[0]()
    for i in range(n):
        await asyncio.create_task(nothing(i))
    return CLOCK[0]() - start


def report(label: str, values: Sequence[float], unit: str, scale: float = 1.0) -> None:
    best = min(values) * scale
    median = statistics.median(values) * scale
    print(f"  {label:<44} best {best:8.3f} {unit}   median {median:8.3f} {unit}")


async def main(seed: int, steps: int, overhead_steps: int, repeats: int, cpu: bool) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} (figures are noisy on a busy machine)")
    rng = random.Random(seed)
    plan, durations = random_dag(rng, steps, width=20)
    cp = critical_path(plan, durations)
    depth = len(levels_of(plan))
    print(
        f"parallel efficiency: {steps} steps, {depth} levels of <= 20, sleeps 10-50 ms, "
        f"critical path {cp * 1000:.0f} ms (seed {seed})"
    )
    ours = [await executor_wall(plan, max_concurrency=steps) for _ in range(repeats)]
    batches = [await level_batches(plan, durations) for _ in range(repeats)]
    seq = await sequential(plan, durations)
    report("event-driven executor / critical path", [w / cp for w in ours], "x")
    report("level-by-level batches / critical path", [w / cp for w in batches], "x")
    report("sequential (the lesson's DAGWorkflow) / c.p.", [seq / cp], "x")

    print(f"overhead: {overhead_steps:,} no-op steps, default options (max_concurrency=16)")
    CLOCK[0] = time.process_time if cpu else time.perf_counter
    print(f"  ({'CPU' if cpu else 'wall'} time)")
    floor = min([await bare_tasks(overhead_steps) for _ in range(repeats)]) / overhead_steps
    print(f"  {'bare await asyncio.create_task(noop(x)), per step':<44} best {floor * 1e6:8.3f} us")
    for tool_name in ("noop", "noop_sync"):
        for shape in ("chain", "fan-out"):
            big = overhead_plan(shape, overhead_steps, tool_name)
            walls = [await executor_wall(big) for _ in range(repeats)]
            kind = "async" if tool_name == "noop" else "sync (thread pool)"
            per_step = [w / overhead_steps for w in walls]
            report(f"{shape}, {kind} tool, per step", per_step, "us", scale=1e6)
            report("  / bare task", [w / floor for w in per_step], "x")
            if tool_name == "noop":
                read = [await records_read(big) / overhead_steps for _ in range(repeats)]
                report("  + reading result.steps afterwards", read, "us", scale=1e6)

    print("scaling: per-step cost by plan size (async tool; flat is O(1) per step)")
    for shape in ("chain", "fan-out"):
        cells = []
        for n in (100, 1_000, 10_000, 100_000):
            big = overhead_plan(shape, n, "noop")
            runs = repeats if n <= 10_000 else max(1, repeats // 2)
            cells.append(
                f"{n:>7,}: {min([await executor_wall(big) for _ in range(runs)]) / n * 1e6:6.1f}"
            )
        print(f"  {shape:<8} us/step  " + "   ".join(cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--overhead-steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", action="store_true", help="overhead in CPU time, not wall time")
    ns = parser.parse_args()
    asyncio.run(main(ns.seed, ns.steps, ns.overhead_steps, ns.repeats, ns.cpu))
