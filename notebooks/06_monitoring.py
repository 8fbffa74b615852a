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
# # 06 · Monitoring: summary, timeline, Gantt chart, and live events
#
# tooldag's executor knows nothing about monitoring: every state change is an **event**
# on a bus, and a `Monitor` is one subscriber among others (the run store, the REPL's
# live view, your callbacks). From the events alone it records when each step started and
# ended, and answers `get_workflow_summary()` (counts and times for the run) and
# `get_step_timeline()` (one row per step, in start order). No special executor is needed
# to be watched: the monitor listens to the bus the run emits on.
#
# The example gathers data in parallel: weather, a stock price and news, fetched together
# and summarised, with a flaky stock API and two conditional steps.

# %%
from tooldag.testing import FakeLLMServer

GOAL = "Prepare my morning briefing"

BRIEFING_PLAN = {
    "goal": GOAL,
    "steps": [
        {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
        {"id": "stock", "tool": "get_stock_price", "args": {"symbol": "AAPL"}},
        {"id": "news", "tool": "search_news", "args": {"query": "technology"}},
        {
            "id": "briefing",
            "tool": "summarize",
            "args": {
                "weather": "$weather",
                "price": "$stock.price",
                "headlines": "$news.headlines",
            },
        },
        {
            "id": "umbrella",
            "tool": "send_reminder",
            "args": {"message": "Take an umbrella: ${weather.condition} in London"},
            "when": {"ref": "$weather.condition", "op": "==", "value": "rainy"},
        },
        {
            "id": "price_alert",
            "tool": "send_reminder",
            "args": {"message": "AAPL fell ${stock.change_pct}%"},
            "when": {"ref": "$stock.change_pct", "op": "<", "value": -3},
        },
    ],
    "answer": "${briefing.text}",
}

server = FakeLLMServer(rules={"morning briefing": BRIEFING_PLAN}).start()
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

# %%
import asyncio

from typing_extensions import TypedDict

from tooldag import RetryPolicy, ToolRegistry, TransientToolError, tool


class Weather(TypedDict):
    location: str
    temp: float
    condition: str


class Quote(TypedDict):
    symbol: str
    price: float
    change_pct: float


class News(TypedDict):
    headlines: list[str]


class Briefing(TypedDict):
    text: str


STOCK_API = {"calls": 0}


@tool(side_effects=False)
async def get_weather(location: str) -> Weather:
    """Current weather for a city."""
    await asyncio.sleep(0.15)
    return {"location": location, "temp": 12.0, "condition": "rainy"}


@tool(side_effects=False, retry=RetryPolicy(attempts=3, initial_backoff=0.05, max_backoff=0.1))
async def get_stock_price(symbol: str) -> Quote:
    """Latest price of a stock (the API drops every other first request)."""
    STOCK_API["calls"] += 1
    await asyncio.sleep(0.08)
    if STOCK_API["calls"] % 2 == 1:
        raise TransientToolError("stock API: 503 Service Unavailable")
    return {"symbol": symbol, "price": 227.5, "change_pct": -0.8}


@tool(side_effects=False)
async def search_news(query: str) -> News:
    """Top headlines for a query."""
    await asyncio.sleep(0.25)
    return {"headlines": ["Chip makers rally", "New battery breakthrough"]}


@tool(side_effects=False)
async def summarize(weather: Weather, price: float, headlines: list[str]) -> Briefing:
    """Write the briefing."""
    await asyncio.sleep(0.05)
    text = (
        f"{weather['temp']:.0f} °C and {weather['condition']} in {weather['location']}; "
        f"AAPL at {price}; headlines: {'; '.join(headlines)}."
    )
    return {"text": text}


@tool
async def send_reminder(message: str) -> dict[str, str]:
    """Send a reminder to the user's phone."""
    await asyncio.sleep(0.02)
    return {"sent": message}


briefing_tools = ToolRegistry([get_weather, get_stock_price, search_news, summarize, send_reminder])

# %% [markdown]
# ## Attach a monitor, run
#
# A `Monitor` subscribes to an `EventBus`; `plan_and_run(..., bus=bus)` emits the run's
# events on it. The same bus also feeds a plain list, for the charts below.

# %%
from tooldag import Event, EventBus
from tooldag.agent import plan_and_run
from tooldag.observe.monitor import Monitor

bus = EventBus()
monitor = Monitor(bus)
events: list[Event] = []
bus.subscribe(events.append)

# run_id names the run (else it gets a random id), in the summary and the charts below.
result = plan_and_run(GOAL, tools=briefing_tools, llm=llm, bus=bus, run_id="briefing")
result.answer

# %% [markdown]
# ## The summary
#
# Counts by status, and three different times: `total_duration` is the work done (the sum
# of step times), `wall_time` the run's elapsed time, `max_parallel` the most steps that
# ran at once.

# %%
summary = monitor.get_workflow_summary()
assert summary["successful"] == 5 and summary["skipped"] == 1 and not summary["is_active"]
summary

# %% [markdown]
# ## The step timeline
#
# One entry per step in start order: status, attempts, start `offset` from the run's
# start, duration, and which steps it overlapped with.

# %%
from IPython.display import Markdown, display

lines = [
    "| step | tool | status | attempts | offset s | duration s | ran alongside |",
    "|---|---|---|---|---|---|---|",
]
for row in monitor.get_step_timeline():
    offset = f"{row['offset']:.3f}" if row["offset"] is not None else ""
    duration = f"{row['duration']:.3f}" if row["duration"] is not None else ""
    lines.append(
        f"| {row['step_id']} | {row['tool']} | {row['status']} | {row['attempts']} "
        f"| {offset} | {duration} | {', '.join(row['overlaps'])} |"
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# The same timeline as a terminal would show it (`tooldag` prints it with rich), and the
# plan coloured by status:

# %%
from IPython.display import SVG

monitor.print_timeline()
assert result.plan is not None  # a run that got as far as running has a plan
display(SVG(result.plan.to_svg(monitor.statuses())))

# %% [markdown]
# ## A Gantt chart of the run
#
# Drawn from the events, so each attempt of the retried stock request is its own bar
# (the failed one hatched); the skipped `price_alert` is a marker at the moment its
# condition was found false.

# %%
from tooldag.observe.plotting import gantt

ax = gantt(events, title="morning briefing")

# %% [markdown]
# `ax.figure.savefig("briefing.png")` keeps it. `gantt` also draws from a `RunResult`,
# from the monitor, or from a stored run's journal (`RunStore.events(run_id)`).
#
# ## Events as they stream
#
# ### A callback
#
# `on_event=` is called with every event as it happens (on the thread running the
# run). A one-line log:

# %%
first_ts: float | None = None


def log_event(event: Event) -> None:
    global first_ts
    first_ts = event.ts if first_ts is None else first_ts
    where = f" {event.step_id}" if event.step_id else ""
    attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
    print(f"{event.ts - first_ts:6.3f}s  {event.type.value}{where}{attempt}")


STOCK_API["calls"] = 0
_ = plan_and_run(GOAL, tools=briefing_tools, llm=llm, on_event=log_event)

# %% [markdown]
# ### A live status line
#
# A display handle updated from the callback: the line below changes while the run goes,
# and ends on the final count.

# %%
from collections import Counter

from tooldag import EventType

ENDED = {
    EventType.STEP_SUCCEEDED: "succeeded",
    EventType.STEP_FAILED: "failed",
    EventType.STEP_SKIPPED: "skipped",
    EventType.STEP_BLOCKED: "blocked",
}
counts: Counter[str] = Counter()
running: set[str] = set()
status_line = display(Markdown("waiting for the plan..."), display_id=True)


def update_status(event: Event) -> None:
    if event.type is EventType.STEP_STARTED and event.step_id:
        running.add(event.step_id)
    elif event.type in ENDED and event.step_id:
        running.discard(event.step_id)
        counts[ENDED[event.type]] += 1
    done = ", ".join(f"{n} {state}" for state, n in counts.items())
    now = ", ".join(sorted(running)) or "nothing"
    status_line.update(Markdown(f"**{done or 'starting'}** · running: {now}"))


STOCK_API["calls"] = 0
_ = plan_and_run(GOAL, tools=briefing_tools, llm=llm, on_event=update_status)

# %% [markdown]
# ### An async iterator
#
# From async code, `bus.stream()` yields events as they are emitted, until the run's
# `run_finished`. Here a watcher task consumes it while `aplan_and_run` runs on the
# notebook's own loop.

# %%
from tooldag.agent import aplan_and_run

live_bus = EventBus()


async def watch() -> list[str]:
    seen: list[str] = []
    async for event in live_bus.stream():
        seen.append(event.type.value)
    return seen


watcher = asyncio.create_task(watch())
await asyncio.sleep(0)  # let the watcher subscribe before the run starts
STOCK_API["calls"] = 0
streamed = await aplan_and_run(GOAL, tools=briefing_tools, llm=llm, bus=live_bus)
seen = await watcher
assert "step_started" in seen and seen[-1] == "run_finished"
Counter(seen)

# %% [markdown]
# ## Monitoring after the fact: the journal
#
# A run stored in a `RunStore` keeps its events, so a monitor (or a chart) can be rebuilt
# later, in another process, from the journal alone:

# %%
from tooldag.durable.store import RunStore

with RunStore(":memory:") as store:
    STOCK_API["calls"] = 0
    stored = plan_and_run(GOAL, tools=briefing_tools, llm=llm, store=store, run_id="stored")
    journal = store.events(stored.run_id)

replayed = Monitor.from_events(journal).get_workflow_summary()
print({key: replayed[key] for key in ("status", "successful", "skipped", "max_parallel")})
ax = gantt(journal, title=f"run {stored.run_id!r}, from its journal")

# %%
server.stop()

# %% [markdown]
# That is the whole tour: chaining, conditions, state, DAGs, recovery and monitoring,
# each a few lines of tooldag. From a terminal, `tooldag chat` plans and runs
# goals interactively, and `tooldag runs` lists, shows and resumes stored runs.
