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
# # 02 · Tools: declaring them, their schemas, and what the validator says
#
# A tool is a name, a description, a JSON Schema for its arguments, optionally one for
# its output, and optionally a Python function. This notebook declares tools the three
# ways tooldag accepts (a typed function with `@tool`, the explicit
# `registry.register(...)`, and a bare JSON Schema), looks at what the model is shown,
# and then feeds the validator the kind of plan a model gets wrong.
#
# The first cell starts the fake model. For this notebook it makes two classic mistakes
# on its first try, so that we can watch tooldag send the validator's findings back.

# %%
from tooldag.testing import FakeLLMServer, Rule

GOAL = "Is it warm enough in Rome for a picnic? Tell me what to wear."

# The model's first plan: a misspelt tool and a missing argument.
FLAWED_PLAN = {
    "goal": GOAL,
    "steps": [
        {"id": "weather", "tool": "get_wether", "args": {"location": "Rome"}},
        {"id": "outfit", "tool": "recommend_outfit", "args": {"temperature": "$weather.temp"}},
    ],
}
# Its answer once it has been told what is wrong.
FIXED_PLAN = {
    "goal": GOAL,
    "steps": [
        {"id": "weather", "tool": "get_weather", "args": {"location": "Rome"}},
        {
            "id": "outfit",
            "tool": "recommend_outfit",
            "args": {"temperature": "$weather.temp", "condition": "$weather.condition"},
        },
    ],
    "answer": "It is ${weather.temp} °C and ${weather.condition} in Rome: wear ${outfit.outfit}.",
}

server = FakeLLMServer(
    rules=[
        # tooldag's re-ask begins "That plan cannot run. Fix these problems:"
        Rule("Fix these problems", FIXED_PLAN),
        Rule("picnic", FLAWED_PLAN),
    ]
).start()
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
# ## 1. A typed function with `@tool`
#
# The argument schema comes from the type hints (`Literal` becomes an `enum`, a default
# makes an argument optional), descriptions from the docstring's `Args:` section, and the
# output schema from the return type. pydantic validates the arguments before the
# function is called.

# %%
import json
from typing import Literal

from typing_extensions import TypedDict

from tooldag import tool


class Weather(TypedDict):
    location: str
    temp: float
    condition: str


@tool(side_effects=False, timeout=5.0)
def get_weather(location: str, units: Literal["celsius", "fahrenheit"] = "celsius") -> Weather:
    """Current weather for a city.

    Args:
        location: City name, e.g. "Rome".
        units: Temperature scale of `temp`.
    """
    temp = 24.0 if units == "celsius" else 75.2
    return {"location": location, "temp": temp, "condition": "sunny"}


print(json.dumps(get_weather.parameters, indent=2))

# %%
get_weather.output_schema

# %% [markdown]
# What the model is shown is OpenAI's function-calling format (strict mode where the
# schema allows it):

# %%
print(json.dumps(get_weather.openai_schema(), indent=2))

# %% [markdown]
# Beside the schema, a tool carries metadata the executor and the planner use:
# `side_effects=False` marks it read-only (safe to retry, never compensated, no approval
# asked), `timeout` bounds each call, `retry=RetryPolicy(...)` says how transient
# failures are retried, and `compensate=Compensation(...)` names the tool that undoes it
# (notebook 05 puts the last two to work).
#
# ## 2. The explicit form: `registry.register(...)`
#
# `ToolRegistry.register` declares a tool without a decorator: a pydantic model for the
# arguments, a category and a version, beside a plain function that knows nothing of
# tooldag (one you cannot or would rather not decorate). The registry builds the same
# `Tool` as `@tool` does:

# %%
from pydantic import BaseModel, Field

from tooldag import ToolCategory, ToolRegistry


class OutfitParams(BaseModel):
    temperature: float = Field(description="Degrees Celsius")
    condition: str = Field(description='For example "rainy" or "sunny"')


def recommend_outfit(temperature: float, condition: str) -> dict[str, str]:
    if condition == "rainy":
        return {"outfit": "a raincoat and boots"}
    return {"outfit": "a t-shirt and shorts" if temperature >= 20 else "a jacket"}


registry = ToolRegistry([get_weather])
registry.register(
    name="recommend_outfit",
    description="Recommend an outfit for the weather",
    category=ToolCategory.COMPUTATION,
    version="1.0.0",
    parameters_schema=OutfitParams,
    function=recommend_outfit,
)
registry.names()

# %% [markdown]
# Arguments are checked before a tool runs, and the error names the tool and the field
# (the same message goes back to the model when a plan gets it wrong):

# %%
from tooldag import ToolArgumentError

print(registry.execute("get_weather", location="Rome"))
try:
    registry.execute("get_weather", location="Rome", units="kelvin")
except ToolArgumentError as exc:
    print(exc)

# %% [markdown]
# ## 3. Tools known only by their schema
#
# A remote or MCP tool can be declared by its JSON Schema alone. The planner can use it
# and the validator can check plans against it, though it cannot run in this process
# (`tooldag validate --tools tools.json` reads the same form from a file).

# %%
registry.add_schema_tool(
    name="send_alert",
    description="Send a push notification to the user's phone",
    parameters={
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "severity": {"enum": ["low", "high"]},
        },
        "required": ["message"],
    },
)
[(t.name, t.category, "python" if t.function else "schema only") for t in registry]

# %% [markdown]
# ## 4. What the validator says about a bad plan
#
# A plan is checked before anything runs. `validate(plan, registry)` never raises: it
# returns every `Issue` it finds, each with a stable `code`, the step, a JSON path, a
# message written for an LLM to act on, and a hint where one helps. This plan has the
# mistakes models make most: a wrong argument name, a field of the wrong type, a field
# the tool's output does not have, a misspelt tool, a step that does not exist, and two
# steps waiting for each other.

# %%
from IPython.display import Markdown

from tooldag.plan.parse import parse_plan
from tooldag.validate.validator import validate

bad = parse_plan(
    {
        "steps": [
            {"id": "weather", "tool": "get_weather", "args": {"city": "Rome"}},
            {
                "id": "outfit",
                "tool": "recommend_outfit",
                "args": {"temperature": "$weather.location", "condition": "$weather.sky"},
            },
            {"id": "alert", "tool": "send_alrt", "args": {"message": "Wear ${outfit.outfit}"}},
            {"id": "check", "tool": "send_alert", "args": {"message": "${confirm.outfit}"}},
            {
                "id": "confirm",
                "tool": "recommend_outfit",
                "args": {"temperature": "$forecast.temp", "condition": "${check}"},
            },
        ]
    }
)
issues = validate(bad, registry)
rows = [f"| `{i.code}` | {i.step} | `{i.path}` | {i.message} | {i.hint or ''} |" for i in issues]
header = "| code | step | path | message | hint |\n|---|---|---|---|---|\n"
Markdown(header + "\n".join(rows).replace("$", "&#36;"))

# %%
codes = {issue.code for issue in issues}
assert {"unknown_tool", "unknown_step", "cycle", "type_mismatch", "unknown_field"} <= codes
sorted(codes)

# %% [markdown]
# Before validation, the lenient parser accepts what models actually send (a fenced code
# block, prose around it, `tool_name` and `parameters` instead of `tool` and `args`, a
# bare list of steps) and turns it into the one canonical `Plan` everything else sees:

# %%
llm_text = """Sure! Here is the plan:
```json
[{"id": "weather", "tool_name": "get_weather", "parameters": {"location": "Rome"}}]
```
Let me know if you need anything else."""

print(parse_plan(llm_text).dumps())

# %% [markdown]
# ## 5. The feedback loop: the validator's issues go back to the model
#
# When the model's plan is rejected, `plan_and_run` re-asks with the issues (a bounded
# number of times) instead of running anything. Our fake model's first plan misspells
# `get_weather` and forgets an argument:

# %%
from tooldag.agent import plan_and_run

result = plan_and_run(GOAL, tools=registry, llm=llm)
print(result.status, "|", result.answer)
print("LLM calls:", result.usage.calls)

# %% [markdown]
# This is the message the model received on its second call:

# %%
print(server.requests[-1]["messages"][-1]["content"])
assert result.ok and result.usage.calls == 2

# %% [markdown]
# ## 6. Built-in tool packs
#
# tooldag ships packs of ready tools (`calc`, `files`, `data`, `time`, `weather`, `web`,
# `mail`, `text`). `load_registry()` with no argument loads all of them, which is what
# `plan_and_run` offers when `tools=` is left out; here just the calculator, which needs
# no network:

# %%
from tooldag import load_registry
from tooldag.registry.loading import builtin_packs

print(builtin_packs())
calc = load_registry(["calc"])
calc.execute("calculate", expression="2 * (3 + 4) ** 2")

# %%
server.stop()

# %% [markdown]
# **Next:** `03_parallel_dags` runs a data pipeline and measures what running independent
# branches in parallel buys.
