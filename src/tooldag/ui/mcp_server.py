"""tooldag as an MCP server: other agents (desktop assistants, IDEs) hand it goals and plans.

``tooldag mcp serve`` serves these tools, over stdio (what MCP hosts start) or streamable HTTP on
127.0.0.1:

- ``plan(goal)``: a validated plan for the goal (the LLM comes from the usual environment);
- ``validate(plan)``: the plan's issues (no errors when it is valid; each has its ``severity``)
  and its data-flow findings;
- ``run(goal)``: plan, run and replan; the answer, status, steps and token usage;
- ``exec(plan)``: run a plan as given; its result;
- ``tools()``: the tools plans may use, with their schemas.

``exec`` takes the plan as a JSON object whose input schema is the plan schema over this
server's tools, so that the host's model sees what a plan may hold (``validate`` takes any
object: a plan that does not fit is what it is for).

No one is there to ask before a side effect: ``run`` and ``exec`` refuse every step whose tool
has side effects unless the server was started allowing it (``allow_side_effects=True``, or the
tool's name among those allowed). A refused ``run`` ends ``rejected`` with nothing of that plan
run; a refused ``exec`` runs nothing. While a run goes, the server sends progress notifications
(steps done of steps planned, with what happened last) to a client that asked for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from typing_extensions import TypedDict

from ..errors import PlanError, TooldagError
from ..events import (
    Event,
    PlanCreated,
    StepBlocked,
    StepCancelled,
    StepFailed,
    StepReused,
    StepSkipped,
    StepSucceeded,
)
from ..execution.gate import Verdict
from ..issues import errors_of
from ..plan.model import Plan
from ..plan.parse import parse_plan
from ..registry.registry import ToolRegistry
from ..validate import flow_issues, validate

if TYPE_CHECKING:
    from ..llm.client import LLMClient

__all__ = ["Policy", "build_server", "plan_parameters"]

_DONE = (StepSucceeded, StepFailed, StepSkipped, StepBlocked, StepCancelled, StepReused)


class Policy:
    """Which side-effecting tools ``run`` and ``exec`` may call: all, some by name, or none."""

    def __init__(self, allow: bool | Iterable[str] = False) -> None:
        self.all = allow is True
        self.tools = frozenset() if isinstance(allow, bool) else frozenset(allow)

    def allows(self, registry: ToolRegistry, tool: str) -> bool:
        return (
            tool not in registry
            or not registry.get(tool).side_effects
            or self.all
            or tool in self.tools
        )

    @property
    def read_only(self) -> bool:
        return not self.all and not self.tools

    def refusal(self, step: str, tool: str) -> str:
        return (
            f"step {step!r} calls {tool}, which has side effects, and this server does not "
            f"allow them: start it with --allow {tool} (or --yes for every tool)"
        )


class PlanOutput(TypedDict):
    plan: dict[str, Any]
    usage: dict[str, int]


class ValidateOutput(TypedDict):
    valid: bool
    issues: list[dict[str, Any]]
    data_flows: list[dict[str, Any]]


class ToolsOutput(TypedDict):
    tools: list[dict[str, Any]]


class _Failed(Exception):
    """A tool call's error, as the text its caller reads (MCP's ``isError``)."""


@contextlib.asynccontextmanager
async def _reporting(ctx: Any) -> AsyncIterator[Callable[[Event], None]]:
    """An ``on_event`` callback that turns a run's events into MCP progress notifications.

    Events come synchronously from the run; notifications are sent by a task of their own, in
    order, and the last ones are flushed before the tool returns.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, float | None, str] | None] = asyncio.Queue()
    state = {"done": 0, "total": 0}

    def on_event(event: Event) -> None:
        data = event.data
        message = None
        if isinstance(data, PlanCreated) and data.plan is not None:
            state["total"] += len(data.plan.steps)
            message = f"plan version {data.version}: {len(data.plan.steps)} step(s)"
        elif isinstance(data, _DONE):
            state["done"] += 1
            message = f"{event.step_id} {type(data).__name__.removeprefix('Step').lower()}"
        if message is not None:
            total = float(state["total"]) or None
            loop.call_soon_threadsafe(queue.put_nowait, (float(state["done"]), total, message))

    async def send() -> None:
        while (item := await queue.get()) is not None:
            with contextlib.suppress(Exception):  # a client that went away: the run goes on
                await ctx.report_progress(*item)

    sender = asyncio.create_task(send())
    try:
        yield on_event
    finally:
        loop.call_soon_threadsafe(queue.put_nowait, None)
        with contextlib.suppress(Exception):
            await sender


def _plan_of(plan: Any) -> Plan:
    try:
        return parse_plan(plan)
    except PlanError as exc:
        raise _Failed(_issues_text("not a readable plan", exc.issues)) from None


def _issues_text(what: str, issues: Iterable[Any]) -> str:
    return "; ".join([what, *(str(i) for i in issues)])


class _Tools:
    """The served tools, over one registry, one LLM (made on first use) and one policy."""

    def __init__(
        self,
        registry: ToolRegistry,
        llm: Callable[[], LLMClient] | None,
        policy: Policy,
        max_replans: int,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.max_replans = max_replans
        self._make_llm = llm
        self._llm: LLMClient | None = None

    def llm(self) -> LLMClient:
        if self._llm is None:
            if self._make_llm is not None:
                self._llm = self._make_llm()
            else:
                # Imported here: the openai SDK is slow to import, and validate/exec never need it.
                from ..llm.client import LLMClient

                self._llm = LLMClient.from_env()
        return self._llm

    async def aclose(self) -> None:
        if self._llm is not None:
            await self._llm.aclose()

    async def plan(self, goal: str) -> PlanOutput:
        """Plan a goal: the validated plan (JSON), made by the LLM over this server's tools.
        Nothing runs; hand the plan to `exec` to run it, or to `validate` to check an edit."""
        from ..planning.planner import Planner

        planner = Planner(self.registry, self.llm())
        try:
            plan = await planner.plan(goal)
        except PlanError as exc:
            raise _Failed(_issues_text(f"no valid plan came back: {exc}", exc.issues)) from None
        return {"plan": plan.to_json(), "usage": planner.usage.to_dict()}

    async def validate(self, plan: dict[str, Any]) -> ValidateOutput:
        """Check a plan against this server's tools: `valid` when `issues` has no error (its
        warnings, `severity` "warning", say how the plan is read);
        `data_flows` are the ways private or untrusted data could leave the machine (findings,
        not errors)."""
        try:
            parsed = parse_plan(plan)
        except PlanError as exc:
            return {"valid": False, "issues": [i.to_dict() for i in exc.issues], "data_flows": []}
        issues = validate(parsed, self.registry)
        valid = not errors_of(issues)  # warnings say how a valid plan is read
        flows = [i.to_dict() for i in flow_issues(parsed, self.registry)] if valid else []
        return {"valid": valid, "issues": [i.to_dict() for i in issues], "data_flows": flows}

    async def run(self, goal: str, ctx: Any) -> dict[str, Any]:
        """Plan a goal with the LLM and run it over this server's tools (replanning on failure):
        the answer, status, steps and token usage. Sends progress notifications."""
        from ..agent import aplan_and_run

        refused: list[str] = []

        def approve(plan: Plan) -> bool:
            # Refused as a whole before any of it runs: a host that did not allow a side
            # effect gets no half-done plan (its read-only steps run for nothing).
            for step in plan.steps:
                if not self.policy.allows(self.registry, step.tool):
                    refused.append(self.policy.refusal(step.id, step.tool))
                    return False
            return True

        def approve_step(step: Any) -> Verdict:
            # The backstop for a step the plan check let through (none should reach here).
            if self.policy.allows(self.registry, step.tool):
                return Verdict.RUN
            refused.append(self.policy.refusal(step.id, step.tool))
            return Verdict.ABORT

        async with _reporting(ctx) as on_event:
            try:
                result = await aplan_and_run(
                    goal,
                    tools=self.registry,
                    llm=self.llm(),
                    approve=approve,
                    approve_step=approve_step,
                    on_event=on_event,
                    max_replans=self.max_replans,
                )
            except PlanError as exc:
                raise _Failed(_issues_text(f"no valid plan came back: {exc}", exc.issues)) from None
        out = result.to_json()
        if refused and result.status.value == "rejected":
            out["error"] = refused[-1]
        return out

    async def exec(self, plan: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """Run a plan as given over this server's tools (in parallel where the graph allows):
        its status, answer, outputs and steps. Sends progress notifications."""
        from ..execution.executor import Executor

        parsed = _plan_of(plan)
        issues = errors_of(validate(parsed, self.registry))  # warnings do not stop a plan
        if issues:
            raise _Failed(_issues_text("the plan is not valid; nothing ran", issues))
        for step in parsed.steps:
            if not self.policy.allows(self.registry, step.tool):
                raise _Failed(self.policy.refusal(step.id, step.tool) + "; nothing ran")
        executor = Executor(self.registry)
        async with _reporting(ctx) as on_event:
            unsubscribe = executor.bus.subscribe(on_event)
            try:
                on_event(Event(PlanCreated(parsed, 1), run_id=""))
                result = await executor.run(parsed)
            finally:
                unsubscribe()
        return result.to_json()

    async def tools(self) -> ToolsOutput:
        """The tools plans on this server may use: names, descriptions, argument and output
        schemas, and what they do with data."""
        from ..planning.plan_schema import planner_tools

        return {"tools": [t.to_dict() for t in planner_tools(self.registry)]}


def plan_parameters(registry: ToolRegistry, *, checked: bool) -> dict[str, Any]:
    """The input schema of a tool that takes a ``plan``.

    ``checked`` (``exec``): the planner's loose plan schema over ``registry`` (optional fields
    optional, each tool's own arguments, references accepted), so that the host's model sees
    what a plan may hold. Unchecked (``validate``): any object, since a plan that does not fit
    is exactly what ``validate`` is for, and a host may check arguments before it sends them.
    """
    if not checked:
        plan: dict[str, Any] = {
            "type": "object",
            "description": "a tooldag plan, of the shape exec takes: {goal, steps, answer}",
        }
        return {"type": "object", "properties": {"plan": plan}, "required": ["plan"]}
    from ..planning.plan_schema import plan_json_schema

    schema = plan_json_schema(registry, strict=False)
    defs = schema.pop("$defs", {})  # its references are to the document's root: hoisted there
    schema["description"] = "a tooldag plan: steps run in parallel where references allow"
    return {
        "type": "object",
        "properties": {"plan": schema},
        "required": ["plan"],
        "$defs": defs,
    }


def build_server(
    registry: ToolRegistry,
    *,
    allow_side_effects: bool | Iterable[str] = False,
    llm: Callable[[], LLMClient] | None = None,
    max_replans: int = 2,
) -> Any:
    """An ``mcp`` ``MCPServer`` serving ``plan``, ``validate``, ``run``, ``exec`` and ``tools``
    over ``registry``. ``llm`` makes the LLM client on first use (default: the environment).

    Its ``aclose`` attribute (an async callable) closes the LLM client when serving ends."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.tools import Tool
    from mcp.types import ToolAnnotations

    from ..mcp.client import sdk

    sdk()
    policy = Policy(allow_side_effects)
    served = _Tools(registry, llm, policy, max_replans)

    def failing(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``method`` with tooldag's errors as MCP tool errors: the SDK shows the caller the
        text of its own ``ToolError`` only (any other exception is a crash, its text hidden)."""

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except (_Failed, TooldagError) as exc:
                raise ToolError(str(exc)) from None

        return call

    def served_tool(name: str, annotations: Any) -> Any:
        method = getattr(served, name)
        context = "ctx" if "ctx" in inspect.signature(method).parameters else None
        made = Tool.from_function(
            failing(method), name=name, annotations=annotations, context_kwarg=context
        )
        if "plan" in inspect.signature(method).parameters:
            made.parameters = plan_parameters(registry, checked=name == "exec")
        return made

    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False, idempotent_hint=True)
    acting = ToolAnnotations(read_only_hint=policy.read_only, open_world_hint=True)
    tools = [
        served_tool("plan", ToolAnnotations(read_only_hint=True, open_world_hint=True)),
        served_tool("validate", read_only),
        served_tool("run", acting),
        served_tool("exec", acting),
        served_tool("tools", read_only),
    ]
    server = MCPServer("tooldag", version=_version(), tools=tools, log_level="WARNING")
    server.aclose = served.aclose  # type: ignore[attr-defined]
    return server


def _version() -> str:
    # Not tooldag.__version__: the facade sits above every floor and nothing imports it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tooldag")
    except PackageNotFoundError:
        return ""
