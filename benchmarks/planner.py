"""Planner figures (issue 5), printed:

1. LLM calls per successful goal on the happy path (target: 1), measured end to end through
   ``aplan_and_run`` against the fake OpenAI server over real HTTP.
2. Prompt tokens of the tool catalogue per tool (target: <= 60 for a two-argument tool), counted
   with a real o200k_base tokenizer when one is available (``tiktoken``, or the offline
   ``bpe_openai``), else approximated as characters / 4 (and said so).
3. Planner overhead excluding the LLM with 50 tools (target: <= 5 ms): prompt building, parsing
   and validation around an LLM stub that answers at once.

Run: ``python benchmarks/planner.py``
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from typing_extensions import TypedDict

from tooldag.agent import aplan_and_run
from tooldag.llm.client import LLMReply, OutputMode
from tooldag.planning.planner import Planner
from tooldag.planning.prompting import system_prompt, tool_line
from tooldag.registry import ToolRegistry, tool
from tooldag.registry.loading import load_registry
from tooldag.result import Usage
from tooldag.testing import FakeLLMServer

__all__ = ["main"]


def tokenizer() -> tuple[str, Callable[[str], int]]:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("o200k_base")
        return "tiktoken o200k_base", lambda text: len(enc.encode(text))
    except Exception:  # not installed, or its data cannot be downloaded here
        pass
    try:
        import bpe_openai

        bpe = bpe_openai.get_encoding("o200k_base")
        return "bpe_openai o200k_base", lambda text: len(bpe.encode(text))
    except Exception:
        pass
    return "approximation: characters / 4", lambda text: max(1, round(len(text) / 4))


class Conversion(TypedDict):
    amount: float
    currency: str


@tool(side_effects=False)
def convert_currency(amount: float, to: str) -> Conversion:
    """Convert an amount of euros into another currency.

    Args:
        amount: Euros to convert.
        to: ISO currency code, e.g. "USD".
    """
    return {"amount": amount, "currency": to}


def synthetic_registry(n: int) -> ToolRegistry:
    registry = ToolRegistry()
    for i in range(n):

        def fn(city: str, days: int = 1) -> Conversion:
            return {"amount": float(days), "currency": city}

        fn.__name__ = f"tool_{i:02d}"
        fn.__doc__ = (
            f"Synthetic tool number {i}.\n\nArgs:\n    city: A city.\n    days: Days ahead."
        )
        registry.add(tool(side_effects=False)(fn))
    return registry


class InstantLLM:
    """Stands in for LLMClient: answers at once, so only the planner's own work is timed."""

    output_mode = OutputMode.AUTO

    def __init__(self, text: str) -> None:
        self.text = text

    async def complete(self, messages: Any, **_: Any) -> LLMReply:
        usage = Usage()
        usage.add(1000, 100)
        return LLMReply(self.text, usage, OutputMode.JSON_SCHEMA, "instant")


def catalogue_figures(count: Callable[[str], int]) -> None:
    line = tool_line(convert_currency)
    print(f"  two-argument tool ({count(line)} tokens):")
    for text in line.splitlines():
        print(f"    {text}")
    builtin = load_registry(None)
    per_tool = [count(tool_line(t)) for t in builtin]
    print(
        f"  built-in packs: {len(per_tool)} tools, mean {statistics.mean(per_tool):.0f} "
        f"tokens/tool (min {min(per_tool)}, max {max(per_tool)})"
    )
    fixed = count(system_prompt(ToolRegistry()))
    print(f"  system prompt without tools (format, rules, example): {fixed} tokens")


async def calls_per_goal(goals: int) -> float:
    plan = {
        "steps": [
            {"id": "eur", "tool": "convert_currency", "args": {"amount": 10, "to": "USD"}},
        ],
        "answer": "${eur.amount} ${eur.currency}",
    }
    registry = ToolRegistry([convert_currency])
    with FakeLLMServer(default=plan) as server:
        llm = server.client()
        for i in range(goals):
            result = await aplan_and_run(f"convert 10 euros, #{i}", tools=registry, llm=llm)
            assert result.ok, result.error
        await llm.aclose()
        return len(server.requests) / goals


async def planner_overhead(n_tools: int, rounds: int) -> tuple[float, float]:
    registry = synthetic_registry(n_tools)
    plan_text = (
        '{"steps": ['
        + ", ".join(
            f'{{"id": "s{i}", "tool": "tool_{i:02d}", "args": {{"city": "Oslo", "days": 2}}}}'
            for i in range(5)
        )
        + ', {"id": "last", "tool": "tool_05", "args": {"city": "$s0.currency"}}], '
        '"answer": "${last.amount}"}'
    )
    planner = Planner(registry, InstantLLM(plan_text))  # type: ignore[arg-type]
    start = time.perf_counter()
    await planner.plan("cold start")
    cold = (time.perf_counter() - start) * 1000
    timings = []
    for i in range(rounds):
        start = time.perf_counter()
        await planner.plan(f"goal {i}")
        timings.append((time.perf_counter() - start) * 1000)
    return cold, statistics.median(timings)


def main() -> None:
    name, count = tokenizer()
    print(f"tooldag planner benchmark (tokens: {name})")
    print("1. LLM calls per successful goal on the happy path (target 1):")
    print(f"  {asyncio.run(calls_per_goal(20)):.2f} calls/goal over 20 goals (fake server, HTTP)")
    print("2. Tool catalogue tokens (target <= 60 for a two-argument tool):")
    catalogue_figures(count)
    print("3. Planner overhead excluding the LLM, 50 tools (target <= 5 ms):")
    cold, warm = asyncio.run(planner_overhead(50, 200))
    print(f"  first plan (catalogue + plan schema built): {cold:.2f} ms")
    print(f"  median of 200 plans (prompt, parse, validate): {warm:.3f} ms")


if __name__ == "__main__":
    main()
