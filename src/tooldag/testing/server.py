"""A fake OpenAI-compatible HTTP server on 127.0.0.1, for subprocess tests, notebooks and
``tooldag demo``: real sockets, the real chat-completions protocol (plain and streamed SSE, with
usage), scripted replies and error statuses, every request recorded.

>>> with FakeLLMServer(rules={"weather": {"steps": []}}) as server:   # doctest: +SKIP
...     env = server.env()      # OPENAI_BASE_URL, OPENAI_API_KEY, TOOLDAG_MODEL for a subprocess
...     llm = server.client()   # an LLMClient pointed at it

``python -m tooldag.testing`` runs it on its own (:mod:`.command`).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .replies import FakeResponse, Rule, ScriptItem, Stall
from .script import ScriptedLLM

if TYPE_CHECKING:
    from ..llm.client import LLMClient

__all__ = ["FAKE_API_KEY", "FakeLLMServer"]

log = logging.getLogger("tooldag.testing")

FAKE_API_KEY = "fake-key"

# How often a stalled request looks whether the server is stopping (a client hanging up wakes
# it at once).
_STALL_CHECK = 0.05


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake LLM server: " + format, *args)

    def _send(self, response: FakeResponse) -> None:
        if isinstance(response.fault, Stall):
            self._stall(response.fault.seconds)
        if response.fault is not None:
            self.close_connection = True
            return
        if response.pieces:
            self._stream(response)
            return
        if response.delay:
            self.server.stopping.wait(response.delay)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _stream(self, response: FakeResponse) -> None:
        """A streamed response, piece by piece as paced (chunked transfer encoding, so that a
        connection dropped midway is an incomplete body, not a short one)."""
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        stopping = self.server.stopping
        sent = 0
        for piece in response.pieces:
            if piece.hold is not None and not piece.hold.release.wait(piece.hold.timeout):
                piece.hold.timed_out.set()
            if piece.delay:
                stopping.wait(piece.delay)
            if stopping.is_set() or self._peer_gone():
                self.server.script.stream_abandoned(sent)
                self.close_connection = True
                return
            try:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece.data), piece.data))
                self.wfile.flush()
            except OSError:  # the client went away between the check and the write
                self.server.script.stream_abandoned(sent)
                self.close_connection = True
                return
            sent = piece.chars
        if response.broken:
            self.close_connection = True  # no last chunk: the body ends incomplete
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stall(self, seconds: float | None) -> None:
        """Hold the request unanswered until the client hangs up, the server stops or
        ``seconds`` pass; recorded in ``script.stalls``."""
        deadline = None if seconds is None else time.monotonic() + seconds
        stopping = self.server.stopping
        how = "timeout"
        while deadline is None or (left := deadline - time.monotonic()) > 0:
            wait = _STALL_CHECK if deadline is None else min(left, _STALL_CHECK)
            # select wakes at once when the client hangs up; a stop is seen within a check.
            try:
                readable, _, _ = select.select([self.connection], [], [], wait)
            except (OSError, ValueError):
                readable = [self.connection]
            if stopping.is_set():
                how = "stopped"
                break
            if readable and self._peer_gone():
                how = "client"
                break
            if readable:  # bytes, not a hang-up: wait without spinning on them
                stopping.wait(wait)
        self.server.script.stall_ended(how)

    def _peer_gone(self) -> bool:
        """Whether the client closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode("utf-8")
        self._send(FakeResponse(status, {"content-type": "application/json"}, body))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._json(200, self.server.script.models())
            return
        routed = self.server.script.route("GET", path, {})
        if routed is not None:
            self._send(routed)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "code": None}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": {"message": "body is not JSON"}})
            return
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            routed = self.server.script.route("POST", path, body if isinstance(body, dict) else {})
            if routed is not None:
                self._send(routed)
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "code": None}})
            return
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self._send(self.server.script.respond(body))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, script: ScriptedLLM, port: int) -> None:
        self.script = script
        self.headers_seen: list[dict[str, str]] = []
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", port), _Handler)


class FakeLLMServer(ScriptedLLM):
    """A :class:`ScriptedLLM` served over HTTP on ``127.0.0.1`` (an ephemeral port by default).

    ``streaming`` options go to :class:`ScriptedLLM` (``token_rate``, ``chunk_sizes``,
    ``seed``, ``wire_bytes``).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``requests`` holds every
    request body, ``request_headers`` their headers; :meth:`wait_for_requests` blocks until a
    subprocess has called.
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
        port: int = 0,
        dialect: str | None = None,
        context_window: int | None = None,
        stall: float | None = None,
        **streaming: Any,
    ) -> None:
        super().__init__(
            replies,
            rules=rules,
            default=default,
            reject_modes=reject_modes,
            model=model,
            chunk_size=chunk_size,
            dialect=dialect,
            context_window=context_window,
            stall=stall,
            **streaming,
        )
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeLLMServer:
        if self._server is None:
            self._server = _Server(self, self._port)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="tooldag-fake-llm",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stopping.set()
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = None
            self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake LLM server is not running: call start() or use `with`")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_headers(self) -> list[dict[str, str]]:
        return list(self._server.headers_seen) if self._server is not None else []

    def env(self) -> dict[str, str]:
        """Environment variables that point tooldag (or any OpenAI SDK user) at this server."""
        return {
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": FAKE_API_KEY,
            "TOOLDAG_MODEL": self.model,
        }

    def client(self, **options: Any) -> LLMClient:
        """An :class:`~tooldag.llm.client.LLMClient` configured for this server."""
        from ..llm.client import LLMClient

        return LLMClient.from_env(env=self.env(), **options)
