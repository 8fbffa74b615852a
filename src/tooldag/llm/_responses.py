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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from ..errors import LLMError, LLMResponseError
from ..result import Usage

__all__ = [
    "Completion",
    "MODE_REJECTIONS",
    "StreamAccumulator",
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


def names_response_format(exc: openai.APIStatusError) -> bool:
    """A server error whose body is about ``response_format``: llama-cpp-python answers a
    ``json_schema`` request with HTTP 500 and a validation error naming the field."""
    if exc.status_code < 500:
        return False
    body = exc.body if exc.body is not None else getattr(exc, "message", "")
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return "response_format" in text


def rejects_mode(exc: openai.APIStatusError) -> bool:
    """The endpoint refused the request's structured-output mode: a 4xx of the kind servers
    answer unknown parameters with, or a 5xx that names ``response_format``."""
    return exc.status_code in MODE_REJECTIONS or names_response_format(exc)


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
    elif rejects_mode(exc) and mode != "text":
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
        message = (
            f"the LLM at {base_url} timed out{tries}: raise TOOLDAG_LLM_TIMEOUT "
            f"(now {timeout}s; a slow local model may need 300) or check the server"
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

    def result(self) -> Completion:
        return Completion("".join(self._parts), self._finish, self._usage, self._chunks)
