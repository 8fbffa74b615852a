"""The planner: goal -> validated :class:`Plan`, and failed run -> a new plan that reuses what
already succeeded.

One LLM call writes the whole graph (LLMCompiler-style). A reply that does not parse or does not
validate goes back to the LLM with the parser's or validator's issues, at most ``max_reasks``
times, then :class:`PlanRejected` carries the issues and the last reply. A replan shows the LLM
the completed steps (outputs truncated and delimited), the failed step and its error and the
blocked steps; the new plan may keep completed steps (same id, tool and args) or just reference
them by id, and :func:`tooldag.plan.reuse.reusable_outputs` says which outputs the executor can
take as they are.

>>> planner = Planner(registry, LLMClient.from_env())              # doctest: +SKIP
>>> plan = await planner.plan("weather in Oslo and what to wear")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import PlanParseError, PlanRejected
from ..events import Event, EventBus, LLMCall, PlanCreated
from ..issues import Issue, errors_of
from ..llm.client import LLMClient, LLMReply, OutputMode, UsageMeter
from ..plan.model import Plan, Step
from ..plan.parse import parse_plan
from ..registry.registry import ToolRegistry
from ..result import RunResult, StepStatus, Usage
from ..validate.validator import validate
from .plan_schema import plan_json_schema
from .prompting import repair_prompt, replan_prompt, system_prompt, user_prompt

__all__ = ["Planner", "completed_steps"]

log = logging.getLogger("tooldag.planner")


def completed_steps(previous: Plan, result: RunResult) -> dict[str, Step]:
    """The steps of ``previous`` that succeeded in ``result``, by id."""
    done: dict[str, Step] = {}
    for step in previous.steps:
        record = result.steps.get(step.id)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            done[step.id] = step
    return done


def _with_referenced_completed_steps(plan: Plan, done: Mapping[str, Step]) -> Plan:
    """Add completed steps that ``plan`` references by id without restating them (and theirs)."""
    present = {s.id for s in plan.steps}
    wanted = [
        dep
        for step in plan.steps
        for dep in step.dependencies()
        if dep not in present and dep in done
    ]
    wanted += [
        ref.step for ref in plan.answer_refs() if ref.step not in present and ref.step in done
    ]
    added: dict[str, Step] = {}
    while wanted:
        step_id = wanted.pop()
        if step_id in added or step_id in present or step_id not in done:
            continue
        added[step_id] = done[step_id]
        wanted.extend(done[step_id].dependencies())
    if not added:
        return plan
    ordered = [s for s in done.values() if s.id in added]  # keep the previous plan's order
    return plan.model_copy(update={"steps": [*ordered, *plan.steps]})


class Planner:
    """Writes plans with an LLM over the tools of ``registry``.

    ``mode`` is the structured-output mode (``None``: the client's configured mode, ``auto`` by
    default). ``meter`` sums usage over every call (plans, re-asks, replans) and holds the
    budgets; ``bus`` receives ``plan_created`` and ``llm_call`` events for ``run_id``.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        llm: LLMClient,
        *,
        max_reasks: int = 2,
        mode: OutputMode | str | None = None,
        bus: EventBus | None = None,
        meter: UsageMeter | None = None,
        run_id: str = "",
    ) -> None:
        if max_reasks < 0:
            raise ValueError("max_reasks must be 0 or more")
        self.registry = registry
        self.llm = llm
        self.max_reasks = max_reasks
        self.mode = OutputMode(mode) if mode is not None else llm.output_mode
        self.bus = bus
        self.meter = meter if meter is not None else UsageMeter()
        self.run_id = run_id
        self.version = 0
        """How many plans this planner has produced (the version of the last one)."""
        self._cache_key: tuple[int, ...] | None = None
        self._system = ""
        self._schema: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage:
        return self.meter.usage

    # ------------------------------------------------------------------ public

    async def plan(self, goal: str, context: Any = None) -> Plan:
        """A validated plan for ``goal``. ``context`` (text, a mapping of label -> value, or a
        list) is shown to the LLM as data: earlier answers and outputs of a session."""
        messages = [
            {"role": "system", "content": self._system_prompt()},
            {"role": "user", "content": user_prompt(goal, context)},
        ]
        return await self._converse(goal, messages, "plan", {})

    async def replan(
        self,
        goal: str,
        previous_plan: Plan,
        result: RunResult,
        context: Any = None,
    ) -> Plan:
        """A new validated plan after ``result`` (a run of ``previous_plan``) failed.

        Completed steps the new plan references without restating are put back in from
        ``previous_plan``; :func:`tooldag.plan.reuse.reusable_outputs` says which outputs the
        executor can take as they are.
        """
        messages = [
            {"role": "system", "content": self._system_prompt()},
            {
                "role": "user",
                "content": replan_prompt(goal, previous_plan, result, context=context),
            },
        ]
        return await self._converse(
            goal, messages, "replan", completed_steps(previous_plan, result)
        )

    # ------------------------------------------------------------------ internals

    def _refresh(self) -> None:
        key = tuple(id(t) for t in self.registry)
        if key != self._cache_key:
            self._cache_key = key
            self._system = system_prompt(self.registry)
            self._schema = None

    def _system_prompt(self) -> str:
        self._refresh()
        return self._system

    def _plan_schema(self) -> dict[str, Any] | None:
        if self.mode not in (OutputMode.AUTO, OutputMode.JSON_SCHEMA):
            return None
        self._refresh()
        if self._schema is None:
            self._schema = plan_json_schema(self.registry)
        return self._schema

    async def _converse(
        self,
        goal: str,
        messages: list[dict[str, str]],
        purpose: str,
        done: Mapping[str, Step],
    ) -> Plan:
        base = list(messages)
        issues: Sequence[Issue] = ()
        last_text = ""
        for attempt in range(self.max_reasks + 1):
            reply = await self._ask(messages, purpose if attempt == 0 else "repair", attempt)
            last_text = reply.text
            try:
                plan = parse_plan(reply.text)
            except PlanParseError as exc:
                issues = exc.issues
            else:
                if not plan.goal:
                    plan = plan.model_copy(update={"goal": goal})
                if done:
                    plan = _with_referenced_completed_steps(plan, done)
                issues = errors_of(validate(plan, self.registry))  # warnings never re-ask
                if not issues:
                    self._created(plan)
                    return plan
            log.info("plan attempt %d rejected: %s", attempt + 1, "; ".join(map(str, issues)))
            # Only the latest attempt goes back: the conversation stays bounded.
            messages = [
                *base,
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": repair_prompt(issues)},
            ]
        attempts = self.max_reasks + 1
        raise PlanRejected(
            f"the LLM gave no valid plan in {attempts} attempt(s): try a more specific goal, "
            "a stronger model, or a higher max_reasks",
            issues,
            last_text=last_text,
        )

    async def _ask(self, messages: list[dict[str, str]], purpose: str, attempt: int) -> LLMReply:
        reply = await self.llm.complete(
            messages,
            mode=self.mode,
            schema=self._plan_schema(),
            schema_name="tooldag_plan",
            meter=self.meter,
        )
        if self.bus is not None:
            self.bus.emit(
                Event(
                    LLMCall(
                        reply.usage,
                        purpose,
                        reply.mode.value,
                        reply.model,
                        reply.usage_estimated,
                    ),
                    run_id=self.run_id,
                    attempt=attempt,
                )
            )
        return reply

    def _created(self, plan: Plan) -> None:
        self.version += 1
        if self.bus is not None:
            self.bus.emit(Event(PlanCreated(plan, self.version), run_id=self.run_id))
