"""What a run produces: statuses, per-step records, token usage and the ``RunResult``.

Shared by the executor (which fills it), the store (which persists it), the planner (usage) and
the faces (which print it).
"""

from __future__ import annotations

import uuid
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from dataclasses import dataclass
from enum import StrEnum
from html import escape
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter
from pydantic_core import CoreSchema, core_schema

from .plan.model import Plan

__all__ = [
    "RunResult",
    "RunStatus",
    "StepError",
    "StepRecord",
    "StepRecords",
    "StepStatus",
    "Usage",
    "new_run_id",
]


def new_run_id() -> str:
    """A fresh run id (12 hex digits), for a caller that names a run before it starts it
    (to print it, journal it or follow its events)."""
    return uuid.uuid4().hex[:12]


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"

    @property
    def finished(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    REJECTED = "rejected"
    BUDGET_EXCEEDED = "budget_exceeded"
    # Never stored: the store reads a run as interrupted when its row says running but the
    # process that owns it is gone. Such a run can be resumed, like a failed or paused one.
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """No execution of the run is going on. Not the same as final: a failed, paused or
        interrupted run is finished yet may be resumed."""
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)

    @property
    def resumable(self) -> bool:
        """Whether a resume may continue a run in this status: one that never started
        (pending), failed, was paused, or whose process died (interrupted). Succeeded,
        cancelled, rejected and over-budget runs are done: start a new run instead."""
        return self in (
            RunStatus.PENDING,
            RunStatus.FAILED,
            RunStatus.PAUSED,
            RunStatus.INTERRUPTED,
        )


class StepError(BaseModel):
    """A failure as a value: never handed downstream as if it were output."""

    type: str
    message: str
    transient: bool = False

    def __str__(self) -> str:
        """``PermanentToolError: unknown symbol ZZZZ``: how every face shows it."""
        return f"{self.type}: {self.message}"


class StepRecord(BaseModel):
    """One step's story in a run."""

    model_config = ConfigDict(use_enum_values=False)

    id: str
    tool: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    args: dict[str, Any] | None = None
    output: Any = None
    error: StepError | None = None
    reason: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reused: bool = False

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


_RECORDS = TypeAdapter(dict[str, StepRecord])


def records_from_attributes(source: Mapping[str, Any]) -> dict[str, StepRecord]:
    """Step records read from ``source``'s objects, which have a record's attributes (the
    executor's live step states), in one validation: in Rust, reading the attributes itself,
    that costs less than a validation per step, or than ``model_construct`` (in Python)."""
    return _RECORDS.validate_python(source, from_attributes=True)


class StepRecords(MutableMapping[str, StepRecord]):
    """A run's :class:`StepRecord` s by step id (``RunResult.steps``): a dict in all but name.

    The executor hands over its steps' final states, and the records are built from them when
    first read: a record is a pydantic model, about 4 us a step to build, which a caller that
    reads only the answer or the outputs of a big run need not pay. Pydantic validates,
    serialises and describes it as ``dict[str, StepRecord]``; pickling and copying give the
    records themselves.
    """

    __slots__ = ("_records", "_source")

    def __init__(self, records: Mapping[str, StepRecord] | None = None) -> None:
        self._records: dict[str, StepRecord] = dict(records) if records else {}
        self._source: Mapping[str, Any] | None = None

    @classmethod
    def from_attributes(cls, source: Mapping[str, Any]) -> StepRecords:
        """The records of ``source``'s objects (see :func:`records_from_attributes`), read when
        first needed: ``source`` must not change after this."""
        records = cls()
        records._source = source
        return records

    def _read(self) -> dict[str, StepRecord]:
        if self._source is not None:
            self._records = records_from_attributes(self._source)
            self._source = None
        return self._records

    def __getitem__(self, key: str) -> StepRecord:
        return self._read()[key]

    def __setitem__(self, key: str, record: StepRecord) -> None:
        self._read()[key] = record

    def __delitem__(self, key: str) -> None:
        del self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._source if self._source is not None else self._records)

    def __contains__(self, key: object) -> bool:
        return key in (self._source if self._source is not None else self._records)

    # The dict's own views: the mixins' would look every record up through __getitem__.
    def keys(self) -> KeysView[str]:
        return self._read().keys()

    def values(self) -> ValuesView[StepRecord]:
        return self._read().values()

    def items(self) -> ItemsView[str, StepRecord]:
        return self._read().items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def __repr__(self) -> str:
        return repr(self._read())

    def __reduce__(self) -> tuple[type[StepRecords], tuple[dict[str, StepRecord]]]:
        return (StepRecords, (self._read(),))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        records = handler.generate_schema(dict[str, StepRecord])

        def validate(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> StepRecords:
            return value if isinstance(value, StepRecords) else StepRecords(inner(value))

        def dump(value: Mapping[str, StepRecord]) -> Mapping[str, StepRecord]:
            return value._read() if isinstance(value, StepRecords) else value

        return core_schema.no_info_wrap_validator_function(
            validate,
            records,
            serialization=core_schema.plain_serializer_function_ser_schema(
                dump, return_schema=records
            ),
        )


@dataclass
class Usage:
    """LLM token usage, summed over every call of a run (re-asks and replans included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0

    def add(self, prompt: int = 0, completion: int = 0, total: int | None = None) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += total if total is not None else prompt + completion
        self.calls += 1

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        self.calls += other.calls
        return self

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
        }


class _Shown(str):
    """Text that a repr shows as it is: a summary in place of a long value."""

    def __repr__(self) -> str:
        return str(self)


class RunResult(BaseModel):
    """The outcome of a run: ``status``, ``outputs`` by step id, the rendered ``answer``,
    per-step records, the plan(s) it went through and the LLM ``usage``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    run_id: str
    status: RunStatus
    outputs: dict[str, Any] = Field(default_factory=dict)
    answer: str | None = None
    # Any mapping of records is taken (and kept as StepRecords, see there).
    steps: Annotated[MutableMapping[str, StepRecord], StepRecords] = Field(
        default_factory=StepRecords
    )
    plans: list[Plan] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def plan(self) -> Plan | None:
        """The last plan of the run."""
        return self.plans[-1] if self.plans else None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Counts stand in for the per-step values: a run of 10,000 steps had a repr of 3.5 MB,
        # which nobody reads and which Python 3.11's asyncio.run builds anyway as it exits
        # (putting its SIGINT handler back formats the main task, and so its result): 23 us a
        # step of every run_plan. The values are the fields themselves (result.steps, ...).
        yield "run_id", self.run_id
        yield "status", self.status
        if self.answer is not None:
            answer = self.answer if len(self.answer) <= 200 else self.answer[:199] + "…"
            yield "answer", answer
        if self.error is not None:
            yield "error", self.error
        for name, value in (("steps", self.steps), ("outputs", self.outputs)):
            yield name, _Shown(f"<{len(value)} {name}>")
        yield "plans", _Shown(f"<{len(self.plans)} plan{'s' if len(self.plans) != 1 else ''}>")
        yield "usage", self.usage

    def _repr_markdown_(self) -> str:
        """How a result shows in Jupyter: status, answer, then one table row per step."""

        def cell(text: object) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        took = f" in {self.duration:.2f}s" if self.duration is not None else ""
        lines = [f"**run {self.run_id}: {self.status.value}**{took}", ""]
        if self.answer is not None:
            lines += [f"> {cell(self.answer)}", ""]
        if self.steps:
            lines += [
                "| step | tool | status | attempts | time | error / reason |",
                "|---|---|---|---:|---:|---|",
            ]
            for r in self.steps.values():
                took_step = f"{r.duration:.3f}s" if r.duration is not None else ""
                why = str(r.error) if r.error else (r.reason or "")
                lines.append(
                    f"| {cell(r.id)} | {cell(r.tool)} | {r.status.value} | {r.attempts} | "
                    f"{took_step} | {cell(why)} |"
                )
        if self.usage.calls:
            lines += ["", f"{self.usage.total_tokens:,} tokens in {self.usage.calls} LLM call(s)"]
        return "\n".join(lines)

    def _repr_svg_(self) -> str | None:
        """The run's last plan drawn as a graph, each step coloured by how it ended."""
        if self.plan is None:
            return None
        return self.plan.to_svg({k: s.status.value for k, s in self.steps.items()})

    def _repr_html_(self) -> str:
        """How a result shows in Jupyter (the Markdown form is the fallback): status and answer,
        the graph by status, then one table row per step."""
        took = f" in {self.duration:.2f}s" if self.duration is not None else ""
        parts = [f"<p><b>run {escape(self.run_id)}: {self.status.value}</b>{took}</p>"]
        if self.answer is not None:
            parts.append(f"<blockquote>{escape(self.answer)}</blockquote>")
        parts.append(self._repr_svg_() or "")
        if self.steps:
            head = "".join(
                f"<th>{h}</th>"
                for h in ("step", "tool", "status", "attempts", "time", "error / reason")
            )
            rows = []
            for r in self.steps.values():
                took_step = f"{r.duration:.3f}s" if r.duration is not None else ""
                why = str(r.error) if r.error else (r.reason or "")
                cells = (r.id, r.tool, r.status.value, str(r.attempts), took_step, why)
                rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
            parts.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        if self.usage.calls:
            parts.append(
                f"<p>{self.usage.total_tokens:,} tokens in {self.usage.calls} LLM call(s)</p>"
            )
        return '<div class="tooldag-run">' + "".join(parts) + "</div>"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``--json`` prints): status, answer, outputs, steps, usage."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "answer": self.answer,
            "outputs": self.outputs,
            "steps": {k: v.model_dump(mode="json") for k, v in self.steps.items()},
            "plans": [p.to_json() for p in self.plans],
            "usage": self.usage.to_dict(),
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
        }
