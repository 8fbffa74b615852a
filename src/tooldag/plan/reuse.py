"""Which completed outputs a new plan may take as they are, instead of running steps again.

One rule serves both a replan (the planner's new plan after a failure) and a resume or restart of
a stored run: a step's output is reused when the step makes the same call as before (same tool,
arguments and condition) and everything it depends on is reused too, so a reused step always
read the same inputs. Outputs of completed steps the new plan does not contain stay available
to its references.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import Any

from .model import Plan, Step

__all__ = ["reusable_outputs", "same_call"]


def same_call(a: Step, b: Step) -> bool:
    """Whether two steps call the same tool with the same arguments under the same condition
    (ids, descriptions, timeouts and ordering-only edges do not change what a step computes)."""
    return a.tool == b.tool and a.args == b.args and a.when == b.when


def reusable_outputs(
    *, previous: Plan | None, plan: Plan, outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The completed ``outputs`` (of steps of ``previous``) that ``plan`` may reuse.

    Keyword-only: ``previous`` and ``plan`` are both plans, and swapped they give another answer
    without an error. Linear in steps + edges: one topological pass over ``plan``.
    """
    ids = set(plan.ids)
    keep = {k: v for k, v in outputs.items() if k not in ids}
    if previous is None:
        return keep
    before = {s.id: s for s in previous.steps}
    graph = {s.id: [d for d in s.dependencies() if d in ids] for s in plan.steps}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return keep  # the validator and executor reject the plan and say why
    for step_id in order:
        step = plan.step(step_id)
        old = before.get(step_id)
        if (
            step_id in outputs
            and old is not None
            and same_call(old, step)
            and all(dep in keep for dep in step.dependencies())
        ):
            keep[step_id] = outputs[step_id]
    return keep
