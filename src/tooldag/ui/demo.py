"""``tooldag demo``: tooldag at work in half a minute, with no API key and no network.

It is a replay, and says so: a fake OpenAI-compatible server on 127.0.0.1
(:class:`~tooldag.testing.FakeLLMServer`) answers with plans written in advance for a few goals,
while everything else is real: the chat REPL, the validator, the approval questions, the
parallel executor, the replan after a failure, and the tools (calc, files, time, sqlite), which
work on a temporary workspace holding a small sales database and a notes folder.

The scripted "LLM" reads the prompt the way a model would: it finds the goal, and for a
follow-up it takes the numbers from the earlier turns it is shown; after a failed step it
answers with a corrected plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from prompt_toolkit.history import InMemoryHistory
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from ..durable.store import RunStore
from ..llm.client import LLMClient
from ..registry.loading import load_registry
from ..result import RunResult
from ..testing import FakeLLMServer, Reply
from ..testing.script import current_goal, last_user_text
from .approval import ApprovalMode
from .repl import Chat

__all__ = [
    "DEMO_GOALS",
    "DemoChat",
    "build_workspace",
    "known_goal",
    "run_demo",
    "scripted_planner",
    "unknown_answer",
]

REPLAY_LABEL = "replay: scripted LLM answers"

_SALES = [
    ("North", "tea", 12_400),
    ("North", "coffee", 9_800),
    ("South", "tea", 8_100),
    ("South", "coffee", 7_300),
    ("East", "tea", 15_900),
    ("East", "coffee", 11_200),
    ("West", "tea", 6_500),
    ("West", "coffee", 5_900),
]
_TODO = "- renew the office plants\n- send the Q3 sales report\n- book the team lunch\n"

_SHARE = "round(100 * ${by_region.rows.0.revenue} / ${total.rows.0.revenue}, 1)"
_BY_REGION_SQL = (
    "SELECT region, SUM(revenue) AS revenue FROM sales GROUP BY region ORDER BY revenue DESC"
)


@dataclass(frozen=True, slots=True)
class DemoGoal:
    """A goal the replay knows: the words that recognise it, and its plan(s)."""

    text: str
    keywords: tuple[str, ...]
    plan: Callable[[str, list[dict[str, Any]], bool], dict[str, Any]]
    """(goal, earlier turns shown in the prompt, is this a replan) -> the plan to answer."""


def _sales_plan(goal: str, turns: list[dict[str, Any]], replan: bool) -> dict[str, Any]:
    return {
        "goal": goal,
        "steps": [
            {
                "id": "by_region",
                "tool": "sqlite_query",
                "args": {"database": "sales.db", "sql": _BY_REGION_SQL},
            },
            {
                "id": "total",
                "tool": "sqlite_query",
                "args": {
                    "database": "sales.db",
                    "sql": "SELECT SUM(revenue) AS revenue FROM sales",
                },
            },
            {
                "id": "share",
                "tool": "calculate",
                "args": {"expression": _SHARE},
            },
        ],
        "answer": "${by_region.rows.0.region} sold the most: ${by_region.rows.0.revenue} of "
        "${total.rows.0.revenue} in all, ${share.result}% of all revenue.",
    }


def _time_plan(goal: str, turns: list[dict[str, Any]], replan: bool) -> dict[str, Any]:
    new_year = f"{date.today().year + 1}-01-01"
    return {
        "goal": goal,
        "steps": [
            {"id": "tokyo", "tool": "now", "args": {"timezone": "Asia/Tokyo"}},
            {"id": "new_york", "tool": "now", "args": {"timezone": "America/New_York"}},
            {"id": "until", "tool": "date_diff", "args": {"start": "today", "end": new_year}},
        ],
        "answer": "It is ${tokyo.time} on ${tokyo.weekday} in Tokyo and ${new_york.time} on "
        "${new_york.weekday} in New York; New Year is ${until.text} away.",
    }


def _report_plan(goal: str, turns: list[dict[str, Any]], replan: bool) -> dict[str, Any]:
    # A model reuses what the session already found instead of querying again.
    for turn in reversed(turns):
        outputs = turn.get("outputs") or {}
        rows = (outputs.get("by_region") or {}).get("rows")
        if rows:
            lines = ["# Sales by region", "", "| region | revenue |", "|---|---:|"]
            lines += [f"| {r.get('region')} | {r.get('revenue')} |" for r in rows]
            if turn.get("answer"):
                lines += ["", str(turn["answer"])]
            content = "\n".join(lines) + "\n"
            return {
                "goal": goal,
                "steps": [
                    {
                        "id": "save",
                        "tool": "write_file",
                        "args": {"path": "report.md", "content": content},
                    },
                ],
                "answer": "Saved ${save.path} (${save.bytes_written} bytes), from the figures "
                "found earlier in this session.",
            }
    return {
        "goal": goal,
        "steps": [
            {
                "id": "by_region",
                "tool": "sqlite_query",
                "args": {"database": "sales.db", "sql": _BY_REGION_SQL},
            },
            {
                "id": "save",
                "tool": "write_file",
                "args": {
                    "path": "report.md",
                    "content": "# Sales\n\nTop region: ${by_region.rows.0.region} "
                    "(${by_region.rows.0.revenue}).\n",
                },
            },
        ],
        "answer": "Saved ${save.path} (${save.bytes_written} bytes).",
    }


def _todo_plan(goal: str, turns: list[dict[str, Any]], replan: bool) -> dict[str, Any]:
    if not replan:  # the file is really notes/todo.md: this first plan fails
        return {
            "goal": goal,
            "steps": [{"id": "todo", "tool": "read_file", "args": {"path": "notes/todo.txt"}}],
            "answer": "${todo.path}:\n${todo.content}",
        }
    return {
        "goal": goal,
        "steps": [
            {
                "id": "listing",
                "tool": "list_files",
                "args": {"directory": "notes", "pattern": "todo*"},
            },
            {"id": "todo", "tool": "read_file", "args": {"path": "$listing.entries.0.path"}},
        ],
        "answer": "notes/todo.txt does not exist, but ${todo.path} does:\n${todo.content}",
    }


DEMO_GOALS: tuple[DemoGoal, ...] = (
    DemoGoal(
        "Which region sold the most, and what share of all revenue was that?",
        ("region", "sold"),
        _sales_plan,
    ),
    DemoGoal(
        "What time is it in Tokyo and in New York, and how long until New Year?",
        ("tokyo", "new year"),
        _time_plan,
    ),
    DemoGoal("Save those figures as a short report in report.md", ("report",), _report_plan),
    DemoGoal("Show me my to-do list in notes/todo.txt", ("to-do", "todo"), _todo_plan),
)

_TURN_RE = re.compile(r'<data name="turn \d+">\n(.*?)\n</data>', re.DOTALL)

# A scripted reply costs nothing: the server says so, instead of counting the prompt's
# characters as a model's tokens.
_FREE = {"prompt_tokens": 0, "completion_tokens": 0}


def known_goal(goal: str, goals: tuple[DemoGoal, ...] = DEMO_GOALS) -> DemoGoal | None:
    """The demo goal whose words ``goal`` has, if any."""
    lowered = goal.lower()
    return next((g for g in goals if any(word in lowered for word in g.keywords)), None)


def unknown_answer(goals: tuple[DemoGoal, ...] = DEMO_GOALS) -> str:
    """What the replay says to a goal it has no plan for."""
    listing = "; ".join(f'"{g.text}"' for g in goals)
    return (
        f"(replay) This demo's LLM is a script that knows only its own goals: {listing}. "
        "Configure a real LLM and use `tooldag chat` for anything else."
    )


def scripted_planner(goals: tuple[DemoGoal, ...] = DEMO_GOALS) -> Callable[[dict[str, Any]], Any]:
    """The fake LLM's reply to a chat-completions request body: the plan for the goal it finds
    in the prompt (a plan with no steps that lists the known goals when it knows none), at no
    cost in tokens."""

    def reply(body: dict[str, Any]) -> Reply:
        goal = current_goal(body)
        prompt = last_user_text(body)
        turns: list[dict[str, Any]] = []
        for block in _TURN_RE.findall(prompt):
            with contextlib.suppress(json.JSONDecodeError):
                turns.append(json.loads(block))
        # A replan shows the model the calls it made: a fresh prompt holds only goals and data.
        replan = any(f"{name}(" in prompt for name in ("read_file", "list_files"))
        known = known_goal(goal, goals)
        if known is not None:
            return Reply(known.plan(goal, turns, replan), usage=_FREE)
        return Reply({"goal": goal, "steps": [], "answer": unknown_answer(goals)}, usage=_FREE)

    return reply


class DemoChat(Chat):
    """The REPL, but a goal the script has no plan for gets its answer once, without an empty
    plan and a run around it."""

    async def run_goal(self, goal: str) -> RunResult | None:
        if known_goal(goal) is not None:
            return await super().run_goal(goal)
        self.out.print(Text.assemble(("answer: ", "bold"), unknown_answer()))
        self.out.print(Text("no plan for this goal · 0 tokens (scripted reply)", style="dim"))
        return None


def build_workspace(root: Path) -> None:
    """The demo's files: ``sales.db`` (a ``sales`` table) and ``notes/todo.md``."""
    with contextlib.closing(sqlite3.connect(root / "sales.db")) as db, db:
        db.execute("CREATE TABLE sales (region TEXT, product TEXT, revenue INTEGER)")
        db.executemany("INSERT INTO sales VALUES (?, ?, ?)", _SALES)
    (root / "notes").mkdir()
    (root / "notes" / "todo.md").write_text(_TODO, encoding="utf-8")


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _banner(console: Console, workspace: Path) -> None:
    body = Text()
    body.append(REPLAY_LABEL.upper(), style="bold yellow")
    body.append(
        "\nA fake OpenAI-compatible server on 127.0.0.1 answers with plans written in advance "
        "(they cost nothing: 0 tokens). "
        "Everything else is real: validation, approval questions, the parallel executor, a "
        "replan after a failure, and the tools (calc, files, time, sqlite) working in a "
        f"temporary workspace: {workspace}"
    )
    console.print(Panel(body, title="tooldag demo", title_align="left", border_style="yellow"))


async def _type(console: Console, prompt: str, text: str, delay: float) -> None:
    """Show ``text`` as if typed at the prompt (instantly when ``delay`` is 0)."""
    if delay <= 0:
        console.print(Text(prompt, style="bold").append(text, style=""))
        return
    console.print(Text(prompt, style="bold"), end="")
    for char in text:
        console.print(char, end="", markup=False, highlight=False)
        console.file.flush()
        await asyncio.sleep(delay)
    console.print()


async def _play(chat: Chat, console: Console, delay: float) -> None:
    async def replay_answer(message: str) -> str:
        console.print(
            Text(message, style="bold")
            .append("y", style="")
            .append("   (replay: answered automatically)", style="dim yellow")
        )
        await asyncio.sleep(delay * 20)
        return "y"

    asker = chat.approver.ask
    chat.approver.ask = replay_answer
    try:
        for goal in DEMO_GOALS:
            await _type(console, chat.prompt_text, goal.text, delay)
            await chat.handle(goal.text)
            await asyncio.sleep(delay * 30)
        await _type(console, chat.prompt_text, "/runs", delay)
        await chat.handle("/runs")
    finally:
        chat.approver.ask = asker


async def _demo(console: Console, workspace: Path, *, auto: bool, play: bool, delay: float) -> None:
    registry = load_registry(["calc", "files", "time", "data"])
    with FakeLLMServer(default=scripted_planner(), model="replay") as server:
        env = {**server.env(), "TOOLDAG_WORKSPACE": str(workspace)}
        with _environment(env), RunStore(workspace / "runs.sqlite3") as store:
            history = InMemoryHistory()
            for goal in reversed(DEMO_GOALS):
                history.append_string(goal.text)
            chat = DemoChat(
                console,
                registry,
                LLMClient.from_env(),
                store=store,
                approve=ApprovalMode.SIDE_EFFECTS,
                history=history,
                prompt="demo> ",
                toolbar=REPLAY_LABEL,
            )
            _banner(console, workspace)
            with chat.interrupts():
                if play:
                    await _play(chat, console, delay)
            if auto:
                console.print(
                    Text(
                        "That was the replay. `tooldag demo --interactive` lets you type the goals "
                        "yourself; with an LLM configured, `tooldag chat` takes any goal.",
                        style="bold",
                    )
                )
                await chat.close()
                return
            console.print(
                Text(
                    "Your turn: press ↑ for the demo's goals or type your own, /help lists the "
                    "commands, Ctrl-D leaves. The LLM is still a replay: it knows only these "
                    "goals.",
                    style="bold",
                )
            )
            await chat.repl(banner=False)


def run_demo(
    console: Console, *, auto: bool = False, play: bool = True, delay: float | None = None
) -> int:
    """Run the demo: replay the scripted goals (``play``), then hand over the prompt unless
    ``auto``. ``delay`` is the typing delay per character (default: 0.02s on a terminal)."""
    if delay is None:
        delay = 0.02 if console.is_terminal else 0.0
    with tempfile.TemporaryDirectory(prefix="tooldag-demo-") as tmp:
        workspace = Path(tmp)
        build_workspace(workspace)
        asyncio.run(_demo(console, workspace, auto=auto, play=play, delay=delay))
    return 0
