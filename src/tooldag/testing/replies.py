"""What a script is made of: the items a fake OpenAI endpoint plays (:class:`Reply`,
:class:`ErrorReply`, :class:`Disconnect`, :class:`Stall`), the :class:`Rule` that picks one by the
goal, and the :class:`FakeResponse` that goes out; :func:`item_from_json` reads an item from a
rules file of ``python -m tooldag.testing``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "Disconnect",
    "ErrorReply",
    "FakeResponse",
    "Hold",
    "Piece",
    "Reply",
    "Rule",
    "ScriptItem",
    "Stall",
    "item_from_json",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """A completion. ``content`` that is a dict, a list or a ``Plan`` is sent as its JSON text.

    ``usage`` overrides the computed counts (``{"prompt_tokens": 10, "completion_tokens": 5}``);
    ``usage=False`` sends no usage at all, as some local servers do.
    """

    content: Any
    usage: Mapping[str, int] | bool | None = None
    finish_reason: str = "stop"
    hold: Hold | None = None
    """Streamed: wait at this point of the content (only the HTTP server waits)."""
    break_after: int | None = None
    """Streamed: drop the connection after this many characters of content, without finishing
    the response (the client sees a transport error mid-stream)."""

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        to_json = getattr(self.content, "to_json", None)  # a Plan
        data = to_json() if callable(to_json) else self.content
        return json.dumps(data, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold a streamed reply just after the first ``after`` in its content until ``release`` is
    set, or ``timeout`` seconds pass (then :attr:`timed_out` is set): a model that thinks
    between two steps for as long as a test needs. Only the HTTP server holds; the respx helper
    sends the whole stream at once."""

    after: str
    release: threading.Event = field(default_factory=threading.Event)
    timeout: float = 10.0
    timed_out: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error status with an OpenAI-shaped error body."""

    status: int
    message: str = ""
    code: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    kind: str | None = None
    """The error's ``type`` (default ``server_error`` for 5xx, else ``invalid_request_error``)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """More fields of the error object (llama-server adds ``n_prompt_tokens`` and ``n_ctx``)."""

    def body(self) -> dict[str, Any]:
        kind = self.kind or ("server_error" if self.status >= 500 else "invalid_request_error")
        message = self.message or f"scripted error {self.status}"
        error = {"message": message, "type": kind, "param": None, "code": self.code}
        return {"error": {**error, **self.fields}}


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Drop the connection without answering (the client sees a connection error)."""


@dataclass(frozen=True, slots=True)
class Stall:
    """Never answer: the client times out. The HTTP server holds the request until the client
    hangs up (its timeout, or Ctrl-C), the server stops, or ``seconds`` pass (then it drops the
    connection); ``seconds=None`` waits for the first two only. The respx helper raises
    ``httpx.ReadTimeout`` at once."""

    seconds: float | None = 30.0


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
    """Answer with ``reply`` when the current goal contains ``contains`` (case-insensitive).

    The current goal is the ``Goal:`` of the latest user message (the goals of earlier turns
    that a session shows as data do not count), or all of that message when it has none (a
    re-ask, a client other than tooldag's planner). ``times`` answers only that many requests,
    then leaves them to the rules after it (``ErrorReply(503)`` twice, then the plan).
    """

    contains: str
    reply: ScriptItem
    times: int | None = None


@dataclass(frozen=True, slots=True)
class Piece:
    """One write of a streamed response: ``data`` sent after waiting ``delay`` seconds (and for
    ``hold`` first); ``chars`` is how much of the reply's content has gone out with it."""

    data: bytes
    delay: float = 0.0
    hold: Hold | None = None
    chars: int = 0


@dataclass(frozen=True, slots=True)
class FakeResponse:
    """What to send back: a status, headers and body, or a ``fault`` (a Disconnect or Stall).

    A streamed response also has its ``pieces`` (``body`` is them joined), and ``broken`` when
    the connection is to drop after the last one."""

    status: int
    headers: dict[str, str]
    body: bytes
    fault: Disconnect | Stall | None = None
    pieces: tuple[Piece, ...] = ()
    broken: bool = False
    delay: float = 0.0
    """Seconds before a response that is not streamed goes out (its generation time)."""


_JSON_KEYS = {
    "$error": ("message", "code", "retry_after"),
    "$stall": (),
    "$disconnect": (),
}


def item_from_json(value: Any, where: str = "the reply") -> ScriptItem:
    """A script item from JSON: a plan or other JSON as the reply's text, or one of
    ``{"$error": 503}`` (with ``"message"``, ``"code"``, ``"retry_after"`` beside it if wanted),
    ``{"$stall": true}`` (until the client gives up) or ``{"$stall": 30}`` (seconds), and
    ``{"$disconnect": true}``. ``where`` names the value in a :class:`ValueError`."""
    if not isinstance(value, Mapping):
        text: ScriptItem = value  # a string, a list: sent as they are
        return text
    special = [key for key in value if isinstance(key, str) and key.startswith("$")]
    if not special:
        return value
    known = [key for key in special if key in _JSON_KEYS]
    if len(known) != 1 or len(special) != 1:
        raise ValueError(
            f"{where}: {', '.join(special)}: give one of {', '.join(_JSON_KEYS)}, as "
            '{"$error": 503}, {"$stall": true} or {"$disconnect": true}'
        )
    key = known[0]
    extra = sorted(set(value) - {key, *_JSON_KEYS[key]})
    if extra:
        allowed = ", ".join(_JSON_KEYS[key]) or "nothing"
        raise ValueError(f"{where}: {key} takes {allowed} beside it, not {', '.join(extra)}")
    arg = value[key]
    if key == "$error":
        if isinstance(arg, bool) or not isinstance(arg, int) or not 400 <= arg <= 599:
            raise ValueError(f"{where}: $error is an HTTP status from 400 to 599, not {arg!r}")
        retry_after = value.get("retry_after")
        if retry_after is not None and not isinstance(retry_after, int | float):
            raise ValueError(f"{where}: retry_after is seconds, not {retry_after!r}")
        return ErrorReply(
            arg, str(value.get("message") or ""), value.get("code"), retry_after=retry_after
        )
    if key == "$stall":
        if arg is True:
            return Stall(None)
        if isinstance(arg, bool) or not isinstance(arg, int | float) or arg <= 0:
            raise ValueError(f"{where}: $stall is true (until the client gives up) or seconds")
        return Stall(float(arg))
    if arg is not True:
        raise ValueError(f"{where}: $disconnect takes true, not {arg!r}")
    return Disconnect()
