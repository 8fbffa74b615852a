"""Compensation (the saga pattern): undo what a run did when the run is abandoned.

A :class:`Ledger` belongs to whoever drives the run: the executor for a one-shot run, the agent
across its replans, the durable runner for a stopped run it cancels. Each execution's result is
recorded on it; :meth:`Ledger.compensate` undoes every recorded step whose tool declares
``compensate``, one at a time, last finished first, building the undo's arguments from the step's
own arguments and output (``$args.x``, ``$output.y``). A compensation that fails is returned as a
:class:`CompensationFailure`, never hidden, and the others still run: leaving more side effects
behind is worse.

>>> ledger = Ledger(result.run_id, executor.options)    # doctest: +SKIP
>>> ledger.record(result)                              # after each execution
>>> report = await ledger.compensate()                 # when the run is given up
>>> result = report.apply(result)                      # the result says what was undone
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..events import Event, Payload, StepCompensated, StepCompensationFailed
from ..plan.refs import resolve
from ..result import RunResult, StepError, StepRecord, StepRecords, StepStatus
from .invoke import Invoker, error_of
from .options import RunOptions

__all__ = ["CompensationFailure", "CompensationReport", "Ledger", "LedgerEntry"]

log = logging.getLogger("tooldag.saga")


@dataclass(frozen=True, slots=True)
class CompensationFailure:
    """A step whose effect stands: its compensation ``tool`` could not be run, or failed."""

    step_id: str
    tool: str
    error: StepError


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A step that succeeded in the ``execution``-th execution recorded on a ledger (from 1)."""

    execution: int
    record: StepRecord

    @property
    def key(self) -> str:
        """``step@execution``: how a step of an earlier execution appears in a run's result."""
        return f"{self.record.id}@{self.execution}"


@dataclass(frozen=True, slots=True)
class CompensationReport:
    """What :meth:`Ledger.compensate` did, in the order it did it.

    ``entries`` are the steps it acted on, as copies: ``compensated``, or still ``succeeded``
    with the error of the undo that failed (one of ``failures``).
    """

    entries: tuple[LedgerEntry, ...] = ()
    failures: tuple[CompensationFailure, ...] = ()
    # Step id -> the last execution on the ledger that ran it: the one a reused step stands for.
    latest: Mapping[str, int] = field(default_factory=dict, repr=False)

    @property
    def compensated(self) -> list[StepRecord]:
        return [e.record for e in self.entries if e.record.status is StepStatus.COMPENSATED]

    @property
    def error(self) -> str | None:
        """The failures in a line, or None."""
        return "; ".join(f.error.message for f in self.failures) or None

    def apply(self, result: RunResult) -> RunResult:
        """A copy of ``result`` that shows what was undone: its steps ``compensated`` (or carrying
        the error of a failed undo), a step of an earlier execution that ``result`` does not hold
        under its :attr:`LedgerEntry.key`, and each failure appended to ``error``."""
        if not self.entries:
            return result
        steps = dict(result.steps)
        for entry in self.entries:
            record = entry.record
            current = steps.get(record.id)
            if current is None or not self._stands_for(current, entry):
                steps[entry.key] = record  # an earlier execution's step the result does not keep
            elif record.status is StepStatus.COMPENSATED:
                steps[record.id] = current.model_copy(update={"status": record.status})
            else:
                steps[record.id] = current.model_copy(update={"error": record.error})
        error = "; ".join(m for m in (result.error, self.error) if m) or None
        return result.model_copy(update={"steps": StepRecords(steps), "error": error})

    def _stands_for(self, current: StepRecord, entry: LedgerEntry) -> bool:
        """Whether a result's step is the effect ``entry`` recorded: the same finish, or a reuse of
        the last execution that ran the step."""
        if current.status is not StepStatus.SUCCEEDED:
            return False
        if current.reused:
            return self.latest.get(current.id) == entry.execution
        return current.finished_at == entry.record.finished_at


class Ledger:
    """What the executions of one run did that may need undoing; see the module docstring."""

    def __init__(self, run_id: str, options: RunOptions) -> None:
        self.run_id = run_id
        self.options = options
        self._entries: list[LedgerEntry] = []
        # The step records of executions recorded and not read yet: most runs are never
        # compensated, so their records are only read (into entries) when the ledger is.
        self._unread: list[Mapping[str, StepRecord]] = []
        self._executions = 0
        self._ran: set[str] = set()

    def __len__(self) -> int:
        return len(self._read())

    def record(self, result: RunResult) -> None:
        """Add the steps that succeeded in one execution, ``result``.

        A reused step is the effect of the execution that ran it, already on the ledger; it is
        added only when no execution recorded here ran it (a resumed or ``reuse=`` run, whose
        earlier executions are on no ledger).
        """
        self._unread.append(result.steps)  # final: a result's records are not changed

    def _read(self) -> list[LedgerEntry]:
        """The entries, with those of the executions recorded since the last read added."""
        for records in self._unread:
            self._executions += 1
            for record in records.values():
                if record.status is StepStatus.SUCCEEDED and not (
                    record.reused and record.id in self._ran
                ):
                    self._entries.append(LedgerEntry(self._executions, record))
                    self._ran.add(record.id)
        self._unread.clear()
        return self._entries

    async def compensate(self) -> CompensationReport:
        """Undo what is recorded, last finished first, and say how it went.

        The entries are taken off the ledger before the first undo: calling this again, or
        cancelling it halfway, never undoes a step twice.
        """
        taken, self._entries = self._read(), []
        if not taken:
            return CompensationReport()
        latest = {e.record.id: e.execution for e in taken}  # recording order: the last one wins
        taken.sort(key=lambda e: e.record.finished_at or 0.0, reverse=True)
        entries: list[LedgerEntry] = []
        failures: list[CompensationFailure] = []
        # A pool of its own: the run's threads may still be held by cancelled sync tools.
        invoker = Invoker(
            max_workers=1,
            max_output_bytes=self.options.max_output_bytes,
            runner=self.options.runner,
        )
        try:
            for entry in taken:
                outcome = await self._undo(entry.record, invoker)
                if isinstance(outcome, CompensationFailure):
                    failures.append(outcome)
                    undone = entry.record.model_copy(update={"error": outcome.error})
                    entries.append(LedgerEntry(entry.execution, undone))
                elif outcome is not None:
                    entries.append(LedgerEntry(entry.execution, outcome))
        finally:
            invoker.close()
        return CompensationReport(tuple(entries), tuple(failures), latest)

    async def _undo(
        self, record: StepRecord, invoker: Invoker
    ) -> StepRecord | CompensationFailure | None:
        """The compensated copy of ``record``, the failure, or None if its tool undoes nothing."""
        registry = self.options.registry
        try:
            compensation = registry.get(record.tool).compensate
        except Exception as exc:
            return self._failed(record, record.tool, exc)
        if compensation is None:
            return None
        try:
            scope = {"args": record.args or {}, "output": record.output}
            args = resolve(compensation.args, scope)
            tool = registry.get(compensation.tool)
            timeout = tool.timeout if tool.timeout is not None else self.options.default_timeout
            await invoker.call(
                tool,
                tool.validate_args(args),
                run_id=self.run_id,
                step_id=f"{record.id}:compensate",
                timeout=timeout,
            )
        except Exception as exc:
            return self._failed(record, compensation.tool, exc)
        self._emit(StepCompensated(compensation.tool), record.id)
        return record.model_copy(update={"status": StepStatus.COMPENSATED})

    def _failed(self, record: StepRecord, tool: str, exc: BaseException) -> CompensationFailure:
        error = error_of(exc)
        error.message = f"compensation {tool!r} of step {record.id!r} failed: {error.message}"
        self._emit(StepCompensationFailed(tool, error), record.id)
        return CompensationFailure(record.id, tool, error)

    def _emit(self, data: Payload, step_id: str) -> None:
        # Undoing side effects matters more than recording that we did: go on if the journal fails.
        try:
            self.options.bus.emit(Event(data, self.run_id, step_id))
        except Exception:
            log.exception("could not record %s of step %s", data.type, step_id)
