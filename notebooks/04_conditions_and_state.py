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
# # 04 · Conditions and state
#
# Two ideas. **Conditional execution**: a step with a `when` condition runs only if it
# holds, as with alerts for cold, heat and storms. **State**: tooldag journals every step
# of every run in SQLite, so a run can be paused, read back, and resumed, even by another
# process.

# %%
from typing import Any

from tooldag.testing import FakeLLMServer


def alert_plan(city: str) -> dict[str, Any]:
    """The plan the fake model writes for "alert me about extreme weather in <city>"."""
    return {
        "goal": f"Check the weather in {city} and alert me if it is extreme",
        "steps": [
            {"id": "weather", "tool": "get_weather", "args": {"location": city}},
            {
                "id": "cold_alert",
                "tool": "send_alert",
                "args": {"message": "Freezing in ${weather.location}: ${weather.temp} °C"},
                "when": {"ref": "$weather.temp", "op": "<", "value": 0},
            },
            {
                "id": "heat_alert",
                "tool": "send_alert",
                "args": {"message": "Heatwave in ${weather.location}: ${weather.temp} °C"},
                "when": {"ref": "$weather.temp", "op": ">", "value": 35},
            },
            {
                "id": "storm_alert",
                "tool": "send_alert",
                "args": {"message": "Storm over ${weather.location}"},
                "when": {
                    "any": [
                        {"ref": "$weather.condition", "op": "contains", "value": "storm"},
                        {"ref": "$weather.wind_kmh", "op": ">=", "value": 60},
                    ]
                },
            },
            # Reads cold_alert's output: skipped whenever cold_alert is.
            {"id": "page_oncall", "tool": "page_oncall", "args": {"alert_id": "$cold_alert.id"}},
        ],
        "answer": "${weather.location}: ${weather.temp} °C, ${weather.condition}.",
    }


CITIES = ["Oslo", "Dubai", "Lisbon"]
server = FakeLLMServer(rules={city: alert_plan(city) for city in CITIES}).start()
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
# ## Conditional alerts
#
# Three cities, three kinds of weather. `send_alert` records what it sends so we can see
# which alerts went out.

# %%
from typing_extensions import TypedDict

from tooldag import ToolRegistry, tool

WEATHER: dict[str, dict[str, Any]] = {
    "Oslo": {"temp": -8.0, "condition": "snow", "wind_kmh": 20.0},
    "Dubai": {"temp": 41.0, "condition": "sunny", "wind_kmh": 10.0},
    "Lisbon": {"temp": 19.0, "condition": "thunderstorm", "wind_kmh": 65.0},
}
SENT: list[str] = []


class Weather(TypedDict):
    location: str
    temp: float
    condition: str
    wind_kmh: float


class Alert(TypedDict):
    id: str
    message: str


@tool(side_effects=False)
def get_weather(location: str) -> Weather:
    """Current weather for a city."""
    now = WEATHER[location]
    return {
        "location": location,
        "temp": now["temp"],
        "condition": now["condition"],
        "wind_kmh": now["wind_kmh"],
    }


@tool
def send_alert(message: str) -> Alert:
    """Send a push notification."""
    SENT.append(message)
    return {"id": f"A{len(SENT)}", "message": message}


@tool
def page_oncall(alert_id: str) -> dict[str, str]:
    """Page the on-call engineer about an alert."""
    return {"paged": alert_id}


alerts = ToolRegistry([get_weather, send_alert, page_oncall])

# %% [markdown]
# Every run is journalled in a `RunStore` (one SQLite file; here a throwaway one in a
# temporary directory): we will read it back in the second half.

# %%
import tempfile
from pathlib import Path

from tooldag import RunResult
from tooldag.agent import plan_and_run
from tooldag.durable.store import RunStore

scratch = tempfile.TemporaryDirectory(prefix="tooldag-04-")  # removed at the end
workdir = Path(scratch.name)
store = RunStore(workdir / "runs.db")

results: dict[str, RunResult] = {}
for city in CITIES:
    goal = f"Check the weather in {city} and alert me if it is extreme"
    # A run id of our own (else a random one) names the run in the store.
    run_id = f"alerts-{city.lower()}"
    results[city] = plan_and_run(goal, tools=alerts, llm=llm, store=store, run_id=run_id)
    print(f"{city:7} {results[city].answer}")
SENT

# %% [markdown]
# Each step's status, per city: a condition that does not hold makes a step `skipped`
# (not failed), and a step that reads a skipped step's output (`page_oncall` reads
# `$cold_alert.id`) is skipped too. The run still succeeds.

# %%
from IPython.display import Markdown, display

steps = list(results["Oslo"].steps)
lines = ["| city | " + " | ".join(steps) + " |", "|---" * (len(steps) + 1) + "|"]
for city, result in results.items():
    lines.append(f"| {city} | " + " | ".join(result.steps[s].status for s in steps) + " |")
display(Markdown("\n".join(lines)))

print(results["Dubai"].steps["cold_alert"].reason)
print(results["Dubai"].steps["page_oncall"].reason)
assert [r.status for r in results.values()] == ["succeeded"] * 3
assert len(SENT) == 3  # cold in Oslo, heat in Dubai, storm in Lisbon

# %% [markdown]
# In the graph, conditional steps are the dashed boxes, coloured by what happened in
# Lisbon:

# %%
from IPython.display import SVG

lisbon = results["Lisbon"]
assert lisbon.plan is not None  # a run that got as far as running has a plan
statuses = {sid: record.status for sid, record in lisbon.steps.items()}
SVG(lisbon.plan.to_svg(statuses))

# %% [markdown]
# ## State: pause, inspect, resume
#
# A three-step workflow (process → analyse → report), run under a run id of our choosing
# by a `DurableExecutor`: an executor bound to a store, which journals every step and
# starts, pauses and resumes runs by id (tooldag also exports it as
# `StatefulWorkflowExecutor`, for code written against that name). It uses the same store.
# A plan does not have to come from a model: this one is written by hand.

# %%
import asyncio
from collections import Counter

from tooldag import Plan

CALLS: Counter[str] = Counter()


@tool(side_effects=False)
async def process_data(source: str) -> dict[str, int]:
    """Load and clean a data set."""
    CALLS["process_data"] += 1
    await asyncio.sleep(0.05)
    return {"rows": 1200}


@tool(side_effects=False)
async def analyze(rows: int) -> dict[str, float]:
    """Compute the week's growth."""
    CALLS["analyze"] += 1
    await asyncio.sleep(0.05)
    return {"growth": 0.12}


@tool
async def generate_report(growth: float) -> dict[str, str]:
    """Write the report."""
    CALLS["generate_report"] += 1
    await asyncio.sleep(0.05)
    return {"report": f"Sales grew {growth:.0%} this week."}


reporting = ToolRegistry([process_data, analyze, generate_report])
REPORT_PLAN = Plan.model_validate(
    {
        "goal": "Weekly sales report",
        "steps": [
            {"id": "process", "tool": "process_data", "args": {"source": "sales.csv"}},
            {"id": "analysis", "tool": "analyze", "args": {"rows": "$process.rows"}},
            {"id": "report", "tool": "generate_report", "args": {"growth": "$analysis.growth"}},
        ],
        "answer": "${report.report}",
    }
)

# %% [markdown]
# `pause(run_id)` stops a run from starting new steps and lets running ones finish; the
# run ends `paused`. It may be called from any thread (a button, a signal handler). Here
# an event callback calls it as soon as the first step succeeds, like a breakpoint.

# %%
from tooldag import Event, EventType
from tooldag.durable.runner import DurableExecutor

runs = DurableExecutor(reporting, store=store)


def pause_after_process(event: Event) -> None:
    if event.type is EventType.STEP_SUCCEEDED and event.step_id == "process":
        runs.pause(event.run_id)


stop_watching = runs.executor.bus.subscribe(pause_after_process)
paused = runs.start("weekly-report", REPORT_PLAN)
stop_watching()

print(paused.status)
{sid: record.status.value for sid, record in paused.steps.items()}

# %% [markdown]
# ### Inspecting the store
#
# The run's row, as `tooldag runs list` shows it (without its timestamps and the process
# that owns it):

# %%
weekly = store.get_run("weekly-report")  # None for a run id the store does not have
assert weekly is not None
row = weekly.to_json()
{key: row[key] for key in ("id", "goal", "status", "answer", "plan_versions", "steps")}

# %% [markdown]
# The store is a plain SQLite file, one row per (run, step id), where a run is its row's
# integer `key` in `runs`; any SQLite client can read it. The completed step's output is
# there, ready to be reused:

# %%
import sqlite3
from contextlib import closing

with closing(sqlite3.connect(store.path)) as db:
    rows = db.execute(
        "SELECT step_id, s.status, attempts, output FROM steps s "
        "JOIN runs r ON r.key = s.run WHERE r.id = ?",
        ("weekly-report",),
    ).fetchall()
rows

# %% [markdown]
# And the journal of events, in order:

# %%
[(event.type.value, event.step_id) for event in store.events("weekly-report")]

# %% [markdown]
# ### Resuming, as another process would
#
# A new process opens the same file and resumes by run id. Completed steps are not run
# again (their outputs come from the store): `process_data` still ran once.

# %%
from tooldag.durable.runner import resume

reopened = RunStore(workdir / "runs.db")
resumed = resume("weekly-report", reporting, store=reopened)

print(resumed.status, "|", resumed.answer)
print(dict(CALLS))
assert resumed.ok and resumed.steps["process"].reused
assert CALLS == {"process_data": 1, "analyze": 1, "generate_report": 1}

# %%
from tooldag.observe.plotting import gantt

ax = gantt(resumed, title="the resumed run: process reused, the rest ran")

# %% [markdown]
# A completed run id cannot be started again (a failed, paused or interrupted one can):

# %%
from tooldag import RunStateError

try:
    runs.start("weekly-report", REPORT_PLAN)
except RunStateError as exc:
    print(exc)

# %% [markdown]
# Every run of this notebook is in the store, the alert runs of `plan_and_run` included:

# %%
[(info.id, info.status, info.goal) for info in reopened.list_runs()]

# %% [markdown]
# The command line reads the same file: `tooldag runs list`, `runs show`, `runs resume`
# and `runs cancel` work on any stored run (here through `python -m tooldag`, so that it
# is this environment's tooldag).

# %%
import subprocess
import sys

command = [sys.executable, "-m", "tooldag", "runs", "show", "weekly-report"]
shown = subprocess.run(
    [*command, "--store", str(workdir / "runs.db")], capture_output=True, text=True
)
print(shown.stdout or shown.stderr)

# %%
server.stop()
store.close()
reopened.close()
scratch.cleanup()

# %% [markdown]
# **Next:** `05_failures_and_replanning`: retries, a tool that fails, a replan that keeps
# the work already done, and compensation when the run is given up.
