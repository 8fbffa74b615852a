"""What an evaluation found: one :class:`GoalOutcome` a goal, and the :class:`Summary` over them,
both to and from JSON (``tooldag eval --json`` / ``--output``, read back by ``--compare``).

The figures of a summary:

- ``valid_first``: goals whose first reply was a valid plan (no re-ask), of all goals;
- ``valid``: goals that got a valid plan at all, after at most ``max_reasks`` re-asks;
- ``succeeded``: runs that succeeded, of the goals that were to run (planned-only goals, such as
  imported ones, are not counted);
- ``answer_correct``: right answers, of the goals that were to run and have an expected answer
  (a goal with no valid plan or a failed run has no answer: wrong);
- ``node_f1`` / ``edge_f1`` / ``args_f1``: TaskBench's F1 of the first valid plan (else of the
  last reply, when it parses) against the gold plan, pooled over the goals that have one (see
  :mod:`tooldag.evaluation.metrics`);
- ``llm_calls`` / ``tokens``: per goal, on average (plans, re-asks, replans and the LLM calls of
  text tools);
- ``latency_p50`` / ``latency_p95``: seconds from a goal's start (once a slot is free) to its end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from .metrics import Counts, percentile

__all__ = ["EvalResult", "GoalOutcome", "OUTCOME_STATUSES", "Rate", "Summary"]

RESULT_VERSION = 1

OUTCOME_STATUSES = (
    "succeeded",  # ran, and the run succeeded
    "failed",  # ran, and the run failed (after its replans)
    "no_plan",  # no valid plan within the re-asks
    "planned",  # planned only (schema-only tools): a valid plan
    "refused",  # the plan would send data off the machine (see tooldag eval)
    "timeout",  # the goal took longer than the per-goal timeout
    "error",  # the LLM could not be reached, or the goal's workspace could not be built
    "cancelled",
    "rejected",
    "budget_exceeded",
)


@dataclass
class GoalOutcome:
    """How one goal went."""

    id: str
    goal: str
    status: str
    executed: bool
    """Whether the goal was to run (false: planned only)."""
    valid_first: bool = False
    valid: bool = False
    reasks: int = 0
    """Re-asks before the first valid plan (or all of them, when none came)."""
    replans: int = 0
    answer: str | None = None
    expected: str | None = None
    """How the expected answer reads (``397.8 ± 0.01``), if the goal has one."""
    answer_correct: bool | None = None
    node: Counts | None = None
    edge: Counts | None = None
    args: Counts | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    error: str | None = None
    plan: dict[str, Any] | None = None
    """The plan scored against the gold one (the first valid plan), as JSON."""
    tags: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("node", "edge", "args"):
            counts = getattr(self, key)
            data[key] = None if counts is None else {**counts.to_json(), "f1": counts.f1}
        data["tokens"] = self.tokens
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GoalOutcome:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("node", "edge", "args"):
            values[key] = Counts.from_json(data.get(key))
        return cls(**values)


@dataclass(frozen=True)
class Rate:
    """``count`` of ``total`` (``value`` is None when there is nothing to count)."""

    count: int
    total: int

    @property
    def value(self) -> float | None:
        return self.count / self.total if self.total else None

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "rate": self.value}


@dataclass(frozen=True)
class Summary:
    """The figures over all goals (see the module docstring)."""

    goals: int
    valid_first: Rate
    valid: Rate
    succeeded: Rate
    answer_correct: Rate
    node: Counts
    edge: Counts
    args: Counts
    llm_calls: float | None
    tokens: float | None
    latency_p50: float | None
    latency_p95: float | None
    reasks: int
    replans: int
    statuses: dict[str, int]

    @classmethod
    def of(cls, outcomes: Sequence[GoalOutcome]) -> Summary:
        n = len(outcomes)
        run = [o for o in outcomes if o.executed]
        checked = [o for o in run if o.answer_correct is not None]
        latencies = [o.latency for o in outcomes]
        return cls(
            goals=n,
            valid_first=Rate(sum(o.valid_first for o in outcomes), n),
            valid=Rate(sum(o.valid for o in outcomes), n),
            succeeded=Rate(sum(o.status == "succeeded" for o in run), len(run)),
            answer_correct=Rate(sum(bool(o.answer_correct) for o in checked), len(checked)),
            node=Counts.total(o.node for o in outcomes),
            edge=Counts.total(o.edge for o in outcomes),
            args=Counts.total(o.args for o in outcomes),
            llm_calls=sum(o.llm_calls for o in outcomes) / n if n else None,
            tokens=sum(o.tokens for o in outcomes) / n if n else None,
            latency_p50=percentile(latencies, 50),
            latency_p95=percentile(latencies, 95),
            reasks=sum(o.reasks for o in outcomes),
            replans=sum(o.replans for o in outcomes),
            statuses=dict(Counter(o.status for o in outcomes)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "goals": self.goals,
            "valid_first": self.valid_first.to_json(),
            "valid": self.valid.to_json(),
            "succeeded": self.succeeded.to_json(),
            "answer_correct": self.answer_correct.to_json(),
            "node_f1": self.node.f1,
            "edge_f1": self.edge.f1,
            "args_f1": self.args.f1,
            "node": self.node.to_json(),
            "edge": self.edge.to_json(),
            "args": self.args.to_json(),
            "llm_calls_per_goal": self.llm_calls,
            "tokens_per_goal": self.tokens,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
            "reasks": self.reasks,
            "replans": self.replans,
            "statuses": self.statuses,
        }


@dataclass
class EvalResult:
    """An evaluation: what ran it (``meta``: model, endpoint, goal set, options) and the
    outcome of each goal, in the order of the goal set."""

    outcomes: list[GoalOutcome]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RESULT_VERSION,
            "meta": self.meta,
            "summary": self.summary.to_json(),
            "goals": [o.to_json() for o in self.outcomes],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "the results") -> EvalResult:
        """Read back what :meth:`to_json` wrote (ConfigError when it is something else)."""
        if not isinstance(data, dict) or not isinstance(data.get("goals"), list):
            raise ConfigError(
                f"{source} is not a tooldag eval result (write one with tooldag eval --output)"
            )
        if data.get("version") != RESULT_VERSION:
            raise ConfigError(
                f"{source} is a tooldag eval result of version {data.get('version')!r}; this "
                f"tooldag reads version {RESULT_VERSION}"
            )
        try:
            outcomes = [GoalOutcome.from_json(g) for g in data["goals"]]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: a goal's record is malformed ({exc})") from None
        return cls(outcomes, dict(data.get("meta") or {}))
