"""The planner: goal -> validated :class:`Plan`, and failed run -> a new plan that reuses what
already succeeded.

One LLM call writes the whole graph (LLMCompiler-style). A reply that does not parse or does not
validate goes back to the LLM with the parser's or validator's issues (and those of the attempts
before it), at most ``max_reasks`` times, then :class:`PlanRejected` carries the issues and the
last reply; a reply identical to an earlier one raises the temperature of the next request. A
replan shows the LLM the completed steps (outputs truncated and delimited), the failed step and
its error and the blocked steps; the new plan may keep completed steps (same id, tool and args)
or just reference them by id, and :func:`tooldag.plan.reuse.reusable_outputs` says which outputs
the executor can take as they are.

>>> planner = Planner(registry, LLMClient.from_env())              # doctest: +SKIP
>>> plan = await planner.plan("weather in Oslo and what to wear")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
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


# Earlier attempts shown in a re-ask, as their issues only. Only the latest reply goes back in
# full (the model fixes that one); each earlier one would cost a whole plan of context, and a small
# model's 2,048 tokens hold the system prompt, the goal and about two plans. Their issues (a few
# lines each) are enough to stop it trading one mistake back for another.
_EARLIER_ATTEMPTS = 3
# Raised in steps up to 1.0: past it a small model's JSON falls apart faster than it varies.
_TEMPERATURE_STEP = 0.3


def _same_reply(text: str) -> str:
    """``text`` as compared for repeats: canonical JSON if it is JSON, else with whitespace
    normalised."""
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return " ".join(text.split())


def _repeated_attempt(text: str, earlier: Sequence[str]) -> int | None:
    """The number (1-based) of the first earlier reply identical to ``text``, or None."""
    key = _same_reply(text)
    for number, other in enumerate(earlier, 1):
        if _same_reply(other) == key:
            return number
    return None


def _reask(
    base: list[dict[str, str]],
    tried: Sequence[tuple[str, Sequence[Issue]]],
    repeats: int | None,
) -> list[dict[str, str]]:
    """The next request: the first request, the latest reply, and a re-ask with its issues and
    those of the (up to ``_EARLIER_ATTEMPTS``) attempts before it."""
    latest, issues = tried[-1]
    first = max(0, len(tried) - 1 - _EARLIER_ATTEMPTS)
    same = _same_reply(latest)
    earlier = [  # a reply the latest repeats has its very issues: said once is enough
        (n + 1, tried[n][1])
        for n in range(first, len(tried) - 1)
        if _same_reply(tried[n][0]) != same
    ]
    return [
        *base,
        {"role": "assistant", "content": latest},
        {"role": "user", "content": repair_prompt(issues, earlier=earlier, repeats=repeats)},
    ]


class Planner:
    """Writes plans with an LLM over the tools of ``registry``.

    ``mode`` is the structured-output mode (``None``: the client's configured mode, ``auto`` by
    default). ``meter`` sums usage over every call (plans, re-asks, replans) and holds the
    budgets; ``bus`` receives ``plan_created`` and ``llm_call`` events for ``run_id``.
    ``check`` judges a valid plan further (a strict data-flow policy): the issues it returns go
    back to the LLM like the validator's.
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
        check: Callable[[Plan], Sequence[Issue]] | None = None,
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
        self.check = check
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
        """The plan schema the mode can use: strict for ``json_schema`` (and ``auto``, which
        tries it first), since the client asks for it with ``strict: true`` and OpenAI's strict
        mode wants every property required; the variant with optional fields left optional for
        ``json_object`` (and any other mode), where a server that takes a schema at all
        (llama-cpp-python, Ollama) compiles it into a grammar; none for ``text``."""
        if self.mode is OutputMode.TEXT:
            return None
        self._refresh()
        if self._schema is None:
            strict = self.mode in (OutputMode.AUTO, OutputMode.JSON_SCHEMA)
            self._schema = plan_json_schema(self.registry, strict=strict)
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
        tried: list[tuple[str, Sequence[Issue]]] = []  # (reply, its issues) per attempt
        temperature: float | None = None  # None: the client's own setting
        for attempt in range(self.max_reasks + 1):
            purpose_now = purpose if attempt == 0 else "repair"
            reply = await self._ask(messages, purpose_now, attempt, temperature)
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
                if not issues and self.check is not None:
                    issues = self.check(plan)
                if not issues:
                    self._created(plan)
                    return plan
            log.info("plan attempt %d rejected: %s", attempt + 1, "; ".join(map(str, issues)))
            repeats = _repeated_attempt(reply.text, [text for text, _ in tried])
            tried.append((reply.text, issues))
            if repeats is not None:
                temperature = self._hotter(temperature)
            messages = _reask(base, tried, repeats)
        attempts = self.max_reasks + 1
        raise PlanRejected(
            f"the LLM gave no valid plan in {attempts} attempt(s): try a more specific goal, "
            "a stronger model, or a higher max_reasks",
            issues,
            last_text=last_text,
        )

    def _hotter(self, current: float | None) -> float | None:
        """The temperature after an identical reply: a greedy or near-greedy server gives the same
        reply to the same request, so the next request samples more widely. Stays put at the
        cap (then only the re-ask's note that the reply repeated can help)."""
        start = current if current is not None else self.llm.temperature
        # Unknown (the server's default, 0.7-1.0 for most): 1.0, also the one value reasoning
        # models that reject other temperatures accept.
        raised = 1.0 if start is None else round(min(start + _TEMPERATURE_STEP, 1.0), 2)
        if start is not None and raised <= start:
            log.info("the reply repeated an earlier one; temperature already %s", start)
            return current
        log.info("the reply repeated an earlier one; temperature raised to %s", raised)
        return raised

    async def _ask(
        self,
        messages: list[dict[str, str]],
        purpose: str,
        attempt: int,
        temperature: float | None = None,
    ) -> LLMReply:
        started = time.monotonic()  # the call's duration: where a trace's span of it begins
        reply = await self.llm.complete(
            messages,
            mode=self.mode,
            schema=self._plan_schema(),
            schema_name="tooldag_plan",
            meter=self.meter,
            temperature=temperature,
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
                    duration=time.monotonic() - started,
                )
            )
        return reply

    def _created(self, plan: Plan) -> None:
        self.version += 1
        if self.bus is not None:
            self.bus.emit(Event(PlanCreated(plan, self.version), run_id=self.run_id))
