"""Steps on a real Dask cluster: where calls run, their keys, tooldag's retries, timeouts, cancels,
the journal's size cap, a killed worker.

Most tests share one in-process ``LocalCluster(processes=False)``: real scheduler, real workers,
threads of this process. The slow ones start ``local:2``, two worker processes, to show a call
runs in another process (a tool returns its pid) and that a worker killed mid-step is a transient
failure. Tools report through files (a call runs on a copy of its tool, pickled by value), and
tests wait for files, never for time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest

from store_helpers import wait_for_file
from tooldag.durable.runner import DurableExecutor
from tooldag.durable.store import RunStore
from tooldag.errors import ConfigError, RegistrationError, TransientToolError
from tooldag.events import EventType, StepRetrying
from tooldag.execution.dask_runner import DaskRunner, parse_dask_spec
from tooldag.execution.executor import Executor, run_plan
from tooldag.plan import Plan
from tooldag.registry import RetryPolicy, ToolContext, ToolRegistry, tool
from tooldag.registry.loading import load_tools
from tooldag.result import RunStatus, StepStatus
from tooldag.ui.cli import main as cli_main


def where() -> str | None:
    """The Dask worker this runs on, or None in the driver."""
    try:
        return str(distributed.get_worker().address)
    except ValueError:
        return None


def note(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


@tool(side_effects=False)
def located(x: int) -> dict[str, Any]:
    """Where it ran."""
    return {"x": x + 1, "worker": where()}


@tool(side_effects=False)
async def alocated(x: int) -> dict[str, Any]:
    """Where it ran, from an async tool."""
    await asyncio.sleep(0)
    return {"x": x * 2, "worker": where()}


@tool(side_effects=False, runner="local")
def pinned(x: int) -> dict[str, Any]:
    """Always in the driver."""
    return {"x": x, "worker": where()}


@tool(side_effects=False, runner="dask")
def wants_dask(x: int) -> dict[str, Any]:
    """On the cluster when there is one."""
    return {"x": x, "worker": where()}


@tool(retry=RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.01, jitter=0))
def flaky(log: str, ctx: ToolContext) -> int:
    """Fails transiently twice, noting the Dask key of every attempt."""
    note(log, distributed.get_worker().get_current_task() or "?")
    if ctx.attempt < 3:
        raise TransientToolError(f"attempt {ctx.attempt}: try again")
    return ctx.attempt


@tool(retry=RetryPolicy(attempts=3))
def broken(log: str) -> int:
    """Fails for good (a plain exception is permanent)."""
    note(log, "called")
    raise RuntimeError("broken for good")


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickling calls it with one argument
        super().__init__(f"{a}/{b}")


@tool(retry=RetryPolicy(attempts=1))
def odd_failure() -> int:
    """Raises an exception that cannot travel back as itself."""
    raise Unpicklable(1, 2)


@tool(side_effects=False)
def big(n: int) -> str:
    """A large output."""
    return "x" * n


@tool(side_effects=False, timeout=0.3, retry=RetryPolicy(attempts=1))
def stuck(gate: str, done: str) -> str:
    """Runs until the test opens ``gate`` (a file), then notes that it finished."""
    while not os.path.exists(gate):
        time.sleep(0.01)
    note(done, "finished")
    return "late"


@tool(side_effects=False)
def blocked(started: str, gate: str) -> str:
    """Says it started, then runs until the test opens ``gate``."""
    note(started, "started")
    while not os.path.exists(gate):
        time.sleep(0.01)
    return "released"


@tool(side_effects=False)
def context(ctx: ToolContext) -> str:
    """The context the executor gave it."""
    return f"{ctx.idempotency_key}#{ctx.attempt}@{where() is not None}"


REGISTRY = ToolRegistry(
    [
        located,
        alocated,
        pinned,
        wants_dask,
        flaky,
        broken,
        odd_failure,
        big,
        stuck,
        blocked,
        context,
    ]
)


def plan(*steps: dict[str, Any], answer: str | None = None) -> Plan:
    return Plan.model_validate({"goal": "dask", "steps": list(steps), "answer": answer})


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        processes=False, n_workers=2, threads_per_worker=2, dashboard_address=":0"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def runner(cluster: distributed.LocalCluster) -> Iterator[DaskRunner]:
    client = distributed.Client(cluster, set_as_default=False)
    with DaskRunner(client) as r:
        yield r
    client.close()


# --------------------------------------------------------------------------- where calls run

CHAIN = plan(
    {"id": "a", "tool": "located", "args": {"x": 1}},
    {"id": "b", "tool": "alocated", "args": {"x": "$a.x"}},
    {"id": "c", "tool": "pinned", "args": {"x": "$b.x"}},
    answer="${c.x}",
)


def test_steps_run_on_the_cluster_while_the_journal_stays_in_the_driver(
    runner: DaskRunner, store_url: str
) -> None:
    seen: list[tuple[EventType, str | None, int]] = []
    with RunStore(store_url) as store:
        durable = DurableExecutor(REGISTRY, store=store, runner=runner)
        durable.executor.bus.subscribe(
            lambda e: seen.append((e.type, e.step_id, threading.get_ident()))
        )
        result = durable.start("r1", CHAIN)
        stored = store.load_result("r1")
        durable.close()
    assert result.status is RunStatus.SUCCEEDED and result.answer == "4"
    assert result.outputs["a"]["worker"] is not None  # a sync tool, on a worker
    assert result.outputs["b"]["worker"] is not None  # an async one, in a loop on a worker
    assert result.outputs["c"]["worker"] is None  # runner="local": in the driver
    assert stored.outputs == result.outputs and stored.status is RunStatus.SUCCEEDED
    # Every event was emitted, and journalled, on the driver's one event loop thread.
    assert len({ident for _, _, ident in seen}) == 1
    assert [t for t, s, _ in seen if s == "a"] == [EventType.STEP_STARTED, EventType.STEP_SUCCEEDED]


def test_a_tool_placed_on_dask_runs_here_when_the_executor_has_no_dask_runner() -> None:
    result = run_plan(plan({"id": "d", "tool": "wants_dask", "args": {"x": 1}}), REGISTRY)
    assert result.ok and result.outputs["d"] == {"x": 1, "worker": None}


def test_a_tool_gets_its_context_on_the_worker(runner: DaskRunner) -> None:
    result = run_plan(plan({"id": "s", "tool": "context", "args": {}}), REGISTRY, run_id="rc")
    assert result.outputs["s"] == "rc:s#1@False"  # no runner: here
    result = run_plan(
        plan({"id": "s", "tool": "context", "args": {}}), REGISTRY, run_id="rc", runner=runner
    )
    assert result.outputs["s"] == "rc:s#1@True"


# --------------------------------------------------------------------------- retries and keys


def test_each_attempt_is_its_own_task_keyed_by_run_step_and_attempt(
    runner: DaskRunner, tmp_path: Path
) -> None:
    log = tmp_path / "keys.txt"
    result = run_plan(
        plan({"id": "s", "tool": "flaky", "args": {"log": str(log)}}),
        REGISTRY,
        run_id="rk",
        runner=runner,
    )
    assert result.ok and result.outputs["s"] == 3 and result.steps["s"].attempts == 3
    keys = log.read_text().split()
    assert len(keys) == len(set(keys)) == 3  # tooldag retried; each attempt a new task
    for attempt, key in enumerate(keys, start=1):
        assert key.startswith(f"flaky-rk-s-{attempt}-")


def test_dask_does_not_retry_a_failure(runner: DaskRunner, tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    result = run_plan(
        plan({"id": "s", "tool": "broken", "args": {"log": str(log)}}), REGISTRY, runner=runner
    )
    step = result.steps["s"]
    assert step.status is StepStatus.FAILED and step.attempts == 1
    assert step.error is not None and step.error.type == "RuntimeError"
    assert step.error.message == "broken for good" and not step.error.transient
    assert log.read_text() == "called\n"


def test_an_exception_that_cannot_travel_comes_back_as_a_tool_error(runner: DaskRunner) -> None:
    result = run_plan(plan({"id": "s", "tool": "odd_failure", "args": {}}), REGISTRY, runner=runner)
    error = result.steps["s"].error
    assert error is not None and error.type == "ToolError"
    assert error.message == "Unpicklable: 1/2"


def test_an_output_too_large_for_the_journal_is_refused_on_the_worker(runner: DaskRunner) -> None:
    steps = plan({"id": "s", "tool": "big", "args": {"n": 5000}})
    result = run_plan(steps, REGISTRY, runner=runner, max_output_bytes=1000)
    error = result.steps["s"].error
    assert error is not None and error.type == "PermanentToolError"
    assert "5,002 bytes of JSON, more than the limit of 1,000" in error.message
    assert "on the Dask worker" in error.message
    # The runner's own cap, below the journal's, applies too.
    small = DaskRunner(runner.client, max_result_bytes=100)
    result = run_plan(plan({"id": "s", "tool": "big", "args": {"n": 500}}), REGISTRY, runner=small)
    assert "more than the limit of 100" in (result.steps["s"].error or "").__str__()


# --------------------------------------------------------------------------- stopping


def test_a_timed_out_step_fails_and_its_task_runs_on_cooperatively(
    runner: DaskRunner, tmp_path: Path
) -> None:
    gate, done = tmp_path / "gate", tmp_path / "done"
    steps = plan({"id": "s", "tool": "stuck", "args": {"gate": str(gate), "done": str(done)}})
    result = run_plan(steps, REGISTRY, runner=runner)
    step = result.steps["s"]
    assert step.status is StepStatus.FAILED and step.error is not None
    assert step.error.type == "TimeoutError" and "did not finish within 0.3s" in step.error.message
    gate.touch()  # Dask cannot interrupt a running task: it finishes, its result unused
    assert wait_for_file(done) == "finished\n"


async def test_cancelling_a_run_cancels_the_step_running_on_the_cluster(
    runner: DaskRunner, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    executor = Executor(REGISTRY, runner=runner)
    steps = plan(
        {"id": "s", "tool": "blocked", "args": {"started": str(started), "gate": str(gate)}},
        {"id": "t", "tool": "located", "args": {"x": "$s"}},
    )
    handle = executor.start(steps)
    await asyncio.to_thread(wait_for_file, started)
    handle.cancel()
    result = await handle.wait()
    gate.touch()
    assert result.status is RunStatus.CANCELLED
    assert result.steps["s"].status is StepStatus.CANCELLED
    assert result.steps["t"].status in (StepStatus.BLOCKED, StepStatus.CANCELLED)


# --------------------------------------------------------------------------- configuration


def test_dask_specs_are_checked() -> None:
    assert parse_dask_spec("local") == ("local", None)
    assert parse_dask_spec("local:3") == ("local", 3)
    assert parse_dask_spec("tcp://10.0.0.5:8786") == ("address", None)
    for bad in ("local:0", "local:many", "10.0.0.5:8786"):
        with pytest.raises(ConfigError, match="--dask"):
            parse_dask_spec(bad)
    with pytest.raises(ConfigError, match="runner= takes a StepRunner"):
        Executor(REGISTRY, runner="local:2")  # type: ignore[arg-type]


def test_where_a_tool_runs_is_its_placement_metadata() -> None:
    assert located.placement is None and pinned.placement == "local"
    assert pinned.metadata == {"placement": "local"}
    registry = ToolRegistry()
    declared = registry.register(
        "heavy", "A heavy one.", {"type": "object", "properties": {}}, lambda: 1, placement="dask"
    )
    assert declared.placement == "dask"
    with pytest.raises(RegistrationError, match="'runner' names where the tool runs"):
        tool(runner=3)(lambda: 1)  # type: ignore[arg-type]


def test_exec_dask_runs_the_plan_on_the_cluster_and_rejects_a_bad_address(
    cluster: distributed.LocalCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tools = tmp_path / "tools.py"
    tools.write_text(
        "import distributed\nfrom tooldag import tool\n\n"
        "@tool(side_effects=False)\ndef on_worker() -> bool:\n"
        "    try:\n        distributed.get_worker()\n    except ValueError:\n        return False\n"
        "    return True\n"
    )
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"steps": [{"id": "w", "tool": "on_worker", "args": {}}]}))
    args = ["exec", str(path), "--tools", str(tools), "--no-store", "--json"]
    assert cli_main([*args, "--dask", cluster.scheduler_address]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"w": True}
    assert cli_main([*args, "--dask", "somewhere"]) == 2
    assert "--dask 'somewhere': give a scheduler address" in capsys.readouterr().err


# --------------------------------------------------------------------------- real processes

TOOLS_FILE = '''
import os, time
from tooldag import RetryPolicy, ToolContext, tool


def _pid() -> int:  # a helper of this file: only there when the file's code is sent by value
    return os.getpid()


@tool(side_effects=False)
def pid() -> int:
    """The pid of the process it runs in."""
    return _pid()


@tool(retry=RetryPolicy(attempts=2, initial_backoff=0.01, jitter=0))
def doomed(mark: str, ctx: ToolContext) -> int:
    """On its first attempt, says where it runs and waits to be killed."""
    if ctx.attempt == 1:
        with open(mark, "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(0.01)
    return _pid()
'''


@pytest.fixture(scope="module")
def processes() -> Iterator[DaskRunner]:
    with DaskRunner("local:2") as r:
        yield r


@pytest.fixture
def file_tools(tmp_path: Path) -> ToolRegistry:
    path = tmp_path / "proc_tools.py"
    path.write_text(TOOLS_FILE)
    return ToolRegistry(load_tools(str(path)))


@pytest.mark.slow
def test_a_step_runs_in_a_worker_process_not_in_the_driver(
    processes: DaskRunner, file_tools: ToolRegistry
) -> None:
    workers = set(processes.client.run(os.getpid).values())
    steps = plan(*({"id": f"p{i}", "tool": "pid", "args": {}} for i in range(4)))
    result = run_plan(steps, file_tools, runner=processes)
    assert result.ok, result.error
    pids = set(result.outputs.values())
    assert os.getpid() not in pids and pids <= workers


@pytest.mark.slow
def test_a_worker_killed_mid_step_is_a_transient_failure_that_tooldag_retries(
    processes: DaskRunner, file_tools: ToolRegistry, tmp_path: Path
) -> None:
    mark = tmp_path / "pid"
    executor = Executor(file_tools, runner=processes)
    retries: list[StepRetrying] = []
    executor.bus.subscribe(
        lambda e: retries.append(e.data) if e.type is EventType.STEP_RETRYING else None
    )

    async def go() -> Any:
        handle = executor.start(plan({"id": "d", "tool": "doomed", "args": {"mark": str(mark)}}))
        victim = int(await asyncio.to_thread(wait_for_file, mark))
        os.kill(victim, signal.SIGKILL)
        return victim, await handle.wait()

    victim, result = asyncio.run(go())
    step = result.steps["d"]
    assert step.status is StepStatus.SUCCEEDED and step.attempts == 2, result.error
    assert result.outputs["d"] != victim  # the retry ran in a live worker
    (retry,) = retries
    assert retry.error.transient and retry.error.type == "TransientToolError"
    assert "Dask worker running this step was lost (KilledWorker" in retry.error.message
