"""The LLM client: retries only where they help, clear errors, output-mode fallback, usage and
budgets, configuration, and a key that never shows. In-process through respx: no network."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import respx

from tooldag.errors import BudgetExceededError, LLMConfigError, LLMResponseError
from tooldag.llm.client import LLMClient, OutputMode, UsageMeter, redact_url
from tooldag.testing import Disconnect, ErrorReply, Reply, Stall, mock_openai

KEY = "sk-test-SECRET-0123456789"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
    "required": ["steps"],
    "additionalProperties": False,
}


class RecordingSleep:
    """Stands in for asyncio.sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def _fresh_mode_memory() -> Iterator[None]:
    LLMClient.forget_working_modes()
    yield
    LLMClient.forget_working_modes()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def make_client(sleep: RecordingSleep, **options: Any) -> LLMClient:
    return LLMClient.from_env(api_key=KEY, env={}, sleep=sleep, **options)


async def test_complete_returns_text_usage_and_mode(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(
        router, [Reply("hello", usage={"prompt_tokens": 7, "completion_tokens": 3})]
    )
    reply = await make_client(sleep, model="gpt-test").complete("hi")
    assert reply.text == "hello"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        7,
        3,
        10,
    )
    assert reply.usage.calls == 1
    assert reply.mode is OutputMode.TEXT
    body = script.requests[0]
    assert body["model"] == "gpt-test"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "response_format" not in body


async def test_429_is_retried_after_the_servers_retry_after(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(429, "slow down", retry_after=2), "ok"])
    reply = await make_client(sleep).complete("hi")
    assert reply.text == "ok"
    assert len(script.requests) == 2
    assert sleep.waits == [2.0]


async def test_500_repeated_gives_up_after_the_attempt_bound_with_a_clear_error(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(500, "boom")] * 10)
    with pytest.raises(LLMResponseError) as info:
        await make_client(sleep, max_attempts=3).complete("hi")
    assert len(script.requests) == 3
    assert len(sleep.waits) == 2
    assert info.value.status_code == 500
    assert "500" in str(info.value) and "after 3 attempts" in str(info.value)
    assert "try again later" in str(info.value)


async def test_401_fails_at_once_and_says_to_check_the_key(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(401, "Incorrect API key provided")])
    with pytest.raises(LLMResponseError) as info:
        await make_client(sleep).complete("hi")
    assert len(script.requests) == 1
    assert sleep.waits == []
    assert "401" in str(info.value) and "check OPENAI_API_KEY" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("status", "advice"),
    [(403, "permissions"), (404, "check TOOLDAG_MODEL"), (400, "rejected the request")],
)
async def test_client_errors_are_not_retried_and_say_what_to_fix(
    router: respx.MockRouter, sleep: RecordingSleep, status: int, advice: str
) -> None:
    script = mock_openai(router, [ErrorReply(status, "nope")] * 3)
    with pytest.raises(LLMResponseError) as info:
        await make_client(sleep).complete("hi")
    assert len(script.requests) == 1
    assert advice in str(info.value)


async def test_insufficient_quota_429_is_not_retried(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(429, "quota", code="insufficient_quota"), "never"])
    with pytest.raises(LLMResponseError, match="out of quota"):
        await make_client(sleep).complete("hi")
    assert len(script.requests) == 1


async def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    mock_openai(router, [ErrorReply(429, "later", retry_after=3600), "never"])
    with pytest.raises(LLMResponseError, match="asked to wait 3600s"):
        await make_client(sleep, max_retry_after=60).complete("hi")
    assert sleep.waits == []


async def test_timeouts_and_dropped_connections_are_retried(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [Stall(), Disconnect(), "ok"])
    assert (await make_client(sleep).complete("hi")).text == "ok"
    assert len(script.requests) == 3


async def test_an_unreachable_server_is_reported_as_such(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    mock_openai(router, [Disconnect()] * 5)
    with pytest.raises(LLMResponseError, match=r"cannot connect.*check OPENAI_BASE_URL"):
        await make_client(sleep, max_attempts=2).complete("hi")


async def test_auto_mode_falls_back_when_json_schema_is_rejected_and_remembers(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, default='{"steps": []}', reject_modes={"json_schema"})
    client = make_client(sleep)
    first = await client.complete("plan", mode="auto", schema=SCHEMA)
    assert first.mode is OutputMode.JSON_OBJECT_SCHEMA
    assert client.working_mode is OutputMode.JSON_OBJECT_SCHEMA
    second = await make_client(sleep).complete("plan", mode="auto", schema=SCHEMA)
    assert second.mode is OutputMode.JSON_OBJECT_SCHEMA
    modes = [r.get("response_format", {}).get("type") for r in script.requests]
    assert modes == ["json_schema", "json_object", "json_object"]
    assert script.requests[0]["response_format"]["json_schema"]["strict"] is True
    assert script.requests[1]["response_format"]["schema"] == SCHEMA


async def test_auto_mode_falls_back_to_text_when_no_json_mode_is_accepted(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, default="{}", reject_modes={"json_schema", "json_object"})
    reply = await make_client(sleep).complete("plan", mode="auto", schema=SCHEMA)
    assert reply.mode is OutputMode.TEXT
    assert "response_format" not in script.requests[-1]


async def test_an_explicit_mode_is_not_silently_changed(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, default="{}", reject_modes={"json_schema"})
    with pytest.raises(LLMResponseError, match="output_mode='auto'"):
        await make_client(sleep).complete("plan", mode="json_schema", schema=SCHEMA)
    assert len(script.requests) == 1


async def test_usage_is_summed_over_calls_in_the_meter(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    mock_openai(
        router,
        [
            ErrorReply(503),
            Reply("a", usage={"prompt_tokens": 10, "completion_tokens": 2}),
            Reply("b", usage={"prompt_tokens": 20, "completion_tokens": 5}),
        ],
    )
    client = make_client(sleep)
    meter = UsageMeter()
    await client.complete("one", meter=meter)
    await client.complete("two", meter=meter)
    assert meter.usage.to_dict() == {
        "prompt_tokens": 30,
        "completion_tokens": 7,
        "total_tokens": 37,
        "calls": 2,
    }
    assert client.usage.total_tokens == 37


async def test_call_budget_stops_before_the_call(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, default="x")
    meter = UsageMeter(max_calls=1)
    client = make_client(sleep)
    await client.complete("one", meter=meter)
    with pytest.raises(BudgetExceededError, match="1 of 1 calls") as info:
        await client.complete("two", meter=meter)
    assert len(script.requests) == 1
    assert info.value.usage is meter.usage


async def test_token_budget_stops_once_spent(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    mock_openai(router, default=Reply("x", usage={"prompt_tokens": 60, "completion_tokens": 40}))
    meter = UsageMeter(max_tokens=100)
    client = make_client(sleep)
    await client.complete("one", meter=meter)
    with pytest.raises(BudgetExceededError, match="100 of 100 tokens"):
        await client.complete("two", meter=meter)


async def test_missing_usage_is_estimated_and_flagged(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    mock_openai(router, [Reply("x" * 40, usage=False)])
    reply = await make_client(sleep).complete("hello")
    assert reply.usage_estimated
    assert reply.usage.completion_tokens == 10
    assert reply.usage.prompt_tokens > 0


async def test_streaming_passes_pieces_on_and_reads_usage_from_the_last_chunk(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    text = "a streamed reply that spans several chunks"
    script = mock_openai(router, [Reply(text, usage={"prompt_tokens": 4, "completion_tokens": 9})])
    pieces: list[str] = []
    reply = await make_client(sleep).complete("hi", on_delta=pieces.append)
    assert reply.text == text
    assert len(pieces) > 1 and "".join(pieces) == text
    assert reply.usage.total_tokens == 13 and not reply.usage_estimated
    assert script.requests[0]["stream"] is True


async def test_a_refusal_is_an_error_carrying_the_refusal(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    message = {"role": "assistant", "content": None, "refusal": "I cannot help with that."}
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    router.post("https://api.openai.com/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=body)
    )
    with pytest.raises(LLMResponseError, match="refused") as info:
        await make_client(sleep).complete("hi")
    assert info.value.last_response == "I cannot help with that."


async def test_an_injected_client_has_its_sdk_retries_switched_off(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(500)] * 20)
    sdk = openai.AsyncOpenAI(api_key=KEY, max_retries=5)
    client = LLMClient(sdk, model="m", max_attempts=2, sleep=sleep)
    with pytest.raises(LLMResponseError):
        await client.complete("hi")
    assert len(script.requests) == 2


async def test_an_injected_sync_client_works(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    mock_openai(router, [ErrorReply(502), "from a sync client"])
    client = LLMClient.from_env(client=openai.OpenAI(api_key=KEY), env={}, sleep=sleep)
    assert (await client.complete("hi")).text == "from a sync client"


def test_nothing_configured_says_how_to_configure() -> None:
    with pytest.raises(LLMConfigError) as info:
        LLMClient.from_env(env={})
    message = str(info.value)
    for needed in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TOOLDAG_MODEL", "Ollama", "tooldag demo"):
        assert needed in message


def test_environment_configures_a_local_server_without_a_key() -> None:
    env = {"OPENAI_BASE_URL": "http://localhost:11434/v1", "TOOLDAG_MODEL": "llama3.1"}
    client = LLMClient.from_env(env=env)
    assert client.model == "llama3.1"
    assert client.base_url == "http://localhost:11434/v1"
    assert client.output_mode is OutputMode.AUTO


def test_arguments_win_over_the_environment() -> None:
    env = {"OPENAI_API_KEY": KEY, "TOOLDAG_MODEL": "from-env", "TOOLDAG_OUTPUT_MODE": "json_object"}
    client = LLMClient.from_env(env=env, model="from-arg", base_url="http://127.0.0.1:9/v1")
    assert (client.model, client.base_url) == ("from-arg", "http://127.0.0.1:9/v1")
    assert client.output_mode is OutputMode.JSON_OBJECT


def test_a_bad_output_mode_is_a_config_error() -> None:
    with pytest.raises(LLMConfigError, match="TOOLDAG_OUTPUT_MODE"):
        LLMClient.from_env(env={"OPENAI_API_KEY": KEY, "TOOLDAG_OUTPUT_MODE": "yaml"})


def test_azure_needs_a_deployment_and_an_api_version() -> None:
    env = {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "AZURE_OPENAI_API_KEY": KEY}
    with pytest.raises(LLMConfigError, match="deployment"):
        LLMClient.from_env(env=env)
    with pytest.raises(LLMConfigError, match="OPENAI_API_VERSION"):
        LLMClient.from_env(env={**env, "TOOLDAG_MODEL": "dep"})
    client = LLMClient.from_env(
        env={**env, "TOOLDAG_MODEL": "dep", "OPENAI_API_VERSION": "2024-10-21"}
    )
    assert client.model == "dep"
    assert KEY not in repr(client)


async def test_the_key_is_never_shown_in_reprs_errors_or_logs(
    router: respx.MockRouter, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mock_openai(router, [ErrorReply(500), ErrorReply(401, "bad key")])
    client = make_client(sleep)
    with pytest.raises(LLMResponseError) as info:
        await client.complete("hi")
    shown = [repr(client), str(client), str(info.value), repr(info.value), caplog.text]
    assert all(KEY not in text for text in shown)
    assert "retrying" in caplog.text  # the retry was logged, without the key


def test_a_base_url_that_is_not_a_url_is_a_config_error() -> None:
    with pytest.raises(LLMConfigError, match="must be an http"):
        LLMClient.from_env(env={"OPENAI_BASE_URL": "localhost:11434"})


async def test_a_key_inside_openai_base_url_is_never_shown(
    router: respx.MockRouter, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    # httpx sends the user info of http://user:KEY@host as Basic auth: it is a secret.
    mock_openai(router, [ErrorReply(500, "boom")] * 3, base_url="http://127.0.0.1:9/v1")
    env = {"OPENAI_BASE_URL": f"http://me:{KEY}@127.0.0.1:9/v1"}
    client = LLMClient.from_env(env=env, sleep=sleep, max_attempts=2)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LLMResponseError) as info:
        await client.complete("hi")
    shown = [str(info.value), repr(client), client.base_url, client.endpoint, caplog.text]
    assert not [text for text in shown if KEY in text]
    assert "from http://127.0.0.1:9/v1" in str(info.value)
    # The user info still authenticates, as httpx would have sent it.
    auth = router.calls.last.request.headers["authorization"]
    assert auth == "Basic " + base64.b64encode(f"me:{KEY}".encode()).decode()


def test_a_bad_openai_base_url_is_refused_without_echoing_a_key() -> None:
    with pytest.raises(LLMConfigError) as info:
        LLMClient.from_env(env={"OPENAI_BASE_URL": f"{KEY}@localhost:8080/v1"})
    assert KEY not in str(info.value) and "***@localhost:8080/v1" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://localhost:8080/v1", "http://localhost:8080/v1"),
        (f"https://{KEY}@gw.example/v1", "https://***@gw.example/v1"),
        (
            f"https://gw.example/v1?api-key={KEY}&api-version=2",
            "https://gw.example/v1?api-key=***&api-version=2",
        ),
        (f"https://gw.example/v1?token={KEY}", "https://gw.example/v1?token=***"),
    ],
)
def test_redact_url_hides_user_info_and_credential_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# llama-cpp-python's server answers response_format json_schema with this, as an HTTP 500.
LLAMA_CPP_PYTHON_500 = (
    "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\"}"
)


async def test_auto_falls_back_at_once_on_a_500_that_names_response_format(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(500, LLAMA_CPP_PYTHON_500), '{"steps": []}'])
    client = make_client(sleep, max_attempts=4)
    reply = await client.complete("plan", mode="auto", schema=SCHEMA)
    assert reply.mode is OutputMode.JSON_OBJECT_SCHEMA
    assert client.working_mode is OutputMode.JSON_OBJECT_SCHEMA
    modes = [r.get("response_format", {}).get("type") for r in script.requests]
    assert modes == ["json_schema", "json_object"]  # no retry spent on the refused mode
    assert sleep.waits == []


async def test_an_explicit_mode_refused_with_a_500_says_to_use_auto(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [ErrorReply(500, LLAMA_CPP_PYTHON_500)] * 4)
    with pytest.raises(LLMResponseError, match="output_mode='auto'"):
        await make_client(sleep, max_attempts=4).complete("p", mode="json_schema", schema=SCHEMA)
    assert len(script.requests) == 1


async def test_a_timed_out_generation_is_retried_once_not_max_attempts_times(
    router: respx.MockRouter, sleep: RecordingSleep
) -> None:
    script = mock_openai(router, [Stall(), Stall(), "never sent"])
    with pytest.raises(LLMResponseError, match=r"timed out \(2 attempts\).*TOOLDAG_LLM_TIMEOUT"):
        await make_client(sleep, max_attempts=5).complete("hi")
    assert len(script.requests) == 2


def test_the_llm_timeout_comes_from_tooldag_llm_timeout() -> None:
    env = {"OPENAI_API_KEY": KEY, "TOOLDAG_LLM_TIMEOUT": "300"}
    assert LLMClient.from_env(env=env).timeout == 300
    assert LLMClient.from_env(env=env, timeout=5).timeout == 5  # an argument wins
    assert LLMClient.from_env(env={"OPENAI_API_KEY": KEY}).timeout == 60
    with pytest.raises(LLMConfigError, match="TOOLDAG_LLM_TIMEOUT must be a number of seconds"):
        LLMClient.from_env(env={**env, "TOOLDAG_LLM_TIMEOUT": "soon"})
