"""`Issue`: one problem found in a plan, written for an LLM (or a person) to act on.

The same records come out of the lenient parser and the validator, and feed ``tooldag validate``,
the REPL and the planner's re-ask prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Issue"]


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem in a plan.

    ``code`` is stable (``unknown_tool``, ``cycle``, ...), ``step`` the step id it concerns (or None
    for plan-level issues), ``path`` a JSON path into the plan (``steps[2].args.location``),
    ``message`` one line saying what is wrong, ``hint`` what to do about it where one helps.
    """

    code: str
    message: str
    step: str | None = None
    path: str = ""
    hint: str | None = None

    def __str__(self) -> str:
        where = f"[{self.step}] " if self.step else ""
        text = f"{self.code}: {where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: keys ``code``, ``step``, ``path``, ``message``, ``hint``."""
        data = asdict(self)
        return {k: data[k] for k in ("code", "step", "path", "message", "hint")}
