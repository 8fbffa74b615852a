"""Reading what an OpenAI-compatible endpoint sends back: completions and streams decoded into one
:class:`Completion`, which failures are worth retrying (and how long the server asked to wait),
and the error messages that say what to fix.

Kept apart from :mod:`tooldag.llm.client`, which holds the client (configuration, output modes, the
retry loop, usage and budgets); nothing here keeps state or talks to the network.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from ..errors import LLMError, LLMResponseError
from ..result import Usage

__all__ = [
    "Completion",
    "ContextOverflow",
    "MODE_REJECTIONS",
    "StreamAccumulator",
    "body_text",
    "context_error",
    "context_overflow",
    "error_text",
    "estimate_tokens",
    "from_completion",
    "is_retryable",
    "names_response_format",
    "rejects_mode",
    "retry_after",
    "status_error",
    "transport_error",
]

# Status codes with which an endpoint says "I do not support this response_format".
MODE_REJECTIONS = frozenset({400, 415, 422})
_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(slots=True)
class Completion:
    """One decoded reply: its text, why it stopped, the usage the endpoint reported (if any)."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    raw: Any


# ------------------------------------------------------------------ retrying


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``retry-after`` seconds or date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, Mapping):
        code = body.get("code") or body.get("type")
        return str(code) if code else None
    return None


def is_retryable(exc: BaseException, max_retry_after: float) -> bool:
    """Transient failures only: connection errors and timeouts, 408/409/429 and 5xx, unless the
    server asks to wait longer than ``max_retry_after`` seconds or the account is out of quota."""
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if not isinstance(exc, openai.APIStatusError):
        return False
    if exc.status_code == 429 and _error_code(exc) == "insufficient_quota":
        return False  # out of credit: waiting will not help
    if names_response_format(exc):
        return False  # a mode the server cannot do: asking again gets the same answer
    if exc.status_code in _RETRY_STATUSES or exc.status_code >= 500:
        wait = retry_after(exc)
        return wait is None or wait <= max_retry_after
    return False


def body_text(exc: openai.APIStatusError) -> str:
    """The error body as text (JSON when the body is structured), for matching."""
    body = exc.body if exc.body is not None else getattr(exc, "message", "")
    return body if isinstance(body, str) else json.dumps(body, default=str)


def names_response_format(exc: openai.APIStatusError, mode: str | None = None) -> bool:
    """A server error whose body is about ``response_format`` (or names ``mode``'s own request
    field): llama-cpp-python answers a ``json_schema`` request with HTTP 500 and a validation
    error naming the field."""
    if exc.status_code < 500:
        return False
    text = body_text(exc)
    return "response_format" in text or (mode is not None and mode in text)


def rejects_mode(exc: openai.APIStatusError, mode: str | None = None) -> bool:
    """The endpoint refused the request's structured-output mode: a 4xx of the kind servers
    answer unknown parameters with, or a 5xx that names ``response_format`` (or ``mode``).
    A prompt too long for the context is no such refusal: another mode would not fit either."""
    if context_overflow(exc) is not None:
        return False
    return exc.status_code in MODE_REJECTIONS or names_response_format(exc, mode)


@dataclass(frozen=True, slots=True)
class ContextOverflow:
    """A server's "the prompt does not fit": the token counts it gave, where it gave them."""

    prompt_tokens: int | None
    context: int | None


# How servers say it: OpenAI, vLLM and llama-cpp-python ("maximum context length is M tokens.
# However, you requested T tokens (N in the messages, ..."), llama-server ("request (N tokens)
# exceeds the available context size (M tokens)", with n_prompt_tokens and n_ctx in the body),
# llama-cpp-python's own wording ("Requested tokens (N) exceed context window of M").
_CONTEXT_WORDS = re.compile(
    r"context[ _]length|maximum context|context size|context window|n_ctx|exceed_context",
    re.IGNORECASE,
)
_CONTEXT_PATTERNS = (
    re.compile(r"maximum context length is (?P<m>\d+)[^(]*\((?P<n>\d+) in the messages"),
    re.compile(r"maximum context length is (?P<m>\d+).*?resulted in (?P<n>\d+) tokens"),
    re.compile(r"request \((?P<n>\d+) tokens\) exceeds the available context size \((?P<m>\d+)"),
    re.compile(r"Requested tokens \((?P<n>\d+)\) exceed context window of (?P<m>\d+)"),
    re.compile(r"maximum context length is (?P<m>\d+)"),
)


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def context_overflow(exc: openai.APIStatusError) -> ContextOverflow | None:
    """The prompt-too-long error of any of the servers above, with its numbers when given."""
    if exc.status_code not in (400, 413, 422, 500):
        return None
    text = body_text(exc)
    if not _CONTEXT_WORDS.search(text):
        return None
    body = exc.body
    error = body.get("error", body) if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and "n_ctx" in error:  # llama-server's own fields
        return ContextOverflow(_number(error.get("n_prompt_tokens")), _number(error.get("n_ctx")))
    for pattern in _CONTEXT_PATTERNS:
        match = pattern.search(text)
        if match is not None:
            found = match.groupdict()
            prompt = int(found["n"]) if found.get("n") else None
            return ContextOverflow(prompt, int(found["m"]))
    if exc.status_code >= 500:
        return None  # a crash that mentions the context is not necessarily this error
    return ContextOverflow(None, None)


# ------------------------------------------------------------------ errors


def error_text(exc: openai.APIError) -> str:
    """The endpoint's own explanation, cut to 300 characters."""
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        text: str = body["message"]
    elif isinstance(body, str):
        text = body
    else:
        text = exc.message
    return text if len(text) <= 300 else text[:297] + "..."


def status_error(
    exc: openai.APIStatusError,
    *,
    mode: str,
    model: str,
    base_url: str,
    max_retry_after: float,
    usage: Usage | None,
    attempts: int,
) -> LLMError:
    """The error to raise for an HTTP error status, saying what to fix."""
    status = exc.status_code
    detail = error_text(exc)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 401:
        fix = "check OPENAI_API_KEY (or the api_key given to the client)"
    elif status == 403:
        fix = f"no access to model {model!r}: check the key's project and permissions"
    elif status == 404:
        fix = (
            f"check TOOLDAG_MODEL (model {model!r}) and OPENAI_BASE_URL ({base_url}; "
            "OpenAI-compatible servers usually end in /v1)"
        )
    elif status == 429 and _error_code(exc) == "insufficient_quota":
        fix = "the account is out of quota: check your plan and billing"
    elif status == 429:
        wait = retry_after(exc)
        fix = (
            f"rate limited{tries}; the server asked to wait {wait:.0f}s"
            if wait is not None and wait > max_retry_after
            else f"rate limited{tries}: wait, lower concurrency or raise the rate limit"
        )
    elif rejects_mode(exc, mode) and mode != "text":
        fix = (
            f"the endpoint rejected the request in output mode {mode}: "
            "use output_mode='auto' (or TOOLDAG_OUTPUT_MODE=auto) to fall back"
        )
    elif status >= 500:
        fix = f"the server is failing{tries}: try again later or use another endpoint"
    else:
        fix = "the endpoint rejected the request"
    return LLMResponseError(
        f"{status} from {base_url}: {fix} ({detail})",
        last_response=str(exc.body) if exc.body is not None else None,
        usage=usage,
        status_code=status,
    )


def context_error(
    overflow: ContextOverflow, *, estimate: int, base_url: str, usage: Usage | None
) -> LLMError:
    """The error for a prompt that does not fit the server's context, saying what to raise."""
    prompt = (
        f"{overflow.prompt_tokens:,} tokens"
        if overflow.prompt_tokens is not None
        else f"about {estimate:,} tokens"
    )
    context = f"{overflow.context:,}" if overflow.context is not None else "smaller"
    return LLMResponseError(
        f"the prompt is {prompt} and the context of the server at {base_url} is {context}: "
        "raise the server's context (llama.cpp -c / --ctx-size, llama-cpp-python --n_ctx, "
        "Ollama num_ctx, vLLM --max-model-len) or use fewer tools (--tools)",
        usage=usage,
        status_code=400,
    )


def transport_error(
    exc: openai.APIError,
    *,
    base_url: str,
    timeout: float | None,
    usage: Usage | None,
    attempts: int,
) -> LLMError:
    """The error to raise when no usable HTTP response came back, saying what to check."""
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    if isinstance(exc, openai.APITimeoutError):
        now = f"now {timeout:g}s" if timeout is not None else "now the client's own timeout"
        message = (
            f"the LLM at {base_url} timed out{tries}: raise TOOLDAG_LLM_TIMEOUT or "
            f"--llm-timeout ({now}; a small model on a CPU may need 300 or more) "
            "or check the server"
        )
    elif isinstance(exc, openai.APIConnectionError):
        message = (
            f"cannot connect to the LLM at {base_url}{tries}: is the server running? "
            "check OPENAI_BASE_URL"
        )
    else:
        message = f"the LLM at {base_url} sent an unusable response: {error_text(exc)}"
    return LLMResponseError(message, usage=usage)


# ------------------------------------------------------------------ decoding


def estimate_tokens(text: str) -> int:
    """A characters/4 estimate, for endpoints that report no usage."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _usage_of(raw: Any) -> Usage | None:
    if raw is None:
        return None
    usage = Usage()
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    total = getattr(raw, "total_tokens", None)
    usage.add(prompt, completion, int(total) if total is not None else None)
    return usage


def from_completion(response: Any) -> Completion:
    """Decode a non-streamed ``ChatCompletion``; a reply with no choices or a refusal raises."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise LLMResponseError(
            "the LLM returned no choices: check that the endpoint speaks the OpenAI "
            "chat-completions protocol",
            last_response=str(response)[:500],
        )
    message = choices[0].message
    refusal = getattr(message, "refusal", None)
    if refusal and not message.content:
        raise LLMResponseError(f"the model refused: {refusal}", last_response=str(refusal))
    return Completion(
        text=message.content or "",
        finish_reason=choices[0].finish_reason,
        usage=_usage_of(getattr(response, "usage", None)),
        raw=response,
    )


class StreamAccumulator:
    """Joins streamed chunks into one completion, passing each piece of text on as it arrives."""

    def __init__(self, on_delta: Callable[[str], None]) -> None:
        self._on_delta = on_delta
        self._parts: list[str] = []
        self._chunks: list[Any] = []
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: Any) -> None:
        self._chunks.append(chunk)
        for choice in chunk.choices or []:
            piece = getattr(choice.delta, "content", None)
            if piece:
                self._parts.append(piece)
                self._on_delta(piece)
            if choice.finish_reason:
                self._finish = choice.finish_reason
        if getattr(chunk, "usage", None) is not None:
            self._usage = _usage_of(chunk.usage)

    @property
    def delivered(self) -> bool:
        """Whether any text was handed on: from then on a retry would repeat it to the reader."""
        return bool(self._parts)

    def result(self) -> Completion:
        return Completion("".join(self._parts), self._finish, self._usage, self._chunks)
