"""The fake OpenAI-compatible server: real sockets on 127.0.0.1, the real protocol (checked with
the openai SDK and raw httpx), scripted replies, errors and rules, recorded requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tooldag.agent import Session
from tooldag.errors import LLMResponseError
from tooldag.llm.client import LLMClient, OutputMode
from tooldag.testing import Disconnect, ErrorReply, FakeLLMServer, Reply, Rule, Stall
from tooldag.testing.command import build_server, parser
from tooldag.testing.replies import item_from_json
from tooldag.testing.script import current_goal, last_user_text

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


def _exported(line: str) -> dict[str, str]:
    """The variables of the ``export A=1 B=2`` line the server prints first."""
    words = shlex.split(line)
    assert words[0] == "export", line
    return dict(word.split("=", 1) for word in words[1:])


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
        env = _exported(proc.stdout.readline())
        assert env["OPENAI_API_KEY"] == "fake-key" and env["TOOLDAG_MODEL"] == "fake-model"
        response = httpx.post(
            f"{env['OPENAI_BASE_URL']}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "weather?"}]},
        )
        assert json.loads(response.json()["choices"][0]["message"]["content"]) == PLAN
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_tooldag_run_gets_through_a_scripted_503_from_the_command_line(tmp_path: Path) -> None:
    # The way a person tries it: start the server, paste its line, run a goal.
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooldag.testing", "--error-on", "weather=503x1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        exported = _exported(proc.stdout.readline())
        notes = "".join(proc.stderr.readline() for _ in range(4))
        assert "first that matches answers:\n  'weather': HTTP 503 to the first 1\n" in notes
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TOOLDAG_"))}
        done = subprocess.run(
            [sys.executable, "-m", "tooldag", "run", "the weather in Oslo", "--tools", "calc"],
            env={**env, **exported, "TOOLDAG_HOME": str(tmp_path), "COLUMNS": "100"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No rule answers this goal" in done.stdout  # the answer after the retry


def test_a_stopped_server_refuses_connections() -> None:
    server = FakeLLMServer(["x"]).start()
    url = f"{server.base_url}/models"
    assert httpx.get(url).json()["data"][0]["id"] == "fake-model"
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def _chat(content: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


async def test_rules_match_the_current_goal_not_the_earlier_goals_of_a_session() -> None:
    weather = {"steps": [], "answer": "sunny"}
    outfit = {"steps": [], "answer": "a coat"}
    with FakeLLMServer(rules={"weather": weather, "outfit": outfit}) as server:
        session = Session(tools="calc", llm=server.client())
        first = await session.arun("What is the weather in Oslo?")
        second = await session.arun("Recommend an outfit for it")  # its prompt shows turn 1
    assert "weather in Oslo" in last_user_text(server.requests[1])
    assert (first.answer, second.answer) == ("sunny", "a coat")


@pytest.mark.parametrize(
    ("content", "goal"),
    [
        ("Goal: the weather\n\nReply with the JSON plan only.", "the weather"),
        ('<data name="turn 1">\nGoal: old\n</data>\n\nGoal: new one\n\nReply.', "new one"),
        ("Goal: two\nlines\n\nReply.", "two\nlines"),
        ("no goal line: all of it", "no goal line: all of it"),
    ],
)
def test_the_current_goal_is_the_goal_line_outside_data_blocks(content: str, goal: str) -> None:
    assert current_goal(_chat(content)) == goal


async def test_a_rule_with_times_answers_that_often_then_leaves_it_to_the_next_rule() -> None:
    rules = [Rule("weather", ErrorReply(503), times=2), Rule("weather", "sunny")]
    with FakeLLMServer(rules=rules) as server:
        reply = await server.client(sleep=NoSleep()).complete("Goal: weather")
    assert reply.text == "sunny" and len(server.requests) == 3


@pytest.mark.parametrize(
    ("value", "item"),
    [
        ({"$error": 503}, ErrorReply(503)),
        (
            {"$error": 429, "message": "slow down", "retry_after": 2},
            ErrorReply(429, "slow down", retry_after=2),
        ),
        ({"$stall": True}, Stall(None)),
        ({"$stall": 30}, Stall(30.0)),
        ({"$disconnect": True}, Disconnect()),
        (PLAN, PLAN),
        ("text", "text"),
    ],
)
def test_reply_files_script_errors_stalls_and_disconnects(value: Any, item: Any) -> None:
    assert item_from_json(value) == item


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"$eror": 503}, r"\$eror: give one of \$error, \$stall, \$disconnect"),
        ({"$error": 200}, "an HTTP status from 400 to 599, not 200"),
        ({"$error": 503, "retry": 1}, "takes message, code, retry_after beside it, not retry"),
        ({"$stall": -1}, r"\$stall is true \(until the client gives up\) or seconds"),
        ({"$disconnect": 1}, r"\$disconnect takes true, not 1"),
    ],
)
def test_a_reply_file_mistake_says_what_to_write(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        item_from_json(value, "rule 'x'")


def test_the_command_line_scripts_errors_and_stalls_before_the_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"weather": PLAN, "down": {"$error": 500}}))
    args = parser().parse_args(
        [
            *("--error-on", "weather=503x2", "--stall-on", "tokyo", "--stall-on", "paris=5"),
            *("--rules", str(rules)),
        ]
    )
    server = build_server(args)
    assert server.rules == [
        Rule("weather", ErrorReply(503, "scripted error 503 (--error-on weather=503x2)"), 2),
        Rule("tokyo", Stall(None)),
        Rule("paris", Stall(5.0)),
        Rule("weather", PLAN),
        Rule("down", ErrorReply(500)),
    ]
    with server:
        url = f"{server.base_url}/chat/completions"
        codes = [httpx.post(url, json=_chat("Goal: weather")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--error-on", "weather"], "give TEXT=STATUS with a status from 400 to 599"),
        (["--error-on", "weather=200"], "give TEXT=STATUS"),
        (["--error-on", "weather=503x0"], "TEXT=STATUSxN to fail only the first N"),
        (["--stall-on", "weather=soon"], "give TEXT .* or TEXT=SECONDS"),
    ],
)
def test_a_command_line_mistake_says_what_to_write(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    assert re.search(message, capsys.readouterr().err)


def test_a_rules_file_mistake_names_the_file_and_the_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"weather": {"$error": "503"}}))
    with pytest.raises(SystemExit, match=r"rules.json: rule 'weather': \$error is an HTTP"):
        build_server(parser().parse_args(["--rules", str(rules)]))


def test_an_unscripted_server_answers_a_probe_and_a_goal() -> None:
    with build_server(parser().parse_args([])) as server:
        url = f"{server.base_url}/chat/completions"
        probe = httpx.post(url, json=_chat('Reply with the JSON object {"ok": true}'))
        goal = httpx.post(url, json=_chat("Goal: the weather\n\nReply."))
    assert json.loads(probe.json()["choices"][0]["message"]["content"]) == {"ok": True}
    plan = json.loads(goal.json()["choices"][0]["message"]["content"])
    assert plan["steps"] == [] and "--rules FILE" in plan["answer"]


def _post_raw(server: FakeLLMServer, content: str) -> socket.socket:
    """A chat-completions request over a bare socket, left waiting for its answer."""
    body = json.dumps(_chat(content)).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}"
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


async def test_a_stall_ends_when_the_client_gives_up() -> None:
    # Ctrl-C in tooldag cancels the call: the stalled request ends with it, on both sides.
    with FakeLLMServer(rules=[Rule("tokyo", Stall(None))]) as server:
        client = server.client(max_attempts=1)
        call = asyncio.ensure_future(client.complete("Goal: the time in Tokyo"))
        assert await asyncio.to_thread(server.wait_for_requests, 1)
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await client.aclose()
        assert await asyncio.to_thread(server.wait_until, lambda: server.stalls == ["client"])


def test_a_stall_ends_when_the_server_stops() -> None:
    server = FakeLLMServer(rules=[Rule("", Stall(None))]).start()
    with contextlib.closing(_post_raw(server, "Goal: anything")) as sock:
        assert server.wait_for_requests(1)
        server.stop()
        assert server.wait_until(lambda: server.stalls == ["stopped"])
        assert sock.recv(100) == b""  # dropped, never answered
