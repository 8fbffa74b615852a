"""``tooldag exec``: runs a plan file, prints answer and summary, and exits 0/1/2/130."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tooldag.result import RunStatus
from tooldag.ui.cli import main
from tooldag.ui.cli.common import exit_code

TOOLS = textwrap.dedent(
    '''
    import asyncio
    import os
    import sys
    import time
    from pathlib import Path

    from tooldag import Compensation, PermanentToolError, tool


    @tool(side_effects=False)
    def get_weather(location: str) -> dict:
        """Weather for a place."""
        return {"location": location, "temp": 18, "condition": "rainy"}


    @tool(side_effects=False)
    def get_stock(symbol: str) -> dict:
        """A stock price."""
        raise PermanentToolError(f"unknown symbol {symbol}")


    @tool(side_effects=False)
    def summarize(weather: dict, price: float) -> dict:
        """A summary."""
        return {"text": f"{weather['temp']} and {price}"}


    @tool(side_effects=False)
    def recommend_outfit(temperature: float, condition: str) -> dict:
        """An outfit."""
        return {"outfit": "Raincoat" if condition == "rainy" else "T-shirt"}


    @tool(compensate=Compensation("release", {"rid": "$output.rid"}))
    def reserve(item: str) -> dict:
        """Reserve an item."""
        return {"rid": "R-" + item}


    @tool
    def release(rid: str) -> str:
        """Undo a reservation."""
        print(f"released {rid}", file=sys.stderr, flush=True)
        return rid


    @tool
    async def wait_forever(after: dict) -> None:
        """Signal readiness on stderr, then never finish."""
        print("READY", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


    @tool
    async def hold(after: dict, unlock: str) -> None:
        """Fail until `unlock` exists; then signal readiness on stderr and never finish."""
        if not os.path.exists(unlock):
            raise PermanentToolError("locked")
        print("READY", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


    @tool
    def tally(name: str, calls: str) -> dict:
        """Count a call in the calls file."""
        with open(calls, "a", encoding="utf-8") as f:
            f.write(name + "\\n")
        return {"name": name}


    @tool
    def gate(calls: str, marker: str, never: str, after: dict) -> dict:
        """The first call marks `marker`, says READY and waits for `never`; later calls pass."""
        with open(calls, "a", encoding="utf-8") as f:
            f.write("gate\\n")
        if not os.path.exists(marker):
            Path(marker).write_text("in flight", encoding="utf-8")
            print("READY", file=sys.stderr, flush=True)
            while not os.path.exists(never):  # the test never creates it: killed here
                time.sleep(0.05)
        return {"next": "after_" + after["name"]}
    '''
)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs are journalled by default: keep them out of the user's store (children inherit)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TOOLDAG_HOME", str(home))
    return home / "runs.sqlite3"


def write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.fixture
def tools(tmp_path: Path) -> str:
    return write(tmp_path, "exec_tools.py", TOOLS)


def exec_until_ready(plan: str, tools: str) -> contextlib.AbstractContextManager[Ready]:
    """``tooldag exec PLAN --json`` in a child process, once a tool has said READY on stderr."""
    return until_ready("exec", plan, "--tools", tools, "--json")


Ready = tuple[subprocess.Popen[str], list[str]]


@contextlib.contextmanager
def until_ready(*argv: str) -> Iterator[Ready]:
    """``tooldag ARGV`` in a child process, once a tool has said READY on stderr: yields the
    process and the stderr lines read so far; kills the child if it is still alive."""
    command = [sys.executable, "-m", "tooldag", *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # blocks until the tool is running (or the process dies)
            lines.append(line)
            if line.strip() == "READY":
                break
        assert lines and lines[-1].strip() == "READY", "".join(lines)
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


GOOD = {
    "goal": "outfit",
    "steps": [
        {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
        {
            "id": "outfit",
            "tool": "recommend_outfit",
            "args": {"temperature": "$weather.temp", "condition": "$weather.condition"},
        },
    ],
    "answer": "Wear a ${outfit.outfit}: ${weather.temp} C.",
}

FAILING_BRANCH = {
    "goal": "briefing",
    "steps": [
        *GOOD["steps"],
        {"id": "stock", "tool": "get_stock", "args": {"symbol": "ZZZZ"}},
        {
            "id": "summary",
            "tool": "summarize",
            "args": {"weather": "$weather", "price": "$stock.price"},
        },
    ],
    "answer": "${outfit.outfit}; ${summary.text}",
}


@pytest.mark.parametrize("status", list(RunStatus))
def test_every_command_that_runs_exits_by_one_rule(status: RunStatus) -> None:
    expected = {RunStatus.SUCCEEDED: 0, RunStatus.CANCELLED: 130}.get(status, 1)
    assert exit_code(status) == expected


def test_a_good_plan_prints_the_answer_and_exits_0(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["exec", write(tmp_path, "good.json", GOOD), "--tools", tools])
    out = capsys.readouterr().out
    assert code == 0
    assert "answer: Wear a Raincoat: 18 C." in out
    assert "succeeded" in out and "2 steps (2 succeeded)" in out
    assert "weather" in out and "outfit" in out


def test_a_failing_branch_shows_what_ran_failed_and_was_blocked(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["exec", write(tmp_path, "fail.json", FAILING_BRANCH), "--tools", tools])
    out = capsys.readouterr().out
    assert code == 1
    assert "✗ stock: PermanentToolError: unknown symbol ZZZZ" in out
    assert "needs stock (failed)" in out
    assert "2 succeeded, 1 failed, 1 blocked" in out
    assert "Raincoat; [$summary.text unavailable: summary blocked]" in out


def test_json_prints_the_run_result(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, "fail.json", FAILING_BRANCH)
    code = main(["exec", plan, "--tools", tools, "--json", "--max-concurrency", "1"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["status"] == "failed"
    assert data["outputs"] == {
        "weather": {"location": "London", "temp": 18, "condition": "rainy"},
        "outfit": {"outfit": "Raincoat"},
    }
    assert data["steps"]["stock"]["status"] == "failed"
    assert data["steps"]["stock"]["error"]["message"] == "unknown symbol ZZZZ"
    assert data["steps"]["summary"]["status"] == "blocked"
    assert data["answer"].startswith("Raincoat; ")


def test_a_huge_answer_is_cut_in_text_and_whole_in_json(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Laying out megabytes of text took rich a minute; nobody reads them scrolling by."""
    place = "Llanfair " * 50_000
    plan = write(
        tmp_path,
        "huge.json",
        {
            "steps": [{"id": "weather", "tool": "get_weather", "args": {"location": place}}],
            "answer": "${weather.location}",
        },
    )
    assert main(["exec", plan, "--tools", tools]) == 0
    out = capsys.readouterr().out
    note = "(cut: the answer has 450,000 characters; --json prints it whole)"
    assert note in " ".join(out.split())  # as rich wrapped it
    assert len(out) < 200_000
    assert main(["exec", plan, "--tools", tools, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == place


def test_a_long_run_ends_with_a_table_of_its_latest_steps(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Printing every row of a 20,000-step run took longer than the run."""
    steps = [step_of(f"w{i}") for i in range(201)]
    plan = write(tmp_path, "long.json", {"steps": steps})
    assert main(["exec", plan, "--tools", tools]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "showing 20 of 201 steps: 201 succeeded" in out
    assert "--json lists every step" in out
    assert "w200" in out and "w0 " not in out


def step_of(sid: str) -> dict[str, Any]:
    return {"id": sid, "tool": "get_weather", "args": {"location": "Oslo"}}


def test_fail_fast_stops_at_the_first_failure(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = {
        "steps": [
            {"id": "stock", "tool": "get_stock", "args": {"symbol": "X"}},
            {"id": "w", "tool": "get_weather", "args": {"location": "Rome"}},
        ]
    }
    code = main(
        [
            "exec",
            write(tmp_path, "ff.json", plan),
            "--tools",
            tools,
            "--json",
            "--fail-fast",
            "--max-concurrency",
            "1",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["steps"]["w"]["status"] == "cancelled"


def test_an_invalid_plan_is_refused_with_its_issues(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = {"steps": [{"id": "w", "tool": "get_wether", "args": {"location": "Rome"}}]}
    code = main(["exec", write(tmp_path, "bad.json", plan), "--tools", tools])
    err = capsys.readouterr().err
    assert code == 1
    assert "unknown_tool" in err and "get_weather" in err and "not run" in err
    code = main(["exec", write(tmp_path, "bad.json", plan), "--tools", tools, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["status"] == "rejected"
    assert data["issues"][0]["code"] == "unknown_tool"


def test_an_unreadable_plan_file_exits_2(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["exec", str(tmp_path / "missing.json"), "--tools", tools]) == 2
    assert "no such plan file" in capsys.readouterr().err
    assert main(["exec", write(tmp_path, "junk.json", "this is no plan"), "--tools", tools]) == 2


def test_max_concurrency_must_be_positive(tools: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["exec", "plan.json", "--tools", tools, "--max-concurrency", "0"])
    assert info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child is POSIX here")
def test_ctrl_c_cancels_compensates_and_exits_130(tmp_path: Path, tools: str) -> None:
    plan = {
        "steps": [
            {"id": "reserve", "tool": "reserve", "args": {"item": "book"}},
            {"id": "wait", "tool": "wait_forever", "args": {"after": "$reserve"}},
        ]
    }
    with exec_until_ready(write(tmp_path, "p.json", plan), tools) as (proc, _):
        data = ctrl_c(proc)
    assert data["steps"]["wait"]["status"] == "cancelled"


def ctrl_c(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Press Ctrl-C once in a ``--json`` run that reserved a book: the run is cancelled, the
    reservation compensated, and the exit code 130; the run's JSON."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "cancelling: undoing what ran" in err and "released R-book" in err
    data: dict[str, Any] = json.loads(out)
    assert data["status"] == "cancelled"
    assert data["steps"]["reserve"]["status"] == "compensated"
    return data


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child is POSIX here")
def test_ctrl_c_during_runs_resume_cancels_compensates_and_exits_130(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    unlock = tmp_path / "unlock"
    plan = {
        "steps": [
            {"id": "reserve", "tool": "reserve", "args": {"item": "book"}},
            {"id": "hold", "tool": "hold", "args": {"after": "$reserve", "unlock": str(unlock)}},
        ]
    }
    assert main(["exec", write(tmp_path, "p.json", plan), "--tools", tools]) == 1
    run_id = _run_id(capsys.readouterr().err)
    unlock.touch()
    with until_ready("runs", "resume", run_id, "--tools", tools, "--json") as (proc, _):
        data = ctrl_c(proc)
    assert data["steps"]["hold"]["status"] == "cancelled"


def _run_id(err: str) -> str:
    """The id in the last line of a run that did not finish:
    ``run ID failed: tooldag runs resume ID continues it``."""
    words = err.splitlines()[-1].split()
    assert words[:1] == ["run"] and words[-2:] == ["continues", "it"], err
    assert words[3:6] == ["tooldag", "runs", "resume"] and words[6] == words[1], err
    return words[1]


def _latest_run(capsys: pytest.CaptureFixture[str], *store: str) -> dict[str, Any]:
    assert main(["runs", "list", "--json", "--limit", "1", *store]) == 0
    [info] = json.loads(capsys.readouterr().out)
    return info  # type: ignore[no-any-return]


def test_a_run_that_succeeds_is_quiet_and_names_its_id_in_the_result(
    tmp_path: Path, tools: str, isolated_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["exec", write(tmp_path, "good.json", GOOD), "--tools", tools])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""  # nothing before the run, nothing after a success
    run_id = _latest_run(capsys)["id"]
    assert captured.out.startswith(f"run {run_id} · succeeded · ")  # the table's title
    assert main(["exec", write(tmp_path, "good.json", GOOD), "--tools", tools, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    run_id = json.loads(captured.out)["run_id"]
    assert main(["runs", "show", run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "succeeded"
    assert isolated_store.exists()


def test_a_run_that_fails_ends_with_how_to_resume_it(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, "failing.json", FAILING_BRANCH)
    assert main(["exec", plan, "--tools", tools]) == 1
    captured = capsys.readouterr()
    run_id = _run_id(captured.err)
    assert captured.err == f"run {run_id} failed: tooldag runs resume {run_id} continues it\n"
    assert captured.out.startswith(f"run {run_id} · failed · ")
    assert _latest_run(capsys)["status"] == "failed"


def test_store_picks_the_journal_file_and_no_store_writes_none(
    tmp_path: Path, tools: str, isolated_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, "failing.json", FAILING_BRANCH)
    elsewhere = tmp_path / "elsewhere.sqlite3"
    assert main(["exec", plan, "--tools", tools, "--store", str(elsewhere)]) == 1
    assert capsys.readouterr().err.endswith(f" --store {elsewhere} continues it\n")
    assert elsewhere.exists() and not isolated_store.exists()
    assert main(["exec", plan, "--tools", tools, "--no-store"]) == 1
    assert "resume" not in capsys.readouterr().err
    assert not isolated_store.exists()


def test_resuming_a_finished_run_offers_rerun_which_runs_it_again_under_a_new_id(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["exec", write(tmp_path, "good.json", GOOD), "--tools", tools, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["runs", "resume", first, "--tools", tools]) == 1
    assert capsys.readouterr().err == (
        f"error: run {first} succeeded: there is nothing to resume; `tooldag runs rerun "
        f"{first}` runs its plan again as a new run\n"
    )
    assert main(["runs", "rerun", first, "--tools", tools, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["run_id"] != first and again["status"] == "succeeded"
    assert again["answer"] == "Wear a Raincoat: 18 C."
    assert _latest_run(capsys)["id"] == again["run_id"]
    assert main(["runs", "rerun", "nope", "--tools", tools]) == 2


def test_rerun_checks_the_plan_against_the_tools_given(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["exec", write(tmp_path, "good.json", GOOD), "--tools", tools, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["runs", "rerun", first, "--tools", "calc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"run {first}'s plan: 2 issue(s); the plan was not run\n")
    assert "  ✗ unknown_tool: [weather]" in err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_run_killed_with_sigkill_resumes_without_rerunning_completed_steps(
    tmp_path: Path, tools: str, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.txt"
    plan = {
        "steps": [
            {"id": "first", "tool": "tally", "args": {"name": "first", "calls": str(calls)}},
            {
                "id": "gate",
                "tool": "gate",
                "args": {
                    "calls": str(calls),
                    "marker": str(tmp_path / "in_flight"),
                    "never": str(tmp_path / "never"),
                    "after": "$first",
                },
            },
            {"id": "last", "tool": "tally", "args": {"name": "$gate.next", "calls": str(calls)}},
        ]
    }
    with exec_until_ready(write(tmp_path, "p.json", plan), tools) as (proc, _):
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Nothing was said before the run: the store lists it, interrupted.
    assert main(["runs", "list", "--json", "--status", "interrupted"]) == 0
    [info] = json.loads(capsys.readouterr().out)
    run_id = info["id"]
    assert calls.read_text().split() == ["first", "gate"]
    assert (tmp_path / "in_flight").exists() and not (tmp_path / "never").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "tooldag", "runs", "resume", run_id, "--tools", tools, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["status"] == "succeeded"
    assert data["outputs"]["last"] == {"name": "after_first"}
    # first is not run again; gate was in flight, so it runs again (at-least-once).
    assert calls.read_text().split() == ["first", "gate", "gate", "after_first"]


STUCK_TOOLS = textwrap.dedent(
    '''
    import threading
    from tooldag import tool

    @tool(side_effects=False, timeout=0.2)
    def stuck() -> str:
        """Never returns (a read of a FIFO, a call with no timeout of its own)."""
        threading.Event().wait()
        return "never"
    '''
)


@pytest.mark.slow
def test_a_sync_tool_stuck_in_its_thread_does_not_keep_exec_from_exiting(tmp_path: Path) -> None:
    tools = write(tmp_path, "stuck_tools.py", STUCK_TOOLS)
    plan = write(tmp_path, "p.json", {"steps": [{"id": "s", "tool": "stuck", "args": {}}]})
    command = [sys.executable, "-m", "tooldag", "exec", plan, "--tools", tools, "--json"]
    command += ["--store", str(tmp_path / "runs.sqlite3")]
    # Before daemon tool threads, the interpreter joined the stuck thread at exit: for ever.
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    step = json.loads(done.stdout)["steps"]["s"]
    assert step["status"] == "failed" and "did not finish within 0.2s" in step["error"]["message"]
