"""Serving the viewer: a uvicorn server on 127.0.0.1, in the foreground (``tooldag ui``) or on a
thread of a process that runs something (``tooldag exec --ui``, the REPL's ``/ui``).

The port is bound before the server starts (0 picks a free one), so the address, token included,
is known and printed at once; connections that come before the server is up wait in the
socket's backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable
from urllib.parse import quote

import uvicorn

from ..durable.runner import DurableExecutor
from ..durable.store import RunStore
from ..errors import ConfigError
from ..registry.registry import ToolRegistry
from .app import Viewer, create_app
from .control import Controls

__all__ = ["ViewerServer", "open_browser"]


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} is in use: pick another with --port, or leave --port out for a "
                "free one"
            ) from None
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling the open pages' streams to end when it shuts down (they would
    otherwise hold the shutdown up)."""

    def __init__(self, config: uvicorn.Config, viewer: Viewer) -> None:
        super().__init__(config)
        self._viewer = viewer

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._viewer.stopping.set()
        await super().shutdown(sockets)


class ViewerServer:
    """The viewer over the run store at ``store_path``, listening on 127.0.0.1:``port``.

    ``tools`` loads the registry the page's resume and cancel buttons use (called when first
    needed). ``runner`` and ``here`` are an executor of this process and the runs it is running:
    the page's cancel reaches those through it.
    """

    def __init__(
        self,
        store_path: str,
        *,
        port: int = 0,
        tools: Callable[[], ToolRegistry] | None = None,
        runner: DurableExecutor | None = None,
        here: frozenset[str] = frozenset(),
    ) -> None:
        if store_path == ":memory:":
            raise ConfigError("the viewer reads a run store file, not an in-memory store")
        self.token = secrets.token_urlsafe(24)
        self.store = RunStore(store_path)
        self.viewer = Viewer(
            self.store, Controls(self.store, tools, runner=runner, here=here), self.token
        )
        self._socket = _bind(port)
        self.port: int = self._socket.getsockname()[1]
        self.viewer.listen_on(self.port)
        config = uvicorn.Config(
            create_app(self.viewer),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config, self.viewer)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def url(self, run_id: str | None = None) -> str:
        """The address of the runs list, or of one run's page, with the token."""
        path = f"/runs/{quote(run_id, safe='')}" if run_id else "/"
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            await self.viewer.controls.close()
            self.store.close()

    def serve(self) -> None:
        """Serve until Ctrl-C (or :meth:`stop`), in this thread."""
        asyncio.run(self._main())

    def start(self) -> ViewerServer:
        """Serve on a daemon thread (it never holds up the process's exit); returns self."""
        self._thread = threading.Thread(target=self.serve, name="tooldag-viewer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (the open pages see the viewer go) and wait for the thread."""
        self._server.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self.viewer.stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_shown(self, run_id: str, timeout: float) -> bool:
        """Wait until a page has been sent ``run_id`` as it is now (so that a process about to
        exit leaves the page showing the run's end); false after ``timeout`` seconds."""
        return self.viewer.wait_shown(run_id, timeout)


def open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser (``$BROWSER`` if set); false when there is none."""
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
