"""The probe that tells a live run owner from a dead one, on this machine.

A run row stored as ``running`` records its owner (pid, host, process start time). The run reads
as interrupted when that process is gone: a dead or zombie pid, a pid recycled by another process,
or, for this very process, a run it no longer executes (its executor died with an exception).
Kept apart from the store because it is about processes, not SQL: the SQLite backend asks
:func:`owner_gone` while the store reads rows, and every backend calls :func:`mark_live` /
:func:`forget_live` as runs start and end here. (A PostgreSQL store, shared by hosts that cannot
see each other's processes, judges by a lease instead: :mod:`~tooldag.durable._postgres`.)
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

__all__ = ["forget_live", "is_live", "mark_live", "owner_gone", "owner_identity"]

_HOST = socket.gethostname()
# (store file, run id) of runs executing in this process: a row owned by this pid but absent here
# belongs to an executor that died with an exception, so it counts as interrupted.
_LIVE: set[tuple[str, str]] = set()
_LIVE_LOCK = threading.Lock()


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on: comm may hold spaces


def _process_token(pid: int) -> str | None:
    """The process start time (Linux): tells a live owner from a recycled pid."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


_SELF_TOKEN = _process_token(os.getpid())


def _owner_alive(pid: int | None, host: str | None, token: str | None) -> bool:
    if pid is None or host != _HOST or sys.platform == "win32":
        return True  # another machine (or no way to probe): assume it is still working
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):
            return False
        if token is not None and len(fields) > 19 and fields[19] != token:
            return False
    return True


def owner_identity() -> tuple[int, str, str | None]:
    """(pid, host, start-time token) of this process, as stored in a run row it owns."""
    return (os.getpid(), _HOST, _SELF_TOKEN)


def mark_live(store_key: str, run_id: str) -> None:
    """Note that this process is executing ``run_id`` of the store at ``store_key``."""
    with _LIVE_LOCK:
        _LIVE.add((store_key, run_id))


def forget_live(store_key: str, run_id: str) -> None:
    """This process no longer executes ``run_id`` (it finished or its executor died)."""
    with _LIVE_LOCK:
        _LIVE.discard((store_key, run_id))


def is_live(store_key: str, run_id: str) -> bool:
    """Whether this process executes ``run_id`` of the store at ``store_key``."""
    with _LIVE_LOCK:
        return (store_key, run_id) in _LIVE


def owner_gone(
    store_key: str, run_id: str, pid: int | None, host: str | None, token: str | None
) -> bool:
    """Whether the process recorded as running ``run_id`` is gone (the run is interrupted)."""
    if pid == os.getpid() and host == _HOST and token == _SELF_TOKEN:
        with _LIVE_LOCK:
            return (store_key, run_id) not in _LIVE
    return not _owner_alive(pid, host, token)
