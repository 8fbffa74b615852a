"""MCP servers as tool sources: list a server's tools as registry tools, and call them.

Every MCP tool becomes a :class:`~tooldag.registry.tool.Tool` whose function sends
``tools/call`` to its server:

- ``inputSchema`` is the argument schema, ``outputSchema`` the output schema (so that plans'
  references into structured results validate), and the annotations say ``side_effects`` and
  ``idempotent`` (:func:`~tooldag.registry.capabilities.capabilities_from_hints`). What the tool
  does with data is what a remote tool is taken to do, whatever the server says: its output may
  be private and untrusted, and every argument may leave the machine. A server's hints never
  make its tools more trusted than that.
- A call returns the result's structured content, else its text (JSON-decoded when it is JSON;
  other content blocks as their JSON form). An ``isError`` result fails the step permanently
  with the server's text; a server that dies or a lost connection fails it transiently (retried
  per the tool's policy, on a new session), and so does a call the server took longer than the
  server's ``timeout`` over (a :class:`TimeoutError`: retried when the tool is read-only or
  idempotent, as any timeout).
- Sessions: one per server per run, opened by the first step that calls one of its tools and
  shared by all the run's steps (requests are multiplexed, so parallel steps overlap), closed
  when the run ends (:mod:`tooldag.execution.scope`). A call outside a run opens a session for
  itself. Cancelling a step cancels its request (the SDK tells the server, which stops the
  tool).

The ``mcp`` SDK takes about a second to import: it is imported on first use, never by ``import
tooldag``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from .._sync import run_sync
from ..errors import (
    ConfigError,
    PermanentToolError,
    RegistrationError,
    ToolError,
    TransientToolError,
)
from ..execution.scope import current_scope
from ..registry.capabilities import capabilities_from_hints, default_capabilities
from ..registry.registry import Tool
from .config import ServerConfig, servers_of
from .names import tool_name

if TYPE_CHECKING:
    import mcp
    import mcp.types

__all__ = ["Connection", "aload_tools", "load_tools", "mcp_tools", "output_of"]

log = logging.getLogger("tooldag.mcp")

# Seconds a session may take to start (spawn, initialize, list the tools) before it counts as
# failed. A server that needs longer (npx downloading a package) is given a timeout by the user.
_START_TIMEOUT = 60.0
# What an error message quotes of a server's stderr.
_STDERR_TAIL = 400


def sdk() -> Any:
    """The ``mcp`` package, imported now; ConfigError saying how to install it if it is not."""
    try:
        import mcp
    except ImportError:
        raise ConfigError("MCP tools need the MCP SDK: pip install 'tooldag[mcp]'") from None
    # The SDK logs a server's protocol errors itself; tooldag reports them as step errors, so
    # keep Python's last-resort handler from printing them too (an app's own handlers still
    # see them).
    logging.getLogger("mcp").addHandler(logging.NullHandler())
    return mcp


def _leaves(exc: BaseException) -> list[BaseException]:
    """The errors inside anyio's task-group exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _reason(exc: BaseException) -> str:
    leaf = _leaves(exc)[0]
    if isinstance(leaf, FileNotFoundError):
        return f"no such command: {leaf.filename or leaf}"
    text = str(leaf) or type(leaf).__name__
    return (
        text
        if type(leaf).__name__ in ("MCPError", "ToolError")
        else f"{type(leaf).__name__}: {text}"
    )


def _code(exc: BaseException) -> int | None:
    code = getattr(_leaves(exc)[0], "code", None)
    return code if isinstance(code, int) else None


class _Session:
    """One live connection to a server, entered and left by a task of its own.

    The SDK's client is an async context (anyio task groups) that must be left by the task that
    entered it, while the steps that use it are tasks of their own; so a session task holds it
    open, the steps send their requests through it, and :meth:`aclose` tells the task to leave.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.client: mcp.Client | None = None
        self.tools: list[mcp.types.Tool] = []
        self.server_version = ""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr: TextIO | None = None
        self._stderr_tail = ""

    async def open(self) -> _Session:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(
            self._hold(ready), name=f"tooldag-mcp-{self.connection.config.name}"
        )
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.connection.start_timeout)
        except BaseException as exc:
            await self.aclose()
            if isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"it did not start within {self.connection.start_timeout:g}s"
                ) from None
            raise
        return self

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await self.connection.enter_client(stack, self._stderr_file())
                self.tools = await _list_tools(client)  # also primes the SDK's output checks
                info = client.server_info
                self.server_version = (info.version if info else "") or ""
                self.client = client
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not isinstance(exc, asyncio.CancelledError):
                log.debug("MCP session of %s ended: %r", self.connection.config.name, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.client = None
            self._stderr_tail = self._read_stderr()

    def _stderr_file(self) -> TextIO | None:
        if self.connection.config.command is None:
            return None
        # The server's stderr goes to a file, not to our terminal: its logs would garble the
        # progress view, and its last lines are what an error message should quote. Binary:
        # the server writes to it directly (closed in _hold, when the session ends).
        file = tempfile.TemporaryFile()  # noqa: SIM115
        self._stderr = cast(TextIO, file)
        return self._stderr

    def _read_stderr(self) -> str:
        if self._stderr is None:
            return self._stderr_tail
        try:
            return _tail(self._stderr, ended=True)
        finally:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (so far, or before it ended)."""
        if self._stderr is not None:
            return _tail(self._stderr, ended=False)
        return self._stderr_tail

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            if self.client is None:  # still starting: there is nothing to leave gracefully
                self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        client = self.client
        if client is None:
            raise self.connection.gone(self, "the session is closed")
        result = await client.call_tool(tool, dict(arguments))
        return result


def _tail(file: Any, *, ended: bool) -> str:
    """The end of a server's stderr file, on one line. The server shares the file's offset, so
    while it runs the file is read with ``pread`` (which leaves the offset alone), if at all."""
    try:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - 4 * _STDERR_TAIL)
        if hasattr(os, "pread"):
            data = os.pread(fd, size - start, start)
        elif ended:
            file.seek(start)
            data = file.read()
        else:
            return ""
    except (OSError, ValueError):
        return ""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return " | ".join(line for line in lines if line)[-_STDERR_TAIL:]


async def _list_tools(client: mcp.Client) -> list[mcp.types.Tool]:
    tools: list[mcp.types.Tool] = []
    cursor: str | None = None
    for _ in range(1000):  # a server whose cursor never ends cannot hang the loading
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


class Connection:
    """One configured MCP server: its sessions (one per run) and its calls.

    Holds no connection itself: a session belongs to the event loop of the run that opened it,
    and lives in that run's scope.
    """

    def __init__(self, config: ServerConfig, *, start_timeout: float = _START_TIMEOUT) -> None:
        self.config = config
        self.start_timeout = start_timeout

    def __repr__(self) -> str:
        return f"<Connection {self.config.name} {self.config.describe()}>"

    async def enter_client(self, stack: contextlib.AsyncExitStack, stderr: TextIO | None) -> Any:
        """The SDK client for this server, entered on ``stack``."""
        mcp = sdk()
        config = self.config
        options: dict[str, Any] = {"read_timeout_seconds": config.timeout, "cache": None}
        if config.target is not None:
            return await stack.enter_async_context(mcp.Client(config.target, **options))
        if config.command is not None:
            from mcp.client.stdio import stdio_client

            params = mcp.StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=dict(config.env) if config.env else None,
                cwd=config.cwd,
            )
            transport = stdio_client(params, errlog=stderr) if stderr else stdio_client(params)
            return await stack.enter_async_context(mcp.Client(transport, **options))
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        assert config.url is not None
        http = await stack.enter_async_context(
            create_mcp_http_client(headers=dict(config.headers or {}))
        )
        transport = streamable_http_client(config.url, http_client=http)
        return await stack.enter_async_context(mcp.Client(transport, **options))

    async def session(self) -> _Session:
        """A new session, open (the tools listed); ToolError when the server cannot be reached."""
        session = _Session(self)
        try:
            return await session.open()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            raise self.unreachable(exc, session.stderr_tail()) from None

    def unreachable(self, exc: BaseException, stderr: str = "") -> ToolError:
        leaf = _leaves(exc)[0]
        reason = _reason(exc)
        if _code(exc) == sdk().types.CONNECTION_CLOSED:
            reason = "it closed the connection while starting (did it exit?)"
        # A server that is not up yet (or is restarting) may answer a retry; a bad command not.
        transient = (
            isinstance(leaf, TimeoutError | ConnectionError) or "Connect" in type(leaf).__name__
        )
        return ToolError(
            f"MCP server {self.config.name!r} ({self.config.describe()}) cannot be started or "
            f"reached: {reason}" + (f" (its stderr: {stderr})" if stderr else ""),
            transient=transient,
        )

    def gone(self, session: _Session, why: str) -> TransientToolError:
        tail = session.stderr_tail()
        return TransientToolError(
            f"MCP server {self.config.name!r} {why}"
            + (f" (its stderr: {tail})" if tail else "")
            + "; a retry starts a new session"
        )

    async def call_tool(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        """Call the server's ``tool`` (its own name) and return the step's output."""
        scope = current_scope()
        if scope is None:
            session = await self.session()
            try:
                return await self._call(session, tool, arguments, None)
            finally:
                await session.aclose()
        session = await scope.get(self, self.session)
        return await self._call(session, tool, arguments, scope)

    async def _call(
        self, session: _Session, tool: str, arguments: Mapping[str, Any], scope: Any
    ) -> Any:
        where = f"{self.config.name}.{tool}"
        try:
            result = await session.call(tool, arguments)
        except asyncio.CancelledError:
            raise
        except ToolError:  # the session had ended: the next call opens a new one
            if scope is not None:
                await scope.discard(self, session)
            raise
        except Exception as exc:
            code = _code(exc)
            sdk_types = sdk().types
            if code == sdk_types.REQUEST_TIMEOUT:
                if scope is not None:  # the server may be stuck: the next call gets a new one
                    await scope.discard(self, session)
                raise TimeoutError(
                    f"MCP server {self.config.name!r} did not answer {tool} within "
                    f"{self.config.timeout:g}s (its timeout); a retry starts a new session"
                ) from None
            if code == sdk_types.CONNECTION_CLOSED or (code is None and _is_transport(exc)):
                if scope is not None:
                    await scope.discard(self, session)
                raise self.gone(session, f"closed the connection during {tool}") from None
            raise PermanentToolError(f"{where}: {_reason(exc)}") from None
        return output_of(result, where)


def _is_transport(exc: BaseException) -> bool:
    leaf = _leaves(exc)[0]
    names = {cls.__name__ for cls in type(leaf).__mro__}
    return bool(
        names & {"ClosedResourceError", "BrokenResourceError", "EndOfStream", "TransportError"}
    ) or isinstance(leaf, ConnectionError | EOFError)


def output_of(result: Any, where: str) -> Any:
    """A ``CallToolResult`` as a step's output; PermanentToolError for an ``isError`` one."""
    blocks = list(result.content or [])
    texts = [b.text for b in blocks if getattr(b, "type", None) == "text"]
    if result.is_error:
        message = " ".join(" ".join(texts).split()) or "the tool reported an error"
        raise PermanentToolError(f"{where}: {message}")
    if result.structured_content is not None:
        return result.structured_content
    if len(texts) == len(blocks):
        text = "\n".join(texts)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return [
        b.text
        if getattr(b, "type", None) == "text"
        else b.model_dump(by_alias=True, exclude_none=True)
        for b in blocks
    ]


def _tool(connection: Connection, listed: Any, name: str, version: str) -> Tool:
    annotations = (
        listed.annotations.model_dump(by_alias=True, exclude_none=True)
        if listed.annotations is not None
        else {}
    )
    implied = capabilities_from_hints(annotations, {})
    side_effects = bool(implied.get("side_effects", True))
    original = listed.name

    async def call(**arguments: Any) -> Any:
        return await connection.call_tool(original, arguments)

    call.__name__ = call.__qualname__ = name
    title = listed.title or annotations.get("title")
    description = (
        listed.description or title or f"{original} (from MCP server {connection.config.name})"
    )
    timeout = connection.config.timeout
    return Tool(
        name=name,
        description=description,
        parameters=dict(listed.input_schema or {"type": "object", "properties": {}}),
        function=call,
        output_schema=dict(listed.output_schema) if listed.output_schema else None,
        category="mcp",
        version=version or "1.0.0",
        side_effects=side_effects,
        idempotent=bool(implied.get("idempotent", False)),
        # The server's own timeout fires first (and restarts the session); this is the backstop.
        timeout=None if timeout is None else timeout + 1.0,
        # A remote tool's data rules, whatever its hints say (see the module docstring).
        **default_capabilities(remote=True, side_effects=side_effects),
        metadata={
            # Its session lives in this process (one per run): never sent to a Dask worker.
            "placement": "local",
            "mcp": {
                "server": connection.config.name,
                "tool": original,
                "title": title,
                "annotations": annotations,
            },
        },
    )


def _tools_of(connection: Connection, session: _Session, taken: set[str]) -> list[Tool]:
    tools = []
    for listed in session.tools:
        name = tool_name(connection.config.prefix, listed.name, taken)
        taken.add(name)
        try:
            tools.append(_tool(connection, listed, name, session.server_version))
        except RegistrationError as exc:
            raise ConfigError(
                f"MCP server {connection.config.name!r}: its tool {listed.name!r} cannot be "
                f"registered: {exc}"
            ) from None
    return tools


async def aload_tools(configs: Sequence[ServerConfig], *, where: str = "") -> list[Tool]:
    """The tools of the servers ``configs`` name, listed over a session each (at once)."""
    connections = [Connection(c) for c in configs]

    async def listing(connection: Connection) -> _Session:
        session = await connection.session()
        await session.aclose()
        return session

    results = await asyncio.gather(*(listing(c) for c in connections), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            if isinstance(result, ToolError | ConfigError):
                raise ConfigError(f"{where}{result}") from None
            raise result
    taken: set[str] = set()
    tools: list[Tool] = []
    for connection, session in zip(connections, results, strict=True):
        assert isinstance(session, _Session)
        tools.extend(_tools_of(connection, session, taken))
    return tools


def load_tools(spec: str) -> list[Tool]:
    """The tools of an ``mcp:`` spec or an MCP config file (ConfigError naming the spec)."""
    configs = servers_of(spec)
    sdk()  # say how to install the SDK before anything starts
    return run_sync(aload_tools(configs, where=f"--tools {spec}: "))


def mcp_tools(
    server: str | ServerConfig | Iterable[ServerConfig] | Any,
    *,
    name: str | None = None,
    timeout: float | None = None,
) -> list[Tool]:
    """The tools of an MCP server as registry tools.

    ``server`` is an ``mcp:`` spec or config file path (as ``--tools`` takes), a
    :class:`ServerConfig` (or several), or an in-process ``mcp`` server object (``MCPServer``,
    or a low-level ``Server``: handy in tests), whose tools are prefixed ``name`` (default: its
    own name).
    """
    if isinstance(server, str):
        configs = servers_of(server)
    elif isinstance(server, ServerConfig):
        configs = [server]
    elif isinstance(server, Iterable):
        configs = list(cast(Iterable[ServerConfig], server))
    else:
        label = name or str(getattr(server, "name", "") or "mcp")
        configs = [ServerConfig(label, target=server, timeout=timeout)]
    sdk()
    return run_sync(aload_tools(configs))
