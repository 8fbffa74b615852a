"""Events: every state transition of a run, and the bus that hands them to consumers.

The executor emits; the monitor, the run store, the REPL's live view and user callbacks consume.
Emission is synchronous and in order, which is what gives the store its write-ahead guarantee:
a ``step_succeeded`` event is journalled before the scheduler counts the step as done.

An :class:`Event` is an envelope (run id, step id, attempt, duration, time) around its ``data``:
one payload class per :class:`EventType` (:class:`StepStarted`, :class:`StepFailed`,
:class:`RunFinished`...), a frozen dataclass whose fields say what happened. The event's
``type`` is its payload's, so the two cannot disagree. Dispatch on the payload class, which type
checkers narrow:

>>> bus = EventBus()
>>> def on_event(event: Event) -> None:
...     match event.data:
...         case StepFailed(error=error):
...             print(f"{event.step_id} failed: {error.message}")
...         case RunFinished(status=status, final=True):
...             print(f"run {event.run_id} {status}")
>>> unsubscribe = bus.subscribe(on_event)
>>> bus.emit(Event(RunStarted(goal="g"), run_id="r1"))
>>> bus.emit(Event(StepFailed(StepError(type="KeyError", message="'x'")), "r1", "a"))
a failed: 'x'
>>> bus.emit(Event(RunFinished(RunStatus.FAILED), "r1"))
run r1 failed
>>> Event(RunStarted(), "r1").type
<EventType.RUN_STARTED: 'run_started'>

Outputs and arguments are held by reference, never copied, so a large output costs nothing per
consumer. :func:`payload_to_json` and :func:`payload_from_json` are a payload's JSON form (what
the run store keeps in its event log) and back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, assert_never

from .plan.model import Plan
from .result import RunStatus, StepError, Usage

__all__ = [
    "Event",
    "EventBus",
    "EventCallback",
    "EventType",
    "LLMCall",
    "PAYLOADS",
    "Payload",
    "PlanCreated",
    "RunFinished",
    "RunStarted",
    "StepBlocked",
    "StepCancelled",
    "StepCompensated",
    "StepCompensationFailed",
    "StepFailed",
    "StepRetrying",
    "StepReused",
    "StepSkipped",
    "StepStarted",
    "StepSucceeded",
    "payload_from_json",
    "payload_to_json",
    "subscribe_all",
]

log = logging.getLogger("tooldag.events")


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    PLAN_CREATED = "plan_created"
    STEP_STARTED = "step_started"
    STEP_RETRYING = "step_retrying"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    STEP_SKIPPED = "step_skipped"
    STEP_BLOCKED = "step_blocked"
    STEP_CANCELLED = "step_cancelled"
    STEP_REUSED = "step_reused"
    STEP_COMPENSATED = "step_compensated"
    STEP_COMPENSATION_FAILED = "step_compensation_failed"
    LLM_CALL = "llm_call"


# -- the payloads, one per event type. Fields that may be absent from an event read back from the
# run store (it keeps outputs, arguments, plans and answers in its run and step rows, not in its
# event log) are optional.


@dataclass(frozen=True, slots=True)
class RunStarted:
    """An execution of a run began, with ``plan`` (each replan's execution starts again)."""

    type: ClassVar[EventType] = EventType.RUN_STARTED
    plan: Plan | None = None
    goal: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished:
    """An execution ended in ``status``. ``final`` is false when more may follow under the same
    run id (the agent may replan); the run's last ``run_finished`` is final."""

    type: ClassVar[EventType] = EventType.RUN_FINISHED
    status: RunStatus
    answer: str | None = None
    error: str | None = None
    final: bool = True


@dataclass(frozen=True, slots=True)
class PlanCreated:
    """The planner made version ``version`` of the run's plan (validated)."""

    type: ClassVar[EventType] = EventType.PLAN_CREATED
    plan: Plan | None
    version: int


@dataclass(frozen=True, slots=True)
class StepStarted:
    """An attempt of a step began (the event's ``attempt`` counts from 1), calling ``tool`` with
    its resolved ``args``."""

    type: ClassVar[EventType] = EventType.STEP_STARTED
    tool: str
    args: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StepRetrying:
    """An attempt failed with a transient ``error``; the next starts after ``delay`` seconds."""

    type: ClassVar[EventType] = EventType.STEP_RETRYING
    error: StepError
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class StepSucceeded:
    """A step's tool returned ``output`` (journalled before the step counts as done)."""

    type: ClassVar[EventType] = EventType.STEP_SUCCEEDED
    output: Any = None


@dataclass(frozen=True, slots=True)
class StepFailed:
    """A step failed for good: its tool raised (after any retries), or it could not be called."""

    type: ClassVar[EventType] = EventType.STEP_FAILED
    error: StepError


@dataclass(frozen=True, slots=True)
class StepSkipped:
    """A step's ``when`` was false, or it reads a skipped step's output."""

    type: ClassVar[EventType] = EventType.STEP_SKIPPED
    reason: str


@dataclass(frozen=True, slots=True)
class StepBlocked:
    """A step cannot run: the steps in ``blocked_by`` failed, were blocked or were cancelled."""

    type: ClassVar[EventType] = EventType.STEP_BLOCKED
    reason: str
    blocked_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StepCancelled:
    """A step was cancelled while it ran, or before it started."""

    type: ClassVar[EventType] = EventType.STEP_CANCELLED
    reason: str


@dataclass(frozen=True, slots=True)
class StepReused:
    """A step completed earlier (a resume, a replan) was not run again: its ``output`` stands."""

    type: ClassVar[EventType] = EventType.STEP_REUSED
    output: Any = None


@dataclass(frozen=True, slots=True)
class StepCompensated:
    """A step's effect was undone by its compensation ``tool``."""

    type: ClassVar[EventType] = EventType.STEP_COMPENSATED
    tool: str


@dataclass(frozen=True, slots=True)
class StepCompensationFailed:
    """A step's compensation ``tool`` could not be run, or failed: the step's effect stands."""

    type: ClassVar[EventType] = EventType.STEP_COMPENSATION_FAILED
    tool: str
    error: StepError


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One LLM call, by the planner (``purpose`` ``plan``, ``repair``, ``replan``...) or by a
    tool (``tool``); ``usage_estimated`` when the endpoint reported no usage."""

    type: ClassVar[EventType] = EventType.LLM_CALL
    usage: Usage
    purpose: str
    mode: str
    model: str | None = None
    usage_estimated: bool = False


Payload: TypeAlias = (
    RunStarted
    | RunFinished
    | PlanCreated
    | StepStarted
    | StepRetrying
    | StepSucceeded
    | StepFailed
    | StepSkipped
    | StepBlocked
    | StepCancelled
    | StepReused
    | StepCompensated
    | StepCompensationFailed
    | LLMCall
)
"""What an :class:`Event` carries: one class per :class:`EventType`."""

_PAYLOAD_CLASSES: tuple[type[Payload], ...] = (
    RunStarted,
    RunFinished,
    PlanCreated,
    StepStarted,
    StepRetrying,
    StepSucceeded,
    StepFailed,
    StepSkipped,
    StepBlocked,
    StepCancelled,
    StepReused,
    StepCompensated,
    StepCompensationFailed,
    LLMCall,
)

PAYLOADS: Mapping[EventType, type[Payload]] = MappingProxyType(
    {cls.type: cls for cls in _PAYLOAD_CLASSES}
)
"""The payload class of each event type."""

_FIELDS = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _PAYLOAD_CLASSES}


@dataclass(frozen=True, slots=True)
class Event:
    """One transition: what happened (``data``, whose class is the event's :attr:`type`), to
    which run and step, at which attempt, how long the step took, and when (``ts``)."""

    data: Payload
    run_id: str
    step_id: str | None = None
    attempt: int = 0
    duration: float | None = None
    ts: float = field(default_factory=time.time)

    @property
    def type(self) -> EventType:
        try:
            return self.data.type
        except AttributeError:  # Event(EventType.X, ...), as before payloads were typed
            raise TypeError(
                f"an Event's data is its payload, e.g. Event(RunStarted(), run_id), "
                f"not {self.data!r}"
            ) from None


EventCallback = Callable[[Event], None]
# A subscriber's answer to "are the events this thread emitted kept?": None, or what to await.
Barrier = Callable[[], Awaitable[None] | None]


# -- the JSON form


def _jsonable(value: Any) -> Any:
    if isinstance(value, StepError):
        return value.model_dump()
    if isinstance(value, Usage):
        return value.to_dict()
    if isinstance(value, Plan):
        return value.to_json()
    return value


def payload_to_json(payload: Payload, *, exclude: Collection[str] = ()) -> dict[str, Any]:
    """``payload`` as a dict of its fields in order (those not in ``exclude``): errors, usage and
    plans in their JSON forms (a status is a string already). Outputs and arguments go in as they
    are, by reference: they are JSON values (the executor made them so)."""
    return {
        name: _jsonable(getattr(payload, name))
        for name in _FIELDS[type(payload)]
        if name not in exclude
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _error(value: Any) -> StepError:
    if isinstance(value, Mapping):
        return StepError(
            type=_text(value.get("type")) or "Error",
            message=_text(value.get("message")),
            transient=bool(value.get("transient", False)),
        )
    return StepError(type="Error", message=_text(value))


def _status(value: Any) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        return RunStatus.FAILED


def _usage(value: Any) -> Usage:
    if not isinstance(value, Mapping):
        return Usage()
    counts = {k: int(value.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}
    total = value.get("total_tokens")
    total_tokens = int(total) if total is not None else sum(counts.values())
    return Usage(**counts, total_tokens=total_tokens, calls=int(value.get("calls") or 0))


def _plan(value: Any) -> Plan | None:
    if value is None:
        return None
    try:
        return Plan.model_validate(value)
    except ValueError:
        return None


def payload_from_json(kind: EventType, data: Mapping[str, Any] | None) -> Payload:
    """The payload of a ``kind`` event from its JSON form (:func:`payload_to_json`).

    Lenient, for what a journal holds: a key that is missing (the run store leaves outputs,
    arguments, plans and answers out of its event log; an older journal may lack a key) gets the
    field's default, or an empty value where the field has none (``""``, an empty error, the
    ``failed`` status); unknown keys are ignored.
    """
    d: Mapping[str, Any] = data or {}
    match kind:
        case EventType.RUN_STARTED:
            return RunStarted(_plan(d.get("plan")), _text(d.get("goal")))
        case EventType.RUN_FINISHED:
            return RunFinished(
                _status(d.get("status")),
                _optional_text(d.get("answer")),
                _optional_text(d.get("error")),
                d.get("final") is not False,
            )
        case EventType.PLAN_CREATED:
            return PlanCreated(_plan(d.get("plan")), int(d.get("version") or 0))
        case EventType.STEP_STARTED:
            args = d.get("args")
            return StepStarted(_text(d.get("tool")), dict(args) if args is not None else None)
        case EventType.STEP_RETRYING:
            return StepRetrying(_error(d.get("error")), float(d.get("delay") or 0.0))
        case EventType.STEP_SUCCEEDED:
            return StepSucceeded(d.get("output"))
        case EventType.STEP_FAILED:
            return StepFailed(_error(d.get("error")))
        case EventType.STEP_SKIPPED:
            return StepSkipped(_text(d.get("reason")))
        case EventType.STEP_BLOCKED:
            blocked_by = d.get("blocked_by") or ()
            return StepBlocked(_text(d.get("reason")), tuple(str(s) for s in blocked_by))
        case EventType.STEP_CANCELLED:
            return StepCancelled(_text(d.get("reason")))
        case EventType.STEP_REUSED:
            return StepReused(d.get("output"))
        case EventType.STEP_COMPENSATED:
            return StepCompensated(_text(d.get("tool")))
        case EventType.STEP_COMPENSATION_FAILED:
            return StepCompensationFailed(_text(d.get("tool")), _error(d.get("error")))
        case EventType.LLM_CALL:
            return LLMCall(
                _usage(d.get("usage")),
                _text(d.get("purpose")),
                _text(d.get("mode")),
                _optional_text(d.get("model")),
                bool(d.get("usage_estimated", False)),
            )
    assert_never(kind)


# -- the bus

# Callbacks that see the events of every bus in the process: instrumentation (OpenTelemetry,
# tooldag.observe.otel) that cannot be handed each run's bus. Empty, it costs emit one test.
_EVERY_BUS: list[EventCallback] = []


def subscribe_all(callback: EventCallback) -> Callable[[], None]:
    """Call ``callback(event)`` for every event of every :class:`EventBus` in this process,
    after the bus's own subscribers and isolated like them (an exception is logged); returns a
    function that unsubscribes."""
    _EVERY_BUS.append(callback)

    def unsubscribe() -> None:
        if callback in _EVERY_BUS:
            _EVERY_BUS.remove(callback)

    return unsubscribe


def _run_over(event: Event) -> bool:
    data = event.data
    return isinstance(data, RunFinished) and data.final


async def _every(waits: list[Awaitable[None]]) -> None:
    for wait in waits:
        await wait


class EventBus:
    """Delivers events, in order, to callbacks and async iterators.

    A callback subscribed with ``critical=True`` (the run store) lets its exceptions propagate to
    the emitter: the executor must know when a journal write failed. Other callbacks are isolated:
    an exception in a user's callback is logged and never breaks a run.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[EventCallback, bool]] = []
        self._barriers: list[Barrier] = []

    def subscribe(
        self, callback: EventCallback, *, critical: bool = False, barrier: Barrier | None = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for each event; returns a function that unsubscribes.

        ``barrier`` is for a subscriber that keeps events durably but not at once (the run store
        commits the events of one event-loop turn together): see :meth:`barrier`.
        """
        entry = (callback, critical)
        self._subscribers.append(entry)
        if barrier is not None:
            self._barriers.append(barrier)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)
            if barrier is not None and barrier in self._barriers:
                self._barriers.remove(barrier)

        return unsubscribe

    def barrier(self) -> Awaitable[None] | None:
        """What to await before acting on the event this thread just emitted as kept (``None``:
        it is): the executor awaits it before a tool runs on its step's ``step_started`` and
        before dependents start on a ``step_succeeded``. It raises what keeping it raised."""
        if not self._barriers:
            return None
        waits = [w for b in self._barriers if (w := b()) is not None]
        if len(waits) > 1:
            return _every(waits)
        return waits[0] if waits else None

    def emit(self, event: Event) -> None:
        for callback, critical in list(self._subscribers):
            if critical:
                callback(event)
                continue
            try:
                callback(event)
            except Exception:
                log.exception("event callback %r failed on %s", callback, event.type)
        if _EVERY_BUS:
            for callback in list(_EVERY_BUS):
                try:
                    callback(event)
                except Exception:
                    log.exception("event callback %r failed on %s", callback, event.type)

    async def stream(self, until: Callable[[Event], bool] | None = None) -> AsyncIterator[Event]:
        """Yield events as they are emitted (from the loop this is iterated on).

        Stops after the first event for which ``until(event)`` is true; by default after the
        final ``run_finished`` (a replanned run has one per execution, all but the last with
        :attr:`RunFinished.final` false).
        """
        stop = until or _run_over
        queue: asyncio.Queue[Event] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def push(event: Event) -> None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                queue.put_nowait(event)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, event)

        unsubscribe = self.subscribe(push)
        try:
            while True:
                event = await queue.get()
                yield event
                if stop(event):
                    return
        finally:
            unsubscribe()
