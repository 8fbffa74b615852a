"""Generate the walkthrough notebooks (``notebooks/*.ipynb``) from the cells written below.

The notebooks are generated rather than edited in Jupyter so that a change to one is a readable
diff of this file, and so that they are committed without outputs. After editing a cell:

    python notebooks/_build.py           # rewrite the six notebooks
    python notebooks/_build.py --check   # exit 1 if a committed notebook differs from its cells

``tests/test_notebooks.py`` runs the check and executes every notebook offline.

Each notebook teaches one part of the seed lesson (tool orchestration and workflows) with
tooldag, starts a fake OpenAI-compatible server in its first code cell, and shows in the next
cell how to plan with a real endpoint instead.
"""

# The cells below are linted and formatted as notebooks, where they start at column 0; here they
# sit indented inside strings, so their longest lines pass 100 columns in this file only.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

__all__ = ["NOTEBOOKS", "build", "main", "render"]

HERE = Path(__file__).resolve().parent

Cell = tuple[str, str]


def md(text: str) -> Cell:
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> Cell:
    return ("code", textwrap.dedent(text).strip("\n"))


def real_model(note: str = "") -> list[Cell]:
    """The visible, switched-off cell that plans with a real endpoint instead of the fake one."""
    extra = f" {note}" if note else ""
    return [
        md(
            f"""
            ### Using a real model instead

            The fake server speaks the real chat-completions protocol, so pointing tooldag at a
            real endpoint changes nothing else. Export the usual variables before starting
            Jupyter (tooldag never prints, logs or stores the key):

            ```bash
            export OPENAI_API_KEY=sk-...          # OpenAI
            export TOOLDAG_MODEL=gpt-4o-mini      # optional, this is the default
            # any OpenAI-compatible server (Ollama, vLLM, llama.cpp) works the same way:
            export OPENAI_BASE_URL=http://localhost:11434/v1 TOOLDAG_MODEL=llama3.1
            ```

            then set `USE_REAL_MODEL = True` below and run the notebook again. A real model
            writes its own plans, so step names and numbers will differ from the scripted ones
            (the `assert`s check the scripted plans).{extra}
            """
        ),
        code(
            """
            USE_REAL_MODEL = False  # True: plan with OPENAI_API_KEY / OPENAI_BASE_URL / TOOLDAG_MODEL

            if USE_REAL_MODEL:
                from tooldag.llm.client import LLMClient

                server.stop()
                llm = LLMClient.from_env()
            llm
            """
        ),
    ]


# --------------------------------------------------------------------------- 01 quickstart

QUICKSTART: list[Cell] = [
    md(
        """
        # 01 · Quickstart: a goal in, a graph of tool calls out

        Real tasks need several tools working together. The lesson's first example chains two:
        get the weather, then recommend an outfit from it. tooldag asks an LLM to write the
        **plan** (a JSON graph of tool calls), **validates** it (known tools, references that
        resolve, arguments that fit), and **runs** it, in parallel wherever the graph allows.
        One call does all of it: `plan_and_run(goal)`.

        Everything here runs offline: the first cell starts a fake OpenAI-compatible server on
        127.0.0.1 that answers with the plan written in that cell, as a model would.
        """
    ),
    code(
        """
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
        """
    ),
    *real_model(),
    md(
        """
        ## Tools are typed Python functions

        `@tool` reads a function's signature and docstring: the argument schema the model is
        shown comes from the type hints, the output schema from the return type. A `TypedDict`
        return type tells the validator which fields a plan may read, so a reference to
        `$weather_london.humidity` would be rejected before anything runs. These two tools stand
        in for the lesson's weather and outfit tools; notebook 02 covers tools in depth.
        """
    ),
    code(
        '''
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
        '''
    ),
    md(
        """
        ## One call: plan, validate, run

        `tools=` takes tools, plain typed functions or a `ToolRegistry` (without it, the
        built-in packs are offered); `llm=` takes the client (without it, the environment
        decides: see the cell above).
        """
    ),
    code(
        """
        from tooldag.agent import plan_and_run

        result = plan_and_run(GOAL, tools=[get_weather, recommend_outfit], llm=llm)
        print(result.status)
        print(result.answer)
        """
    ),
    md(
        """
        No `await` was needed: Jupyter runs every cell inside an event loop, and `plan_and_run`
        notices it and runs on a helper thread with a loop of its own. (In `async` code, await
        `aplan_and_run` instead: see the end of this notebook.)

        ## Reading the `RunResult`

        | attribute | what it holds |
        |---|---|
        | `status`, `ok` | how the run ended (`succeeded`, `failed`, `cancelled`, ...) |
        | `answer` | the plan's answer template, filled in from the outputs: no second LLM call |
        | `outputs` | each succeeded step's output, by step id |
        | `steps` | a `StepRecord` per step: status, attempts, arguments, output, error, timings |
        | `plans`, `plan` | every plan the run went through (replans add more), and the last one |
        | `usage` | tokens and calls spent on planning, summed over the run |
        """
    ),
    code(
        """
        result.outputs
        """
    ),
    code(
        """
        from IPython.display import Markdown, display


        def steps_table(result):
            \"\"\"The run's step records as a Markdown table.\"\"\"
            lines = ["| step | tool | status | attempts | arguments | ms |", "|---|---|---|---|---|---|"]
            for r in result.steps.values():
                ms = f"{r.duration * 1000:.1f}" if r.duration is not None else ""
                lines.append(f"| {r.id} | {r.tool} | {r.status} | {r.attempts} | `{r.args}` | {ms} |")
            return Markdown("\\n".join(lines))


        steps_table(result)
        """
    ),
    code(
        """
        print("LLM calls:", result.usage.calls, "| tokens:", result.usage.total_tokens)
        print("structured output mode used:", server.requests[-1]["response_format"]["type"])
        assert result.ok and result.usage.calls == 1 and len(server.requests) == 1
        """
    ),
    md(
        """
        ## The plan as a graph

        The plan the model wrote is a graph: its edges come from the references
        (`outfit_london` reads `$weather_london.temp`, so it waits for `weather_london`), and
        the two cities' branches share nothing, so they ran side by side. Here is the JSON,
        then the graph as Mermaid (rendered by JupyterLab 4.1+, GitHub and most Markdown
        viewers), coloured by how each step ended, then the same graph drawn with matplotlib
        for any front end.
        """
    ),
    code(
        """
        print(result.plan.dumps())
        """
    ),
    code(
        """
        from tooldag.observe.mermaid import to_mermaid

        statuses = {sid: record.status for sid, record in result.steps.items()}
        display(Markdown(f"```mermaid\\n{to_mermaid(result.plan, statuses)}\\n```"))
        """
    ),
    code(
        """
        from tooldag.observe.plotting import plot_dag

        plot_dag(result.plan, statuses);
        """
    ),
    md(
        """
        ## In `async` code: `aplan_and_run`

        Inside a coroutine (a web handler, another agent framework) await the async form; it is
        the same function underneath. The cell below uses IPython's top-level `await`.
        """
    ),
    code(
        """
        from tooldag.agent import aplan_and_run

        again = await aplan_and_run(GOAL, tools=[get_weather, recommend_outfit], llm=llm)
        assert again.answer == result.answer
        again.answer
        """
    ),
    code(
        """
        server.stop()
        """
    ),
    md(
        """
        **Next:** `02_tools` declares tools three ways, looks at the schemas the model is
        shown, and shows what the validator says about a bad plan.
        """
    ),
]


# --------------------------------------------------------------------------- 02 tools

TOOLS: list[Cell] = [
    md(
        """
        # 02 · Tools: declaring them, their schemas, and what the validator says

        A tool is a name, a description, a JSON Schema for its arguments, optionally one for
        its output, and optionally a Python function. This notebook declares tools the three
        ways tooldag accepts (a typed function with `@tool`, the lesson's explicit
        `registry.register(...)`, and a bare JSON Schema), looks at what the model is shown,
        and then feeds the validator the kind of plan a model gets wrong.

        The first cell starts the fake model. For this notebook it makes two classic mistakes
        on its first try, so that we can watch tooldag send the validator's findings back.
        """
    ),
    code(
        """
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
        """
    ),
    *real_model(),
    md(
        """
        ## 1. A typed function with `@tool`

        The argument schema comes from the type hints (`Literal` becomes an `enum`, a default
        makes an argument optional), descriptions from the docstring's `Args:` section, and the
        output schema from the return type. pydantic validates the arguments before the
        function is called.
        """
    ),
    code(
        '''
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
        '''
    ),
    code(
        """
        get_weather.output_schema
        """
    ),
    md(
        """
        What the model is shown is OpenAI's function-calling format (strict mode where the
        schema allows it):
        """
    ),
    code(
        """
        print(json.dumps(get_weather.openai_schema(), indent=2))
        """
    ),
    md(
        """
        Beside the schema, a tool carries metadata the executor and the planner use:
        `side_effects=False` marks it read-only (safe to retry, never compensated, no approval
        asked), `timeout` bounds each call, `retry=RetryPolicy(...)` says how transient
        failures are retried, and `compensate=Compensation(...)` names the tool that undoes it
        (notebook 05 puts the last two to work).

        ## 2. The lesson's explicit form: `registry.register(...)`

        The seed lesson registers tools with a pydantic model for the arguments, a category and
        a version. That form works as is:
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        Arguments are checked before a tool runs, and the error names the tool and the field
        (the same message goes back to the model when a plan gets it wrong):
        """
    ),
    code(
        """
        from tooldag import ToolArgumentError

        print(registry.execute("get_weather", location="Rome"))
        try:
            registry.execute("get_weather", location="Rome", units="kelvin")
        except ToolArgumentError as exc:
            print(exc)
        """
    ),
    md(
        """
        ## 3. Tools known only by their schema

        A remote or MCP tool can be declared by its JSON Schema alone. The planner can use it
        and the validator can check plans against it, though it cannot run in this process
        (`tooldag validate --tools tools.json` reads the same form from a file).
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## 4. What the validator says about a bad plan

        A plan is checked before anything runs. `validate(plan, registry)` never raises: it
        returns every `Issue` it finds, each with a stable `code`, the step, a JSON path, a
        message written for an LLM to act on, and a hint where one helps. This plan has the
        mistakes models make most: a wrong argument name, a field of the wrong type, a field
        the tool's output does not have, a misspelt tool, a step that does not exist, and two
        steps waiting for each other.
        """
    ),
    code(
        """
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
        header = "| code | step | path | message | hint |\\n|---|---|---|---|---|\\n"
        Markdown(header + "\\n".join(rows).replace("$", "&#36;"))
        """
    ),
    code(
        """
        codes = {issue.code for issue in issues}
        assert {"unknown_tool", "unknown_step", "cycle", "type_mismatch", "unknown_field"} <= codes
        sorted(codes)
        """
    ),
    md(
        """
        Before validation, the lenient parser accepts what models actually send (a fenced code
        block, prose around it, `tool_name` and `parameters` instead of `tool` and `args`, a
        bare list of steps) and turns it into the one canonical `Plan` everything else sees:
        """
    ),
    code(
        '''
        llm_text = """Sure! Here is the plan:
        ```json
        [{"id": "weather", "tool_name": "get_weather", "parameters": {"location": "Rome"}}]
        ```
        Let me know if you need anything else."""

        print(parse_plan(llm_text).dumps())
        '''
    ),
    md(
        """
        ## 5. The feedback loop: the validator's issues go back to the model

        When the model's plan is rejected, `plan_and_run` re-asks with the issues (a bounded
        number of times) instead of running anything. Our fake model's first plan misspells
        `get_weather` and forgets an argument:
        """
    ),
    code(
        """
        from tooldag.agent import plan_and_run

        result = plan_and_run(GOAL, tools=registry, llm=llm)
        print(result.status, "|", result.answer)
        print("LLM calls:", result.usage.calls)
        """
    ),
    md("""This is the message the model received on its second call:"""),
    code(
        """
        print(server.requests[-1]["messages"][-1]["content"])
        assert result.ok and result.usage.calls == 2
        """
    ),
    md(
        """
        ## 6. Built-in tool packs

        tooldag ships packs of ready tools (`calc`, `files`, `data`, `time`, `weather`, `web`,
        `mail`, `text`). `load_registry()` with no argument loads all of them, which is what
        `plan_and_run` offers when `tools=` is left out; here just the calculator, which needs
        no network:
        """
    ),
    code(
        """
        from tooldag import load_registry
        from tooldag.registry.loading import builtin_packs

        print(builtin_packs())
        calc = load_registry(["calc"])
        calc.execute("calculate", expression="2 * (3 + 4) ** 2")
        """
    ),
    code(
        """
        server.stop()
        """
    ),
    md(
        """
        **Next:** `03_parallel_dags` runs the lesson's data pipeline and measures what running
        independent branches in parallel buys.
        """
    ),
]


# --------------------------------------------------------------------------- 03 parallel

PARALLEL: list[Cell] = [
    md(
        """
        # 03 · Parallel DAGs: the lesson's data pipeline, timed

        The lesson's `DAGWorkflow` runs a data pipeline (fetch → validate → transform → two
        analyses → merge) in *levels*: every step of one level finishes before the next level
        starts. tooldag's executor is event-driven instead: a step starts the moment its last
        dependency finishes, so a fast branch never waits for a slow one it does not need.

        This notebook runs a slightly wider version of that pipeline, two sources and three
        analyses, whose tools `asyncio.sleep` to stand for network and compute time, draws its
        timeline, and measures it against a sequential run of the same plan.
        """
    ),
    code(
        """
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
        """
    ),
    *real_model(),
    md(
        """
        ## The pipeline's tools

        Async tools that sleep, so the timings are easy to reason about: fetching sales takes
        250 ms and inventory 100 ms; validating inventory (the bigger table) takes 150 ms and
        sales 50 ms; each analysis takes 150 ms. Sync tools work the same way (they run in a
        thread pool).
        """
    ),
    code(
        '''
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
        '''
    ),
    md(
        """
        ## Plan and run, with a monitor watching

        A `Monitor` follows a run through its events (notebook 06 is about it); here it tells
        us how many steps ran at once.
        """
    ),
    code(
        """
        from tooldag.agent import plan_and_run
        from tooldag.observe.monitor import Monitor

        monitor = Monitor()
        result = plan_and_run(GOAL, tools=pipeline, llm=llm, on_event=monitor)
        print(result.status, "|", result.answer)
        summary = monitor.get_workflow_summary()
        print(f"{summary['total']} steps, up to {summary['max_parallel']} at once")
        """
    ),
    md(
        """
        ## The DAG

        Mermaid text for front ends that render it, and a matplotlib drawing for the others.
        The lesson's `get_execution_order()` would batch these into five levels (the columns
        below).
        """
    ),
    code(
        """
        from IPython.display import Markdown, display

        from tooldag.observe.mermaid import to_mermaid
        from tooldag.observe.plotting import plot_dag

        plan = result.plan
        display(Markdown(f"```mermaid\\n{to_mermaid(plan)}\\n```"))
        plot_dag(plan);
        """
    ),
    md(
        """
        ## The timeline: branches overlap

        One row per step, one bar per attempt. The two fetches run together; `valid_inventory`
        starts the moment `fetch_inventory` is done, while `fetch_sales` is still running (a
        level-by-level executor would make it wait); the three analyses run side by side.
        """
    ),
    code(
        """
        from tooldag.observe.plotting import gantt

        gantt(result);
        """
    ),
    md(
        """
        ## Parallel against sequential, measured

        The same plan run twice more without the LLM (`run_plan` runs a plan you already have):
        as the graph allows, and with `max_concurrency=1`, one step at a time.
        """
    ),
    code(
        """
        import time

        from tooldag import EventBus
        from tooldag.execution.executor import run_plan


        def timed_run(**executor_options):
            \"\"\"Run the plan; return the result, the wall time, and the monitor's summary.\"\"\"
            bus = EventBus()
            watcher = Monitor(bus)
            started = time.perf_counter()
            run = run_plan(plan, pipeline, bus=bus, **executor_options)
            return run, time.perf_counter() - started, watcher.get_workflow_summary()


        parallel, parallel_s, parallel_summary = timed_run()
        sequential, sequential_s, sequential_summary = timed_run(max_concurrency=1)

        print(f"parallel:   {parallel_s:.3f} s, up to {parallel_summary['max_parallel']} steps at once")
        print(f"sequential: {sequential_s:.3f} s, up to {sequential_summary['max_parallel']} at once")
        print(f"speed-up:   {sequential_s / parallel_s:.1f}x")
        assert parallel.ok and sequential.ok
        assert parallel_summary["max_parallel"] == 3 and sequential_summary["max_parallel"] == 1
        """
    ),
    md(
        """
        Where the numbers come from: a sequential run costs the sum of the step times; a
        parallel one costs the longest chain of dependent steps, the *critical path*. The
        level-by-level schedule sits in between: each level costs its slowest step.
        """
    ),
    code(
        """
        import graphlib

        seconds = {sid: record.duration for sid, record in parallel.steps.items()}
        deps = plan.dependencies()

        finish, level = {}, {}
        for sid in graphlib.TopologicalSorter(deps).static_order():
            finish[sid] = max((finish[d] for d in deps[sid]), default=0.0) + seconds[sid]
            level[sid] = max((level[d] + 1 for d in deps[sid]), default=0)
        by_level = {}
        for sid, n in level.items():
            by_level[n] = max(by_level.get(n, 0.0), seconds[sid])

        print(f"sum of step times:         {sum(seconds.values()):.3f} s")
        print(f"level-by-level (estimate): {sum(by_level.values()):.3f} s")
        print(f"critical path:             {max(finish.values()):.3f} s")
        """
    ),
    md("""Side by side, on the same time axis:"""),
    code(
        """
        import matplotlib.pyplot as plt

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True, layout="constrained")
        gantt(parallel, ax=top, title=f"parallel: {parallel_s:.2f} s")
        gantt(sequential, ax=bottom, title=f"max_concurrency=1: {sequential_s:.2f} s");
        """
    ),
    md(
        """
        Limits are per run (`max_concurrency`) and per tool (`tool_limits={"fetch_data": 1}`,
        for an API that allows one request at a time); `plan_and_run` passes them on with
        `executor_options={...}`.
        """
    ),
    code(
        """
        server.stop()
        """
    ),
    md(
        """
        **Next:** `04_conditions_and_state`: steps that run only when a condition holds, and
        runs that can be paused, inspected and resumed.
        """
    ),
]


# --------------------------------------------------------------------------- 04 conditions

CONDITIONS: list[Cell] = [
    md(
        """
        # 04 · Conditions and state

        Two ideas from the lesson. **Conditional execution**: a step with a `when` condition
        runs only if it holds, as in the lesson's cold and heat alerts. **State management**:
        the lesson's `StatefulWorkflowExecutor` keeps a workflow's state so it can be paused,
        inspected and resumed; in tooldag every step of every run is journalled in SQLite, so a
        run can be paused, read back, and resumed even by another process.
        """
    ),
    code(
        """
        from tooldag.testing import FakeLLMServer


        def alert_plan(city):
            \"\"\"The plan the fake model writes for "alert me about extreme weather in <city>".\"\"\"
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
        """
    ),
    *real_model(),
    md(
        """
        ## Conditional alerts

        Three cities, three kinds of weather. `send_alert` records what it sends so we can see
        which alerts went out.
        """
    ),
    code(
        '''
        from typing_extensions import TypedDict

        from tooldag import ToolRegistry, tool

        WEATHER = {
            "Oslo": {"temp": -8.0, "condition": "snow", "wind_kmh": 20.0},
            "Dubai": {"temp": 41.0, "condition": "sunny", "wind_kmh": 10.0},
            "Lisbon": {"temp": 19.0, "condition": "thunderstorm", "wind_kmh": 65.0},
        }
        SENT = []


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
            return {"location": location, **WEATHER[location]}


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
        '''
    ),
    md(
        """
        Every run is journalled in a `RunStore` (one SQLite file; here a throwaway one in a
        temporary directory): we will read it back in the second half.
        """
    ),
    code(
        """
        import tempfile
        from pathlib import Path

        from tooldag.agent import plan_and_run
        from tooldag.durable.store import RunStore

        scratch = tempfile.TemporaryDirectory(prefix="tooldag-04-")  # removed at the end
        workdir = Path(scratch.name)
        store = RunStore(workdir / "runs.db")

        results = {}
        for city in CITIES:
            goal = f"Check the weather in {city} and alert me if it is extreme"
            results[city] = plan_and_run(goal, tools=alerts, llm=llm, store=store)
            print(f"{city:7} {results[city].answer}")
        SENT
        """
    ),
    md(
        """
        Each step's status, per city: a condition that does not hold makes a step `skipped`
        (not failed), and a step that reads a skipped step's output (`page_oncall` reads
        `$cold_alert.id`) is skipped too. The run still succeeds.
        """
    ),
    code(
        """
        from IPython.display import Markdown, display

        steps = list(results["Oslo"].steps)
        lines = ["| city | " + " | ".join(steps) + " |", "|---" * (len(steps) + 1) + "|"]
        for city, result in results.items():
            lines.append(f"| {city} | " + " | ".join(result.steps[s].status for s in steps) + " |")
        display(Markdown("\\n".join(lines)))

        print(results["Dubai"].steps["cold_alert"].reason)
        print(results["Dubai"].steps["page_oncall"].reason)
        assert [r.status for r in results.values()] == ["succeeded"] * 3
        assert len(SENT) == 3  # cold in Oslo, heat in Dubai, storm in Lisbon
        """
    ),
    md(
        """
        In the graph, conditional steps are the hexagons in Mermaid and the dashed boxes in the
        drawing, coloured by what happened in Lisbon:
        """
    ),
    code(
        """
        from tooldag.observe.mermaid import to_mermaid
        from tooldag.observe.plotting import plot_dag

        lisbon = results["Lisbon"]
        statuses = {sid: record.status for sid, record in lisbon.steps.items()}
        display(Markdown(f"```mermaid\\n{to_mermaid(lisbon.plan, statuses)}\\n```"))
        plot_dag(lisbon.plan, statuses, title="Lisbon");
        """
    ),
    md(
        """
        ## State: pause, inspect, resume

        The lesson's three-step workflow (process → analyse → report), run under a run id by
        `StatefulWorkflowExecutor` (tooldag's `DurableExecutor`, under the lesson's name),
        journalled in the same store. A plan does not have to come from a model: this one is
        written by hand.
        """
    ),
    code(
        '''
        import asyncio
        from collections import Counter

        from tooldag import Plan

        CALLS = Counter()


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
        '''
    ),
    md(
        """
        `pause(run_id)` stops a run from starting new steps and lets running ones finish; the
        run ends `paused`. It may be called from any thread (a button, a signal handler). Here
        an event callback calls it as soon as the first step succeeds, like a breakpoint.
        """
    ),
    code(
        """
        from tooldag import EventType
        from tooldag.durable.runner import StatefulWorkflowExecutor

        runs = StatefulWorkflowExecutor(reporting, store=store)


        def pause_after_process(event):
            if event.type is EventType.STEP_SUCCEEDED and event.step_id == "process":
                runs.pause(event.run_id)


        stop_watching = runs.executor.bus.subscribe(pause_after_process)
        paused = runs.start("weekly-report", REPORT_PLAN)
        stop_watching()

        print(paused.status)
        {sid: record.status.value for sid, record in paused.steps.items()}
        """
    ),
    md(
        """
        ### Inspecting the store

        The run's row, as `tooldag runs list` shows it:
        """
    ),
    code(
        """
        store.get_run("weekly-report").to_json()
        """
    ),
    md(
        """
        The store is a plain SQLite file, one row per (run id, step id); any SQLite client can
        read it. The completed step's output is there, ready to be reused:
        """
    ),
    code(
        """
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(store.path)) as db:
            rows = db.execute(
                "SELECT step_id, status, attempts, output FROM steps WHERE run_id = ?",
                ("weekly-report",),
            ).fetchall()
        rows
        """
    ),
    md("""And the journal of events, in order:"""),
    code(
        """
        [(event.type.value, event.step_id) for event in store.events("weekly-report")]
        """
    ),
    md(
        """
        ### Resuming, as another process would

        A new process opens the same file and resumes by run id. Completed steps are not run
        again (their outputs come from the store): `process_data` still ran once.
        """
    ),
    code(
        """
        from tooldag.durable.runner import resume

        reopened = RunStore(workdir / "runs.db")
        resumed = resume("weekly-report", reporting, store=reopened)

        print(resumed.status, "|", resumed.answer)
        print(dict(CALLS))
        assert resumed.ok and resumed.steps["process"].reused
        assert CALLS == {"process_data": 1, "analyze": 1, "generate_report": 1}
        """
    ),
    code(
        """
        from tooldag.observe.plotting import gantt

        gantt(resumed, title="the resumed run: process reused, the rest ran");
        """
    ),
    md(
        """
        As in the lesson, a completed run id cannot be started again (a failed, paused or
        interrupted one can):
        """
    ),
    code(
        """
        from tooldag import RunStateError

        try:
            runs.start("weekly-report", REPORT_PLAN)
        except RunStateError as exc:
            print(exc)
        """
    ),
    md(
        """
        Every run of this notebook is in the store, the alert runs of `plan_and_run` included:
        """
    ),
    code(
        """
        [(info.id, info.status, info.goal) for info in reopened.list_runs()]
        """
    ),
    md(
        """
        The command line reads the same file: `tooldag runs list`, `runs show`, `runs resume`
        and `runs cancel` work on any stored run (here through `python -m tooldag`, so that it
        is this environment's tooldag).
        """
    ),
    code(
        """
        import subprocess
        import sys

        command = [sys.executable, "-m", "tooldag", "runs", "show", "weekly-report"]
        shown = subprocess.run(
            [*command, "--store", str(workdir / "runs.db")], capture_output=True, text=True
        )
        print(shown.stdout or shown.stderr)
        """
    ),
    code(
        """
        server.stop()
        store.close()
        reopened.close()
        scratch.cleanup()
        """
    ),
    md(
        """
        **Next:** `05_failures_and_replanning`: retries, a tool that fails, a replan that keeps
        the work already done, and compensation when the run is given up.
        """
    ),
]


# --------------------------------------------------------------------------- 05 failures

FAILURES: list[Cell] = [
    md(
        """
        # 05 · Failures: retries, replanning, and compensation

        The lesson's error-recovery section: retry a step that fails, and when a workflow
        cannot finish, undo what it did (the *saga* pattern: each step names a compensating
        action, run in reverse order). tooldag adds a step in between: a failed run goes back
        to the model with what succeeded and what failed, and the new plan reuses the
        completed steps instead of running them again.

        The example is the lesson's order workflow: reserve stock, charge the payment, ship.
        """
    ),
    code(
        """
        from tooldag.testing import FakeLLMServer


        def order_plan(city, carrier):
            return {
                "goal": f"Order 2 KB-42 keyboards and ship them to {city}",
                "steps": [
                    {"id": "reserve", "tool": "reserve_items", "args": {"sku": "KB-42", "quantity": 2}},
                    {
                        "id": "charge",
                        "tool": "process_payment",
                        "args": {"amount": 179.80, "reservation_id": "$reserve.reservation_id"},
                    },
                    {
                        "id": "ship",
                        "tool": "create_shipment",
                        "args": {"order_id": "$charge.order_id", "city": city, "carrier": carrier},
                    },
                ],
                "answer": "Order ${charge.order_id} ships with ${ship.carrier} in ${ship.eta_days} days.",
            }


        def first_then(first, replanned):
            \"\"\"Answer a goal's first request with `first`, and a replan request with `replanned`.\"\"\"

            def reply(request):
                prompt = request["messages"][-1]["content"]
                # tooldag's replan prompt says "The plan for this goal was run and did not succeed."
                return replanned if "did not succeed" in prompt else first

            return reply


        STOCK_PLAN = {
            "goal": "How many KB-42 keyboards are in stock?",
            "steps": [{"id": "stock", "tool": "check_stock", "args": {"sku": "KB-42"}}],
            "answer": "${stock.units} units of ${stock.sku} in stock.",
        }

        server = FakeLLMServer(
            rules={
                "in stock": STOCK_PLAN,
                # The first plan ships with FastShip; the replan switches to SlowPost.
                "Berlin": first_then(order_plan("Berlin", "FastShip"), order_plan("Berlin", "SlowPost")),
                "Atlantis": first_then(
                    order_plan("Atlantis", "FastShip"), order_plan("Atlantis", "SlowPost")
                ),
            }
        ).start()
        llm = server.client()
        """
    ),
    *real_model(),
    md(
        """
        ## The shop's tools

        Each tool with side effects names its undo with `Compensation`: `$output.x` reads the
        compensated step's own output. `LEDGER` records every side effect, as the shop's
        database would see them, and `CALLS` counts calls. Each call takes 40 ms, as a real
        API would, so that the chart at the end has something to show.
        """
    ),
    code(
        '''
        import time
        from collections import Counter
        from typing import Literal

        from typing_extensions import TypedDict

        from tooldag import (
            Compensation,
            PermanentToolError,
            RetryPolicy,
            ToolRegistry,
            TransientToolError,
            tool,
        )

        LEDGER = []
        CALLS = Counter()
        API_SECONDS = 0.04


        class Stock(TypedDict):
            sku: str
            units: int


        class Reservation(TypedDict):
            reservation_id: str


        class Payment(TypedDict):
            transaction_id: str
            order_id: str


        class Shipment(TypedDict):
            shipment_id: str
            carrier: str
            eta_days: int


        FLAKY = {"failures_left": 2}


        @tool(side_effects=False, retry=RetryPolicy(attempts=4, initial_backoff=0.05, max_backoff=0.2))
        async def check_stock(sku: str) -> Stock:
            """Units in stock for a product (the inventory API times out now and then)."""
            CALLS["check_stock"] += 1
            if FLAKY["failures_left"] > 0:
                FLAKY["failures_left"] -= 1
                raise TransientToolError("the inventory API timed out")
            return {"sku": sku, "units": 42}


        @tool(compensate=Compensation("release_reservation", {"reservation_id": "$output.reservation_id"}))
        def reserve_items(sku: str, quantity: int) -> Reservation:
            """Reserve stock for an order."""
            CALLS["reserve_items"] += 1
            time.sleep(API_SECONDS)
            LEDGER.append(f"reserved {quantity} x {sku}")
            return {"reservation_id": f"R-{sku}-{quantity}"}


        @tool
        def release_reservation(reservation_id: str) -> dict[str, str]:
            """Give reserved stock back (undoes reserve_items)."""
            time.sleep(API_SECONDS)
            LEDGER.append(f"released {reservation_id}")
            return {"released": reservation_id}


        @tool(compensate=Compensation("refund_payment", {"transaction_id": "$output.transaction_id"}))
        def process_payment(amount: float, reservation_id: str) -> Payment:
            """Charge the customer's card."""
            CALLS["process_payment"] += 1
            time.sleep(API_SECONDS)
            LEDGER.append(f"charged {amount:.2f} EUR")
            return {"transaction_id": "T-1001", "order_id": "O-77"}


        @tool
        def refund_payment(transaction_id: str) -> dict[str, str]:
            """Refund a charge (undoes process_payment)."""
            time.sleep(API_SECONDS)
            LEDGER.append(f"refunded {transaction_id}")
            return {"refunded": transaction_id}


        @tool
        def create_shipment(order_id: str, city: str, carrier: Literal["FastShip", "SlowPost"]) -> Shipment:
            """Book a carrier to deliver an order."""
            CALLS["create_shipment"] += 1
            time.sleep(API_SECONDS)
            if city == "Atlantis":
                raise PermanentToolError(f"{carrier} does not deliver to Atlantis")
            if carrier == "FastShip":
                raise PermanentToolError(f"FastShip has no depot near {city}; SlowPost delivers there")
            LEDGER.append(f"shipped {order_id} with {carrier}")
            return {"shipment_id": "S-9", "carrier": carrier, "eta_days": 3}


        shop = ToolRegistry(
            [
                check_stock,
                reserve_items,
                release_reservation,
                process_payment,
                refund_payment,
                create_shipment,
            ]
        )
        '''
    ),
    md(
        """
        ## 1. Retries, for transient failures only

        A tool says a failure is worth retrying by raising `TransientToolError` (or `ToolError`
        with `transient=True`); the executor retries it with backoff (tenacity) within the
        tool's `RetryPolicy`. Any other error is permanent and fails the step at once. The
        inventory API times out twice, then answers:
        """
    ),
    code(
        """
        from tooldag import EventType
        from tooldag.agent import plan_and_run

        FLAKY["failures_left"] = 2
        events = []
        stock = plan_and_run(
            "How many KB-42 keyboards are in stock?", tools=shop, llm=llm, on_event=events.append
        )
        print(stock.status, "|", stock.answer)
        print("attempts:", stock.steps["stock"].attempts)
        for event in events:
            if event.type is EventType.STEP_RETRYING:
                print(f"attempt {event.attempt} failed ({event.data['error']['message']}), retrying")
        assert stock.ok and stock.steps["stock"].attempts == 3
        """
    ),
    md(
        """
        ## 2. A failing tool, and a replan that keeps the finished work

        FastShip has no depot in Berlin: `create_shipment` fails permanently (one attempt, no
        retry). The payment and the reservation succeeded. Rather than give up, `plan_and_run`
        sends the model what happened and asks for a new plan (`max_replans`, 2 by default).
        """
    ),
    code(
        """
        CALLS.clear()
        LEDGER.clear()
        events = []
        berlin = plan_and_run(
            "Order 2 KB-42 keyboards and ship them to Berlin", tools=shop, llm=llm, on_event=events.append
        )
        print(berlin.status, "|", berlin.answer)
        print("plans:", len(berlin.plans))
        """
    ),
    md("""What the model was told when asked to replan:"""),
    code(
        """
        print(server.requests[-1]["messages"][-1]["content"])
        """
    ),
    md(
        """
        The new plan keeps `reserve` and `charge` exactly as they were, so their outputs are
        reused instead of running again: the customer is charged once, and only the shipment
        is retried, with the other carrier.
        """
    ),
    code(
        """
        for record in berlin.steps.values():
            print(f"{record.id:8} {record.status:10} reused={record.reused}")
        print(dict(CALLS))
        print(LEDGER)
        assert CALLS["reserve_items"] == 1 and CALLS["process_payment"] == 1
        assert CALLS["create_shipment"] == 2 and berlin.steps["charge"].reused
        """
    ),
    md(
        """
        Both plans, coloured by how their steps ended (the first from the events of its run,
        up to its `run_finished`):
        """
    ),
    code(
        """
        import matplotlib.pyplot as plt

        from tooldag.observe.plotting import plot_dag

        ENDINGS = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_BLOCKED}
        first_run = {}
        for event in events:
            if event.type is EventType.RUN_FINISHED:
                break
            if event.type in ENDINGS:
                first_run[event.step_id] = event.type.value.removeprefix("step_")

        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 2.2), layout="constrained")
        plot_dag(berlin.plans[0], first_run, ax=left, title="plan 1: FastShip")
        second_run = {sid: record.status for sid, record in berlin.steps.items()}
        plot_dag(berlin.plan, second_run, ax=right, title="plan 2: SlowPost (reserve, charge reused)");
        """
    ),
    md(
        """
        ## 3. Giving up: compensation (saga)

        Nobody delivers to Atlantis. The replan fails too, the replans are spent
        (`max_replans=1` here), and the run is given up. Then every step that succeeded, in any
        plan, and whose tool declares a compensation is undone, last finished first: the
        payment is refunded before the reservation is released.
        """
    ),
    code(
        """
        LEDGER.clear()
        events = []
        atlantis = plan_and_run(
            "Order 2 KB-42 keyboards and ship them to Atlantis",
            tools=shop,
            llm=llm,
            max_replans=1,
            on_event=events.append,
        )
        print(atlantis.status)
        print(atlantis.error)
        LEDGER
        """
    ),
    code(
        """
        compensated = [e.step_id for e in events if e.type is EventType.STEP_COMPENSATED]
        print("compensated, in order:", compensated)
        print({sid: record.status.value for sid, record in atlantis.steps.items()})
        assert compensated == ["charge", "reserve"]
        assert LEDGER[-2:] == ["refunded T-1001", "released R-KB-42-2"]
        """
    ),
    md(
        """
        The whole story on one chart, drawn from the events: `reserve` and `charge` ran once, in
        the first plan; the second plan reused them (diamonds) and its shipment failed again
        (both shipment attempts are hatched); then the payment was refunded and the
        reservation released, in that order (triangles).
        """
    ),
    code(
        """
        from tooldag.observe.plotting import gantt

        gantt(events, title="Atlantis: two plans, then compensation");
        """
    ),
    code(
        """
        server.stop()
        """
    ),
    md(
        """
        **Next:** `06_monitoring`: the summary, the step timeline, a Gantt chart, and events as
        they stream.
        """
    ),
]


# --------------------------------------------------------------------------- 06 monitoring

MONITORING: list[Cell] = [
    md(
        """
        # 06 · Monitoring: summary, timeline, Gantt chart, and live events

        The lesson's `WorkflowMonitor` records each step's start and end and answers
        `get_workflow_summary()` and `get_step_timeline()`; its `MonitoredWorkflowExecutor`
        wires the monitor into the executor. In tooldag the executor knows nothing about
        monitoring: every state change is an **event** on a bus, and a `Monitor` is one
        subscriber among others (the run store, the REPL's live view, your callbacks).

        The example is the lesson's parallel data gathering: weather, a stock price and news,
        fetched together and summarised, with a flaky stock API and two conditional steps.
        """
    ),
    code(
        """
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
        """
    ),
    *real_model(),
    code(
        '''
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
        '''
    ),
    md(
        """
        ## Attach a monitor, run

        A `Monitor` subscribes to an `EventBus`; `plan_and_run(..., bus=bus)` emits the run's
        events on it. The same bus also feeds a plain list, for the charts below.
        """
    ),
    code(
        """
        from tooldag import EventBus
        from tooldag.agent import plan_and_run
        from tooldag.observe.monitor import Monitor

        bus = EventBus()
        monitor = Monitor(bus)
        events = []
        bus.subscribe(events.append)

        result = plan_and_run(GOAL, tools=briefing_tools, llm=llm, bus=bus)
        result.answer
        """
    ),
    md(
        """
        ## The summary

        Counts by status, and three different times: `total_duration` is the work done (the sum
        of step times), `wall_time` the run's elapsed time, `max_parallel` the most steps that
        ran at once.
        """
    ),
    code(
        """
        summary = monitor.get_workflow_summary()
        assert summary["successful"] == 5 and summary["skipped"] == 1 and not summary["is_active"]
        summary
        """
    ),
    md(
        """
        ## The step timeline

        One entry per step in start order: status, attempts, start `offset` from the run's
        start, duration, and which steps it overlapped with.
        """
    ),
    code(
        """
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
        display(Markdown("\\n".join(lines)))
        """
    ),
    md(
        """
        The same timeline as a terminal would show it (`tooldag` prints it with rich), and the
        plan coloured by status:
        """
    ),
    code(
        """
        monitor.print_timeline()
        display(Markdown(f"```mermaid\\n{monitor.to_mermaid()}\\n```"))
        """
    ),
    md(
        """
        ## A Gantt chart of the run

        Drawn from the events, so each attempt of the retried stock request is its own bar
        (the failed one hatched); the skipped `price_alert` is a marker at the moment its
        condition was found false.
        """
    ),
    code(
        """
        from tooldag.observe.plotting import gantt

        ax = gantt(events, title="morning briefing")
        """
    ),
    md(
        """
        `ax.figure.savefig("briefing.png")` keeps it. `gantt` also draws from a `RunResult`,
        from the monitor, or from a stored run's journal (`RunStore.events(run_id)`).

        ## Events as they stream

        ### A callback

        `on_event=` is called with every event as it happens (on the thread running the
        run). A one-line log:
        """
    ),
    code(
        """
        first_ts = None


        def log_event(event):
            global first_ts
            first_ts = event.ts if first_ts is None else first_ts
            where = f" {event.step_id}" if event.step_id else ""
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            print(f"{event.ts - first_ts:6.3f}s  {event.type.value}{where}{attempt}")


        STOCK_API["calls"] = 0
        _ = plan_and_run(GOAL, tools=briefing_tools, llm=llm, on_event=log_event)
        """
    ),
    md(
        """
        ### A live status line

        A display handle updated from the callback: the line below changes while the run goes,
        and ends on the final count.
        """
    ),
    code(
        """
        from collections import Counter

        from tooldag import EventType

        ENDED = {
            EventType.STEP_SUCCEEDED: "succeeded",
            EventType.STEP_FAILED: "failed",
            EventType.STEP_SKIPPED: "skipped",
            EventType.STEP_BLOCKED: "blocked",
        }
        counts, running = Counter(), set()
        status_line = display(Markdown("waiting for the plan..."), display_id=True)


        def update_status(event):
            if event.type is EventType.STEP_STARTED:
                running.add(event.step_id)
            elif event.type in ENDED:
                running.discard(event.step_id)
                counts[ENDED[event.type]] += 1
            done = ", ".join(f"{n} {state}" for state, n in counts.items())
            now = ", ".join(sorted(running)) or "nothing"
            status_line.update(Markdown(f"**{done or 'starting'}** · running: {now}"))


        STOCK_API["calls"] = 0
        _ = plan_and_run(GOAL, tools=briefing_tools, llm=llm, on_event=update_status)
        """
    ),
    md(
        """
        ### An async iterator

        From async code, `bus.stream()` yields events as they are emitted, until the run's
        `run_finished`. Here a watcher task consumes it while `aplan_and_run` runs on the
        notebook's own loop.
        """
    ),
    code(
        """
        from tooldag.agent import aplan_and_run

        live_bus = EventBus()


        async def watch():
            seen = []
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
        """
    ),
    md(
        """
        ## Monitoring after the fact: the journal

        A run stored in a `RunStore` keeps its events, so a monitor (or a chart) can be rebuilt
        later, in another process, from the journal alone:
        """
    ),
    code(
        """
        from tooldag.durable.store import RunStore

        with RunStore(":memory:") as store:
            STOCK_API["calls"] = 0
            stored = plan_and_run(GOAL, tools=briefing_tools, llm=llm, store=store)
            journal = store.events(stored.run_id)

        replayed = Monitor.from_events(journal).get_workflow_summary()
        print({key: replayed[key] for key in ("status", "successful", "skipped", "max_parallel")})
        gantt(journal, title=f"run {stored.run_id}, from its journal");
        """
    ),
    code(
        """
        server.stop()
        """
    ),
    md(
        """
        That is the lesson, end to end: chaining, conditions, state, DAGs, recovery and
        monitoring, each a few lines of tooldag. From a terminal, `tooldag chat` plans and runs
        goals interactively, and `tooldag runs` lists, shows and resumes stored runs.
        """
    ),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01_quickstart": QUICKSTART,
    "02_tools": TOOLS,
    "03_parallel_dags": PARALLEL,
    "04_conditions_and_state": CONDITIONS,
    "05_failures_and_replanning": FAILURES,
    "06_monitoring": MONITORING,
}


def render(cells: list[Cell]) -> NotebookNode:
    """A notebook of ``cells``, without outputs, with stable cell ids (clean diffs)."""
    nb = new_notebook(
        metadata={
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            },
            "language_info": {"name": "python"},
        }
    )
    for index, (kind, source) in enumerate(cells):
        cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
        cell.id = f"cell-{index:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def build() -> dict[str, str]:
    """Each notebook's file name and its JSON text, as committed."""
    return {
        f"{name}.ipynb": nbformat.writes(render(cells)) + "\n" for name, cells in NOTEBOOKS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date notebooks")
    args = parser.parse_args(argv)
    stale = []
    for filename, text in build().items():
        path = HERE / filename
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(filename)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python notebooks/_build.py", file=sys.stderr)
        return 1
    for filename in stale:
        print(f"wrote notebooks/{filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
