"""MCP servers as tool sources: ``--tools mcp:stdio:COMMAND``, ``mcp:http://...``, host configs.

:mod:`~tooldag.mcp.config` reads which servers a SPEC names (``mcp:`` specs, ``{"mcpServers":
...}`` files), :mod:`~tooldag.mcp.names` maps MCP tool names to OpenAI function names, and
:mod:`~tooldag.mcp.client` lists a server's tools as registry tools and calls them, one session
per server per run.

Importing this package plugs those SPECs into :func:`tooldag.registry.loading.load_registry`
(``import tooldag`` does), so ``load_registry(["mcp:stdio:python -m mcp_server_time"])``,
``plan_and_run(goal, tools=[...])`` and every ``--tools`` take them. The MCP SDK itself is
imported only when such a SPEC is loaded (``pip install 'tooldag[mcp]'``).
"""

from __future__ import annotations

from pathlib import Path

from ..registry.loading import add_tool_source
from ..registry.registry import Tool
from .client import Connection, aload_tools, load_tools, mcp_tools
from .config import ServerConfig, is_mcp_config, is_mcp_spec

__all__ = ["Connection", "ServerConfig", "aload_tools", "load_tools", "mcp_tools"]


def _source(spec: str) -> list[Tool] | None:
    """The ``--tools`` kind this package adds: ``mcp:...``, or a JSON file of ``mcpServers``."""
    if is_mcp_spec(spec) or (spec.endswith(".json") and is_mcp_config(Path(spec))):
        return load_tools(spec)
    return None


add_tool_source(_source)
