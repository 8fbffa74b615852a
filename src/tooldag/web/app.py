"""The viewer's web app (Starlette): two pages, a JSON API over the run store, a live stream of
each run's events (server-sent events) and the resume and cancel actions.

Only the person who started the viewer may use it: every request but the static files must
carry the viewer's token (``?token=`` in the address it printed, or the ``X-Tooldag-Token``
header the page's script sends), compared in constant time. Other local users do not have it,
and a web page in the browser cannot read it. Beside the token: the ``Host`` must be the
viewer's own address (a DNS-rebound name is refused), a request that names an ``Origin`` must
come from the viewer's own, and an action (POST) must name it; no CORS header is ever sent, so
no other site may read an answer. Every page forbids scripts and connections from anywhere else
(``Content-Security-Policy``) and never sends its address, token included, as a referrer.

Routes::

    GET  /                              the runs (filter by status, search the goals)
    GET  /runs/{id}                     one run: graph, timeline, steps, plan versions, usage
    GET  /static/...                    the page's script and style (package data, no CDN)
    GET  /api/runs?status=&q=&limit=    the runs, newest first
    GET  /api/runs/{id}                 the run's snapshot (see tooldag.web.live)
    GET  /api/runs/{id}/steps/{step}    one step, with its arguments and output
    GET  /api/runs/{id}/stream?after=N  the events after cursor N, batched, as they come
    POST /api/runs/{id}/resume          resume it in this process
    POST /api/runs/{id}/cancel          cancel it and compensate what it did
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..durable.store import RunStore
from ..errors import RunStateError
from ..plan.svg import STATUS_PALETTE
from ..result import RunStatus
from .control import Controls
from .live import PlanCache, poll, run_json, snapshot, step_detail

__all__ = ["TOKEN_HEADER", "Viewer", "create_app"]

TOKEN_HEADER = "X-Tooldag-Token"
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        b"form-action 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]
_REFUSED = (
    "<!doctype html><meta charset=utf-8><title>tooldag ui</title>"
    "<p>This viewer needs the address that <code>tooldag ui</code> printed: it carries a "
    "<code>?token=</code>. Open that address, or start the viewer again.</p>"
)


class Viewer:
    """What the app serves and who may use it: the store, the buttons' controls, the token, and
    the addresses the viewer answers on (set once its port is known)."""

    def __init__(self, store: RunStore, controls: Controls, token: str) -> None:
        self.store = store
        self.controls = controls
        self.token = token
        self.hosts: set[str] = set()
        self.origins: set[str] = set()
        self.plans = PlanCache()
        self.poll_interval = 0.25  # seconds between two reads of the store, per open page
        self.stopping = asyncio.Event()
        # The newest cursor a snapshot of each run was served at: what wait_shown waits on.
        self._shown: dict[str, int] = {}
        self._shown_changed = threading.Condition()

    def shown(self, run_id: str, cursor: int) -> None:
        """A snapshot of ``run_id`` up to ``cursor`` went to a page."""
        with self._shown_changed:
            self._shown[run_id] = max(cursor, self._shown.get(run_id, 0))
            self._shown_changed.notify_all()

    def wait_shown(self, run_id: str, timeout: float) -> bool:
        """Wait until a page has been sent a snapshot of ``run_id`` as it is now (the page loads
        one when it opens and when the run ends); false after ``timeout`` seconds."""
        events = self.store.events_since(run_id)
        last = events[-1]["seq"] if events else 0
        with self._shown_changed:
            return self._shown_changed.wait_for(
                lambda: self._shown.get(run_id, -1) >= last, timeout
            )

    def listen_on(self, port: int) -> None:
        """Answer requests addressed to 127.0.0.1 or localhost on ``port`` only."""
        for host in ("127.0.0.1", "localhost"):
            self.hosts.add(f"{host}:{port}")
            self.origins.add(f"http://{host}:{port}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class _Guard:
    """Refuses, before any route runs, what did not come from the viewer's own page."""

    def __init__(self, app: ASGIApp, viewer: Viewer) -> None:
        self.app = app
        self.viewer = viewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is not None:
            status, text = problem
            page = _REFUSED if text == "token" else text
            response = HTMLResponse(page, status_code=status)
            await response(scope, receive, _secured(send))
            return
        await self.app(scope, receive, _secured(send))

    def _problem(self, scope: Scope) -> tuple[int, str] | None:
        viewer = self.viewer
        if _header(scope, b"host") not in viewer.hosts:
            return 421, "this viewer answers on 127.0.0.1 only"
        origin = _header(scope, b"origin")
        if origin is not None and origin not in viewer.origins:
            return 403, "requests from other sites are refused"
        # A browser says where a request comes from: only the viewer's own page ("same-origin")
        # or the address typed or opened ("none") may use it; another site on this machine is
        # "same-site" (ports do not count), and refused too.
        if _header(scope, b"sec-fetch-site") not in (None, "same-origin", "none"):
            return 403, "requests from other sites are refused"
        if scope["method"] not in ("GET", "HEAD") and origin is None:
            return 403, "an action must come from the viewer's page"
        path: str = scope["path"]
        if path.startswith("/static/"):
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = _header(scope, TOKEN_HEADER.lower().encode()) or (query.get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), viewer.token.encode()):
            return 403, "token"
        return None


def _secured(send: Send) -> Send:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
        await send(message)

    return wrapped


def _page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        text = files("tooldag.web").joinpath("static", name).read_text(encoding="utf-8")
        return HTMLResponse(text)

    return page


def _viewer(request: Request) -> Viewer:
    viewer: Viewer = request.app.state.viewer
    return viewer


async def _runs(request: Request) -> Response:
    viewer = _viewer(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in {s.value for s in RunStatus}:
        return JSONResponse({"error": f"no run status {status!r}"}, status_code=400)
    words = (request.query_params.get("q") or "").lower().split()
    try:
        limit = max(1, min(1000, int(request.query_params.get("limit") or 200)))
    except ValueError:
        limit = 200
    infos = await asyncio.to_thread(viewer.store.list_runs, status, None if words else limit)
    if words:
        infos = [i for i in infos if all(w in f"{i.goal} {i.id}".lower() for w in words)][:limit]
    return JSONResponse(
        {
            "runs": [run_json(i) for i in infos],
            "palette": STATUS_PALETTE,
            "store": viewer.store.path,
        }
    )


async def _run(request: Request) -> Response:
    viewer = _viewer(request)
    run_id = request.path_params["run_id"]
    data = await asyncio.to_thread(snapshot, viewer.store, run_id, viewer.plans)
    if data is None:
        return JSONResponse({"error": f"no run {run_id!r}"}, status_code=404)
    response = JSONResponse(data)
    viewer.shown(run_id, data["cursor"])
    return response


async def _step(request: Request) -> Response:
    viewer = _viewer(request)
    run_id, step_id = request.path_params["run_id"], request.path_params["step_id"]
    data = await asyncio.to_thread(step_detail, viewer.store, run_id, step_id)
    if data is None:
        return JSONResponse({"error": f"no step {step_id!r} in run {run_id!r}"}, status_code=404)
    return JSONResponse(data)


def _sse(kind: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _stream(request: Request) -> Response:
    viewer = _viewer(request)
    run_id = request.path_params["run_id"]
    try:
        # EventSource sends the last id it saw when it reconnects.
        cursor = int(request.headers.get("last-event-id") or request.query_params.get("after") or 0)
    except ValueError:
        cursor = 0

    return StreamingResponse(
        _follow(viewer, run_id, cursor),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


async def _follow(viewer: Viewer, run_id: str, cursor: int) -> AsyncIterator[str]:
    """The stream's messages: a ``batch`` of the new events each time the store has some, a
    ``run`` when the run's status changes without an event (its process died)."""
    yield ": stream open\n\n"
    quiet = 0.0
    last_status: str | None = None
    while not viewer.stopping.is_set():
        batch, info = await asyncio.to_thread(poll, viewer.store, run_id, cursor)
        if batch:
            cursor = batch[-1]["seq"]
            run = run_json(info) if info is not None else None
            last_status = run["status"] if run else last_status
            # Everything since the last read in one message: the page redraws once.
            yield _sse("batch", {"events": batch, "run": run, "cursor": cursor}, cursor)
            quiet = 0.0
        else:
            quiet += viewer.poll_interval
            if quiet >= 2.0:
                # No event, yet a run may still change: its process dies (interrupted).
                quiet = 0.0
                info = await asyncio.to_thread(viewer.store.get_run, run_id)
                if info is not None and info.status.value != last_status:
                    last_status = info.status.value
                    yield _sse("run", run_json(info))
                else:
                    yield ": still here\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(viewer.stopping.wait(), viewer.poll_interval)


async def _resume(request: Request) -> Response:
    viewer = _viewer(request)
    run_id = request.path_params["run_id"]
    try:
        await viewer.controls.resume(run_id)
    except RunStateError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse({"resumed": run_id}, status_code=202)


async def _cancel(request: Request) -> Response:
    viewer = _viewer(request)
    run_id = request.path_params["run_id"]
    try:
        status = await viewer.controls.cancel(run_id)
    except RunStateError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse({"cancelled": run_id, "status": status.value})


def create_app(viewer: Viewer) -> ASGIApp:
    """The ASGI app of ``viewer``, guarded (see the module docstring)."""
    routes = [
        Route("/", _page("index.html")),
        Route("/runs/{run_id}", _page("run.html")),
        Mount("/static", StaticFiles(packages=[("tooldag.web", "static")]), name="static"),
        Route("/api/runs", _runs),
        Route("/api/runs/{run_id}", _run),
        Route("/api/runs/{run_id}/steps/{step_id:path}", _step),
        Route("/api/runs/{run_id}/stream", _stream),
        Route("/api/runs/{run_id}/resume", _resume, methods=["POST"]),
        Route("/api/runs/{run_id}/cancel", _cancel, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.viewer = viewer
    return _Guard(app, viewer)
