"""The script a fake OpenAI endpoint plays: replies, errors and rules, shared by the HTTP server
and the respx helper so both speak exactly the same chat-completions protocol.

A script item is the text of a reply (``str``; a ``dict``/``list`` is sent as JSON), a
:class:`Reply` (text plus usage or finish reason), an :class:`ErrorReply` (a status code, with
``Retry-After`` if asked), :class:`Disconnect` (the connection drops), or a callable that receives
the request body and returns an item (the items are in :mod:`.replies`). Scripted items are
played in order, one per request; when they run out, the first :class:`Rule` whose text occurs
in the current goal answers (:func:`current_goal`: the ``Goal:`` of the latest user message,
not the earlier goals a session shows), then ``default``. ``reject_modes`` makes every request
with that ``response_format`` type fail with 400, as an endpoint without structured-output
support does.

``dialect`` makes the script behave as one real server does (:data:`DIALECTS`): which ways of
asking for JSON it accepts and how it refuses the others (llama-cpp-python's HTTP 500 naming
``response_format``), how it words a prompt too long for its context window, what its
``/v1/models`` lists, and its own routes (llama-server's ``/props`` and ``/tokenize``, vLLM's
``/tokenize``, Ollama's ``/api/show``). ``stall`` makes every completion hang that many seconds.

Streamed replies (``stream: true`` requests) come as a slow model sends them: ``token_rate``
tokens a second (a token being 4 characters, as the usage counts; a reply that is not streamed
comes whole after as long), in pieces of ``chunk_size``
characters, or of random sizes from ``chunk_sizes`` (seeded by ``seed``), so that pieces end
inside strings, escapes and between the code points of a character sequence; ``wire_bytes``
splits what goes over the socket further, through the middle of multi-byte UTF-8 characters. A
:class:`Reply` can :class:`Hold` its stream at a point until a test says go on, or break off
after some characters (a transport error mid-stream); a client that closes a stream early is
recorded in :attr:`ScriptedLLM.abandoned`.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .replies import (
    Disconnect,
    ErrorReply,
    FakeResponse,
    Hold,
    Piece,
    Reply,
    Rule,
    ScriptItem,
    Stall,
)

__all__ = [
    "DIALECTS",
    "Dialect",
    "ScriptedLLM",
    "current_goal",
    "last_user_text",
    "request_mode",
]

# Fixed so that recorded responses are byte-for-byte reproducible.
_CREATED = 1_700_000_000


# The ways a request asks for JSON, as :func:`request_mode` names them.
_WIRE_MODES = (
    "json_schema",
    "json_object_schema",
    "json_object",
    "structured_outputs",
    "guided_json",
)
_EXTENSIONS = ("structured_outputs", "guided_json", "format")


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one real OpenAI-compatible server treats structured-output requests."""

    name: str
    accepts: frozenset[str]
    """The request modes it honours (:func:`request_mode`'s names)."""
    refusal: str
    """How it refuses another mode: ``400`` (an OpenAI-style error), ``pydantic-500``
    (llama-cpp-python's validation error as HTTP 500) or ``ignore`` (it answers anyway)."""
    unknown_fields: str = "ignore"
    """``reject`` (400, as OpenAI does) or ``ignore`` extension fields it does not know."""
    context_style: str = "openai"
    """How it words a prompt too long: ``openai``, ``llama-server`` or ``truncate`` (Ollama)."""
    context_window: int | None = None
    """Its default context window (None: not emulated)."""
    owned_by: str = "system"


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("openai", frozenset({"json_schema", "json_object"}), "400", "reject"),
        Dialect("azure", frozenset({"json_schema", "json_object"}), "400", "reject"),
        Dialect(
            "vllm",
            frozenset(_WIRE_MODES),
            "400",
            context_window=8192,
            owned_by="vllm",
        ),
        Dialect(
            "llama-server",
            frozenset({"json_schema", "json_object_schema", "json_object"}),
            "400",
            context_style="llama-server",
            context_window=4096,
            owned_by="llamacpp",
        ),
        Dialect(
            "llama-cpp-python",
            frozenset({"json_object_schema", "json_object"}),
            "pydantic-500",
            context_window=2048,
            owned_by="me",
        ),
        Dialect(
            "ollama",
            frozenset({"json_schema", "json_object"}),
            "ignore",
            context_style="truncate",
            context_window=4096,
            owned_by="library",
        ),
        Dialect("none", frozenset(), "400"),
    )
}


def request_mode(body: Mapping[str, Any]) -> str:
    """How a request body asks for JSON: ``json_schema``, ``json_object_schema`` (a
    ``json_object`` response_format with a ``schema``), ``json_object``, ``structured_outputs``
    or ``guided_json`` (vLLM's fields), ``format`` (Ollama's native field), or ``text``."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "json_object" and isinstance(fmt, Mapping) and "schema" in fmt:
        return "json_object_schema"
    if kind in ("json_schema", "json_object"):
        return str(kind)
    for name in _EXTENSIONS:
        if name in body:
            return name
    return "text" if kind in (None, "text") else str(kind)


def _pydantic_500(kind: str) -> ErrorReply:
    # What llama-cpp-python's server sends for a response_format type it does not know: FastAPI's
    # validation error, turned into a 500 by its route error handler.
    error = {
        "type": "literal_error",
        "loc": ("body", "response_format", "type"),
        "msg": "Input should be 'text' or 'json_object'",
        "input": kind,
        "ctx": {"expected": "'text' or 'json_object'"},
    }
    return ErrorReply(500, str([error]), kind="internal_server_error")


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of a request's latest user message ("" when it has none)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


# tooldag's prompts (user.j2, replan.j2, join.j2) put the goal on a line of its own, after the
# earlier turns of a session, which come as <data> blocks (escaped inside: see delimit).
_DATA_RE = re.compile(r'<data name="[^"]*">\n.*?\n</data>', re.DOTALL)
_GOAL_RE = re.compile(r"^Goal: (.*?)(?:\n\n|\Z)", re.MULTILINE | re.DOTALL)


def current_goal(body: Mapping[str, Any]) -> str:
    """What a request asks now: the ``Goal:`` of its latest user message, outside the
    ``<data>`` blocks that hold earlier turns of a session; all of that message if it has none.
    """
    text = last_user_text(body)
    found = _GOAL_RE.findall(_DATA_RE.sub("", text))
    return str(found[-1]).strip() if found else text


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
        dialect: str | Dialect | None = None,
        context_window: int | None = None,
        stall: float | None = None,
        token_rate: float | None = None,
        chunk_sizes: tuple[int, int] | None = None,
        seed: int = 0,
        wire_bytes: int | None = None,
    ) -> None:
        if isinstance(dialect, str):
            if dialect not in DIALECTS:
                raise ValueError(f"unknown dialect {dialect!r}: one of {', '.join(DIALECTS)}")
            dialect = DIALECTS[dialect]
        self.dialect: Dialect | None = dialect
        self.context_window = context_window or (dialect.context_window if dialect else None)
        """The context window emulated (a prompt beyond it gets the dialect's error)."""
        self.stall = stall
        self._queue: deque[ScriptItem] = deque(replies)
        if isinstance(rules, Mapping):
            rules = [Rule(text, reply) for text, reply in rules.items()]
        self.rules: list[Rule] = list(rules)
        self._answered: Counter[int] = Counter()  # requests answered by each rule (its index)
        self.default = default
        self.reject_modes = frozenset(reject_modes)
        self.model = model
        self.chunk_size = max(1, chunk_size)
        if token_rate is not None and token_rate <= 0:
            raise ValueError("token_rate must be a positive number of tokens a second")
        self.token_rate = token_rate
        """Tokens a second of a streamed reply (None: as fast as the socket goes)."""
        if chunk_sizes is not None and not 1 <= chunk_sizes[0] <= chunk_sizes[1]:
            raise ValueError("chunk_sizes must be (smallest, largest) with 1 <= smallest")
        self.chunk_sizes = chunk_sizes
        self._random = random.Random(seed)
        self.wire_bytes = wire_bytes
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order (rejected ones included)."""
        self.abandoned: list[int] = []
        """For each stream the client closed before its end: the characters of content sent."""
        self.stalls: list[str] = []
        """How each stall ended: ``client`` (it hung up), ``stopped`` (the server stopped) or
        ``timeout`` (its seconds passed)."""
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

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block until ``condition()`` holds (checked whenever a request or an abandoned stream
        is recorded); False on timeout."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def stream_abandoned(self, chars: int) -> None:
        """Record that a client closed a stream after ``chars`` characters of content."""
        with self._changed:
            self.abandoned.append(chars)
            self._changed.notify_all()

    def stall_ended(self, how: str) -> None:
        """Record how a stall ended (see :attr:`stalls`)."""
        with self._changed:
            self.stalls.append(how)
            self._changed.notify_all()

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
            refusal = self._refusal(body)
            if refusal is not None:
                return _error(refusal)
            if self.stall is not None:
                return FakeResponse(0, {}, b"", fault=Stall(self.stall))
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

    def _refusal(self, body: Mapping[str, Any]) -> ErrorReply | None:
        """The dialect's answer to a request it does not take, or to a prompt too long."""
        dialect = self.dialect
        if dialect is None:
            return None
        if dialect.unknown_fields == "reject":
            for name in _EXTENSIONS:
                if name in body:
                    return ErrorReply(400, f"Unrecognized request argument supplied: {name}")
            fmt = body.get("response_format")
            if isinstance(fmt, Mapping) and "schema" in fmt:
                return ErrorReply(400, "Unrecognized request argument supplied: schema")
        mode = request_mode(body)
        known = mode in dialect.accepts or mode in ("text", "format")
        if not known and mode in _WIRE_MODES and dialect.refusal != "ignore":
            fmt = body.get("response_format")
            wire = fmt.get("type") if isinstance(fmt, Mapping) else mode
            if dialect.refusal == "pydantic-500" and isinstance(fmt, Mapping):
                return _pydantic_500(str(wire))
            if isinstance(fmt, Mapping) or dialect.unknown_fields == "reject":
                return ErrorReply(
                    400,
                    f"response_format {wire} is not supported by this server",
                    code="unsupported_response_format",
                )
        return self._overflow(body)

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """The emulated token count of a request's messages (characters / 4)."""
        return _tokens(
            "".join(
                _content_text(m.get("content"))
                for m in body.get("messages") or []
                if isinstance(m, Mapping)
            )
        )

    def _overflow(self, body: Mapping[str, Any]) -> ErrorReply | None:
        window = self.context_window
        style = self.dialect.context_style if self.dialect else "openai"
        if window is None or style == "truncate":
            return None
        prompt = self.prompt_tokens(body)
        wanted = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        if style == "llama-server":
            if prompt <= window:
                return None
            return ErrorReply(
                400,
                f"request ({prompt} tokens) exceeds the available context size ({window} "
                "tokens), try increasing it",
                kind="exceed_context_size_error",
                fields={"code": 400, "n_prompt_tokens": prompt, "n_ctx": window},
            )
        if prompt + int(wanted) <= window:
            return None
        return ErrorReply(
            400,
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt + int(wanted)} tokens ({prompt} in the messages, {wanted} in the "
            "completion). Please reduce the length of the messages or completion.",
            code="context_length_exceeded",
        )

    def models(self) -> dict[str, Any]:
        """The ``/v1/models`` list, as the dialect's server words it."""
        entry: dict[str, Any] = {"id": self.model, "object": "model", "created": _CREATED}
        entry["owned_by"] = self.dialect.owned_by if self.dialect else "system"
        if self.dialect is not None and self.dialect.name == "vllm" and self.context_window:
            entry["max_model_len"] = self.context_window
        return {"object": "list", "data": [entry]}

    def route(self, method: str, path: str, body: Mapping[str, Any]) -> FakeResponse | None:
        """A server-specific route of the dialect (None: no such route here)."""
        name = self.dialect.name if self.dialect else None
        window = self.context_window
        if name == "llama-server" and (method, path) == ("GET", "/props"):
            settings = {"n_ctx": window, "temperature": 0.8}
            return _json_response(
                {
                    "default_generation_settings": settings,
                    "total_slots": 1,
                    "model_path": f"/models/{self.model}.gguf",
                }
            )
        if name in ("llama-server", "vllm") and (method, path) == ("POST", "/tokenize"):
            text = body.get("content") or body.get("prompt") or ""
            if not text and isinstance(body.get("messages"), list):
                text = "".join(_content_text(m.get("content")) for m in body["messages"])
            tokens = list(range(_tokens(str(text))))
            if name == "vllm":
                return _json_response(
                    {"count": len(tokens), "max_model_len": window, "tokens": tokens}
                )
            return _json_response({"tokens": tokens})
        if name == "ollama" and (method, path) == ("POST", "/api/show"):
            if body.get("model") not in (self.model, f"{self.model}:latest"):
                return _error(ErrorReply(404, f"model '{body.get('model')}' not found"))
            info = {"general.architecture": "llama", "llama.context_length": 131072}
            parameters = f"num_ctx {window}" if window else ""
            return _json_response({"model_info": info, "parameters": parameters})
        if name == "ollama" and (method, path) == ("GET", "/api/version"):
            return _json_response({"version": "0.5.7"})
        return None

    def _next_item(self, body: Mapping[str, Any]) -> Any:
        if self._queue:
            return self._queue.popleft()
        goal = current_goal(body).lower()
        for index, rule in enumerate(self.rules):
            if rule.contains.lower() not in goal:
                continue
            if rule.times is not None:
                if self._answered[index] >= rule.times:
                    continue
                self._answered[index] += 1
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
        # A reply that is not streamed arrives when the whole of it has been generated.
        delay = _tokens(text) / self.token_rate if self.token_rate else 0.0
        return FakeResponse(
            200,
            {"content-type": "application/json"},
            json.dumps(payload).encode("utf-8"),
            delay=delay,
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
            # Raw UTF-8, as real servers send it: a wire split can fall inside a character.
            return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "finish_reason": finish}]

        end = len(text) if reply.break_after is None else min(reply.break_after, len(text))
        held = self._held_at(reply, text)
        pieces = [Piece(chunk(delta({"role": "assistant", "content": ""})))]
        for start, stop in self._cuts(end, held):
            part = text[start:stop]
            delay = math.ceil(len(part) / 4) / self.token_rate if self.token_rate else 0.0
            hold = reply.hold if start == held else None
            pieces.extend(self._wire(chunk(delta({"content": part})), delay, hold, stop))
        if reply.break_after is None:
            pieces.append(Piece(chunk(delta({}, reply.finish_reason)), chars=len(text)))
            if usage is not None:
                pieces.append(Piece(chunk([], usage=usage), chars=len(text)))
            pieces.append(Piece(b"data: [DONE]\n\n", chars=len(text)))
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        body = b"".join(p.data for p in pieces)
        broken = reply.break_after is not None
        return FakeResponse(200, headers, body, pieces=tuple(pieces), broken=broken)

    @staticmethod
    def _held_at(reply: Reply, text: str) -> int | None:
        if reply.hold is None:
            return None
        at = text.find(reply.hold.after)
        if at < 0:
            raise ValueError(f"Hold(after={reply.hold.after!r}) is not in the reply's content")
        return at + len(reply.hold.after)

    def _cuts(self, end: int, held: int | None) -> list[tuple[int, int]]:
        """Where the content's pieces start and stop (a held stream also stops at the hold)."""
        cuts: list[tuple[int, int]] = []
        start = 0
        while start < end:
            if self.chunk_sizes is not None:
                with self._changed:  # one generator, answering from several threads
                    size = self._random.randint(*self.chunk_sizes)
            else:
                size = self.chunk_size
            stop = min(start + size, end)
            if held is not None and start < held < stop:
                stop = held
            cuts.append((start, stop))
            start = stop
        return cuts

    def _wire(self, data: bytes, delay: float, hold: Hold | None, chars: int) -> list[Piece]:
        """One event as the socket writes go: in ``wire_bytes`` parts if asked."""
        size = self.wire_bytes
        if size is None or len(data) <= size:
            return [Piece(data, delay, hold, chars)]
        parts = [data[i : i + size] for i in range(0, len(data), size)]
        return [Piece(parts[0], delay, hold, chars), *(Piece(p, chars=chars) for p in parts[1:])]


def _json_response(data: Any) -> FakeResponse:
    return FakeResponse(200, {"content-type": "application/json"}, json.dumps(data).encode())


def _error(item: ErrorReply) -> FakeResponse:
    headers = {"content-type": "application/json", **dict(item.headers)}
    if item.retry_after is not None:
        headers["retry-after"] = f"{item.retry_after:g}"
    return FakeResponse(item.status, headers, json.dumps(item.body()).encode("utf-8"))
