"""Does the live terminal view cost the same at any plan size?

Runs a chain of no-op steps (default 20,000) the way ``tooldag exec`` does
(:func:`tooldag.ui.cli.running.run_and_report`): once with the live view on a terminal (rich's
``Live``, redrawn 8 times a second, then the result as text), once as ``--json`` (no view, the
result as JSON). Both consoles are terminals writing to memory, so that only the drawing is
measured, not a terminal emulator. Prints both wall times and their ratio (goal, issue 14:
<= 1.3x), when the first frame was drawn after the run started (goal: <= 0.5 s), how many
frames were drawn and the longest one.

Run: ``.venv/bin/python benchmarks/live.py [--steps 20000] [--shape chain|fan-out]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from typing import Any

from rich.console import Console

from tooldag.execution.executor import Executor
from tooldag.observe.monitor import Monitor
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool
from tooldag.ui.cli import common, running

__all__ = ["main", "measure"]


@tool(side_effects=False)
async def noop(x: Any = None) -> None:
    """Do nothing."""
    return None


def chain(n: int, shape: str) -> Plan:
    steps = [{"id": "s0", "tool": "noop", "args": {}}] + [
        {
            "id": f"s{i}",
            "tool": "noop",
            "args": {"x": "$s0" if shape == "fan-out" else f"$s{i - 1}"},
        }
        for i in range(1, n)
    ]
    return Plan.model_validate({"goal": shape, "steps": steps})


def measure(plan: Plan, *, as_json: bool) -> dict[str, float]:
    """One run as ``tooldag exec`` makes it: wall time, first frame after the run's start,
    frames drawn and the longest frame (seconds)."""
    terminal = Console(file=io.StringIO(), width=120, height=40, force_terminal=True)
    running.err_console = terminal  # type: ignore[attr-defined]
    running.console = Console(file=io.StringIO(), width=120, force_terminal=True)  # type: ignore[attr-defined]
    frames: list[tuple[float, float]] = []
    started: list[float] = []
    draw = running.progress_view

    def timed_view(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return draw(*args, **kwargs)
        finally:
            frames.append((begin, time.perf_counter()))

    running.progress_view = timed_view  # type: ignore[attr-defined]
    executor = Executor(ToolRegistry([noop]))
    monitor = Monitor(executor.bus)

    async def work() -> Any:
        started.append(time.perf_counter())
        return await executor.run(plan)

    begin = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # where --json prints
            running.run_and_report(monitor, work, as_json=as_json)
    finally:
        running.progress_view = draw  # type: ignore[attr-defined]
        running.err_console = common.err_console  # type: ignore[attr-defined]
        running.console = common.console  # type: ignore[attr-defined]
    wall = time.perf_counter() - begin
    after_start = [end - started[0] for _, end in frames if end >= started[0]]
    return {
        "wall": wall,
        "first_frame": min(after_start) if after_start else float("nan"),
        "frames": len(frames),
        "longest_frame": max((end - b for b, end in frames), default=0.0),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--shape", choices=["chain", "fan-out"], default="chain")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    plan = chain(args.steps, args.shape)
    live = min((measure(plan, as_json=False) for _ in range(args.runs)), key=lambda m: m["wall"])
    quiet = min((measure(plan, as_json=True) for _ in range(args.runs)), key=lambda m: m["wall"])
    print(f"{args.steps:,}-step {args.shape}, best of {args.runs}")
    print(f"  --json                {quiet['wall']:7.2f} s")
    print(
        f"  live view             {live['wall']:7.2f} s   {live['wall'] / quiet['wall']:.2f}x "
        "(goal <= 1.3x)"
    )
    print(f"  first frame after     {live['first_frame']:7.3f} s of the run (goal <= 0.5 s)")
    print(f"  frames, longest       {live['frames']:7.0f}     {live['longest_frame'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
