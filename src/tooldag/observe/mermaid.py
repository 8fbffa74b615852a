"""The plan as a Mermaid flowchart, optionally coloured by step status (the seed's ``visualize()``).

>>> from tooldag.plan.model import Plan
>>> plan = Plan.model_validate({"steps": [
...     {"id": "a", "tool": "t", "args": {}}, {"id": "b", "tool": "t", "args": {"x": "$a"}}]})
>>> print(to_mermaid(plan))
flowchart TD
    a["a<br/><small>t</small>"]
    b["b<br/><small>t</small>"]
    a --> b
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..plan.model import Plan
from ..result import StepStatus

__all__ = ["STATUS_COLOURS", "to_mermaid"]

STATUS_COLOURS: dict[StepStatus, str] = {
    StepStatus.PENDING: "fill:#eeeeee,stroke:#999999",
    StepStatus.RUNNING: "fill:#fff3b0,stroke:#e0a800",
    StepStatus.SUCCEEDED: "fill:#c8f7c5,stroke:#2e8b57",
    StepStatus.FAILED: "fill:#f8c4c4,stroke:#c0392b",
    StepStatus.SKIPPED: "fill:#e0e0ff,stroke:#6a5acd",
    StepStatus.BLOCKED: "fill:#f5d0a9,stroke:#d35400",
    StepStatus.CANCELLED: "fill:#d6d6d6,stroke:#555555",
    StepStatus.COMPENSATED: "fill:#d0e7ff,stroke:#1f618d",
}


def _node_ids(plan: Plan) -> dict[str, str]:
    """A Mermaid node id per step id: ASCII word characters, not a Mermaid keyword, and distinct
    even when two step ids only differ in characters that had to be replaced."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for i, step_id in enumerate(dict.fromkeys(plan.ids)):
        safe = re.sub(r"[^A-Za-z0-9_]", "_", step_id) or "_"
        if safe.lower() in {"end", "graph", "subgraph", "style", "class", "flowchart"}:
            safe = f"s_{safe}"
        if safe in used:
            safe = f"{safe}_{i}"
        used.add(safe)
        out[step_id] = safe
    return out


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "&lt;").replace(">", "&gt;")


def to_mermaid(plan: Plan, statuses: Mapping[str, StepStatus | str] | None = None) -> str:
    """A ``flowchart TD`` of the plan: one node per step (id and tool), an edge per dependency
    (dotted for ``depends_on``-only ordering, labelled ``when`` for conditional steps), and, when
    ``statuses`` is given, a class per status."""
    lines = ["flowchart TD"]
    node = _node_ids(plan)
    for step in plan.steps:
        label = f"{_label(step.id)}<br/><small>{_label(step.tool)}</small>"
        shape = ("{{", "}}") if step.when is not None else ("[", "]")
        lines.append(f'    {node[step.id]}{shape[0]}"{label}"{shape[1]}')
    ids = set(plan.ids)
    for step in plan.steps:
        data = set(step.data_dependencies())
        for dep in step.dependencies():
            if dep not in ids:
                continue
            arrow = "-->" if dep in data else "-.->"
            lines.append(f"    {node[dep]} {arrow} {node[step.id]}")
    if statuses:
        used: set[StepStatus] = set()
        for step in plan.steps:
            raw = statuses.get(step.id)
            if raw is None:
                continue
            status = StepStatus(raw)
            used.add(status)
            lines.append(f"    class {node[step.id]} {status.value}")
        for status in sorted(used, key=lambda s: s.value):
            lines.append(f"    classDef {status.value} {STATUS_COLOURS[status]}")
    return "\n".join(lines)
