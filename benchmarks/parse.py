"""How fast are text that is not a plan rejected, big plans parsed and huge answers printed?

1. Rejection. 3 MB of text in shapes that make a bracket search slow (cut-off values everywhere,
   strings opened and never closed, brackets nested deep, fences by the thousand, Python
   constants, random characters) through ``parse_plan``, each raising ``PlanParseError`` (or, for
   the odd shape, finding some JSON). Goal (issue 14): each <= 1 s.
2. Numeric ids. A 100,000-step chain whose steps are numbered (``"id": 1``, ``"$1.v"``), so that
   every step is renamed and every reference rewritten, next to the same chain with string ids
   (the canonical fast path). Goal: <= 2 s.
3. A 50 MB answer printed the way ``tooldag exec`` prints a result as text (``print_result`` to
   a terminal-like console): goal <= 3 s.

Best of ``--runs`` runs each, with ``time.perf_counter``; the machine's load is printed with
them, since other processes change the absolute figures.

Run: ``.venv/bin/python benchmarks/parse.py [--runs N] [--mb 3]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import string
import time
from collections.abc import Callable

from rich.console import Console

from tooldag.errors import PlanParseError
from tooldag.plan.parse import parse_plan
from tooldag.result import RunResult, RunStatus
from tooldag.ui.views import print_result

__all__ = ["junk", "main", "numbered_chain"]


def junk(size: int) -> dict[str, str]:
    """Texts of about ``size`` characters that are no plan, by shape."""
    rng = random.Random(14)
    alphabet = string.ascii_letters + string.digits + " \n{}[]\"',:"
    return {
        "random characters": "".join(rng.choice(alphabet) for _ in range(size)),
        "open braces": "{" * size,
        "brace, letter": "{a" * (size // 2),
        "cut-off strings": '{"a": "x' * (size // 8),
        "brace, single quote": "{'" * (size // 2),
        "slowly deeper": "{{}" * (size // 3),
        "never back to zero": "{" + "{}" * (size // 2),
        "nested lists": "[{" * (size // 2),
        "deep and closed": "[" * (size // 2) + "]" * (size // 2),
        "lists in prose": "x[1, " * (size // 5),
        "fences": "```json\n{" * (size // 9),
        "Python constants": "[True,]" * (size // 7),
        "prose": "lorem ipsum dolor sit amet " * (size // 27),
    }


def numbered_chain(n: int, *, numeric: bool) -> str:
    """A chain of ``n`` steps, each reading the one before, as JSON text."""

    def sid(i: int) -> int | str:
        return i if numeric else f"s{i}"

    steps = [
        {
            "id": sid(i),
            "tool": "noop",
            "args": {"x": f"${sid(i - 1)}.v"} if i > 1 else {},
            "depends_on": [sid(i - 1)] if i > 1 else [],
        }
        for i in range(1, n + 1)
    ]
    return json.dumps({"goal": "chain", "steps": steps, "answer": f"${{{sid(n)}.v}}"})


def best(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _reject(text: str) -> str:
    try:
        parse_plan(text)
    except PlanParseError as exc:
        return exc.issues[0].code
    return "parsed"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=float, default=3.0, help="size of the junk texts")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    print(f"\n1. rejecting {args.mb:g} MB of text that is no plan (goal <= 1 s each)")
    worst = 0.0
    for name, text in junk(int(args.mb * 1_000_000)).items():
        seconds = best(args.runs, lambda text=text: _reject(text))  # type: ignore[misc]
        worst = max(worst, seconds)
        print(f"   {name:22s} {seconds:7.3f} s  ({_reject(text)})")
    print(f"   worst {worst:.3f} s")

    print("\n2. a 100,000-step chain (goal <= 2 s)")
    for numeric in (True, False):
        text = numbered_chain(100_000, numeric=numeric)
        seconds = best(args.runs, lambda text=text: parse_plan(text))  # type: ignore[misc]
        label = "numeric ids" if numeric else "string ids"
        print(f"   {label:22s} {seconds:7.3f} s  ({len(text) / 1e6:.1f} MB)")

    print("\n3. printing a 50 MB answer as text (goal <= 3 s)")
    answer = "lorem ipsum dolor sit amet\n" * (50_000_000 // 27)
    result = RunResult(run_id="r", status=RunStatus.SUCCEEDED, answer=answer)
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True)
    seconds = best(args.runs, lambda: print_result(console, result))
    print(
        f"   print_result           {seconds:7.3f} s  ({len(out.getvalue()) // args.runs:,} "
        "characters printed per run)"
    )


if __name__ == "__main__":
    main()
