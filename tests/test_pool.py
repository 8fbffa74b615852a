"""Many runs at once: ``tooldag exec`` of several plans, and a RunPool of worker processes that
share one store (both backends), each run owned by one worker at a time, a dead worker's run taken
over by another.

The tools note every call (run, step, pid) in a file: what ran where, and how often.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from store_helpers import wait_for_file
from tooldag.durable.pool import RunPool
from tooldag.durable.store import RunStore
from tooldag.errors import ConfigError
from tooldag.plan import Plan
from tooldag.result import RunStatus
from tooldag.ui.cli import main as cli_main

TOOLS = '''
import os, time
from tooldag import ToolContext, tool


@tool
def step(log: str, x: int, ctx: ToolContext) -> int:
    """Notes (run, step, pid) and adds one."""
    with open(log, "a") as f:
        f.write(f"{ctx.run_id} {ctx.step_id} {os.getpid()}\\n")
    return x + 1


@tool
def hang_once(log: str, mark: str, x: int, ctx: ToolContext) -> int:
    """Like step; the first call anywhere writes its pid to ``mark`` and hangs there."""
    with open(log, "a") as f:
        f.write(f"{ctx.run_id} {ctx.step_id} {os.getpid()}\\n")
    try:
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return x + 1
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    while True:
        time.sleep(0.01)
'''


@pytest.fixture
def tools(tmp_path: Path) -> str:
    path = tmp_path / "pool_tools.py"
    path.write_text(TOOLS)
    return str(path)


def chain(log: Path, n: int, tool: str = "step", **extra: str) -> Plan:
    return Plan.model_validate(
        {
            "goal": f"chain {n}",
            "steps": [
                {"id": "a", "tool": "step", "args": {"log": str(log), "x": n}},
                {"id": "b", "tool": tool, "args": {"log": str(log), "x": "$a", **extra}},
                {"id": "c", "tool": "step", "args": {"log": str(log), "x": "$b"}},
            ],
            "answer": "${c}",
        }
    )


def calls(log: Path) -> list[tuple[str, str, int]]:
    return [(r, s, int(p)) for r, s, p in (line.split() for line in log.read_text().splitlines())]


def test_exec_runs_several_plans_at_once_each_under_its_own_id(
    tools: str, tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "calls.txt"
    paths = []
    for n in range(3):
        path = tmp_path / f"plan{n}.json"
        path.write_text(json.dumps(chain(log, 10 * n).to_json()))
        paths.append(str(path))
    assert cli_main(["exec", *paths, "--tools", tools, "--store", store_url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["answer"] for r in out] == ["3", "13", "23"]
    ids = [r["run_id"] for r in out]
    assert len(set(ids)) == 3
    with RunStore(store_url) as store:
        assert {r.id: r.status for r in store.list_runs()} == dict.fromkeys(
            ids, RunStatus.SUCCEEDED
        )
    assert Counter((r, s) for r, s, _ in calls(log)) == {(i, s): 1 for i in ids for s in "abc"}


def test_exec_refuses_all_the_plans_when_one_is_invalid(
    tools: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(chain(tmp_path / "calls.txt", 1).to_json()))
    bad.write_text(json.dumps({"steps": [{"id": "x", "tool": "nope", "args": {}}]}))
    assert cli_main(["exec", str(good), str(bad), "--tools", tools, "--no-store"]) == 1
    assert "no plan was run" in capsys.readouterr().err
    assert not (tmp_path / "calls.txt").exists()


def test_a_pool_needs_a_shared_store_and_workers_that_can_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="share its store"):
        RunPool(":memory:")
    with pytest.raises(ConfigError, match="workers must be"):
        RunPool(tmp_path / "runs.sqlite3", workers=0)


@pytest.mark.slow
def test_a_worker_that_cannot_load_its_tools_fails_the_pool_at_once(tmp_path: Path) -> None:
    failed = r"a pool worker could not start: ConfigError: .*nope\.py"
    with pytest.raises(ConfigError, match=failed):
        RunPool(tmp_path / "runs.sqlite3", tools=[str(tmp_path / "nope.py")], workers=1)


@pytest.mark.slow
def test_each_run_of_a_pool_is_run_by_one_worker_process(
    tools: str, tmp_path: Path, store_url: str
) -> None:
    log = tmp_path / "calls.txt"
    with RunPool(store_url, tools=[tools], workers=2) as pool:
        results = pool.run([chain(log, n) for n in range(6)])
        workers = set(pool.pids)
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 6
    assert [r.answer for r in results] == [str(n + 3) for n in range(6)]
    seen = calls(log)
    assert Counter((r, s) for r, s, _ in seen) == {(r.run_id, s): 1 for r in results for s in "abc"}
    by_run = {r: {p for run, _, p in seen if run == r} for r, _, _ in seen}
    assert all(len(pids) == 1 for pids in by_run.values()), by_run  # one owner per run
    assert set().union(*by_run.values()) <= workers and os.getpid() not in workers


@pytest.mark.slow
def test_a_run_whose_worker_was_killed_is_finished_by_another(
    tools: str, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_STORE_LEASE", "0.3")  # the workers' (PostgreSQL) lease
    log, mark = tmp_path / "calls.txt", tmp_path / "hung.pid"
    with RunPool(store_url, tools=[tools], workers=2) as pool:
        run_id = pool.submit(chain(log, 1, tool="hang_once", mark=str(mark)))
        victim = int(wait_for_file(mark))
        assert victim in pool.pids
        os.kill(victim, signal.SIGKILL)
        result = pool.wait([run_id])[run_id]
    assert result.status is RunStatus.SUCCEEDED and result.answer == "4"
    assert result.steps["a"].reused  # done before the kill: not run again
    seen = calls(log)
    assert Counter(s for _, s, _ in seen) == {"a": 1, "b": 2, "c": 1}
    assert {p for _, s, p in seen if s == "c"} != {victim}


@pytest.mark.slow
def test_exec_workers_runs_the_plans_in_a_pool(
    tools: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, store = tmp_path / "calls.txt", str(tmp_path / "runs.sqlite3")
    paths = []
    for n in range(3):
        path = tmp_path / f"plan{n}.json"
        path.write_text(json.dumps(chain(log, n).to_json()))
        paths.append(str(path))
    args = ["exec", *paths, "--tools", tools, "--store", store, "--workers", "2"]
    assert cli_main(args) == 0
    out, err = capsys.readouterr()
    assert out.count("succeeded in") == 3 and "answer: 5" in out
    assert "resume" not in err  # runs that succeeded get no word on how to resume them
    assert os.getpid() not in {p for _, _, p in calls(log)}
    assert cli_main(["exec", *paths, "--tools", tools, "--workers", "1", "--no-store"]) == 2
    assert "--workers shares the runs through the store" in capsys.readouterr().err
