"""What the run store reads, apart from how: the :class:`RunInfo` row, and the probe that tells a
live run owner from a dead one.

Kept apart from :mod:`tooldag.durable.store` so that the store module is the SQLite plumbing alone;
every public name here is re-exported from :mod:`tooldag.durable.store`, which is where users import
them from.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..result import RunStatus, Usage

__all__ = [
    "INTERRUPTED",
    "RunInfo",
    "forget_live",
    "mark_live",
    "owner_gone",
    "owner_identity",
    "with_counts",
]

# The string form of RunStatus.INTERRUPTED, kept for code written before that member existed.
INTERRUPTED = RunStatus.INTERRUPTED.value


# --------------------------------------------------------------------------- liveness

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


def owner_gone(
    store_key: str, run_id: str, pid: int | None, host: str | None, token: str | None
) -> bool:
    """Whether the process recorded as running ``run_id`` is gone (the run is interrupted)."""
    if pid == os.getpid() and host == _HOST and token == _SELF_TOKEN:
        with _LIVE_LOCK:
            return (store_key, run_id) not in _LIVE
    return not _owner_alive(pid, host, token)


# --------------------------------------------------------------------------- RunInfo


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's row: what ``tooldag runs list`` shows. ``status`` is
    :attr:`RunStatus.INTERRUPTED` for a run stored as running whose process is gone."""

    id: str
    goal: str
    stored_status: RunStatus
    created_at: float
    updated_at: float
    finished_at: float | None
    answer: str | None
    error: str | None
    usage: Usage
    plan_versions: int
    owner_pid: int | None
    owner_host: str | None
    interrupted: bool
    step_counts: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        return RunStatus.INTERRUPTED if self.interrupted else self.stored_status

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "goal": self.goal,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "answer": self.answer,
            "error": self.error,
            "usage": self.usage.to_dict(),
            "plan_versions": self.plan_versions,
            "steps": dict(self.step_counts),
            "owner": f"{self.owner_pid}@{self.owner_host}" if self.owner_pid else None,
        }


def with_counts(info: RunInfo, counts: dict[str, int]) -> RunInfo:
    return dataclasses.replace(info, step_counts=counts)
