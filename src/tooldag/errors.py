"""The one exception tree of tooldag.

Every error tooldag raises on purpose is a :class:`TooldagError`, so ``except TooldagError`` is
enough for a caller that wants to report and go on. Messages say what to do next.

::

    TooldagError
    ├── ConfigError            bad configuration (no LLM configured, bad --tools SPEC, bad option)
    ├── RegistrationError      a tool cannot be registered (duplicate or invalid name, bad type)
    ├── ToolNotFoundError      a name that is not in the registry (hint: closest name)
    ├── ToolArgumentError      arguments that do not fit a tool's schema (names tool and field)
    ├── ReferenceResolutionError  a ``$step.path`` reference that does not resolve at run time
    ├── ConditionError         a ``when`` condition that cannot be evaluated (incomparable values)
    ├── ToolError              raised *by tools*: ``transient=True`` asks the executor to retry
    │   ├── TransientToolError
    │   └── PermanentToolError
    ├── PlanError              a plan that cannot be used; carries ``issues``
    │   ├── PlanParseError     text/JSON that is not a plan (lenient parser gave up)
    │   ├── PlanInvalidError   a parsed plan that fails validation (hand-written plans)
    │   └── PlanRejected       the planner's re-asks are exhausted; carries the last LLM text
    ├── RunError               a run failed or was stopped; carries run id, step id, attempt
    │   ├── StepFailedError
    │   ├── RunCancelledError
    │   └── RunStateError      e.g. starting a run id that is already running or completed
    ├── StoreError             the run store cannot be opened, migrated or written
    └── LLMError               an LLM call failed; carries the last response text and usage
        ├── LLMConfigError     no key/model/base URL (also a ConfigError)
        ├── LLMResponseError   4xx/5xx after retries, with what to fix
        └── BudgetExceededError  the run's LLM call or token budget is spent
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .issues import Issue

__all__ = [
    "BudgetExceededError",
    "ConditionError",
    "ConfigError",
    "LLMConfigError",
    "LLMError",
    "LLMResponseError",
    "LLMStreamInterrupted",
    "PermanentToolError",
    "PlanError",
    "PlanInvalidError",
    "PlanParseError",
    "PlanRejected",
    "ReferenceResolutionError",
    "RegistrationError",
    "RunCancelledError",
    "RunError",
    "RunStateError",
    "StepFailedError",
    "StoreError",
    "ToolArgumentError",
    "ToolError",
    "ToolNotFoundError",
    "TooldagError",
    "TransientToolError",
]


class TooldagError(Exception):
    """Base of every error tooldag raises on purpose."""


class ConfigError(TooldagError):
    """The configuration (environment, options, --tools SPEC) is wrong; the message says the fix."""


class RegistrationError(TooldagError):
    """A tool cannot be registered: duplicate or invalid name, or a type JSON Schema lacks."""


class ToolNotFoundError(TooldagError):
    """A tool name that is not registered."""

    def __init__(self, name: str, hint: str | None = None) -> None:
        self.name = name
        self.hint = hint
        msg = f"unknown tool {name!r}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class ToolArgumentError(TooldagError):
    """Arguments that do not fit a tool's schema. ``field`` is the first offending argument."""

    def __init__(self, tool: str, message: str, field: str | None = None) -> None:
        self.tool = tool
        self.field = field
        where = f"{tool}.{field}" if field else tool
        super().__init__(f"bad arguments for {where}: {message}")


class ReferenceResolutionError(TooldagError):
    """A reference that does not resolve against the outputs at hand (missing key, bad index)."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"reference {ref} does not resolve: {reason}")


class ConditionError(TooldagError):
    """A ``when`` condition that cannot be evaluated: unknown operator, or values that cannot be
    compared (``"hot" < 0``). The step it guards fails; the run goes on."""


class ToolError(TooldagError):
    """Raised by a tool to classify its failure.

    ``transient=True`` means "try again later" (rate limit, flaky network): the executor retries it
    within the tool's retry policy. Anything else is permanent and fails the step at once.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)


class TransientToolError(ToolError):
    """A tool failure worth retrying."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class PermanentToolError(ToolError):
    """A tool failure that retrying cannot fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def _issues_text(issues: Sequence[Issue], limit: int = 5) -> str:
    lines = [f"  - {issue}" for issue in issues[:limit]]
    if len(issues) > limit:
        lines.append(f"  ... and {len(issues) - limit} more")
    return "\n".join(lines)


class PlanError(TooldagError):
    """A plan that cannot be used. ``issues`` lists every problem found."""

    def __init__(self, message: str, issues: Sequence[Issue] = ()) -> None:
        self.issues: list[Issue] = list(issues)
        if self.issues:
            message = f"{message}\n{_issues_text(self.issues)}"
        super().__init__(message)


class PlanParseError(PlanError):
    """Text or JSON that is not a plan, even read leniently."""


class PlanInvalidError(PlanError):
    """A plan that parsed but failed validation."""


class PlanRejected(PlanError):
    """No valid plan within the planner's re-asks. ``last_text`` is the LLM's last reply."""

    def __init__(self, message: str, issues: Sequence[Issue] = (), last_text: str = "") -> None:
        self.last_text = last_text
        super().__init__(message, issues)


class RunError(TooldagError):
    """A run failed or was stopped."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        step_id: str | None = None,
        attempt: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.step_id = step_id
        self.attempt = attempt
        super().__init__(message)


class StepFailedError(RunError):
    """A step failed; ``run_id``, ``step_id`` and ``attempt`` say which."""


class RunCancelledError(RunError):
    """The run was cancelled."""


class RunStateError(RunError):
    """An operation the run's state does not allow (start a running or completed run id, ...)."""


class StoreError(TooldagError):
    """The run store cannot be opened, migrated or written."""


class LLMError(TooldagError):
    """An LLM call failed. ``last_response``: the last text received; ``usage``: tokens spent."""

    def __init__(
        self,
        message: str,
        *,
        last_response: str | None = None,
        usage: Any = None,
        status_code: int | None = None,
    ) -> None:
        self.last_response = last_response
        self.usage = usage
        self.status_code = status_code
        super().__init__(message)


class LLMConfigError(LLMError, ConfigError):
    """No LLM is configured, or its configuration is unusable."""


class LLMResponseError(LLMError):
    """The endpoint answered with an error (after retries, for the transient ones)."""


class LLMStreamInterrupted(LLMResponseError):
    """A streamed reply broke off after some of its text had arrived (and been handed on).

    Not retried as a whole, since whoever read the text may have acted on it: ``partial_text``
    is what arrived, for the caller to go on from (the streaming planner asks for the rest);
    ``reply`` the call as far as it came (an :class:`~tooldag.llm.client.LLMReply`: its
    estimated usage is counted).
    """

    def __init__(self, message: str, *, partial_text: str, usage: Any = None) -> None:
        self.partial_text = partial_text
        self.reply: Any = None
        super().__init__(message, last_response=partial_text, usage=usage)


class BudgetExceededError(LLMError):
    """The run's budget of LLM calls or tokens is spent."""
