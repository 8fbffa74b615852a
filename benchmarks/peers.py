"""tooldag beside LangGraph (StateGraph and Functional API): the same workloads, one run, one table.

    .venv/bin/python benchmarks/peers.py [--quick] [--fresh] [--seed 7] [--repeats 3]

LangGraph is not a dependency of tooldag: this script builds a throw-away venv for it
(``benchmarks/.peers-venv``, git-ignored, re-used; ``--fresh`` rebuilds it) with ``python -m venv``
and pip, the versions pinned in ``PINS``, and runs LangGraph's side there
(``benchmarks/peers_langgraph.py``, one subprocess per workload, JSON in and out). tooldag's side
runs in this process. Both get the same workloads from here: the same seeded DAG (made by
``benchmarks/executor.py``'s generator), the same sleeps, the same sizes.

1. Parallel efficiency: a random DAG of 200 steps (levels of <= 20, each step reads one earlier
   step and waits for up to two more), each an async sleep of 10-50 ms; wall time / critical
   path, best of ``--repeats``. No concurrency cap on either side. A StateGraph runs in
   supersteps: a node starts when the whole superstep before it is done, which makes it level
   by level; the Functional API is given the best schedule it allows (each step awaits its own
   dependencies' futures, then calls its task).
2. A slow branch beside a fast chain: one 1 s step, a chain of 20 x 50 ms beside it and a join
   of both. Does the chain go on while the slow step runs? When the chain's last step finished
   (1.00 s if it does) and the wall time (1.00 s at best).
3. Per-step overhead: no-op async steps, a chain (each reads the one before) and a fan-out (one
   root, every other step reads it), at 100 / 1,000 / 10,000 steps, each side with its defaults;
   microseconds per step and the multiple of a bare ``await asyncio.create_task(noop(x))``
   measured in that side's own process (the ratio is what survives a busy machine). A LangGraph
   run that would take longer than ``--budget`` seconds is cut there and shown as capped.
4. Durable: the same no-op chain and fan-out of 1,000 steps journalled in SQLite, tooldag's
   RunStore (WAL, ``synchronous=NORMAL``, a commit per event) against LangGraph's
   AsyncSqliteSaver (its default ``durability``); microseconds per step and the database's size
   per 1,000 steps after a WAL checkpoint, a fresh file for every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import executor
import peers_common
from executor import REGISTRY as NOOPS
from executor import critical_path, executor_wall, overhead_plan, random_dag
from peers_common import best_of, checkpointed_size, floor, timed

from tooldag.durable.store import RunStore
from tooldag.execution.executor import Executor
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
# What pip resolved on 2026-12-02; pinned so that a re-run measures the same LangGraph.
PINS = ("langgraph==1.2.24", "langgraph-checkpoint-sqlite==3.1.2")
APIS = ("stategraph", "functional")
COLUMNS = ("tooldag", "LangGraph StateGraph", "LangGraph Functional API", "LangGraph / tooldag")
SHAPES = ("chain", "fan-out")
Steps = list[dict[str, Any]]  # {"id": "s3", "ms": 12.5, "deps": ["s0", "s1"]}: the first is read


@tool(side_effects=False)
async def sleep_stamp(ms: float, after: Any = None) -> float:
    """Sleep for ``ms`` milliseconds and return when it woke (``time.perf_counter``)."""
    await asyncio.sleep(ms / 1000)
    return time.perf_counter()


REGISTRY = ToolRegistry([sleep_stamp])


# --- the workloads, as both sides receive them ---------------------------------------------------


def dag_steps(plan: Plan, durations: dict[str, float]) -> Steps:
    """A plan as the LangGraph side takes it: in topological order, the data dependency first."""
    return [
        {"id": step.id, "ms": durations[step.id], "deps": step.dependencies()}
        for step in plan.steps
    ]


def race_steps(slow_ms: float = 1000, links: int = 20, link_ms: float = 50) -> Steps:
    chain = [
        {"id": f"c{i}", "ms": link_ms, "deps": [f"c{i - 1}"] if i else []} for i in range(links)
    ]
    slow = {"id": "slow", "ms": slow_ms, "deps": []}
    return [slow, *chain, {"id": "join", "ms": 0.0, "deps": ["slow", chain[-1]["id"]]}]


def as_plan(steps: Steps) -> Plan:
    """The same steps as a tooldag plan of ``sleep_stamp`` calls."""
    raw = []
    for step in steps:
        deps = step["deps"]
        args: dict[str, Any] = {"ms": step["ms"]}
        if deps:
            args["after"] = f"${deps[0]}"
        raw.append({"id": step["id"], "tool": "sleep_stamp", "args": args, "depends_on": deps[1:]})
    return Plan.model_validate({"goal": "peers", "steps": raw})


# --- the throw-away venv and LangGraph's side -------------------------------------------------


def langgraph_python(fresh: bool) -> Path:
    """The venv's interpreter, the venv built first if it is missing, stale or ``fresh``."""
    python, stamp = VENV / "bin" / "python", VENV / "pins.txt"
    wanted = "\n".join(PINS)
    if fresh or not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(VENV, ignore_errors=True)
        print(f"building {VENV.relative_to(HERE.parent)} ({', '.join(PINS)}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        done = subprocess.run([*pip, *PINS], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"pip could not install {' '.join(PINS)}:\n{done.stdout}{done.stderr}")
        stamp.write_text(wanted)
    return python


def langgraph(python: Path, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(HERE / "peers_langgraph.py")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"LangGraph's side failed on {spec['workload']}:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


# --- tooldag's side -----------------------------------------------------------------------------


async def tooldag_race(steps: Steps, last: str) -> dict[str, float]:
    start = time.perf_counter()
    result = await Executor(REGISTRY).run(as_plan(steps))
    assert result.ok, result.error
    return {"chain": result.outputs[last] - start, "wall": time.perf_counter() - start}


async def tooldag_overhead(sizes: Sequence[int], repeats: int, cpu: bool) -> dict[str, Any]:
    clock = time.process_time if cpu else time.perf_counter
    executor.CLOCK[0] = peers_common.CLOCK[0] = clock
    out: dict[str, Any] = {"bare": await floor(max(sizes), repeats)}
    for shape in SHAPES:
        for n in sizes:
            plan = overhead_plan(shape, n, "noop")
            tries = repeats if n <= 1_000 else 1
            out[f"{shape} {n}"] = min([await executor_wall(plan) for _ in range(tries)]) / n
    executor.CLOCK[0] = peers_common.CLOCK[0] = time.perf_counter
    return out


async def tooldag_durable(n: int, repeats: int) -> dict[str, Any]:
    """Per-step wall time and database bytes with a RunStore, a fresh file per run."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.sqlite3"
        for shape in SHAPES:
            plan = overhead_plan(shape, n, "noop")

            async def once(plan: Plan = plan) -> float:
                path.unlink(missing_ok=True)
                store, engine = RunStore(path), Executor(NOOPS)
                store.attach(engine.bus)
                try:
                    return await timed(lambda: engine.run(plan, run_id="bench"))
                finally:
                    store.close()

            wall = await best_of(repeats, once)
            out[shape] = {"per_step": wall / n, "bytes": checkpointed_size(path)}
    return out


# --- the table --------------------------------------------------------------------------------


def ratio_range(ours: float | None, theirs: Sequence[float | None]) -> str:
    """LangGraph's figures as multiples of tooldag's: ``1.06-1.46x``, or one figure."""
    ratios = sorted(t / ours for t in theirs if t is not None and ours)
    if not ratios:
        return "-"
    low, high = f"{ratios[0]:.2f}", f"{ratios[-1]:.2f}"
    return f"{low}x" if low == high else f"{low}-{high}x"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub table: the first column left-aligned, the figures right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join([":---"] + ["---:"] * (len(header) - 1)) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def row(
    label: str, ours: float | None, theirs: Sequence[float | None], cell: Callable[[float], str]
) -> list[str]:
    shown = [cell(v) if v is not None else "capped" for v in (ours, *theirs)]
    return [label, *shown, ratio_range(ours, theirs)]


def overhead_cell(bare: float) -> Callable[[float], str]:
    return lambda per_step: f"{per_step * 1e6:,.0f} us ({per_step / bare:,.0f}x bare)"


def build_rows(figures: dict[str, Any]) -> list[list[str]]:
    """The table's rows from both sides' figures (the shapes ``main`` collects)."""
    cp, dag, lg_dag = figures["critical_path"], figures["dag"], figures["lg_dag"]
    rows = [
        row(
            f"random DAG, {figures['dag_steps']} steps of 10-50 ms: wall / critical path",
            min(dag) / cp,
            [min(lg_dag[api]) / cp for api in APIS],
            lambda v: f"{v:.3f}",
        )
    ]
    race, lg_race = figures["race"], figures["lg_race"]
    cells = [f"{r['chain']:.2f} / {r['wall']:.2f} s" for r in (race, *(lg_race[a] for a in APIS))]
    ratio = ratio_range(race["chain"], [lg_race[api]["chain"] for api in APIS])
    rows.append(["1 s step beside a chain of 20 x 50 ms: chain done / wall", *cells, ratio])
    ours, theirs = figures["overhead"], figures["lg_overhead"]
    rows.append(
        row(
            "bare `await asyncio.create_task(noop(x))`, per step",
            ours["bare"],
            [theirs["bare"], theirs["bare"]],
            lambda v: f"{v * 1e6:.1f} us",
        )
    )
    for shape in SHAPES:
        for n in figures["sizes"]:
            per_step = ours[f"{shape} {n}"]
            cells = [overhead_cell(ours["bare"])(per_step)]
            lg = [theirs[f"{api} {shape} {n}"] for api in APIS]
            cells += [overhead_cell(theirs["bare"])(v) if v else "capped" for v in lg]
            # The multiples of each process's own floor are what compare across processes.
            ratio = ratio_range(
                per_step / ours["bare"], [v / theirs["bare"] if v else None for v in lg]
            )
            label = f"{shape}, {n:,} no-op steps: per step ({figures['clock']})"
            rows.append([label, *cells, ratio])
    n, durable, lg_durable = figures["durable_steps"], figures["durable"], figures["lg_durable"]
    for shape in SHAPES:
        rows.append(
            row(
                f"durable {shape}, {n:,} steps, SQLite: per step",
                durable[shape]["per_step"],
                [lg_durable[f"{api} {shape}"]["per_step"] for api in APIS],
                lambda v: f"{v * 1e6:,.0f} us",
            )
        )
    for shape in SHAPES:
        rows.append(
            row(
                f"durable {shape}: database per 1,000 steps",
                durable[shape]["bytes"] * 1000 / n,
                [lg_durable[f"{api} {shape}"]["bytes"] * 1000 / n for api in APIS],
                lambda v: f"{v / 1024:,.0f} KiB",
            )
        )
    return rows


def machine() -> str:
    load = "/".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load} (1/5/15 min)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--fresh", action="store_true", help="rebuild the LangGraph venv")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="overhead in CPU time, not wall time")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds a LangGraph run may take"
    )
    args = parser.parse_args()
    python = langgraph_python(args.fresh)
    repeats = 1 if args.quick else args.repeats
    steps_n, sizes, durable_n = (
        (60, [100, 1_000], 200) if args.quick else (200, [100, 1_000, 10_000], 1_000)
    )
    print(f"before: {machine()}", flush=True)
    started = time.perf_counter()

    plan, durations = random_dag(random.Random(args.seed), steps_n, width=20)
    cp = critical_path(plan, durations)
    figures: dict[str, Any] = {"critical_path": cp, "dag_steps": steps_n, "sizes": sizes}
    figures["durable_steps"] = durable_n
    figures["clock"] = "CPU" if args.cpu else "wall"
    print(f"1. random DAG, {steps_n} steps, critical path {cp * 1000:.0f} ms", flush=True)
    figures["dag"] = [
        asyncio.run(executor_wall(plan, max_concurrency=steps_n)) for _ in range(repeats)
    ]
    spec = {"workload": "dag", "steps": dag_steps(plan, durations), "repeats": repeats}
    figures["lg_dag"] = langgraph(python, spec)

    print("2. slow step beside a fast chain", flush=True)
    race = race_steps()
    figures["race"] = asyncio.run(tooldag_race(race, "c19"))
    figures["lg_race"] = langgraph(python, {"workload": "race", "steps": race, "chain_last": "c19"})

    print(f"3. per-step overhead at {', '.join(f'{n:,}' for n in sizes)}", flush=True)
    figures["overhead"] = asyncio.run(tooldag_overhead(sizes, repeats, args.cpu))
    spec = {
        "workload": "overhead",
        "sizes": sizes,
        "repeats": repeats,
        "budget": args.budget,
        "cpu": args.cpu,
    }
    figures["lg_overhead"] = langgraph(python, spec)

    print(f"4. durable, {durable_n:,} steps", flush=True)
    figures["durable"] = asyncio.run(tooldag_durable(durable_n, repeats))
    spec = {"workload": "durable", "n": durable_n, "repeats": repeats}
    figures["lg_durable"] = langgraph(python, spec)

    lg_version = figures["lg_durable"]["version"]
    print(f"after:  {machine()}; took {time.perf_counter() - started:.0f} s")
    print(f"\ntooldag {version('tooldag')} beside LangGraph {lg_version}, seed {args.seed}\n")
    print(markdown_table(("workload", *COLUMNS), build_rows(figures)))


if __name__ == "__main__":
    main()
