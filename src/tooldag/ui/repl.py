"""``tooldag chat``: goals in, a visible plan, approval, live progress, an answer.

:class:`Chat` does one thing per call (run a goal, plan one, run or edit the last plan, resume a
stored run) and draws it with :mod:`tooldag.ui.views`; :meth:`Chat.repl` is the prompt_toolkit loop
around it, with a persistent history, multi-line editing (Alt-Enter) and slash commands.
``tooldag run`` and ``tooldag demo`` drive the same class.

Ctrl-C while something runs cancels it and the REPL goes on: running steps are cancelled and
every side-effecting step that succeeded is compensated, last finished first. At the prompt,
Ctrl-C clears the line and Ctrl-D leaves.

Approval (:mod:`tooldag.ui.approval`) is asked step by step as the run comes to each step, with
its arguments resolved; the live view pauses while a question is on the screen. The data-flow
``policy`` (``ask``, ``strict``, ``off``; :mod:`tooldag.execution.policy`) applies to goals,
``/run`` and ``/resume`` alike.

>>> chat = Chat(console, registry, llm, store=RunStore())   # doctest: +SKIP
>>> asyncio.run(chat.repl())                                # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import subprocess
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.text import Text

from .._files import private_file
from .._terminal import printable
from ..agent import Session
from ..durable.runner import DurableExecutor
from ..durable.store import RunStore, default_store_path
from ..errors import PlanError, PlanParseError, TooldagError
from ..execution.executor import Executor
from ..execution.policy import Policy, PolicyGate
from ..execution.runners import StepRunner
from ..issues import errors_of
from ..llm.client import LLMClient
from ..observe.mermaid import to_mermaid
from ..observe.monitor import Monitor
from ..plan.model import Plan
from ..plan.parse import parse_plan
from ..plan.reuse import reusable_outputs
from ..planning.planner import Planner
from ..registry.registry import ToolRegistry
from ..result import RunResult, RunStatus, new_run_id
from ..validate.validator import validate
from .approval import ApprovalMode, Approver
from .interrupts import CtrlC
from .views import (
    LiveArea,
    RunWatch,
    issues_view,
    plan_view,
    print_line,
    print_result,
    runs_table,
    stored_run_view,
    tools_table,
    usage_detail,
    usage_text,
)

if TYPE_CHECKING:
    from ..web.server import ViewerServer

__all__ = ["COMMANDS", "Chat", "default_history_path", "fit_toolbar"]

COMMANDS: dict[str, str] = {
    "/help": "this list",
    "/tools": "the tools plans may use",
    "/plan GOAL": "plan and validate a goal; nothing runs",
    "/run": "run the last plan as it is (no LLM call)",
    "/edit": "open the last plan in $EDITOR, then validate it again",
    "/runs": "recent runs in the run store",
    "/show [ID]": "a stored run: plan, steps, timeline (default: the last run)",
    "/resume [ID]": "continue a failed, paused or interrupted run",
    "/rerun [ID]": "run a stored run's plan again from the start, as a new run",
    "/graph [ID]": "a run as a Mermaid diagram coloured by status",
    "/ui [ID]": "a run (default: the last) in the web viewer, live in your browser",
    "/model [NAME]": "show or switch the LLM model",
    "/usage": "LLM tokens spent in this session",
    "/clear": "forget earlier goals (follow-ups start fresh) and clear the screen",
    "/quit": "leave (Ctrl-D works too)",
}

_KEYS_HELP = (
    "Type a goal and press Enter: tooldag plans it, shows the plan, asks before side effects, "
    "and runs it. Alt-Enter adds a line · Ctrl-C cancels a run · Ctrl-D exits · /help"
)


# The keys' hint under the prompt, longest first: the first that fits the terminal is shown.
_KEY_HINTS = (
    "Ctrl-C cancels a run · Ctrl-D exits",
    "Ctrl-C cancel · Ctrl-D exit",
    "^C cancel · ^D exit",
)


def fit_toolbar(parts: list[str], width: int, terse: list[str] | None = None) -> str:
    """The bottom bar's text: ``parts`` (what the session is set to), then the keys' hint in
    the longest form that fits ``width`` columns; with no room for a hint, none; then
    ``terse``, the parts said shorter; with no room for those either, cut with ``…``
    (prompt_toolkit would cut it anywhere, unmarked)."""
    for keys in _KEY_HINTS:
        text = " · ".join([*parts, keys])
        if cell_len(text) <= width:
            return text
    for form in (parts, terse or parts):
        text = " · ".join(form)
        if cell_len(text) <= width:
            return text
    return set_cell_size(text, max(width - 1, 0)) + "…"


def default_history_path() -> Path:
    """``chat_history`` next to the run store: ``$TOOLDAG_HOME``, else the user data dir."""
    return default_store_path().parent / "chat_history"


class _SlashCompleter(Completer):
    def get_completions(self, document: Document, complete_event: Any) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or " " in text:
            return
        for usage in COMMANDS:
            name = usage.split()[0]
            if name.startswith(text):
                yield Completion(name, start_position=-len(text), display_meta=COMMANDS[usage])


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


class Chat:
    """The chat experience over ``registry`` and ``llm``.

    ``console`` shows plans, questions and progress; ``out`` (default: ``console``) the results.
    ``store`` journals every run (``/runs``, ``/show``, ``/resume``) and is the ledger that
    undoes a run cancelled while the LLM replans. ``approve`` is an
    :class:`ApprovalMode`, ``policy`` the data-flow :class:`Policy`; ``interactive`` false
    means there is no one to answer questions (``tooldag run`` off a terminal): what would need
    one is refused. ``input``/``output`` are prompt_toolkit's (tests pass a pipe).
    """

    def __init__(
        self,
        console: Console,
        registry: ToolRegistry,
        llm: LLMClient,
        *,
        store: RunStore | None = None,
        approve: ApprovalMode | str = ApprovalMode.SIDE_EFFECTS,
        policy: Policy | str = Policy.ASK,
        interactive: bool = True,
        max_replans: int = 2,
        out: Console | None = None,
        history: History | None = None,
        input: Input | None = None,
        output: Output | None = None,
        prompt: str = "tooldag> ",
        toolbar: str | None = None,
        debug: bool = False,
        runner: StepRunner[Any] | None = None,
        stream: bool = False,
        join: str = "auto",
    ) -> None:
        self.console = console
        self.out = out or console
        self.registry = registry
        self.store = store
        self.max_replans = max_replans
        self.debug = debug
        # Where tool calls run (``--dask``): every executor of the session gets it.
        self.executor_options: dict[str, Any] = {} if runner is None else {"runner": runner}
        self.policy = Policy(policy)
        self.approver = Approver(
            console, registry, self.ask, mode=approve, policy=self.policy, interactive=interactive
        )
        # Streamed plans start read-only steps before the plan is approved: not when every
        # plan is to be confirmed before anything of it runs.
        self.stream = stream and self.approver.mode is not ApprovalMode.PLAN
        self.join = join
        self.session = self._new_session(llm)
        self.asking = 0
        """Questions being asked now (the live view waits for them)."""
        self._watch: RunWatch | None = None
        self.prompt_text = prompt
        self.toolbar = toolbar
        self.last_plan: Plan | None = None
        self.last_result: RunResult | None = None
        self.last_rejection: PlanError | None = None
        """Why the latest goal got no valid plan (``run_goal`` returned ``None``)."""
        self._input = input
        self._output = output
        self._history = history
        self._prompt: PromptSession[str] | None = None
        # Ctrl-C cancels what runs; a second one does not end the session (see interrupts).
        self.ctrl_c = CtrlC(console, second_aborts=False)
        self._viewer: ViewerServer | None = None  # /ui's, started on first use

    def _new_session(self, llm: LLMClient) -> Session:
        return Session(
            tools=self.registry,
            llm=llm,
            max_replans=self.max_replans,
            executor_options=self.executor_options,
            stream=self.stream,
            join=self.join,
        )

    # ------------------------------------------------------------------ input

    def _session(self) -> PromptSession[str]:
        if self._prompt is None:
            history = self._history
            if history is None:
                path = default_history_path()
                private_file(path)  # what was typed may hold private data
                history = FileHistory(str(path))
            self._prompt = PromptSession(
                history=history,
                input=self._input,
                output=self._output,
                key_bindings=_key_bindings(),
                completer=_SlashCompleter(),
                complete_while_typing=True,
                # The menu takes room only while it is open: no blank block under every prompt.
                reserve_space_for_menu=0,
                prompt_continuation=lambda width, *_: "." * (width - 1) + " ",
            )
        return self._prompt

    async def ask(self, message: str) -> str:
        """One answer from the person (approval questions); no history."""
        question: PromptSession[str] = PromptSession(input=self._input, output=self._output)
        self.asking += 1
        if self._watch is not None:
            self._watch.display.stop()  # steps that started early may still be running
        try:
            return await question.prompt_async(message, handle_sigint=False)
        finally:
            self.asking -= 1

    def bottom_toolbar(self, width: int | None = None) -> str:
        """The bar under the prompt, fitted to ``width`` columns (default: the terminal's)."""
        parts = [
            f"model {self.session.llm.model}",
            f"approve {self.approver.mode.value}",
            f"policy {self.policy.value}",
        ]
        terse = [self.session.llm.model, *parts[1:]]  # a model's name says what it is
        if self.toolbar:
            parts.insert(0, self.toolbar)
            terse.insert(0, self.toolbar)
        if width is None:
            width = get_app().output.get_size().columns
        return fit_toolbar(parts, width, terse)

    # ------------------------------------------------------------------ the loop

    async def repl(self, banner: bool = True) -> None:
        """Read goals and commands until Ctrl-D or /quit."""
        if banner:
            self.console.print(Text(_KEYS_HELP, style="dim"))
        prompt = self._session()
        with self.interrupts():
            while True:
                try:
                    text = await prompt.prompt_async(
                        self.prompt_text, bottom_toolbar=self.bottom_toolbar, handle_sigint=False
                    )
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                if not await self.handle(text):
                    break
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.llm.aclose()
        if self._viewer is not None:
            self._viewer.stop()

    def interrupts(self) -> contextlib.AbstractContextManager[None]:
        """Ctrl-C while something runs cancels it (at the prompt it is a key press)."""
        return self.ctrl_c.installed()

    def interrupt(self) -> None:
        """Cancel what runs now (what the SIGINT handler calls); nothing if nothing runs."""
        self.ctrl_c.interrupt()

    async def handle(self, text: str) -> bool:
        """One line from the person: a slash command or a goal. False means leave."""
        text = text.strip()
        if not text:
            return True
        try:
            if text.startswith("/"):
                return await self.command(text)
            await self.run_goal(text)
            self.out.print()
        except TooldagError as exc:
            print_line(self.console, Text(printable(f"error: {exc}"), style="red"))
        except Exception as exc:
            if self.debug:
                trace = printable(traceback.format_exc())
                self.console.print(trace, markup=False, highlight=False)
            print_line(
                self.console,
                Text(
                    printable(
                        f"error: unexpected {type(exc).__name__}: {exc} (tooldag --debug chat "
                        "shows the traceback)"
                    ),
                    style="red",
                ),
            )
        return True

    async def command(self, text: str) -> bool:
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        name = name.lower()
        if name in ("/quit", "/exit", "/q"):
            return False
        handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "/help": self._help,
            "/tools": self._tools,
            "/plan": self._plan,
            "/run": self._run,
            "/edit": self._edit,
            "/runs": self._runs,
            "/show": self._show,
            "/resume": self._resume,
            "/rerun": self._rerun,
            "/graph": self._graph,
            "/ui": self._ui,
            "/model": self._model,
            "/usage": self._usage,
            "/clear": self._clear,
        }
        handler = handlers.get(name)
        if handler is None:
            self.console.print(Text(f"unknown command {name}", style="red"))
            await self._help("")
            return True
        await handler(arg)
        return True

    # ------------------------------------------------------------------ goals

    def _new_watch(self) -> tuple[str, RunWatch]:
        run_id = new_run_id()
        watch = RunWatch(
            self.console,
            run_id,
            max_replans=self.max_replans,
            may_show=lambda: not self.asking,
        )
        self._watch = watch
        if self.store is not None:
            watch.keep(self.store.attach(watch.bus))
        return run_id, watch

    async def run_goal(self, goal: str) -> RunResult | None:
        """Plan ``goal`` (with the earlier goals as context), show the plan, ask, run, answer.
        ``None`` when no valid plan came back (the issues are shown)."""
        run_id, watch = self._new_watch()
        if self.store is not None:  # the user's words, as aplan_and_run records them
            self.store.open_run(run_id, goal)
        self._watch_questions(watch.display)
        watch.display.working(f"planning with {self.session.llm.model}...")
        answer: list[str] = []

        def on_answer(text: str) -> None:  # the join's answer, shown as it is written
            if not answer:
                watch.display.answer(lambda: "".join(answer))
            answer.append(text)
            watch.display.refresh()

        task = asyncio.ensure_future(
            self.session.arun(
                goal,
                run_id=run_id,
                bus=watch.bus,
                approve=self.approver.approve_plan,
                approve_step=self.approver.step_hook,
                policy=self.policy,
                egress_allow=self.approver.egress_allow,
                on_answer=on_answer,
            )
        )
        try:
            result = await self.ctrl_c.run(task, task.cancel)
        except asyncio.CancelledError:
            if not task.cancelled() or _being_cancelled():
                raise
            result = await self._after_cancel(watch)
        except PlanError as exc:
            watch.close()  # before printing: the spinner must be gone
            self.last_rejection = exc
            self._show_rejection(exc)
            return None
        finally:
            watch.close()
        self.last_result = result
        if result.plan is not None:
            self.last_plan = result.plan
        print_result(self.out, result, watch.monitor)
        return result

    async def _after_cancel(self, watch: RunWatch) -> RunResult:
        """The cancelled run as the journal has it (``aplan_and_run`` has already compensated
        what it did and recorded it ``cancelled``, wherever the cancel landed)."""
        watch.display.stop()
        stored = self._stored(watch.run_id)
        if stored is None:  # cancelled before anything was journalled: nothing to show
            return RunResult(run_id=watch.run_id, status=RunStatus.CANCELLED)
        self.session.usage += stored.usage  # Session.arun counts only the runs that return
        return stored.model_copy(update={"status": RunStatus.CANCELLED})

    def _watch_questions(self, display: LiveArea | None) -> None:
        """The live view stops when a plan is shown and pauses while a step is asked about."""
        self.approver.plans_shown = 0
        self.approver.on_plan = (lambda plan: display.stop()) if display is not None else None
        self.approver.pause = display.paused if display is not None else None

    def _gate(self) -> PolicyGate:
        """The gate of a run this REPL starts without the agent (``/run``, ``/resume``)."""
        return PolicyGate(
            self.registry,
            policy=self.policy,
            approve_step=self.approver.step_hook,
            egress_allow=self.approver.egress_allow,
        )

    def _stored(self, run_id: str) -> RunResult | None:
        if self.store is None or self.store.get_run(run_id) is None:
            return None
        return self.store.load_result(run_id)

    def _show_rejection(self, exc: PlanError) -> None:
        first = printable(str(exc).splitlines()[0])
        print_line(self.console, Text(first, style="red"))
        if exc.issues:
            self.console.print(issues_view(exc.issues))

    # ------------------------------------------------------------------ commands

    async def _help(self, _: str) -> None:
        self.console.print(Text(_KEYS_HELP, style="dim"))
        width = max(len(u) for u in COMMANDS)
        for usage, what in COMMANDS.items():
            self.console.print(Text(f"  {usage:<{width}}  ", style="bold").append(what, style=""))

    async def _tools(self, _: str) -> None:
        self.console.print(tools_table(self.registry))

    async def _plan(self, goal: str) -> None:
        if not goal:
            self.console.print("usage: /plan GOAL (plans and validates; /run then runs it)")
            return
        planner = Planner(self.registry, self.session.llm, max_reasks=2)
        display = LiveArea(self.console)
        display.working(f"planning with {self.session.llm.model}...")
        task = asyncio.ensure_future(planner.plan(goal, self.session.context() or None))
        try:
            plan = await self.ctrl_c.run(task, task.cancel)
        except asyncio.CancelledError:
            if not task.cancelled() or _being_cancelled():
                raise
            self.console.print(Text("planning cancelled", style="yellow"))
            return
        except PlanError as exc:
            self._show_rejection(exc)
            return
        finally:
            display.stop()
        self.last_plan = plan
        self.session.usage += planner.usage
        self.console.print(plan_view(plan, self.registry))
        tokens = usage_text(planner.usage)
        self.console.print(Text(f"valid · {tokens} · /run runs it, /edit changes it", style="dim"))

    async def _run(self, _: str) -> None:
        if self.last_plan is None:
            self.console.print("no plan yet: /plan GOAL makes one (or type a goal)")
            return
        await self.run_plan(self.last_plan)

    async def run_plan(self, plan: Plan) -> RunResult | None:
        """Run ``plan`` as it is (no LLM): validate, show, ask, run with live progress."""
        issues = validate(plan, self.registry)
        if errors_of(issues):
            self.console.print(plan_view(plan, self.registry, issues))
            self.console.print(Text("the plan has issues: /edit fixes it", style="red"))
            return None
        run_id, watch = self._new_watch()
        self._watch_questions(watch.display)
        gate = self._gate()
        try:
            refusal = None
            if not await self.approver.approve_plan(plan):
                refusal = "the plan was not approved"
            else:
                gate.prepare(plan)
                refusal = gate.refusal()
            if refusal is not None:
                result = RunResult(run_id=run_id, status=RunStatus.REJECTED, error=refusal)
            else:
                executor = Executor(
                    self.registry, bus=watch.bus, gate=gate, **self.executor_options
                )
                handle = executor.start(plan, run_id=run_id)
                result = await self.ctrl_c.run(handle.wait(), handle.cancel)
        finally:
            watch.close()
        self.session.results.append((plan.goal or "(a hand-made plan)", result))
        self.last_result = result
        print_result(self.out, result, watch.monitor)
        return result

    async def _edit(self, _: str) -> None:
        if self.last_plan is None:
            self.console.print("no plan to edit yet: /plan GOAL makes one")
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile(
            "w", suffix=".json", prefix="tooldag-plan-", delete=False, encoding="utf-8"
        ) as fh:
            fh.write(self.last_plan.dumps() + "\n")
            path = fh.name
        try:
            code = await asyncio.to_thread(lambda: subprocess.call([*shlex.split(editor), path]))
            text = Path(path).read_text(encoding="utf-8")
        finally:
            os.unlink(path)
        if code != 0:
            self.console.print(f"{editor} exited with status {code}: the plan is unchanged")
            return
        try:
            plan = parse_plan(text, audience="person")
        except PlanParseError as exc:
            self._show_rejection(exc)
            self.console.print("the plan is unchanged")
            return
        self.last_plan = plan
        issues = validate(plan, self.registry)
        self.console.print(plan_view(plan, self.registry, issues))
        valid = not errors_of(issues)
        note = "valid · /run runs it" if valid else "not valid yet: /edit again"
        self.console.print(Text(note, style="dim" if valid else "red"))

    def _need_store(self) -> RunStore | None:
        if self.store is None:
            self.console.print("no run store in this session (start tooldag chat with --store)")
        return self.store

    def _run_id(self, arg: str) -> str | None:
        if arg:
            return arg
        if self.last_result is not None:
            return self.last_result.run_id
        self.console.print("no run yet in this session: give a run id (/runs lists them)")
        return None

    async def _runs(self, _: str) -> None:
        store = self._need_store()
        if store is None:
            return
        infos = store.list_runs(limit=20)
        if not infos:
            self.console.print(f"no runs in {store.path} yet")
            return
        self.console.print(runs_table(infos))

    async def _show(self, arg: str) -> None:
        store = self._need_store()
        run_id = self._run_id(arg)
        if store is None or run_id is None:
            return
        info = store.get_run(run_id)
        if info is None:
            self.console.print(Text(f"no run {run_id!r}: /runs lists the runs", style="red"))
            return
        self.console.print(stored_run_view(store, info, resume=f"/resume {run_id}"))

    async def _resume(self, arg: str) -> None:
        store = self._need_store()
        run_id = self._run_id(arg)
        if store is None or run_id is None:
            return
        await self.resume(run_id)

    async def _rerun(self, arg: str) -> None:
        store = self._need_store()
        run_id = self._run_id(arg)
        if store is None or run_id is None:
            return
        plans = store.plans(run_id) if store.get_run(run_id) is not None else None
        if not plans:
            what = "has no stored plan" if plans == [] else "is not in the store"
            self.console.print(Text(f"run {run_id!r} {what}: /runs lists the runs", style="red"))
            return
        self.last_plan = plans[-1]
        await self.run_plan(plans[-1])

    async def resume(self, run_id: str) -> RunResult | None:
        """Continue a stored run that failed, paused or was interrupted: finished steps are
        reused, the rest run, asked about as they come (steps refused before are asked again)."""
        assert self.store is not None
        info = self.store.get_run(run_id)
        if info is None:
            self.console.print(Text(f"no run {run_id!r}: /runs lists the runs", style="red"))
            return None
        if not info.status.resumable:
            which = _either([s.value for s in RunStatus if s.resumable])
            message = f"run {run_id} is {info.status}: only {which} runs can be resumed"
            if info.status.finished:
                message += f"; /rerun {run_id} runs its plan again as a new run"
            self.console.print(Text(message, style="red"))
            return None
        stored = self.store.load_result(run_id)
        gate = self._gate()
        if stored.plan is not None:
            # What the resume will run: the library's reuse rule, as DurableExecutor.aresume.
            reused = reusable_outputs(
                previous=stored.plan, plan=stored.plan, outputs=stored.outputs
            )
            todo = [s for s in stored.plan.steps if s.id not in reused]
            self._watch_questions(None)
            refusal = None
            if not await self.approver.approve_plan(stored.plan.model_copy(update={"steps": todo})):
                refusal = "the plan was not approved"
            else:
                gate.prepare(stored.plan)  # the whole plan: reused outputs flow on
                refusal = gate.refusal()
            if refusal is not None:
                line = printable(f"not resumed: {refusal}")
                print_line(self.console, Text(line, style="dark_orange"))
                return None
        runner = DurableExecutor(
            self.registry, store=self.store, gate=gate, **self.executor_options
        )
        monitor = Monitor(runner.executor.bus)
        display = LiveArea(self.console, monitor)
        self.approver.pause = display.paused
        runner.executor.bus.subscribe(lambda e: display.refresh())
        display.progress(run_id)
        cancel = functools.partial(runner.acancel_workflow, run_id)
        try:
            result = await self.ctrl_c.run(runner.aresume(run_id), cancel)
        finally:
            display.stop()
            runner.close()
        self.last_result = result
        print_result(self.out, result, monitor)
        return result

    async def _graph(self, arg: str) -> None:
        run_id = arg or (self.last_result.run_id if self.last_result is not None else None)
        result = self.last_result
        if arg or result is None or result.plan is None:
            result = self._stored(run_id) if run_id else None
        if result is None or result.plan is None:
            self.console.print("no run to draw yet: run a goal first, or /graph ID")
            return
        statuses = {sid: record.status for sid, record in result.steps.items()}
        self.console.print(to_mermaid(result.plan, statuses), markup=False, highlight=False)

    async def _ui(self, arg: str) -> None:
        store = self._need_store()
        if store is None:
            return
        from .cli.ui_cmd import open_page, start_viewer  # the web extra, only when asked for

        if self._viewer is None:
            registry = self.registry
            self._viewer = start_viewer(store.path, tools=lambda: registry).start()
        run_id = arg or (self.last_result.run_id if self.last_result is not None else None)
        open_page(self._viewer, run_id, lambda text: self.console.print(text, markup=False))

    async def _model(self, name: str) -> None:
        if not name:
            self.console.print(f"model: {self.session.llm.model} at {self.session.llm.base_url}")
            return
        llm = LLMClient.from_env(model=name)
        old = self.session
        await self.close()
        self.session = self._new_session(llm)
        self.session.results, self.session.usage = old.results, old.usage
        self.console.print(f"model: {name}")

    async def _usage(self, _: str) -> None:
        usage = self.session.usage
        if not usage.calls:
            self.console.print("no LLM calls yet in this session")
            return
        self.console.print(usage_detail(usage))

    async def _clear(self, _: str) -> None:
        self.session.clear()
        self.console.clear()
        self.console.print(Text("earlier goals forgotten: the next goal starts fresh", style="dim"))


def _either(words: list[str]) -> str:
    """``a, b or c``."""
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _being_cancelled() -> bool:
    """Whether the current task itself is being cancelled (not just the work it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
