"""Goal files: rows, line-numbered errors, workspaces; and the shipped set kept honest (every
gold plan validates and, run, gives the expected answer)."""

from __future__ import annotations

import asyncio
import importlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import respx

from eval_script import extraction
from tooldag.errors import ConfigError
from tooldag.evaluation import check_answer, load_goals, numbers_in
from tooldag.evaluation.goals import build_workspace
from tooldag.execution import Executor
from tooldag.testing import mock_openai
from tooldag.validate import validate

ROW = {
    "id": "pct",
    "goal": "What is 17% of 2,340?",
    "tools": ["calc"],
    "answer": {"number": 397.8, "tolerance": 0.01},
    "plan": {"steps": [{"id": "p", "tool": "calculate", "args": {"expression": "2340*17/100"}}]},
}


def write_rows(path: Path, *rows: Any) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def test_a_row_becomes_a_goal(tmp_path: Path) -> None:
    (goal,) = load_goals(write_rows(tmp_path / "g.jsonl", ROW))
    assert goal.id == "pct" and goal.goal == ROW["goal"]
    assert goal.registry.names() == ["calculate", "statistics"]
    assert goal.plan is not None and goal.plan.goal == ROW["goal"]
    assert goal.calls is goal.plan  # no expected calls: the gold plan's steps
    assert goal.execute and goal.answer is not None and goal.answer.number == 397.8


def test_blank_lines_are_skipped_and_ids_default_by_position(tmp_path: Path) -> None:
    rows = [{"goal": "one", "tools": "calc"}, "", {"goal": "two", "tools": ["time"]}]
    goals = load_goals(write_rows(tmp_path / "g.jsonl", *rows))
    assert [g.id for g in goals] == ["goal-1", "goal-2"]
    assert goals[1].line == 3 and goals[1].plan is None


def test_expected_calls_are_the_argument_reference(tmp_path: Path) -> None:
    row = {
        **ROW,
        "calls": [
            {"tool": "calculate", "args": {"expression": "2340*17/100"}},
            {"tool": "calculate", "args": {"expression": "round(${call0.result})"}},
        ],
    }
    (goal,) = load_goals(write_rows(tmp_path / "g.jsonl", row))
    assert goal.calls is not None and goal.calls.ids == ["call0", "call1"]
    assert goal.calls.dependencies()["call1"] == ("call0",)


def test_inline_tools_are_schema_only_so_the_goal_is_planned_only(tmp_path: Path) -> None:
    tool = {
        "name": "lookup",
        "description": "Look a thing up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    (goal,) = load_goals(write_rows(tmp_path / "g.jsonl", {"goal": "find it", "tools": [tool]}))
    assert goal.registry.names() == ["lookup"] and not goal.execute
    assert goal.egress_tools == ["lookup"]  # schema-only: every argument may leave


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"goal": ', "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"gaol": "typo"}', "line 2: goal: Field required; gaol: Extra inputs"),
        ('{"goal": "x", "tools": "calc", "plan": 3}', "line 2: plan: expected a plan object"),
        ('{"goal": "x", "tools": [1]}', "line 2: tools: expected a list of --tools SPECs"),
        ('{"goal": "x", "tools": ["nope"]}', "line 2: tools='nope': no such module or pack"),
        ('{"goal": "x", "answer": {"number": "many"}}', "line 2: answer.number:"),
        ('{"goal": "x", "answer": {}}', "line 2: answer: give exactly one of"),
        ('{"goal": "x", "tools": "calc", "plan": {"steps": 5}}', "line 2: plan: "),
        ('{"goal": "x", "files": {"../x": "y"}}', "line 2: files: '../x' must be a path inside"),
        ('{"goal": "x", "files": {"a.txt": ["SELECT 1"]}}', "only build a database"),
        ('{"goal": "x", "colour": "red"}', "line 2: colour: Extra inputs"),
        ('{"goal": ""}', "line 2: goal: String should have at least 1 character"),
        ('{"id": "pct", "goal": "again"}', "line 2: id 'pct' is already used on line 1"),
    ],
)
def test_every_mistake_names_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_rows(tmp_path / "g.jsonl", ROW, line)
    with pytest.raises(ConfigError) as caught:
        load_goals(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and message in text, text
    assert "\n" not in text


def test_a_goal_file_that_is_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such goal file"):
        load_goals(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="holds no goals"):
        load_goals(write_rows(tmp_path / "empty.jsonl", ""))
    with pytest.raises(ConfigError, match="unknown goal format"):
        load_goals(write_rows(tmp_path / "g.jsonl", ROW), format="yaml")


def test_build_workspace_writes_text_and_builds_databases(tmp_path: Path) -> None:
    files: dict[str, str | list[str]] = {
        "notes/todo.txt": "- one\n",
        "shop.db": ["CREATE TABLE t (n INTEGER)", "INSERT INTO t VALUES (1), (2)"],
    }
    build_workspace(tmp_path, files)
    assert (tmp_path / "notes/todo.txt").read_text() == "- one\n"
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        assert conn.execute("SELECT SUM(n) FROM t").fetchone() == (3,)
    with pytest.raises(ConfigError, match=r"building bad\.db failed"):
        build_workspace(tmp_path, {"bad.db": ["CREATE TABLE"]})


# ------------------------------------------------------------------------- the shipped set

SHIPPED = load_goals()
PACKS = {"calc", "time", "text", "data", "files"}


def test_the_shipped_set_has_forty_checkable_goals_over_the_packs() -> None:
    assert len(SHIPPED) >= 40
    assert all(g.answer is not None and g.plan is not None and g.execute for g in SHIPPED)
    tools = {tool for g in SHIPPED for tool in g.registry.names()}
    used = {s.tool for g in SHIPPED for s in g.plan.steps} if SHIPPED else set()  # type: ignore[union-attr]
    assert {"calculate", "statistics", "date_add", "date_diff", "convert_time"} <= used
    assert {"sqlite_query", "read_file", "write_file", "list_files", "extract", "summarize"} <= used
    assert used <= tools
    assert {tag for g in SHIPPED for tag in g.tags} == PACKS
    # Nothing in it sends anything anywhere.
    assert all(not g.egress_tools for g in SHIPPED)


def test_no_shipped_goal_gives_its_numeric_answer_away() -> None:
    # A number the goal itself states would pass the number check by being echoed back.
    for goal in SHIPPED:
        if goal.answer is not None and goal.answer.number is not None:
            assert all(abs(n - goal.answer.number) > 1e-9 for n in numbers_in(goal.goal)), goal.id


@pytest.mark.parametrize("goal", SHIPPED, ids=lambda g: g.id)
def test_every_shipped_gold_plan_validates(goal: Any) -> None:
    assert validate(goal.plan, goal.registry) == []


async def _run_gold(goal: Any, root: Path) -> Any:
    packs_common: Any = importlib.import_module("tooldag.packs._common")
    build_workspace(root, goal.files)
    with packs_common.using_workspace(root):
        return await Executor(goal.registry).start(goal.plan).wait()


def test_every_shipped_gold_plan_runs_to_the_expected_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")  # the extract tool's LLM
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    wrong = []
    with respx.mock() as router:
        mock_openai(router, default=lambda body: extraction(body["messages"][-1]["content"]))

        async def run_all() -> None:
            for i, goal in enumerate(SHIPPED):
                root = tmp_path / str(i)
                root.mkdir()
                result = await _run_gold(goal, root)
                if result.status.value != "succeeded" or not check_answer(
                    goal.answer, result.answer
                ):
                    wrong.append((goal.id, result.status.value, result.answer, result.error))

        asyncio.run(run_all())
    assert wrong == []


def test_a_wrong_answer_would_be_caught() -> None:
    # The check above is only as good as the checker: the gold answers of two goals swapped fail.
    a, b = SHIPPED[0], SHIPPED[1]
    assert a.answer is not None and b.answer is not None
    assert not check_answer(a.answer, b.answer.describe())
