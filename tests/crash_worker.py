"""A process for the crash tests to kill: it runs (or resumes) a durable run and can freeze itself
at a chosen point, announcing it on stdout first, so the test kills it exactly there.

Its tools append their step id to the file named by ``$TOOLDAG_CRASH_COUNTER``: the call counts.
The module is also a ``--tools`` file (``tooldag runs resume ID --tools tests/crash_worker.py``).

    python tests/crash_worker.py STORE RUN_ID [--resume] [--block STEP:PHASE]

STORE is a SQLite file or a ``postgresql://`` URL.

PHASE is where the process freezes (until it is killed):

- ``started``: the step's start is journalled (committed); its tool has not been called;
- ``tool``: inside the tool, after it counted its call (the step is in flight);
- ``before_commit``: the tool returned; its output is not yet journalled;
- ``after_commit``: its output is journalled (committed); the executor has not moved on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from typing import Any

from tooldag.durable.runner import DurableExecutor
from tooldag.durable.store import RunStore
from tooldag.events import Event, EventBus, EventType
from tooldag.plan import Plan
from tooldag.registry import ToolContext, ToolRegistry, tool

__all__ = ["PHASES", "PLAN", "STEPS", "registry"]

PHASES = ("started", "tool", "before_commit", "after_commit")

# Two branches that join, a tail, and a step that needs nothing: crashes land amid parallel work.
PLAN = Plan.model_validate(
    {
        "goal": "crash test",
        "steps": [
            {"id": "src", "tool": "work", "args": {"label": "src", "inputs": []}},
            {"id": "left", "tool": "work", "args": {"label": "left", "inputs": ["$src"]}},
            {"id": "right", "tool": "awork", "args": {"label": "right", "inputs": ["$src"]}},
            {"id": "left2", "tool": "work", "args": {"label": "left2", "inputs": ["$left"]}},
            {"id": "right2", "tool": "awork", "args": {"label": "right2", "inputs": ["$right"]}},
            {
                "id": "join",
                "tool": "work",
                "args": {"label": "join", "inputs": ["$left2", "$right2"]},
            },
            {"id": "tail", "tool": "awork", "args": {"label": "tail", "inputs": ["$join"]}},
            {"id": "side", "tool": "work", "args": {"label": "side", "inputs": []}},
        ],
        "answer": "${tail}",
    }
)
STEPS = PLAN.ids

_BLOCK_ENV = "TOOLDAG_CRASH_BLOCK"


def _count(step_id: str) -> None:
    fd = os.open(os.environ["TOOLDAG_CRASH_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{step_id}\n".encode())  # one small O_APPEND write: whole lines only
    finally:
        os.close(fd)


def _announce(step_id: str, phase: str) -> None:
    sys.stdout.write(f"FROZEN {step_id} {phase}\n")
    sys.stdout.flush()


def _value(label: str, inputs: list[int]) -> int:
    return len(label) + 2 * sum(inputs)


def _in_flight_block(step_id: str) -> bool:
    return os.environ.get(_BLOCK_ENV) == f"{step_id}:tool"


@tool
def work(label: str, inputs: list[int], ctx: ToolContext) -> int:
    """A sync step: counts its call and combines its inputs."""
    _count(ctx.step_id)
    if _in_flight_block(ctx.step_id):
        _announce(ctx.step_id, "tool")
        threading.Event().wait()
    return _value(label, inputs)


@tool
async def awork(label: str, inputs: list[int], ctx: ToolContext) -> int:
    """An async step: counts its call and combines its inputs."""
    _count(ctx.step_id)
    if _in_flight_block(ctx.step_id):
        _announce(ctx.step_id, "tool")
        await asyncio.Event().wait()
    return _value(label, inputs)


def registry() -> ToolRegistry:
    return ToolRegistry([work, awork])


def _freezer(step_id: str, phase: str) -> Any:
    kind = EventType.STEP_STARTED if phase == "started" else EventType.STEP_SUCCEEDED

    def hold() -> None:
        _announce(step_id, phase)
        threading.Event().wait()  # holds the event loop: nothing else is journalled

    def freeze(event: Event) -> None:
        if event.type is not kind or event.step_id != step_id:
            return
        if phase == "before_commit":
            hold()
        else:
            # The store commits the loop turn's step events from a callback it scheduled when
            # the turn's first came: this one, scheduled after it, runs after that commit and
            # before the step goes on (its wake-up is scheduled by the commit).
            asyncio.get_running_loop().call_soon(hold)

    return freeze


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("run_id")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--block", metavar="STEP:PHASE")
    args = parser.parse_args()
    step_id, phase = args.block.split(":") if args.block else ("", "")
    if phase and phase not in PHASES:
        parser.error(f"phase must be one of {', '.join(PHASES)}")
    os.environ.pop(_BLOCK_ENV, None)
    if phase == "tool":
        os.environ[_BLOCK_ENV] = args.block
    bus = EventBus()
    if phase == "before_commit":  # subscribed ahead of the store: it sees the output first
        bus.subscribe(_freezer(step_id, phase))
    runner = DurableExecutor(registry(), store=RunStore(args.store), bus=bus)
    if phase in ("started", "after_commit"):
        bus.subscribe(_freezer(step_id, phase))
    result = runner.resume(args.run_id) if args.resume else runner.start(args.run_id, PLAN)
    sys.stdout.write(f"DONE {result.status.value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
