"""The chat REPL driven for real: keystrokes through a prompt_toolkit pipe, plans from the fake
OpenAI server on 127.0.0.1, real tools that count their calls, and assertions on the text a
person would see (a rich console writing to a buffer)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import stat
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.base import PipeInput
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from tooldag.durable.runner import DurableExecutor
from tooldag.durable.store import RunStore
from tooldag.errors import PermanentToolError
from tooldag.plan import Plan
from tooldag.registry import Compensation, ToolRegistry, tool
from tooldag.testing import FakeLLMServer, Stall
from tooldag.ui.approval import ApprovalMode
from tooldag.ui.repl import Chat

CALLS: Counter[str] = Counter()
BROKEN = {"flaky": False}
STARTED = asyncio.Event()


@tool(side_effects=False)
def add(a: int, b: int) -> int:
    """Add two numbers."""
    CALLS["add"] += 1
    return a + b


@tool
def delete_note(note_id: str) -> str:
    """Delete a note (undoes save_note)."""
    CALLS["delete_note"] += 1
    return note_id


@tool(compensate=Compensation("delete_note", {"note_id": "$output"}))
def save_note(text: str) -> str:
    """Save a note; returns its id."""
    CALLS["save_note"] += 1
    return f"note-{CALLS['save_note']}"


@tool(side_effects=False)
async def wait_here(after: str) -> str:
    """Wait forever (until the run is cancelled)."""
    CALLS["wait_here"] += 1
    STARTED.set()
    await asyncio.Event().wait()
    return after


@tool(side_effects=False)
def flaky(x: int) -> int:
    """Fails while BROKEN says so."""
    CALLS["flaky"] += 1
    if BROKEN["flaky"]:
        raise PermanentToolError("flaky is broken today")
    return x * 10


TOOLS = ToolRegistry([add, save_note, delete_note, wait_here, flaky])

PLANS: dict[str, dict[str, Any]] = {
    "sum": {
        "steps": [{"id": "total", "tool": "add", "args": {"a": 2, "b": 3}}],
        "answer": "The sum is ${total}.",
    },
    "note": {
        "steps": [
            {"id": "total", "tool": "add", "args": {"a": 20, "b": 22}},
            {"id": "saved", "tool": "save_note", "args": {"text": "total is ${total}"}},
        ],
        "answer": "Saved ${saved}.",
    },
    "twice": {
        "steps": [
            {"id": "first", "tool": "save_note", "args": {"text": "one"}},
            {"id": "again", "tool": "save_note", "args": {"text": "after ${first}"}},
        ],
        "answer": "Saved ${again}.",
    },
    "block": {
        "steps": [
            {"id": "saved", "tool": "save_note", "args": {"text": "before the wait"}},
            {"id": "wait", "tool": "wait_here", "args": {"after": "$saved"}},
        ],
        "answer": "done waiting",
    },
    "hang": {
        "steps": [
            {"id": "saved", "tool": "save_note", "args": {"text": "before the failure"}},
            {"id": "second", "tool": "flaky", "args": {"x": 1}, "depends_on": ["saved"]},
        ],
    },
    "flaky": {
        "steps": [
            {"id": "first", "tool": "add", "args": {"a": 1, "b": 1}},
            {"id": "second", "tool": "flaky", "args": {"x": "$first"}},
        ],
        "answer": "got ${second}",
    },
}


def planner_reply(body: dict[str, Any]) -> Any:
    """The scripted LLM: the plan named by the first word of the goal in the prompt."""
    prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    goal = re.findall(r"^Goal: (.*)$", prompt, re.MULTILINE)[-1]
    if goal.startswith("hang") and "flaky is broken today" in prompt:
        return Stall()  # the replan never comes: the person presses Ctrl-C meanwhile
    if goal.startswith("please "):  # the model rewords the goal: "please sum 2 and 3" -> "sum"
        goal = goal.split()[1]
    return {"goal": goal, **PLANS.get(goal.split()[0], {"steps": [], "answer": "no idea"})}


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    BROKEN["flaky"] = False
    STARTED.clear()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=planner_reply) as fake:
        yield fake


class Harness:
    """A Chat over a pipe: type into it, read what it printed."""

    def __init__(self, chat: Chat, pipe: PipeInput, buffer: io.StringIO) -> None:
        self.chat = chat
        self.pipe = pipe
        self.buffer = buffer

    def type(self, *lines: str) -> None:
        for line in lines:
            self.pipe.send_text(line + "\n")

    @property
    def screen(self) -> str:
        return self.buffer.getvalue()

    async def session(self, *lines: str, timeout: float = 20) -> str:
        """Type ``lines`` (ending with /quit), run the REPL to its end, return the screen."""
        self.type(*lines)
        await asyncio.wait_for(self.chat.repl(banner=False), timeout)
        return self.screen


@pytest.fixture
async def make(server: FakeLLMServer, tmp_path: Path) -> AsyncIterator[Callable[..., Harness]]:
    with contextlib.ExitStack() as stack:

        def build(*, terminal: bool = False, file_history: bool = False, **options: Any) -> Harness:
            buffer = io.StringIO()
            console = Console(
                file=buffer, width=140, force_terminal=terminal, color_system=None, soft_wrap=False
            )
            pipe = stack.enter_context(create_pipe_input())
            chat = Chat(
                console,
                TOOLS,
                server.client(),
                store=stack.enter_context(RunStore(tmp_path / "runs.sqlite3")),
                input=pipe,
                output=DummyOutput(),
                history=None if file_history else InMemoryHistory(),
                **options,
            )
            return Harness(chat, pipe, buffer)

        yield build


async def test_a_goal_shows_the_plan_asks_before_side_effects_runs_and_answers(
    make: Callable[..., Harness],
) -> None:
    h = make()
    screen = await h.session("note to self", "y", "/quit")
    plan_at = screen.index("plan · 2 steps")
    asked_at = screen.index('? saved = save_note(text="total is 42")')  # resolved
    answer_at = screen.index("answer: Saved note-1.")
    assert plan_at < asked_at < answer_at
    assert "save_note !" in screen and "${total}" in screen  # marked, references shown
    assert "[a]lways allow save_note" in screen
    assert re.search(r"succeeded in [\d.]+s: 2 steps \(2 succeeded\) · [\d,]+ tokens", screen)
    assert dict(CALLS) == {"add": 1, "save_note": 1}


async def test_no_skips_the_step_and_the_run_goes_on(make: Callable[..., Harness]) -> None:
    h = make()
    screen = await h.session("note this", "n", "/quit")
    assert "↷ saved skipped: not approved" in screen
    assert CALLS["save_note"] == 0 and CALLS["add"] == 1  # the read-only step ran before
    runs = h.chat.store.list_runs() if h.chat.store else []
    assert [r.status for r in runs] == ["succeeded"]


async def test_stop_ends_the_run_rejected_and_undoes_what_it_did(
    make: Callable[..., Harness],
) -> None:
    h = make()
    screen = await h.session("twice please", "y", "s", "/quit")
    assert "↷ again skipped: not approved: the run was aborted" in screen
    assert re.search(r"rejected in [\d.]+s: 2 steps \(1 compensated, 1 skipped\)", screen)
    assert CALLS["save_note"] == 1 and CALLS["delete_note"] == 1
    runs = h.chat.store.list_runs() if h.chat.store else []
    assert [r.status for r in runs] == ["rejected"]


async def test_runs_lists_the_goals_as_typed_not_as_the_plans_reword_them(
    make: Callable[..., Harness],
) -> None:
    h = make()
    screen = await h.session("please sum 2 and 3", "please twice", "y", "s", "/runs", "/quit")
    assert "The sum is 5." in screen
    assert h.chat.store is not None
    runs = [(r.goal, r.status) for r in h.chat.store.list_runs()]
    assert runs == [("please twice", "rejected"), ("please sum 2 and 3", "succeeded")]
    assert re.search(r"rejected\s+please twice", screen)


async def test_details_then_always_allows_the_tool_for_the_rest_of_the_session(
    make: Callable[..., Harness],
) -> None:
    h = make()
    screen = await h.session("note one", "d", "a", "note two", "/quit")
    assert "undone by delete_note if the run is abandoned" in screen  # the details
    assert '"text": "total is ${total}"' in screen
    assert screen.count("? saved = save_note") == 1  # the second goal was not asked about
    assert CALLS["save_note"] == 2


async def test_read_only_plans_and_yes_mode_ask_nothing(make: Callable[..., Harness]) -> None:
    h = make(approve=ApprovalMode.NEVER)
    screen = await h.session("sum it", "note it", "/quit")
    assert "[y]es" not in screen  # no question was asked
    assert "answer: The sum is 5." in screen and "answer: Saved note-1." in screen


async def test_plan_mode_asks_once_per_plan(make: Callable[..., Harness]) -> None:
    h = make(approve=ApprovalMode.PLAN)
    screen = await h.session("sum it", "n", "sum again", "y", "/quit")
    assert screen.count("[y]es  [n]o  [d]etails") == 2
    assert "plan version 1 was not approved" in screen
    assert "answer: The sum is 5." in screen
    assert CALLS["add"] == 1


async def test_ctrl_c_cancels_the_run_compensates_and_the_repl_goes_on(
    make: Callable[..., Harness],
) -> None:
    h = make(approve=ApprovalMode.NEVER, terminal=True)
    h.type("block here")
    repl = asyncio.create_task(h.chat.repl(banner=False))
    await asyncio.wait_for(STARTED.wait(), 10)
    assert "running" in h.screen  # the live view shows the waiting step
    os.kill(os.getpid(), signal.SIGINT)
    h.type("sum after", "/quit")
    await asyncio.wait_for(repl, 20)
    screen = h.screen
    assert "cancelling: undoing what ran" in screen
    assert re.search(r"cancelled in [\d.]+s", screen)
    assert CALLS["delete_note"] == 1  # save_note was undone
    assert "answer: The sum is 5." in screen  # the REPL went on
    store = h.chat.store
    assert store is not None
    assert [r.status for r in store.list_runs()] == ["succeeded", "cancelled"]


async def test_ctrl_c_while_the_llm_replans_undoes_the_failed_attempt(
    make: Callable[..., Harness], server: FakeLLMServer
) -> None:
    h = make(approve=ApprovalMode.NEVER, max_replans=1)
    BROKEN["flaky"] = True
    h.type("hang on")
    repl = asyncio.create_task(h.chat.repl(banner=False))
    assert await asyncio.to_thread(server.wait_for_requests, 2)  # the replan request is out
    os.kill(os.getpid(), signal.SIGINT)
    h.type("/quit")
    await asyncio.wait_for(repl, 20)
    assert "asking the LLM for a new plan" in h.screen
    assert re.search(r"cancelled in [\d.]+s", h.screen)
    assert CALLS["save_note"] == 1 and CALLS["delete_note"] == 1
    store = h.chat.store
    assert store is not None and store.list_runs()[0].status == "cancelled"


async def test_runs_lists_the_journal_and_resume_finishes_a_failed_run(
    make: Callable[..., Harness],
) -> None:
    h = make(max_replans=0)
    BROKEN["flaky"] = True
    await h.session("flaky run", "/runs", "/quit")
    store = h.chat.store
    assert store is not None
    (run,) = store.list_runs()
    assert run.status == "failed"
    assert re.search(rf"{run.id}\s+failed\s+flaky run", h.screen)
    assert "flaky is broken today" in h.screen
    BROKEN["flaky"] = False
    screen = await h.session(f"/resume {run.id}", "/show", "/quit")
    assert "answer: got 20" in screen
    assert CALLS["add"] == 1  # the step that had succeeded was reused, not run again
    assert CALLS["flaky"] == 2
    assert store.list_runs()[0].status == "succeeded"
    assert re.search(r"second\s+flaky\s+succeeded", screen)  # /show of the resumed run


async def test_resume_asks_only_about_the_steps_it_will_run(
    make: Callable[..., Harness],
) -> None:
    h = make()
    assert h.chat.store is not None
    BROKEN["flaky"] = True  # a journalled run (as tooldag exec leaves one): saved, then a failure
    runner = DurableExecutor(TOOLS, store=h.chat.store)
    plan = Plan.model_validate(PLANS["hang"])
    assert (await runner.astart("r1", plan)).status == "failed"
    runner.close()
    BROKEN["flaky"] = False
    screen = await h.session("/resume r1", "/quit")
    assert "? saved = save_note" not in screen  # done, so reused and not asked about
    assert CALLS["save_note"] == 1 and CALLS["flaky"] == 2
    assert h.chat.store.list_runs()[0].status == "succeeded"


async def test_resume_of_a_finished_run_says_which_runs_resume_and_runs_nothing(
    make: Callable[..., Harness],
) -> None:
    h = make()
    await h.session("sum it", "/quit")
    screen = await h.session("/resume", "/quit")
    assert "is succeeded: only pending, failed, paused or interrupted runs can be resumed" in (
        screen
    )
    assert CALLS["add"] == 1


async def test_rerun_runs_a_stored_runs_plan_again_as_a_new_run(
    make: Callable[..., Harness],
) -> None:
    h = make()
    await h.session("sum it", "/quit")
    assert h.chat.store is not None
    (first,) = h.chat.store.list_runs()
    screen = await h.session("/resume", "/quit")
    assert f"/rerun {first.id} runs its plan again as a new run" in " ".join(screen.split())
    screen = await h.session(f"/rerun {first.id}", "/rerun nope", "/quit")
    assert CALLS["add"] == 2  # run again, from the start
    again, _ = h.chat.store.list_runs()
    assert again.id != first.id and again.status == "succeeded"
    assert "run 'nope' is not in the store: /runs lists the runs" in screen


async def test_an_unknown_command_says_so_and_prints_the_help(
    make: Callable[..., Harness],
) -> None:
    screen = await make().session("/frobnicate", "/quit")
    assert "unknown command /frobnicate" in screen
    assert "/resume [ID]" in screen and "/graph [ID]" in screen


async def test_a_follow_up_goal_is_planned_with_the_earlier_answer(
    make: Callable[..., Harness], server: FakeLLMServer
) -> None:
    await make().session("sum first", "sum again", "/usage", "/quit")
    follow_up = server.requests[-1]["messages"][-1]["content"]
    assert "The sum is 5." in follow_up and '"total": 5' in follow_up


async def test_plan_then_run_then_graph(make: Callable[..., Harness]) -> None:
    h = make()
    screen = await h.session("/plan sum later", "/run", "/graph", "/quit")
    assert "valid ·" in screen and "/run runs it" in screen
    assert "answer: The sum is 5." in screen
    assert "flowchart TD" in screen and "class total succeeded" in screen
    assert CALLS["add"] == 1


async def test_edit_opens_the_plan_in_the_editor_and_validates_it_again(
    make: Callable[..., Harness], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "plan = json.load(open(sys.argv[1]))\n"
        "plan['steps'][0]['tool'] = 'ad'\n"
        "json.dump(plan, open(sys.argv[1], 'w'))\n"
    )
    monkeypatch.setenv("VISUAL", f"{sys.executable} {editor}")
    screen = await make().session("/plan sum later", "/edit", "/run", "/quit")
    assert "unknown_tool" in screen and "did you mean add" in screen.replace("'", "")
    assert "the plan has issues: /edit fixes it" in screen
    assert CALLS["add"] == 0


async def test_alt_enter_adds_a_line_to_the_goal(
    make: Callable[..., Harness], server: FakeLLMServer
) -> None:
    h = make()
    h.pipe.send_text("sum this\x1b\rand that\n")
    await h.session("/quit")
    assert "Goal: sum this\nand that" in server.requests[-1]["messages"][-1]["content"]


async def test_history_is_kept_under_tooldag_home(
    make: Callable[..., Harness], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_HOME", str(tmp_path / "home"))
    h = make(file_history=True)  # the default: a file next to the run store
    await h.session("sum remembered", "/quit")
    text = (tmp_path / "home" / "chat_history").read_text()
    assert "+sum remembered" in text
    # What was typed may be private: the history and the folder made for it are the user's only.
    assert stat.S_IMODE((tmp_path / "home" / "chat_history").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


async def test_tools_usage_clear_and_model(make: Callable[..., Harness]) -> None:
    h = make()
    screen = await h.session("/tools", "sum it", "/usage", "/clear", "/model", "/quit")
    assert re.search(r"save_note\s+\S+\s+side effects", screen)
    assert re.search(r"[\d,]+ tokens \(1 LLM call\): [\d,]+ prompt", screen)
    assert "earlier goals forgotten" in screen
    assert "model: fake-model at http://127.0.0.1:" in screen
    assert h.chat.session.results == []


async def test_the_bottom_bar_is_fitted_to_the_terminal(make: Callable[..., Harness]) -> None:
    h = make(toolbar="replay: scripted LLM answers")
    wide, narrow = h.chat.bottom_toolbar(120), h.chat.bottom_toolbar(80)
    assert wide.endswith("policy ask · Ctrl-C cancel · Ctrl-D exit") and len(wide) <= 120
    # At 80 columns the keys' hint goes, then the word "model", rather than be cut.
    assert narrow == "replay: scripted LLM answers · fake-model · approve side-effects · policy ask"


async def test_a_step_that_keeps_failing_is_replanned_and_the_failure_shown(
    make: Callable[..., Harness], server: FakeLLMServer
) -> None:
    BROKEN["flaky"] = True
    screen = await make(max_replans=1).session("flaky twice", "/quit")
    assert "✗ second failed: PermanentToolError: flaky is broken today" in screen
    assert "asking the LLM for a new plan (replan 1 of 1)" in screen
    assert "new plan (version 2)" in screen
    assert re.search(r"failed in [\d.]+s", screen)
    assert len(server.requests) == 2
