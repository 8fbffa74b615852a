"""The data-flow policy: what happens to a plan through which private data can leave the machine.

:func:`~tooldag.validate.flows` finds, before anything runs, every path from a private or
untrusted output into an argument that leaves the machine (``read_file(path=".env") ->
http_get.url``). The policy says what such a finding means:

- ``ask`` (the default): the steps the findings name run only if approved, asked just before
  each runs, with its arguments resolved (:class:`StepApproval`). With no one to ask (no
  ``approve_step`` hook, no terminal), a plan with findings is refused before anything runs,
  and the refusal names the flows.
- ``strict``: a plan with findings is refused; the planner is told why and may write one
  without the flow.
- ``off``: no check.

Destinations on the allow-list (:class:`~tooldag.validate.egress.EgressAllowList`,
``TOOLDAG_EGRESS_ALLOW``) lift the findings into a step that names them literally.

:class:`PolicyGate` is the executor's gate (:mod:`tooldag.execution.gate`) that carries this out,
and it is also where side-effecting steps are approved: ``approve_step`` is asked about every
step with side effects and every step a finding names, just before it runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from ..issues import Issue
from ..plan.model import Plan, Step
from ..registry.registry import ToolRegistry
from ..validate.egress import EgressAllowList, sends_to
from ..validate.flows import Flow, flows
from .gate import Verdict, verdict_of

__all__ = [
    "ApproveStepHook",
    "Policy",
    "PolicyGate",
    "StepApproval",
    "data_flow_findings",
    "describe_flows",
]


class Policy(StrEnum):
    """What a plan with a data-flow finding needs: approval, nothing (refused), or no check."""

    ASK = "ask"
    STRICT = "strict"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class StepApproval:
    """A step about to run that needs approval: ``step`` as planned, ``args`` its arguments as
    they will be sent (references resolved), ``flows`` the data flows into it (empty for a step
    asked about only for its side effects), ``side_effects`` whether its tool has any, and
    ``destinations`` where it sends (``host x.example``, ``mail ann@corp.com``) when its tool
    says which arguments choose that."""

    step: Step
    args: dict[str, Any]
    flows: tuple[Flow, ...] = ()
    side_effects: bool = False
    destinations: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.step.id

    @property
    def tool(self) -> str:
        return self.step.tool


ApproveStepHook: TypeAlias = Callable[
    [StepApproval], "Verdict | bool | Awaitable[Verdict | bool | None] | None"
]
"""``approve_step(request)``: ``True``/``run`` runs the step, ``False``/``skip`` skips it (and
what waits for it), ``abort`` ends the run ``rejected``. May be async."""


def data_flow_findings(
    plan: Plan, registry: ToolRegistry, allow: EgressAllowList | None = None
) -> list[Flow]:
    """The flows of ``plan`` that the allow-list does not lift."""
    found = flows(plan, registry)
    if not found or not allow:
        return found
    steps = {s.id: s for s in plan.steps}
    lifted: dict[str, bool] = {}
    kept: list[Flow] = []
    for flow in found:
        if flow.step not in lifted:
            step = steps[flow.step]
            lifted[flow.step] = allow.allows_step(step, registry.get(step.tool))
        if not lifted[flow.step]:
            kept.append(flow)
    return kept


def describe_flows(findings: Sequence[Flow], limit: int = 3) -> str:
    """The first few findings as one line of text."""
    text = "; ".join(flow.issue(approvable=False).message for flow in findings[:limit])
    if len(findings) > limit:
        text += f"; and {len(findings) - limit} more"
    return text


class PolicyGate:
    """The gate of a run under ``policy``: asks ``approve_step`` about the steps that need it.

    Call :meth:`prepare` with each plan before it runs; :meth:`refusal` says whether the plan may
    run at all, :meth:`planner_issues` what a strict policy tells the planner.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        policy: Policy | str = Policy.ASK,
        approve_step: ApproveStepHook | None = None,
        egress_allow: EgressAllowList | None = None,
    ) -> None:
        self.registry = registry
        self.policy = Policy(policy)
        self.approve_step = approve_step
        self.allow = egress_allow if egress_allow is not None else EgressAllowList.from_env()
        self.findings: list[Flow] = []
        self._by_step: dict[str, tuple[Flow, ...]] = {}

    def findings_of(self, plan: Plan) -> list[Flow]:
        """The findings that count under this policy (none when it is off)."""
        if self.policy is Policy.OFF:
            return []
        return data_flow_findings(plan, self.registry, self.allow)

    def prepare(self, plan: Plan) -> list[Flow]:
        """Take ``plan`` as the one about to run; its findings."""
        self.findings = self.findings_of(plan)
        by_step: dict[str, list[Flow]] = {}
        for flow in self.findings:
            by_step.setdefault(flow.step, []).append(flow)
        self._by_step = {sid: tuple(found) for sid, found in by_step.items()}
        return self.findings

    def refusal(self) -> str | None:
        """Why the prepared plan may not run, or ``None``."""
        if not self.findings:
            return None
        what = describe_flows(self.findings)
        if self.policy is Policy.STRICT:
            return f"refused by the strict data-flow policy: {what}"
        if self.approve_step is None:
            return (
                f"{what}; there is no one to ask whether that may happen (no terminal, no "
                "approve_step hook), so nothing ran: allow it with --yes (approve_step= from "
                "Python), put the destination in TOOLDAG_EGRESS_ALLOW, or use --policy off"
            )
        return None

    def planner_issues(self, plan: Plan) -> list[Issue]:
        """Under a strict policy, the findings as issues for the planner to fix."""
        if self.policy is not Policy.STRICT:
            return []
        return [flow.issue(approvable=False) for flow in self.findings_of(plan)]

    def __call__(self, step: Step, args: dict[str, Any]) -> Verdict | Awaitable[Verdict]:
        """The gate: runs at once unless ``approve_step`` must be asked."""
        found = self._by_step.get(step.id, ())
        tool = self.registry.get(step.tool) if step.tool in self.registry else None
        effects = tool is None or tool.side_effects
        if self.approve_step is None or not (effects or found):
            return Verdict.RUN
        destinations = tuple(sends_to(tool, args)) if tool is not None else ()
        return self._ask(StepApproval(step, args, found, effects, destinations))

    async def _ask(self, request: StepApproval) -> Verdict:
        assert self.approve_step is not None
        answer = self.approve_step(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return verdict_of(answer)
