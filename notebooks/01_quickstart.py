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
# # 01 · Quickstart: a goal in, a graph of tool calls out
#
# Real tasks need several tools working together. The classic first example chains two:
# get the weather, then recommend an outfit from it. tooldag asks an LLM to write the
# **plan** (a JSON graph of tool calls), **validates** it (known tools, references that
# resolve, arguments that fit), and **runs** it, in parallel wherever the graph allows.
# One call does all of it: `plan_and_run(goal)`.
#
# Everything here runs offline: the first cell starts a fake OpenAI-compatible server on
# 127.0.0.1 that answers with the plan written in that cell, as a model would.

# %%
from tooldag.testing import FakeLLMServer

GOAL = "What should I wear today in London and in Paris?"

# What the (fake) model answers: a plan. Steps that do not reference each other run in
# parallel; "$weather_london.temp" reads another step's output; "answer" is a template
# filled in from the outputs once the run is over.
WARDROBE_PLAN = {
    "goal": GOAL,
    "steps": [
        {"id": "weather_london", "tool": "get_weather", "args": {"location": "London"}},
        {"id": "weather_paris", "tool": "get_weather", "args": {"location": "Paris"}},
        {
            "id": "outfit_london",
            "tool": "recommend_outfit",
            "args": {
                "temperature": "$weather_london.temp",
                "condition": "$weather_london.condition",
            },
        },
        {
            "id": "outfit_paris",
            "tool": "recommend_outfit",
            "args": {
                "temperature": "$weather_paris.temp",
                "condition": "$weather_paris.condition",
            },
        },
    ],
    "answer": (
        "London (${weather_london.temp} °C, ${weather_london.condition}): "
        "${outfit_london.outfit}. Paris (${weather_paris.temp} °C, "
        "${weather_paris.condition}): ${outfit_paris.outfit}."
    ),
}

# A rule answers every request whose goal contains the text with the given reply.
server = FakeLLMServer(rules={"wear today": WARDROBE_PLAN}).start()
llm = server.client()  # an LLMClient for http://127.0.0.1:<port>/v1

# %% [markdown]
# ### Using a real model instead
#
# The fake server speaks the real chat-completions protocol, so pointing tooldag at a
# real endpoint changes nothing else. Export the usual variables before starting
# Jupyter (tooldag never prints, logs or stores the key):
#
# ```bash
# export OPENAI_API_KEY=sk-...          # OpenAI
# export TOOLDAG_MODEL=gpt-4o-mini      # optional, this is the default
# # any OpenAI-compatible server (Ollama, vLLM, llama.cpp) works the same way:
# export OPENAI_BASE_URL=http://localhost:11434/v1 TOOLDAG_MODEL=llama3.1
# ```
#
# then set `USE_REAL_MODEL = True` below and run the notebook again. A real model
# writes its own plans, so step names and numbers will differ from the scripted ones
# (the `assert`s check the scripted plans).

# %%
USE_REAL_MODEL = False  # True: plan with OPENAI_API_KEY / OPENAI_BASE_URL / TOOLDAG_MODEL

if USE_REAL_MODEL:
    from tooldag.llm.client import LLMClient

    server.stop()
    llm = LLMClient.from_env()
llm

# %% [markdown]
# ## Tools are typed Python functions
#
# `@tool` reads a function's signature and docstring: the argument schema the model is
# shown comes from the type hints, the output schema from the return type. A `TypedDict`
# return type tells the validator which fields a plan may read, so a reference to
# `$weather_london.humidity` would be rejected before anything runs. These two tools stand
# in for real weather and outfit services; notebook 02 covers tools in depth.

# %%
from typing_extensions import TypedDict

from tooldag import tool


class Weather(TypedDict):
    location: str
    temp: float
    condition: str


class Outfit(TypedDict):
    outfit: str


FORECAST = {"London": (14.0, "rainy"), "Paris": (22.0, "sunny")}


@tool(side_effects=False)
def get_weather(location: str) -> Weather:
    """Current weather for a city.

    Args:
        location: City name, e.g. "London".
    """
    temp, condition = FORECAST.get(location, (18.0, "cloudy"))
    return {"location": location, "temp": temp, "condition": condition}


@tool(side_effects=False)
def recommend_outfit(temperature: float, condition: str) -> Outfit:
    """Recommend clothes for the weather.

    Args:
        temperature: Degrees Celsius.
        condition: For example "rainy" or "sunny".
    """
    if condition == "rainy":
        return {"outfit": "a raincoat, an umbrella and boots"}
    if temperature < 15:
        return {"outfit": "a jacket and long trousers"}
    return {"outfit": "a t-shirt and light trousers"}


# %% [markdown]
# ## One call: plan, validate, run
#
# `tools=` takes tools, plain typed functions or a `ToolRegistry` (without it, the
# built-in packs are offered); `llm=` takes the client (without it, the environment
# decides: see the cell above).

# %%
from tooldag.agent import plan_and_run

result = plan_and_run(GOAL, tools=[get_weather, recommend_outfit], llm=llm)
print(result.status)
print(result.answer)

# %% [markdown]
# No `await` was needed: Jupyter runs every cell inside an event loop, and `plan_and_run`
# notices it and runs on a helper thread with a loop of its own. (In `async` code, await
# `aplan_and_run` instead: see the end of this notebook.)
#
# ## Reading the `RunResult`
#
# | attribute | what it holds |
# |---|---|
# | `status`, `ok` | how the run ended (`succeeded`, `failed`, `cancelled`, ...) |
# | `answer` | the plan's answer template, filled in from the outputs: no second LLM call |
# | `outputs` | each succeeded step's output, by step id |
# | `steps` | a `StepRecord` per step: status, attempts, arguments, output, error, timings |
# | `plans`, `plan` | every plan the run went through (replans add more), and the last one |
# | `usage` | tokens and calls spent on planning, summed over the run |

# %%
result.outputs

# %%
from IPython.display import Markdown

from tooldag import RunResult


def steps_table(result: RunResult) -> Markdown:
    """The run's step records as a Markdown table."""
    lines = ["| step | tool | status | attempts | arguments | ms |", "|---|---|---|---|---|---|"]
    for r in result.steps.values():
        ms = f"{r.duration * 1000:.1f}" if r.duration is not None else ""
        lines.append(f"| {r.id} | {r.tool} | {r.status} | {r.attempts} | `{r.args}` | {ms} |")
    return Markdown("\n".join(lines))


steps_table(result)

# %%
print("LLM calls:", result.usage.calls, "| tokens:", result.usage.total_tokens)
print("structured output mode used:", server.requests[-1]["response_format"]["type"])
assert result.ok and result.usage.calls == 1 and len(server.requests) == 1

# %% [markdown]
# ## The plan as a graph
#
# The plan the model wrote is a graph: its edges come from the references
# (`outfit_london` reads `$weather_london.temp`, so it waits for `weather_london`), and
# the two cities' branches share nothing, so they ran side by side. Here is the JSON,
# then the result itself: a `RunResult` shows in a notebook as its graph, each step
# coloured by how it ended, and its steps. The graph is SVG drawn inline (no script, no
# network), so JupyterLab, VS Code, GitHub and an HTML export all show it; a `Plan` shows
# the same way, and `plan.to_svg(statuses)` is the picture as text, to save or embed.

# %%
plan = result.plan  # the last plan of the run (None only for a run that never had one)
assert plan is not None
print(plan.dumps())

# %%
result

# %% [markdown]
# ## In `async` code: `aplan_and_run`
#
# Inside a coroutine (a web handler, another agent framework) await the async form; it is
# the same function underneath. The cell below uses IPython's top-level `await`.

# %%
from tooldag.agent import aplan_and_run

again = await aplan_and_run(GOAL, tools=[get_weather, recommend_outfit], llm=llm)
assert again.answer == result.answer
again.answer

# %%
server.stop()

# %% [markdown]
# **Next:** `02_tools` declares tools three ways, looks at the schemas the model is
# shown, and shows what the validator says about a bad plan.
