"""The run of one plan: a ready/done state machine driven by step completions.

A small ready/done counter (:class:`_Sorter`, graphlib's ``TopologicalSorter`` protocol, but one
that takes more steps while it runs) is the pure state machine; this module acts on what it makes
ready. A step is started from the completion of its last dependency (no polling loop, no
level-by-level batches): the finishing step's task marks itself done and, in the same call, starts,
skips or blocks whatever that made ready.

A run may be *open*: started before its plan is complete, and fed steps as they come
(:meth:`Run.extend`, a streamed plan's early steps) until :meth:`Run.seal` gives it the rest of
the plan. It is the same machine: a closed run is one whose steps were all added, then sealed, at
once.

Concurrency limits are admission control: a step that is ready to start takes a slot of the global
limit and, if its tool has one, of its tool's limit; without a free slot it waits in a FIFO queue
(no task is created for it), and every finishing step hands its slots on. So at most
``max_concurrency`` tool calls run, whatever the width of the graph, and a fan-out of 10,000 steps
costs 10,000 queue entries, not 10,000 parked tasks.

Steps run in *workers*: a task that holds one global slot and, when its step ends, takes the step
at the head of the queue itself (the steps its step made ready are queued first) instead of
ending and leaving a new task to be made for the next one. A chain runs in one task, a fan-out in
``max_concurrency``. A worker lets the loop run (``sleep(0)``) between two steps once it has run
steps back to back for a millisecond (:data:`_SLICE`), or at once when a cancel or pause waits,
so tools that never suspend do not hold up the loop (a task per step let it run after every
step: a tenth of a no-op step's cost). What a tool sets in a context variable is seen by the
steps its worker runs after it (with a task per step, by the steps it made ready): neither
isolates tools from each other.

:class:`Run` is the executor's machinery; use :class:`tooldag.execution.executor.Executor`. It
reads its settings from a frozen :class:`~tooldag.execution.options.RunOptions`, and it ends with
the run's result: what happens then (compensation, the ``run_finished`` event) is for whoever
drives the run. What a finished run reports (status, problems, answer) is worked out in
:mod:`tooldag.execution.outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import graphlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PlanInvalidError, ReferenceResolutionError
from ..events import (
    Event,
    Payload,
    RunStarted,
    StepBlocked,
    StepCancelled,
    StepFailed,
    StepRetrying,
    StepReused,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from ..issues import Issue
from ..plan.conditions import evaluate_explained
from ..plan.model import Plan, Step
from ..plan.refs import parse_ref, resolve
from ..registry.registry import Tool
from ..result import RunResult, StepError, StepRecords, StepStatus
from .gate import REFUSED, Verdict, verdict_of
from .invoke import Invoker, error_of, is_transient
from .options import RunOptions
from .outcome import BAD_STATUSES, render_answer, run_problems, run_status

__all__ = ["Run", "render_answer"]

log = logging.getLogger("tooldag.executor")

_PENDING = StepStatus.PENDING
# How long a worker may run steps back to back (steps whose tools did not suspend) before it lets
# the loop run: a loop turn per step would be a tenth of a no-op step, and a millisecond keeps a
# live view, a cancel or another run as prompt as anyone can tell.
_SLICE = 0.001


class _Clock:
    """Wall-clock timestamps that strictly increase within a run, so that "completion order"
    (which compensation reverses) is never a tie."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self) -> float:
        now = time.time()
        if now <= self._last:
            now = self._last + 1e-6
        self._last = now
        return now


@dataclass(slots=True)
class _State:
    """A step's record while the run is live (a StepRecord costs a validation per assignment)."""

    id: str
    tool: str
    status: StepStatus = _PENDING
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


@dataclass(slots=True)
class _Launch:
    """A step that is ready to start: its tool and arguments, resolved and validated."""

    sid: str
    step: Step
    tool: Tool
    args: dict[str, Any]
    validated: dict[str, Any]


def _names(ids: list[str]) -> str:
    return ", ".join(repr(i) for i in ids)


def _in_order(graph: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether every node of ``graph`` comes after the nodes of ``graph`` it waits for: then it
    has no cycle. Plans are mostly written in that order (a streamed plan always is), and this
    test is a fraction of what graphlib's cycle search costs; graphlib judges the others."""
    seen: set[str] = set()
    for node, deps in graph.items():
        for dep in deps:
            if dep in graph and dep not in seen:
                return False
        seen.add(node)
    return True


class _Sorter:
    """graphlib.TopologicalSorter's ``get_ready`` / ``done`` / ``is_active``, to which nodes may
    be added at any time (nodes added together may wait for each other; a node added later only
    for nodes added before it, which a new node cannot put into a cycle)."""

    def __init__(self) -> None:
        self._waiting: dict[str, int] = {}  # node -> dependencies not done yet
        self._dependants: dict[str, list[str]] = {}
        self._finished: set[str] = set()
        self._ready: list[str] = []
        self._out = 0  # handed out by get_ready, not done yet

    def add(self, graph: Mapping[str, tuple[str, ...]]) -> None:
        """Add ``graph`` (node -> the nodes it waits for, known or in ``graph``). Raises
        :class:`graphlib.CycleError` if its nodes wait for each other in a circle."""
        if not _in_order(graph):
            inner = {node: [d for d in deps if d in graph] for node, deps in graph.items()}
            graphlib.TopologicalSorter(inner).prepare()  # raises CycleError, naming the cycle
        for node, deps in graph.items():
            self._dependants.setdefault(node, [])
            pending = [d for d in deps if d not in self._finished]
            self._waiting[node] = len(pending)
            for dep in pending:
                self._dependants.setdefault(dep, []).append(node)
            if not pending:
                self._ready.append(node)

    def get_ready(self) -> tuple[str, ...]:
        ready, self._ready = tuple(self._ready), []
        self._out += len(ready)
        return ready

    def done(self, node: str) -> None:
        self._out -= 1
        self._finished.add(node)
        for dependant in self._dependants.get(node, ()):
            self._waiting[dependant] -= 1
            if not self._waiting[dependant]:
                self._ready.append(dependant)

    def is_active(self) -> bool:
        return bool(self._ready) or self._out > 0


class Run:
    """The state of one run: step states, outputs, the sorter, the queue, running tasks.

    Lives on one event loop; ``request_cancel`` / ``request_pause`` are called on that loop.
    """

    def __init__(
        self,
        options: RunOptions,
        plan: Plan,
        run_id: str,
        reuse: Mapping[str, Any] | None,
        refused: Collection[str] = (),
        *,
        sealed: bool = True,
    ) -> None:
        self.options = options
        self.plan = plan
        self.run_id = run_id
        self.bus = options.bus
        self.clock = _Clock()
        self.steps: dict[str, Step] = {}
        self.reuse: dict[str, Any] = {}
        self.refused_before = frozenset(refused)
        """Steps a gate refused in an earlier execution: without a gate, refused again."""
        self.declined: set[str] = set()
        """Steps a gate refused in this execution, and the steps skipped for waiting on one."""
        self.gate_lock = asyncio.Lock()  # one question at a time
        self.rejected: str | None = None
        """Why a gate aborted the run (it then ends ``rejected``)."""
        # What references resolve against: reused outputs (possibly of earlier plans) and ours.
        self.outputs: dict[str, Any] = {}
        self.states: dict[str, _State] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.data_deps: dict[str, tuple[str, ...]] = {}
        self.unknown: dict[str, list[str]] = {}
        self.sorter = _Sorter()
        self.sealed = False
        """Every step of the plan has been added: the run ends when they have."""
        self.opened = asyncio.Event()
        """Set by the first steps or the seal: an open run starts (``run_started``) then."""
        self.quiet = asyncio.Event()
        """Nothing runs or is ready to: every step added so far has finished (or the run
        stopped). What ``idle`` is, but for an open run's seal."""
        self.quiet.set()
        self.started = False
        self.free = options.max_concurrency
        self.tool_free = dict(options.tool_limits)
        self.queue: deque[_Launch] = deque()
        self.tool_queues: dict[str, deque[_Launch]] = {name: deque() for name in self.tool_free}
        self.workers: set[asyncio.Task[None]] = set()
        self.running: set[str] = set()  # the steps the workers are running now
        self.handing_over = 0  # workers in their step's completion, which take the queue's head
        self.setbacks = False  # a step ended other than succeeded (only then may one be held back)
        self.attention = False  # a cancel or pause waits in the loop's queue: workers, yield
        self.invoker = Invoker(
            max_workers=options.max_concurrency,
            max_output_bytes=options.max_output_bytes,
            runner=options.runner,
        )
        self.idle = asyncio.Event()
        self.draining = False
        self.cancel_requested = False
        self.pause_requested = False
        self.halted = False
        self.finishing = False
        self.stop_reason: str | None = None
        self.fatal: str | None = None
        self.journal_error: BaseException | None = None
        self.interrupted = False
        """The run's own task was cancelled (not the run): its driver re-raises once it is over."""
        self.started_at = 0.0
        try:
            self.add(plan.steps, reuse)
            if sealed:
                self.seal()
        except PlanInvalidError:
            self.invoker.close()  # a plan that cannot run leaves no thread pool behind
            raise

    # ------------------------------------------------------------------ events

    def event(self, data: Payload, sid: str | None, state: _State | None) -> Event:
        if state is None:
            return Event(data, self.run_id, sid)
        return Event(data, self.run_id, sid, state.attempts, state.duration)

    def emit(self, data: Payload, sid: str | None, state: _State | None = None) -> bool:
        """Emit an event (attempt and duration from ``state``); a failing critical subscriber
        (the journal) stops the run. False if it failed."""
        return self.send(self.event(data, sid, state))

    def send(self, event: Event) -> bool:
        try:
            self.bus.emit(event)
        except Exception as exc:
            self.journal_broke(exc)
            return False
        return True

    def emit_or_raise(self, data: Payload, sid: str, state: _State) -> None:
        """Emit; a failing critical subscriber's exception propagates (and is remembered)."""
        try:
            self.bus.emit(self.event(data, sid, state))
        except Exception as exc:
            self.journal_error = exc
            raise

    def kept(self) -> Awaitable[None] | None:
        """What to await until the event just emitted is kept (the journal commits a loop
        turn's events together); its failure is remembered as the journal's."""
        wait = self.bus.barrier()
        return None if wait is None else self._kept(wait)

    async def _kept(self, wait: Awaitable[None]) -> None:
        try:
            await wait
        except Exception as exc:
            self.journal_error = exc
            raise

    def journal_broke(self, exc: BaseException) -> None:
        if self.fatal is None:
            log.error("run %s: an event subscriber failed, stopping the run: %s", self.run_id, exc)
            self.fatal = (
                f"the run journal failed ({type(exc).__name__}: {exc}); the run was stopped so "
                "that no step runs unrecorded"
            )
            self.halt(self.fatal)

    # ------------------------------------------------------------------ control

    @property
    def stopping(self) -> bool:
        return self.cancel_requested or self.pause_requested or self.halted

    def halt(self, reason: str) -> None:
        """Start nothing new and cancel what runs (fail_fast, broken journal)."""
        if self.halted or self.finishing:
            return
        self.halted = True
        self.stop_reason = self.stop_reason or reason
        self.cancel_tasks()

    def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self.workers):
            if task is not current:
                task.cancel()
        self.check_idle()

    def request_cancel(self) -> None:
        if self.cancel_requested or self.finishing:
            return
        self.cancel_requested = True
        self.stop_reason = "the run was cancelled"
        self.opened.set()  # an open run that has no step yet ends too
        self.cancel_tasks()

    def request_pause(self) -> None:
        if self.pause_requested or self.finishing:
            return
        self.pause_requested = True
        self.opened.set()
        self.check_idle()

    def check_idle(self) -> None:
        if self.workers or not (self.stopping or not self.sorter.is_active()):
            self.quiet.clear()
            return
        self.quiet.set()
        if self.stopping or self.sealed:
            self.idle.set()

    # ------------------------------------------------------------------ steps that come in

    def add(self, steps: Iterable[Step], reuse: Mapping[str, Any] | None = None) -> None:
        """Take ``steps`` into the run (they may wait for each other and for steps added before)
        and ``reuse`` (outputs to take as they are, of these steps or of earlier ones).
        Raises PlanInvalidError for a duplicate id or a cycle, and leaves the run as it was."""
        new: dict[str, Step] = {}
        for step in steps:
            if step.id in self.steps or step.id in new:
                raise PlanInvalidError(
                    "the plan cannot run: give every step its own id",
                    [Issue("duplicate_id", f"two steps are called {step.id!r}", step.id)],
                )
            new[step.id] = step
        reuse = dict(reuse or {})
        known = {**self.steps, **new}
        reused = {**self.reuse, **reuse}
        deps: dict[str, tuple[str, ...]] = {}
        data_deps: dict[str, tuple[str, ...]] = {}
        unknown: dict[str, list[str]] = {}
        for sid, step in new.items():
            data = step.data_dependencies()
            every = list(dict.fromkeys([*data, *step.depends_on])) if step.depends_on else data
            outside = [d for d in every if d not in known]
            if outside:  # rare (reused outputs of earlier plans, or a mistake): filter then
                data = [d for d in data if d in known]
                every = [d for d in every if d in known]
                missing = [d for d in outside if d not in reused]
                if missing and sid not in reused:
                    unknown[sid] = missing
            data_deps[sid] = tuple(data)
            deps[sid] = () if sid in reused else tuple(every)
        try:
            self.sorter.add(deps)
        except graphlib.CycleError as exc:
            cycle = [str(c) for c in exc.args[1]]
            issue = Issue("cycle", "steps wait for each other", cycle[0], hint=" -> ".join(cycle))
            raise PlanInvalidError("the plan cannot run: it has a cycle", [issue]) from None
        self.steps.update(new)
        self.reuse.update(reuse)
        self.outputs.update(reuse)
        self.states.update((sid, _State(sid, s.tool)) for sid, s in new.items())
        self.deps.update(deps)
        self.data_deps.update(data_deps)
        self.unknown.update(unknown)
        if new:
            self.quiet.clear()
        if new or reuse:
            self.opened.set()
        if self.started:
            self.mark_reused(new)
            self.drain()

    def seal(self, plan: Plan | None = None, reuse: Mapping[str, Any] | None = None) -> None:
        """No more steps will come: with ``plan``, the complete plan, whose steps not added yet
        are added now (with ``reuse``). A step added before must be the plan's step of that id
        as it is (PlanInvalidError otherwise)."""
        if self.sealed or self.finishing:
            return  # a run that was stopped while open ends as it is
        if plan is not None:
            changed = [s.id for s in plan.steps if s.id in self.steps and self.steps[s.id] != s]
            if changed:
                raise PlanInvalidError(
                    "the plan cannot run: it changed steps that had started already",
                    [Issue("duplicate_id", f"step {sid!r} changed", sid) for sid in changed],
                )
            # A step of the run that was not reused ran (or runs) here: its output stands.
            reuse = {k: v for k, v in (reuse or {}).items() if k not in self.steps}
            self.add([s for s in plan.steps if s.id not in self.steps], reuse)
            self.plan = plan
        self.sealed = True
        self.opened.set()
        if self.started:
            self.check_idle()

    # ------------------------------------------------------------------ scheduling

    def drain(self) -> None:
        """Act on every step that became ready. Re-entrant calls return at once: the outer loop
        picks up what they made ready (a chain of skips is a loop, not a recursion)."""
        if self.draining:
            return
        self.draining = True
        try:
            while not self.stopping:
                ready = self.sorter.get_ready()
                if not ready:
                    break
                for sid in ready:
                    if self.stopping:
                        break
                    self.on_ready(sid)
        finally:
            self.draining = False
        self.check_idle()

    def complete(self, sid: str) -> None:
        self.sorter.done(sid)
        if sid not in self.running:
            self.drain()
            return
        # Its worker takes the queue's head once this returns: no task is made for that one.
        self.handing_over += 1
        try:
            self.drain()
        finally:
            self.handing_over -= 1

    def on_ready(self, sid: str) -> None:
        """Decide a ready step's fate: blocked, skipped, failed early, or queued to start."""
        states = self.states
        if states[sid].status is not _PENDING:  # reused
            self.complete(sid)
            return
        step = self.steps[sid]
        # Usually every step so far succeeded, and then nothing can hold this one back.
        doubtful = self.setbacks or sid in self.unknown
        if doubtful and self.held_back(sid):
            return
        if step.when is not None:
            try:
                ok, why = evaluate_explained(step.when, self.outputs)
            except Exception as exc:
                self.fail_early(sid, exc, prefix=f"step {sid!r}: its 'when' condition: ")
                return
            if not ok:
                self.skip(sid, f"condition not met: {why}")
                return
        try:
            tool = self.options.registry.get(step.tool)
        except Exception as exc:
            self.fail_early(sid, exc, prefix=f"step {sid!r}: ")
            return
        args: dict[str, Any] = {}
        for name, value in step.args.items():
            try:
                args[name] = resolve(value, self.outputs)
            except Exception as exc:
                self.fail_early(sid, exc, prefix=f"step {sid!r}, argument {name!r}: ")
                return
        try:
            validated = tool.validate_args(args)
        except Exception as exc:
            field = getattr(exc, "field", None)
            source = step.args.get(field.split(".")[0]) if isinstance(field, str) else None
            ref = parse_ref(source) if isinstance(source, str) else None
            suffix = f" (the value came from {ref})" if ref is not None else ""
            self.fail_early(sid, exc, prefix=f"step {sid!r}: ", suffix=suffix)
            return
        self.queue.append(_Launch(sid, step, tool, args, validated))
        self.pump()

    def held_back(self, sid: str) -> bool:
        """Block, fail or skip ``sid`` for what it waits for (a failure, a step neither in the
        plan nor reused, a refused or a skipped step); False if nothing holds it back."""
        states = self.states
        bad = [d for d in self.deps[sid] if states[d].status in BAD_STATUSES]
        if bad:
            self.block(sid, bad)
            return True
        if sid in self.unknown:
            missing = self.unknown[sid]
            why = f"step {sid!r} needs {_names(missing)}: neither a step of this plan nor a reused "
            exc = ReferenceResolutionError(f"${missing[0]}", why + "output; validate the plan")
            self.fail_early(sid, exc)
            return True
        declined = [d for d in self.deps[sid] if d in self.declined]
        if declined:
            # Whatever waits for a refused step, by reference or depends_on, is not run either.
            self.declined.add(sid)
            verb = "was" if len(declined) == 1 else "were"
            self.skip(sid, f"it waits for {_names(declined)}, which {verb} not approved")
            return True
        skipped = [d for d in self.data_deps[sid] if states[d].status is StepStatus.SKIPPED]
        if skipped:
            verb = "was" if len(skipped) == 1 else "were"
            self.skip(sid, f"it uses the output of {_names(skipped)}, which {verb} skipped")
            return True
        return False

    def pump(self) -> None:
        """Start queued steps while slots are free (global first-come first-served), each in a
        new worker, but for the ones that the workers handing over will take."""
        loop = asyncio.get_running_loop()
        while self.free and len(self.queue) > self.handing_over and not self.stopping:
            launch = self.admit()
            if launch is None:
                continue
            self.free -= 1
            task = loop.create_task(self.work(launch))
            self.workers.add(task)
            task.add_done_callback(functools.partial(self.worker_done, launch))

    def admit(self) -> _Launch | None:
        """The queue's head, with a slot of its tool's limit taken; None if that tool has no free
        slot (the step then waits in its tool's queue)."""
        launch = self.queue.popleft()
        name = launch.tool.name
        if name in self.tool_free:
            if not self.tool_free[name]:
                self.tool_queues[name].append(launch)
                return None
            self.tool_free[name] -= 1
        return launch

    def release(self, launch: _Launch) -> None:
        """Hand a finished step's tool slot on: the first in line for that tool goes first."""
        name = launch.tool.name
        if name in self.tool_free:
            self.tool_free[name] += 1
            waiting = self.tool_queues[name]
            if waiting:
                self.queue.appendleft(waiting.popleft())

    async def work(self, launch: _Launch) -> None:
        """A worker: run ``launch``, then the queue's head as each step ends, while there is one
        and the run goes on. Its global slot is given back when it ends (:meth:`worker_done`)."""
        loop = asyncio.get_running_loop()
        yield_at = loop.time() + _SLICE
        while True:
            sid = launch.sid
            self.running.add(sid)
            try:
                await self.execute(launch)
            except Exception as exc:
                self.crashed(sid, exc)
            finally:
                self.running.discard(sid)
                self.release(launch)
            if not self.queue or self.stopping:
                return
            if self.attention or loop.time() >= yield_at:  # let the loop run
                self.attention = False
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    return  # nothing was taken: the run is stopping
                yield_at = loop.time() + _SLICE
            next_launch = None
            while next_launch is None and self.queue and not self.stopping:
                next_launch = self.admit()
            if next_launch is None:
                return
            launch = next_launch

    def worker_done(self, first: _Launch, task: asyncio.Task[None]) -> None:
        self.workers.discard(task)
        self.free += 1
        if task.cancelled():
            if self.states[first.sid].status is _PENDING:  # cancelled before its coroutine began
                self.release(first)
                self.mark_cancelled(first.sid)
        elif (exc := task.exception()) is not None:
            log.error("run %s: a worker crashed the executor", self.run_id, exc_info=exc)
        self.pump()
        self.check_idle()

    def crashed(self, sid: str, exc: Exception) -> None:
        """A step whose handling raised (a bug of the executor's, not of the tool's)."""
        log.error("run %s: step %s crashed the executor", self.run_id, sid, exc_info=exc)
        if not self.states[sid].status.finished:
            self.fail(sid, StepError(type=type(exc).__name__, message=f"internal error: {exc}"))

    # ------------------------------------------------------------------ outcomes

    def finish(self, sid: str, status: StepStatus, reason: str | None = None) -> _State:
        state = self.states[sid]
        state.status = status
        if status is not StepStatus.SUCCEEDED:
            self.setbacks = True
        state.finished_at = self.clock()
        if reason is not None:
            state.reason = reason
        return state

    def needs(self, deps: list[str]) -> str:
        return "needs " + ", ".join(f"{d} ({self.states[d].status.value})" for d in deps)

    def block(self, sid: str, blocked_by: list[str]) -> None:
        reason = self.needs(blocked_by)
        self.finish(sid, StepStatus.BLOCKED, reason)
        self.emit(StepBlocked(reason, tuple(blocked_by)), sid)
        self.complete(sid)

    def skip(self, sid: str, reason: str) -> None:
        self.finish(sid, StepStatus.SKIPPED, reason)
        self.emit(StepSkipped(reason), sid)
        self.complete(sid)

    def fail_early(
        self, sid: str, exc: BaseException, *, prefix: str = "", suffix: str = ""
    ) -> None:
        """A failure before the tool was called (condition, reference, arguments): permanent."""
        error = error_of(exc)
        error.message = prefix + error.message + suffix
        self.fail(sid, error)

    def fail(self, sid: str, error: StepError) -> None:
        state = self.finish(sid, StepStatus.FAILED)
        state.error = error
        self.emit(StepFailed(error), sid, state)
        if self.options.fail_fast:
            self.halt(f"fail_fast: the run stopped after step {sid!r} failed")
        self.complete(sid)

    def mark_cancelled(self, sid: str) -> None:
        started = self.states[sid].started_at is not None
        reason = "cancelled while running" if started else "cancelled before it started"
        if self.stop_reason:
            reason += f" ({self.stop_reason})"
        state = self.finish(sid, StepStatus.CANCELLED, reason)
        self.emit(StepCancelled(reason), sid, state)
        self.complete(sid)

    def journal_failed(self, sid: str, exc: BaseException) -> None:
        """The journal did not take this step's event: the step does not count as done."""
        self.journal_broke(exc)
        message = (
            f"step {sid!r} could not be recorded ({exc}); it does not count as done and its "
            "output was discarded"
        )
        self.fail(sid, StepError(type=type(exc).__name__, message=message))

    # ------------------------------------------------------------------ one step

    async def execute(self, launch: _Launch) -> None:
        sid, tool, args = launch.sid, launch.tool, launch.args
        state = self.states[sid]
        if self.pause_requested:
            return  # the step stays pending, for a resume
        if self.options.gate is not None or sid in self.refused_before:
            try:
                verdict = await self.consult_gate(launch)
            except asyncio.CancelledError:
                self.mark_cancelled(sid)
                return
            except Exception as exc:
                message = f"the approval gate failed ({type(exc).__name__}: {exc}); it did not run"
                self.fail(sid, StepError(type=type(exc).__name__, message=message))
                return
            if verdict is not Verdict.RUN:
                self.refuse(sid, tool.name, abort=verdict is Verdict.ABORT)
                return

        def on_attempt(n: int) -> Awaitable[None] | None:
            now = self.clock()
            if n == 1:
                state.started_at = now
                state.args = args
                state.status = StepStatus.RUNNING
            state.attempts = n
            self.emit_or_raise(StepStarted(tool.name, args), sid, state)
            return self.kept()  # the invoker awaits it: the tool runs once its start is kept

        def on_retry(n: int, exc: BaseException, delay: float) -> None:
            self.emit_or_raise(StepRetrying(error_of(exc, transient=True), delay), sid, state)

        timeout = launch.step.timeout
        if timeout is None:
            timeout = tool.timeout if tool.timeout is not None else self.options.default_timeout
        try:
            output, _ = await self.invoker.call(
                tool,
                launch.validated,
                run_id=self.run_id,
                step_id=sid,
                timeout=timeout,
                on_attempt=on_attempt,
                on_retry=on_retry,
            )
        except asyncio.CancelledError:
            self.mark_cancelled(sid)
            return
        except Exception as exc:
            if exc is self.journal_error:
                self.journal_failed(sid, exc)
                return
            error = error_of(exc, transient=is_transient(tool, exc))
            if state.attempts > 1:
                error.message += f" (after {state.attempts} attempts)"
            self.fail(sid, error)
            return
        state.finished_at = self.clock()
        try:
            self.bus.emit(self.event(StepSucceeded(output), sid, state))
            kept = self.bus.barrier()
            if kept is not None:  # dependents start once the output is kept
                await kept
        except asyncio.CancelledError:
            self.mark_cancelled(sid)
            return
        except Exception as exc:
            self.journal_failed(sid, exc)
            return
        state.output = output
        state.status = StepStatus.SUCCEEDED
        self.outputs[sid] = output
        self.complete(sid)

    async def consult_gate(self, launch: _Launch) -> Verdict:
        """The gate's verdict on a step about to run; a step refused in an earlier execution is
        refused again when there is no gate to ask."""
        gate = self.options.gate
        if gate is None:
            return Verdict.SKIP
        answer = gate(launch.step, launch.args)
        if not inspect.isawaitable(answer):
            return verdict_of(answer)
        try:
            async with self.gate_lock:
                return verdict_of(await answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:  # a coroutine cancelled before it began: no "never awaited"
                close()

    def refuse(self, sid: str, tool: str, *, abort: bool) -> None:
        """A step the gate refused: skipped, and on ``abort`` the whole run stopped."""
        self.declined.add(sid)
        if abort:
            self.rejected = f"step {sid!r} ({tool}) was not approved: the run was aborted"
            self.halt(self.rejected)
            self.skip(sid, f"{REFUSED}: the run was aborted")
        elif sid in self.refused_before and self.options.gate is None:
            self.skip(sid, f"{REFUSED} in an earlier attempt (no one to ask again here)")
        else:
            self.skip(sid, REFUSED)

    # ------------------------------------------------------------------ the run

    async def main(self) -> RunResult:
        """Run the plan to its end and return what it came to; emits no ``run_finished`` and
        undoes nothing (that is for whoever drives the run)."""
        try:
            try:
                await self.opened.wait()
                self.started_at = self.clock()
                # An open run does not know its plan yet: the planner announces it when it has.
                plan = self.plan if self.sealed else None
                self.started = True
                if self.emit(RunStarted(plan, self.plan.goal), None):
                    self.mark_reused(self.steps)
                    self.drain()
                self.check_idle()
                await self.idle.wait()
            except asyncio.CancelledError:
                # The run's own task was cancelled (e.g. its loop is shutting down): cancel the
                # run properly and conclude it; the driver lets the cancellation go on after.
                self.interrupted = True
                self.request_cancel()
                await self.idle.wait()
            return self.conclude()
        finally:
            self.invoker.close()

    def mark_reused(self, steps: Iterable[str]) -> None:
        for sid in steps:
            if sid not in self.reuse or self.states[sid].status is not _PENDING:
                continue
            output = self.reuse[sid]
            state = self.finish(sid, StepStatus.SUCCEEDED)
            with contextlib.suppress(Exception):
                state.args = resolve(self.steps[sid].args, self.outputs)
            state.output = output
            state.reused = True
            self.emit(StepReused(output), sid)

    def settle_unstarted(self) -> None:
        """Steps that never started, after a stop: blocked if they wait for a failure, otherwise
        cancelled. Left pending only by a clean pause (a resume starts them)."""
        states = self.states
        if all(s.status is not _PENDING for s in states.values()):
            return
        failed = any(s.status is StepStatus.FAILED for s in states.values())
        if self.pause_requested and not (self.cancel_requested or self.halted or failed):
            return
        reason = self.stop_reason or "the run stopped"
        # Topological order, so that a step blocked here blocks its own dependants in turn.
        for sid in graphlib.TopologicalSorter(self.deps).static_order():
            if states[sid].status is not _PENDING:
                continue
            bad = [d for d in self.deps[sid] if states[d].status in BAD_STATUSES]
            if bad:
                needs = self.needs(bad)
                self.finish(sid, StepStatus.BLOCKED, needs)
                self.emit(StepBlocked(needs, tuple(bad)), sid)
            else:
                why = f"not started: {reason}"
                self.finish(sid, StepStatus.CANCELLED, why)
                self.emit(StepCancelled(why), sid)

    def conclude(self) -> RunResult:
        self.finishing = True
        self.settle_unstarted()
        # The states are final now: the result's records are built from them when first read.
        states = self.states
        cancelled, fatal = self.cancel_requested, self.fatal
        paused, rejected = self.pause_requested, self.rejected
        status = run_status(
            states, cancelled=cancelled, paused=paused, fatal=fatal, rejected=rejected
        )
        problems = run_problems(states, cancelled=cancelled, fatal=fatal, rejected=rejected)
        outputs = {
            sid: r.output
            for sid, r in states.items()
            if r.status in (StepStatus.SUCCEEDED, StepStatus.COMPENSATED)
        }
        return RunResult(
            run_id=self.run_id,
            status=status,
            outputs=outputs,
            answer=render_answer(self.plan.answer, self.outputs, states),
            steps=StepRecords.from_attributes(states),
            plans=[self.plan],
            error="; ".join(problems) or None,
            started_at=self.started_at,
            finished_at=self.clock(),
        )
