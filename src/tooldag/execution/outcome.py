"""What a finished run reports: its status, what went wrong, its rendered answer, and the
``run_finished`` event that says so.

Pure functions of the step records, kept apart from the scheduler (:mod:`tooldag.execution.run`),
which calls them once, when the run concludes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import ReferenceResolutionError
from ..events import Event, RunFinished
from ..plan.model import LLM_ANSWER
from ..plan.refs import BadReference, Ref, lookup, parse_string, render_text
from ..result import RunStatus, StepError, StepStatus

__all__ = [
    "BAD_STATUSES",
    "StepOutcome",
    "finished_event",
    "render_answer",
    "run_problems",
    "run_status",
]


class StepOutcome(Protocol):
    """What these functions read of a step: a :class:`~tooldag.result.StepRecord`, or the
    executor's live state of a step (which a run's records are built from only when read)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> StepStatus: ...
    @property
    def error(self) -> StepError | None: ...


# A step in one of these blocks its dependants and fails the run.
BAD_STATUSES = frozenset({StepStatus.FAILED, StepStatus.BLOCKED, StepStatus.CANCELLED})


def render_answer(
    template: str | None,
    outputs: Mapping[str, Any],
    records: Mapping[str, StepOutcome] | None = None,
) -> str | None:
    """Render a plan's ``answer`` over step outputs.

    A reference that cannot be read (its step was skipped, failed, blocked, or its output lacks the
    key) renders as a bracketed placeholder saying why, never as an error.
    """
    if template is None or template.strip() == LLM_ANSWER:
        return None  # "llm": the answer is the join's to write
    parsed = parse_string(template)
    if isinstance(parsed, str | BadReference):
        return parsed if isinstance(parsed, str) else template
    parts = (parsed,) if isinstance(parsed, Ref) else parsed.parts
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part.step in outputs:
            try:
                out.append(render_text(lookup(part, outputs)))
            except ReferenceResolutionError as exc:
                out.append(f"[{part} unavailable: {exc.reason}]")
        else:
            record = records.get(part.step) if records is not None else None
            why = f"{part.step} {record.status.value}" if record else f"no step {part.step!r}"
            out.append(f"[{part} unavailable: {why}]")
    return "".join(out)


def run_status(
    records: Mapping[str, StepOutcome],
    *,
    cancelled: bool,
    paused: bool,
    fatal: str | None,
    rejected: str | None = None,
) -> RunStatus:
    """The status of a run whose steps ended as ``records``; a run left with pending steps is
    paused only if a pause was asked for; a run a gate aborted (``rejected``, why) is rejected."""
    if cancelled:
        return RunStatus.CANCELLED
    if rejected:
        return RunStatus.REJECTED
    if fatal or any(r.status in BAD_STATUSES for r in records.values()):
        return RunStatus.FAILED
    if any(r.status is StepStatus.PENDING for r in records.values()):
        return RunStatus.PAUSED if paused else RunStatus.FAILED
    return RunStatus.SUCCEEDED


def run_problems(
    records: Mapping[str, StepOutcome],
    *,
    cancelled: bool,
    fatal: str | None,
    rejected: str | None = None,
) -> list[str]:
    """What went wrong, in a few lines (RunResult.error)."""
    problems: list[str] = []
    if cancelled:
        problems.append("the run was cancelled")
    if rejected:
        problems.append(rejected)
    if fatal:
        problems.append(fatal)
    failed = [r for r in records.values() if r.status is StepStatus.FAILED]
    for record in failed[:3]:
        message = record.error.message if record.error else "failed"
        if not message.startswith(f"step {record.id!r}"):
            message = f"step {record.id!r} failed: {message}"
        problems.append(message)
    if len(failed) > 3:
        problems.append(f"{len(failed) - 3} more steps failed")
    blocked = [r.id for r in records.values() if r.status is StepStatus.BLOCKED]
    if blocked:
        problems.append(f"blocked: {', '.join(blocked)}")
    return problems


def finished_event(
    run_id: str,
    status: RunStatus,
    *,
    answer: str | None,
    error: str | None,
    final: bool,
    duration: float | None = None,
) -> Event:
    """The ``run_finished`` event. Whoever drives a run emits it: the executor once per execution
    (``final`` false when its caller may go on under the same run id, as the agent does when it
    may replan), and the agent or the durable runner for the end of a run they drive."""
    return Event(RunFinished(status, answer, error, final), run_id, None, 0, duration)
