"""The script a fake OpenAI endpoint plays: replies, errors and rules, shared by the HTTP server
and the respx helper so both speak exactly the same chat-completions protocol.

A script item is the text of a reply (``str``; a ``dict``/``list`` is sent as JSON), a
:class:`Reply` (text plus usage or finish reason), an :class:`ErrorReply` (a status code, with
``Retry-After`` if asked), :class:`Disconnect` (the connection drops), or a callable that receives
the request body and returns an item. Scripted items are played in order, one per request; when
they run out, the first :class:`Rule` whose text occurs in the last user message answers, then
``default``. ``reject_modes`` makes every request with that ``response_format`` type fail with
400, as an endpoint without structured-output support does.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "Disconnect",
    "ErrorReply",
    "FakeResponse",
    "Reply",
    "Rule",
    "ScriptItem",
    "ScriptedLLM",
    "Stall",
]

# Fixed so that recorded responses are byte-for-byte reproducible.
_CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class Reply:
    """A completion. ``content`` that is a dict, a list or a ``Plan`` is sent as its JSON text.

    ``usage`` overrides the computed counts (``{"prompt_tokens": 10, "completion_tokens": 5}``);
    ``usage=False`` sends no usage at all, as some local servers do.
    """

    content: Any
    usage: Mapping[str, int] | bool | None = None
    finish_reason: str = "stop"

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        to_json = getattr(self.content, "to_json", None)  # a Plan
        data = to_json() if callable(to_json) else self.content
        return json.dumps(data, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error status with an OpenAI-shaped error body."""

    status: int
    message: str = ""
    code: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        message = self.message or f"scripted error {self.status}"
        return {"error": {"message": message, "type": kind, "param": None, "code": self.code}}


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Drop the connection without answering (the client sees a connection error)."""


@dataclass(frozen=True, slots=True)
class Stall:
    """Never answer: the client times out. (The HTTP server holds the connection until it stops
    or ``seconds`` pass; the respx helper raises ``httpx.ReadTimeout`` at once.)"""

    seconds: float = 30.0


ScriptItem: TypeAlias = (
    str
    | Mapping[str, Any]
    | list[Any]
    | Reply
    | ErrorReply
    | Disconnect
    | Stall
    | Callable[[dict[str, Any]], Any]
)


@dataclass(frozen=True, slots=True)
class Rule:
    """Answer with ``reply`` when the last user message contains ``contains`` (case-insensitive)."""

    contains: str
    reply: ScriptItem


@dataclass(frozen=True, slots=True)
class FakeResponse:
    """What to send back: a status, headers and body, or a ``fault`` (a Disconnect or Stall)."""

    status: int
    headers: dict[str, str]
    body: bytes
    fault: Disconnect | Stall | None = None


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


class ScriptedLLM:
    """Turns chat-completions request bodies into scripted responses, and records the requests.

    Thread-safe: the HTTP server answers from its own threads.
    """

    def __init__(
        self,
        replies: Iterable[ScriptItem] = (),
        *,
        rules: Iterable[Rule] | Mapping[str, ScriptItem] = (),
        default: ScriptItem | None = None,
        reject_modes: Iterable[str] = (),
        model: str = "fake-model",
        chunk_size: int = 16,
    ) -> None:
        self._queue: deque[ScriptItem] = deque(replies)
        if isinstance(rules, Mapping):
            rules = [Rule(text, reply) for text, reply in rules.items()]
        self.rules: list[Rule] = list(rules)
        self.default = default
        self.reject_modes = frozenset(reject_modes)
        self.model = model
        self.chunk_size = max(1, chunk_size)
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order (rejected ones included)."""
        self._changed = threading.Condition()

    def add(self, *items: ScriptItem) -> None:
        """Append items to the script."""
        with self._changed:
            self._queue.extend(items)

    @property
    def pending(self) -> int:
        """Scripted items not played yet."""
        with self._changed:
            return len(self._queue)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` requests arrived (for subprocess tests); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    def respond(self, body: dict[str, Any]) -> FakeResponse:
        """The response to one chat-completions request body."""
        with self._changed:
            self.requests.append(body)
            index = len(self.requests)
            self._changed.notify_all()
            fmt = body.get("response_format")
            mode = fmt.get("type") if isinstance(fmt, Mapping) else None
            if mode in self.reject_modes:
                return _error(
                    ErrorReply(
                        400,
                        f"response_format {mode} is not supported by this model",
                        code="unsupported_response_format",
                    )
                )
            item = self._next_item(body)
        while callable(item) and not isinstance(
            item, type | Reply | ErrorReply | Disconnect | Stall
        ):
            item = item(body)
        if item is None:
            return _error(
                ErrorReply(
                    400,
                    f"FakeLLMServer has no reply for request #{index}: script more replies, "
                    "add a rule or set a default",
                    code="script_exhausted",
                )
            )
        if isinstance(item, ErrorReply):
            return _error(item)
        if isinstance(item, Disconnect | Stall):
            return FakeResponse(0, {}, b"", fault=item)
        reply = item if isinstance(item, Reply) else Reply(item)
        return self._completion(body, reply)

    def _next_item(self, body: Mapping[str, Any]) -> Any:
        if self._queue:
            return self._queue.popleft()
        text = _last_user_text(body).lower()
        for rule in self.rules:
            if rule.contains.lower() in text:
                return rule.reply
        return self.default

    def _usage(self, body: Mapping[str, Any], reply: Reply, text: str) -> dict[str, int] | None:
        if reply.usage is False:
            return None
        if isinstance(reply.usage, Mapping):
            prompt = int(reply.usage.get("prompt_tokens", 0))
            completion = int(reply.usage.get("completion_tokens", 0))
        else:
            prompt_text = "".join(
                _content_text(m.get("content"))
                for m in body.get("messages") or []
                if isinstance(m, Mapping)
            )
            prompt, completion = _tokens(prompt_text), _tokens(text)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: Mapping[str, Any], reply: Reply) -> FakeResponse:
        text = reply.text
        usage = self._usage(body, reply, text)
        model = str(body.get("model") or self.model)
        ident = f"chatcmpl-fake-{len(self.requests)}"
        if body.get("stream"):
            options = body.get("stream_options")
            with_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
            return self._stream(ident, model, reply, text, usage if with_usage else None)
        payload: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if usage is not None:
            payload["usage"] = usage
        return FakeResponse(
            200, {"content-type": "application/json"}, json.dumps(payload).encode("utf-8")
        )

    def _stream(
        self, ident: str, model: str, reply: Reply, text: str, usage: dict[str, int] | None
    ) -> FakeResponse:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(data).encode("utf-8") + b"\n\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "finish_reason": finish}]

        events = [chunk(delta({"role": "assistant", "content": ""}))]
        for start in range(0, len(text), self.chunk_size):
            events.append(chunk(delta({"content": text[start : start + self.chunk_size]})))
        events.append(chunk(delta({}, reply.finish_reason)))
        if usage is not None:
            events.append(chunk([], usage=usage))
        events.append(b"data: [DONE]\n\n")
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        return FakeResponse(200, headers, b"".join(events))


def _error(item: ErrorReply) -> FakeResponse:
    headers = {"content-type": "application/json", **dict(item.headers)}
    if item.retry_after is not None:
        headers["retry-after"] = f"{item.retry_after:g}"
    return FakeResponse(item.status, headers, json.dumps(item.body()).encode("utf-8"))
