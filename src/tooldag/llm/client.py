"""The LLM client: one chat-completions call, retried where retrying helps, counted, budgeted.

Any OpenAI-compatible endpoint works through the ``openai`` SDK (OpenAI, Azure OpenAI, Ollama, vLLM,
llama.cpp's ``llama-server``, llama-cpp-python). The SDK's own retries are switched off so that
tenacity alone decides: 429 (honouring ``Retry-After``), 5xx and connection errors are retried a
bounded number of times, a timeout once; 400/401/403/404 fail at once with a message that says
what to fix. Structured output is asked for in the best mode the endpoint accepts (``json_schema``
> ``json_object_schema`` > ``json_object`` > ``text``); in ``auto`` mode a rejection of a mode (a
4xx, or a 5xx naming ``response_format``) falls back to the next at once, and the mode that worked
is remembered for that endpoint (base URL + model) across processes
(:mod:`tooldag.llm.endpoints`). The first call to an endpoint checks the model against
``/v1/models`` (a warning if it is not listed) and, when the server's context window is known,
warns before a prompt that will not fit.

>>> llm = LLMClient.from_env()                                  # doctest: +SKIP
>>> reply = await llm.complete([{"role": "user", "content": "hi"}])  # doctest: +SKIP
>>> reply.text, reply.usage.total_tokens                        # doctest: +SKIP

The API key is handed to the SDK client and never kept, logged or shown by tooldag.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ..errors import BudgetExceededError, LLMConfigError, LLMError, LLMStreamInterrupted
from ..result import Usage
from ._responses import (
    Completion,
    StreamAccumulator,
    context_error,
    context_overflow,
    estimate_tokens,
    from_completion,
    is_retryable,
    rejects_mode,
    retry_after,
    status_error,
    transport_error,
)
from .endpoints import EndpointMemory, endpoint_key, is_local_url, redact_url
from .grammar import grammar_schema

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "EXPECTED_REPLY_TOKENS",
    "LLMClient",
    "LLMReply",
    "LOCAL_TIMEOUT",
    "Messages",
    "OutputMode",
    "UsageMeter",
    "context_from_models",
    "max_tokens_setting",
    "model_is_listed",
    "redact_url",
    "temperature_setting",
    "timeout_setting",
]

log = logging.getLogger("tooldag.llm")

DEFAULT_MODEL = "gpt-4o-mini"
_OPENAI_URL = "https://api.openai.com/v1"
# Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the SDK insists on a non-empty one.
_NO_KEY = "not-needed"
DEFAULT_TIMEOUT = 60.0
# A server on one's own machine or network is often a small model on a CPU: a whole plan at a
# few tokens a second takes minutes, not seconds.
LOCAL_TIMEOUT = 300.0
# What a plan reply is expected to need when no max_tokens is set, for the context-window check.
EXPECTED_REPLY_TOKENS = 600


def timeout_setting(value: Any, source: str = "TOOLDAG_LLM_TIMEOUT") -> float:
    """A timeout in seconds (> 0, finite) from text or a number; :class:`LLMConfigError` if not."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if not 0 < number < float("inf"):
        raise LLMConfigError(
            f"{source} must be a number of seconds > 0, such as 300, not {str(value)!r}"
        )
    return number


def max_tokens_setting(value: Any, source: str = "TOOLDAG_MAX_TOKENS") -> int:
    """The most tokens one reply may hold (a whole number >= 1); :class:`LLMConfigError` if not."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise LLMConfigError(
            f"{source} must be a whole number of tokens >= 1, such as 2048, not {str(value)!r}"
        )
    return number


def temperature_setting(value: Any, source: str = "TOOLDAG_TEMPERATURE") -> float:
    """A sampling temperature from 0 to 2; :class:`LLMConfigError` if not."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number <= 2:
        raise LLMConfigError(
            f"{source} must be a number from 0 to 2, such as 0.2, not {str(value)!r}"
        )
    return number


def _timeout_from(environ: Mapping[str, str], url: str) -> float:
    raw = environ.get("TOOLDAG_LLM_TIMEOUT", "").strip()
    if raw:
        return timeout_setting(raw)
    return LOCAL_TIMEOUT if is_local_url(url) else DEFAULT_TIMEOUT


def _credentials_out_of(url: str) -> tuple[str, dict[str, str] | None]:
    """``http://user:KEY@host/v1`` as the URL without its user info and the Basic auth header
    that httpx would have made of it: in a header, the SDK's log filter hides it, whereas its
    debug log prints request URLs whole."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}


Messages = Sequence[Mapping[str, Any]]
Sleep = Callable[[float], Awaitable[None]]

# Several lines, because people read it in a terminal (the CLI prints library errors as they are).
_NOT_CONFIGURED = f"""\
no LLM is configured, so there is nothing to plan with. Set one of:
  OpenAI             OPENAI_API_KEY=sk-...   (model: TOOLDAG_MODEL, default {DEFAULT_MODEL})
  Ollama             OPENAI_BASE_URL=http://localhost:11434/v1 TOOLDAG_MODEL=llama3.1
  vLLM               OPENAI_BASE_URL=http://localhost:8000/v1 TOOLDAG_MODEL=<served model>
  llama.cpp server   OPENAI_BASE_URL=http://localhost:8080/v1 TOOLDAG_MODEL=<any name>
  Azure OpenAI       AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY, OPENAI_API_VERSION and
                     TOOLDAG_MODEL=<deployment>
or pass llm=LLMClient(client=AsyncOpenAI(...)) from Python. No key at hand? `tooldag demo` shows
tooldag at work with scripted LLM answers, offline."""


class OutputMode(StrEnum):
    """How the reply's JSON is asked for. ``auto`` tries the strictest mode the endpoint accepts:
    ``json_schema`` (OpenAI, Azure, vLLM, llama-server, Ollama), then ``json_object_schema``
    (``{"type": "json_object", "schema": ...}``: llama-cpp-python, llama-server), then
    ``json_object``, then ``text``. ``structured_outputs`` and ``guided_json`` are vLLM's own
    request fields (since 0.12, and before it), used only when asked for by name."""

    AUTO = "auto"
    JSON_SCHEMA = "json_schema"
    JSON_OBJECT_SCHEMA = "json_object_schema"
    JSON_OBJECT = "json_object"
    STRUCTURED_OUTPUTS = "structured_outputs"
    GUIDED_JSON = "guided_json"
    TEXT = "text"

    @property
    def uses_schema(self) -> bool:
        """Whether a request in this mode carries the reply's JSON Schema."""
        return self in _SCHEMA_MODES


_SCHEMA_MODES = frozenset(
    {
        OutputMode.JSON_SCHEMA,
        OutputMode.JSON_OBJECT_SCHEMA,
        OutputMode.STRUCTURED_OUTPUTS,
        OutputMode.GUIDED_JSON,
    }
)
_AUTO_ORDER = (
    OutputMode.JSON_SCHEMA,
    OutputMode.JSON_OBJECT_SCHEMA,
    OutputMode.JSON_OBJECT,
    OutputMode.TEXT,
)


@dataclass(frozen=True, slots=True)
class LLMReply:
    """One completed call: the text, its token usage and the output mode that produced it.

    ``usage_estimated`` is true when the endpoint reported no usage and the counts are a
    characters/4 estimate (so that token budgets still bite). ``raw`` is the SDK's
    ``ChatCompletion`` (or the list of streamed chunks).
    """

    text: str
    usage: Usage
    mode: OutputMode
    model: str
    finish_reason: str | None = None
    usage_estimated: bool = False
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass
class UsageMeter:
    """Token usage of one run, summed over every call, with optional budgets.

    Pass the same meter to every :meth:`LLMClient.complete` of a run (re-asks and replans
    included). A call is not started once a budget is spent: :class:`BudgetExceededError`.
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    usage: Usage = field(default_factory=Usage)
    listener: Callable[[LLMReply], None] | None = field(default=None, repr=False, compare=False)
    """Told of each call this meter counted without being passed it (see :meth:`active`)."""

    @contextmanager
    def active(self) -> Iterator[UsageMeter]:
        """Within the block, calls made with no explicit meter count here too: the LLM calls of
        LLM-backed tools belong to the run's usage and budgets."""
        token = _RUN_METER.set(self)
        try:
            yield self
        finally:
            _RUN_METER.reset(token)

    def check(self) -> None:
        """Raise :class:`BudgetExceededError` if no further call fits in the budget."""
        if self.max_calls is not None and self.usage.calls >= self.max_calls:
            raise BudgetExceededError(
                f"LLM call budget spent: {self.usage.calls} of {self.max_calls} calls used "
                "(raise max_llm_calls, or give a simpler goal)",
                usage=self.usage,
            )
        if self.max_tokens is not None and self.usage.total_tokens >= self.max_tokens:
            raise BudgetExceededError(
                f"LLM token budget spent: {self.usage.total_tokens} of {self.max_tokens} tokens "
                "used (raise max_tokens, or give a simpler goal)",
                usage=self.usage,
            )

    def record(self, usage: Usage) -> None:
        self.usage += usage


# The mode that worked, per endpoint (base URL + model), for every client of this process (the
# endpoint memory file keeps it across processes).
_WORKING_MODES: dict[str, OutputMode] = {}
# Endpoints whose model this process checked against /v1/models, or warned about the context of.
_CHECKED: set[str] = set()
_CONTEXT_WARNED: set[str] = set()
# The meter of the run in progress (asyncio tasks and to_thread inherit it).
_RUN_METER: contextvars.ContextVar[UsageMeter | None] = contextvars.ContextVar(
    "tooldag_run_meter", default=None
)


@dataclass(slots=True)
class _Tally:
    attempts: int = 0
    timeouts: int = 0


class LLMClient:
    """A chat-completions client with bounded retries, output modes, usage and budgets.

    ``client`` is an ``AsyncOpenAI``/``OpenAI`` instance (any subclass: Azure too), or a
    zero-argument factory returning an ``AsyncOpenAI``; a factory is called once per event loop,
    because an httpx connection pool cannot outlive the loop it was opened on (each
    ``plan_and_run`` from sync code runs on a fresh loop). Usually built with :meth:`from_env`.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI | openai.OpenAI | Callable[[], openai.AsyncOpenAI],
        *,
        model: str = DEFAULT_MODEL,
        output_mode: OutputMode | str = OutputMode.AUTO,
        timeout: float | None = None,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        max_retry_after: float = 60.0,
        temperature: float | None = None,
        max_completion_tokens: int | None = None,
        sleep: Sleep | None = None,
        check_model: bool = True,
        memory: EndpointMemory | None = None,
    ) -> None:
        if max_attempts < 1:
            raise LLMConfigError("max_attempts must be at least 1")
        self.check_model = check_model
        """Check the model against ``/v1/models`` on the first call to an endpoint."""
        self.memory = memory if memory is not None else EndpointMemory()
        self.model = model
        self.output_mode = OutputMode(output_mode)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.temperature = temperature
        self.max_completion_tokens = max_completion_tokens
        self.usage = Usage()
        """Every call this client ever made (a run's own total is its :class:`UsageMeter`)."""
        self._sleep: Sleep = sleep or asyncio.sleep
        self._factory: Callable[[], openai.AsyncOpenAI] | None = None
        self._fixed: openai.AsyncOpenAI | openai.OpenAI | None = None
        self._unbound: openai.AsyncOpenAI | None = None
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]
        self._per_loop = weakref.WeakKeyDictionary()
        if isinstance(client, openai.AsyncOpenAI | openai.OpenAI):
            # tenacity owns retrying: the SDK's own retries would multiply the attempts.
            self._fixed = client.with_options(max_retries=0)
            sdk: openai.AsyncOpenAI | openai.OpenAI = client
        elif callable(client):
            self._factory = client
            # Built now to learn the base URL; handed to the first event loop that calls.
            try:
                self._unbound = sdk = client()
            except openai.OpenAIError as exc:
                raise LLMConfigError(f"cannot configure the OpenAI client: {exc}") from None
        else:
            raise LLMConfigError(
                f"client must be an AsyncOpenAI or OpenAI instance, not {type(client).__name__}"
            )
        self.base_url = redact_url(str(sdk.base_url).rstrip("/"))
        self.local = is_local_url(self.base_url)
        """A loopback or private-network endpoint: a server of one's own (grammar-based, so it
        gets :func:`~tooldag.llm.grammar.grammar_schema`, and ``max_tokens`` by that name)."""
        # Azure lists models, not deployments: the model check would always warn.
        self._is_azure = isinstance(sdk, openai.AsyncAzureOpenAI | openai.AzureOpenAI)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_env(
        cls,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client: openai.AsyncOpenAI | openai.OpenAI | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> LLMClient:
        """Configure from arguments first, then the environment.

        ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (any OpenAI-compatible server), ``TOOLDAG_MODEL``
        (or ``OPENAI_MODEL``; default ``gpt-4o-mini``), ``TOOLDAG_OUTPUT_MODE`` (see
        :class:`OutputMode`); for Azure OpenAI ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``
        and ``OPENAI_API_VERSION`` with the deployment as the model. ``TOOLDAG_LLM_TIMEOUT`` is
        the seconds one call may take (default 60, 300 for a loopback or private-network URL),
        ``TOOLDAG_MAX_TOKENS`` the most tokens a reply may hold, ``TOOLDAG_TEMPERATURE`` the
        sampling temperature (0-2); arguments win over them. ``env`` replaces ``os.environ``
        (for tests). Raises :class:`LLMConfigError` when nothing is configured or a setting is
        not valid. Other keyword options go to :class:`LLMClient`.
        """
        import os

        environ: Mapping[str, str] = os.environ if env is None else env
        url = base_url or environ.get("OPENAI_BASE_URL") or None
        if timeout is None:
            where = url or environ.get("AZURE_OPENAI_ENDPOINT") or _OPENAI_URL
            timeout = _timeout_from(environ, where)
        else:
            timeout = timeout_setting(timeout, "the LLM timeout")
        raw_limit = environ.get("TOOLDAG_MAX_TOKENS", "").strip()
        if options.get("max_completion_tokens") is None and raw_limit:
            options["max_completion_tokens"] = max_tokens_setting(raw_limit)
        raw_temperature = environ.get("TOOLDAG_TEMPERATURE", "").strip()
        if options.get("temperature") is None and raw_temperature:
            options["temperature"] = temperature_setting(raw_temperature)
        model = model or environ.get("TOOLDAG_MODEL") or environ.get("OPENAI_MODEL") or None
        if "output_mode" not in options and environ.get("TOOLDAG_OUTPUT_MODE"):
            mode = environ["TOOLDAG_OUTPUT_MODE"]
            if mode not in set(OutputMode):
                raise LLMConfigError(
                    f"TOOLDAG_OUTPUT_MODE={mode!r} is not a mode: use one of "
                    + ", ".join(m.value for m in OutputMode)
                )
            options["output_mode"] = mode
        if client is not None:
            return cls(client, model=model or DEFAULT_MODEL, **options)
        key = api_key or environ.get("OPENAI_API_KEY") or None
        azure = environ.get("AZURE_OPENAI_ENDPOINT") or None
        if url is None and azure is not None:
            return cls._azure(azure, api_key, model, environ, timeout, options)
        if key is None and url is None:
            raise LLMConfigError(_NOT_CONFIGURED)
        if url is not None and not url.startswith(("http://", "https://")):
            raise LLMConfigError(
                f"OPENAI_BASE_URL must be an http(s) URL such as http://localhost:11434/v1, "
                f"not {redact_url(url)[:80]!r}"
            )
        secret = key or _NO_KEY
        url, headers = _credentials_out_of(url or _OPENAI_URL)

        def factory() -> openai.AsyncOpenAI:
            return openai.AsyncOpenAI(
                api_key=secret,
                base_url=url,
                default_headers=headers,
                max_retries=0,
                timeout=timeout,
            )

        return cls(factory, model=model or DEFAULT_MODEL, timeout=timeout, **options)

    @classmethod
    def _azure(
        cls,
        endpoint: str,
        api_key: str | None,
        model: str | None,
        environ: Mapping[str, str],
        timeout: float,
        options: dict[str, Any],
    ) -> LLMClient:
        if not model:
            raise LLMConfigError(
                "AZURE_OPENAI_ENDPOINT is set: set TOOLDAG_MODEL to the name of your Azure "
                "deployment (e.g. TOOLDAG_MODEL=gpt-4o-mini)"
            )
        key = api_key or environ.get("AZURE_OPENAI_API_KEY") or environ.get("OPENAI_API_KEY")
        version = environ.get("OPENAI_API_VERSION")
        if not key or not version:
            missing = [
                n
                for n, v in (("AZURE_OPENAI_API_KEY", key), ("OPENAI_API_VERSION", version))
                if not v
            ]
            raise LLMConfigError(
                f"AZURE_OPENAI_ENDPOINT is set but {' and '.join(missing)} is not: set it "
                "(OPENAI_API_VERSION is the Azure OpenAI API version, e.g. 2024-10-21)"
            )

        def factory() -> openai.AsyncOpenAI:
            return openai.AsyncAzureOpenAI(
                azure_endpoint=endpoint,
                api_key=key,
                api_version=version,
                max_retries=0,
                timeout=timeout,
            )

        return cls(factory, model=model, timeout=timeout, **options)

    def __repr__(self) -> str:
        return (
            f"LLMClient(model={self.model!r}, base_url={self.base_url!r}, "
            f"output_mode={self.output_mode.value!r})"
        )

    @property
    def endpoint(self) -> str:
        """What identifies the endpoint for mode memory: the redacted base URL + model."""
        return endpoint_key(self.base_url, self.model)

    @property
    def working_mode(self) -> OutputMode | None:
        """The structured-output mode that ``auto`` found to work for this endpoint, if any
        (found by this process, else remembered in the endpoint memory file)."""
        known = _WORKING_MODES.get(self.endpoint)
        if known is not None:
            return known
        try:
            return OutputMode(str(self.memory.get(self.endpoint).get("mode")))
        except ValueError:
            return None

    def remember_mode(self, mode: OutputMode) -> None:
        """Record that ``mode`` works for this endpoint (``auto`` starts there from now on)."""
        _WORKING_MODES[self.endpoint] = mode
        if self.memory.get(self.endpoint).get("mode") != mode.value:
            self.memory.update(self.endpoint, mode=mode.value)

    @staticmethod
    def forget_working_modes() -> None:
        """Forget, in this process, which output mode each endpoint accepts and which models
        were checked. (The endpoint memory file is kept: ``tooldag doctor`` probes again and
        rewrites an endpoint's entry.)"""
        _WORKING_MODES.clear()
        _CHECKED.clear()
        _CONTEXT_WARNED.clear()

    def _client(self) -> openai.AsyncOpenAI | openai.OpenAI:
        if self._fixed is not None:
            return self._fixed
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            if self._unbound is not None:
                client, self._unbound = self._unbound, None
            else:
                assert self._factory is not None
                client = self._factory()
            self._per_loop[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP connections this client opened on the running loop."""
        if self._fixed is not None:
            return
        client = self._per_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    # ------------------------------------------------------------------ calling

    async def complete(
        self,
        messages: Messages | str,
        *,
        mode: OutputMode | str | None = None,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "plan",
        meter: UsageMeter | None = None,
        on_delta: Callable[[str], None] | None = None,
        temperature: float | None = None,
        max_completion_tokens: int | None = None,
    ) -> LLMReply:
        """One completion. ``messages`` may be a plain string (one user message).

        ``mode`` defaults to ``text`` (``auto`` when a ``schema`` is given). ``on_delta`` streams
        the reply (in any mode) and is called with each piece of text as it arrives; a stream
        that breaks off before any text is retried like any call, one that breaks off later
        raises :class:`LLMStreamInterrupted` (its text was handed on already), and the stream
        is closed when the call ends, also by cancellation. ``meter`` sums the run's
        usage and enforces its budgets (default: the run's meter, if one is active). Raises
        :class:`LLMResponseError` (with what to fix) or :class:`BudgetExceededError`.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if mode is None:
            mode = OutputMode.AUTO if schema is not None else OutputMode.TEXT
        requested = OutputMode(mode)
        if requested.uses_schema and requested is not OutputMode.JSON_OBJECT_SCHEMA and not schema:
            raise LLMConfigError(
                f"output mode {requested.value} needs a schema "
                "(tooldag.planning.plan_schema.plan_json_schema(registry))"
            )
        ambient = meter is None
        meter = meter if meter is not None else _RUN_METER.get()
        if meter is not None:
            meter.check()
        limit = max_completion_tokens or self.max_completion_tokens
        await self._first_contact(messages, limit)
        base = self._request(messages, temperature, limit, on_delta is not None)
        candidates = self._candidates(requested, schema is not None)
        for index, candidate in enumerate(candidates):
            kwargs = {**base, **self.mode_fields(candidate, schema, schema_name)}
            tally = _Tally()
            try:
                completion = await self._call_with_retries(kwargs, on_delta, tally)
            except openai.APIStatusError as exc:
                overflow = context_overflow(exc)
                if overflow is not None:
                    raise self._context_error(overflow, messages, meter) from None
                fallback = candidates[index + 1] if index + 1 < len(candidates) else None
                if fallback is not None and rejects_mode(exc, candidate.value):
                    log.info(
                        "%s rejected output mode %s (%s); falling back to %s",
                        *(self.base_url, candidate.value, exc.status_code, fallback.value),
                    )
                    continue
                raise self._status_error(exc, candidate, meter, tally.attempts) from None
            except openai.APIError as exc:
                raise self._transport_error(exc, meter, tally.attempts) from None
            except LLMStreamInterrupted as exc:
                # The endpoint took the mode and billed what it streamed: both count.
                if requested is OutputMode.AUTO:
                    self.remember_mode(candidate)
                cut = Completion(exc.partial_text, None, None, None)
                exc.reply = self._reply(cut, candidate, messages, meter)
                exc.usage = meter.usage if meter is not None else exc.reply.usage
                raise
            if requested is OutputMode.AUTO:
                self.remember_mode(candidate)
            reply = self._reply(completion, candidate, messages, meter)
            if ambient and meter is not None and meter.listener is not None:
                meter.listener(reply)
            return reply
        raise AssertionError("unreachable: the last candidate mode either returns or raises")

    def mode_fields(
        self, mode: OutputMode, schema: Mapping[str, Any] | None, schema_name: str = "plan"
    ) -> dict[str, Any]:
        """The request fields that ask for ``mode`` (``extra_body`` for vLLM's own fields).

        Strict ``json_schema`` goes to hosted APIs as given; a loopback or private-network
        server, and every grammar-only spelling, gets :func:`grammar_schema` instead."""
        if schema is None or mode in (OutputMode.TEXT, OutputMode.AUTO):
            if mode in (OutputMode.JSON_OBJECT, OutputMode.JSON_OBJECT_SCHEMA):
                return {"response_format": {"type": "json_object"}}
            return {}
        strict = mode is OutputMode.JSON_SCHEMA and not self.local
        shaped = dict(schema) if strict else grammar_schema(schema)
        if mode is OutputMode.JSON_SCHEMA:
            spec = {"name": schema_name, "schema": shaped, "strict": True}
            return {"response_format": {"type": "json_schema", "json_schema": spec}}
        if mode is OutputMode.JSON_OBJECT_SCHEMA:
            return {"response_format": {"type": "json_object", "schema": shaped}}
        if mode is OutputMode.STRUCTURED_OUTPUTS:
            return {"extra_body": {"structured_outputs": {"json": shaped}}}
        if mode is OutputMode.GUIDED_JSON:
            return {"extra_body": {"guided_json": shaped}}
        return {"response_format": {"type": "json_object"}}  # JSON_OBJECT

    def _candidates(self, requested: OutputMode, has_schema: bool) -> list[OutputMode]:
        if requested is not OutputMode.AUTO:
            return [requested]
        order = list(_AUTO_ORDER)
        if not has_schema:
            order = [OutputMode.JSON_OBJECT, OutputMode.TEXT]
        known = self.working_mode
        return order[order.index(known) :] if known in order else order

    # ------------------------------------------------------------------ first contact

    async def _first_contact(self, messages: Messages, limit: int | None) -> None:
        """Once per endpoint and process: check the model name; and before every call, warn if
        the prompt and a reply will not fit a context window known for this endpoint."""
        key = self.endpoint
        if self.check_model and not self._is_azure and key not in _CHECKED:
            _CHECKED.add(key)
            if "models_checked" not in self.memory.get(key):
                await self.check_model_listed()
        if key in _CONTEXT_WARNED:
            return
        window = self.memory.get(key).get("context_window")
        if not isinstance(window, int) or window <= 0:
            return
        prompt = estimate_tokens(json.dumps([dict(m) for m in messages], default=str))
        reply = limit or EXPECTED_REPLY_TOKENS
        if prompt + reply > window:
            _CONTEXT_WARNED.add(key)
            log.warning(
                "the prompt is about %s tokens and a reply needs up to %s more, but the context "
                "of the server at %s is %s tokens: raise the server's context (llama.cpp -c / "
                "--ctx-size, Ollama num_ctx, vLLM --max-model-len) or use fewer tools",
                f"{prompt:,}",
                f"{reply:,}",
                self.base_url,
                f"{window:,}",
            )

    async def list_models(self) -> list[Any]:
        """The endpoint's ``/v1/models`` entries (SDK ``Model`` objects; vLLM adds
        ``max_model_len``). Raises the SDK's errors; one request, a short timeout, no retries."""
        client = self._client().with_options(timeout=min(self.timeout or 10.0, 10.0))
        if isinstance(client, openai.OpenAI):
            sync = client
            return await asyncio.to_thread(lambda: list(sync.models.list().data))
        page = await client.models.list()
        return list(page.data)

    async def check_model_listed(self) -> bool | None:
        """Whether ``/v1/models`` lists this client's model (None: it cannot be told), logged as a
        warning when it does not and remembered for the endpoint. Never raises."""
        try:
            models = await self.list_models()
        except openai.APIStatusError as exc:  # no listing here: nothing to check against
            log.debug("%s/models answered %s: model not checked", self.base_url, exc.status_code)
            self.memory.update(self.endpoint, models_checked=True)
            return None
        except Exception as exc:  # never fatal: the real call reports a dead server better
            log.debug("listing the models of %s failed: %s", self.base_url, exc)
            return None
        listed = model_is_listed(self.model, models)
        fields: dict[str, Any] = {"models_checked": True, "model_listed": listed}
        window = context_from_models(self.model, models)
        if window is not None:
            fields.update(context_window=window, context_source="/v1/models max_model_len")
        self.memory.update(self.endpoint, **fields)
        if listed is False:
            names = ", ".join(str(getattr(m, "id", "?")) for m in models[:8])
            more = f" and {len(models) - 8} more" if len(models) > 8 else ""
            log.warning(
                "model %r is not among the models %s lists (%s%s): check TOOLDAG_MODEL or --model",
                *(self.model, self.base_url, names or "none", more),
            )
        return listed

    def _request(
        self, messages: Messages, temperature: float | None, limit: int | None, stream: bool
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        temperature = temperature if temperature is not None else self.temperature
        if temperature is not None:
            kwargs["temperature"] = temperature
        limit = limit or self.max_completion_tokens
        if limit is not None:
            # OpenAI's reasoning models take only max_completion_tokens; Ollama and
            # llama-cpp-python read only max_tokens (vLLM and llama-server take both).
            kwargs["max_tokens" if self.local else "max_completion_tokens"] = limit
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    def _should_retry(self, exc: BaseException) -> bool:
        return is_retryable(exc, self.max_retry_after)

    def _wait(self) -> Callable[[RetryCallState], float]:
        backoff = wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after(exc) if exc is not None else None
            if asked is not None:
                return min(asked, self.max_retry_after)
            return float(backoff(state))

        return wait

    async def _call_with_retries(
        self, kwargs: dict[str, Any], on_delta: Callable[[str], None] | None, tally: _Tally
    ) -> Completion:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "LLM call to %s failed (attempt %d of %d: %s); retrying in %.2fs",
                self.base_url,
                state.attempt_number,
                self.max_attempts,
                type(exc).__name__,
                state.upcoming_sleep,
            )

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, openai.APITimeoutError):
                # A generation that ran out of time will likely do so again, and the server is
                # probably still busy with the abandoned one: one more try, not max_attempts.
                tally.timeouts += 1
                return tally.timeouts <= 1
            return self._should_retry(exc)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait(),
            retry=retry_if_exception(should_retry),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                tally.attempts = attempt.retry_state.attempt_number
                return await self._call_once(kwargs, on_delta)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _call_once(
        self, kwargs: dict[str, Any], on_delta: Callable[[str], None] | None
    ) -> Completion:
        client = self._client()
        if isinstance(client, openai.OpenAI):  # an injected sync client: off the event loop

            def call() -> Completion:
                response = client.chat.completions.create(**kwargs)
                if on_delta is None:
                    return from_completion(response)
                stream = StreamAccumulator(on_delta)
                try:
                    for chunk in response:
                        stream.feed(chunk)
                except (openai.APIError, httpx.TransportError) as exc:
                    raise self._broken_stream(exc, stream) from None
                finally:
                    response.close()
                return stream.result()

            return await asyncio.to_thread(call)
        response = await client.chat.completions.create(**kwargs)
        if on_delta is None:
            return from_completion(response)
        stream = StreamAccumulator(on_delta)
        try:
            async for chunk in response:
                stream.feed(chunk)
        except (openai.APIError, httpx.TransportError) as exc:
            raise self._broken_stream(exc, stream) from None
        finally:
            # Also when cancelled (Ctrl-C): closing the connection stops the generation, and
            # with it the billing of tokens nobody will read.
            await response.close()
        return stream.result()

    def _broken_stream(self, exc: Exception, stream: StreamAccumulator) -> Exception:
        """What a stream that failed midway raises: before any text, an error the retry loop
        retries (a connection error); after, :class:`LLMStreamInterrupted` with what arrived."""
        if not stream.delivered:
            if isinstance(exc, httpx.TransportError):
                request = httpx.Request("POST", f"{self.base_url}/chat/completions")
                return openai.APIConnectionError(message=str(exc), request=request)
            return exc
        text = stream.result().text
        return LLMStreamInterrupted(
            f"the reply streamed from {self.base_url} broke off after {len(text):,} characters "
            f"({type(exc).__name__}: {exc}): ask again, or go on from what arrived "
            "(partial_text)",
            partial_text=text,
        )

    def _reply(
        self,
        completion: Completion,
        mode: OutputMode,
        messages: Messages,
        meter: UsageMeter | None,
    ) -> LLMReply:
        usage = completion.usage
        estimated = usage is None
        if usage is None:
            prompt = estimate_tokens(json.dumps([dict(m) for m in messages], default=str))
            usage = Usage()
            usage.add(prompt, estimate_tokens(completion.text))
        self.usage += usage
        if meter is not None:
            meter.record(usage)
        return LLMReply(
            text=completion.text,
            usage=usage,
            mode=mode,
            model=self.model,
            finish_reason=completion.finish_reason,
            usage_estimated=estimated,
            raw=completion.raw,
        )

    # ------------------------------------------------------------------ errors

    def _status_error(
        self,
        exc: openai.APIStatusError,
        mode: OutputMode,
        meter: UsageMeter | None,
        attempts: int,
    ) -> LLMError:
        return status_error(
            exc,
            mode=mode.value,
            model=self.model,
            base_url=self.base_url,
            max_retry_after=self.max_retry_after,
            usage=meter.usage if meter is not None else None,
            attempts=attempts,
        )

    def _context_error(
        self, overflow: Any, messages: Messages, meter: UsageMeter | None
    ) -> LLMError:
        if overflow.context is not None:
            self.memory.update(
                self.endpoint, context_window=overflow.context, context_source="context error"
            )
        estimate = estimate_tokens(json.dumps([dict(m) for m in messages], default=str))
        return context_error(
            overflow,
            estimate=estimate,
            base_url=self.base_url,
            usage=meter.usage if meter is not None else None,
        )

    def _transport_error(
        self, exc: openai.APIError, meter: UsageMeter | None, attempts: int
    ) -> LLMError:
        return transport_error(
            exc,
            base_url=self.base_url,
            timeout=self.timeout,
            usage=meter.usage if meter is not None else None,
            attempts=attempts,
        )


def _same_model(name: str, listed: str) -> bool:
    # Ollama lists "llama3.1:latest" for "llama3.1"; llama-server lists a file path.
    return listed == name or listed == f"{name}:latest" or listed.rsplit("/", 1)[-1] == name


def model_is_listed(model: str, models: Sequence[Any]) -> bool | None:
    """Whether ``model`` is among ``models`` (``/v1/models`` entries). None when it cannot be
    told: nothing listed, or one model from a llama.cpp server, which serves it under any name."""
    ids = [str(getattr(m, "id", "")) for m in models]
    if any(_same_model(model, listed) for listed in ids):
        return True
    owners = {str(getattr(m, "owned_by", "")) for m in models}
    if not ids or (len(ids) == 1 and owners & {"llamacpp", "me"}):
        return None
    return False


def context_from_models(model: str, models: Sequence[Any]) -> int | None:
    """The context window ``/v1/models`` gives for ``model`` (vLLM's ``max_model_len``)."""
    for entry in models:
        if _same_model(model, str(getattr(entry, "id", ""))) or len(models) == 1:
            value = getattr(entry, "max_model_len", None)
            if isinstance(value, int) and value > 0:
                return value
    return None
