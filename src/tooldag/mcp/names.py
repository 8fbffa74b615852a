"""MCP tool names as OpenAI function names, and back.

OpenAI takes ``^[A-Za-z0-9_-]{1,64}$`` (and a registry name starts with a letter or ``_``); MCP
servers name tools freely (``files.read``, ``repo/search``, names of any length), and two
servers may both have a ``search``. So every MCP tool is registered as ``<server>__<tool>``:
the server's prefix keeps servers apart, characters OpenAI refuses become ``_``, and a name
that is still too long, or taken, is cut and given a short hash of the original, which keeps
it stable from run to run. The original name travels with the tool (its metadata), which is
what a call sends back to the server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection

__all__ = ["MAX_NAME", "SEPARATOR", "server_prefix", "tool_name"]

MAX_NAME = 64
SEPARATOR = "__"
_INVALID = re.compile(r"[^A-Za-z0-9_-]+")
# Server names are short labels: the common packaging words say nothing about the server.
_NOISE = re.compile(r"^(?:mcp[-_]?server[-_]?|server[-_]?|mcp[-_])|(?:[-_]mcp|[-_]server)$", re.I)
_MAX_PREFIX = 24


def _clean(text: str) -> str:
    cleaned = _INVALID.sub("_", text).strip("_")
    if cleaned and not (cleaned[0].isalpha() or cleaned[0] == "_"):
        cleaned = "_" + cleaned
    return cleaned


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def server_prefix(name: str) -> str:
    """A server's name (a config key, a package, a host) as a short name prefix.

    >>> server_prefix("mcp_server_time"), server_prefix("@modelcontextprotocol/server-git")
    ('time', 'git')
    """
    label = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or name
    while (shorter := _NOISE.sub("", label)) not in (label, ""):
        label = shorter
    cleaned = _clean(label) or "mcp"
    if len(cleaned) > _MAX_PREFIX:
        cleaned = cleaned[: _MAX_PREFIX - 9].rstrip("_-") + "_" + _digest(name)
    return cleaned


def tool_name(prefix: str, original: str, taken: Collection[str] = ()) -> str:
    """The registry name of the server ``prefix``'s tool ``original``: valid for OpenAI,
    unique among ``taken``, and the same for the same inputs.

    >>> tool_name("git", "status"), tool_name("fs", "read.file"), tool_name("fs", "read/file")
    ('git__status', 'fs__read_file', 'fs__read_file')
    >>> tool_name("fs", "read/file", taken={"fs__read_file"})
    'fs__read_file_b0f63943'
    """
    base = f"{prefix}{SEPARATOR}{_INVALID.sub('_', original) or 'tool'}"
    if len(base) <= MAX_NAME and base not in taken:
        return base
    suffix = "_" + _digest(f"{prefix}{SEPARATOR}{original}")
    return base[: MAX_NAME - len(suffix)].rstrip("_-") + suffix
