"""Streamed planning figures (issue 15), printed:

1. Wall time of a run whose plan is streamed (read-only steps start while the LLM writes) against
   the same run with the plan asked for whole, side by side, end to end through ``aplan_and_run``
   and the fake OpenAI server over real HTTP: a plan of 20 read-only steps of 200 ms each,
   written at 50 tokens a second (4 characters a token; the whole reply takes as long). Three
   shapes of the same 20 steps: all independent (a fan-out), 5 levels of 4 (each level reads
   the one before), and one chain of 20. What streaming can save is the execution that overlaps
   the writing, so the gain grows with the plan's depth in tool time against its writing time;
   "at best" is the whole run's time over the time to write the plan and run one step.
2. Time from a step's last token (the piece with its closing brace reaching the client) to its
   tool starting (the ``step_started`` event), over the steps of the streamed runs (aim: <= 5 ms).
3. The step scanner's CPU time (``time.process_time``) for plans of 200, 1,000 and 5,000 steps
   fed in pieces of 4 characters (aim: linear; <= 20 ms per 200 steps).

Run: ``python benchmarks/streaming.py [--rate 50] [--tool-ms 200] [--steps 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from tooldag.agent import aplan_and_run
from tooldag.events import Event, StepStarted
from tooldag.llm.client import LLMClient
from tooldag.plan.stream import StepScanner
from tooldag.planning import streaming as streaming_module
from tooldag.registry import ToolRegistry, tool
from tooldag.testing import FakeLLMServer

__all__ = ["main"]


def registry(tool_seconds: float) -> ToolRegistry:
    @tool(side_effects=False, idempotent=True)
    async def lookup(n: int, after: int = 0) -> dict[str, int]:
        """Look item n up (after reading another item's result)."""
        await asyncio.sleep(tool_seconds)
        return {"n": n}

    return ToolRegistry([lookup])


def plan(shape: str, steps: int) -> dict[str, Any]:
    """``steps`` lookups: independent (``fan-out``), in levels of 4 each reading one step of the
    level before (``levels``), or each reading the one before (``chain``)."""
    out = []
    for i in range(steps):
        args: dict[str, Any] = {"n": i}
        if shape == "chain" and i:
            args["after"] = f"$s{i - 1}.n"
        elif shape == "levels" and i >= 4:
            args["after"] = f"$s{i - 4}.n"
        out.append({"id": f"s{i}", "tool": "lookup", "args": args})
    return {"goal": f"{shape} of {steps}", "steps": out, "answer": f"${{s{steps - 1}.n}}"}


class Arrivals:
    """When each step's last token reached the client (the scanner returning it, timed) and when
    its tool started. Within the block, the streaming planner's scanner is a timed one."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.started: dict[str, float] = {}
        arrivals = self

        class TimedScanner(StepScanner):
            def feed(self, piece: str) -> list[Any]:
                now = time.perf_counter()
                found = super().feed(piece)
                for step in found:
                    if isinstance(step, dict):
                        arrivals.at.setdefault(str(step.get("id")), now)
                return found

        self.scanner = TimedScanner

    def __enter__(self) -> Arrivals:
        streaming_module.StepScanner = self.scanner  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        streaming_module.StepScanner = StepScanner  # type: ignore[attr-defined]

    def on_event(self, event: Event) -> None:
        if isinstance(event.data, StepStarted) and event.step_id is not None:
            self.started.setdefault(event.step_id, time.perf_counter())

    def latencies(self) -> list[float]:
        return [self.started[s] - self.at[s] for s in self.at if s in self.started]


async def timed_run(
    llm: LLMClient, tools: ToolRegistry, *, stream: bool, arrivals: Arrivals | None
) -> float:
    start = time.perf_counter()
    result = await aplan_and_run(
        "go",
        tools=tools,
        llm=llm,
        stream=stream,
        on_event=arrivals.on_event if arrivals is not None else None,
    )
    wall = time.perf_counter() - start
    if result.status.value != "succeeded":
        raise RuntimeError(f"the benchmark run {result.status}: {result.error}")
    return wall


def scanner_cpu(steps: int, repeats: int = 5) -> float:
    """Best CPU seconds to scan a plan of ``steps`` fed in 4-character pieces."""
    text = json.dumps(
        {
            "goal": "many lookups",
            "steps": [
                {"id": f"step{i}", "tool": "http_get", "args": {"url": f"https://x.test/{i}"}}
                for i in range(steps)
            ],
            "answer": "done",
        }
    )
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    best = float("inf")
    for _ in range(repeats):
        scanner = StepScanner()
        start = time.process_time()
        found = 0
        for piece in pieces:
            found += len(scanner.feed(piece))
        best = min(best, time.process_time() - start)
        assert found == steps
    return best


async def main(rate: float, tool_ms: float, steps: int) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} (figures are noisy on a busy machine)")
    tools = registry(tool_ms / 1000)
    print(
        f"1. wall time, {steps} read-only steps of {tool_ms:.0f} ms, plan written at "
        f"{rate:g} tokens/s (streamed vs. asked for whole)"
    )
    latencies: list[float] = []
    for shape in ("fan-out", "levels", "chain"):
        text = json.dumps(plan(shape, steps))
        tokens = -(-len(text) // 4)
        walls = {}
        with FakeLLMServer(["ok", text, text], token_rate=rate, chunk_size=4) as server:
            # One client for both runs, its connection and the SDK warmed up by a first call:
            # neither figure pays for a first contact.
            llm = server.client(check_model=False)
            await llm.complete("warm up")
            walls["whole"] = await timed_run(llm, tools, stream=False, arrivals=None)
            with Arrivals() as arrivals:
                walls["streamed"] = await timed_run(llm, tools, stream=True, arrivals=arrivals)
            latencies.extend(arrivals.latencies())
            await llm.aclose()
        # No schedule beats writing the plan and then running its last step.
        bound = walls["whole"] / (tokens / rate + tool_ms / 1000)
        print(
            f"  {shape:<8} ({tokens} tokens, {tokens / rate:4.1f} s to write)   "
            f"whole {walls['whole']:6.2f} s   streamed {walls['streamed']:6.2f} s   "
            f"speed-up {walls['whole'] / walls['streamed']:4.2f}x (at best {bound:4.2f}x)"
        )
    ms = sorted(x * 1000 for x in latencies)
    print(f"2. last token of a step -> its tool starting, {len(ms)} steps")
    print(
        f"  median {statistics.median(ms):6.2f} ms   p90 {ms[int(len(ms) * 0.9)]:6.2f} ms   "
        f"max {ms[-1]:6.2f} ms"
    )
    print("3. step scanner CPU, pieces of 4 characters")
    for n in (200, 1000, 5000):
        cpu = scanner_cpu(n)
        print(f"  {n:>5,} steps   {cpu * 1000:7.2f} ms   {cpu * 1000 / n * 200:5.2f} ms per 200")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="tokens a second (50)")
    parser.add_argument("--tool-ms", type=float, default=200.0, help="each tool's time (200)")
    parser.add_argument("--steps", type=int, default=20, help="steps in the plan (20)")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.tool_ms, args.steps))
