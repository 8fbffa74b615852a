"""`Issue`: one problem found in a plan, written for an LLM (or a person) to act on.

The same records come out of the lenient parser and the validator, and feed ``tooldag validate``,
the REPL and the planner's re-ask prompt.

An issue is an *error* (the plan must not run as it is: the planner asks again, ``tooldag
validate`` exits 1, the REPL and ``tooldag exec`` refuse it) or a *warning* (the plan runs, read
the way the warning says: a number passed to a text parameter as its text, ``$step.field``
inside text read as ``${step.field}``). ``errors_of(issues)`` is what a caller deciding whether
a plan may run looks at; ``validate(plan, registry)`` returns both kinds, in the order found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Issue", "Severity", "errors_of", "warnings_of"]


class Severity(StrEnum):
    """How much an issue matters: an ``error`` stops the plan, a ``warning`` does not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem in a plan.

    ``code`` is stable (``unknown_tool``, ``cycle``, ...), ``step`` the step id it concerns (or None
    for plan-level issues), ``path`` a JSON path into the plan (``steps[2].args.location``),
    ``message`` one line saying what is wrong, ``hint`` what to do about it where one helps, and
    ``severity`` whether it stops the plan (``error``, the default) or not (``warning``).
    """

    code: str
    message: str
    step: str | None = None
    path: str = ""
    hint: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is not Severity.WARNING

    def __str__(self) -> str:
        where = f"[{self.step}] " if self.step else ""
        mark = "" if self.is_error else " (warning)"
        text = f"{self.code}{mark}: {where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: keys ``code``, ``severity``, ``step``, ``path``, ``message``, ``hint``."""
        data = asdict(self)
        data["severity"] = str(self.severity)
        return {k: data[k] for k in ("code", "severity", "step", "path", "message", "hint")}


def errors_of(issues: Iterable[Issue]) -> list[Issue]:
    """The issues that stop a plan: ``if errors_of(validate(plan, registry))`` refuses it, and only
    these go back to the LLM in a re-ask."""
    return [i for i in issues if i.is_error]


def warnings_of(issues: Iterable[Issue]) -> list[Issue]:
    """The issues that do not stop a plan (it runs as the warning says it is read)."""
    return [i for i in issues if not i.is_error]
