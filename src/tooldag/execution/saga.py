"""Compensation (the saga pattern): undo what a run did when the run is abandoned.

Every succeeded step whose tool declares ``compensate`` is undone, one at a time, last finished
first. The undo's arguments are built from the step's own arguments and output (``$args.x``,
``$output.y``). A compensation that fails is recorded on its step and reported, never hidden:
the other compensations still run, because leaving more side effects behind is worse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..events import Event, EventBus, EventType
from ..plan.refs import resolve
from ..registry.registry import ToolRegistry
from ..result import StepRecord, StepStatus
from .invoke import Invoker, error_of

__all__ = ["compensate_records"]

log = logging.getLogger("tooldag.saga")


def _emit(bus: EventBus, event: Event) -> None:
    # Undoing side effects matters more than recording that we did: go on if the journal fails.
    try:
        bus.emit(event)
    except Exception:
        log.exception("could not record %s of step %s", event.type, event.step_id)


def _failed(bus: EventBus, run_id: str, record: StepRecord, tool: str, exc: BaseException) -> str:
    error = error_of(exc)
    error.message = f"compensation {tool!r} of step {record.id!r} failed: {error.message}"
    record.error = error
    _emit(
        bus,
        Event(
            EventType.STEP_COMPENSATION_FAILED,
            run_id,
            record.id,
            data={"tool": tool, "error": error.model_dump()},
        ),
    )
    return error.message


async def compensate_records(
    registry: ToolRegistry,
    bus: EventBus,
    run_id: str,
    records: Mapping[str, StepRecord],
    invoker: Invoker,
    *,
    default_timeout: float | None,
) -> list[str]:
    """Compensate ``records`` in place (status ``compensated``); returns the failure messages."""
    done = [r for r in records.values() if r.status is StepStatus.SUCCEEDED]
    done.sort(key=lambda r: r.finished_at or 0.0, reverse=True)
    failures: list[str] = []
    for record in done:
        try:
            compensation = registry.get(record.tool).compensate
        except Exception as exc:
            failures.append(_failed(bus, run_id, record, record.tool, exc))
            continue
        if compensation is None:
            continue
        try:
            scope = {"args": record.args or {}, "output": record.output}
            args = resolve(compensation.args, scope)
            tool = registry.get(compensation.tool)
            timeout = tool.timeout if tool.timeout is not None else default_timeout
            await invoker.call(
                tool,
                tool.validate_args(args),
                run_id=run_id,
                step_id=f"{record.id}:compensate",
                timeout=timeout,
            )
        except Exception as exc:
            failures.append(_failed(bus, run_id, record, compensation.tool, exc))
            continue
        record.status = StepStatus.COMPENSATED
        _emit(
            bus,
            Event(EventType.STEP_COMPENSATED, run_id, record.id, data={"tool": compensation.tool}),
        )
    return failures
