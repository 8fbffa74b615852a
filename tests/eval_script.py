"""A scripted "model" for the eval tests: it finds the goal in the prompt and answers with that
goal's gold plan, or with the replies a test scripts for it, one per call (plan, re-ask,
replan); it answers the ``extract`` tool's prompts from :data:`EXTRACTIONS`."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from tooldag.evaluation.goals import Goal

GOLD = object()
"""In a goal's scripted replies: its gold plan."""

# What the extract tool's LLM finds, by words of the instruction (the shipped text goals).
EXTRACTIONS = {
    "invoice number": "INV-2024-0042",
    "email": "sales@example.org",
    "amount due": "1,250.00 EUR",
    "subtotal": "84.50",
}


def _user_messages(body: Mapping[str, Any]) -> list[str]:
    return [
        str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == "user"
    ]


def extraction(prompt: str) -> str | None:
    """The scripted reply to an extract prompt, or None if ``prompt`` is not one."""
    if "extract what this instruction asks for:" not in prompt:
        return None
    instruction = prompt.split("asks for:", 1)[1].split("Use only", 1)[0].lower()
    return next((v for k, v in EXTRACTIONS.items() if k in instruction), "NOT FOUND")


class GoalScript:
    """The fake server's ``default``: replies by goal (thread-safe: the server has threads).

    ``replies`` maps a goal id to its replies in call order; the last one repeats. A goal not
    in it gets its gold plan every time.
    """

    def __init__(self, goals: Sequence[Goal], replies: Mapping[str, Sequence[Any]] = {}) -> None:
        self.goals = list(goals)
        self.replies = {k: list(v) for k, v in replies.items()}
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def goal_of(self, body: Mapping[str, Any]) -> Goal | None:
        first = _user_messages(body)[:1]
        for goal in self.goals:
            if first and f"Goal: {goal.goal}\n" in first[0]:
                return goal
        return None

    def __call__(self, body: dict[str, Any]) -> Any:
        messages = _user_messages(body)
        found = extraction(messages[-1]) if messages else None
        if found is not None:
            return found
        goal = self.goal_of(body)
        if goal is None:
            return "I do not know this goal."
        with self._lock:
            n = self.calls[goal.id]
            self.calls[goal.id] += 1
        script = self.replies.get(goal.id, [GOLD])
        reply = script[min(n, len(script) - 1)]
        if reply is GOLD:
            assert goal.plan is not None
            return goal.plan.to_json()
        return reply
