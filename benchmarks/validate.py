"""How fast is parse + validate on big plans, and does it grow linearly?

Builds plans of 1,000 / 10,000 / 100,000 steps over a small registry of typed tools with output
schemas. Each step reads one or two earlier steps' output fields (whole-value references of the
right type), some steps take literal arguments or ``${...}`` templates, a few carry a ``when``
condition, and the plan has an ``answer`` template. The plan is serialised to JSON text and timed
as ``parse_plan(text)`` + ``validate(plan, registry)`` with ``time.perf_counter``, best of several
runs. Goal (issue 2): 10,000 steps in <= 100 ms, 100k / 10k <= 12x.

Then ``flows(plan, registry)``, the data-flow analysis (issue 12), on the same plan under three
registries: the benchmark's own, whose undeclared tools are no sources (the analysis stops after
a look at the tools); one where ``fetch`` returns untrusted text and sends its ``timeout``, which
no step sets (the whole analysis runs and finds nothing); and one where ``search`` sends its
query too, which nearly every step's output reaches (hundreds of thousands of flows).

Run: ``.venv/bin/python benchmarks/validate.py [--runs N] [--sizes 1000,10000,100000]``
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import time
from typing import Any, TypedDict

from pydantic import BaseModel

from tooldag.plan.parse import parse_plan
from tooldag.plan.refs import parse_string
from tooldag.registry import ToolRegistry, tool
from tooldag.validate.flows import flows
from tooldag.validate.validator import validate

__all__ = ["build_plan", "build_registry", "main", "time_flows", "time_once", "trust_registries"]


class Page(TypedDict):
    status: int
    body: str
    url: str


class Hit(BaseModel):
    title: str
    url: str
    score: float


class SearchResult(BaseModel):
    results: list[Hit]
    total: int


class Number(TypedDict):
    value: float


class Summary(TypedDict):
    summary: str
    words: int


class Report(TypedDict):
    text: str


@tool(side_effects=False)
def search(query: str, limit: int = 5) -> SearchResult:
    """Search the web.

    Args:
        query: What to look for.
        limit: How many results.
    """
    raise NotImplementedError


@tool(side_effects=False)
def fetch(url: str, timeout: float = 10.0) -> Page:
    """Fetch a page.

    Args:
        url: The address.
        timeout: Seconds to wait.
    """
    raise NotImplementedError


@tool(side_effects=False)
def summarize(text: str, max_words: int = 50) -> Summary:
    """Summarise a text."""
    raise NotImplementedError


@tool(side_effects=False)
def extract_number(text: str) -> Number:
    """The first number in a text."""
    raise NotImplementedError


@tool(side_effects=False)
def add(a: float, b: float) -> Number:
    """a + b."""
    raise NotImplementedError


@tool
def write_report(title: str, body: str, tags: list[str] | None = None) -> Report:
    """Write a report."""
    raise NotImplementedError


def build_registry() -> ToolRegistry:
    return ToolRegistry([search, fetch, summarize, extract_number, add, write_report])


# Per produced JSON type: (tool, field) pairs of earlier outputs a step may reference.
_STRING_FIELDS = [
    ("fetch", "body"),
    ("summarize", "summary"),
    ("write_report", "text"),
    ("fetch", "url"),
]
_NUMBER_FIELDS = [
    ("extract_number", "value"),
    ("add", "value"),
    ("summarize", "words"),
    ("fetch", "status"),
]


def build_plan(n: int, seed: int = 7) -> dict[str, Any]:
    """A valid plan of ``n`` steps, each reading one or two earlier steps' output fields."""
    rng = random.Random(seed)
    by_tool: dict[str, list[str]] = {}
    steps: list[dict[str, Any]] = []

    def earlier(pairs: list[tuple[str, str]]) -> str | None:
        # A recent producer most of the time (local structure, like real plans), sometimes any.
        options = [(t, f) for t, f in pairs if by_tool.get(t)]
        if not options:
            return None
        t, f = rng.choice(options)
        ids = by_tool[t]
        sid = ids[-1 - rng.randrange(min(len(ids), 20))] if rng.random() < 0.8 else rng.choice(ids)
        return f"${sid}.{f}"

    for i in range(n):
        sid = f"s{i}"
        kind = i % 6 if i >= 6 else i
        args: dict[str, Any]
        if kind == 0:
            text = earlier(_STRING_FIELDS)
            query = f"more on ${{{text[1:]}}}" if text else f"topic number {i}"
            tool_name, args = "search", {"query": query, "limit": 1 + i % 9}
        elif kind == 1:
            prev = (
                [s["id"] for s in steps if s["tool"] == "search"][-1:]
                if i < 6
                else [by_tool["search"][-1]]
            )
            tool_name = "fetch"
            args = {"url": f"${prev[0]}.results.0.url" if prev else "https://example.org"}
        elif kind == 2:
            tool_name = "summarize"
            args = {"text": earlier(_STRING_FIELDS) or "lorem ipsum", "max_words": 40}
        elif kind == 3:
            tool_name = "extract_number"
            ref = earlier(_STRING_FIELDS)
            args = {"text": "Numbers: ${" + ref[1:] + "}" if ref else "42"}
        elif kind == 4:
            tool_name = "add"
            args = {"a": earlier(_NUMBER_FIELDS) or 1.5, "b": earlier(_NUMBER_FIELDS) or 2}
        else:
            tool_name = "write_report"
            a, b = earlier(_STRING_FIELDS), earlier(_NUMBER_FIELDS)
            args = {
                "title": f"Report {i}",
                "body": "Summary: ${"
                + (a or "$s0.x")[1:]
                + "}, total ${"
                + (b or "$s0.x")[1:]
                + "}",
                "tags": ["auto", f"batch-{i // 100}"],
            }
        step: dict[str, Any] = {"id": sid, "tool": tool_name, "args": args}
        if kind == 5 and i % 4 == 1:
            num = earlier(_NUMBER_FIELDS)
            if num:
                step["when"] = {"ref": num, "op": ">", "value": 0}
        steps.append(step)
        by_tool.setdefault(tool_name, []).append(sid)
    last_report = by_tool.get("write_report", ["s0"])[-1]
    return {
        "goal": f"benchmark plan of {n} steps",
        "steps": steps,
        "answer": "Done: ${" + last_report + ".text}",
    }


def trust_registries() -> dict[str, ToolRegistry]:
    """The registries ``flows`` is timed under, by what the plan holds under each."""
    plain = build_registry()

    def declared(egress: dict[str, frozenset[str]]) -> ToolRegistry:
        return ToolRegistry(
            dataclasses.replace(
                t, untrusted_output=t.name == "fetch", egress=egress.get(t.name, frozenset())
            )
            for t in plain
        )

    return {
        "no source": plain,
        "no flow": declared({"fetch": frozenset({"timeout"})}),
        "flows": declared({"fetch": frozenset({"timeout"}), "search": frozenset({"query"})}),
    }


def time_flows(text: str, registry: ToolRegistry, runs: int) -> tuple[float, int]:
    """Best seconds of ``flows`` over an already parsed plan, and how many flows it found."""
    plan = parse_plan(text)
    best = float("inf")
    found = 0
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        found = len(flows(plan, registry))
        best = min(best, time.perf_counter() - start)
    return best, found


def time_once(text: str, registry: ToolRegistry) -> tuple[float, int, float]:
    """Seconds for parse + validate of ``text``, the number of issues found, and the seconds of
    the garbage collector's first pass over the new plan afterwards.

    The reference parser's cache is emptied first: every run parses every string, as the first
    validation of a new plan does. parse_plan and validate pause the cyclic collector (see
    ``tooldag.plan.parse._pause_gc``); the pass it makes over the plan's objects once it resumes is
    real work a program pays while it keeps the plan, so it is timed and reported apart.
    """
    parse_string.cache_clear()
    gc.collect()
    start = time.perf_counter()
    plan = parse_plan(text)
    issues = validate(plan, registry)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    gc.collect(0)
    collect = time.perf_counter() - start
    del plan
    return seconds, len(issues), collect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="best of this many runs per size")
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args(argv)
    registry = build_registry()
    trust = trust_registries()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} (other work on the machine skews this)")
    best: dict[int, float] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        text = json.dumps(build_plan(n))
        refs = text.count("$")
        times = []
        collects = []
        for _ in range(args.runs if n < 100_000 else max(3, args.runs // 2)):
            seconds, issues, collect = time_once(text, registry)
            if issues:
                raise SystemExit(f"benchmark plan of {n} steps is invalid: {issues} issue(s)")
            times.append(seconds)
            collects.append(collect)
        best[n] = min(times)
        print(
            f"{n:>7} steps ({refs:>7} refs, {len(text) / 1e6:5.1f} MB): "
            f"{best[n] * 1000:8.1f} ms best of {len(times)}  ({best[n] / n * 1e6:.1f} us/step); "
            f"then the collector's pass over the plan: {min(collects) * 1000:.1f} ms"
        )
        for label, under in trust.items():
            seconds, found = time_flows(text, under, 3)
            print(f"{'':>15}flows, {label + ':':<10} {seconds * 1000:8.1f} ms, {found} flows")
    if 10_000 in best and 100_000 in best:
        print(f"100k / 10k ratio: {best[100_000] / best[10_000]:.1f}x (goal <= 12x)")
    if 10_000 in best:
        verdict = "meets" if best[10_000] <= 0.100 else "MISSES"
        print(f"10k steps: {best[10_000] * 1000:.1f} ms ({verdict} the 100 ms goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
