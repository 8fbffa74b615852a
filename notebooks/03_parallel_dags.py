# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Parallel DAGs: a data pipeline, timed
#
# A data pipeline (fetch → validate → transform → two analyses → merge) is a graph, and
# the simple way to run a graph is in *levels*: cut it into batches in dependency order
# and let every step of one batch finish before the next batch starts. tooldag's
# executor is event-driven instead: a step starts the moment its last dependency
# finishes, so a fast branch never waits for a slow one it does not need.
#
# This notebook runs such a pipeline with two sources and three analyses, whose tools
# `asyncio.sleep` to stand for network and compute time, draws its timeline, and
# measures it against a sequential run of the same plan.

# %%
from tooldag.testing import FakeLLMServer

GOAL = "Build this week's sales report from the sales and inventory APIs"

PIPELINE_PLAN = {
    "goal": GOAL,
    "steps": [
        {"id": "fetch_sales", "tool": "fetch_data", "args": {"endpoint": "/sales"}},
        {"id": "fetch_inventory", "tool": "fetch_data", "args": {"endpoint": "/inventory"}},
        {"id": "valid_sales", "tool": "validate_data", "args": {"data": "$fetch_sales"}},
        {"id": "valid_inventory", "tool": "validate_data", "args": {"data": "$fetch_inventory"}},
        {
            "id": "table",
            "tool": "transform_data",
            "args": {"sales": "$valid_sales", "inventory": "$valid_inventory"},
        },
        {"id": "trend", "tool": "analyze", "args": {"table": "$table", "method": "trend"}},
        {"id": "anomalies", "tool": "analyze", "args": {"table": "$table", "method": "anomalies"}},
        {"id": "forecast", "tool": "analyze", "args": {"table": "$table", "method": "forecast"}},
        {
            "id": "report",
            "tool": "merge_analyses",
            "args": {"findings": ["$trend", "$anomalies", "$forecast"]},
        },
    ],
    "answer": "${report.summary}",
}

server = FakeLLMServer(rules={"sales report": PIPELINE_PLAN}).start()
llm = server.client()

# %% [markdown]
# ### Using a real model instead
#
# Export `OPENAI_API_KEY` (or `OPENAI_BASE_URL` and `TOOLDAG_MODEL`, for any other
# OpenAI-compatible server) before starting Jupyter, then set `USE_REAL_MODEL = True` below
# (`01_quickstart` shows the variables). A real model writes its own plans, so step names
# and numbers will differ from the scripted ones, which the `assert`s check.

# %%
USE_REAL_MODEL = False  # True: plan with OPENAI_API_KEY / OPENAI_BASE_URL / TOOLDAG_MODEL

if USE_REAL_MODEL:
    from tooldag.llm.client import LLMClient

    server.stop()
    llm = LLMClient.from_env()
llm

# %% [markdown]
# ## The pipeline's tools
#
# Async tools that sleep, so the timings are easy to reason about: fetching sales takes
# 250 ms and inventory 100 ms; validating inventory (the bigger table) takes 150 ms and
# sales 50 ms; each analysis takes 150 ms. Sync tools work the same way (they run in a
# thread pool).

# %%
import asyncio
from typing import Literal

from typing_extensions import TypedDict

from tooldag import ToolRegistry, tool

FETCH_SECONDS = {"/sales": 0.25, "/inventory": 0.10}
VALIDATE_SECONDS = {"/sales": 0.05, "/inventory": 0.15}


class Dataset(TypedDict):
    endpoint: str
    rows: list[dict[str, float]]


class Table(TypedDict):
    products: int
    revenue: float
    units_in_stock: float


class Finding(TypedDict):
    method: str
    finding: str


class Report(TypedDict):
    summary: str


@tool(side_effects=False)
async def fetch_data(endpoint: str) -> Dataset:
    """Fetch rows from an API endpoint ("/sales" or "/inventory")."""
    await asyncio.sleep(FETCH_SECONDS[endpoint])
    value = {"/sales": "revenue", "/inventory": "units"}[endpoint]
    rows = [{"product": float(i), value: 10.0 * i} for i in range(1, 6)]
    return {"endpoint": endpoint, "rows": rows}


@tool(side_effects=False)
async def validate_data(data: Dataset) -> Dataset:
    """Drop malformed rows."""
    await asyncio.sleep(VALIDATE_SECONDS[data["endpoint"]])
    return {"endpoint": data["endpoint"], "rows": [r for r in data["rows"] if r["product"] > 0]}


@tool(side_effects=False)
async def transform_data(sales: Dataset, inventory: Dataset) -> Table:
    """Join sales and inventory per product."""
    await asyncio.sleep(0.05)
    return {
        "products": len(sales["rows"]),
        "revenue": sum(r["revenue"] for r in sales["rows"]),
        "units_in_stock": sum(r["units"] for r in inventory["rows"]),
    }


@tool(side_effects=False)
async def analyze(table: Table, method: Literal["trend", "anomalies", "forecast"]) -> Finding:
    """Analyse the joined table with one method."""
    await asyncio.sleep(0.15)
    findings = {
        "trend": f"revenue {table['revenue']:.0f} EUR, up 4% on last week",
        "anomalies": "no anomalies",
        "forecast": f"{table['units_in_stock']:.0f} units last about 3 weeks",
    }
    return {"method": method, "finding": findings[method]}


@tool(side_effects=False)
async def merge_analyses(findings: list[Finding]) -> Report:
    """Merge analyses into one report."""
    await asyncio.sleep(0.02)
    return {"summary": "; ".join(f"{f['method']}: {f['finding']}" for f in findings)}


pipeline = ToolRegistry([fetch_data, validate_data, transform_data, analyze, merge_analyses])

# %% [markdown]
# ## Plan and run, with a monitor watching
#
# A `Monitor` follows a run through its events (notebook 06 is about it); here it tells
# us how many steps ran at once.

# %%
from tooldag.agent import plan_and_run
from tooldag.observe.monitor import Monitor

monitor = Monitor()
result = plan_and_run(GOAL, tools=pipeline, llm=llm, on_event=monitor)
print(result.status, "|", result.answer)
summary = monitor.get_workflow_summary()
print(f"{summary['total']} steps, up to {summary['max_parallel']} at once")

# %% [markdown]
# ## The DAG
#
# A plan shows as its graph, drawn inline as SVG. A level-by-level executor would run these
# in five batches (the rows below); this one starts each step as soon as its inputs are in.

# %%
plan = result.plan
assert plan is not None  # a run that got as far as running has a plan
plan

# %% [markdown]
# ## The timeline: branches overlap
#
# One row per step, one bar per attempt. The two fetches run together; `valid_inventory`
# starts the moment `fetch_inventory` is done, while `fetch_sales` is still running (a
# level-by-level executor would make it wait); the three analyses run side by side.

# %%
from tooldag.observe.plotting import gantt

ax = gantt(result)

# %% [markdown]
# ## Parallel against sequential, measured
#
# The same plan run twice more without the LLM (`run_plan` runs a plan you already have):
# as the graph allows, and with `max_concurrency=1`, one step at a time.

# %%
import time
from typing import Any

from tooldag import EventBus, Plan, RunResult
from tooldag.execution.executor import run_plan


def timed_run(plan: Plan, max_concurrency: int = 16) -> tuple[RunResult, float, dict[str, Any]]:
    """Run a plan; return the result, the wall time, and the monitor's summary."""
    bus = EventBus()
    watcher = Monitor(bus)
    started = time.perf_counter()
    run = run_plan(plan, pipeline, bus=bus, max_concurrency=max_concurrency)
    return run, time.perf_counter() - started, watcher.get_workflow_summary()


parallel, parallel_s, parallel_summary = timed_run(plan)
sequential, sequential_s, sequential_summary = timed_run(plan, max_concurrency=1)

print(f"parallel:   {parallel_s:.3f} s, up to {parallel_summary['max_parallel']} steps at once")
print(f"sequential: {sequential_s:.3f} s, up to {sequential_summary['max_parallel']} at once")
print(f"speed-up:   {sequential_s / parallel_s:.1f}x")
assert parallel.ok and sequential.ok
assert parallel_summary["max_parallel"] == 3 and sequential_summary["max_parallel"] == 1

# %% [markdown]
# Where the numbers come from: a sequential run costs the sum of the step times; a
# parallel one costs the longest chain of dependent steps, the *critical path*. The
# level-by-level schedule sits in between: each level costs its slowest step.

# %%
import graphlib

seconds = {sid: record.duration or 0.0 for sid, record in parallel.steps.items()}
deps = plan.dependencies()

finish: dict[str, float] = {}
level: dict[str, int] = {}
for sid in graphlib.TopologicalSorter(deps).static_order():
    finish[sid] = max((finish[d] for d in deps[sid]), default=0.0) + seconds[sid]
    level[sid] = max((level[d] + 1 for d in deps[sid]), default=0)
by_level: dict[int, float] = {}
for sid, n in level.items():
    by_level[n] = max(by_level.get(n, 0.0), seconds[sid])

print(f"sum of step times:         {sum(seconds.values()):.3f} s")
print(f"level-by-level (estimate): {sum(by_level.values()):.3f} s")
print(f"critical path:             {max(finish.values()):.3f} s")

# %% [markdown]
# Side by side, on the same time axis:

# %%
import matplotlib.pyplot as plt

fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True, layout="constrained")
gantt(parallel, ax=top, title=f"parallel: {parallel_s:.2f} s")
ax = gantt(sequential, ax=bottom, title=f"max_concurrency=1: {sequential_s:.2f} s")

# %% [markdown]
# Limits are per run (`max_concurrency`) and per tool (`tool_limits={"fetch_data": 1}`,
# for an API that allows one request at a time); `plan_and_run` passes them on with
# `executor_options={...}`.

# %%
server.stop()

# %% [markdown]
# **Next:** `04_conditions_and_state`: steps that run only when a condition holds, and
# runs that can be paused, inspected and resumed.
