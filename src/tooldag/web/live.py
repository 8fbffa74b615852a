"""What the viewer reads from the run store: a run's snapshot, one step's details, and the new
events since a cursor, in the JSON the page draws from.

The store is the source of truth, whichever process runs the run: the page loads a snapshot
(the run's row, its steps, every plan version drawn as SVG, and the event log up to a cursor),
then asks for the events after that cursor, in batches (:func:`poll`). Outputs and arguments
stay out of both (a step's can be megabytes): :func:`step_detail` has them, when a step is
opened.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from ..durable.store import RunInfo, RunStore
from ..plan.model import Plan
from ..plan.svg import STATUS_PALETTE, plan_graph
from ..result import RunStatus, StepRecord

__all__ = [
    "CANCELLABLE",
    "MAX_DETAIL_CHARS",
    "PlanCache",
    "compact_events",
    "plan_diff",
    "poll",
    "run_json",
    "snapshot",
    "step_detail",
]

# What the page's cancel button may be pressed for: runs that are going (in this process or
# another) or stopped with effects to undo.
CANCELLABLE = frozenset(
    {*(s for s in RunStatus if s.resumable), RunStatus.RUNNING, RunStatus.BUDGET_EXCEEDED}
)
MAX_DETAIL_CHARS = 200_000  # of an output or arguments shown in a step's panel


class PlanCache:
    """Plan versions as the page draws them (their graph as SVG, their steps, edges and what
    changed from the version before), the newest few kept: a version never changes once
    stored, and a 2,000-step plan takes a fraction of a second to lay out."""

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, run_id: str, version: int, plan: Plan, before: Plan | None) -> dict[str, Any]:
        key = (run_id, version)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        nodes, edges = plan_graph(plan)
        item = {
            "version": version,
            "steps": [n.id for n in nodes],
            "tools": [n.label for n in nodes],
            "edges": [[e.source, e.target] for e in edges],
            # Drawn without statuses: the page colours the boxes itself, as events come in.
            "svg": plan.to_svg(),
            "diff": plan_diff(before, plan),
        }
        with self._lock:
            self._items[key] = item
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return item


def run_json(info: RunInfo) -> dict[str, Any]:
    """The run's row for the page: what ``runs list --json`` shows, and what its buttons may do."""
    out = info.to_json()
    status = info.status
    out["resumable"] = status.resumable
    out["cancellable"] = status in CANCELLABLE
    if info.interrupted:
        out["error"] = (
            f"interrupted: process {info.owner_pid} on {info.owner_host} is gone; Resume "
            "continues the run"
        )
    return out


def compact_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as the page wants them: no empty keys (a 2,000-step run has thousands)."""
    return [{k: v for k, v in e.items() if v not in (None, {}, 0) or k == "seq"} for e in events]


def _step_json(record: StepRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.id,
        "tool": record.tool,
        "status": record.status.value,
        "attempts": record.attempts,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
    }
    if record.error is not None:
        out["error"] = str(record.error)
    if record.reason:
        out["reason"] = record.reason
    if record.reused:
        out["reused"] = True
    return out


def plan_diff(before: Plan | None, after: Plan) -> dict[str, list[str]]:
    """Which steps a plan version added, removed and changed against the one before it."""
    if before is None:
        return {"added": [], "removed": [], "changed": []}
    old = {s.id: s.to_json() for s in before.steps}
    new = {s.id: s.to_json() for s in after.steps}
    return {
        "added": [k for k in new if k not in old],
        "removed": [k for k in old if k not in new],
        "changed": [k for k in new if k in old and new[k] != old[k]],
    }


def snapshot(store: RunStore, run_id: str, plans: PlanCache) -> dict[str, Any] | None:
    """Everything the run page draws first, or ``None`` for an unknown run: the run's row, its
    plan versions, and its event log up to a cursor. The page replays the log to know each
    step's story (the step rows are made from the same events, and reading them would cost
    every output); the events after the cursor, which it reads next, bring it up to date."""
    events = store.events_since(run_id)
    info = store.get_run(run_id)
    if info is None:
        return None
    versions = store.plans(run_id)
    drawn = [
        plans.get(run_id, n, plan, versions[n - 2] if n > 1 else None)
        for n, plan in enumerate(versions, start=1)
    ]
    return {
        "run": run_json(info),
        "plans": drawn,
        "events": compact_events(events),
        "cursor": events[-1]["seq"] if events else 0,
        "palette": STATUS_PALETTE,
    }


def _shown(value: Any) -> tuple[str, bool]:
    """A value as indented JSON text, cut at :data:`MAX_DETAIL_CHARS` (and whether it was)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_DETAIL_CHARS:
        return text[:MAX_DETAIL_CHARS], True
    return text, False


def step_detail(store: RunStore, run_id: str, step_id: str) -> dict[str, Any] | None:
    """One step: its record with arguments and output (as text, cut when huge), the step as the
    latest plan wrote it, and its attempts from the event log."""
    if store.get_run(run_id) is None:
        return None
    result = store.load_result(run_id)
    record = result.steps.get(step_id)
    if record is None:
        return None
    out = _step_json(record)
    out["args"], out["args_cut"] = _shown(record.args)
    out["output"], out["output_cut"] = _shown(record.output)
    planned = None
    if result.plan is not None:
        planned = next((s.to_json() for s in result.plan.steps if s.id == step_id), None)
    out["planned"], _ = _shown(planned)
    out["events"] = compact_events(
        [e for e in store.events_since(run_id) if e["step_id"] == step_id]
    )
    return out


def poll(store: RunStore, run_id: str, cursor: int) -> tuple[list[dict[str, Any]], RunInfo | None]:
    """The events after ``cursor`` and, when there are any, the run's row as it is now."""
    events = store.events_since(run_id, cursor)
    if not events:
        return [], None
    return compact_events(events), store.get_run(run_id)
