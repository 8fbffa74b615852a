"""``tooldag eval``: measure an endpoint's planning on a goal set (the shipped one by default).

Exit codes: 0 the evaluation ran (whatever it found), 2 a bad goal file, result file or LLM
configuration, 130 cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ...errors import ConfigError
from ...evaluation.goals import BUILTIN_SET, Goal, load_goals
from ...evaluation.importers import FORMATS
from ...evaluation.outcome import EvalResult, GoalOutcome
from ...evaluation.report import changed_goals, compare_table, print_report
from ...evaluation.runner import EvalOptions, aevaluate
from ..views import print_line
from .common import (
    EXIT_OK,
    add_llm_options,
    at_least,
    console,
    err_console,
    examples,
    llm_from_args,
    print_json,
)

if TYPE_CHECKING:
    from ...llm.client import LLMClient

__all__ = ["register"]

_MODES = ("auto", "json_schema", "json_object", "text")

_EXAMPLES = examples(
    ("tooldag eval", "the shipped goal set (45 goals), 4 at a time"),
    "tooldag eval --model gpt-4.1-mini --output a.json",
    ("tooldag eval my_goals.jsonl --concurrency 1 --timeout 600", "a slow local model"),
    ("tooldag eval nestful_data.jsonl --limit 50", "NESTFUL (or NesTools) rows: planned, not run"),
    ("tooldag eval --compare a.json b.json", "two results side by side"),
    "tooldag eval --base-url http://localhost:8080/v1 --mode json_object --concurrency 1",
    note='A goal file holds one JSON object a line: {"goal": ..., "tools": ["calc"], "answer": '
    '{"number": 42}, "plan": {...gold plan...}, "files": {"notes.txt": "..."}}. Each goal runs '
    "in a temporary workspace of its own; a plan that would send anything off the machine is "
    "refused (--allow-egress lets read-only network tools fetch; send_email never runs).",
)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="measure an LLM's planning on a goal set: valid plans, right answers, F1, tokens",
        description="Plan and run each goal of FILE (default: the goal set shipped with "
        "tooldag) with the configured LLM, and report valid plans on the first try and after "
        "re-asks, runs that succeeded, right answers, node and edge F1 against the gold plans "
        "(TaskBench's definitions), LLM calls and tokens per goal and latency p50/p95.",
        epilog=_EXAMPLES,
    )
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="a goal file: JSONL rows (tooldag, NesTools or NESTFUL); default: the shipped set",
    )
    p.add_argument(
        "--format",
        choices=["auto", *FORMATS],
        default="auto",
        help="the file's format (default: by the keys of its first row)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--output", "-o", metavar="PATH", help="also write the result as JSON to PATH")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="show two results (from --output) side by side instead of running anything",
    )
    p.add_argument(
        "--concurrency",
        type=at_least(1),
        default=4,
        metavar="N",
        help="goals at once (default 4; 1 for a local server that answers one at a time)",
    )
    p.add_argument("--limit", type=at_least(1), metavar="N", help="only the first N goals")
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="the most one goal may take, re-asks and replans included (default 300; 0: none)",
    )
    add_llm_options(p)
    p.add_argument(
        "--mode",
        choices=_MODES,
        help="how the plan's JSON is asked for (default: $TOOLDAG_OUTPUT_MODE, else auto)",
    )
    p.add_argument(
        "--max-reasks",
        type=at_least(0),
        default=2,
        metavar="N",
        help="re-asks after an invalid plan (default 2)",
    )
    p.add_argument(
        "--max-replans",
        type=at_least(0),
        default=2,
        metavar="N",
        help="new plans after a failed run (default 2)",
    )
    p.add_argument(
        "--allow-egress",
        action="store_true",
        help="let read-only network tools (http_get, wikipedia_*, get_weather) fetch; tools "
        "that act and send (send_email) are refused all the same",
    )
    p.set_defaults(handler=cmd_eval)


def _read_result(path: str) -> EvalResult:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no such result file: {path} (write one with tooldag eval -o)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    return EvalResult.from_json(data, path)


def _compare(args: argparse.Namespace) -> int:
    path_a, path_b = args.compare
    a, b = _read_result(path_a), _read_result(path_b)
    changed = changed_goals(a, b)
    if args.json:
        print_json(
            {
                "a": {"file": path_a, "meta": a.meta, "summary": a.summary.to_json()},
                "b": {"file": path_b, "meta": b.meta, "summary": b.summary.to_json()},
                "changed": [{"id": i, "a": x, "b": y} for i, x, y in changed],
            }
        )
        return EXIT_OK
    console.print(compare_table(a, b, (path_a, path_b)))
    for goal_id, was, now in changed:
        mark = Text("fixed", style="green") if now and not was else Text("broken", style="red")
        console.print(Text.assemble("  ", mark, f"  {goal_id}"))
    if not changed:
        console.print(Text("no goal changed between the two", style="dim"))
    return EXIT_OK


async def _run(
    goals: list[Goal], llm: LLMClient, options: EvalOptions, meta: dict[str, Any], live: bool
) -> EvalResult:
    progress = Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}", style="dim"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("goals", total=len(goals), last="")

    def done(outcome: GoalOutcome) -> None:
        progress.update(task, advance=1, last=f"{outcome.id}: {outcome.status}")

    try:
        with progress if live else contextlib.nullcontext():
            return await aevaluate(goals, llm, options, on_goal=done, meta=meta)
    finally:
        await llm.aclose()


def cmd_eval(args: argparse.Namespace) -> int:
    if args.compare:
        if args.file:
            raise ConfigError("--compare reads two result files: give no goal FILE with it")
        return _compare(args)
    if args.timeout < 0:
        raise ConfigError("--timeout is seconds, 0 for none; it cannot be negative")
    goals = load_goals(args.file, format=args.format)
    if args.limit:
        goals = goals[: args.limit]
    llm = llm_from_args(args)
    options = EvalOptions(
        concurrency=args.concurrency,
        timeout=args.timeout or None,
        max_reasks=args.max_reasks,
        max_replans=args.max_replans,
        mode=args.mode,
        allow_egress=args.allow_egress,
    )
    source = args.file or BUILTIN_SET
    meta = {"set": source, "format": args.format}
    if not args.json:
        what = f"evaluating {len(goals)} goal(s) from {source} with {llm.model} at {llm.base_url}"
        print_line(err_console, Text(f"{what}, {options.concurrency} at once", style="dim"))
    live = not args.json and err_console.is_terminal
    result = asyncio.run(_run(goals, llm, options, meta, live))
    data = result.to_json()
    if args.output:
        try:
            Path(args.output).write_text(
                json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n",
                encoding="utf-8",
            )
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc.strerror}") from None
    if args.json:
        print_json(data)
    else:
        print_report(console, result)
        if args.output:
            console.print(Text(f"written to {args.output}", style="dim"))
    return EXIT_OK
