"""Asking a person before side effects happen, and before data leaves: the approval of
``tooldag chat`` and ``run``.

Each plan is shown before it runs (with its data flows: where private data can leave the
machine). Steps are asked about one at a time, just before each runs, with its arguments
*resolved*: what the question shows is what will be sent. The live progress view pauses while a
question is on the screen.

Modes: ``side-effects`` (the default) asks about each step whose tool has side effects and each
step a data flow reaches (``y`` yes, ``n`` no: skip it and what waits for it, the run goes on,
``a`` always allow this tool from now on, ``d`` details, ``s`` stop: end the run, undoing what it
did); ``plan`` asks once per plan (``y`` / ``n`` / ``d``) and still about each data-flow step;
``never`` asks nothing (``--yes``). Without a terminal to ask on, a plan that needs a question is
refused before anything of it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum

from rich.console import Console
from rich.text import Text

from .._terminal import printable
from ..execution.gate import Verdict
from ..execution.policy import ApproveStepHook, Policy, StepApproval, data_flow_findings
from ..plan.model import Plan, Step
from ..registry.registry import ToolRegistry
from ..validate.egress import EgressAllowList
from ..validate.flows import Flow
from .views import args_text, plan_view, print_line, step_details

__all__ = ["ApprovalMode", "Approver", "Ask"]

Ask = Callable[[str], Awaitable[str]]
"""Shows a prompt, returns what the person typed (raising ``EOFError`` or
``KeyboardInterrupt`` counts as "no" for a plan, "stop" for a step)."""


class ApprovalMode(StrEnum):
    PLAN = "plan"
    SIDE_EFFECTS = "side-effects"
    NEVER = "never"


_STEP_CHOICES = "[y]es  [n]o, skip it  [a]lways allow {tool}  [d]etails  [s]top the run"
_PLAN_CHOICES = "[y]es  [n]o  [d]etails"
# How much of each resolved argument the question shows (``d`` shows them whole): enough to see
# a secret in a URL, not a page of text.
_ASK_CHARS = 300


class Approver:
    """Shows each plan before it runs and asks what ``mode`` and ``policy`` say to ask.

    ``ask`` reads one answer; ``on_plan`` is called first for each plan (the REPL stops its
    live view there), and ``pause`` around each step question (the REPL pauses its live view).
    ``always`` holds the tools the person allowed for the rest of the session. ``interactive``
    false means there is no one to ask: plans that need a question are refused.
    """

    def __init__(
        self,
        console: Console,
        registry: ToolRegistry,
        ask: Ask,
        *,
        mode: ApprovalMode | str = ApprovalMode.SIDE_EFFECTS,
        policy: Policy | str = Policy.ASK,
        egress_allow: EgressAllowList | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        pause: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
        interactive: bool = True,
    ) -> None:
        self.console = console
        self.registry = registry
        self.ask = ask
        self.mode = ApprovalMode(mode)
        self.policy = Policy(policy)
        self.egress_allow = egress_allow if egress_allow is not None else EgressAllowList.from_env()
        self.on_plan = on_plan
        self.pause = pause
        self.interactive = interactive
        self.always: set[str] = set()
        self.plans_shown = 0

    @property
    def step_hook(self) -> ApproveStepHook | None:
        """What the run's ``approve_step`` is: :meth:`approve_step`, or ``None`` when there is
        no one to ask (then the policy refuses a plan with a data flow before it runs)."""
        if self.mode is ApprovalMode.NEVER or self.interactive:
            return self.approve_step
        return None

    def needs_approval(self, request: StepApproval) -> bool:
        if self.mode is ApprovalMode.NEVER or request.tool in self.always:
            return False
        if request.flows:
            return True
        return self.mode is ApprovalMode.SIDE_EFFECTS and request.side_effects

    def _side_effect_steps(self, plan: Plan) -> list[Step]:
        registry = self.registry
        return [
            s
            for s in plan.steps
            if s.tool not in self.always
            and (s.tool not in registry or registry.get(s.tool).side_effects)
        ]

    def findings(self, plan: Plan) -> list[Flow]:
        """The plan's data flows that the policy asks about."""
        if self.policy is Policy.OFF:
            return []
        return data_flow_findings(plan, self.registry, self.egress_allow)

    async def approve_plan(self, plan: Plan) -> bool:
        """The ``approve`` hook: show the plan and its data flows; in ``plan`` mode, ask."""
        if self.on_plan is not None:
            self.on_plan(plan)
        self.plans_shown += 1
        title = None
        if self.plans_shown > 1:
            title = f"new plan (version {self.plans_shown})"
        flows = self.findings(plan)
        self.console.print(plan_view(plan, self.registry, title=title, flows=flows))
        if flows and self.step_hook is not None and self.policy is Policy.ASK:
            note = (
                "--yes: such a step runs without a question"
                if self.mode is ApprovalMode.NEVER
                else "you are asked just before such a step runs"
            )
            self.console.print(Text(f"⇢ {note}", style="dim"))
        if self.mode is ApprovalMode.NEVER:
            return True
        if not self.interactive:
            return self._unattended(plan)
        if self.mode is not ApprovalMode.PLAN:
            return True
        while True:
            answer = await self._answer(_PLAN_CHOICES, "run this plan?", "ynd", "n")
            if answer == "d":
                for step in plan.steps:
                    self.console.print(Text(f"— {printable(step.id)}", style="bold"))
                    self.console.print(step_details(step, self.registry))
                continue
            return answer == "y"

    def _unattended(self, plan: Plan) -> bool:
        """No one to ask: refuse a plan that would need a question (data flows are the
        policy's to refuse, with the flow in the message)."""
        if self.mode is ApprovalMode.PLAN:
            why = "this plan needs your approval (--approve plan)"
        else:
            effects = self._side_effect_steps(plan)
            if not effects:
                return True
            names = ", ".join(f"{s.id!r} ({s.tool})" for s in effects[:3])
            why = f"step {names} {'has' if len(effects) == 1 else 'have'} side effects"
        print_line(
            self.console,
            Text(
                f"no terminal to ask on and {printable(why)}: pass --yes (or --approve never) "
                "to allow it without asking",
                style="dark_orange",
            ),
        )
        return False

    async def approve_step(self, request: StepApproval) -> Verdict:
        """The ``approve_step`` hook: ask about a step just before it runs."""
        if not self.needs_approval(request):
            return Verdict.RUN
        with self.pause() if self.pause is not None else contextlib.nullcontext():
            return await self._ask_step(request)

    async def _ask_step(self, request: StepApproval) -> Verdict:
        tool = printable(request.tool)
        line = Text("? ", style="bold yellow").append(printable(request.id), style="bold")
        line.append(f" = {tool}(").append_text(args_text(request.args, _ASK_CHARS)).append(")")
        print_line(self.console, line)
        for note in _notes(request):
            print_line(self.console, note)
        while True:
            choices = "  " + _STEP_CHOICES.format(tool=tool)
            answer = await self._answer(choices, f"allow {tool}?", "ynads", "s")
            if answer == "d":
                step = request.step
                self.console.print(step_details(step, self.registry, resolved=request.args))
                continue
            if answer == "a":
                self.always.add(request.tool)
                self.console.print(Text(f"  {tool} is allowed from now on", style="dim"))
            return {"y": Verdict.RUN, "a": Verdict.RUN, "n": Verdict.SKIP}.get(
                answer, Verdict.ABORT
            )

    async def _answer(self, choices: str, prompt: str, allowed: str, on_eof: str) -> str:
        """The first letter of a valid answer; end of input or Ctrl-C is ``on_eof``."""
        self.console.print(Text(choices, style="dim"))
        while True:
            try:
                raw = await self.ask(f"{prompt} ")
            except (EOFError, KeyboardInterrupt):
                return on_eof
            answer = raw.strip().lower()[:1]
            if answer and answer in allowed:
                return answer
            self.console.print(Text(f"  please answer {', '.join(allowed)}", style="dim"))


def _notes(request: StepApproval) -> Iterator[Text]:
    """What the question says besides the call: the data flows into it, where it sends."""
    for flow in request.flows:
        what = "private data" if "private" in flow.kinds else "untrusted text"
        yield Text(f"  {what} flows here: ", style="dark_orange").append(
            printable(flow.text), style="bold"
        )
    for destination in request.destinations:
        yield Text("  sends to: ", style="dim").append(printable(destination))
