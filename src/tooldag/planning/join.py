"""The join: after a run, one LLM call that reads the goal and the results and either writes the
answer (:class:`Finish`) or asks for another plan, saying why (:class:`Replan`), as LLMCompiler's
joiner does, with structured output.

A plan's ``answer`` template costs nothing but cannot reason over results ("which is cheaper,
and why?"), and a replan on failure alone never notices that a result changes what should happen
next. The join does both. It is asked for by the plan (``"answer": "llm"``) or by the caller
(``join="always"``; ``"auto"``, the default, joins a plan that has no answer template;
``"never"``). The outputs are shown truncated and delimited as in a replan
(:func:`~tooldag.planning.prompting.join_prompt`); the call is one of the run's (its meter, its
budgets, an ``llm_call`` event of purpose ``join``). ``on_text`` receives the answer's text as it
streams (:class:`~tooldag.plan.stream.TextField`).

>>> decision = await join(planner, goal, plan, result, can_replan=True)  # doctest: +SKIP
>>> decision.answer if isinstance(decision, Finish) else decision.reason  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from ..errors import ConfigError
from ..plan.model import LLM_ANSWER, Plan
from ..plan.parse import extract_json
from ..plan.stream import TextField
from ..result import RunResult
from .planner import Planner
from .prompting import join_prompt

__all__ = [
    "Finish",
    "Join",
    "JoinDecision",
    "Replan",
    "decision_of",
    "join",
    "join_schema",
    "join_setting",
    "wants_join",
]

log = logging.getLogger("tooldag.planner")


class Join(StrEnum):
    """When a run is joined: ``always``, ``auto`` (the plan has no answer template, or asks
    for the LLM's: ``"answer": "llm"``) or ``never``."""

    ALWAYS = "always"
    AUTO = "auto"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Finish:
    """The join's answer to the goal (``thought``: its reasoning, not shown as the answer)."""

    answer: str
    thought: str = ""


@dataclass(frozen=True, slots=True)
class Replan:
    """The join found that the results do not answer the goal: ``reason`` says what to do."""

    reason: str
    thought: str = ""


JoinDecision: TypeAlias = Finish | Replan


def join_setting(value: Join | str) -> Join:
    """``value`` as a :class:`Join`; :class:`ConfigError` if it is none."""
    try:
        return Join(value)
    except ValueError:
        raise ConfigError(
            f"join must be one of {', '.join(j.value for j in Join)}, not {value!r}"
        ) from None


def wants_join(plan: Plan, when: Join | str) -> bool:
    """Whether a run of ``plan`` is joined under ``when``."""
    mode = join_setting(when)
    if mode is Join.AUTO:
        return plan.answer is None or plan.answer.strip() == LLM_ANSWER
    return mode is Join.ALWAYS


def join_schema(*, can_replan: bool) -> dict[str, Any]:
    """The JSON Schema of the join's reply (strict-mode ready: every property required,
    nullable where unused). ``thought`` comes first, so that the model reasons before it
    decides, and ``action`` before ``answer``, so that a streamed answer is known to be one."""
    actions = ["finish", "replan"] if can_replan else ["finish"]
    return {
        "type": "object",
        "properties": {
            "thought": {"type": "string"},
            "action": {"type": "string", "enum": actions},
            "answer": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
        },
        "required": ["thought", "action", "answer", "reason"],
        "additionalProperties": False,
    }


def decision_of(text: str, *, can_replan: bool) -> JoinDecision:
    """The decision a reply holds. A reply that is not the JSON asked for (a text-mode model
    answering in prose) is taken as the answer itself; a replan without replans left, or without
    a reason, is a finish with what it says."""
    try:
        data = extract_json(text)
    except Exception:
        data = None
    if not isinstance(data, dict):
        return Finish(text.strip())
    thought = str(data.get("thought") or "")
    answer = data.get("answer")
    reason = data.get("reason")
    if str(data.get("action", "")).lower() == "replan" and can_replan and reason:
        return Replan(str(reason), thought)
    if answer is None or answer == "":
        answer = reason or thought or text.strip()
    return Finish(answer if isinstance(answer, str) else str(answer), thought)


async def join(
    planner: Planner,
    goal: str,
    plan: Plan,
    result: RunResult,
    *,
    can_replan: bool,
    context: Any = None,
    on_text: Callable[[str], None] | None = None,
    stream: bool = False,
) -> JoinDecision:
    """Ask ``planner``'s LLM to finish ``result`` (a run of ``plan``) or to replan (only if
    ``can_replan``). ``on_text`` gets the answer's text as it streams (streaming the call, as
    ``stream`` does). Raises what :meth:`~tooldag.llm.client.LLMClient.complete` raises."""
    messages = [
        {
            "role": "user",
            "content": join_prompt(goal, plan, result, can_replan=can_replan, context=context),
        }
    ]
    field = TextField("answer")
    on_delta: Callable[[str], None] | None = None
    if on_text is not None:
        callback = on_text

        def on_delta(piece: str) -> None:
            text = field.feed(piece)
            if text:
                callback(text)

    elif stream:

        def on_delta(piece: str) -> None:
            pass

    reply = await planner.call(
        messages,
        "join",
        schema=join_schema(can_replan=can_replan),
        schema_name="tooldag_join",
        on_delta=on_delta,
    )
    decision = decision_of(reply.text, can_replan=can_replan)
    log.info("join: %s", type(decision).__name__.lower())
    return decision
