"""MCP servers as tool sources, against in-process servers (the official SDK's ``MCPServer``).

The protocol details: schemas and annotations, what a call returns, errors, name mapping, one
session per run shared by parallel steps, cancellation and timeouts. Overlap and cancellation are
shown with gates the server's tools wait on, never with timing; sessions are counted by the
server's lifespan, which the SDK enters once per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent, ToolAnnotations
from typing_extensions import TypedDict

from tooldag import Plan, ToolRegistry, load_registry, run_plan, validate
from tooldag.errors import ConfigError
from tooldag.execution.executor import Executor
from tooldag.mcp import ServerConfig, aload_tools, mcp_tools
from tooldag.result import RunStatus, StepStatus
from tooldag.validate import flows

GATE = 5.0


class Note(TypedDict):
    title: str
    words: int


class Demo:
    """An in-process server and what its tools saw."""

    def __init__(self) -> None:
        self.sessions = 0
        self.open = 0
        self.called: list[str] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.hangs = 1  # how many calls of `slow` hang before one answers
        self.waiting = 0
        self.together = asyncio.Event()

        @contextlib.asynccontextmanager
        async def lifespan(app: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
            self.sessions += 1
            self.open += 1
            try:
                yield {}
            finally:
                self.open -= 1

        app: MCPServer[Any] = MCPServer("demo", lifespan=lifespan, log_level="WARNING")
        self.app = app
        read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

        @app.tool(name="notes.read", annotations=read_only)
        def read(path: str) -> Note:
            """Read a note."""
            self.called.append("notes.read")
            return {"title": path.upper(), "words": len(path)}

        @app.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
        def erase(path: str) -> str:
            """Erase a note."""
            return f"erased {path}"

        @app.tool(structured_output=False)
        def as_json(n: int) -> dict[str, int]:
            """Unstructured JSON text."""
            return {"n": n}

        @app.tool(structured_output=False)
        def as_text(n: int) -> str:
            """Plain text."""
            return f"{n} apples"

        @app.tool(structured_output=False)
        def picture() -> list[Any]:
            """Text and an image."""
            return [
                TextContent(type="text", text="a dot"),
                ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
            ]

        @app.tool()
        def fail(why: str) -> str:
            """Always an error result."""
            raise ToolError(f"cannot: {why}")

        @app.tool(annotations=read_only)
        async def gather(n: int) -> int:
            """Answer once n calls wait at the same time."""
            self.waiting += 1
            if self.waiting >= n:
                self.together.set()
            await asyncio.wait_for(self.together.wait(), GATE)
            return self.waiting

        @app.tool(annotations=read_only)
        async def block() -> str:
            """Wait until cancelled."""
            self.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return "never"

        @app.tool(annotations=read_only)
        async def slow() -> str:
            """Hang the first `hangs` calls."""
            if self.hangs > 0:
                self.hangs -= 1
                await asyncio.Event().wait()
            return "answered"

        @app.tool(name="slow_write", annotations=ToolAnnotations(destructive_hint=True))
        async def slow_write() -> str:
            """Hang, with side effects."""
            await asyncio.Event().wait()
            return "never"


def plan_of(*steps: dict[str, Any], answer: str | None = None) -> Plan:
    return Plan.model_validate({"goal": "test", "steps": list(steps), "answer": answer})


async def registry_of(demo: Demo, **options: Any) -> ToolRegistry:
    return ToolRegistry(await aload_tools([ServerConfig("demo", target=demo.app, **options)]))


@pytest.fixture
def demo() -> Demo:
    return Demo()


# -- what a server's tools become


async def test_each_tool_keeps_its_schemas_and_is_named_for_its_server(demo: Demo) -> None:
    registry = await registry_of(demo)
    read = registry.get("demo__notes_read")
    assert read.properties == {"path": {"title": "Path", "type": "string"}}
    assert read.required == {"path"}
    assert read.output_schema is not None
    assert set(read.output_schema["properties"]) == {"title", "words"}
    assert read.metadata["mcp"]["tool"] == "notes.read"  # the name the server knows
    assert read.placement == "local"  # its session is this process's: never on a Dask worker
    assert read.category == "mcp" and read.summary == "Read a note."
    assert "demo__as_json" in registry and registry.get("demo__as_json").output_schema is None
    assert all(t.name.startswith("demo__") for t in registry)


async def test_annotations_say_side_effects_and_idempotence(demo: Demo) -> None:
    registry = await registry_of(demo)
    read, erase, fail = (registry.get(f"demo__{n}") for n in ("notes_read", "erase", "fail"))
    assert (read.side_effects, read.idempotent) == (False, True)
    assert (erase.side_effects, erase.idempotent) == (True, True)
    assert (fail.side_effects, fail.idempotent) == (True, False)  # no hints: the safe side


async def test_a_servers_hints_never_make_its_tools_more_trusted(demo: Demo) -> None:
    registry = await registry_of(demo)
    read = registry.get("demo__notes_read")  # readOnlyHint, openWorldHint: false
    assert read.reads_private and read.untrusted_output
    assert read.is_egress("path")  # openWorldHint: false does not lift egress
    plan = plan_of(
        {"id": "a", "tool": "demo__notes_read", "args": {"path": "secret"}},
        {"id": "b", "tool": "demo__notes_read", "args": {"path": "$a.title"}},
    )
    assert validate(plan, registry) == []
    (flow,) = flows(plan, registry)
    assert flow.step == "b" and flow.kinds == {"private", "untrusted"}


async def test_references_into_structured_results_validate_against_the_output_schema(
    demo: Demo,
) -> None:
    registry = await registry_of(demo)
    good = plan_of(
        {"id": "n", "tool": "demo__notes_read", "args": {"path": "x"}},
        {"id": "e", "tool": "demo__erase", "args": {"path": "$n.title"}},
    )
    assert validate(good, registry) == []
    bad = plan_of(
        {"id": "n", "tool": "demo__notes_read", "args": {"path": "x"}},
        {"id": "e", "tool": "demo__erase", "args": {"path": "$n.author"}},
    )
    assert [i.code for i in validate(bad, registry)] == ["unknown_field"]


# -- calls


async def test_a_call_returns_structured_content_else_its_text_decoded_when_json(
    demo: Demo,
) -> None:
    registry = await registry_of(demo)
    plan = plan_of(
        {"id": "s", "tool": "demo__notes_read", "args": {"path": "ab"}},
        {"id": "j", "tool": "demo__as_json", "args": {"n": 2}},
        {"id": "t", "tool": "demo__as_text", "args": {"n": 3}},
        {"id": "p", "tool": "demo__picture", "args": {}},
        answer="${s.title} has ${s.words} words; ${j.n}; ${t}",
    )
    result = await Executor(registry).run(plan)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["s"] == {"title": "AB", "words": 2}
    assert result.outputs["j"] == {"n": 2}
    assert result.outputs["t"] == "3 apples"
    text, image = result.outputs["p"]
    assert text == "a dot" and image["type"] == "image" and image["mimeType"] == "image/png"
    assert result.answer == "AB has 2 words; 2; 3 apples"
    assert demo.called == ["notes.read"]  # sent under the server's own name


async def test_an_error_result_fails_the_step_with_the_servers_text(demo: Demo) -> None:
    registry = await registry_of(demo)
    result = await Executor(registry).run(
        plan_of({"id": "f", "tool": "demo__fail", "args": {"why": "the disk is full"}})
    )
    record = result.steps["f"]
    assert record.status is StepStatus.FAILED and record.attempts == 1  # not retried
    assert record.error is not None and record.error.type == "PermanentToolError"
    assert (
        "demo.fail" in record.error.message and "cannot: the disk is full" in record.error.message
    )


async def test_parallel_steps_share_one_session_and_overlap(demo: Demo) -> None:
    registry = await registry_of(demo)
    assert (demo.sessions, demo.open) == (1, 0)  # listing the tools: one session, closed
    plan = plan_of(*({"id": f"g{i}", "tool": "demo__gather", "args": {"n": 4}} for i in range(4)))
    result = await Executor(registry).run(plan)
    # Each call waited until all four were in the server at once: they overlapped.
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert (demo.sessions, demo.open) == (2, 0)  # one session for the whole run, closed after
    await Executor(registry).run(plan)
    assert demo.sessions == 3  # the next run has its own


async def test_cancelling_a_run_cancels_the_request_in_flight(demo: Demo) -> None:
    registry = await registry_of(demo)
    handle = Executor(registry).start(plan_of({"id": "b", "tool": "demo__block", "args": {}}))
    await asyncio.wait_for(demo.started.wait(), GATE)
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), GATE)
    assert result.status is RunStatus.CANCELLED
    await asyncio.wait_for(demo.cancelled.wait(), GATE)  # the server's tool was stopped
    assert demo.open == 0


async def test_a_server_that_does_not_answer_in_time_is_retried_on_a_new_session(
    demo: Demo,
) -> None:
    registry = await registry_of(demo, timeout=0.2)
    result = await Executor(registry).run(plan_of({"id": "s", "tool": "demo__slow", "args": {}}))
    record = result.steps["s"]
    assert record.status is StepStatus.SUCCEEDED
    assert result.outputs["s"] == {"result": "answered"}  # a str result, wrapped by the SDK
    assert record.attempts == 2  # read-only: a timeout is retried
    assert demo.sessions == 1 + 2  # the listing, the stuck session, the one that answered


async def test_a_side_effecting_call_that_times_out_is_not_repeated(demo: Demo) -> None:
    registry = await registry_of(demo, timeout=0.2)
    result = await Executor(registry).run(
        plan_of({"id": "w", "tool": "demo__slow_write", "args": {}})
    )
    record = result.steps["w"]
    assert record.status is StepStatus.FAILED and record.attempts == 1  # it may have happened
    assert record.error is not None and record.error.type == "TimeoutError"
    assert "did not answer slow_write within 0.2s" in record.error.message


async def test_a_call_outside_a_run_opens_and_closes_a_session_of_its_own(demo: Demo) -> None:
    registry = await registry_of(demo)
    read = registry.get("demo__notes_read")
    assert read.function is not None
    assert await read.function(path="x") == {"title": "X", "words": 1}
    assert (demo.sessions, demo.open) == (2, 0)


def test_the_sync_loaders_work_from_plain_code(demo: Demo) -> None:
    registry = ToolRegistry(mcp_tools(demo.app, name="notes"))
    assert "notes__notes_read" in registry
    result = run_plan(
        plan_of({"id": "n", "tool": "notes__notes_read", "args": {"path": "hi"}}), registry
    )
    assert result.outputs["n"] == {"title": "HI", "words": 2}


# -- loading errors


def test_without_the_sdk_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what a missing package looks like
    with pytest.raises(ConfigError, match=r"pip install 'tooldag\[mcp\]'"):
        load_registry(["mcp:stdio:some-server"])


def test_a_server_that_cannot_start_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_registry(["mcp:stdio:no-such-mcp-server-anywhere --flag"])
    message = str(caught.value)
    # Named as the library argument it came in (the command line passes option="--tools").
    assert message.startswith("tools='mcp:stdio:no-such-mcp-server-anywhere --flag': ")
    assert "no such command: no-such-mcp-server-anywhere" in message
    assert "\n" not in message
