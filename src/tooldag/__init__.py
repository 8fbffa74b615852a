"""tooldag: turn a goal into a validated graph of tool calls and run it.

The public API is re-exported here; ``tooldag.__all__`` is sorted and tested.
"""

from __future__ import annotations

from .errors import (
    BudgetExceededError,
    ConfigError,
    LLMConfigError,
    LLMError,
    LLMResponseError,
    PermanentToolError,
    PlanError,
    PlanInvalidError,
    PlanParseError,
    PlanRejected,
    ReferenceResolutionError,
    RegistrationError,
    RunCancelledError,
    RunError,
    RunStateError,
    StepFailedError,
    StoreError,
    ToolArgumentError,
    TooldagError,
    ToolError,
    ToolNotFoundError,
    TransientToolError,
)
from .events import Event, EventBus, EventType
from .issues import Issue
from .loading import load_registry
from .plan import Condition, Plan, Step
from .registry import Compensation, RetryPolicy, Tool, ToolCategory, ToolContext, ToolRegistry, tool
from .result import RunResult, RunStatus, StepRecord, StepStatus, Usage

__version__ = "0.1.0"

__all__ = [
    "BudgetExceededError",
    "Compensation",
    "Condition",
    "ConfigError",
    "Event",
    "EventBus",
    "EventType",
    "Issue",
    "LLMConfigError",
    "LLMError",
    "LLMResponseError",
    "PermanentToolError",
    "Plan",
    "PlanError",
    "PlanInvalidError",
    "PlanParseError",
    "PlanRejected",
    "ReferenceResolutionError",
    "RegistrationError",
    "RetryPolicy",
    "RunCancelledError",
    "RunError",
    "RunResult",
    "RunStateError",
    "RunStatus",
    "Step",
    "StepFailedError",
    "StepRecord",
    "StepStatus",
    "StoreError",
    "Tool",
    "ToolArgumentError",
    "ToolCategory",
    "ToolContext",
    "ToolError",
    "ToolNotFoundError",
    "ToolRegistry",
    "TooldagError",
    "TransientToolError",
    "Usage",
    "load_registry",
    "tool",
]
