"""In-process OpenAI mocking with respx: the same script as :class:`FakeLLMServer`, no sockets.

>>> import respx
>>> with respx.mock() as router:                                   # doctest: +SKIP
...     script = mock_openai(router, replies=['{"steps": []}'])
...     ...                                 # LLMClient.from_env(api_key="sk-test") now hits it
...     script.requests[0]["model"]

``respx`` is a test dependency: it is imported by the caller, never by ``import tooldag``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import httpx

from .replies import Rule, ScriptItem, Stall
from .script import ScriptedLLM

if TYPE_CHECKING:
    import respx

__all__ = ["OPENAI_BASE_URL", "mock_openai"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


class _BrokenStream(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A body that breaks off after its pieces, as a dropped connection does."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces
        raise httpx.RemoteProtocolError("scripted break mid-stream")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece
        raise httpx.RemoteProtocolError("scripted break mid-stream")


def mock_openai(
    router: respx.Router,
    replies: Iterable[ScriptItem] = (),
    *,
    rules: Iterable[Rule] | Mapping[str, ScriptItem] = (),
    default: ScriptItem | None = None,
    reject_modes: Iterable[str] = (),
    base_url: str = OPENAI_BASE_URL,
    model: str = "fake-model",
    dialect: str | None = None,
) -> ScriptedLLM:
    """Route ``POST {base_url}/chat/completions`` of ``router`` to a :class:`ScriptedLLM` (and
    ``GET {base_url}/models`` to its model list, which the client checks on first contact).

    Returns the script: ``.requests`` are the request bodies received, ``.add(...)`` scripts
    more. A ``Disconnect`` item raises ``httpx.ConnectError``, a ``Stall`` ``httpx.ReadTimeout``,
    a :class:`Reply` with ``break_after`` ``httpx.RemoteProtocolError`` mid-stream (its ``hold``
    does not wait: the whole stream is there at once).
    """
    script = ScriptedLLM(
        replies,
        rules=rules,
        default=default,
        reject_modes=reject_modes,
        model=model,
        dialect=dialect,
    )

    def handle(request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.content or b"{}")
        except json.JSONDecodeError:
            return httpx.Response(400, json={"error": {"message": "body is not JSON"}})
        response = script.respond(body)
        if isinstance(response.fault, Stall):
            raise httpx.ReadTimeout("scripted stall", request=request)
        if response.fault is not None:
            raise httpx.ConnectError("scripted disconnect", request=request)
        if response.broken:
            stream = _BrokenStream([piece.data for piece in response.pieces])
            return httpx.Response(response.status, headers=response.headers, stream=stream)
        return httpx.Response(response.status, headers=response.headers, content=response.body)

    router.post(f"{base_url.rstrip('/')}/chat/completions").mock(side_effect=handle)
    router.get(f"{base_url.rstrip('/')}/models").mock(
        side_effect=lambda request: httpx.Response(200, json=script.models())
    )
    return script
