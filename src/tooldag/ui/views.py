"""What the terminal faces show: plans, live progress, results, runs and tools, as rich renderables.

``tooldag exec``, ``tooldag run`` and ``tooldag chat`` draw the same things the same way, so the
drawing lives here once. Everything takes the data to draw and returns a renderable (or prints
to the console it is given), and :class:`RunWatch` turns a run's events into the live view;
nothing here runs, plans or stores anything.

Text that tooldag did not write itself (tool outputs and errors, the LLM's plans and answers,
goals, tool descriptions) goes through :func:`~tooldag._terminal.printable` on its way in, so
that no terminal control sequence in it reaches the terminal; and into tables as
:class:`~rich.text.Text`, never as a string that rich would read as markup.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .._terminal import printable
from ..durable.store import RunInfo, RunStore
from ..errors import RunStateError
from ..events import (
    Event,
    EventBus,
    EventType,
    Payload,
    RunFinished,
    StepBlocked,
    StepCancelled,
    StepCompensationFailed,
    StepFailed,
    StepRetrying,
    StepSkipped,
)
from ..issues import Issue, warnings_of
from ..observe.monitor import Monitor, status_style
from ..plan.model import LLM_ANSWER, Plan, Step
from ..plan.refs import Ref, Template, parse_string
from ..registry.registry import ToolRegistry
from ..registry.tool import Tool
from ..result import RunResult, RunStatus, StepRecord, StepStatus, Usage
from ..validate.flows import Flow
from ..validate.validator import validate

__all__ = [
    "LiveArea",
    "RunWatch",
    "args_text",
    "bar_width",
    "events_view",
    "flows_view",
    "issues_view",
    "plan_view",
    "print_line",
    "print_result",
    "progress_view",
    "run_view",
    "runs_table",
    "status_text",
    "step_details",
    "steps_table",
    "stored_run_view",
    "summary_line",
    "tools_table",
    "usage_detail",
    "usage_text",
]

_REF_STYLE = "cyan"
_VALUE_CHARS = 60
# Longer answers are cut on the terminal: rich lays text out at about a microsecond a character,
# which makes megabytes take a minute, and nobody reads them scrolling by; --json has them whole.
_ANSWER_CHARS = 100_000
# The live view's steps (running, then the latest to go wrong or finish), whatever the plan's
# size: drawing every step of a 20,000-step run took seconds a frame. A run of more than
# _TABLE_STEPS steps ends with a table of _TABLE_ROWS of them, and says where the rest is.
_LIVE_ROWS = 12
_TABLE_STEPS = 200
_TABLE_ROWS = 20


def bar_width(width: int) -> int:
    """The timeline bar's width for a terminal ``width`` columns wide."""
    return max(8, min(40, width - 85))


# --------------------------------------------------------------------------- plans


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _safe(text: object) -> Text:
    """Text from outside (a tool, the LLM, a goal) as a cell or line: escaped, no markup."""
    return Text(printable(str(text)))


def _answer_text(answer: str) -> Text:
    """An answer to print, escaped, and cut after ``_ANSWER_CHARS`` characters with a note."""
    if len(answer) <= _ANSWER_CHARS:
        return _safe(answer)
    note = f" … (cut: the answer has {len(answer):,} characters; --json prints it whole)"
    return _safe(answer[:_ANSWER_CHARS]).append(note, style="dim")


def print_line(console: Console, line: RenderableType) -> None:
    """A line of text (an error, a question, a step's fate), wrapped as text is read: on a
    terminal rich breaks it between words, to the terminal's width (the terminal itself would
    cut words in two); elsewhere (a pipe, a file) it stays one line, whole, for grep."""
    console.print(line, soft_wrap=not console.is_terminal)


def _json(value: Any, **options: Any) -> str:
    # ensure_ascii=False keeps non-ASCII text readable; it also lets C1 controls and DEL
    # through, which printable() then escapes.
    return printable(json.dumps(value, ensure_ascii=False, default=str, **options))


def _value_text(value: Any, limit: int | None = _VALUE_CHARS) -> Text:
    """One argument value: references in colour, long values cut (``limit=None``: never)."""
    if isinstance(value, str):
        parsed = parse_string(value)
        if isinstance(parsed, Ref | Template):
            return Text(_json(_cut(value, limit)), style=_REF_STYLE)
    return Text(printable(_cut(json.dumps(value, ensure_ascii=False, default=str), limit)))


def args_text(args: dict[str, Any], limit: int | None = _VALUE_CHARS) -> Text:
    """``name=value, ...`` with references (``$step.field``) highlighted; each value cut to
    ``limit`` characters (``None``: shown whole)."""
    out = Text()
    for i, (name, value) in enumerate(args.items()):
        if i:
            out.append(", ")
        out.append(f"{printable(name)}=", style="dim")
        out.append_text(_value_text(value, limit))
    return out


def _side_effects(registry: ToolRegistry | None, name: str) -> bool | None:
    if registry is None or name not in registry:
        return None
    return registry.get(name).side_effects


def plan_view(
    plan: Plan,
    registry: ToolRegistry | None = None,
    issues: Sequence[Issue] | None = None,
    *,
    title: str | None = None,
    limit: int | None = _VALUE_CHARS,
    flows: Sequence[Flow] = (),
) -> RenderableType:
    """The plan as a table (step, tool, arguments, what it waits for) and its issues, if any.

    Steps whose tool has side effects are marked ``!`` (they are the ones approval asks about),
    steps that ``flows`` reach ``⇢``, with each flow's path below the table; references to other
    steps' outputs are highlighted; argument values are cut to ``limit`` characters (``None``:
    shown whole). ``issues`` left out, the plan's warnings are shown when a ``registry`` is given
    (see :func:`_plan_warnings`).
    """
    table = Table(
        title=title or f"plan · {len(plan.steps)} step{'s' if len(plan.steps) != 1 else ''}",
        title_justify="left",
        title_style="bold",
        show_edge=False,
        pad_edge=False,
        expand=False,
    )
    table.add_column("step", no_wrap=True, style="bold")
    table.add_column("tool", no_wrap=True)
    table.add_column("arguments", overflow="fold", ratio=1)
    table.add_column("after", no_wrap=True, style="dim")
    reached = {flow.step for flow in flows}
    for step in plan.steps:
        tool = _safe(step.tool)
        effects = _side_effects(registry, step.tool)
        if effects:
            tool.append(" !", style="bold yellow")
        elif effects is None and registry is not None:
            tool.stylize("red")
        if step.id in reached:
            tool.append(" ⇢", style="bold dark_orange")
        args = args_text(step.args, limit)
        if step.when is not None:
            args.append("\nwhen ", style="dim")
            args.append(_json(step.when.to_json()), style=_REF_STYLE)
        after = _safe(", ".join(step.dependencies()) or "-")
        table.add_row(_safe(step.id), tool, args, after)
    parts: list[RenderableType] = [table]
    if not plan.steps:
        parts.append(Text("(no steps: the answer needs no tool)", style="dim"))
    if plan.answer and plan.answer.strip() == LLM_ANSWER:
        parts.append(Text("answer: written by the LLM from the results", style="dim"))
    elif plan.answer:
        parts.append(Text("answer: ", style="dim").append(printable(plan.answer), style="italic"))
    if registry is not None and any(_side_effects(registry, s.tool) for s in plan.steps):
        parts.append(Text("! has side effects", style="dim yellow"))
    if flows:
        parts.append(flows_view(flows))
    if issues is None:
        issues = _plan_warnings(plan, registry)
    if issues:
        parts.append(issues_view(issues))
    return Group(*parts)


def _plan_warnings(plan: Plan, registry: ToolRegistry | None) -> list[Issue]:
    """The warnings of a plan that is shown without its issues (a plan from the planner has no
    errors, but may have warnings: a number passed as text, ``$step`` read as ``${step}``)."""
    if registry is None:
        return []
    return warnings_of(validate(plan, registry))


def flows_view(flows: Iterable[Flow]) -> Text:
    """One line per data flow: ``⇢ g: read_file(path=".env") -> http_get.url``."""
    out = Text()
    for i, flow in enumerate(flows):
        if i:
            out.append("\n")
        what = "private data" if "private" in flow.kinds else "untrusted text"
        out.append("⇢ ", style="bold dark_orange")
        out.append(f"{printable(flow.step)} can send {what} out: ", style="dark_orange")
        out.append(printable(flow.text))
    return out


def issues_view(issues: Iterable[Issue]) -> Text:
    """One line per issue, as ``tooldag validate`` prints them: errors ``✗``, warnings ``!``."""
    out = Text()
    for i, issue in enumerate(issues):
        if i:
            out.append("\n")
        if issue.is_error:
            out.append("✗ ", style="red")
        else:
            out.append("! ", style="yellow")
        out.append(printable(str(issue)))
    return out


def step_details(
    step: Step, registry: ToolRegistry, *, resolved: dict[str, Any] | None = None
) -> RenderableType:
    """What ``d`` (details) shows about a step awaiting approval: the tool, its full arguments
    (``resolved``: as they will be sent, then as planned) and how it is undone."""
    lines: list[RenderableType] = []
    if step.tool in registry:
        tool = registry.get(step.tool)
        head = Text(f"{printable(tool.name)}: ", style="bold")
        lines.append(head.append(printable(tool.description), style="not bold"))
        if tool.compensate is not None:
            lines.append(_safe(f"undone by {tool.compensate.tool} if the run is abandoned"))
        else:
            lines.append(Text("not undoable: tooldag cannot reverse it", style="yellow"))
    if resolved is not None:
        lines.append(Text("arguments, as they will be sent:", style="dim"))
        lines.append(Text(_json(resolved, indent=2)))
        lines.append(Text("as planned:", style="dim"))
    else:
        lines.append(Text("arguments:", style="dim"))
    lines.append(Text(_json(step.args, indent=2)))
    if step.dependencies():
        waits = printable(", ".join(step.dependencies()))
        lines.append(Text(f"waits for: {waits}", style="dim"))
    return Group(*lines)


# --------------------------------------------------------------------------- runs


def progress_view(
    monitor: Monitor, run_id: str | None = None, *, width: int = 100
) -> RenderableType:
    """The live view of a run: one row per step with status, attempts and time."""
    try:
        return monitor.timeline_table(run_id, width=bar_width(width), window=_LIVE_ROWS)
    except RunStateError:
        return Text("starting...", style="dim")


def usage_text(usage: Usage) -> str:
    """``1,234 tokens (2 LLM calls)``, or an empty string when no LLM was called."""
    if not usage.calls:
        return ""
    calls = f"{usage.calls} LLM call{'s' if usage.calls != 1 else ''}"
    return f"{usage.total_tokens:,} tokens ({calls})"


def usage_detail(usage: Usage) -> str:
    """``1,234 tokens (2 LLM calls): 1,000 prompt, 234 completion``."""
    return (
        f"{usage_text(usage)}: {usage.prompt_tokens:,} prompt, "
        f"{usage.completion_tokens:,} completion"
    )


def summary_line(result: RunResult) -> Text:
    """``succeeded in 0.42s: 3 steps (3 succeeded) · 1,234 tokens (1 LLM call)``."""
    counts: dict[StepStatus, int] = {}
    for record in result.steps.values():
        counts[record.status] = counts.get(record.status, 0) + 1
    parts = [f"{n} {status.value}" for status, n in counts.items()]
    line = Text(result.status.value, style=f"bold {status_style(result.status)}")
    duration = f" in {result.duration:.2f}s" if result.duration is not None else ""
    steps = f"{len(result.steps)} step{'s' if len(result.steps) != 1 else ''}"
    line.append(f"{duration}: {steps} ({', '.join(parts) or 'none run'})")
    tokens = usage_text(result.usage)
    if tokens:
        line.append(f" · {tokens}")
    return line


_EXPLAINED = 10  # steps of each status explained below a run's table; the others are counted
_MARKS = {
    StepStatus.FAILED: "✗",
    StepStatus.BLOCKED: "⊘",
    StepStatus.SKIPPED: "↷",
    StepStatus.CANCELLED: "■",
}


def print_result(
    console: Console, result: RunResult, monitor: Monitor | None = None, *, table: bool = True
) -> None:
    """The end of a run: the step table (when steps ran), what went wrong in full (once, below
    the table), the answer and a summary line."""
    if table and monitor is not None and _has_steps(monitor, result.run_id):
        window = _TABLE_ROWS if len(result.steps) > _TABLE_STEPS else None
        width = bar_width(console.width)
        # Errors and reasons are printed once, whole, below: not also cut short in the table.
        steps = monitor.timeline_table(result.run_id, width=width, window=window, details=False)
        console.print(steps)
        if window is not None:
            console.print(Text("--json lists every step", style="dim"))
    explained = False
    shown: dict[StepStatus, int] = {}
    for record in result.steps.values():
        mark = _MARKS.get(record.status)
        if mark is None:
            if record.error is None:
                continue
            mark = "!"  # a compensation that failed
        explained = True
        # A few lines of each status, then a count: a big plan that failed early would
        # otherwise print a line for every step it blocked.
        shown[record.status] = n = shown.get(record.status, 0) + 1
        if n > _EXPLAINED:
            continue
        if record.error is not None:
            line = f"{mark} {record.id}: {record.error}"
        else:
            line = f"{mark} {record.id} {record.status.value}: {record.reason}"
        print_line(console, Text(printable(line), style=status_style(record.status)))
    for status, n in shown.items():
        if n > _EXPLAINED:
            mark = _MARKS.get(status, "!")
            more = f"{mark} … and {n - _EXPLAINED:,} more {status.value} (--json lists every step)"
            print_line(console, Text(more, style=status_style(status)))
    if result.error and not explained and result.status is not RunStatus.CANCELLED:
        print_line(console, Text(printable(result.error), style="dim"))
    if result.answer is not None:
        answer = _answer_text(result.answer)
        console.print(Text.assemble(("answer: ", "bold"), answer))
    console.print(summary_line(result))


def _has_steps(monitor: Monitor, run_id: str) -> bool:
    return run_id in monitor.run_ids and bool(monitor.statuses(run_id))


def status_text(status: str) -> Text:
    """A step or run status in its style."""
    return Text(status, style=status_style(status))


def runs_table(infos: Sequence[RunInfo]) -> Table:
    """Stored runs, newest first: id, status, goal, step counts, when."""
    rows = [
        (
            info.id,
            info.status,
            info.goal,
            ", ".join(f"{n} {s}" for s, n in sorted(info.step_counts.items())) or "-",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created_at)),
        )
        for info in infos
    ]
    table = Table(box=None, pad_edge=False, show_edge=False, expand=True)
    for i, header in enumerate(("ID", "STATUS", "GOAL", "STEPS", "CREATED")):
        # One line per run: only the goal gives way; ids and times stay whole and copyable.
        width = max([len(header), *(len(row[i]) for row in rows)])
        if i == 2:
            table.add_column(header, no_wrap=True, overflow="ellipsis", ratio=1)
        else:
            table.add_column(header, no_wrap=True, min_width=width, max_width=width)
    for run_id, status, goal, counts, created in rows:
        table.add_row(_safe(run_id), status_text(status), _safe(goal), counts, created)
    return table


_TIMELINE_EVENTS = 200


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _note(record: StepRecord) -> str:
    return str(record.error) if record.error is not None else record.reason or ""


def steps_table(result: RunResult) -> Table:
    """What each step of a run did: status, attempts, time, and its error or reason in full."""
    table = Table(title="steps", title_justify="left", title_style="bold", box=None, pad_edge=False)
    notes = [_note(record) for record in result.steps.values()]
    # Ids, tools and statuses whole (never squeezed: they do not wrap); the note wraps
    # between words in what is left, and is left out when no step has one.
    for column in ("STEP", "TOOL", "STATUS", "ATTEMPTS", "TIME"):
        table.add_column(column, no_wrap=True)
    if any(notes):
        table.add_column("NOTE", overflow="fold")
    for record, note in zip(result.steps.values(), notes, strict=True):
        took = "-" if record.duration is None else f"{record.duration:.3f}s"
        status = status_text(record.status)
        if record.reused:
            status.append(" (reused)", style="dim")
        row: list[RenderableType] = [_safe(record.id), _safe(record.tool), status]
        row += [str(record.attempts), took]
        table.add_row(*row, *([_safe(note)] if any(notes) else []))
    return table


def _event_note(data: Payload) -> str:
    """What a timeline line says after the event's name: an error, a reason or a status."""
    match data:
        case StepFailed() | StepRetrying() | StepCompensationFailed():
            return str(data.error)
        case StepSkipped(reason=reason) | StepBlocked(reason=reason) | StepCancelled(reason=reason):
            return reason
        case RunFinished(status=status):
            return status.value
    return ""


def events_view(events: Sequence[Event], limit: int = _TIMELINE_EVENTS) -> RenderableType:
    """A run's journal, one row per event with its time from the first (the last ``limit``);
    a long error or reason wraps in its own column, between words."""
    title = Text("timeline", style="bold")
    if not events:
        return title.append("\n  (no events)")
    t0 = events[0].ts
    shown = events[-limit:]
    rows = Table.grid(padding=(0, 2), pad_edge=True)
    rows.add_column(justify="right", no_wrap=True)
    rows.add_column(no_wrap=True)
    rows.add_column(overflow="fold")
    for e in shown:
        what = e.type.value
        if e.step_id:
            what += f" {e.step_id}"
        if e.attempt > 1:
            what += f" (attempt {e.attempt})"
        rows.add_row(f"+{e.ts - t0:.3f}s", _safe(what), _safe(_event_note(e.data)))
    parts: list[RenderableType] = [title]
    if len(events) > len(shown):
        parts.append(Text(f"  … {len(events) - len(shown)} earlier events", style="dim"))
    return Group(*parts, rows)


def run_view(
    info: RunInfo, result: RunResult, events: Sequence[Event] = (), *, resume: str | None = None
) -> Group:
    """One stored run, as ``tooldag runs show`` and the REPL's ``/show`` print it: status, goal,
    times, LLM usage, answer and error; its latest plan; what each step did; the journal's
    events; and for a run that can be resumed, how (``resume``: the command that does it)."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="dim", no_wrap=True)
    fields.add_column(overflow="fold")
    fields.add_row("goal", _safe(info.goal or "-"))
    fields.add_row("created", f"{_when(info.created_at)}   finished {_when(info.finished_at)}")
    if info.usage.calls:
        fields.add_row("llm", usage_detail(info.usage))
    if result.answer:
        fields.add_row("answer", _answer_text(result.answer))
    if result.error:
        fields.add_row("error", Text(printable(result.error), style="red"))
    status = status_text(info.status)
    parts: list[RenderableType] = [
        Text("run ", style="bold").append(printable(info.id)).append("  ").append_text(status),
        fields,
    ]
    if result.plan is not None:
        versions = len(result.plans)
        title = f"plan (version {versions} of {versions})" if versions > 1 else "plan"
        parts += [Text(), plan_view(result.plan, title=title, limit=None)]
    parts += [Text(), steps_table(result), Text(), events_view(events)]
    if resume and info.status.resumable and resume not in (result.error or ""):
        parts += [Text(), Text(f"`{resume}` continues it.")]
    return Group(*parts)


def stored_run_view(store: RunStore, info: RunInfo, *, resume: str | None = None) -> Group:
    """The run ``info`` names, as its journal in ``store`` has it: what ``tooldag runs show``
    and the REPL's ``/show`` both print (:func:`run_view`; ``resume``: how to continue it
    there, a command or a slash command)."""
    result, events = store.load_result(info.id), store.events(info.id)
    return run_view(info, result, events, resume=resume)


def _arguments(tool: Tool) -> str:
    """``city, days?``: the tool's arguments, ``?`` after those that may be left out."""
    required = tool.required
    names = (f"{name}{'' if name in required else '?'}" for name in tool.properties)
    return printable(", ".join(names)) or "-"


# Below this many columns for arguments and description together, the category column goes.
_TOOLS_TEXT_ROOM = 50


class _ToolsTable:
    """The tools as a table that fits the width it is drawn at: tool names never cut; the
    category column left out where it would squeeze the description under a readable width;
    arguments wrapped between names; each description on one line, cut with ``…``."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = tools

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        names = [printable(t.name) for t in self.tools]
        categories = [printable(t.category) for t in self.tools]
        name_width = max(cell_len("TOOL"), *map(cell_len, names))
        category_width = max(cell_len("CATEGORY"), *map(cell_len, categories))
        effects_width = cell_len("side effects")
        # What is left for arguments and description, at two columns a gap; the category is
        # the first thing to go (it is in --json, and the rows are sorted by it).
        room = options.max_width - name_width - effects_width - 6
        with_category = room - category_width - 2 >= _TOOLS_TEXT_ROOM
        if with_category:
            room -= category_width + 2
        table = Table(box=None, pad_edge=False, show_edge=False, caption_justify="left")
        count = f"{len(self.tools)} tool{'s' if len(self.tools) != 1 else ''}"
        table.caption = Text(f"{count} · tooldag tools --json prints their full schemas", "dim")
        table.add_column("TOOL", no_wrap=True, style="bold", min_width=name_width)
        if with_category:
            table.add_column("CATEGORY", no_wrap=True, style="dim", min_width=category_width)
        table.add_column("EFFECTS", no_wrap=True, min_width=effects_width)
        # Arguments wrap between names within two fifths of the room; the description gets the
        # rest, on one line.
        table.add_column("ARGUMENTS", overflow="fold", max_width=max(18, room * 2 // 5))
        table.add_column("DESCRIPTION")
        for tool, name, category in zip(self.tools, names, categories, strict=True):
            effects = (
                Text("side effects", style="yellow") if tool.side_effects else Text("read-only")
            )
            summary = Text(printable(tool.summary), no_wrap=True, overflow="ellipsis")
            cells = [Text(name), Text(category), effects, Text(_arguments(tool)), summary]
            table.add_row(*(cells if with_category else cells[:1] + cells[2:]))
        yield table

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def tools_table(registry: ToolRegistry) -> RenderableType:
    """The registry's tools (``tooldag tools``, the REPL's ``/tools``), by category: name,
    category, whether they have side effects, arguments and what they do, fitted to the width
    (names whole; descriptions cut first, ``tooldag tools --json`` has them whole)."""
    tools = [
        t
        for t in sorted(registry, key=lambda t: (t.category, t.name))
        if not t.metadata.get("compensation_only")
    ]
    if not tools:
        return Text("no tools", style="dim")
    return _ToolsTable(tools)


# --------------------------------------------------------------------------- live


class LiveArea:
    """At most one live area at a time: a spinner while the LLM works, the step table while a
    plan runs. Off on a console that is not a terminal (the final table is printed anyway)."""

    def __init__(self, console: Console, monitor: Monitor | None = None) -> None:
        self.console = console
        self.monitor = monitor or Monitor()
        self.enabled = console.is_terminal and not console.is_dumb_terminal
        self._live: Live | None = None
        self._get: Callable[[], RenderableType] | None = None
        self._paused = False

    def _start(self, get: Callable[[], RenderableType]) -> None:
        self.stop()
        self._get = get
        if self.enabled and not self._paused:
            self._live = Live(
                get_renderable=get, console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()

    def working(self, message: str) -> None:
        spinner = Spinner("dots", Text(message, style="dim"))
        self._start(lambda: spinner)

    def progress(self, run_id: str) -> None:
        self._start(lambda: progress_view(self.monitor, run_id, width=self.console.width))

    def answer(self, text: Callable[[], str]) -> None:
        """The answer as it is being written (``text()``: what has arrived so far)."""
        self._start(
            lambda: Text("answer: ", style="bold").append(printable(text()), style="not bold")
        )

    @property
    def showing(self) -> bool:
        return self._live is not None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def stop(self) -> None:
        self._get = None
        self._hide()

    def _hide(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No live area while the block runs (a question is on the screen); what was live comes
        back after it, unless it was stopped meanwhile."""
        if self._paused:
            yield
            return
        self._paused = True
        self._hide()
        try:
            yield
        finally:
            self._paused = False
            if self._get is not None:
                self._start(self._get)


class RunWatch:
    """Follows one run's events on :attr:`bus`: feeds the monitor and the live view, and says
    what happens between attempts (a failure, then a replan)."""

    def __init__(
        self,
        console: Console,
        run_id: str,
        *,
        max_replans: int = 0,
        may_show: Callable[[], bool] = lambda: True,
    ) -> None:
        self.run_id = run_id
        self.may_show = may_show
        """False while a question is being asked: the live view waits."""
        self.bus = EventBus()
        self.monitor = Monitor()
        self.display = LiveArea(console, self.monitor)
        self.console = console
        self.max_replans = max_replans
        self.executions = 0
        self.last_status: RunStatus | None = None
        self._undo: list[Callable[[], None]] = [self.bus.subscribe(self._on_event)]

    def keep(self, unsubscribe: Callable[[], None]) -> None:
        """Call ``unsubscribe`` on :meth:`close` (another consumer of :attr:`bus`)."""
        self._undo.append(unsubscribe)

    def _on_event(self, event: Event) -> None:
        kind = event.type
        if kind is EventType.RUN_STARTED:
            self.executions += 1
            if self.executions > 1:
                # Each execution of a replanned run gets its own view: the monitor times a run
                # from its latest run_started, which earlier attempts' steps precede.
                self.monitor = self.display.monitor = Monitor()
        self.monitor.record(event)
        if kind is EventType.RUN_STARTED:
            self.display.progress(self.run_id)
        elif isinstance(event.data, RunFinished):
            self.last_status = event.data.status
            self.display.stop()
            if self.last_status is RunStatus.FAILED and self.executions > 0:
                self._failed_attempt()
        elif kind is EventType.STEP_STARTED and not self.display.showing and self.may_show():
            # A streamed plan's execution goes on after its approval stopped the view.
            self.display.progress(self.run_id)
        else:
            self.display.refresh()

    def _failed_attempt(self) -> None:
        if self.executions > self.max_replans:
            return
        for row in self.monitor.get_step_timeline(self.run_id):
            if row["status"] == "failed":
                failed = printable(f"✗ {row['step_id']} failed: {row['error']}")
                print_line(self.console, Text(failed, style="red"))
        self.console.print(
            Text(
                f"asking the LLM for a new plan (replan {self.executions} of {self.max_replans})",
                style="dim",
            )
        )
        self.display.working("replanning...")

    def close(self) -> None:
        self.display.stop()
        for undo in self._undo:
            undo()
