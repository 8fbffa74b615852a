"""The LLM client: one chat-completions call, retried where retrying helps, counted, budgeted.

Any OpenAI-compatible endpoint works through the ``openai`` SDK (OpenAI, Azure OpenAI, Ollama, vLLM,
a llama.cpp server). The SDK's own retries are switched off so that tenacity alone decides: 429
(honouring ``Retry-After``), 5xx, timeouts and connection errors are retried a bounded number of
times; 400/401/403/404 fail at once with a message that says what to fix. Structured output is
asked for in the best mode the endpoint accepts (``json_schema`` > ``json_object`` > ``text``);
in ``auto`` mode a 4xx rejection of a mode falls back to the next and the mode that worked is
remembered for that endpoint (base URL + model) for the rest of the process.

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
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ..errors import BudgetExceededError, LLMConfigError, LLMError
from ..result import Usage
from ._responses import (
    Completion,
    StreamAccumulator,
    estimate_tokens,
    from_completion,
    is_retryable,
    rejects_mode,
    retry_after,
    status_error,
    transport_error,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "LLMClient",
    "LLMReply",
    "Messages",
    "OutputMode",
    "UsageMeter",
    "redact_url",
]

log = logging.getLogger("tooldag.llm")

DEFAULT_MODEL = "gpt-4o-mini"
_OPENAI_URL = "https://api.openai.com/v1"
# Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the SDK insists on a non-empty one.
_NO_KEY = "not-needed"
# Query parameters that carry credentials on some gateways (``?api-key=...``, ``?token=...``).
_SECRET_PARAMS = ("key", "token", "secret", "password", "auth", "sig")


def redact_url(url: str) -> str:
    """``url`` fit to show: a user name and password (``http://user:KEY@host/v1``, which httpx
    sends as Basic auth) and credential-like query values become ``***``.

    >>> redact_url("http://me:sk-123@localhost:8080/v1?api-key=abc&v=1")
    'http://***@localhost:8080/v1?api-key=***&v=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    if not parts.netloc and "@" in url:  # no scheme: whatever stands before "@" may be a key
        return "***@" + url.rpartition("@")[2]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if any(s in k.lower() for s in _SECRET_PARAMS) else v) for k, v in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


DEFAULT_TIMEOUT = 60.0


def _timeout_from(environ: Mapping[str, str]) -> float:
    raw = environ.get("TOOLDAG_LLM_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise LLMConfigError(
            f"TOOLDAG_LLM_TIMEOUT must be a number of seconds > 0, such as 300, not {raw!r}"
        )
    return value


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
    """How the reply's JSON is asked for. ``auto`` tries the strictest mode the endpoint accepts."""

    AUTO = "auto"
    JSON_SCHEMA = "json_schema"
    JSON_OBJECT = "json_object"
    TEXT = "text"


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


# The mode that worked, per endpoint (base URL + model), for every client of this process.
_WORKING_MODES: dict[str, OutputMode] = {}
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
    ) -> None:
        if max_attempts < 1:
            raise LLMConfigError("max_attempts must be at least 1")
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
            self.base_url = redact_url(str(client.base_url).rstrip("/"))
        elif callable(client):
            self._factory = client
            # Built now to learn the base URL; handed to the first event loop that calls.
            try:
                self._unbound = client()
            except openai.OpenAIError as exc:
                raise LLMConfigError(f"cannot configure the OpenAI client: {exc}") from None
            self.base_url = redact_url(str(self._unbound.base_url).rstrip("/"))
        else:
            raise LLMConfigError(
                f"client must be an AsyncOpenAI or OpenAI instance, not {type(client).__name__}"
            )

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
        (or ``OPENAI_MODEL``; default ``gpt-4o-mini``), ``TOOLDAG_OUTPUT_MODE`` (``auto``,
        ``json_schema``, ``json_object``, ``text``); for Azure OpenAI ``AZURE_OPENAI_ENDPOINT``,
        ``AZURE_OPENAI_API_KEY`` and ``OPENAI_API_VERSION`` with the deployment as the model.
        ``TOOLDAG_LLM_TIMEOUT`` is the seconds one call may take (default 60; raise it for a slow
        local model). ``env`` replaces ``os.environ`` (for tests). Raises :class:`LLMConfigError`
        when nothing is configured. Other keyword options go to :class:`LLMClient`.
        """
        import os

        environ: Mapping[str, str] = os.environ if env is None else env
        if timeout is None:
            timeout = _timeout_from(environ)
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
        url = base_url or environ.get("OPENAI_BASE_URL") or None
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
        """What identifies the endpoint for mode memory: base URL + model."""
        return f"{self.base_url} {self.model}"

    @property
    def working_mode(self) -> OutputMode | None:
        """The structured-output mode that ``auto`` found to work for this endpoint, if any."""
        return _WORKING_MODES.get(self.endpoint)

    @staticmethod
    def forget_working_modes() -> None:
        """Forget which output mode each endpoint accepts (``auto`` probes again)."""
        _WORKING_MODES.clear()

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
        the reply and is called with each piece of text as it arrives. ``meter`` sums the run's
        usage and enforces its budgets (default: the run's meter, if one is active). Raises
        :class:`LLMResponseError` (with what to fix) or :class:`BudgetExceededError`.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if mode is None:
            mode = OutputMode.AUTO if schema is not None else OutputMode.TEXT
        requested = OutputMode(mode)
        if requested is OutputMode.JSON_SCHEMA and schema is None:
            raise LLMConfigError(
                "output mode json_schema needs a schema "
                "(tooldag.planning.plan_schema.plan_json_schema(registry))"
            )
        ambient = meter is None
        meter = meter if meter is not None else _RUN_METER.get()
        if meter is not None:
            meter.check()
        base = self._request(messages, temperature, max_completion_tokens, on_delta is not None)
        candidates = self._candidates(requested, schema is not None)
        for index, candidate in enumerate(candidates):
            kwargs = dict(base)
            if candidate is OutputMode.JSON_SCHEMA:
                spec = {"name": schema_name, "schema": dict(schema or {}), "strict": True}
                kwargs["response_format"] = {"type": "json_schema", "json_schema": spec}
            elif candidate is OutputMode.JSON_OBJECT:
                kwargs["response_format"] = {"type": "json_object"}
            tally = _Tally()
            try:
                completion = await self._call_with_retries(kwargs, on_delta, tally)
            except openai.APIStatusError as exc:
                fallback = candidates[index + 1] if index + 1 < len(candidates) else None
                if fallback is not None and rejects_mode(exc):
                    log.info(
                        "%s rejected response_format %s (%s); falling back to %s",
                        *(self.base_url, candidate.value, exc.status_code, fallback.value),
                    )
                    continue
                raise self._status_error(exc, candidate, meter, tally.attempts) from None
            except openai.APIError as exc:
                raise self._transport_error(exc, meter, tally.attempts) from None
            if requested is OutputMode.AUTO:
                _WORKING_MODES[self.endpoint] = candidate
            reply = self._reply(completion, candidate, messages, meter)
            if ambient and meter is not None and meter.listener is not None:
                meter.listener(reply)
            return reply
        raise AssertionError("unreachable: the last candidate mode either returns or raises")

    def _candidates(self, requested: OutputMode, has_schema: bool) -> list[OutputMode]:
        if requested is not OutputMode.AUTO:
            return [requested]
        order = [OutputMode.JSON_SCHEMA, OutputMode.JSON_OBJECT, OutputMode.TEXT]
        if not has_schema:
            order.remove(OutputMode.JSON_SCHEMA)
        known = _WORKING_MODES.get(self.endpoint)
        return order[order.index(known) :] if known in order else order

    def _request(
        self, messages: Messages, temperature: float | None, limit: int | None, stream: bool
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        temperature = temperature if temperature is not None else self.temperature
        if temperature is not None:
            kwargs["temperature"] = temperature
        limit = limit or self.max_completion_tokens
        if limit is not None:
            kwargs["max_completion_tokens"] = limit
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
                for chunk in response:
                    stream.feed(chunk)
                return stream.result()

            return await asyncio.to_thread(call)
        response = await client.chat.completions.create(**kwargs)
        if on_delta is None:
            return from_completion(response)
        stream = StreamAccumulator(on_delta)
        async for chunk in response:
            stream.feed(chunk)
        return stream.result()

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
