"""MCP servers in subprocesses: a real third-party server from PyPI (``mcp-server-time``, offline),
the fixture server (overlap, a server that dies) and tooldag's own server over streamable HTTP.

``mcp-server-time`` is in the ``test`` extra: these tests fail, never skip, where it is missing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tooldag import Plan, StepApproval, load_registry, plan_and_run, run_plan
from tooldag.result import RunStatus, StepStatus
from tooldag.testing import FakeLLMServer

pytestmark = pytest.mark.slow

TIME = f"mcp:stdio:{sys.executable} -m mcp_server_time --local-timezone UTC"
FIXTURE = Path(__file__).parent / "fixtures" / "mcp_server.py"
TIME_PLAN = {
    "goal": "time in oslo and tokyo",
    "steps": [
        {"id": "oslo", "tool": "time__get_current_time", "args": {"timezone": "Europe/Oslo"}},
        {
            "id": "tokyo",
            "tool": "time__convert_time",
            "args": {
                "source_timezone": "$oslo.timezone",
                "time": "09:30",
                "target_timezone": "Asia/Tokyo",
            },
        },
    ],
    "answer": "Oslo: ${oslo.day_of_week}; 09:30 there is ${tokyo.target.datetime} in Tokyo",
}


def plan_of(*steps: dict[str, Any]) -> Plan:
    return Plan.model_validate({"goal": "test", "steps": list(steps)})


def test_the_time_servers_tools_are_listed_with_their_schemas() -> None:
    registry = load_registry([TIME])
    assert set(registry.names()) == {"time__get_current_time", "time__convert_time"}
    now = registry.get("time__get_current_time")
    assert now.required == {"timezone"} and now.output_schema is not None
    assert {"datetime", "day_of_week"} <= set(now.output_schema["properties"])
    assert not now.side_effects and now.idempotent  # its readOnlyHint / idempotentHint
    assert now.is_egress("timezone")  # its openWorldHint: false does not lift egress


def test_a_goal_is_planned_over_the_time_server_and_run_end_to_end() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def approve_step(request: StepApproval) -> bool:
        asked.append((request.step.id, dict(request.args)))
        return True

    with FakeLLMServer(rules={"oslo and tokyo": TIME_PLAN}) as fake:
        result = plan_and_run(
            "What is the time in Oslo and Tokyo?",
            tools=[TIME],
            llm=fake.client(),
            approve_step=approve_step,
        )
        offered = json.dumps(fake.requests[0])
    assert "time__convert_time" in offered  # the planner was shown the server's tools
    assert result.status is RunStatus.SUCCEEDED, result.error
    # A remote tool's output is taken as private and untrusted whatever its hints say, so the
    # step it flows into is asked about, with the argument resolved from the first call.
    assert asked == [("tokyo", {**asked[0][1], "source_timezone": "Europe/Oslo"})]
    assert result.outputs["oslo"]["timezone"] == "Europe/Oslo"
    tokyo = result.outputs["tokyo"]
    assert tokyo["target"]["timezone"] == "Asia/Tokyo" and tokyo["time_difference"] in (
        "+7.0h",
        "+8.0h",
    )
    assert result.answer is not None and result.answer.endswith("in Tokyo")
    assert tokyo["target"]["datetime"] in result.answer


def _tooldag(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tooldag", *args],
        cwd=cwd,
        env={**os.environ, "TOOLDAG_HOME": str(cwd), "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_lists_and_runs_an_mcp_servers_tools(tmp_path: Path) -> None:
    listed = _tooldag("tools", "--tools", TIME, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {t["name"] for t in json.loads(listed.stdout)}
    assert names == {"time__get_current_time", "time__convert_time"}
    (tmp_path / "plan.json").write_text(json.dumps(TIME_PLAN))
    done = _tooldag("exec", "plan.json", "--tools", TIME, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["answer"].endswith("in Tokyo")


def test_a_host_config_file_is_a_tools_spec(tmp_path: Path) -> None:
    config = tmp_path / "mcp-config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "clock": {
                        "command": sys.executable,
                        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                    },
                    "fixture": {"command": sys.executable, "args": [str(FIXTURE), str(tmp_path)]},
                }
            }
        )
    )
    registry = load_registry([str(config)])
    assert {"clock__get_current_time", "fixture__echo"} <= set(registry.names())
    result = run_plan(
        plan_of(
            {"id": "t", "tool": "clock__get_current_time", "args": {"timezone": "UTC"}},
            {"id": "e", "tool": "fixture__echo", "args": {"x": 7}},
        ),
        registry,
    )
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["e"] == {"x": 7} and result.outputs["t"]["timezone"] == "UTC"


def test_parallel_calls_on_one_stdio_server_overlap_in_one_process(tmp_path: Path) -> None:
    registry = load_registry([f"mcp:fixture=stdio:{sys.executable} {FIXTURE} {tmp_path}"])
    steps = [{"id": f"g{i}", "tool": "fixture__gather", "args": {"n": 8}} for i in range(8)]
    result = run_plan(plan_of(*steps), registry)
    # Each call answered only once all eight waited in the server at the same time.
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert len({out["pid"] for out in result.outputs.values()}) == 1  # one session, one process


def test_a_server_that_dies_mid_call_is_a_transient_failure_retried_on_a_new_session(
    tmp_path: Path,
) -> None:
    registry = load_registry([f"mcp:fixture=stdio:{sys.executable} {FIXTURE} {tmp_path}"])
    result = run_plan(plan_of({"id": "d", "tool": "fixture__die_once", "args": {}}), registry)
    record = result.steps["d"]
    assert record.status is StepStatus.SUCCEEDED, record.error
    assert record.attempts == 2 and result.outputs["d"] == {"result": "alive"}


def test_a_server_that_dies_says_so_with_its_stderr(tmp_path: Path) -> None:
    from tooldag import RetryPolicy

    registry = load_registry([f"mcp:fixture=stdio:{sys.executable} {FIXTURE} {tmp_path}"])
    registry.get("fixture__die_once").retry = RetryPolicy(attempts=1)
    result = run_plan(plan_of({"id": "d", "tool": "fixture__die_once", "args": {}}), registry)
    error = result.steps["d"].error
    assert error is not None and error.transient and error.type == "TransientToolError"
    assert "closed the connection during die_once" in error.message
    assert "dying on purpose" in error.message  # the tail of the server's stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tooldag_over_http(tmp_path: Path) -> Iterator[int]:
    """``tooldag mcp serve --http PORT --tools calc``, up and listening."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooldag", "mcp", "serve", "--tools", "calc", "--http", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until it accepts connections (or has died)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tooldag_serves_over_http_and_a_plan_calls_it_over_http(tooldag_over_http: int) -> None:
    registry = load_registry([f"mcp:tooldag=http://127.0.0.1:{tooldag_over_http}/mcp"])
    assert {"tooldag__plan", "tooldag__validate", "tooldag__run", "tooldag__exec"} <= set(
        registry.names()
    )
    inner = {
        "goal": "six sevens",
        "steps": [{"id": "a", "tool": "calculate", "args": {"expression": "6 * 7"}}],
    }
    result = run_plan(
        plan_of(
            {"id": "check", "tool": "tooldag__validate", "args": {"plan": inner}},
            {"id": "run", "tool": "tooldag__exec", "args": {"plan": inner}},
        ),
        registry,
    )
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["check"]["valid"] is True
    assert result.outputs["run"]["status"] == "succeeded"
    assert result.outputs["run"]["outputs"]["a"]["result"] == 42
