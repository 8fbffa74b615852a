"""The REPL with streamed plans and the join: the answer is shown as it is written, early steps
show in the live table, and ``tooldag run --stream`` does it from the command line."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tooldag.durable.store import RunStore
from tooldag.events import EventType
from tooldag.registry import ToolRegistry, tool
from tooldag.testing import FakeLLMServer
from tooldag.ui.approval import ApprovalMode
from tooldag.ui.repl import Chat


@tool(side_effects=False, idempotent=True)
def price(item: str) -> dict[str, Any]:
    """The price of an item."""
    return {"item": item, "eur": {"tea": 3, "coffee": 4}.get(item, 9)}


ANSWER = "Tea is cheaper: 3 EUR against 4 EUR for coffee, so tea wins by 1 EUR."
PLAN = {
    "goal": "which is cheaper",
    "steps": [
        {"id": "tea", "tool": "price", "args": {"item": "tea"}},
        {"id": "coffee", "tool": "price", "args": {"item": "coffee"}},
    ],
    "answer": "llm",
}
JOIN = {"thought": "3 < 4", "action": "finish", "answer": ANSWER, "reason": None}


async def test_the_answer_is_shown_while_it_is_written(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True, color_system=None)
    with (
        FakeLLMServer([PLAN, JOIN], chunk_size=9) as server,
        RunStore(tmp_path / "runs.sqlite3") as store,
    ):
        chat = Chat(
            console,
            ToolRegistry([price]),
            server.client(),
            store=store,
            approve=ApprovalMode.NEVER,
            stream=True,
        )
        result = await chat.run_goal("which is cheaper, tea or coffee?")
        await chat.close()
        events = store.events(result.run_id) if result is not None else []
    assert result is not None and result.answer == ANSWER
    screen = buffer.getvalue()
    # Frames of the live area held the start of the answer, before the whole was printed.
    shown = [
        line.split("answer: ", 1)[1].rstrip()
        for line in re.split(r"[\r\n]|\x1b\[[0-9;?]*[A-Za-z]", screen)
        if "answer: " in line
    ]
    assert shown[-1] == ANSWER
    partial = [text for text in shown[:-1] if ANSWER.startswith(text) and text != ANSWER]
    assert partial, shown
    assert "answer: written by the LLM from the results" in screen  # the plan's "llm"
    kinds = [e.type for e in events]
    assert kinds.index(EventType.STEP_STARTED) < kinds.index(EventType.PLAN_CREATED)


def test_plan_mode_does_not_stream(tmp_path: Path) -> None:
    console = Console(file=io.StringIO())
    with FakeLLMServer([]) as server:
        chat = Chat(console, ToolRegistry([price]), server.client(), approve="plan", stream=True)
    assert not chat.stream


@pytest.mark.slow
def test_tooldag_run_streams_from_the_command_line(tmp_path: Path) -> None:
    tools = tmp_path / "shop.py"
    tools.write_text(
        "from tooldag import tool\n\n"
        "@tool(side_effects=False, idempotent=True)\n"
        "def price(item: str) -> dict:\n"
        '    """The price of an item."""\n'
        '    return {"item": item, "eur": {"tea": 3, "coffee": 4}.get(item, 9)}\n'
    )
    with FakeLLMServer([PLAN, JOIN], token_rate=400, chunk_size=8) as server:
        command = [sys.executable, "-m", "tooldag", "run", "which is cheaper", "--stream"]
        command += ["--tools", str(tools), "--json", "--store", str(tmp_path / "runs.sqlite3")]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, **server.env()},
            timeout=120,
        )
        streamed = [r.get("stream") for r in server.requests]
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "succeeded" and out["answer"] == ANSWER
    assert streamed == [True, True]
