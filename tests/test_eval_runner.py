"""Running goals: what each outcome records (valid first try, re-asks, replans, answer, F1, LLM
calls, tokens), timeouts, refused egress, planned-only goals, the concurrency bound and each
goal's own workspace. Against the fake OpenAI server, scripted by goal (eval_script)."""

from __future__ import annotations

import asyncio
import copy
import importlib
from pathlib import Path
from typing import Any

import pytest

from eval_script import GOLD, GoalScript
from tooldag.evaluation import EvalOptions, EvalResult, aevaluate, load_goals
from tooldag.evaluation import runner as runner_module
from tooldag.evaluation.goals import Goal, GoalRow, goal_from_row
from tooldag.evaluation.metrics import Counts
from tooldag.testing import FakeLLMServer, Stall

SHIPPED = {g.id: g for g in load_goals()}
BAD_TOOL = {"steps": [{"id": "x", "tool": "calculator", "args": {"expression": "1"}}]}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # The tools run in temporary workspaces; the current directory must stay untouched.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOOLDAG_WORKSPACE", str(tmp_path))
    return tmp_path


def _evaluate(
    goals: list[Goal],
    replies: dict[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> tuple[EvalResult, FakeLLMServer]:
    script = GoalScript(goals, replies)
    with FakeLLMServer(default=script) as server:
        for name, value in server.env().items():  # the text tools' own LLM client
            monkeypatch.setenv(name, value)

        async def run() -> EvalResult:
            llm = server.client()
            try:
                return await aevaluate(goals, llm, EvalOptions(**options))
            finally:
                await llm.aclose()

        result = asyncio.run(run())
    return result, server


def _goals(*ids: str) -> list[Goal]:
    return [SHIPPED[i] for i in ids]


def test_the_gold_plan_scores_full_marks(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = _evaluate(_goals("data-tea-share"), {}, monkeypatch)
    (o,) = result.outcomes
    assert (o.status, o.valid_first, o.valid, o.reasks, o.replans) == (
        "succeeded",
        True,
        True,
        0,
        0,
    )
    assert o.answer == "Tea brings in 41.6% of the revenue." and o.answer_correct is True
    assert o.node == Counts(tp=2) and o.edge == Counts(tp=1)
    # (sqlite_query, database, "shop.db") twice is one triple, then two sql and one expression.
    assert o.args == Counts(tp=4)
    assert o.llm_calls == 1 and o.tokens > 0 and o.latency > 0
    assert o.plan is not None and [s["id"] for s in o.plan["steps"]] == ["tea", "total", "share"]


def test_a_valid_plan_with_the_wrong_answer(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = {
        "steps": [{"id": "p", "tool": "calculate", "args": {"expression": "2340 * 71 / 100"}}],
        "answer": "${p.result}",
    }
    result, _ = _evaluate(_goals("calc-percent"), {"calc-percent": [wrong]}, monkeypatch)
    (o,) = result.outcomes
    assert o.status == "succeeded" and o.valid_first and o.answer == "1661.4"
    assert o.answer_correct is False
    assert o.node == Counts(tp=1)  # the right tool...
    assert o.args == Counts(fp=1, fn=1)  # ...with the wrong argument


def test_a_plan_with_literals_instead_of_references_loses_its_edge(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gold = SHIPPED["data-tea-share"].plan
    assert gold is not None
    literal = copy.deepcopy(gold.to_json())  # to_json shares the args dicts
    literal["steps"][2]["args"]["expression"] = "round(100 * 72.0 / 173.25, 1)"
    result, _ = _evaluate(_goals("data-tea-share"), {"data-tea-share": [literal]}, monkeypatch)
    (o,) = result.outcomes
    assert o.answer_correct is True  # the right number, by a plan that did not read the data
    assert o.edge == Counts(fn=1) and o.edge.f1 == 0.0


def test_a_plan_valid_after_a_reask(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, server = _evaluate(
        _goals("calc-hypotenuse"), {"calc-hypotenuse": [BAD_TOOL, GOLD]}, monkeypatch
    )
    (o,) = result.outcomes
    assert (o.valid_first, o.valid, o.reasks, o.status) == (False, True, 1, "succeeded")
    assert o.llm_calls == 2 == len(server.requests)
    assert o.node == Counts(tp=1)  # scored on the first valid plan, not the rejected reply


def test_no_valid_plan_is_scored_on_the_last_reply(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, server = _evaluate(_goals("calc-line-up"), {"calc-line-up": [BAD_TOOL]}, monkeypatch)
    (o,) = result.outcomes
    assert (o.status, o.valid, o.reasks, o.llm_calls) == ("no_plan", False, 2, 3)
    assert o.answer is None and o.answer_correct is False
    assert o.node == Counts(fp=1, fn=1)  # "calculator" for "calculate"
    assert o.error is not None and "no valid plan in 3 attempt(s)" in o.error
    assert len(server.requests) == 3


def test_a_failed_run_is_replanned(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {
        "steps": [{"id": "v", "tool": "calculate", "args": {"expression": "300 / 0"}}],
        "answer": "${v.result}",
    }
    result, _ = _evaluate(
        _goals("calc-train-speed"), {"calc-train-speed": [broken, GOLD]}, monkeypatch
    )
    (o,) = result.outcomes
    assert (o.status, o.valid_first, o.replans, o.llm_calls) == ("succeeded", True, 1, 2)
    assert o.answer_correct is True
    assert o.plan is not None and o.plan["steps"][0]["args"]["expression"] == "300 / 0"


def test_text_tools_llm_calls_count(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, server = _evaluate(_goals("text-invoice-number"), {}, monkeypatch)
    (o,) = result.outcomes
    assert o.answer == "The invoice number is INV-2024-0042." and o.answer_correct
    assert o.llm_calls == 2 == len(server.requests)  # the plan, and the extract tool's call


def test_a_goal_over_its_timeout(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = _evaluate(
        _goals("calc-percent", "calc-circle"),
        {"calc-percent": [Stall(30)]},
        monkeypatch,
        # Room for the goal that does not stall to finish on a busy machine (it failed once at
        # 0.5 s under load 2.5); the stalled one is cut at this time whatever it is.
        timeout=3,
    )
    slow, fine = result.outcomes
    assert slow.status == "timeout" and slow.error == "took longer than the 3s timeout"
    assert slow.answer_correct is False and not slow.valid
    assert fine.status == "succeeded"  # the other goal is not held up


def _row(**data: Any) -> Goal:
    return goal_from_row(GoalRow.model_validate(data))


def test_plans_that_would_send_are_refused(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = _row(id="fetch", goal="Fetch https://example.org", tools=["web"])
    mail = _row(id="mail", goal="Mail bob@example.org hello", tools=["mail"])
    replies = {
        "fetch": [
            {"steps": [{"id": "g", "tool": "http_get", "args": {"url": "https://example.org"}}]}
        ],
        "mail": [
            {
                "steps": [
                    {
                        "id": "m",
                        "tool": "send_email",
                        "args": {"to": "bob@example.org", "subject": "hi", "body": "hello"},
                    }
                ]
            }
        ],
    }
    result, _ = _evaluate([fetch, mail], replies, monkeypatch)
    assert [o.status for o in result.outcomes] == ["refused", "refused"]
    assert "http_get, which sends data off the machine" in (result.outcomes[0].error or "")
    assert "--allow-egress lets it" in (result.outcomes[0].error or "")
    # --allow-egress lets a read-only fetch through, never a tool that acts and sends.
    result, _ = _evaluate([mail], replies, monkeypatch, allow_egress=True)
    assert result.outcomes[0].status == "refused"
    assert "--allow-egress" not in (result.outcomes[0].error or "")


def test_imported_goals_are_planned_not_run(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    goals = load_goals(Path(__file__).parent / "fixtures" / "nestful_sample.jsonl")[:1]
    result, server = _evaluate(goals, {}, monkeypatch)
    (o,) = result.outcomes
    assert (o.status, o.executed, o.valid_first) == ("planned", False, True)
    assert o.answer is None and o.answer_correct is None  # nothing ran, nothing to check
    assert o.node is not None and o.node.f1 == 1.0 and o.edge is not None and o.edge.f1 == 1.0
    assert len(server.requests) == 1
    assert result.summary.succeeded.value is None  # no goal was to run


def test_at_most_concurrency_goals_at_once(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    active = peak = 0
    real = runner_module.run_goal

    async def counting(goal: Goal, llm: Any, options: EvalOptions) -> Any:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(5):  # let the other tasks run: any that could start now would
            await asyncio.sleep(0)
        try:
            return await real(goal, llm, options)
        finally:
            active -= 1

    monkeypatch.setattr(runner_module, "run_goal", counting)
    goals = _goals("calc-percent", "calc-circle", "calc-mean", "calc-line-up", "calc-poker-hands")
    result, _ = _evaluate(goals, {}, monkeypatch, concurrency=2)
    assert peak == 2
    assert [o.id for o in result.outcomes] == [g.id for g in goals]  # in goal order
    assert all(o.status == "succeeded" for o in result.outcomes)


def test_each_goal_has_its_own_workspace_and_the_cwd_is_untouched(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = _evaluate(
        _goals("files-write-read", "files-copy", "data-order-count"), {}, monkeypatch
    )
    assert all(o.answer_correct for o in result.outcomes), [o.error for o in result.outcomes]
    assert sorted(p.name for p in env.iterdir()) == []  # nothing written where we are


async def test_workspaces_of_concurrent_tasks_do_not_mix(tmp_path: Path) -> None:
    # The contextvar the runner sets is per task, also in the threads sync tools run in.
    common: Any = importlib.import_module("tooldag.packs._common")
    from tooldag.registry.loading import load_registry

    files = load_registry(["files"])
    a_wrote, b_wrote = asyncio.Event(), asyncio.Event()

    async def goal(root: Path, text: str, mine: asyncio.Event, other: asyncio.Event) -> str:
        root.mkdir()
        with common.using_workspace(root):
            await files.aexecute("write_file", path="same.txt", content=text)
            mine.set()
            await other.wait()  # the other task has written its same.txt meanwhile
            out: dict[str, Any] = await files.aexecute("read_file", path="same.txt")
            return str(out["content"])

    got = await asyncio.gather(
        goal(tmp_path / "a", "from a", a_wrote, b_wrote),
        goal(tmp_path / "b", "from b", b_wrote, a_wrote),
    )
    assert got == ["from a", "from b"]


def test_a_result_reads_back_from_its_json(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = _evaluate(
        _goals("calc-percent", "calc-line-up"), {"calc-line-up": [BAD_TOOL]}, monkeypatch
    )
    again = EvalResult.from_json(result.to_json())
    assert again.outcomes == result.outcomes
    assert again.summary == result.summary
    assert result.meta["model"] == "fake-model" and result.meta["options"]["concurrency"] == 4


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        EvalOptions(concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        EvalOptions(timeout=0)
