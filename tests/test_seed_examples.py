"""Seed parity: every runnable example of the orchestration lesson, as a plan run by the executor.

The lesson's ToolChain, WorkflowExecutor, ConditionalWorkflowExecutor, StatefulWorkflowExecutor,
DAGWorkflow, SagaWorkflowExecutor and MonitoredWorkflowExecutor are one executor here; the tools
are written in this file and the workflows are plain JSON plans.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from tooldag import Compensation, Plan, ToolCategory, ToolRegistry, tool
from tooldag.errors import PermanentToolError
from tooldag.events import Event, EventType
from tooldag.execution.executor import Executor, run_plan
from tooldag.observe.mermaid import to_mermaid
from tooldag.observe.monitor import Monitor
from tooldag.result import RunStatus, StepStatus

GATE_TIMEOUT = 5.0


def plan(data: dict[str, Any]) -> Plan:
    return Plan.model_validate(data)


# --------------------------------------------------------------------------- weather -> outfit


class WeatherParams(BaseModel):
    location: str


class OutfitParams(BaseModel):
    temperature: int
    condition: str


def weather_registry(temp: int = 18, condition: str = "rainy") -> ToolRegistry:
    """The lesson's two tools, declared with its explicit ``register`` form."""

    def get_weather(location: str) -> dict[str, Any]:
        return {"location": location, "temp": temp, "condition": condition}

    def recommend_outfit(temperature: int, condition: str) -> dict[str, str]:
        if condition == "rainy":
            return {"outfit": "Raincoat, umbrella, boots"}
        if temperature < 15:
            return {"outfit": "Jacket, long pants"}
        return {"outfit": "T-shirt, shorts"}

    registry = ToolRegistry()
    registry.register(
        name="get_weather",
        description="Get weather",
        category=ToolCategory.DATA,
        version="1.0.0",
        parameters_schema=WeatherParams,
        function=get_weather,
    )
    registry.register(
        name="recommend_outfit",
        description="Recommend outfit based on weather",
        category=ToolCategory.COMPUTATION,
        version="1.0.0",
        parameters_schema=OutfitParams,
        function=recommend_outfit,
    )
    return registry


WEATHER_OUTFIT = plan(
    {
        "goal": "Recommend an outfit for London's weather",
        "steps": [
            {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
            {
                "id": "outfit",
                "tool": "recommend_outfit",
                "args": {"temperature": "$weather.temp", "condition": "$weather.condition"},
            },
        ],
        "answer": "${outfit.outfit}",
    }
)


@pytest.mark.parametrize(
    ("temp", "condition", "outfit"),
    [
        (18, "rainy", "Raincoat, umbrella, boots"),
        (10, "cloudy", "Jacket, long pants"),
        (25, "sunny", "T-shirt, shorts"),
    ],
)
def test_sequential_chain_weather_to_outfit(temp: int, condition: str, outfit: str) -> None:
    result = run_plan(WEATHER_OUTFIT, weather_registry(temp, condition))
    assert result.ok
    assert result.outputs["outfit"] == {"outfit": outfit}
    assert result.answer == outfit


# --------------------------------------------------------------------------- parallel gather


async def test_parallel_gathering_then_summary() -> None:
    started: set[str] = set()
    all_started = asyncio.Event()

    async def gathered(name: str, value: Any) -> Any:
        started.add(name)
        if len(started) == 3:
            all_started.set()
        # Each source returns only once all three run at the same time.
        await asyncio.wait_for(all_started.wait(), GATE_TIMEOUT)
        return value

    @tool(side_effects=False)
    async def get_weather(location: str) -> dict[str, Any]:
        return await gathered("weather", {"location": location, "temp": 18})

    @tool(side_effects=False)
    async def get_stock_price(symbol: str) -> dict[str, Any]:
        return await gathered("stock", {"symbol": symbol, "price": 189.5})

    @tool(side_effects=False)
    async def search_web(query: str) -> list[str]:
        return await gathered("news", [f"{query}: story 1", f"{query}: story 2"])

    @tool(side_effects=False)
    def summarize_data(weather: dict[str, Any], stock: float, news: list[str]) -> str:
        return f"{weather['temp']} C in {weather['location']}; AAPL {stock}; {len(news)} stories"

    workflow = plan(
        {
            "goal": "Daily briefing",
            "steps": [
                {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
                {"id": "stock", "tool": "get_stock_price", "args": {"symbol": "AAPL"}},
                {"id": "news", "tool": "search_web", "args": {"query": "technology news"}},
                {
                    "id": "summary",
                    "tool": "summarize_data",
                    "args": {"weather": "$weather", "stock": "$stock.price", "news": "$news"},
                    "depends_on": ["weather", "stock", "news"],
                },
            ],
            "answer": "${summary}",
        }
    )
    registry = ToolRegistry([get_weather, get_stock_price, search_web, summarize_data])
    result = await Executor(registry).run(workflow)
    assert result.ok
    assert result.answer == "18 C in London; AAPL 189.5; 2 stories"


# --------------------------------------------------------------------------- conditional alerts


@pytest.mark.parametrize(
    ("temp", "sent"),
    [(-5, ["cold_alert"]), (40, ["hot_alert"]), (20, [])],
)
def test_conditional_cold_and_hot_alerts(temp: int, sent: list[str]) -> None:
    alerts: list[str] = []

    @tool(side_effects=False)
    def get_weather(location: str) -> dict[str, Any]:
        return {"location": location, "temp": temp}

    @tool
    def send_alert(message: str, severity: str) -> dict[str, bool]:
        alerts.append(message)
        return {"sent": True}

    workflow = plan(
        {
            "goal": "Alert on extreme temperatures",
            "steps": [
                {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
                {
                    "id": "cold_alert",
                    "tool": "send_alert",
                    "args": {"message": "Temperature is below freezing!", "severity": "high"},
                    "when": {"ref": "$weather.temp", "op": "<", "value": 0},
                },
                {
                    "id": "hot_alert",
                    "tool": "send_alert",
                    "args": {"message": "Temperature is very high!", "severity": "high"},
                    "when": {"ref": "$weather.temp", "op": ">", "value": 35},
                },
            ],
        }
    )
    result = run_plan(workflow, ToolRegistry([get_weather, send_alert]))
    assert result.ok
    ran = [s for s in ("cold_alert", "hot_alert") if result.steps[s].status is StepStatus.SUCCEEDED]
    assert ran == sent and len(alerts) == len(sent)
    for name in {"cold_alert", "hot_alert"} - set(sent):
        assert result.steps[name].status is StepStatus.SKIPPED
        assert f"(got {temp})" in (result.steps[name].reason or "")


# --------------------------------------------------------------------------- state machine


def pipeline_tools(fail_analysis_once: bool) -> tuple[list[Any], list[str]]:
    calls: list[str] = []

    @tool
    def process_data() -> dict[str, Any]:
        calls.append("process_data")
        return {"rows": [3, 1, 2]}

    @tool
    def analyze(data: dict[str, Any]) -> dict[str, Any]:
        calls.append("analyze")
        if fail_analysis_once and calls.count("analyze") == 1:
            raise PermanentToolError("analysis service is down")
        return {"mean": sum(data["rows"]) / len(data["rows"])}

    @tool
    def generate_report(analysis: dict[str, Any]) -> str:
        calls.append("generate_report")
        return f"mean = {analysis['mean']}"

    return [process_data, analyze, generate_report], calls


STATEFUL = plan(
    {
        "goal": "Process, analyze, report",
        "steps": [
            {"id": "step1", "tool": "process_data", "args": {}},
            {"id": "step2", "tool": "analyze", "args": {"data": "$step1"}},
            {"id": "step3", "tool": "generate_report", "args": {"analysis": "$step2"}},
        ],
        "answer": "${step3}",
    }
)


async def test_stateful_workflow_tracks_state_and_resumes_after_a_failure() -> None:
    tools, calls = pipeline_tools(fail_analysis_once=True)
    executor = Executor(ToolRegistry(tools))
    states: list[tuple[str, str]] = []
    executor.bus.subscribe(lambda e: states.append((e.type.value, e.step_id or "")))

    first = await executor.run(STATEFUL, run_id="workflow-123")
    assert first.status is RunStatus.FAILED
    completed = {sid for sid, r in first.steps.items() if r.status is StepStatus.SUCCEEDED}
    assert completed == {"step1"}
    failed_step = next(sid for sid, r in first.steps.items() if r.status is StepStatus.FAILED)
    assert failed_step == "step2"
    assert first.error is not None and "analysis service is down" in first.error

    # Resume: what completed is reused, not run again.
    second = await executor.run(STATEFUL, run_id="workflow-123", reuse=first.outputs)
    assert second.ok and second.answer == "mean = 2.0"
    assert calls == ["process_data", "analyze", "analyze", "generate_report"]
    assert ("step_reused", "step1") in states


async def test_stateful_workflow_can_be_cancelled() -> None:
    gate = asyncio.Event()
    executor_holder: dict[str, Any] = {}

    @tool
    async def process_data() -> dict[str, Any]:
        executor_holder["handle"].cancel()  # the lesson's cancel_workflow, while running
        await asyncio.wait_for(gate.wait(), GATE_TIMEOUT)
        return {}

    tools, _ = pipeline_tools(fail_analysis_once=False)
    registry = ToolRegistry([process_data, *tools[1:]])
    handle = Executor(registry).start(STATEFUL, run_id="workflow-456")
    executor_holder["handle"] = handle
    result = await handle.wait()
    assert result.status is RunStatus.CANCELLED
    assert result.steps["step1"].status is StepStatus.CANCELLED
    assert result.steps["step3"].status is StepStatus.BLOCKED


# --------------------------------------------------------------------------- DAG data pipeline


async def test_dag_pipeline_runs_the_two_analyses_in_parallel_and_merges() -> None:
    a_running, b_running = asyncio.Event(), asyncio.Event()

    @tool(side_effects=False)
    def fetch_api_data(endpoint: str) -> list[int]:
        return [5, 1, 4, 2, 3]

    @tool(side_effects=False)
    def validate_data(data: list[int]) -> list[int]:
        return [x for x in data if x > 0]

    @tool(side_effects=False)
    def transform_data(data: list[int]) -> list[int]:
        return sorted(data)

    @tool(side_effects=False)
    async def analyze_method_a(data: list[int]) -> dict[str, float]:
        a_running.set()
        await asyncio.wait_for(b_running.wait(), GATE_TIMEOUT)
        return {"mean": sum(data) / len(data)}

    @tool(side_effects=False)
    async def analyze_method_b(data: list[int]) -> dict[str, float]:
        b_running.set()
        await asyncio.wait_for(a_running.wait(), GATE_TIMEOUT)
        return {"median": float(data[len(data) // 2])}

    @tool(side_effects=False)
    def merge_analyses(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {**a, **b}

    pipeline = plan(
        {
            "goal": "Data pipeline",
            "steps": [
                {"id": "fetch_data", "tool": "fetch_api_data", "args": {"endpoint": "/data"}},
                {"id": "validate", "tool": "validate_data", "args": {"data": "$fetch_data"}},
                {"id": "transform", "tool": "transform_data", "args": {"data": "$validate"}},
                {"id": "analyze_a", "tool": "analyze_method_a", "args": {"data": "$transform"}},
                {"id": "analyze_b", "tool": "analyze_method_b", "args": {"data": "$transform"}},
                {
                    "id": "merge_results",
                    "tool": "merge_analyses",
                    "args": {"a": "$analyze_a", "b": "$analyze_b"},
                },
            ],
        }
    )
    registry = ToolRegistry(
        [
            fetch_api_data,
            validate_data,
            transform_data,
            analyze_method_a,
            analyze_method_b,
            merge_analyses,
        ]
    )
    result = await Executor(registry).run(pipeline)
    assert result.ok
    assert result.outputs["merge_results"] == {"mean": 3.0, "median": 3.0}
    # The lesson's visualize(): the plan as Mermaid, with the diamond.
    diagram = to_mermaid(pipeline)
    for edge in (
        "transform --> analyze_a",
        "transform --> analyze_b",
        "analyze_a --> merge_results",
        "analyze_b --> merge_results",
    ):
        assert edge in diagram


# --------------------------------------------------------------------------- saga


def order_tools(shipping_works: bool) -> tuple[list[Any], list[str]]:
    log: list[str] = []

    @tool(compensate=Compensation("release_reservation", {"reservation_id": "$output.id"}))
    def reserve_items(items: list[str]) -> dict[str, Any]:
        log.append(f"reserve {','.join(items)}")
        return {"id": "RES-1"}

    @tool(compensate=Compensation("refund_payment", {"transaction_id": "$output.id"}))
    def process_payment(amount: int, method: str) -> dict[str, Any]:
        log.append(f"charge {amount} by {method}")
        return {"id": "TXN-1", "order_id": "ORD-1"}

    @tool(compensate=Compensation("cancel_shipment", {"shipment_id": "$output.id"}))
    def create_shipment(order_id: str) -> dict[str, Any]:
        if not shipping_works:
            raise PermanentToolError("no courier available")
        log.append(f"ship {order_id}")
        return {"id": "SHP-1"}

    @tool
    def release_reservation(reservation_id: str) -> None:
        log.append(f"release {reservation_id}")

    @tool
    def refund_payment(transaction_id: str) -> None:
        log.append(f"refund {transaction_id}")

    @tool
    def cancel_shipment(shipment_id: str) -> None:
        log.append(f"cancel {shipment_id}")

    tools = [
        reserve_items,
        process_payment,
        create_shipment,
        release_reservation,
        refund_payment,
        cancel_shipment,
    ]
    return tools, log


ORDER = plan(
    {
        "goal": "Place an order",
        "steps": [
            {
                "id": "reserve_inventory",
                "tool": "reserve_items",
                "args": {"items": ["item1", "item2"]},
            },
            {
                "id": "charge_payment",
                "tool": "process_payment",
                "args": {"amount": 100, "method": "credit_card"},
                "depends_on": ["reserve_inventory"],
            },
            {
                "id": "ship_order",
                "tool": "create_shipment",
                "args": {"order_id": "$charge_payment.order_id"},
            },
        ],
    }
)


def test_saga_compensates_payment_then_reservation_when_shipping_fails() -> None:
    tools, log = order_tools(shipping_works=False)
    result = run_plan(ORDER, ToolRegistry(tools))
    assert result.status is RunStatus.FAILED
    assert log == [
        "reserve item1,item2",
        "charge 100 by credit_card",
        "refund TXN-1",
        "release RES-1",
    ]
    assert result.steps["charge_payment"].status is StepStatus.COMPENSATED
    assert result.steps["reserve_inventory"].status is StepStatus.COMPENSATED


def test_saga_does_nothing_more_when_the_order_goes_through() -> None:
    tools, log = order_tools(shipping_works=True)
    result = run_plan(ORDER, ToolRegistry(tools))
    assert result.ok
    assert log == ["reserve item1,item2", "charge 100 by credit_card", "ship ORD-1"]


# --------------------------------------------------------------------------- monitored workflow


async def test_monitored_workflow_summary_and_timeline() -> None:
    registry = weather_registry()
    executor = Executor(registry)
    monitor = Monitor(executor.bus)
    events: list[Event] = []
    executor.bus.subscribe(events.append)
    await executor.run(WEATHER_OUTFIT, run_id="workflow-123")

    summary = monitor.get_workflow_summary("workflow-123")
    assert summary["run_id"] == "workflow-123"
    assert summary["total"] == 2 and summary["successful"] == 2
    assert summary["failed"] == 0 and summary["in_progress"] == 0
    assert summary["is_active"] is False
    assert summary["average_duration"] == pytest.approx(summary["total_duration"] / 2)

    timeline = monitor.get_step_timeline("workflow-123")
    assert [(t["step_id"], t["tool"], t["success"]) for t in timeline] == [
        ("weather", "get_weather", True),
        ("outfit", "recommend_outfit", True),
    ]
    assert all(t["duration"] is not None and t["error"] is None for t in timeline)
    assert events[0].type is EventType.RUN_STARTED
