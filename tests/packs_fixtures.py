"""Helpers shared by the tests of the built-in tool packs (tests/test_pack_*.py).

Plain functions rather than fixtures, so each test module states which ones it uses.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tooldag.registry import ToolRegistry
from tooldag.registry.loading import load_tools

__all__ = ["fake_dns", "make_sqlite", "pack_registry"]


def pack_registry(*packs: str) -> ToolRegistry:
    """A registry of the named built-in packs, loaded the way ``--tools NAME`` loads them."""
    registry = ToolRegistry()
    for pack in packs:
        registry.extend(load_tools(pack))
    return registry


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: Mapping[str, Sequence[str]]) -> list[str]:
    """Answer ``http_get``'s name lookups from ``table`` (no test may reach a real resolver).

    IP literals resolve to themselves, as they do in the real resolver. Returns the list of
    looked-up host names, in order.
    """
    from tooldag.packs import web

    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        looked_up.append(host)
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        if host not in table:
            from tooldag.errors import PermanentToolError

            raise PermanentToolError(f"no such host {host!r}; check the URL")
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(web, "_resolve", resolve)
    return looked_up


def make_sqlite(path: Path, script: str) -> Path:
    """A real SQLite file at ``path`` built by ``script``."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
        conn.commit()
    finally:
        conn.close()
    return path
