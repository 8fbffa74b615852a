"""What the run store reads, apart from how: the :class:`RunInfo` row.

Kept apart from :mod:`tooldag.durable.store` so that the store module is the SQLite plumbing alone;
every public name here is re-exported from :mod:`tooldag.durable.store`, which is where users import
them from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..result import RunStatus, Usage

__all__ = [
    "INTERRUPTED",
    "RunInfo",
    "with_counts",
]

# The string form of RunStatus.INTERRUPTED, kept for code written before that member existed.
INTERRUPTED = RunStatus.INTERRUPTED.value


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
