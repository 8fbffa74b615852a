"""Asking a person before side effects happen: the approval policy of ``tooldag chat`` and ``run``.

The questions are asked from the agent's ``approve`` / ``approve_step`` hooks, which run after a
plan is made and before any step of it runs: a refusal ends the run ``rejected`` with nothing of
that plan executed, and no question ever interleaves with the live progress view.

Modes: ``side-effects`` (the default) asks once per step whose tool has side effects (``y`` yes,
``n`` no, ``a`` always allow this tool from now on, ``d`` details); ``plan`` asks once per plan
(``y`` / ``n`` / ``d``); ``never`` asks nothing (``--yes``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from rich.console import Console
from rich.text import Text

from ..plan.model import Plan, Step
from ..registry.registry import ToolRegistry
from .views import args_text, plan_view, step_details

__all__ = ["ApprovalMode", "Approver", "Ask"]

Ask = Callable[[str], Awaitable[str]]
"""Shows a prompt, returns what the person typed (raising ``EOFError`` or
``KeyboardInterrupt`` counts as "no")."""


class ApprovalMode(StrEnum):
    PLAN = "plan"
    SIDE_EFFECTS = "side-effects"
    NEVER = "never"


_STEP_CHOICES = "[y]es  [n]o, end the run  [a]lways allow {tool}  [d]etails"
_PLAN_CHOICES = "[y]es  [n]o  [d]etails"


class Approver:
    """Shows each plan before it runs and asks what ``mode`` says to ask.

    ``ask`` reads one answer; ``on_plan`` is called first for each plan (the REPL stops its
    live view there). ``always`` holds the tools the person allowed for the rest of the session.
    """

    def __init__(
        self,
        console: Console,
        registry: ToolRegistry,
        ask: Ask,
        *,
        mode: ApprovalMode | str = ApprovalMode.SIDE_EFFECTS,
        on_plan: Callable[[Plan], None] | None = None,
    ) -> None:
        self.console = console
        self.registry = registry
        self.ask = ask
        self.mode = ApprovalMode(mode)
        self.on_plan = on_plan
        self.always: set[str] = set()
        self.plans_shown = 0

    def needs_approval(self, step: Step) -> bool:
        if self.mode is not ApprovalMode.SIDE_EFFECTS or step.tool in self.always:
            return False
        return step.tool not in self.registry or self.registry.get(step.tool).side_effects

    async def approve_plan(self, plan: Plan) -> bool:
        """The ``approve`` hook: show the plan; in ``plan`` mode, ask about it."""
        if self.on_plan is not None:
            self.on_plan(plan)
        self.plans_shown += 1
        title = None
        if self.plans_shown > 1:
            title = f"new plan (version {self.plans_shown})"
        self.console.print(plan_view(plan, self.registry, title=title))
        if self.mode is not ApprovalMode.PLAN:
            return True
        while True:
            answer = await self._answer(_PLAN_CHOICES, "run this plan?", "ynd")
            if answer == "d":
                for step in plan.steps:
                    self.console.print(Text(f"— {step.id}", style="bold"))
                    self.console.print(step_details(step, self.registry))
                continue
            return answer == "y"

    async def approve_step(self, step: Step) -> bool:
        """The ``approve_step`` hook: in ``side-effects`` mode, ask about a side-effecting step."""
        if not self.needs_approval(step):
            return True
        line = Text("? ", style="bold yellow").append(f"{step.id}", style="bold")
        line.append(f" = {step.tool}(").append_text(args_text(step.args)).append(")")
        self.console.print(line, soft_wrap=True)
        while True:
            choices = "  " + _STEP_CHOICES.format(tool=step.tool)
            answer = await self._answer(choices, f"allow {step.tool}?", "ynad")
            if answer == "d":
                self.console.print(step_details(step, self.registry))
                continue
            if answer == "a":
                self.always.add(step.tool)
                self.console.print(Text(f"  {step.tool} is allowed from now on", style="dim"))
            return answer in ("y", "a")

    async def review(self, plan: Plan) -> str | None:
        """Both hooks in the agent's order, for a plan run without the agent (``/run``,
        ``/resume``); the refusal message, or ``None`` when approved."""
        if not await self.approve_plan(plan):
            return "the plan was not approved"
        for step in plan.steps:
            if not await self.approve_step(step):
                return f"step {step.id!r} ({step.tool}) was not approved"
        return None

    async def _answer(self, choices: str, prompt: str, allowed: str) -> str:
        """The first letter of a valid answer; end of input or Ctrl-C is "n"."""
        self.console.print(Text(choices, style="dim"))
        while True:
            try:
                raw = await self.ask(f"{prompt} ")
            except (EOFError, KeyboardInterrupt):
                return "n"
            answer = raw.strip().lower()[:1]
            if answer and answer in allowed:
                return answer
            self.console.print(Text(f"  please answer {', '.join(allowed)}", style="dim"))
