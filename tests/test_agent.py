"""plan_and_run end to end (respx for the LLM, real tools that count their calls): the happy path,
replans that reuse completed steps, compensation when giving up, approval, budgets, usage, the
store, sessions, and running inside a live event loop."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from typing_extensions import TypedDict

from tooldag.agent import Session, aplan_and_run, plan_and_run
from tooldag.durable.store import RunStore
from tooldag.errors import ConfigError, PermanentToolError, PlanRejected
from tooldag.events import Event, EventBus, EventType, LLMCall, PlanCreated, RunFinished
from tooldag.execution import Verdict
from tooldag.execution.policy import StepApproval
from tooldag.llm.client import LLMClient
from tooldag.plan import Plan
from tooldag.registry import Compensation, ToolRegistry, tool
from tooldag.result import RunStatus, StepStatus
from tooldag.testing import FakeLLMServer, Reply, ScriptedLLM, mock_openai
from tooldag.testing.respx_helpers import OPENAI_BASE_URL

CALLS: Counter[str] = Counter()
RELEASED: list[str] = []
_lock = threading.Lock()


def _count(name: str) -> None:
    with _lock:
        CALLS[name] += 1


class Weather(TypedDict):
    location: str
    temp: float
    condition: str


class Booking(TypedDict):
    booking_id: str
    restaurant: str


@tool(side_effects=False)
def get_weather(location: str) -> Weather:
    """Current weather for a place."""
    _count("get_weather")
    return {"location": location, "temp": 12.0, "condition": "rain"}


@tool
def release_table(booking_id: str) -> dict[str, str]:
    """Cancel a booking (the compensation of book_table)."""
    _count("release_table")
    RELEASED.append(booking_id)
    return {"released": booking_id}


@tool(compensate=Compensation("release_table", {"booking_id": "$output.booking_id"}))
def book_table(restaurant: str, guests: int) -> Booking:
    """Book a table (undone by release_table)."""
    _count(f"book_table:{restaurant}")
    if restaurant == "Closed Cafe":
        raise PermanentToolError("Closed Cafe is closed today")
    return {"booking_id": f"B-{restaurant}", "restaurant": restaurant}


@tool(side_effects=False)
def pick_restaurant(condition: str) -> dict[str, str]:
    """Pick a restaurant for the weather."""
    _count("pick_restaurant")
    return {"name": "Closed Cafe" if condition == "rain" else "Open Bistro"}


GOAL = "Book dinner for two in London, indoors if it rains"


def plan(restaurant: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "goal": GOAL,
        "steps": [
            {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
            {
                "id": "booking",
                "tool": "book_table",
                "args": {"restaurant": restaurant, "guests": 2},
                "depends_on": ["weather"],
            },
            *(extra or []),
        ],
        "answer": "Booked ${booking.restaurant} (${booking.booking_id}); it is ${weather.temp} C.",
    }


# After the booking, a second one that fails: the first booking is left to undo.
FAILING_SECOND_BOOKING = [
    {
        "id": "second",
        "tool": "book_table",
        "args": {"restaurant": "Closed Cafe", "guests": 2},
        "depends_on": ["booking"],
    }
]


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    CALLS.clear()
    RELEASED.clear()
    LLMClient.forget_working_modes()
    yield


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def tools() -> ToolRegistry:
    return ToolRegistry([get_weather, book_table, release_table, pick_restaurant])


def llm() -> LLMClient:
    return LLMClient.from_env(api_key="sk-test", env={})


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


@pytest.mark.parametrize("spec", ["nope.py", ["calc", "nope.py"]])
def test_a_bad_tools_argument_is_named_as_the_argument_not_a_cli_flag(spec: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_and_run(GOAL, tools=spec, llm=llm())
    assert str(caught.value) == "tools='nope.py': no such file"


def test_the_happy_path_runs_the_plan_with_one_llm_call(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    script = mock_openai(router, [Reply(plan("Open Bistro"), usage=usage(500, 80))])
    result = plan_and_run(GOAL, tools=tools, llm=llm())
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.answer == "Booked Open Bistro (B-Open Bistro); it is 12.0 C."
    assert len(script.requests) == 1
    assert result.usage.to_dict() == {
        "prompt_tokens": 500,
        "completion_tokens": 80,
        "total_tokens": 580,
        "calls": 1,
    }
    assert len(result.plans) == 1
    assert CALLS == {"get_weather": 1, "book_table:Open Bistro": 1}


async def test_plan_and_run_works_inside_a_running_event_loop(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    asyncio.get_running_loop()  # as in a Jupyter cell
    mock_openai(router, [plan("Open Bistro")])
    result = plan_and_run(GOAL, tools=tools, llm=llm())
    assert result.status is RunStatus.SUCCEEDED, result.error


def test_plan_and_run_takes_the_very_options_of_aplan_and_run() -> None:
    # Spelled out so that editors complete and check them: this keeps the two from drifting.
    sync, coro = inspect.signature(plan_and_run), inspect.signature(aplan_and_run)
    assert list(sync.parameters.values()) == list(coro.parameters.values())
    assert sync.return_annotation == coro.return_annotation == "RunResult"


def test_plan_and_run_passes_every_option_on(
    router: respx.MockRouter, tools: ToolRegistry, tmp_path: Path
) -> None:
    mock_openai(router, [plan("Open Bistro")])
    seen: list[Event] = []
    store = tmp_path / "runs.sqlite3"
    result = plan_and_run(
        GOAL, tools=tools, llm=llm(), run_id="run-7", store=store, on_event=seen.append
    )
    assert result.run_id == "run-7" and seen and seen[-1].run_id == "run-7"
    with RunStore(store) as runs:
        assert runs.get_run("run-7") is not None
    with pytest.raises(TypeError, match="max_replan"):
        plan_and_run(GOAL, max_replan=3)  # type: ignore[call-arg]


async def test_a_failed_step_is_replanned_and_completed_steps_are_not_run_again(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    script = mock_openai(
        router,
        [
            Reply(plan("Closed Cafe"), usage=usage(400, 60)),
            Reply(plan("Open Bistro"), usage=usage(700, 70)),
        ],
    )
    events: list[Event] = []
    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), on_event=events.append)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert CALLS == {"get_weather": 1, "book_table:Closed Cafe": 1, "book_table:Open Bistro": 1}
    assert result.steps["weather"].reused
    assert result.outputs["weather"]["temp"] == 12.0
    assert len(result.plans) == 2
    replan_prompt = script.requests[1]["messages"][-1]["content"]
    assert "Closed Cafe is closed today" in replan_prompt
    assert result.usage.to_dict() == {
        "prompt_tokens": 1100,
        "completion_tokens": 130,
        "total_tokens": 1230,
        "calls": 2,
    }
    versions = [e.data.version for e in events if isinstance(e.data, PlanCreated)]
    assert versions == [1, 2]
    assert RELEASED == []  # success: nothing undone


async def test_spent_replans_fail_the_run_and_compensate_every_attempt(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    # Each plan books a table, then a second booking fails.
    attempts = [plan(name, FAILING_SECOND_BOOKING) for name in ("Bistro One", "Bistro Two")]
    mock_openai(router, attempts)
    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), max_replans=1)
    assert result.status is RunStatus.FAILED
    assert "gave up after 1 replan(s)" in (result.error or "")
    assert sorted(RELEASED) == ["B-Bistro One", "B-Bistro Two"]
    assert result.steps["booking"].status is StepStatus.COMPENSATED
    assert result.steps["booking@1"].status is StepStatus.COMPENSATED  # the first attempt's
    assert CALLS["get_weather"] == 1


async def test_an_undo_that_fails_on_giving_up_shows_on_its_attempts_step(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    @tool
    def release_table(booking_id: str) -> dict[str, str]:
        """Cancel a booking, unless the first restaurant's desk is closed."""
        if booking_id == "B-Bistro One":
            raise PermanentToolError("the desk is closed")
        RELEASED.append(booking_id)
        return {"released": booking_id}

    tools.add(release_table, replace=True)
    attempts = [plan(name, FAILING_SECOND_BOOKING) for name in ("Bistro One", "Bistro Two")]
    mock_openai(router, attempts)
    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), max_replans=1)
    assert RELEASED == ["B-Bistro Two"]
    assert result.steps["booking"].status is StepStatus.COMPENSATED
    first = result.steps["booking@1"]
    assert first.status is StepStatus.SUCCEEDED  # its effect stands, visibly
    assert first.error is not None and "the desk is closed" in first.error.message
    assert "gave up after 1 replan(s)" in (result.error or "")
    assert "the desk is closed" in (result.error or "")


async def test_a_refused_plan_ends_rejected_with_nothing_run(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    mock_openai(router, [plan("Open Bistro")])
    seen: list[Plan] = []

    def approve(p: Plan) -> bool:
        seen.append(p)
        return False

    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), approve=approve)
    assert result.status is RunStatus.REJECTED
    assert seen and seen[0].ids == ["weather", "booking"]
    assert CALLS == {}


async def test_approve_step_is_asked_just_before_each_side_effecting_step_and_no_skips_it(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    mock_openai(router, [plan("Open Bistro", FAILING_SECOND_BOOKING)])
    asked: list[tuple[str, dict[str, Any], dict[str, int]]] = []

    async def approve_step(request: StepApproval) -> bool:
        asked.append((request.id, request.args, dict(CALLS)))
        return request.id != "second"

    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), approve_step=approve_step)
    # Asked one step at a time, as each came to run (the read-only weather ran first).
    assert [sid for sid, _, _ in asked] == ["booking", "second"]
    assert asked[0][1] == {"restaurant": "Open Bistro", "guests": 2}
    assert asked[0][2] == {"get_weather": 1}
    assert asked[1][2] == {"get_weather": 1, "book_table:Open Bistro": 1}
    # "No" skips the step and the run goes on: it succeeded without it.
    assert result.status is RunStatus.SUCCEEDED
    assert result.steps["second"].status is StepStatus.SKIPPED
    assert result.steps["second"].reason == "not approved"
    assert "book_table:Closed Cafe" not in CALLS


async def test_aborting_at_a_step_ends_the_run_rejected_and_undoes_what_ran(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    mock_openai(router, [plan("Open Bistro", FAILING_SECOND_BOOKING)])

    def approve_step(request: StepApproval) -> Verdict:
        return Verdict.ABORT if request.id == "second" else Verdict.RUN

    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), approve_step=approve_step)
    assert result.status is RunStatus.REJECTED
    assert "step 'second' (book_table) was not approved: the run was aborted" in (
        result.error or ""
    )
    assert RELEASED == ["B-Open Bistro"]  # the booking that ran was undone
    assert "book_table:Closed Cafe" not in CALLS


async def test_a_spent_budget_ends_the_run_budget_exceeded_and_compensates(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    script = mock_openai(router, [plan("Bistro One", FAILING_SECOND_BOOKING), plan("Open Bistro")])
    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), max_llm_calls=1)
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert "1 of 1 calls" in (result.error or "")
    assert len(script.requests) == 1
    assert RELEASED == ["B-Bistro One"]


async def test_usage_sums_plans_re_asks_and_replans(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    bad = {"steps": [{"id": "w", "tool": "get_wether", "args": {"location": "London"}}]}
    mock_openai(
        router,
        [
            Reply(bad, usage=usage(100, 10)),
            Reply(plan("Closed Cafe"), usage=usage(200, 20)),
            Reply(plan("Open Bistro"), usage=usage(300, 30)),
        ],
    )
    result = await aplan_and_run(GOAL, tools=tools, llm=llm())
    assert result.status is RunStatus.SUCCEEDED
    assert result.usage.to_dict() == {
        "prompt_tokens": 600,
        "completion_tokens": 60,
        "total_tokens": 660,
        "calls": 3,
    }


async def test_no_valid_first_plan_raises_plan_rejected(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    bad = {"steps": [{"id": "w", "tool": "get_wether", "args": {"location": "London"}}]}
    mock_openai(router, [bad] * 3)
    with pytest.raises(PlanRejected):
        await aplan_and_run(GOAL, tools=tools, llm=llm(), max_reasks=2)
    assert CALLS == {}


async def test_the_run_is_journalled_with_its_plans_and_usage(
    router: respx.MockRouter, tools: ToolRegistry, tmp_path: Path
) -> None:
    mock_openai(
        router,
        [
            Reply(plan("Closed Cafe"), usage=usage(10, 1)),
            Reply(plan("Open Bistro"), usage=usage(20, 2)),
        ],
    )
    path = tmp_path / "runs.sqlite3"
    result = await aplan_and_run(GOAL, tools=tools, llm=llm(), store=path, run_id="dinner")
    with RunStore(path) as store:
        info = store.get_run("dinner")
        plans = store.plans("dinner")
    assert info is not None
    assert info.status == "succeeded"
    assert info.usage.total_tokens == 33 and info.usage.calls == 2
    assert [p.to_json() for p in plans] == [p.to_json() for p in result.plans]


@pytest.mark.parametrize("approved", [True, False])
async def test_the_journal_lists_the_users_words_not_the_plans_rewording(
    router: respx.MockRouter, tools: ToolRegistry, store_url: str, approved: bool
) -> None:
    mock_openai(router, [{**plan("Open Bistro"), "goal": "book dinner"}])
    words = "please book us a dinner for two"
    result = await aplan_and_run(
        words, tools=tools, llm=llm(), store=store_url, approve=lambda p: approved
    )
    assert result.status is (RunStatus.SUCCEEDED if approved else RunStatus.REJECTED)
    with RunStore(store_url) as store:
        assert [(r.goal, r.status) for r in store.list_runs()] == [(words, result.status)]
        assert store.plans(result.run_id)[0].goal == "book dinner"  # the plan keeps its own


async def test_a_run_with_no_valid_plan_keeps_the_users_words(
    router: respx.MockRouter, tools: ToolRegistry, store_url: str
) -> None:
    mock_openai(router, [{"steps": [{"id": "x", "tool": "no_such_tool", "args": {}}]}] * 3)
    with pytest.raises(PlanRejected):
        await aplan_and_run("please do the impossible", tools=tools, llm=llm(), store=store_url)
    with RunStore(store_url) as store:
        [info] = store.list_runs()
    assert (info.goal, info.status, info.usage.calls) == (
        "please do the impossible",
        RunStatus.FAILED,
        3,
    )


async def test_a_session_shows_earlier_answers_to_the_next_plan(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    script: ScriptedLLM = mock_openai(router, [plan("Open Bistro"), plan("Bistro Two")])
    session = Session(tools=tools, llm=llm())
    first = await session.arun(GOAL)
    await session.arun("Book the same again tomorrow")
    follow_up = script.requests[1]["messages"][-1]["content"]
    assert '<data name="turn 1">' in follow_up
    assert first.answer is not None and first.answer in follow_up
    assert session.usage.calls == 2


async def test_without_tools_the_built_in_packs_are_offered(router: respx.MockRouter) -> None:
    script = mock_openai(
        router, [{"steps": [{"id": "w", "tool": "get_weather", "args": {"location": "Oslo"}}]}]
    )
    result = await aplan_and_run("Weather in Oslo?", llm=llm(), approve=lambda p: False)
    assert result.status is RunStatus.REJECTED  # refused, so no network call is made
    assert "get_weather(" in script.requests[0]["messages"][0]["content"]


def test_a_session_runs_goal_after_goal_from_sync_code_over_http(tools: ToolRegistry) -> None:
    # Each sync run has its own event loop; the LLM connections must follow (no retries).
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with FakeLLMServer(default=plan("Open Bistro")) as server:
        session = Session(tools=tools, llm=server.client(sleep=sleep))
        results = [session.run(f"{GOAL} #{i}") for i in range(3)]
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 3
    assert len(server.requests) == 3 and waits == []


async def test_llm_calls_made_by_tools_count_in_the_runs_usage(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    @tool(side_effects=False)
    async def summarize(text: str) -> str:
        """Summarise a text with the LLM."""
        return (await llm().complete(f"Summarise: {text}")).text

    tools.add(summarize)
    steps = [{"id": "s", "tool": "summarize", "args": {"text": "a long text"}}]
    mock_openai(
        router,
        [
            Reply({"steps": steps, "answer": "${s}"}, usage=usage(100, 10)),
            Reply("short", usage=usage(40, 2)),
        ],
    )
    events: list[Event] = []
    result = await aplan_and_run("Summarise it", tools=tools, llm=llm(), on_event=events.append)
    assert result.answer == "short"
    assert result.usage.calls == 2 and result.usage.total_tokens == 152
    purposes = [e.data.purpose for e in events if isinstance(e.data, LLMCall)]
    assert purposes == ["plan", "tool"]


async def test_cancelling_the_run_compensates_what_it_did(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    started = asyncio.Event()

    @tool(side_effects=False)
    async def wait_for_table(booking_id: str) -> str:
        """Wait until the table is ready."""
        started.set()
        await asyncio.Event().wait()  # never ready: the run is cancelled meanwhile
        return booking_id

    tools.add(wait_for_table)
    extra = [
        {"id": "wait", "tool": "wait_for_table", "args": {"booking_id": "$booking.booking_id"}}
    ]
    mock_openai(router, [plan("Open Bistro", extra)])
    task = asyncio.create_task(aplan_and_run(GOAL, tools=tools, llm=llm()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert RELEASED == ["B-Open Bistro"]


async def test_cancelling_while_the_llm_replans_compensates_what_ran_exactly_once(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    script = ScriptedLLM([plan("Bistro One", FAILING_SECOND_BOOKING), plan("Open Bistro")])
    replanning = asyncio.Event()

    async def reply(request: httpx.Request) -> httpx.Response:
        if script.requests:  # the replan: held until the run is cancelled
            replanning.set()
            await asyncio.Event().wait()
        answer = script.respond(json.loads(request.content))
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    router.post(f"{OPENAI_BASE_URL}/chat/completions").mock(side_effect=reply)
    events: list[Event] = []
    task = asyncio.create_task(aplan_and_run(GOAL, tools=tools, llm=llm(), on_event=events.append))
    await replanning.wait()
    assert RELEASED == []  # a replan may still follow: nothing is undone yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert RELEASED == ["B-Bistro One"]
    assert CALLS["release_table"] == 1
    finished = [e.data for e in events if isinstance(e.data, RunFinished)]
    assert finished[-1].status is RunStatus.CANCELLED


async def test_a_replanned_run_streams_to_its_one_final_run_finished(
    router: respx.MockRouter, tools: ToolRegistry
) -> None:
    mock_openai(router, [plan("Closed Cafe"), plan("Open Bistro")])
    bus = EventBus()
    task = asyncio.create_task(aplan_and_run(GOAL, tools=tools, llm=llm(), bus=bus))
    seen = [event async for event in bus.stream()]  # subscribed before the task's first step
    result = await task
    finished = [e.data for e in seen if isinstance(e.data, RunFinished)]
    assert [(d.status, d.final) for d in finished] == [
        (RunStatus.FAILED, False),
        (RunStatus.SUCCEEDED, False),
        (RunStatus.SUCCEEDED, True),
    ]
    assert "Closed Cafe is closed today" in (finished[0].error or "")
    assert finished[-1].answer == result.answer and seen[-1].type is EventType.RUN_FINISHED
