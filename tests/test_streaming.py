"""Streamed plans end to end through the fake server: read-only steps start while the plan is
still arriving, side effects wait for the complete plan, and the stream's failures (an invalid
plan, a reply cut off, a broken connection, Ctrl-C) never run a step twice.

Proved with events and holds, never with timing: a :class:`~tooldag.testing.Hold` stops the
stream at a point until the test's tool releases it, so a plan that did not start the tool early
would stall the stream (and the hold's timeout would fail the test).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tooldag import RunStatus, StepStatus, ToolRegistry, aplan_and_run, tool
from tooldag.errors import LLMStreamInterrupted
from tooldag.events import Event, EventType, LLMCall, PlanCreated, StepStarted
from tooldag.llm.client import LLMClient
from tooldag.testing import FakeLLMServer, Hold, Reply

HOLD = 5.0


@pytest.fixture(autouse=True)
def _fresh_mode_memory() -> None:
    LLMClient.forget_working_modes()


class Tools:
    """``fetch`` (read-only, idempotent, counted; may release a hold when it starts), ``save``
    (side effects), ``secret`` (private) and ``send`` (egress)."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, Any]] = Counter()
        self.on_fetch: Callable[[int], None] = lambda n: None
        self.block: asyncio.Event | None = None
        self.plan_complete = asyncio.Event()
        self.saved_when_complete: list[bool] = []
        self.fetched = asyncio.Event()

        @tool(side_effects=False, idempotent=True)
        async def fetch(n: int) -> dict[str, Any]:
            """Fetch item n."""
            self.calls["fetch", n] += 1
            self.fetched.set()
            self.on_fetch(n)
            if self.block is not None:
                await self.block.wait()
            return {"n": n, "double": 2 * n}

        # Idempotent: only its side effects keep it from starting early.
        @tool(side_effects=True, idempotent=True)
        def save(text: str) -> str:
            """Save text."""
            self.calls["save", text] += 1
            self.saved_when_complete.append(self.plan_complete.is_set())
            return f"saved {text}"

        @tool(side_effects=False, idempotent=True, reads_private=True)
        def secret() -> dict[str, str]:
            """A private value."""
            return {"v": "hunter2"}

        @tool(side_effects=False, idempotent=True, egress=["url"])
        def send(url: str) -> str:
            """Send a URL out."""
            self.calls["send", url] += 1
            return "sent"

        self.registry = ToolRegistry([fetch, save, secret, send])


def fetch_step(sid: str, n: Any) -> dict[str, Any]:
    return {"id": sid, "tool": "fetch", "args": {"n": n}}


def plan_text(steps: list[dict[str, Any]], answer: str | None = "done") -> str:
    return json.dumps({"goal": "g", "steps": steps, "answer": answer})


def after_step(sid: str, n: int) -> str:
    """The text that ends step ``sid`` (a fetch of ``n``) in :func:`plan_text`'s JSON."""
    return json.dumps(fetch_step(sid, n))


class Seen:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.hooks: list[Callable[[Event], None]] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        for hook in self.hooks:
            hook(event)

    def index(self, kind: EventType, step: str | None = None) -> int:
        return next(
            i
            for i, e in enumerate(self.events)
            if e.type is kind and (step is None or e.step_id == step)
        )

    def purposes(self) -> list[str]:
        return [e.data.purpose for e in self.events if isinstance(e.data, LLMCall)]


async def run(server: FakeLLMServer, tools: Tools, seen: Seen | None = None, **options: Any) -> Any:
    seen = seen or Seen()

    def complete(event: Event) -> None:
        if isinstance(event.data, PlanCreated):
            tools.plan_complete.set()

    seen.hooks.append(complete)
    options.setdefault("stream", True)
    return await aplan_and_run(
        "g", tools=tools.registry, llm=server.client(), on_event=seen, **options
    )


def last_user(request: dict[str, Any]) -> str:
    return str(request["messages"][-1]["content"])


# ---------------------------------------------------------------------------- early dispatch


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "text"])
async def test_a_read_only_step_starts_while_the_plan_is_still_streaming(mode: str) -> None:
    tools = Tools()
    hold = Hold(after=after_step("f0", 0), timeout=HOLD)
    tools.on_fetch = lambda n: hold.release.set()
    text = plan_text([fetch_step("f0", 0), fetch_step("f1", 1)], answer="${f1.double}")
    if mode == "text":
        text = f"Here is the plan:\n```json\n{text}\n```"
    seen = Seen()
    with FakeLLMServer([Reply(text, hold=hold)], chunk_size=7) as server:
        result = await run(server, tools, seen, mode=mode)
        request = server.requests[0]
    assert result.status is RunStatus.SUCCEEDED and result.answer == "2"
    assert not hold.timed_out.is_set()  # the stream went on because the step had started
    assert seen.index(EventType.STEP_STARTED, "f0") < seen.index(EventType.PLAN_CREATED)
    assert request["stream"] is True
    kind = (request.get("response_format") or {}).get("type", "text")
    assert kind == {"json_schema": "json_schema", "json_object": "json_object"}.get(mode, "text")
    assert tools.calls == Counter({("fetch", 0): 1, ("fetch", 1): 1})


def release_after(hold: Hold, seen: Seen, step_id: str) -> None:
    """Release ``hold`` once ``step_id`` has succeeded, and then time enough for a scheduler
    that would start a step waiting for it there and then (it has arrived, its input exists)
    to have done so: a step that must wait for the plan has to be still waiting."""

    async def release_soon() -> None:
        for _ in range(50):
            await asyncio.sleep(0)
        hold.release.set()

    tasks: list[asyncio.Task[None]] = []

    def on_event(event: Event) -> None:
        if event.type is EventType.STEP_SUCCEEDED and event.step_id == step_id:
            tasks.append(asyncio.ensure_future(release_soon()))

    seen.hooks.append(on_event)


async def test_early_steps_start_with_a_sync_client_streaming_on_a_worker_thread() -> None:
    import openai

    tools = Tools()
    hold = Hold(after=after_step("f0", 0), timeout=HOLD)
    tools.on_fetch = lambda n: hold.release.set()
    text = plan_text([fetch_step("f0", 0), fetch_step("f1", 1)], answer="${f1.n}")
    with FakeLLMServer([Reply(text, hold=hold)], chunk_size=7) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="fake-key")
        llm = LLMClient(sdk, model="fake-model", check_model=False)
        result = await aplan_and_run("g", tools=tools.registry, llm=llm, stream=True)
    assert result.status is RunStatus.SUCCEEDED and result.answer == "1"
    assert not hold.timed_out.is_set()


async def test_a_side_effecting_step_never_starts_before_the_plan_is_complete() -> None:
    tools = Tools()
    save = {"id": "s", "tool": "save", "args": {"text": "${f0.n}"}}
    hold = Hold(after=json.dumps(save), timeout=HOLD)
    seen = Seen()
    release_after(hold, seen, "f0")
    text = plan_text([fetch_step("f0", 0), save, fetch_step("f1", 1)])
    with FakeLLMServer([Reply(text, hold=hold)], chunk_size=5) as server:
        result = await run(server, tools, seen)
    assert result.status is RunStatus.SUCCEEDED
    assert not hold.timed_out.is_set()
    assert tools.saved_when_complete == [True]
    assert seen.index(EventType.STEP_STARTED, "f0") < seen.index(EventType.PLAN_CREATED)
    assert seen.index(EventType.PLAN_CREATED) < seen.index(EventType.STEP_STARTED, "s")


async def test_a_step_through_which_private_data_can_leave_waits_for_the_plan() -> None:
    tools = Tools()
    send = {"id": "u", "tool": "send", "args": {"url": "https://x.test/?q=${k.v}"}}
    steps = [{"id": "k", "tool": "secret", "args": {}}, send, fetch_step("f0", 0)]
    hold = Hold(after=json.dumps(send), timeout=HOLD)
    seen = Seen()
    release_after(hold, seen, "k")
    asked: list[tuple[str, bool]] = []

    def approve_step(request: Any) -> bool:  # the policy asks about the step the flow reaches
        asked.append((request.step.id, tools.plan_complete.is_set()))
        return True

    with FakeLLMServer([Reply(plan_text(steps), hold=hold)], chunk_size=4) as server:
        result = await run(server, tools, seen, approve_step=approve_step)
    assert result.status is RunStatus.SUCCEEDED and not hold.timed_out.is_set()
    assert asked == [("u", True)]
    assert seen.index(EventType.STEP_STARTED, "k") < seen.index(EventType.PLAN_CREATED)
    assert seen.index(EventType.PLAN_CREATED) < seen.index(EventType.STEP_STARTED, "u")


async def test_text_the_finished_plan_may_read_as_a_reference_waits_for_it() -> None:
    # "$f1.n" without braces is a reference only if the plan has a step f1: it does, but only
    # later in the stream. Started early, "u" would have sent the literal text.
    tools = Tools()
    send = {"id": "u", "tool": "send", "args": {"url": "https://x.test/$f1.n"}}
    steps = [fetch_step("f0", 0), send, fetch_step("f1", 1)]
    seen = Seen()
    with FakeLLMServer([plan_text(steps, answer="${u}")], chunk_size=5) as server:
        result = await run(server, tools, seen)
    assert result.status is RunStatus.SUCCEEDED and result.answer == "sent"
    assert tools.calls[("send", "https://x.test/1")] == 1


async def test_chunks_cut_through_strings_escapes_and_utf8_characters() -> None:
    tools = Tools()
    note = 'caf\u00e9 \U0001f600 "quoted" back\\slash \u4e2d\u6587'
    steps = [fetch_step("f0", 0), {"id": "s", "tool": "save", "args": {"text": note}}]
    server = FakeLLMServer(
        [plan_text(steps, answer="${s}")], chunk_sizes=(1, 24), seed=3, wire_bytes=3
    )
    with server:
        result = await run(server, tools)
    assert result.status is RunStatus.SUCCEEDED
    assert result.answer == f"saved {note}"
    assert tools.calls[("save", note)] == 1


# ---------------------------------------------------------------------------- when it goes wrong


async def test_an_invalid_finished_plan_is_re_asked_with_the_steps_that_already_ran() -> None:
    tools = Tools()
    first = plan_text([fetch_step("f0", 0), fetch_step("f1", 1)], answer="${nope.x}")
    second = plan_text(
        [fetch_step("f0", 0), fetch_step("f1", 1), fetch_step("f2", "$f1.double")],
        answer="${f2.double}",
    )
    seen = Seen()
    with FakeLLMServer([first, second], chunk_size=6) as server:
        result = await run(server, tools, seen)
        repair = last_user(server.requests[1])
    assert result.status is RunStatus.SUCCEEDED and result.answer == "4"
    assert "unknown_step" in repair and "already ran" in repair
    assert '<data name="f0 output">' in repair and '"double": 2' in repair
    # What ran while the first reply streamed was kept, not run again.
    assert tools.calls == Counter({("fetch", 0): 1, ("fetch", 1): 1, ("fetch", 2): 1})
    assert seen.purposes() == ["plan", "repair"]


async def test_a_re_ask_may_not_give_the_id_of_a_step_that_ran_to_another_step() -> None:
    tools = Tools()
    first = plan_text([fetch_step("f0", 0)], answer="${nope}")
    changed = plan_text([fetch_step("f0", 9)], answer="${f0.n}")
    fixed = plan_text([fetch_step("f0", 0), fetch_step("f9", 9)], answer="${f9.n}")
    with FakeLLMServer([first, changed, fixed], chunk_size=6) as server:
        result = await run(server, tools)
        second_repair = last_user(server.requests[2])
    assert result.status is RunStatus.SUCCEEDED and result.answer == "9"
    assert "already_ran" in second_repair
    assert tools.calls == Counter({("fetch", 0): 1, ("fetch", 9): 1})


async def test_a_reply_cut_off_at_the_token_limit_keeps_its_steps_and_asks_for_the_rest() -> None:
    tools = Tools()
    whole = plan_text([fetch_step("f0", 0), fetch_step("f1", 1), fetch_step("f2", 2)])
    cut = whole.index('"f2"') + 3  # inside the third step
    rest = plan_text([fetch_step("f2", 2), fetch_step("f3", "$f2.double")], answer="${f3.double}")
    seen = Seen()
    replies = [Reply(whole[:cut], finish_reason="length"), rest]
    with FakeLLMServer(replies, chunk_size=6) as server:
        result = await run(server, tools, seen)
        ask = server.requests[1]["messages"]
    assert result.status is RunStatus.SUCCEEDED and result.answer == "8"
    assert [s.id for s in result.plan.steps] == ["f0", "f1", "f2", "f3"]
    assert ask[-2] == {"role": "assistant", "content": whole[:cut]}
    assert "token" in ask[-1]["content"] and "f0, f1" in ask[-1]["content"]
    assert tools.calls == Counter({("fetch", n): 1 for n in (0, 1, 2, 4)})
    assert seen.purposes() == ["plan", "continue"]


async def test_a_connection_broken_mid_stream_asks_for_the_rest_without_rerunning() -> None:
    tools = Tools()
    whole = plan_text([fetch_step("f0", 0), fetch_step("f1", 1), fetch_step("f2", 2)])
    broken = Reply(whole, break_after=whole.index('"f2"'))
    rest = plan_text([fetch_step("f2", 2)], answer="${f2.double}")
    seen = Seen()
    with FakeLLMServer([broken, rest], chunk_size=6) as server:
        result = await run(server, tools, seen)
        ask = last_user(server.requests[1])
    assert result.status is RunStatus.SUCCEEDED and result.answer == "4"
    assert "connection broke" in ask and "f0, f1" in ask
    assert tools.calls == Counter({("fetch", n): 1 for n in range(3)})
    assert seen.purposes() == ["plan", "continue"]  # the broken call is counted too
    assert result.usage.calls == 2


async def test_cancelling_mid_stream_closes_the_stream_and_cancels_started_steps() -> None:
    tools = Tools()
    tools.block = asyncio.Event()  # fetch never returns
    hold = Hold(after=after_step("f0", 0), timeout=HOLD)
    text = plan_text([fetch_step("f0", 0), fetch_step("f1", 1)])
    seen = Seen()
    with FakeLLMServer([Reply(text, hold=hold)], chunk_size=6) as server:
        task = asyncio.ensure_future(run(server, tools, seen))
        await asyncio.wait_for(tools.fetched.wait(), HOLD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hold.release.set()  # the server goes on writing, and finds nobody reading
        assert await asyncio.to_thread(server.wait_until, lambda: bool(server.abandoned), HOLD)
        sent = server.abandoned[0]
    assert sent < len(text)  # the generation stopped before the end
    cancelled = [e for e in seen.events if e.type is EventType.STEP_CANCELLED]
    assert [e.step_id for e in cancelled] == ["f0"]
    final = seen.events[-1].data
    assert final.type is EventType.RUN_FINISHED and final.status is RunStatus.CANCELLED


async def test_a_stream_that_breaks_before_any_text_is_retried_as_a_whole() -> None:
    text = plan_text([fetch_step("f0", 0)])
    with FakeLLMServer([Reply(text, break_after=0), text]) as server:
        pieces: list[str] = []
        reply = await server.client(backoff=0).complete("plan", on_delta=pieces.append)
    assert reply.text == text and "".join(pieces) == text
    assert len(server.requests) == 2


async def test_a_stream_that_breaks_after_text_raises_with_what_arrived() -> None:
    text = plan_text([fetch_step("f0", 0)])
    with FakeLLMServer([Reply(text, break_after=20)], chunk_size=5) as server:
        pieces: list[str] = []
        with pytest.raises(LLMStreamInterrupted, match="broke off after 20 characters") as err:
            await server.client().complete("plan", on_delta=pieces.append)
    assert err.value.partial_text == text[:20] == "".join(pieces)
    assert err.value.reply is not None and err.value.reply.usage.completion_tokens == 5


def test_in_process_a_break_mid_stream_raises_the_same() -> None:
    import respx

    from tooldag.testing import mock_openai

    async def call() -> None:
        with respx.mock(assert_all_called=False) as router:
            mock_openai(router, [Reply("abcdefghijklmnopqrstuvwxyz", break_after=10)])
            llm = LLMClient.from_env(api_key="sk-test", check_model=False)
            await llm.complete("x", on_delta=lambda piece: None)

    with pytest.raises(LLMStreamInterrupted) as err:
        asyncio.run(call())
    assert err.value.partial_text == "abcdefghij"


# ---------------------------------------------------------------------------- replans


async def test_a_streamed_replan_takes_completed_steps_as_they_were_at_once() -> None:
    tools = Tools()
    first = plan_text(
        [fetch_step("f0", 3), {"id": "bad", "tool": "fetch", "args": {"n": "$f0.missing"}}]
    )
    again = plan_text([fetch_step("f0", 3), fetch_step("f5", "$f0.double")], answer="${f5.n}")
    seen = Seen()
    with FakeLLMServer([first, again], chunk_size=8) as server:
        result = await run(server, tools, seen)
    assert result.status is RunStatus.SUCCEEDED and result.answer == "6"
    second_plan = [i for i, e in enumerate(seen.events) if e.type is EventType.PLAN_CREATED][1]
    assert seen.index(EventType.STEP_REUSED, "f0") < second_plan
    assert seen.index(EventType.STEP_STARTED, "f5") < second_plan
    assert tools.calls == Counter({("fetch", 3): 1, ("fetch", 6): 1})


async def test_a_replan_step_may_read_a_completed_step_it_does_not_restate() -> None:
    tools = Tools()
    first = plan_text(
        [fetch_step("f0", 3), {"id": "bad", "tool": "fetch", "args": {"n": "$f0.missing"}}]
    )
    again = plan_text([fetch_step("g", "$f0.double")], answer="${g.n}")
    seen = Seen()
    with FakeLLMServer([first, again], chunk_size=8) as server:
        result = await run(server, tools, seen)
    assert result.status is RunStatus.SUCCEEDED and result.answer == "6"
    second_plan = [i for i, e in enumerate(seen.events) if e.type is EventType.PLAN_CREATED][1]
    assert seen.index(EventType.STEP_STARTED, "g") < second_plan
    assert tools.calls[("fetch", 3)] == 1


# ---------------------------------------------------------------------------- the join


def join_reply(action: str, answer: str | None = None, reason: str | None = None) -> str:
    data = {"thought": "looking at it", "action": action, "answer": answer, "reason": reason}
    return json.dumps(data, ensure_ascii=False)


async def test_the_join_writes_the_answer_and_it_streams_as_it_comes() -> None:
    tools = Tools()
    answer = 'Item 0 doubles to 0, the "smallest" \u2014 \U0001f600 done'
    replies = [plan_text([fetch_step("f0", 0)], answer="llm"), join_reply("finish", answer)]
    pieces: list[str] = []
    seen = Seen()
    with FakeLLMServer(replies, chunk_sizes=(1, 6), seed=5) as server:
        result = await run(server, tools, seen, on_answer=pieces.append)
        join_request = server.requests[1]
    assert result.status is RunStatus.SUCCEEDED and result.answer == answer
    assert "".join(pieces) == answer and len(pieces) > 3
    assert seen.purposes() == ["plan", "join"] and result.usage.calls == 2
    assert join_request["response_format"]["json_schema"]["name"] == "tooldag_join"
    prompt = last_user(join_request)
    assert '<data name="f0 output">' in prompt and "Goal: g" in prompt


async def test_the_join_can_ask_for_another_plan_that_reuses_what_completed() -> None:
    tools = Tools()
    replies = [
        plan_text([fetch_step("f0", 0)], answer=None),  # no template: joined ("auto")
        join_reply("replan", reason="item 1 is needed too"),
        plan_text([fetch_step("f0", 0), fetch_step("f1", 1)], answer=None),
        join_reply("finish", "0 and 2"),
    ]
    seen = Seen()
    with FakeLLMServer(replies) as server:
        result = await run(server, tools, seen, max_replans=1)
        replan_prompt = last_user(server.requests[2])
        last_join = server.requests[3]
    assert result.status is RunStatus.SUCCEEDED and result.answer == "0 and 2"
    assert "do not answer the goal yet" in replan_prompt
    assert "item 1 is needed too" in replan_prompt
    assert tools.calls == Counter({("fetch", 0): 1, ("fetch", 1): 1})
    assert result.steps["f0"].reused
    assert seen.purposes() == ["plan", "join", "replan", "join"]
    # No replan left: the second join may only finish.
    schema = last_join["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["action"]["enum"] == ["finish"]


async def test_join_never_leaves_an_llm_answer_empty_and_calls_nothing() -> None:
    tools = Tools()
    with FakeLLMServer([plan_text([fetch_step("f0", 0)], answer="llm")]) as server:
        result = await run(server, tools, join="never", stream=False)
        requests = len(server.requests)
    assert result.status is RunStatus.SUCCEEDED and result.answer is None
    assert requests == 1


async def test_the_budget_covers_the_join() -> None:
    tools = Tools()
    with FakeLLMServer([plan_text([fetch_step("f0", 0)], answer=None)]) as server:
        result = await run(server, tools, max_llm_calls=1)
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.steps["f0"].status is StepStatus.SUCCEEDED
    assert "budget" in (result.error or "")


async def test_join_always_reasons_even_over_an_answer_template() -> None:
    tools = Tools()
    replies = [plan_text([fetch_step("f0", 4)], answer="${f0.n}"), "It is 4, which is even."]
    with FakeLLMServer(replies) as server:
        result = await run(server, tools, join="always", mode="text", stream=False)
    # A text-mode reply that is no JSON is the answer itself.
    assert result.answer == "It is 4, which is even."


async def test_a_started_step_is_recorded_as_the_plan_streams(tmp_path: Any) -> None:
    """The journal gets the early steps and then the plan, as one run."""
    from tooldag import RunStore

    tools = Tools()
    text = plan_text([fetch_step("f0", 0), fetch_step("f1", 1)], answer="${f1.n}")
    with FakeLLMServer([text], chunk_size=6) as server, RunStore(tmp_path / "r.db") as store:
        seen = Seen()
        result = await run(server, tools, seen, store=store)
        stored = store.load_result(result.run_id)
    assert stored.status is RunStatus.SUCCEEDED and stored.answer == "1"
    assert stored.plan is not None and [s.id for s in stored.plan.steps] == ["f0", "f1"]
    started = [e for e in seen.events if isinstance(e.data, StepStarted)]
    assert len(started) == 2
