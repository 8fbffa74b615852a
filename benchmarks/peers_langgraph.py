"""The LangGraph side of ``benchmarks/peers.py``: run in its throw-away venv, never imported there.

    <peers venv>/bin/python benchmarks/peers_langgraph.py < spec.json > figures.json

Reads one workload spec (JSON) on stdin, runs it with LangGraph's StateGraph or its Functional API
(``@task`` / ``@entrypoint``) and prints its figures as JSON on stdout. The workloads (the DAG, the
sleeps, the sizes) come from the driver, so both sides run the very same ones; only the bare-task
floor is measured here, in this process, so that the driver's ratios compare like with like.

Each side with its defaults: async nodes and tasks, ``ainvoke``, no concurrency cap (LangGraph
has none by default), ``durability`` left at its default, ``AsyncSqliteSaver`` for durable runs.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.func import entrypoint, task
from langgraph.graph import START, StateGraph
from peers_common import CLOCK, best_of, checkpointed_size, floor, timed

Step = dict[str, Any]  # {"id": "s3", "ms": 12.5, "deps": ["s0", "s1"]}: the first dep is read
# A graph's supersteps are bounded by recursion_limit (25 by default): a 10,000-step chain needs
# 10,000 of them, so every run here lifts the bound (it is a guard, not a cost).
LIMIT = {"recursion_limit": 1_000_000}


class DagState(TypedDict):
    done: Annotated[dict[str, Any], operator.or_]


class ChainState(TypedDict):
    x: Any


def config(thread: str | None = None) -> dict[str, Any]:
    return {**LIMIT, "configurable": {"thread_id": thread}} if thread else dict(LIMIT)


# --- StateGraph: one node per step, an edge from each dependency -------------------------------


def sleeper(step: Step, clock: dict[str, float]) -> Callable[[DagState], Awaitable[DagState]]:
    async def node(state: DagState) -> DagState:
        if step["deps"]:
            state["done"][step["deps"][0]]  # read the data dependency, as tooldag resolves $ref
        await asyncio.sleep(step["ms"] / 1000)
        clock[step["id"]] = time.perf_counter()
        return {"done": {step["id"]: step["ms"]}}

    return node


def dag_graph(steps: list[Step], clock: dict[str, float], checkpointer: Any = None) -> Any:
    """A node waits for all its dependencies (a list edge is LangGraph's join); the graph runs in
    supersteps, so a node starts only when the whole superstep before it is done."""
    graph = StateGraph(DagState)
    for step in steps:
        graph.add_node(step["id"], sleeper(step, clock))
        deps = step["deps"]
        graph.add_edge(deps if len(deps) > 1 else (deps[0] if deps else START), step["id"])
    return graph.compile(checkpointer=checkpointer)


async def noop_node(state: ChainState) -> ChainState:
    return {"x": state["x"]}


async def leaf_node(state: ChainState) -> None:
    state["x"]  # read the root's output; write nothing (many writers of one key would clash)


def overhead_graph(shape: str, n: int, checkpointer: Any = None) -> Any:
    graph = StateGraph(ChainState)
    graph.add_node("s0", noop_node)
    graph.add_edge(START, "s0")
    for i in range(1, n):
        graph.add_node(f"s{i}", noop_node if shape == "chain" else leaf_node)
        graph.add_edge(f"s{i - 1}" if shape == "chain" else "s0", f"s{i}")
    return graph.compile(checkpointer=checkpointer)


# --- Functional API: a task per step, futures ------------------------------------------------


@task
async def sleep_ms(ms: float, after: Any = None) -> float:
    await asyncio.sleep(ms / 1000)
    return time.perf_counter()


@task
async def noop(x: Any = None) -> None:
    return None


def dag_entrypoint(checkpointer: Any = None) -> Any:
    """Event-driven: each step awaits its own dependencies' futures, then calls its task, so a
    step starts when its last dependency is done (the best this API allows, not level by
    level)."""

    @entrypoint(checkpointer=checkpointer)
    async def dag(steps: list[Step]) -> dict[str, float]:
        futures: dict[str, asyncio.Future[float]] = {}

        async def one(step: Step) -> float:
            read = [await futures[d] for d in step["deps"]]
            return await sleep_ms(step["ms"], read[0] if read else None)

        for step in steps:  # in topological order
            futures[step["id"]] = asyncio.ensure_future(one(step))
        return {sid: await future for sid, future in futures.items()}

    return dag


def overhead_entrypoint(checkpointer: Any = None) -> Any:
    @entrypoint(checkpointer=checkpointer)
    async def overhead(job: dict[str, Any]) -> None:
        x = await noop(None)
        if job["shape"] == "chain":
            for _ in range(1, job["n"]):
                x = await noop(x)
        else:
            await asyncio.gather(*(noop(x) for _ in range(1, job["n"])))

    return overhead


def no_ops(api: str, shape: str, n: int, checkpointer: Any = None) -> Callable[[], Awaitable[Any]]:
    """A run of ``n`` no-op steps, ready to start (a thread of its own when durable)."""
    run_config = config("bench") if checkpointer is not None else LIMIT
    if api == "stategraph":
        graph = overhead_graph(shape, n, checkpointer)
        return lambda: graph.ainvoke({"x": None}, run_config)
    func, job = overhead_entrypoint(checkpointer), {"shape": shape, "n": n}
    return lambda: func.ainvoke(job, run_config)


# --- measuring --------------------------------------------------------------------------------


async def dag(spec: dict[str, Any]) -> dict[str, Any]:
    steps = spec["steps"]
    clock: dict[str, float] = {}
    graph, func = dag_graph(steps, clock), dag_entrypoint()
    walls: dict[str, list[float]] = {"stategraph": [], "functional": []}
    for _ in range(spec["repeats"]):
        walls["stategraph"].append(await timed(lambda: graph.ainvoke({"done": {}}, LIMIT)))
        walls["functional"].append(await timed(lambda: func.ainvoke(steps, LIMIT)))
    return walls


async def race(spec: dict[str, Any]) -> dict[str, Any]:
    """The slow step beside the fast chain: when the chain's last step finished, and the wall."""
    steps, last = spec["steps"], spec["chain_last"]
    clock: dict[str, float] = {}
    graph, func = dag_graph(steps, clock), dag_entrypoint()
    out: dict[str, Any] = {}
    start = time.perf_counter()
    await graph.ainvoke({"done": {}}, LIMIT)
    out["stategraph"] = {"chain": clock[last] - start, "wall": time.perf_counter() - start}
    start = time.perf_counter()
    finished = await func.ainvoke(steps, LIMIT)
    out["functional"] = {"chain": finished[last] - start, "wall": time.perf_counter() - start}
    return out


async def overhead(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds per step by (api, shape, n); ``None`` where the size was capped: a run cut after
    ``budget`` seconds, and the sizes above it not tried."""
    sizes, repeats, budget = spec["sizes"], spec["repeats"], spec["budget"]
    if spec["cpu"]:
        CLOCK[0] = time.process_time
    out: dict[str, Any] = {"bare": await floor(max(sizes), repeats)}
    for api in ("stategraph", "functional"):
        for shape in ("chain", "fan-out"):
            capped = False
            for n in sizes:
                key = f"{api} {shape} {n}"
                out[key] = None
                if capped:
                    continue
                run = no_ops(api, shape, n)
                walls = []
                for _ in range(repeats if n <= 1_000 else 1):
                    try:
                        walls.append(await asyncio.wait_for(timed(run), budget))
                    except TimeoutError:
                        capped = True
                        break
                if not capped:
                    out[key] = min(walls) / n
    return out


async def durable(spec: dict[str, Any]) -> dict[str, Any]:
    """Per-step wall time and database bytes with AsyncSqliteSaver, a fresh file per run."""
    n, out = spec["n"], {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoints.sqlite3"
        for api in ("stategraph", "functional"):
            for shape in ("chain", "fan-out"):

                async def once(api: str = api, shape: str = shape) -> float:
                    path.unlink(missing_ok=True)
                    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
                        return await timed(no_ops(api, shape, n, saver))

                wall = await best_of(spec["repeats"], once)
                out[f"{api} {shape}"] = {"per_step": wall / n, "bytes": checkpointed_size(path)}
    return out


WORKLOADS = {"dag": dag, "race": race, "overhead": overhead, "durable": durable}


def main() -> None:
    spec = json.load(sys.stdin)
    figures = asyncio.run(WORKLOADS[spec["workload"]](spec))
    figures["version"] = version("langgraph")
    json.dump(figures, sys.stdout)


if __name__ == "__main__":
    main()
