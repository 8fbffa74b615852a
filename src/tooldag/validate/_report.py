"""What every part of the validator shares: where an issue is, how it is reported, and the JSON
types a value can have.

Kept apart so that the walker (:mod:`~tooldag.validate.validator`), the reference checks
(:mod:`~tooldag.validate._references`), the argument checks (:mod:`~tooldag.validate._args`) and
the condition checks (:mod:`~tooldag.validate._conditions`) all report the same way without any of
them importing another for it.
"""

from __future__ import annotations

from typing import Any

from ..issues import Issue, Severity

__all__ = ["Report", "Types", "Where", "issue_path", "short"]

# The JSON types a value can have, None when unknown.
Types = frozenset[str] | None

# Where an issue is: a JSON path, or (step index, argument) turned into one only when an issue is
# reported (most arguments have none, and a plan may have 100k steps).
Where = str | tuple[int, str]


def issue_path(where: Where) -> str:
    """The JSON path an issue reports for ``where``."""
    return where if isinstance(where, str) else f"steps[{where[0]}].args.{where[1]}"


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting a value in an issue."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Report:
    """The issues of one validation, in the order they were found."""

    __slots__ = ("issues",)

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(
        self,
        code: str,
        message: str,
        step: str | None = None,
        path: Where = "",
        hint: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        self.issues.append(
            Issue(code, message, step=step, path=issue_path(path), hint=hint, severity=severity)
        )

    def warn(
        self,
        code: str,
        message: str,
        step: str | None = None,
        path: Where = "",
        hint: str | None = None,
    ) -> None:
        """Add a warning: the plan runs, read the way ``message`` says."""
        self.add(code, message, step, path, hint, Severity.WARNING)
