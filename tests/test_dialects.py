"""Every structured-output dialect end to end against the fake server emulating it: the mode
``auto`` ends on and the requests it spends, the endpoint memory across client instances (as across
processes), context-length errors and warnings, timeouts of slow servers, and the LLM settings."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import respx

from tooldag.errors import LLMConfigError, LLMResponseError
from tooldag.llm.client import LLMClient, OutputMode
from tooldag.llm.endpoints import EndpointMemory, is_local_url, memory_path
from tooldag.llm.grammar import BOUND_LIMIT, grammar_schema
from tooldag.llm.probe import probe_endpoint
from tooldag.planning.plan_schema import plan_json_schema
from tooldag.planning.planner import Planner
from tooldag.planning.prompting import system_prompt
from tooldag.registry.loading import load_registry
from tooldag.testing import FakeLLMServer, mock_openai
from tooldag.ui.cli import main

PLAN = {
    "goal": "17 times 3",
    "steps": [{"id": "sum", "tool": "calculate", "args": {"expression": "17 * 3"}}],
    "answer": "${sum.result}",
}
KEY = "sk-dialect-SECRET-42"


@pytest.fixture(autouse=True)
def _fresh_process_memory() -> Iterator[None]:
    LLMClient.forget_working_modes()
    yield
    LLMClient.forget_working_modes()


def new_process() -> None:
    """What a new process forgets: everything but the endpoint memory file."""
    LLMClient.forget_working_modes()


def body_modes(requests: list[dict[str, Any]]) -> list[str]:
    from tooldag.testing.script import request_mode

    return [request_mode(r) for r in requests]


# dialect -> (the mode auto ends on, the request modes spent on the first plan)
LOCAL_DIALECTS = {
    "vllm": ("json_schema", ["json_schema"]),
    "llama-server": ("json_schema", ["json_schema"]),
    "llama-cpp-python": ("json_object_schema", ["json_schema", "json_object_schema"]),
    "ollama": ("json_schema", ["json_schema"]),
    "none": ("text", ["json_schema", "json_object_schema", "json_object", "text"]),
}


@pytest.mark.parametrize("dialect", sorted(LOCAL_DIALECTS))
async def test_auto_finds_each_local_servers_mode_and_the_next_process_starts_there(
    dialect: str,
) -> None:
    ends_on, spent = LOCAL_DIALECTS[dialect]
    registry = load_registry(["calc"])
    # The server that supports nothing answers in prose around the JSON: the lenient parser.
    reply = f"Here is the plan:\n```json\n{json.dumps(PLAN)}\n```" if dialect == "none" else PLAN
    with FakeLLMServer(default=reply, dialect=dialect, context_window=100_000) as server:
        llm = server.client()
        plan = await Planner(registry, llm).plan("17 times 3")
        assert [s.tool for s in plan.steps] == ["calculate"]
        assert body_modes(server.requests) == spent
        assert llm.working_mode is OutputMode(ends_on)

        new_process()
        again = server.client()
        await Planner(registry, again).plan("17 times 3")
        assert body_modes(server.requests[len(spent) :]) == [ends_on]
    # A local server gets the grammar-friendly schema: no required-but-nullable "answer".
    sent = server.requests[0]
    schema = (
        sent["response_format"]["json_schema"]["schema"]
        if "json_schema" in sent.get("response_format", {})
        else None
    )
    if schema is not None:
        assert "answer" not in schema["required"]


async def test_llama_cpp_python_500_naming_response_format_falls_back_without_retrying() -> None:
    with FakeLLMServer(default=PLAN, dialect="llama-cpp-python") as server:
        reply = await server.client(max_attempts=4).complete("plan", schema=PLAN_SCHEMA)
        first = server.requests[0]["response_format"]["type"]
    assert first == "json_schema" and len(server.requests) == 2
    assert reply.mode is OutputMode.JSON_OBJECT_SCHEMA
    sent = server.requests[1]["response_format"]
    assert sent["type"] == "json_object" and sent["schema"]["required"] == ["goal", "steps"]


PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "goal": {"type": "string"},
        "answer": {"type": ["string", "null"]},
        "steps": {"type": "array", "items": {"type": "string"}, "maxItems": 100000},
    },
    "required": ["goal", "answer", "steps"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("dialect", ["openai", "azure"])
async def test_hosted_apis_get_the_strict_schema_in_json_schema_mode(dialect: str) -> None:
    with respx.mock(assert_all_called=False) as router:
        if dialect == "azure":
            base = "https://example.openai.azure.com/openai/deployments/plan-dep"
            sdk = openai.AsyncAzureOpenAI(
                azure_endpoint="https://example.openai.azure.com",
                api_key=KEY,
                api_version="2024-10-21",
            )
            script = mock_openai(router, default=PLAN, base_url=base, dialect=dialect)
            llm = LLMClient(sdk, model="plan-dep")
        else:
            script = mock_openai(router, default=PLAN, dialect=dialect)
            llm = LLMClient.from_env(api_key=KEY, env={})
        reply = await llm.complete("plan", schema=PLAN_SCHEMA)
    assert reply.mode is OutputMode.JSON_SCHEMA and len(script.requests) == 1
    spec = script.requests[0]["response_format"]["json_schema"]
    assert spec["strict"] is True and spec["schema"] == PLAN_SCHEMA


@pytest.mark.parametrize(
    ("mode", "field", "inner"),
    [("structured_outputs", "structured_outputs", "json"), ("guided_json", "guided_json", None)],
)
async def test_vllms_own_fields_are_sent_in_the_body(
    mode: str, field: str, inner: str | None
) -> None:
    with FakeLLMServer(default=PLAN, dialect="vllm") as server:
        reply = await server.client().complete("plan", mode=mode, schema=PLAN_SCHEMA)
    assert reply.mode is OutputMode(mode)
    sent = server.requests[0][field]
    schema = sent[inner] if inner else sent
    assert (
        schema["required"] == ["goal", "steps"] and "maxItems" not in schema["properties"]["steps"]
    )
    assert "response_format" not in server.requests[0]


async def test_openai_refuses_vllms_fields_and_the_error_says_to_use_auto() -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_openai(router, default=PLAN, dialect="openai")
        llm = LLMClient.from_env(api_key=KEY, env={})
        with pytest.raises(LLMResponseError, match="output_mode='auto'"):
            await llm.complete("plan", mode="structured_outputs", schema=PLAN_SCHEMA)


def test_grammar_schema_makes_nullable_fields_optional_and_drops_huge_bounds() -> None:
    registry = load_registry(None)
    strict = plan_json_schema(registry)
    loose = grammar_schema(strict)
    assert strict["required"] == ["goal", "steps", "answer"]
    assert loose["required"] == ["goal", "steps"]
    assert loose["properties"]["answer"]["type"] == "string"

    def nullable_required(node: Any) -> list[str]:
        found: list[str] = []
        if isinstance(node, dict):
            props = node.get("properties", {})
            for name in node.get("required", []):
                sub = props.get(name, {})
                types = sub.get("type")
                if (isinstance(types, list) and "null" in types) or {"type": "null"} in sub.get(
                    "anyOf", []
                ):
                    found.append(name)
            found += [n for v in node.values() for n in nullable_required(v)]
        elif isinstance(node, list):
            found += [n for v in node for n in nullable_required(v)]
        return found

    assert "answer" in nullable_required(strict) and "when" in nullable_required(strict)
    assert nullable_required(loose) == []

    def bounds(node: Any) -> list[int]:
        if isinstance(node, dict):
            found = [
                v
                for k, v in node.items()
                if k.endswith(("Items", "Length", "Properties")) and isinstance(v, int)
            ]
            return found + [b for v in node.values() for b in bounds(v)]
        if isinstance(node, list):
            return [b for v in node for b in bounds(v)]
        return []

    assert all(b <= BOUND_LIMIT for b in bounds(loose))
    assert grammar_schema(PLAN_SCHEMA)["properties"]["steps"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    # A step's `when` (a nullable $ref) is optional and no longer nullable.
    step = loose["properties"]["steps"]["items"]
    variant = step["anyOf"][0] if "anyOf" in step else step
    when = variant["properties"]["when"]
    assert "when" not in variant["required"] and when["$ref"] == "#/$defs/condition"
    assert "anyOf" not in when and "null" not in str(when.get("type"))


async def test_the_mode_is_remembered_in_tooldag_home_privately_and_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_HOME", str(tmp_path / "home"))
    with FakeLLMServer(default=PLAN, dialect="llama-cpp-python") as server:
        url = server.base_url.replace("http://", f"http://user:{KEY}@")
        env = {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": KEY, "TOOLDAG_MODEL": server.model}
        await LLMClient.from_env(env=env).complete("plan", schema=PLAN_SCHEMA)
        new_process()
        second = LLMClient.from_env(env=env)
        assert second.working_mode is OutputMode.JSON_OBJECT_SCHEMA
        await second.complete("plan", schema=PLAN_SCHEMA)
    assert len(server.requests) == 3  # 2 for the first client, 1 for the second
    path = tmp_path / "home" / "endpoints.json"
    assert memory_path() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert KEY not in text and "user" not in text and "127.0.0.1" in text
    entry = json.loads(text)["endpoints"][second.endpoint]
    assert entry["mode"] == "json_object_schema" and entry["model_listed"] is True


async def test_a_remembered_mode_that_is_refused_later_falls_back_and_is_replaced() -> None:
    with FakeLLMServer(default=PLAN, dialect="none") as server:
        llm = server.client()
        EndpointMemory().update(llm.endpoint, mode="json_schema")
        reply = await llm.complete("plan", schema=PLAN_SCHEMA)
    assert reply.mode is OutputMode.TEXT
    assert EndpointMemory().get(llm.endpoint)["mode"] == "text"


async def test_an_unlisted_model_is_warned_about_once_and_remembered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_openai(router, default="ok", model="gpt-4o", dialect="openai")
        caplog.set_level(logging.WARNING, "tooldag.llm")
        llm = LLMClient.from_env(api_key=KEY, env={}, model="gpt-4o-typo")
        await llm.complete("hi")
        await llm.complete("hi")
        new_process()
        await LLMClient.from_env(api_key=KEY, env={}, model="gpt-4o-typo").complete("hi")
        lists = [c for c in router.calls if c.request.method == "GET"]
    warnings = [r.getMessage() for r in caplog.records if "not among the models" in r.getMessage()]
    assert len(warnings) == 1 and "gpt-4o-typo" in warnings[0] and "--model" in warnings[0]
    assert len(lists) == 1  # once per endpoint, across "processes"
    assert EndpointMemory().get(llm.endpoint)["model_listed"] is False


@pytest.mark.parametrize("dialect", ["llama-server", "llama-cpp-python", "vllm"])
async def test_a_context_length_error_says_how_big_and_what_to_raise_not_the_mode(
    dialect: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeLLMServer(default=PLAN, dialect=dialect, context_window=40) as server:
        llm = server.client()
        with pytest.raises(LLMResponseError) as info:
            await llm.complete("x" * 400, schema=PLAN_SCHEMA)
        # No fallback, no retry: another mode cannot fit. (llama-cpp-python first refuses
        # json_schema, as it does any json_schema request.)
        assert len(server.requests) == (2 if dialect == "llama-cpp-python" else 1)
        message = str(info.value)
        assert "the prompt is 100 tokens" in message and "is 40:" in message
        assert "--ctx-size" in message and "num_ctx" in message and "fewer tools" in message
        assert "output mode" not in message and "output_mode" not in message
        # Now the window is known: the next call is warned about before it is sent.
        caplog.set_level(logging.WARNING, "tooldag.llm")
        with pytest.raises(LLMResponseError):
            await llm.complete("y" * 400, schema=PLAN_SCHEMA)
    assert any("context of the server" in r.getMessage() for r in caplog.records)


async def test_a_server_that_stalls_past_the_timeout_is_tried_twice_and_says_what_to_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOOLDAG_LLM_TIMEOUT", "0.2")
    with FakeLLMServer(default=PLAN, stall=30) as server:
        llm = LLMClient.from_env(env={**os.environ, **server.env()}, max_attempts=5)
        with pytest.raises(LLMResponseError) as info:
            await llm.complete("hi")
        assert server.wait_for_requests(2, timeout=5)
        assert len(server.requests) == 2  # one retry, not max_attempts
    message = str(info.value)
    assert "timed out (2 attempts)" in message
    assert "TOOLDAG_LLM_TIMEOUT" in message and "--llm-timeout" in message and "0.2s" in message


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://10.1.2.3/v1", True),
        ("http://192.168.1.20:8080/v1", True),
        ("http://172.20.0.5/v1", True),
        ("http://gpu-box.local:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://172.32.0.1/v1", False),
        ("https://example.com/v1", False),
    ],
)
def test_loopback_and_private_urls_get_the_longer_default_timeout(url: str, local: bool) -> None:
    assert is_local_url(url) is local
    llm = LLMClient.from_env(env={"OPENAI_BASE_URL": url})
    assert llm.timeout == (300 if local else 60)
    assert llm.local is local


async def test_max_tokens_and_temperature_come_from_the_environment_and_arguments_win() -> None:
    env = {"OPENAI_API_KEY": KEY, "TOOLDAG_MAX_TOKENS": "512", "TOOLDAG_TEMPERATURE": "0.3"}
    llm = LLMClient.from_env(env=env)
    assert (llm.max_completion_tokens, llm.temperature) == (512, 0.3)
    llm = LLMClient.from_env(env=env, max_completion_tokens=64, temperature=0)
    assert (llm.max_completion_tokens, llm.temperature) == (64, 0)
    with FakeLLMServer(default="ok") as server:
        local = LLMClient.from_env(env={**server.env(), **env})
        await local.complete("hi")
        await local.complete("hi", temperature=0.9)  # the planner's per-call temperature
    first, second = server.requests
    assert first["max_tokens"] == 512 and "max_completion_tokens" not in first  # Ollama reads this
    assert (first["temperature"], second["temperature"]) == (0.3, 0.9)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TOOLDAG_MAX_TOKENS", "0", "whole number of tokens >= 1"),
        ("TOOLDAG_MAX_TOKENS", "lots", "whole number of tokens >= 1"),
        ("TOOLDAG_TEMPERATURE", "3", "from 0 to 2"),
        ("TOOLDAG_TEMPERATURE", "warm", "from 0 to 2"),
        ("TOOLDAG_LLM_TIMEOUT", "-1", "seconds > 0"),
        ("TOOLDAG_LLM_TIMEOUT", "inf", "seconds > 0"),
    ],
)
def test_bad_settings_are_clear_config_errors(name: str, value: str, says: str) -> None:
    with pytest.raises(LLMConfigError, match=f"{name} must be .*{says}.*not '{value}'"):
        LLMClient.from_env(env={"OPENAI_API_KEY": KEY, name: value})


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--max-tokens", "0", "--max-tokens must be a whole number"),
        ("--temperature", "2.5", "--temperature must be a number from 0 to 2"),
        ("--llm-timeout", "soon", "--llm-timeout must be a number of seconds"),
    ],
)
@pytest.mark.parametrize("command", ["run", "plan", "chat", "doctor"])
def test_bad_llm_options_exit_2_with_one_line(
    command: str, option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    goal = ["a goal"] if command in ("run", "plan") else []
    with pytest.raises(SystemExit) as info:
        main([command, *goal, option, value])
    assert info.value.code == 2
    assert says in capsys.readouterr().err


def test_the_cli_options_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from tooldag.ui.cli import build_parser
    from tooldag.ui.cli.common import llm_from_args

    monkeypatch.setenv("TOOLDAG_MAX_TOKENS", "9")
    args = build_parser().parse_args(
        ["plan", "g", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--llm-timeout",
         "12.5", "--max-tokens", "700", "--temperature", "0.1"]
    )  # fmt: skip
    llm = llm_from_args(args)
    assert (llm.base_url, llm.model, llm.timeout) == ("http://127.0.0.1:9/v1", "m", 12.5)
    assert (llm.max_completion_tokens, llm.temperature) == (700, 0.1)


# ------------------------------------------------------------------ tooldag doctor

DOCTOR = {
    # dialect -> (auto mode, modes refused, context window)
    "openai": ("json_schema", {"json_object_schema"}, None),
    "azure": ("json_schema", {"json_object_schema"}, None),
    "vllm": ("json_schema", set(), 8192),
    "llama-server": ("json_schema", set(), 4096),
    "llama-cpp-python": ("json_object_schema", {"json_schema"}, None),  # it does not say
    "ollama": ("json_schema", set(), 4096),
    "none": ("text", {"json_schema", "json_object_schema", "json_object"}, None),
}


@pytest.mark.parametrize("dialect", sorted(DOCTOR))
async def test_probe_finds_what_each_dialect_supports(dialect: str) -> None:
    auto, refused, window = DOCTOR[dialect]
    prompt = system_prompt(load_registry(["calc"]))
    with FakeLLMServer(default={"ok": True}, dialect=dialect) as server:
        llm = server.client()
        report = await probe_endpoint(llm, system_prompt=prompt)
        new_process()
        again = server.client()
    assert again.working_mode is OutputMode(auto)  # remembered for `auto`
    assert report.auto_mode == auto
    assert {m.mode for m in report.modes if not m.accepted} == refused
    assert report.context_window == window
    assert report.model_listed is True and report.streaming and report.usage_reported
    assert report.prompt_tokens is not None and report.prompt_tokens > 100
    assert report.usable


async def test_probe_reports_a_prompt_that_does_not_fit() -> None:
    prompt = system_prompt(load_registry(None))
    # A context smaller than the all-packs system prompt (about 2,000 tokens).
    fake = FakeLLMServer(default={"ok": True}, dialect="llama-cpp-python", context_window=1024)
    with fake as server:
        report = await probe_endpoint(server.client(), system_prompt=prompt)
    assert report.context_window == 1024 and report.prompt_tokens is not None
    assert report.prompt_tokens > 1024 and report.fits is False and not report.usable
    assert report.prompt_tokens_source == "the server's context-length error"


async def test_probe_of_a_dead_endpoint_says_so() -> None:
    server = FakeLLMServer().start()
    llm = server.client()
    server.stop()
    report = await probe_endpoint(llm)
    assert report.error is not None and "is the server running?" in report.error
    assert not report.usable


def _doctor(
    dialect: str, *extra: str, server_args: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooldag.testing", "--dialect", dialect, *server_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        exported = proc.stdout.readline().split()  # export OPENAI_BASE_URL=... ...
        base_url = exported[1].removeprefix("OPENAI_BASE_URL=")
        done = subprocess.run(
            [sys.executable, "-m", "tooldag", "doctor", "--base-url", base_url, *extra],
            env={**env, "TOOLDAG_MODEL": "fake-model"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return done, base_url


@pytest.mark.slow
@pytest.mark.parametrize("dialect", sorted(DOCTOR))
def test_tooldag_doctor_against_the_fake_server_in_each_dialect(dialect: str) -> None:
    auto, refused, window = DOCTOR[dialect]
    done, base_url = _doctor(dialect, "--tools", "calc", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["base_url"] == base_url and report["auto_mode"] == auto
    assert {m["mode"] for m in report["modes"] if not m["accepted"]} == refused
    assert report["context_window"] == window and report["usable"] is True


@pytest.mark.slow
def test_tooldag_doctor_prints_a_table_and_exits_1_when_the_prompt_does_not_fit() -> None:
    # A context smaller than the all-packs system prompt (about 2,000 tokens).
    done, _ = _doctor("llama-cpp-python", server_args=("--context-window", "1024"))
    assert done.returncode == 1, done.stderr
    out = " ".join(done.stdout.split())
    assert "auto uses json_object_schema" in out
    assert "refused (500:" in out and "DOES NOT FIT" in out and "--ctx-size" in out
