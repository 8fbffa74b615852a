"""OpenTelemetry traces from events: the span tree of a run (workflow > plan > chat, workflow >
execute_tool per attempt), the GenAI attribute names, content only when asked, the parent of a
tool's own span under parallel steps, the process-wide instrument(), and the error without the
extra. Spans go to the SDK's in-memory exporter through a provider of the test's own."""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tooldag.agent import aplan_and_run
from tooldag.errors import ConfigError, TransientToolError
from tooldag.events import EventBus
from tooldag.execution.executor import Executor, run_plan
from tooldag.llm.client import LLMClient
from tooldag.observe import otel
from tooldag.observe.otel import RunTracer, instrument, uninstrument
from tooldag.plan.model import Plan
from tooldag.registry import RetryPolicy, ToolRegistry, tool
from tooldag.result import RunStatus
from tooldag.testing import Reply, mock_openai

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


# --------------------------------------------------------------------------- tools

FLAKY: dict[str, int] = {}


@tool(side_effects=False)
def fetch(name: str) -> dict[str, str]:
    """Fetch a thing."""
    return {"name": name, "body": f"secret body of {name}"}


@tool(side_effects=False)
def combine(a: str, b: str) -> str:
    """Combine two things."""
    return f"{a}+{b}"


@tool(side_effects=False, retry=RetryPolicy(attempts=3, initial_backoff=0.0, jitter=0.0))
def flaky(key: str) -> str:
    """Fails once, then works."""
    FLAKY[key] = FLAKY.get(key, 0) + 1
    if FLAKY[key] == 1:
        raise TransientToolError("try again")
    return "ok"


@tool(side_effects=False)
def broken() -> str:
    """Always fails."""
    raise ValueError("no good")


DIAMOND = Plan.model_validate(
    {
        "goal": "combine two fetched things",
        "steps": [
            {"id": "left", "tool": "fetch", "args": {"name": "l"}},
            {"id": "right", "tool": "fetch", "args": {"name": "r"}},
            {"id": "both", "tool": "combine", "args": {"a": "$left.name", "b": "$right.name"}},
        ],
    }
)


def registry() -> ToolRegistry:
    return ToolRegistry([fetch, combine, flaky, broken])


# --------------------------------------------------------------------------- the tree


def test_a_run_is_one_workflow_span_with_one_execute_tool_span_per_step(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    executor = Executor(registry())
    RunTracer(provider).attach(executor.bus)
    result = asyncio.run(executor.run(DIAMOND, run_id="r-diamond"))
    assert result.status is RunStatus.SUCCEEDED

    spans = by_name(exporter.get_finished_spans())
    assert sorted(spans) == [
        "execute_tool combine",
        "execute_tool fetch",
        "invoke_workflow tooldag",
    ]
    (run,) = spans["invoke_workflow tooldag"]
    assert run.parent is None
    assert run.attributes is not None
    assert dict(run.attributes) == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "tooldag",
        "tooldag.run.id": "r-diamond",
        "tooldag.plan.steps": 3,
        "tooldag.run.status": "succeeded",
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
    }
    assert run.status.status_code is StatusCode.UNSET
    steps = [*spans["execute_tool fetch"], *spans["execute_tool combine"]]
    assert {parent_of(s) for s in steps} == {span_id(run)}
    assert {s.context.trace_id for s in steps if s.context} == {run.context.trace_id}  # type: ignore[union-attr]
    both = spans["execute_tool combine"][0]
    assert both.attributes is not None
    assert dict(both.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "combine",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "r-diamond:both:1",
        "tooldag.run.id": "r-diamond",
        "tooldag.step.id": "both",
        "tooldag.step.attempt": 1,
        "tooldag.step.status": "succeeded",
    }
    # The combining step starts after both fetches end, and inside the run's span.
    fetch_end = max(s.end_time or 0 for s in spans["execute_tool fetch"])
    assert both.start_time is not None and both.start_time >= fetch_end
    assert run.start_time is not None and run.end_time is not None
    assert run.start_time <= min(s.start_time or 0 for s in steps)
    assert run.end_time >= max(s.end_time or 0 for s in steps)


def test_arguments_and_outputs_are_recorded_only_when_asked(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(otel.CAPTURE_CONTENT_ENV, raising=False)
    for capture, run_id in ((None, "quiet"), (True, "loud")):
        executor = Executor(registry())
        RunTracer(provider, capture_content=capture).attach(executor.bus)
        asyncio.run(executor.run(DIAMOND, run_id=run_id))
    texts: dict[str, str] = {}
    for span in exporter.get_finished_spans():
        attributes = dict(span.attributes or {})
        texts[attributes["tooldag.run.id"]] = texts.get(attributes["tooldag.run.id"], "") + repr(
            attributes
        )
    assert (
        "secret body" not in texts["quiet"]
        and "gen_ai.tool.call" + ".arguments" not in texts["quiet"]
    )
    assert "combine two fetched things" not in texts["quiet"]
    assert "secret body of l" in texts["loud"]
    assert "'gen_ai.tool.call.arguments': '{\"name\": \"l\"}'" in texts["loud"]
    assert "combine two fetched things" in texts["loud"]  # the goal, on the run's span


def test_the_environment_variable_turns_content_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(otel.CAPTURE_CONTENT_ENV, "true")
    assert RunTracer().capture_content is True
    monkeypatch.setenv(otel.CAPTURE_CONTENT_ENV, "false")
    assert RunTracer().capture_content is False


def test_each_attempt_is_a_span_and_failures_carry_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    FLAKY.clear()
    plan = Plan.model_validate(
        {
            "steps": [
                {"id": "f", "tool": "flaky", "args": {"key": "k"}},
                {"id": "b", "tool": "broken"},
                {"id": "after", "tool": "combine", "args": {"a": "$b", "b": "x"}},
            ]
        }
    )
    executor = Executor(registry())
    RunTracer(provider).attach(executor.bus)
    result = asyncio.run(executor.run(plan, run_id="r-fail", compensate=False))
    assert result.status is RunStatus.FAILED

    spans = by_name(exporter.get_finished_spans())
    attempts = sorted(
        (dict(s.attributes or {}) for s in spans["execute_tool flaky"]),
        key=lambda a: a["tooldag.step.attempt"],
    )
    assert [(a["tooldag.step.attempt"], a["tooldag.step.status"]) for a in attempts] == [
        (1, "retrying"),
        (2, "succeeded"),
    ]
    assert attempts[0]["error.type"] == "TransientToolError"
    assert "error.type" not in attempts[1]
    (bad,) = spans["execute_tool broken"]
    assert bad.attributes is not None and bad.attributes["error.type"] == "ValueError"
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description is not None and "no good" in bad.status.description
    (run,) = spans["invoke_workflow tooldag"]
    assert run.attributes is not None and run.attributes["error.type"] == "failed"
    assert run.status.status_code is StatusCode.ERROR
    # The blocked step never ran: an event on the run's span, not a span of its own.
    assert "execute_tool combine" not in spans
    blocked = [e for e in run.events if e.name == "step blocked"]
    assert [dict(e.attributes or {})["tooldag.step.id"] for e in blocked] == ["after"]


# --------------------------------------------------------------------------- parallel steps


def test_a_tools_own_span_sits_under_its_step_while_steps_run_at_once(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    inner = provider.get_tracer("a tool's library")
    barrier = threading.Barrier(3, timeout=10)  # three sync tools, each in its own thread

    @tool(side_effects=False)
    def sync_work(n: int) -> int:
        """Waits for the other two, so that all three run at once."""
        with inner.start_as_current_span(f"inner sync {n}"):
            barrier.wait()
        return n

    started = asyncio.Event
    gate: dict[str, Any] = {}

    @tool(side_effects=False)
    async def async_work(n: int) -> int:
        """Waits for the other async step."""
        with inner.start_as_current_span(f"inner async {n}"):
            gate["count"] = gate.get("count", 0) + 1
            if gate["count"] == 2:
                gate["event"].set()
            await gate["event"].wait()
        return n

    plan = Plan.model_validate(
        {
            "steps": [
                *({"id": f"s{n}", "tool": "sync_work", "args": {"n": n}} for n in range(3)),
                *({"id": f"a{n}", "tool": "async_work", "args": {"n": n}} for n in range(2)),
            ]
        }
    )

    async def go() -> None:
        gate["event"] = started()
        executor = Executor(ToolRegistry([sync_work, async_work]), max_concurrency=8)
        RunTracer(provider).attach(executor.bus)
        result = await executor.run(plan, run_id="r-par")
        assert result.status is RunStatus.SUCCEEDED, result.error

    asyncio.run(go())
    spans = exporter.get_finished_spans()
    step_span = {
        dict(s.attributes or {})["tooldag.step.id"]: s
        for s in spans
        if s.name.startswith("execute")
    }
    for s in spans:
        if s.name.startswith("inner"):
            kind, n = s.name.split()[1:]
            own = step_span[f"{kind[0]}{n}"]
            assert parent_of(s) == span_id(own), s.name
    assert len([s for s in spans if s.name.startswith("inner")]) == 5


def test_the_run_span_is_a_child_of_the_callers_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    outer = provider.get_tracer("app")
    bus = EventBus()
    RunTracer(provider).attach(bus)
    with outer.start_as_current_span("request") as request:
        run_plan(DIAMOND, registry(), run_id="r-nested", bus=bus)
    spans = by_name(exporter.get_finished_spans())
    (run,) = spans["invoke_workflow tooldag"]
    assert parent_of(run) == request.get_span_context().span_id


# --------------------------------------------------------------------------- LLM calls


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


async def test_planning_is_a_plan_span_with_one_chat_span_per_llm_call(
    router: respx.MockRouter, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    LLMClient.forget_working_modes()
    FLAKY.clear()
    bad = {"steps": [{"id": "x", "tool": "no_such_tool"}]}
    failing = {"steps": [{"id": "b", "tool": "broken"}]}
    good = {"steps": [{"id": "f", "tool": "fetch", "args": {"name": "n"}}], "answer": "${f.name}"}
    usage = {"prompt_tokens": 100, "completion_tokens": 10}
    mock_openai(
        router,
        [Reply(bad, usage=usage), Reply(failing, usage=usage), Reply(good, usage=usage)],
        model="fake-model",
    )
    llm = LLMClient.from_env(api_key="sk-test", env={}, model="fake-model")
    result = await aplan_and_run(
        "fetch n", tools=registry(), llm=llm, on_event=RunTracer(provider), run_id="r-llm"
    )
    assert result.status is RunStatus.SUCCEEDED, result.error

    spans = by_name(exporter.get_finished_spans())
    (run,) = spans["invoke_workflow tooldag"]
    plans = sorted(spans["plan"], key=lambda s: s.start_time or 0)
    assert [dict(p.attributes or {})["tooldag.plan.purpose"] for p in plans] == ["plan", "replan"]
    assert [dict(p.attributes or {})["tooldag.plan.version"] for p in plans] == [1, 2]
    assert {parent_of(p) for p in plans} == {span_id(run)}
    chats = sorted(spans["chat fake-model"], key=lambda s: s.start_time or 0)
    assert [dict(c.attributes or {})["tooldag.llm.purpose"] for c in chats] == [
        "plan",
        "repair",
        "replan",
    ]
    # The re-ask belongs to the first planning; the replan's call to the second.
    assert [parent_of(c) for c in chats] == [
        span_id(plans[0]),
        span_id(plans[0]),
        span_id(plans[1]),
    ]
    first = dict(chats[0].attributes or {})
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.request.model"] == "fake-model"
    assert first["gen_ai.usage.input_tokens"] == 100
    assert first["gen_ai.usage.output_tokens"] == 10
    assert all(c.start_time is not None and c.end_time is not None for c in chats)
    # The call takes time (the planner says how long): its span is not a point in time.
    assert all((c.end_time or 0) > (c.start_time or 0) for c in chats)
    assert dict(run.attributes or {})["gen_ai.usage.input_tokens"] == 300
    assert dict(run.attributes or {})["gen_ai.usage.output_tokens"] == 30
    # The tools ran after their plan was made, under the run.
    step_spans = spans["execute_tool broken"] + spans["execute_tool fetch"]
    assert {parent_of(s) for s in step_spans} == {span_id(run)}
    assert (spans["execute_tool fetch"][0].start_time or 0) >= (plans[1].end_time or 0)


# --------------------------------------------------------------------------- process-wide


def test_instrument_traces_every_run_until_uninstrument(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(provider)
    try:
        run_plan(DIAMOND, registry(), run_id="r-global")
    finally:
        uninstrument()
    run_plan(DIAMOND, registry(), run_id="r-after")
    ids = {dict(s.attributes or {})["tooldag.run.id"] for s in exporter.get_finished_spans()}
    assert ids == {"r-global"}


def test_the_global_provider_is_used_when_none_is_given(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "get_tracer", lambda *a, **k: provider.get_tracer("tooldag"))
    bus = EventBus()
    RunTracer().attach(bus)
    run_plan(DIAMOND, registry(), run_id="r-default", bus=bus)
    assert "invoke_workflow tooldag" in by_name(exporter.get_finished_spans())


def test_without_the_extra_the_tracer_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(otel, "HAVE_OTEL", False)
    with pytest.raises(ConfigError, match=r"pip install 'tooldag\[otel\]'"):
        RunTracer()


# --------------------------------------------------------------------------- tooldag --otel


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_the_cli_exports_a_runs_spans_over_otlp_where_the_environment_says(
    tmp_path: Path,
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    env["TOOLDAG_HOME"] = str(tmp_path)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tooldag",
                "--otel",
                "exec",
                str(EXAMPLES / "weather_plan.json"),
                "--tools",
                str(EXAMPLES / "weather_tools.py"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert {path for path, _ in _Collector.received} == {"/v1/traces"}
    spans = []
    for _, body in _Collector.received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "tooldag"
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    names = sorted(s.name for s in spans)
    assert names == [
        "execute_tool get_weather",
        "execute_tool recommend_outfit",
        "invoke_workflow tooldag",
    ]
    (run,) = [s for s in spans if s.name == "invoke_workflow tooldag"]
    assert {s.parent_span_id for s in spans if s is not run} == {run.span_id}
    assert {s.trace_id for s in spans} == {run.trace_id}
