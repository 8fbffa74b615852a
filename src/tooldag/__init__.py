"""tooldag: turn a goal into a validated graph of tool calls and run it.

>>> from tooldag import plan_and_run              # doctest: +SKIP
>>> result = plan_and_run("What is 17% of 2,340?")  # doctest: +SKIP
>>> result.answer                                 # doctest: +SKIP

The public API is re-exported here; ``tooldag.__all__`` is sorted and tested.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Plugs `mcp:` specs and MCP host configs into load_registry (the SDK loads only when used).
from . import mcp as _mcp  # noqa: F401
from .durable import (
    DurableExecutor,
    RunInfo,
    RunPool,
    RunStore,
    StatefulWorkflowExecutor,
    StoreWarning,
    resume,
)
from .errors import (
    BudgetExceededError,
    ConditionError,
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
from .execution import DaskRunner, Executor, RunHandle, StepRunner, ToolCall, Verdict, run_plan
from .execution.policy import Policy, StepApproval
from .issues import Issue, Severity, errors_of, warnings_of
from .observe import Monitor, to_mermaid
from .plan import Condition, Plan, Step
from .plan.parse import parse_plan
from .registry import Compensation, RetryPolicy, Tool, ToolCategory, ToolContext, ToolRegistry, tool
from .registry.loading import load_registry
from .result import RunResult, RunStatus, StepRecord, StepStatus, Usage
from .validate import Flow, flows, validate

if TYPE_CHECKING:
    from .agent import Session, aplan_and_run, plan_and_run
    from .llm import LLMClient, LLMReply, OutputMode, UsageMeter
    from .planning.planner import Planner

__version__ = "0.1.0"

# The LLM side imports the openai SDK, which takes about half a second: load it on first use so
# that `import tooldag` (and `tooldag validate`, `exec`, `runs`) stay quick (PEP 562).
_LAZY = {
    "LLMClient": "llm",
    "LLMReply": "llm",
    "OutputMode": "llm",
    "Planner": "planning.planner",
    "Session": "agent",
    "UsageMeter": "llm",
    "aplan_and_run": "agent",
    "plan_and_run": "agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tooldag' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BudgetExceededError",
    "Compensation",
    "Condition",
    "ConditionError",
    "ConfigError",
    "DaskRunner",
    "DurableExecutor",
    "Event",
    "EventBus",
    "EventType",
    "Executor",
    "Flow",
    "Issue",
    "LLMClient",
    "LLMConfigError",
    "LLMError",
    "LLMReply",
    "LLMResponseError",
    "Monitor",
    "OutputMode",
    "PermanentToolError",
    "Plan",
    "PlanError",
    "PlanInvalidError",
    "PlanParseError",
    "PlanRejected",
    "Planner",
    "Policy",
    "ReferenceResolutionError",
    "RegistrationError",
    "RetryPolicy",
    "RunCancelledError",
    "RunError",
    "RunHandle",
    "RunInfo",
    "RunPool",
    "RunResult",
    "RunStateError",
    "RunStatus",
    "RunStore",
    "Session",
    "Severity",
    "StatefulWorkflowExecutor",
    "Step",
    "StepApproval",
    "StepFailedError",
    "StepRecord",
    "StepRunner",
    "StepStatus",
    "StoreError",
    "StoreWarning",
    "Tool",
    "ToolArgumentError",
    "ToolCall",
    "ToolCategory",
    "ToolContext",
    "ToolError",
    "ToolNotFoundError",
    "ToolRegistry",
    "TooldagError",
    "TransientToolError",
    "Usage",
    "UsageMeter",
    "Verdict",
    "aplan_and_run",
    "errors_of",
    "flows",
    "load_registry",
    "parse_plan",
    "plan_and_run",
    "resume",
    "run_plan",
    "to_mermaid",
    "tool",
    "validate",
    "warnings_of",
]
