"""OpenTelemetry traces of runs, built from tooldag's events (``pip install 'tooldag[otel]'``).

A :class:`RunTracer` turns the events of a run into spans that follow the OpenTelemetry GenAI
semantic conventions, so that any tracing back end (Jaeger, Tempo, Honeycomb, Logfire, Phoenix...)
shows a run as its tree::

    invoke_workflow tooldag          the run (all its executions and replans)
        plan                         one planning: a plan or replan, with its re-asks
            chat {model}             one LLM call
        execute_tool {tool}          one attempt of a step (a retried step has several)
        chat {model}                 an LLM call a tool made (under its step when it can tell)

Steps that never ran (skipped, blocked, reused) and compensations are events on the run's span.
Tool arguments and outputs (and the goal) are content: they go into spans only when
``capture_content`` is true, or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says so.

While a step's attempt runs, its span is the current span of the step's task (a context
variable), so that spans a tool makes of its own (an HTTP client's, a database driver's) sit
under it, however many steps run at once.

Spans go to the tracer provider given, else to the global one (whatever the program set up;
nothing is recorded until one is). Three ways in::

    plan_and_run(goal, on_event=RunTracer())      # one run
    RunTracer().attach(executor.bus)              # one executor's runs
    instrument()                                  # every run in the process

``tooldag --otel`` calls :func:`configure_otlp` and :func:`instrument`: spans are exported over
OTLP to where the standard ``OTEL_EXPORTER_OTLP_*`` variables say. Nothing here is imported by
the rest of tooldag: without the extra, tooldag runs as before and only :class:`RunTracer`
itself refuses, with how to install it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..events import (
    Event,
    EventBus,
    LLMCall,
    PlanCreated,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepCancelled,
    StepCompensated,
    StepCompensationFailed,
    StepFailed,
    StepRetrying,
    StepReused,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    subscribe_all,
)
from ..result import RunStatus

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError:  # pragma: no cover - exercised by an install without the extra
    HAVE_OTEL = False
else:
    HAVE_OTEL = True

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "HAVE_OTEL",
    "RunTracer",
    "configure_otlp",
    "instrument",
    "uninstrument",
]

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_INSTALL = "pip install 'tooldag[otel]'"
# A planning starts with one of these LLM calls; "repair" (a re-ask) continues the one open.
_PLANNING = frozenset({"plan", "replan"})


def _require() -> None:
    if not HAVE_OTEL:
        raise ConfigError(f"OpenTelemetry is not installed: {_INSTALL}")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _owner() -> object:
    """What a context variable set now belongs to: the running task, else this thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else threading.get_ident()


@dataclass
class _Attempt:
    span: Span
    token: contextvars.Token[Any] | None
    owner: object


@dataclass
class _Run:
    span: Span
    planning: Span | None = None
    attempts: dict[str, _Attempt] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0


class RunTracer:
    """Spans from events: subscribe it to a bus (:meth:`attach`), pass it as ``on_event=``, or
    let :func:`instrument` hand it every event. Thread-safe.

    ``tracer_provider`` defaults to the global provider. ``capture_content`` puts tool
    arguments, outputs and the goal into spans (default: the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable, else no).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool | None = None,
    ) -> None:
        _require()
        self._tracer = trace.get_tracer("tooldag", tracer_provider=tracer_provider)
        if capture_content is None:
            capture_content = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in (
                "1",
                "true",
                "yes",
            )
        self.capture_content = capture_content
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Trace the runs of ``bus``; returns the function that stops."""
        return bus.subscribe(self.record)

    def __call__(self, event: Event) -> None:
        self.record(event)

    # ------------------------------------------------------------------ the events

    def record(self, event: Event) -> None:
        with self._lock:
            run = self._runs.get(event.run_id)
            if run is None:
                run = self._runs[event.run_id] = self._start_run(event)
            self._apply(run, event)

    def _start_run(self, event: Event) -> _Run:
        took = event.duration if isinstance(event.data, LLMCall) else None
        start = event.ts - (took or 0.0)
        span = self._tracer.start_span(
            "invoke_workflow tooldag",
            kind=trace.SpanKind.INTERNAL,
            start_time=_ns(start),
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": "tooldag",
                "tooldag.run.id": event.run_id,
            },
        )
        return _Run(span)

    def _apply(self, run: _Run, event: Event) -> None:
        data = event.data
        match data:
            case LLMCall():
                self._llm_call(run, event, data)
            case PlanCreated(plan=plan, version=version):
                if run.planning is not None:
                    run.planning.set_attribute("tooldag.plan.version", version)
                    if plan is not None:
                        run.planning.set_attribute("tooldag.plan.steps", len(plan.steps))
                    run.planning.end(end_time=_ns(event.ts))
                    run.planning = None
            case RunStarted(plan=plan, goal=goal):
                self._end_planning(run, event.ts)
                if plan is not None:
                    run.span.set_attribute("tooldag.plan.steps", len(plan.steps))
                if goal and self.capture_content:
                    run.span.set_attribute("tooldag.run.goal", goal)
                run.span.add_event("execution started", timestamp=_ns(event.ts))
            case StepStarted(tool=tool, args=args):
                self._attempt_started(run, event, tool, args)
            case StepRetrying(error=error):
                self._attempt_ended(run, event, "retrying", error.type, str(error))
            case StepSucceeded(output=output):
                extra = {"gen_ai.tool.call.result": _json(output)} if self.capture_content else {}
                self._attempt_ended(run, event, "succeeded", extra=extra)
            case StepFailed(error=error):
                if self._attempt_ended(run, event, "failed", error.type, str(error)) is None:
                    self._step_event(run, event, "step failed", error=str(error))
            case StepCancelled(reason=reason):
                if self._attempt_ended(run, event, "cancelled", "cancelled", reason) is None:
                    self._step_event(run, event, "step cancelled", reason=reason)
            case StepSkipped(reason=reason):
                self._step_event(run, event, "step skipped", reason=reason)
            case StepBlocked(reason=reason):
                self._step_event(run, event, "step blocked", reason=reason)
            case StepReused():
                self._step_event(run, event, "step reused")
            case StepCompensated(tool=tool):
                self._step_event(run, event, "step compensated", tool=tool)
            case StepCompensationFailed(tool=tool, error=error):
                self._step_event(
                    run, event, "step compensation failed", tool=tool, error=str(error)
                )
            case RunFinished():
                self._run_finished(run, event, data)

    def _step_event(self, run: _Run, event: Event, name: str, **details: str) -> None:
        attributes = {"tooldag.step.id": event.step_id or ""}
        attributes.update({f"tooldag.step.{k}": v for k, v in details.items() if v})
        run.span.add_event(name, attributes=attributes, timestamp=_ns(event.ts))

    def _end_planning(self, run: _Run, at: float) -> None:
        if run.planning is not None:
            run.planning.end(end_time=_ns(at))
            run.planning = None

    def _llm_call(self, run: _Run, event: Event, data: LLMCall) -> None:
        end = event.ts
        start = end - (event.duration or 0.0)
        if data.purpose in _PLANNING:
            self._end_planning(run, start)
        if data.purpose in _PLANNING or (data.purpose == "repair" and run.planning is None):
            run.planning = self._tracer.start_span(
                "plan",
                context=trace.set_span_in_context(run.span),
                start_time=_ns(start),
                attributes={"tooldag.run.id": event.run_id, "tooldag.plan.purpose": data.purpose},
            )
        parent = run.span
        if data.purpose in _PLANNING or data.purpose == "repair":
            parent = run.planning or run.span
        elif data.purpose == "tool":
            # A tool's own call is made inside its step: under that step's span when it is the
            # current span here.
            current = trace.get_current_span()
            if any(a.span is current for a in run.attempts.values()):
                parent = current
        usage = data.usage
        model = data.model or ""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "tooldag.run.id": event.run_id,
            "tooldag.llm.purpose": data.purpose,
            "tooldag.llm.output_mode": data.mode,
            "tooldag.llm.usage_estimated": data.usage_estimated,
            "tooldag.attempt": event.attempt,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        span = self._tracer.start_span(
            f"chat {model}".strip(),
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.CLIENT,
            start_time=_ns(start),
            attributes=attributes,
        )
        span.end(end_time=_ns(end))
        run.input_tokens += usage.prompt_tokens
        run.output_tokens += usage.completion_tokens

    def _attempt_started(
        self, run: _Run, event: Event, tool: str, args: dict[str, Any] | None
    ) -> None:
        step_id = event.step_id or ""
        previous = run.attempts.pop(step_id, None)
        if previous is not None:  # an attempt whose end was never told
            self._close(previous, event.ts)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": f"{event.run_id}:{step_id}:{event.attempt}",
            "tooldag.run.id": event.run_id,
            "tooldag.step.id": step_id,
            "tooldag.step.attempt": event.attempt,
        }
        if self.capture_content and args is not None:
            attributes["gen_ai.tool.call.arguments"] = _json(args)
        span = self._tracer.start_span(
            f"execute_tool {tool}",
            context=trace.set_span_in_context(run.span),
            kind=trace.SpanKind.INTERNAL,
            start_time=_ns(event.ts),
            attributes=attributes,
        )
        # The event is emitted in the step's own task, just before its tool is called: the
        # span becomes current there, and in the thread a sync tool runs in (the executor
        # copies the context into it).
        token = otel_context.attach(trace.set_span_in_context(span))
        run.attempts[step_id] = _Attempt(span, token, _owner())

    def _close(self, attempt: _Attempt, at: float) -> None:
        if attempt.token is not None and attempt.owner == _owner():
            otel_context.detach(attempt.token)
        attempt.span.end(end_time=_ns(at))

    def _attempt_ended(
        self,
        run: _Run,
        event: Event,
        status: str,
        error_type: str | None = None,
        message: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> Span | None:
        attempt = run.attempts.pop(event.step_id or "", None)
        if attempt is None:
            return None
        span = attempt.span
        span.set_attribute("tooldag.step.status", status)
        if extra:
            span.set_attributes(extra)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(trace.Status(trace.StatusCode.ERROR, message or error_type))
        self._close(attempt, event.ts)
        return span

    def _run_finished(self, run: _Run, event: Event, data: RunFinished) -> None:
        if not data.final:
            run.span.add_event(
                "execution finished",
                attributes={"tooldag.run.status": data.status.value},
                timestamp=_ns(event.ts),
            )
            return
        self._end_planning(run, event.ts)
        for attempt in run.attempts.values():  # abandoned mid-attempt
            attempt.span.set_attribute("tooldag.step.status", "abandoned")
            self._close(attempt, event.ts)
        run.attempts.clear()
        span = run.span
        span.set_attribute("tooldag.run.status", data.status.value)
        span.set_attribute("gen_ai.usage.input_tokens", run.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", run.output_tokens)
        if data.status is not RunStatus.SUCCEEDED:
            span.set_attribute("error.type", data.status.value)
            span.set_status(trace.Status(trace.StatusCode.ERROR, data.error or data.status.value))
        span.end(end_time=_ns(event.ts))
        self._runs.pop(event.run_id, None)


# --------------------------------------------------------------------------- process-wide

_installed: tuple[RunTracer, Callable[[], None]] | None = None
_installed_lock = threading.Lock()


def instrument(
    tracer_provider: TracerProvider | None = None, *, capture_content: bool | None = None
) -> RunTracer:
    """Trace every run in this process (every event bus's events), replacing an earlier
    :func:`instrument`; returns the tracer."""
    global _installed
    tracer = RunTracer(tracer_provider, capture_content=capture_content)
    with _installed_lock:
        if _installed is not None:
            _installed[1]()
        _installed = (tracer, subscribe_all(tracer.record))
    return tracer


def uninstrument() -> None:
    """Stop what :func:`instrument` started (spans already ended stay exported)."""
    global _installed
    with _installed_lock:
        if _installed is not None:
            _installed[1]()
            _installed = None


def configure_otlp(service_name: str = "tooldag") -> Callable[[], None]:
    """Set the global tracer provider to the SDK's, exporting in batches over OTLP, configured
    by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT``,
    ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``; the default endpoint is a collector on
    localhost:4318). Returns the function that flushes and shuts it down.

    A program that set an SDK provider of its own (``opentelemetry-instrument``, say) keeps it:
    then nothing is changed and the returned function does nothing.
    """
    _require()
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(f"--otel needs the OpenTelemetry SDK: {_INSTALL}") from None
    if isinstance(trace.get_tracer_provider(), SdkTracerProvider):
        return lambda: None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    exporter: Any
    if protocol == "http/protobuf":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError(f"--otel needs the OTLP exporter: {_INSTALL}") from None
        exporter = OTLPSpanExporter()
    elif protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs pip install "
                "opentelemetry-exporter-otlp-proto-grpc (or use http/protobuf, the default)"
            ) from None
        exporter = GrpcExporter()
    else:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use http/protobuf "
            "(the default) or grpc"
        )
    named = os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes = {} if named else {SERVICE_NAME: service_name}
    provider = SdkTracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider.shutdown
