"""How close a plan comes to the gold plan: node, edge and argument F1 as TaskBench defines them,
and the percentiles of the latency figures.

TaskBench (Shen et al., "TaskBench: Benchmarking Large Language Models for Task Automation",
NeurIPS 2024; the evaluation script ``taskbench/evaluate.py`` in microsoft/JARVIS) scores a
predicted tool graph against the gold one on three sets per sample:

- **nodes**: the tool names of the graph. Its ``flatten`` builds, per sample, the union of the
  gold and predicted names *as a set* and marks each name present or absent on either side, so
  a tool used twice counts once (set semantics, not a multiset);
- **edges** ("links"): ``(source tool, target tool)`` pairs, one for each dependency (an argument
  that reads another node's output), again as a set of pairs;
- **arguments** (``task-argname-value``): ``(tool, argument name, value)`` triples, where an
  argument that reads another node's output has that node's *tool name* as its value.

Precision, recall and F1 are then computed over the pooled binary labels of every sample
(scikit-learn's ``precision_recall_fscore_support``, ``average="micro"`` / ``"binary"``): that
is, true and false positives and false negatives are summed over all samples before F1 is taken.
:class:`Counts` is those three numbers for one sample; add them up and read :attr:`Counts.f1`.

Two deliberate differences, both stricter or better defined than the script:

- TaskBench scores node names only against its tool catalogue, so a predicted tool that does not
  exist is silently dropped; here it is a false positive (a hallucinated tool is a mistake).
- A sample with no gold and no predicted edges (a one-step plan) has nothing to score; its
  :class:`Counts` are all zero and :attr:`Counts.f1` is ``None`` rather than 0, and it adds
  nothing to the pooled figure (as in TaskBench's pooling).

Edges here are a step's dependencies: its references (in ``args`` and ``when``) and
``depends_on``, TaskBench's resource and temporal dependencies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..plan.model import Plan
from ..plan.refs import BadReference, Ref, Template, format_path, parse_string

__all__ = [
    "Counts",
    "arg_triples",
    "argument_counts",
    "edge_counts",
    "edges",
    "node_counts",
    "nodes",
    "percentile",
    "set_counts",
]


@dataclass(frozen=True, slots=True)
class Counts:
    """True positives, false positives and false negatives of one comparison (or a sum)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def empty(self) -> bool:
        """Nothing to score: neither side has anything."""
        return self.tp == self.fp == self.fn == 0

    @property
    def precision(self) -> float | None:
        return None if self.empty else (self.tp / (self.tp + self.fp) if self.tp else 0.0)

    @property
    def recall(self) -> float | None:
        return None if self.empty else (self.tp / (self.tp + self.fn) if self.tp else 0.0)

    @property
    def f1(self) -> float | None:
        """2·TP / (2·TP + FP + FN); ``None`` when there is nothing to score."""
        if self.empty:
            return None
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    def to_json(self) -> dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn}

    @classmethod
    def from_json(cls, data: Any) -> Counts | None:
        if not isinstance(data, dict):
            return None
        return cls(int(data.get("tp", 0)), int(data.get("fp", 0)), int(data.get("fn", 0)))

    @classmethod
    def total(cls, counts: Iterable[Counts | None]) -> Counts:
        out = cls()
        for c in counts:
            if c is not None:
                out = out + c
        return out


def set_counts(predicted: Iterable[Any], gold: Iterable[Any]) -> Counts:
    """Counts of two collections compared as sets (duplicates collapse, as in TaskBench)."""
    p, g = set(predicted), set(gold)
    return Counts(tp=len(p & g), fp=len(p - g), fn=len(g - p))


def nodes(plan: Plan | None) -> set[str]:
    """The tool names a plan calls."""
    return set() if plan is None else {s.tool for s in plan.steps}


def edges(plan: Plan | None) -> set[tuple[str, str]]:
    """``(tool of the dependency, tool of the step)`` for every dependency of every step.

    A dependency on an id the plan does not have (an invalid plan) has no tool and is left out.
    """
    if plan is None:
        return set()
    tool_of = {s.id: s.tool for s in plan.steps}
    return {
        (tool_of[dep], step.tool)
        for step in plan.steps
        for dep in step.dependencies()
        if dep in tool_of and dep != step.id
    }


def _grounded(value: Any, tool_of: dict[str, str]) -> Any:
    """``value`` with each reference's step id replaced by that step's tool name (TaskBench
    gives a dependency argument the source node's tool as its value), so that two plans that
    name their steps differently compare equal."""
    if isinstance(value, dict):
        return {k: _grounded(v, tool_of) for k, v in value.items()}
    if isinstance(value, list):
        return [_grounded(v, tool_of) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    parsed = parse_string(value)

    def name(ref: Ref) -> str:
        return tool_of.get(ref.step, ref.step) + format_path(ref.path)

    if isinstance(parsed, Ref):
        return "$" + name(parsed)
    if isinstance(parsed, Template):
        return "".join(p if isinstance(p, str) else "${" + name(p) + "}" for p in parsed.parts)
    if isinstance(parsed, BadReference):
        return value
    return parsed


def arg_triples(plan: Plan | None) -> set[tuple[str, str, str]]:
    """``(tool, argument, value as canonical JSON)`` for every argument of every step."""
    if plan is None:
        return set()
    tool_of = {s.id: s.tool for s in plan.steps}
    return {
        (step.tool, name, json.dumps(_grounded(value, tool_of), sort_keys=True, default=str))
        for step in plan.steps
        for name, value in step.args.items()
    }


def node_counts(predicted: Plan | None, gold: Plan) -> Counts:
    """TaskBench's node comparison: tool names as sets."""
    return set_counts(nodes(predicted), nodes(gold))


def edge_counts(predicted: Plan | None, gold: Plan) -> Counts:
    """TaskBench's edge ("link") comparison: ``(tool, tool)`` dependency pairs as sets."""
    return set_counts(edges(predicted), edges(gold))


def argument_counts(predicted: Plan | None, gold: Plan) -> Counts:
    """TaskBench's ``task-argname-value`` comparison: ``(tool, argument, value)`` as sets."""
    return set_counts(arg_triples(predicted), arg_triples(gold))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between the closest ranks (the
    "linear" method of NumPy and ``statistics.quantiles(method="inclusive")``); ``None`` for no
    values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q is a percentage between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
