"""``tooldag demo`` in-process: what its scripted LLM costs, and what a goal it does not know
gets (the whole replay, in a subprocess, is in test_cli_chat)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tooldag.llm.client import LLMClient
from tooldag.registry.loading import load_registry
from tooldag.testing import FakeLLMServer, Reply
from tooldag.ui.demo import DEMO_GOALS, DemoChat, run_demo, scripted_planner


def _body(goal: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": f"Goal: {goal}\n\nReply."}]}


def test_a_scripted_reply_costs_no_tokens() -> None:
    reply = scripted_planner()(_body(DEMO_GOALS[0].text))
    assert isinstance(reply, Reply)
    assert reply.usage == {"prompt_tokens": 0, "completion_tokens": 0}


@pytest.mark.slow
def test_the_replay_reports_no_tokens_spent() -> None:
    out = io.StringIO()
    assert run_demo(Console(file=out, width=120), auto=True, delay=0) == 0
    text = out.getvalue()
    assert text.count("· 0 tokens (1 LLM call)") == 3  # the todo goal's replan is a second call
    assert "· 0 tokens (2 LLM calls)" in text


async def test_a_goal_the_script_does_not_know_gets_its_answer_once_at_no_cost() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80)
    with FakeLLMServer(default=scripted_planner(), model="replay") as server:
        llm = LLMClient.from_env(env=server.env())
        chat = DemoChat(console, load_registry(["calc"]), llm, prompt="demo> ")
        await chat.handle("What is the capital of France?")
        await chat.close()
        assert server.requests == []  # nothing to plan: the script has no plan for it
    text = out.getvalue()
    assert text.count("knows only its own goals") == 1
    assert "0 tokens (scripted reply)" in text
