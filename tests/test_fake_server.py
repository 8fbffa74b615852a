"""The fake OpenAI-compatible server: real sockets on 127.0.0.1, the real protocol (checked with
the openai SDK and raw httpx), scripted replies, errors and rules, recorded requests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tooldag.errors import LLMResponseError
from tooldag.llm.client import LLMClient, OutputMode
from tooldag.testing import Disconnect, ErrorReply, FakeLLMServer, Reply

PLAN = {
    "goal": "weather",
    "steps": [{"id": "w", "tool": "get_weather", "args": {"location": "Oslo"}}],
}


class NoSleep:
    """Records the waits a retrying client asks for, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def _fresh_mode_memory() -> None:
    LLMClient.forget_working_modes()


def test_the_openai_sdk_reads_a_scripted_completion_with_usage() -> None:
    with FakeLLMServer(
        [Reply("hello", usage={"prompt_tokens": 3, "completion_tokens": 1})]
    ) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="fake-key", max_retries=0)
        completion = sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "hello"
    assert completion.usage is not None and completion.usage.total_tokens == 4
    assert completion.model == "m"


def test_streamed_replies_are_server_sent_events_ending_with_usage_and_done() -> None:
    with FakeLLMServer(["abcdefghijklmnopqrstuvwxyz"], chunk_size=10) as server:
        response = httpx.post(
            f"{server.base_url}/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    assert response.headers["content-type"] == "text/event-stream"
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "abcdefghijklmnopqrstuvwxyz"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7


async def test_llm_client_streams_from_the_server() -> None:
    with FakeLLMServer([Reply("streamed over a real socket")], chunk_size=5) as server:
        pieces: list[str] = []
        reply = await server.client().complete("hi", on_delta=pieces.append)
    assert reply.text == "streamed over a real socket"
    assert len(pieces) == 6
    assert not reply.usage_estimated


def test_scripted_errors_carry_status_body_and_retry_after() -> None:
    with FakeLLMServer([ErrorReply(429, "slow down", retry_after=1.5), ErrorReply(500)]) as server:
        url = f"{server.base_url}/chat/completions"
        first = httpx.post(url, json={"model": "m", "messages": []})
        second = httpx.post(url, json={"model": "m", "messages": []})
    assert first.status_code == 429
    assert first.headers["retry-after"] == "1.5"
    assert first.json()["error"]["message"] == "slow down"
    assert second.status_code == 500


async def test_the_client_retries_through_scripted_failures() -> None:
    script = [ErrorReply(429, retry_after=0), ErrorReply(503), Disconnect(), "finally"]
    with FakeLLMServer(script) as server:
        reply = await server.client(sleep=NoSleep()).complete("hi")
        assert len(server.requests) == 4
    assert reply.text == "finally"


async def test_rules_answer_by_goal_and_exhaustion_is_a_clear_error() -> None:
    with FakeLLMServer(rules={"weather": PLAN}) as server:
        client = server.client(sleep=NoSleep())
        reply = await client.complete("Goal: the WEATHER in Oslo")
        assert json.loads(reply.text) == PLAN
        with pytest.raises(LLMResponseError, match="no reply for request #2"):
            await client.complete("Goal: something else")


async def test_reject_modes_answers_400_to_that_response_format() -> None:
    with FakeLLMServer(default=PLAN, reject_modes={"json_schema"}) as server:
        reply = await server.client().complete("plan", schema={"type": "object"})
        modes = [r.get("response_format", {}).get("type") for r in server.requests]
    assert reply.mode is OutputMode.JSON_OBJECT_SCHEMA
    assert modes == ["json_schema", "json_object"]


def test_requests_and_headers_are_recorded() -> None:
    with FakeLLMServer(["a"]) as server:
        openai.OpenAI(base_url=server.base_url, api_key="fake-key").chat.completions.create(
            model="m",
            messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        )
        assert server.requests[0]["messages"][1] == {"role": "user", "content": "u"}
        assert server.request_headers[0]["authorization"] == "Bearer fake-key"


def test_one_client_works_across_event_loops() -> None:
    # Each sync plan_and_run runs on a fresh loop; pooled connections must not leak across them.
    # (A client shared across loops fails its first attempt on the second loop; no retry here.)
    sleep = NoSleep()
    with FakeLLMServer(default="again") as server:
        client = server.client(sleep=sleep)
        assert asyncio.run(client.complete("one")).text == "again"
        assert asyncio.run(client.complete("two")).text == "again"
    assert sleep.waits == []


@pytest.mark.slow
def test_a_subprocess_configured_by_env_reaches_the_server() -> None:
    code = (
        "import asyncio\n"
        "from tooldag.llm.client import LLMClient\n"
        "print(asyncio.run(LLMClient.from_env().complete('what is the weather')).text)\n"
    )
    with FakeLLMServer(rules={"weather": "sunny"}) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TOOLDAG_"))}
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, **server.env()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert server.wait_for_requests(1, timeout=1)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sunny"


@pytest.mark.slow
def test_the_server_can_run_on_its_own(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"weather": PLAN}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooldag.testing", "--rules", str(rules)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        response = httpx.post(
            f"{base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "weather?"}]},
        )
        assert json.loads(response.json()["choices"][0]["message"]["content"]) == PLAN
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_stopped_server_refuses_connections() -> None:
    server = FakeLLMServer(["x"]).start()
    url = f"{server.base_url}/models"
    assert httpx.get(url).json()["data"][0]["id"] == "fake-model"
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
