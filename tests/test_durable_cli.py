"""``tooldag runs ...`` against a store holding a succeeded, a failed and an interrupted run
(and the REPL's ``/show``, which draws a run as ``runs show`` does)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from tooldag.durable.runner import DurableExecutor
from tooldag.durable.store import RunStore
from tooldag.events import Event, RunStarted
from tooldag.observe.monitor import Monitor
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry
from tooldag.registry.loading import load_tools
from tooldag.testing import FakeLLMServer
from tooldag.ui.cli import main
from tooldag.ui.cli.common import console as cli_console
from tooldag.ui.repl import Chat
from tooldag.ui.views import runs_table

TOOLS = '''
import os
from tooldag import Compensation, tool

@tool
def double(x: int) -> int:
    """Twice x."""
    if os.environ.get("BREAK_DOUBLE") and x > 5:
        raise RuntimeError("too big")
    return 2 * x

@tool
def unbook(ref: str) -> None:
    """Undo a booking."""
    with open(os.environ["BOOKINGS"], "a") as f:
        f.write(f"undo {ref}\\n")

@tool(compensate=Compensation("unbook", {"ref": "$output"}))
def book(what: str) -> str:
    """Book something."""
    return f"booking-{what}"
'''

PLAN = Plan.model_validate(
    {
        "goal": "double twice",
        "steps": [
            {"id": "hotel", "tool": "book", "args": {"what": "hotel"}},
            {"id": "one", "tool": "double", "args": {"x": 3}},
            {"id": "two", "tool": "double", "args": {"x": "$one"}, "depends_on": ["hotel"]},
        ],
        "answer": "result ${two}",
    }
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(store path, tools file); the run 'bad' failed at 'two', 'good' succeeded."""
    tools_file = tmp_path / "mytools.py"
    tools_file.write_text(TOOLS)
    monkeypatch.setenv("BOOKINGS", str(tmp_path / "bookings.txt"))
    db = tmp_path / "runs.sqlite3"
    registry = ToolRegistry(load_tools(str(tools_file)))
    with RunStore(db) as store:
        runner = DurableExecutor(registry, store=store)
        monkeypatch.setenv("BREAK_DOUBLE", "1")
        assert runner.start("bad", PLAN).status.value == "failed"
        monkeypatch.delenv("BREAK_DOUBLE")
        assert runner.start("good", PLAN).ok
        runner.close()
    return db, tools_file


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_list_json_is_newest_first_with_id_goal_status_and_timestamps(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--json", "--store", str(env[0]))
    runs = json.loads(out)
    assert code == 0
    assert [(r["id"], r["status"], r["goal"]) for r in runs] == [
        ("good", "succeeded", "double twice"),
        ("bad", "failed", "double twice"),
    ]
    assert all(r["created_at"] <= r["updated_at"] <= r["finished_at"] for r in runs)
    assert runs[1]["steps"] == {"failed": 1, "succeeded": 2}


def test_runs_list_filters_by_status_and_prints_a_table(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--status", "failed", "--store", str(env[0]))
    assert code == 0 and "bad" in out and "good" not in out and "STATUS" in out


def test_runs_list_on_an_empty_store_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--store", str(tmp_path / "x.sqlite3"))
    assert code == 0 and "no runs" in out


def test_runs_alone_lists_and_the_store_may_come_before_the_action(
    env: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, listed, _ = run_cli(capsys, "runs", "list", "--store", str(env[0]))
    code, out, _ = run_cli(capsys, "runs", "--store", str(env[0]))
    assert code == 0 and out == listed and "bad" in out and "good" in out
    code, out, _ = run_cli(capsys, "runs", "--store", str(env[0]), "show", "good", "--json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    # Given after the action too, the one after it wins.
    empty = str(tmp_path / "empty.sqlite3")
    code, out, _ = run_cli(capsys, "runs", "--store", str(env[0]), "list", "--store", empty)
    assert code == 0 and "no runs" in out


def test_a_status_looks_the_same_in_the_runs_list_and_the_step_timeline(
    env: tuple[Path, Path],
) -> None:
    def ansi(renderable: object) -> str:
        console = Console(width=80, record=True, force_terminal=True, color_system="standard")
        console.print(renderable)
        return console.export_text(styles=True)

    with RunStore(env[0]) as store:
        listed = ansi(runs_table(store.list_runs()))
        timeline = ansi(Monitor.from_events(store.events("bad")).timeline_table("bad"))
    failed = re.search(r"\x1b\[[0-9;]*mfailed", timeline)
    assert failed is not None and failed.group() in listed
    succeeded = re.search(r"\x1b\[[0-9;]*msucceeded", timeline)
    assert succeeded is not None and succeeded.group() in listed


def _lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines())


def test_runs_show_prints_plan_steps_timeline_and_errors(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", "bad", "--store", str(env[0]))
    assert code == 0
    out = _lines(out)
    assert re.search(r"^run bad  failed\ngoal +double twice\ncreated ", out)
    assert re.search(r'^two +│ double +│ x="\$one" +│ one, hotel', out, re.MULTILINE)
    assert re.search(r"^two +double +failed +1 +[\d.]+s +RuntimeError: too big", out, re.M)
    assert "timeline" in out and re.search(r"step_failed two +RuntimeError: too big", out)
    hint = f"`tooldag runs resume bad --store {env[0]}` continues it."
    assert hint in " ".join(out.split())


@pytest.mark.parametrize("width", [80, 120])
def test_runs_show_and_the_repls_show_draw_a_run_the_same_way(
    env: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    width: int,
) -> None:
    monkeypatch.setenv("TOOLDAG_HOME", str(env[0].parent))  # the default store is env[0]
    monkeypatch.setattr(cli_console, "width", width)
    code, out, _ = run_cli(capsys, "runs", "show", "bad")
    assert code == 0
    screen = Console(width=cli_console.width, record=True, color_system=None)
    with FakeLLMServer() as server, RunStore(env[0]) as store:
        chat = Chat(screen, ToolRegistry(), server.client(), store=store, output=DummyOutput())
        asyncio.run(chat.handle("/show bad"))
    shown = _lines(screen.export_text())
    hint = "`tooldag runs resume bad` continues it."
    assert hint in out and "`/resume bad` continues it." in shown
    assert _lines(out).replace(hint, "`/resume bad` continues it.") == shown


def test_runs_show_json_has_the_result_and_the_event_log(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", "good", "--json", "--store", str(env[0]))
    data = json.loads(out)
    assert code == 0 and data["status"] == "succeeded" and data["answer"] == "result 12"
    assert data["outputs"] == {"hotel": "booking-hotel", "one": 6, "two": 12}
    assert data["plans"][0]["goal"] == "double twice"
    assert data["steps"]["two"]["attempts"] == 1
    assert data["events"][0]["type"] == "run_started"
    assert all("output" not in e["data"] for e in data["events"])


def test_runs_graph_prints_mermaid_coloured_by_status(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "graph", "bad", "--store", str(env[0]))
    assert code == 0 and out.startswith("flowchart TD")
    assert "class two failed" in out and "class one succeeded" in out


def test_runs_resume_finishes_a_failed_run_without_rerunning_done_steps(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, tools_file = env
    code, out, err = run_cli(
        capsys, "runs", "resume", "bad", "--tools", str(tools_file), "--store", str(db), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["answer"] == "result 12"
    assert result["steps"]["one"]["reused"] and not result["steps"]["two"]["reused"]
    assert err == ""  # no live view with --json: stdout holds the result and nothing else


def test_runs_resume_reports_the_run_as_exec_does(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, tools_file = env
    code, out, _ = run_cli(
        capsys, "runs", "resume", "bad", "--tools", str(tools_file), "--store", str(db)
    )
    assert code == 0
    assert "run bad · succeeded" in out
    assert re.search(r"^one +│ double +│ succeeded +│ *· *│ +│ reused", out, re.MULTILINE)
    assert "answer: result 12" in out and "succeeded in" in out and "(3 succeeded)" in out


def test_runs_cancel_compensates_a_failed_run(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, tools_file = env
    code, out, _ = run_cli(
        capsys, "runs", "cancel", "bad", "--tools", str(tools_file), "--store", str(db)
    )
    assert code == 0 and "cancelled" in out
    assert (tmp_path / "bookings.txt").read_text() == "undo booking-hotel\n"
    code, out, _ = run_cli(capsys, "runs", "show", "bad", "--json", "--store", str(db))
    assert json.loads(out)["steps"]["hotel"]["status"] == "compensated"


def test_resume_or_cancel_of_a_completed_run_fails_with_a_reason(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, tools_file = env
    for action in ("resume", "cancel"):
        code, _, err = run_cli(
            capsys, "runs", action, "good", "--tools", str(tools_file), "--store", str(db)
        )
        assert code == 1
        if action == "resume":  # the way forward, with the store it is in
            assert f"nothing to resume; `tooldag runs rerun good --store {db}` runs its" in err
        else:
            assert "already completed" in err


def test_an_unknown_run_id_is_a_usage_error(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("show", "graph"):
        code, _, err = run_cli(capsys, "runs", action, "nope", "--store", str(env[0]))
        assert code == 2 and "no run 'nope'" in err


def test_a_run_left_running_by_a_dead_process_lists_as_interrupted(
    env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = env[0]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with RunStore(db) as store:
        store.record(Event(RunStarted(PLAN, "g"), "stuck"))
        store.release("stuck")
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE runs SET owner_pid = ?, owner_token = NULL WHERE id = 'stuck'", (gone.pid,)
    )
    conn.commit()
    conn.close()
    code, out, _ = run_cli(capsys, "runs", "list", "--json", "--store", str(db))
    assert code == 0
    assert {r["id"]: r["status"] for r in json.loads(out)}["stuck"] == "interrupted"
    code, out, _ = run_cli(capsys, "runs", "show", "stuck", "--json", "--store", str(db))
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "interrupted" and "runs resume stuck" in shown["error"]
    code, out, _ = run_cli(
        capsys, "runs", "list", "--status", "interrupted", "--json", "--store", str(db)
    )
    assert code == 0 and [r["id"] for r in json.loads(out)] == ["stuck"]
