"""Which MCP servers a ``--tools`` SPEC names: ``mcp:`` specs and MCP host config files.

- ``mcp:stdio:COMMAND ARGS...`` runs a server as a subprocess (the command line is split as a
  POSIX shell would, quotes and all);
- ``mcp:http://HOST:PORT/PATH`` (or ``https://``) connects to a streamable-HTTP server;
- ``mcp:NAME=stdio:...`` / ``mcp:NAME=http...`` name the server (its tools' prefix), which is
  otherwise taken from the command (``mcp_server_time`` -> ``time``) or the URL;
- a JSON file in the format MCP hosts share, ``{"mcpServers": {"NAME": {"command", "args",
  "env", "cwd"} | {"url", "headers"}}}``: one server per entry, its key the prefix. ``"type"``
  may say ``stdio`` or ``http``; ``"disabled": true`` leaves an entry out; ``"timeout"``
  (seconds) bounds each call (tooldag's own key). ``${VAR}`` and ``${VAR:-default}`` in
  commands, arguments, ``env``, URLs and headers are read from the environment, so a secret
  need not be written into the file.

``python`` (or ``python3``) as a command is the Python that runs tooldag, so that a server
installed beside tooldag is found whether or not its virtual environment is active.

Nothing here imports the MCP SDK: reading a config is cheap, and so are its errors.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .names import server_prefix

__all__ = ["PREFIX", "ServerConfig", "is_mcp_config", "is_mcp_spec", "read_config", "servers_of"]

PREFIX = "mcp:"
_NAMED = re.compile(r"^([A-Za-z0-9_.-]+)=(?=stdio:|https?://)")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MAX_CONFIG_BYTES = 1024 * 1024
_SERVER_KEYS = {"command", "args", "env", "cwd", "url", "headers", "type", "disabled", "timeout"}


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server: how to reach it, and the prefix its tools are registered under.

    Exactly one of ``command`` (stdio), ``url`` (streamable HTTP) and ``target`` (an
    in-process ``mcp`` server object, for tests and embedding) is set.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    target: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        given = [x for x in (self.command, self.url, self.target) if x is not None]
        if len(given) != 1:
            raise ConfigError(
                f"MCP server {self.name!r}: give a command (stdio) or a url (streamable HTTP)"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(
                f"MCP server {self.name!r}: timeout must be a positive number of seconds"
            )

    @property
    def prefix(self) -> str:
        """The prefix of this server's tool names (``time`` -> ``time__get_current_time``)."""
        return server_prefix(self.name)

    def describe(self) -> str:
        """Where the server is, for messages: never its environment or headers (secrets)."""
        if self.command is not None:
            return "stdio:" + shlex.join([self.command, *self.args])
        if self.url is not None:
            parts = urlsplit(self.url)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}{parts.path}"
        return f"in-process server {type(self.target).__name__}"


def is_mcp_spec(spec: str) -> bool:
    """Whether ``spec`` is an ``mcp:`` spec (a config file is recognised by its content)."""
    return spec.startswith(PREFIX)


def is_mcp_config(path: Path) -> bool:
    """Whether ``path`` is a JSON file holding ``mcpServers`` (a tools file holds a list)."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "mcpServers" in data


def servers_of(spec: str) -> list[ServerConfig]:
    """The servers an ``mcp:`` spec or a config file names."""
    if not is_mcp_spec(spec):
        return read_config(Path(spec))
    rest = spec[len(PREFIX) :].strip()
    name = None
    named = _NAMED.match(rest)
    if named:
        name, rest = named.group(1), rest[named.end() :]
    if rest.startswith("stdio:"):
        try:
            argv = shlex.split(rest[len("stdio:") :], posix=True)
        except ValueError as exc:
            raise ConfigError(f"--tools {spec}: cannot split the command line ({exc})") from None
        if not argv:
            raise ConfigError(
                f"--tools {spec}: no command after 'stdio:' (e.g. mcp:stdio:python -m "
                "mcp_server_time)"
            )
        command, *args = argv
        return [ServerConfig(name or _name_of_command(argv), _python(command), tuple(args))]
    if rest.startswith(("http://", "https://")):
        return [ServerConfig(name or _name_of_url(rest), url=rest)]
    raise ConfigError(
        f"--tools {spec}: say how to reach the server: mcp:stdio:COMMAND ARGS... or "
        "mcp:http://127.0.0.1:PORT/mcp"
    )


def read_config(path: Path) -> list[ServerConfig]:
    """The enabled servers of an MCP host config file (``{"mcpServers": {...}}``)."""
    where = str(path)
    try:
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{where}: larger than 1 MiB, not an MCP config")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f'{where}: expected {{"mcpServers": {{"name": {{...}}}}}}')
    configs = []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: mcpServers.{name} must be an object")
        if entry.get("disabled") is True:
            continue
        configs.append(_server(str(name), entry, f"{where}: mcpServers.{name}"))
    if not configs:
        raise ConfigError(f"{where}: no enabled server in mcpServers")
    prefixes: dict[str, str] = {}
    for config in configs:
        other = prefixes.setdefault(config.prefix, config.name)
        if other != config.name:
            raise ConfigError(
                f"{where}: servers {other!r} and {config.name!r} would both prefix their tools "
                f"{config.prefix}__; rename one"
            )
    return configs


def _server(name: str, entry: Mapping[str, Any], where: str) -> ServerConfig:
    unknown = sorted(set(entry) - _SERVER_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} ({_SHAPE})")
    kind = str(entry.get("type", "")).lower().replace("_", "-")
    if kind == "sse":
        raise ConfigError(
            f"{where}: the SSE transport is not supported; use the server's streamable HTTP "
            "endpoint (usually .../mcp)"
        )
    if kind not in ("", "stdio", "http", "streamable-http", "streamablehttp"):
        raise ConfigError(f"{where}: unknown type {entry['type']!r} (stdio or http)")
    timeout = entry.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise ConfigError(f"{where}: timeout must be a number of seconds")
    if "command" in entry and "url" in entry:
        raise ConfigError(f"{where}: give a command or a url, not both")
    if "command" in entry:
        command = _text(entry["command"], f"{where}.command")
        args = entry.get("args", [])
        if not isinstance(args, list):
            raise ConfigError(f"{where}.args must be a list of strings")
        cwd = entry.get("cwd")
        return ServerConfig(
            name,
            _python(command),
            tuple(_text(a, f"{where}.args") for a in args),
            env=_strings(entry.get("env"), f"{where}.env"),
            cwd=None if cwd is None else _text(cwd, f"{where}.cwd"),
            timeout=timeout,
        )
    if "url" in entry:
        url = _text(entry["url"], f"{where}.url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url must be an http:// or https:// URL")
        headers = _strings(entry.get("headers"), f"{where}.headers")
        return ServerConfig(name, url=url, headers=headers, timeout=timeout)
    raise ConfigError(f"{where}: {_SHAPE}")


_SHAPE = (
    'a server is {"command": ..., "args": [...], "env": {...}} or {"url": ..., "headers": {...}}'
)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return _expand(value, where)


def _strings(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object of strings")
    return {str(k): _text(v, f"{where}.{k}") for k, v in value.items()}


def _expand(text: str, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None:
            return found
        if default is not None:
            return default
        raise ConfigError(f"{where} reads ${{{name}}}, which is not set; export {name}")

    return _VAR.sub(value, text)


def _python(command: str) -> str:
    return sys.executable if command in ("python", "python3") else command


def _name_of_command(argv: list[str]) -> str:
    """A server's name from its command line: the module or package it runs, else the program
    (``python -m mcp_server_time`` -> ``mcp_server_time``, ``npx -y @scope/server-git`` ->
    ``@scope/server-git``)."""
    program = Path(argv[0]).name
    if "-m" in argv[1:-1]:
        return argv[argv.index("-m", 1) + 1]
    if "-c" in argv[1:] or "-e" in argv[1:]:  # inline code names nothing
        return Path(program).stem
    words = [a for a in argv[1:] if not a.startswith("-")]
    if program.startswith(("python", "node", "npx", "uvx", "bunx", "deno", "pipx")) and words:
        if words[0] in ("run", "exec") and len(words) > 1:
            return Path(words[1]).stem
        return Path(words[0]).stem if words[0].endswith((".py", ".js", ".ts")) else words[0]
    return Path(program).stem


def _name_of_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "http"
    if host in ("localhost", "127.0.0.1", "::1") or host.replace(".", "").isdigit():
        host = "local"
    else:
        host = host.split(".")[0] if host.count(".") < 2 else host.split(".")[-2]
    return f"{host}_{parts.port}" if parts.port else host
