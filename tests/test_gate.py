"""The executor's gate: asked just before a step runs, with its resolved arguments; run, skip
(with what waits for it) or abort; one question at a time; refusals remembered for a resume."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tooldag import Compensation, Plan, ToolRegistry, tool
from tooldag.errors import ConfigError
from tooldag.execution import Executor, Verdict, refused_steps
from tooldag.plan import Step
from tooldag.result import RunStatus, StepStatus

CALLS: list[str] = []
UNDONE: list[str] = []


@tool(side_effects=False)
def make(text: str) -> str:
    """Return the text."""
    CALLS.append(f"make:{text}")
    return text


@tool
def unsave(name: str) -> str:
    """Undo save."""
    UNDONE.append(name)
    return name


@tool(compensate=Compensation("unsave", {"name": "$output"}))
def save(name: str) -> str:
    """Save it."""
    CALLS.append(f"save:{name}")
    return name


@tool(side_effects=False)
async def wait_for(flag: str) -> str:
    """Wait until FLAGS[flag] is set."""
    CALLS.append(f"wait:{flag}")
    if f"{flag}-started" in FLAGS:
        FLAGS[f"{flag}-started"].set()
    await FLAGS[flag].wait()
    return flag


FLAGS: dict[str, asyncio.Event] = {}
REGISTRY = ToolRegistry([make, save, unsave, wait_for])


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    UNDONE.clear()
    FLAGS.clear()


def plan_of(*steps: dict[str, Any], answer: str | None = None) -> Plan:
    return Plan.model_validate({"goal": "test", "steps": list(steps), "answer": answer})


CHAIN = plan_of(
    {"id": "a", "tool": "make", "args": {"text": "secret"}},
    {"id": "b", "tool": "save", "args": {"name": "got ${a}"}},
    {"id": "c", "tool": "make", "args": {"text": "$b"}},
    {"id": "d", "tool": "make", "args": {"text": "after"}, "depends_on": ["b"]},
    {"id": "e", "tool": "make", "args": {"text": "independent"}},
)


async def test_the_gate_sees_each_step_with_its_resolved_arguments_just_before_it_runs() -> None:
    seen: list[tuple[str, dict[str, Any], list[str]]] = []

    def gate(step: Step, args: dict[str, Any]) -> bool:
        seen.append((step.id, args, list(CALLS)))
        return True

    result = await Executor(REGISTRY, gate=gate).run(CHAIN)
    assert result.status is RunStatus.SUCCEEDED
    asked = {sid: (args, before) for sid, args, before in seen}
    assert asked["b"][0] == {"name": "got secret"}  # resolved, not "${a}"
    assert "make:secret" in asked["b"][1]  # a had run
    assert "save:got secret" not in asked["b"][1]  # b had not
    assert sorted(asked) == ["a", "b", "c", "d", "e"]


async def test_skip_leaves_the_step_and_what_waits_for_it_and_the_rest_runs() -> None:
    def gate(step: Step, args: dict[str, Any]) -> Verdict:
        return Verdict.SKIP if step.id == "b" else Verdict.RUN

    result = await Executor(REGISTRY, gate=gate).run(CHAIN)
    assert result.status is RunStatus.SUCCEEDED
    steps = result.steps
    assert steps["b"].status is StepStatus.SKIPPED and steps["b"].reason == "not approved"
    assert steps["c"].status is StepStatus.SKIPPED  # references b
    assert steps["d"].status is StepStatus.SKIPPED  # only depends_on b: not run either
    assert "which was not approved" in (steps["d"].reason or "")
    assert steps["e"].status is StepStatus.SUCCEEDED
    assert not any(c.startswith("save") for c in CALLS)
    assert refused_steps(steps) == ["b"]


async def test_abort_stops_everything_ends_rejected_and_undoes_what_ran() -> None:
    plan = plan_of(
        {"id": "first", "tool": "save", "args": {"name": "one"}},
        {"id": "second", "tool": "save", "args": {"name": "two ${first}"}},
        {"id": "third", "tool": "make", "args": {"text": "$second"}},
    )

    def gate(step: Step, args: dict[str, Any]) -> Verdict:
        return Verdict.ABORT if step.id == "second" else Verdict.RUN

    result = await Executor(REGISTRY, gate=gate).run(plan)
    assert result.status is RunStatus.REJECTED
    assert "step 'second' (save) was not approved: the run was aborted" in (result.error or "")
    assert CALLS == ["save:one"]
    assert UNDONE == ["one"]  # compensated, as a failed or cancelled run is
    assert result.steps["third"].status in (StepStatus.CANCELLED, StepStatus.SKIPPED)


async def test_questions_come_one_at_a_time_and_other_steps_run_meanwhile() -> None:
    FLAGS["free"] = asyncio.Event()
    FLAGS["free-started"] = asyncio.Event()
    plan = plan_of(
        {"id": "x", "tool": "save", "args": {"name": "x"}},
        {"id": "y", "tool": "save", "args": {"name": "y"}},
        {"id": "free", "tool": "wait_for", "args": {"flag": "free"}},
    )
    log: list[str] = []
    answer_first = asyncio.Event()
    first_asked = asyncio.Event()

    async def ask(step: Step) -> bool:
        log.append(f"ask {step.id}")
        first_asked.set()
        if len(log) == 1:
            await answer_first.wait()  # the person thinks; nothing else may be asked now
        log.append(f"answered {step.id}")
        return True

    def gate(step: Step, args: dict[str, Any]) -> Any:
        if step.tool != "save":
            return True  # answered at once, no question
        return ask(step)

    executor = Executor(REGISTRY, gate=gate)
    handle = executor.start(plan)
    # The free step runs while the first question is out.
    await asyncio.wait_for(asyncio.gather(first_asked.wait(), FLAGS["free-started"].wait()), 5)
    assert len(log) == 1  # the second question waits for the first answer
    answer_first.set()
    FLAGS["free"].set()
    result = await handle.wait()
    assert result.status is RunStatus.SUCCEEDED
    assert log[1].startswith("answered") and log[2].startswith("ask")


async def test_a_gate_that_raises_fails_its_step_which_does_not_run() -> None:
    def gate(step: Step, args: dict[str, Any]) -> bool:
        if step.id == "b":
            raise ValueError("hook bug")
        return True

    result = await Executor(REGISTRY, gate=gate).run(CHAIN)
    assert result.steps["b"].status is StepStatus.FAILED
    assert "the approval gate failed (ValueError: hook bug)" in str(result.steps["b"].error)
    assert not any(c.startswith("save") for c in CALLS)


async def test_a_gate_answering_nonsense_is_a_clear_error() -> None:
    result = await Executor(REGISTRY, gate=lambda s, a: "perhaps").run(CHAIN)
    assert "answer True, False or a Verdict" in str(result.steps["a"].error)
    with pytest.raises(ConfigError, match="gate must be a callable"):
        Executor(REGISTRY, gate="yes")  # type: ignore[arg-type]


async def test_steps_refused_before_are_refused_again_without_a_gate_and_asked_with_one() -> None:
    again = await Executor(REGISTRY).start(CHAIN, refused=["b"]).wait()
    assert again.steps["b"].status is StepStatus.SKIPPED
    assert (again.steps["b"].reason or "").startswith("not approved in an earlier attempt")
    assert refused_steps(again.steps) == ["b"]  # still refused, for the next resume
    assert not any(c.startswith("save") for c in CALLS)

    asked: list[str] = []

    def gate(step: Step, args: dict[str, Any]) -> bool:
        asked.append(step.id)
        return True

    approved = await Executor(REGISTRY, gate=gate).start(CHAIN, refused=["b"]).wait()
    assert "b" in asked and approved.steps["b"].status is StepStatus.SUCCEEDED


@tool(side_effects=False)
def flaky(text: str) -> str:
    """Fails while BROKEN holds."""
    if BROKEN:
        raise ValueError("broken today")
    return text


BROKEN: list[bool] = []


async def test_a_resumed_durable_run_does_not_quietly_run_a_step_refused_before() -> None:
    from tooldag.durable.runner import DurableExecutor
    from tooldag.durable.store import RunStore

    registry = ToolRegistry([*REGISTRY, flaky])
    plan = plan_of(
        {"id": "a", "tool": "make", "args": {"text": "x"}},
        {"id": "b", "tool": "save", "args": {"name": "$a"}},
        {"id": "c", "tool": "flaky", "args": {"text": "$a"}},
    )
    BROKEN.append(True)
    with RunStore(":memory:") as store:
        refusing = DurableExecutor(registry, store=store, gate=lambda s, a: s.id != "b")
        first = await refusing.astart("r1", plan)
        refusing.close()
        assert first.status is RunStatus.FAILED  # c failed: the run can be resumed
        assert first.steps["b"].reason == "not approved"

        plain = DurableExecutor(registry, store=store)  # no gate: no one to ask again
        second = await plain.aresume("r1")
        plain.close()
        assert second.status is RunStatus.FAILED  # c still broken
        assert second.steps["b"].status is StepStatus.SKIPPED
        assert (second.steps["b"].reason or "").startswith("not approved in an earlier attempt")
        assert not any(c.startswith("save") for c in CALLS)
        BROKEN.clear()

        asked: list[str] = []

        def gate(step: Step, args: dict[str, Any]) -> bool:
            asked.append(step.id)
            return True

        asking = DurableExecutor(registry, store=store, gate=gate)
        third = await asking.aresume("r1")
        asking.close()
        assert third.status is RunStatus.SUCCEEDED
        assert "b" in asked and third.steps["b"].status is StepStatus.SUCCEEDED
        assert "save:x" in CALLS
