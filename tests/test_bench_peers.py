"""benchmarks/peers.py's pure parts: both sides are handed the same workloads, and the table says
what was measured (a capped LangGraph run reads "capped", never a number). LangGraph itself is
not installed here: the benchmark builds its own venv for it."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def peers() -> Iterator[ModuleType]:
    # The benchmarks import each other by file name (they run as scripts from their folder).
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import peers

        yield peers
    for name in ("peers", "peers_common", "executor"):
        sys.modules.pop(name, None)


def test_the_langgraph_side_gets_the_plan_s_very_graph(peers: ModuleType) -> None:
    import executor

    plan, durations = executor.random_dag(random.Random(7), 200, width=20)
    # Through JSON, as the subprocess receives it.
    steps = json.loads(json.dumps(peers.dag_steps(plan, durations)))
    again = peers.as_plan(steps)
    assert [s.id for s in again.steps] == [s.id for s in plan.steps]
    assert [s.dependencies() for s in again.steps] == [s.dependencies() for s in plan.steps]
    # The first dependency is the one read, on both sides.
    for step in plan.steps:
        after = step.args.get("after")
        assert after is None or after == f"${step.dependencies()[0]}"
    ms = {s["id"]: s["ms"] for s in steps}
    assert executor.critical_path(again, ms) == executor.critical_path(plan, durations)


def test_the_race_is_a_slow_step_beside_a_chain_then_a_join(peers: ModuleType) -> None:
    steps = peers.race_steps()
    by_id = {s["id"]: s for s in steps}
    assert by_id["join"]["deps"] == ["slow", "c19"]
    assert by_id["slow"] == {"id": "slow", "ms": 1000, "deps": []}
    assert sum(by_id[f"c{i}"]["ms"] for i in range(20)) == 1000
    assert all(by_id[f"c{i}"]["deps"] == [f"c{i - 1}"] for i in range(1, 20))
    peers.as_plan(steps)  # a valid tooldag plan


def figures(capped: bool) -> dict[str, Any]:
    lg_overhead: dict[str, Any] = {"bare": 2e-5}
    overhead: dict[str, Any] = {"bare": 1e-5}
    for shape in ("chain", "fan-out"):
        overhead[f"{shape} 100"] = 3e-5
        for api in ("stategraph", "functional"):
            lg_overhead[f"{api} {shape} 100"] = 1e-3
    if capped:
        lg_overhead["stategraph chain 100"] = None
    durable = {"per_step": 3e-4, "bytes": 300 * 1024}
    return {
        "critical_path": 1.0,
        "dag_steps": 200,
        "dag": [1.04, 1.10],
        "lg_dag": {"stategraph": [1.5], "functional": [1.1]},
        "race": {"chain": 1.0, "wall": 1.01},
        "lg_race": {
            "stategraph": {"chain": 2.0, "wall": 2.0},
            "functional": {"chain": 1.05, "wall": 1.06},
        },
        "overhead": overhead,
        "lg_overhead": lg_overhead,
        "sizes": [100],
        "clock": "wall",
        "durable_steps": 1000,
        "durable": {"chain": durable, "fan-out": durable},
        "lg_durable": {
            f"{api} {shape}": {"per_step": 3e-3, "bytes": 600 * 1024}
            for api in ("stategraph", "functional")
            for shape in ("chain", "fan-out")
        },
    }


def test_the_table_gives_figures_and_ratios(peers: ModuleType) -> None:
    table = peers.markdown_table(("workload", *peers.COLUMNS), peers.build_rows(figures(False)))
    lines = table.splitlines()
    assert lines[1] == "| :--- | ---: | ---: | ---: | ---: |"
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in lines[2:]}
    dag = next(cells for label, cells in rows.items() if label.startswith("random DAG"))
    assert dag == ["1.040", "1.500", "1.100", "1.06-1.44x |"]
    chain = rows["chain, 100 no-op steps: per step (wall)"]
    # Each side's multiple of its own process's bare task; the ratio compares those multiples.
    assert chain == ["30 us (3x bare)", "1,000 us (50x bare)", "1,000 us (50x bare)", "16.67x |"]
    assert rows["durable chain: database per 1,000 steps"][:2] == ["300 KiB", "600 KiB"]


def test_a_capped_run_reads_capped_not_a_number(peers: ModuleType) -> None:
    rows = peers.build_rows(figures(True))
    chain = next(r for r in rows if r[0].startswith("chain, 100"))
    assert chain[2] == "capped"
    assert chain[4] == "16.67x"  # from the run that finished


async def test_best_of_stops_trying_once_its_time_is_spent(peers: ModuleType) -> None:
    import peers_common

    calls: list[float] = []

    async def once() -> float:
        calls.append(6.0 - len(calls))
        return calls[-1]

    assert await peers_common.best_of(5, once, spend=10.0) == 5.0
    assert len(calls) == 2
