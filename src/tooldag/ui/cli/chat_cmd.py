"""``tooldag chat``, ``run``, ``plan`` and ``demo``: the commands that talk to an LLM.

``chat`` is the REPL (:mod:`tooldag.ui.repl`); ``run`` does one goal the same way and exits;
``plan`` only plans; ``demo`` replays scripted LLM answers so that tooldag can be tried with no API
key.

Exit codes: 0 success, 1 the run failed or was refused (or no valid plan came back), 2 usage or
configuration error (no LLM configured), 130 cancelled.

``--policy ask|strict|off`` is the data-flow policy (:mod:`tooldag.execution.policy`): by
default a plan through which private data can leave the machine (``read_file(path=".env") ->
http_get.url``) runs only with approval of the steps concerned, asked just before each runs;
``tooldag run`` without a terminal (and without ``--yes``) refuses such a plan before anything
of it runs, naming the flow.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from ...errors import LLMError, PlanError
from ...execution.policy import Policy
from ..approval import ApprovalMode
from ..views import plan_view, usage_text
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    add_dask_option,
    add_llm_options,
    add_store_options,
    add_tools_option,
    at_least,
    console,
    err_console,
    examples,
    exit_code,
    fail,
    llm_from_args,
    open_store,
    print_json,
    registry_from_args,
    step_runner,
)

if TYPE_CHECKING:
    from ...llm.client import LLMClient
    from ..repl import Chat

__all__ = ["register"]

_CHAT_EXAMPLES = examples(
    ("tooldag chat", "the built-in tools, approval before side effects"),
    ("tooldag chat --tools my_tools.py --tools calc", "your own tools plus the calc pack"),
    ("tooldag chat --approve plan", "confirm every plan before it runs"),
    ("tooldag chat --policy strict", "never run a plan that can send private data out"),
    (
        "TOOLDAG_EGRESS_ALLOW=api.example.org,@corp.com tooldag chat",
        "destinations trusted with data",
    ),
    ("OPENAI_BASE_URL=http://localhost:11434/v1 TOOLDAG_MODEL=llama3.1 tooldag chat", "Ollama"),
    note="In the REPL: type a goal and press Enter; /help lists the commands (/plan, /run, "
    "/edit, /runs, /show, /resume, /rerun, /graph, /model, /usage, /clear, /quit); Alt-Enter "
    "adds a line; Ctrl-C cancels a run (what ran is compensated); Ctrl-D exits.",
)

_RUN_EXAMPLES = examples(
    'tooldag run "What is 17% of 2,340?"',
    ('tooldag run "Write today\'s date to today.txt" --yes', "no approval questions"),
    ('tooldag run "Post notes.txt to our wiki" --policy strict', "refuse plans that send data out"),
    (
        'tooldag run "How many rows does sales.db have?" --tools data --json | jq .answer',
        "the result as JSON",
    ),
)

_PLAN_EXAMPLES = examples(
    'tooldag plan "Weather in Oslo and what to wear"',
    (
        'tooldag plan "Summarise notes.txt" --json > plan.json && tooldag exec plan.json',
        "plan now, run later",
    ),
)

_DEMO_EXAMPLES = examples(
    ("tooldag demo", "replay the scripted goals, then type your own"),
    ("tooldag demo --auto", "replay and exit (no typing)"),
    ("tooldag demo --interactive", "skip the replay and type the goals yourself"),
)


def _llm_options(parser: argparse.ArgumentParser) -> None:
    add_tools_option(parser)
    add_llm_options(parser)


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--approve",
        choices=[m.value for m in ApprovalMode],
        default=ApprovalMode.SIDE_EFFECTS.value,
        help="what needs your confirmation: every plan, each side-effecting step (default), "
        "or nothing",
    )
    parser.add_argument(
        "--yes", "-y", action="store_true", help="ask nothing (the same as --approve never)"
    )
    parser.add_argument(
        "--policy",
        choices=[p.value for p in Policy],
        default=Policy.ASK.value,
        help="plans through which private data can leave the machine: ask before those steps "
        "run (default), refuse them (strict: the LLM is told and may replan), or no check (off)",
    )
    add_store_options(parser)
    add_dask_option(parser)
    parser.add_argument(
        "--max-replans",
        type=at_least(0),
        default=2,
        metavar="N",
        help="new plans asked for after a failure (default 2)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="stream plans: read-only steps start while the LLM still writes the plan (side "
        "effects wait for the whole plan; not with --approve plan)",
    )
    parser.add_argument(
        "--join",
        choices=["always", "auto", "never"],
        default="auto",
        help="after a run, the LLM reads the results and writes the answer or asks for "
        "another plan: always, auto (when the plan has no answer template; default) or never",
    )


def _command(
    subparsers: Any, name: str, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=examples,
    )
    return parser


def register(subparsers: Any) -> None:
    p = _command(
        subparsers,
        "demo",
        "see tooldag at work in 30 seconds: scripted LLM answers, no API key needed",
        "A replay: a fake LLM server on 127.0.0.1 answers with scripted plans for a few goals, "
        "while the REPL, validation, approvals, execution and tools (calc, files, time, sqlite, "
        "on a temporary workspace) are real. No API key, no network.",
        _DEMO_EXAMPLES,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--auto", action="store_true", help="replay the goals and exit (default off a terminal)"
    )
    mode.add_argument(
        "--interactive", action="store_true", help="skip the replay: type the goals yourself"
    )
    p.set_defaults(handler=cmd_demo)

    p = _command(
        subparsers,
        "chat",
        "the interactive REPL: goals in, plans shown, approval, live progress, answers",
        "Chat with tooldag: each goal is planned by the LLM, shown, approved, run with live "
        "progress and answered. Follow-up goals can use earlier results.",
        _CHAT_EXAMPLES,
    )
    _llm_options(p)
    _run_options(p)
    p.set_defaults(handler=cmd_chat)

    p = _command(
        subparsers,
        "run",
        "plan and run one goal with live progress, then exit",
        "Plan GOAL with the LLM, show the plan, ask before side effects, run it (replanning on "
        "failure) and print the answer. Exit 0 succeeded, 1 failed or refused, 2 no LLM "
        "configured, 130 cancelled (Ctrl-C cancels and compensates).",
        _RUN_EXAMPLES,
    )
    p.add_argument("goal", nargs="+", metavar="GOAL", help="what to do (quote it, or not)")
    _llm_options(p)
    _run_options(p)
    p.add_argument("--json", action="store_true", help="print the run result as JSON on stdout")
    p.set_defaults(handler=cmd_run)

    p = _command(
        subparsers,
        "plan",
        "plan one goal and print the validated plan (nothing runs)",
        "Ask the LLM for a plan for GOAL, validated against the tools; nothing runs. Exit 0 "
        "with a valid plan, 1 when none came back, 2 no LLM configured.",
        _PLAN_EXAMPLES,
    )
    p.add_argument("goal", nargs="+", metavar="GOAL", help="what to plan")
    _llm_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON (for exec)")
    p.set_defaults(handler=cmd_plan)


def _llm(args: argparse.Namespace) -> LLMClient:
    """The LLM from the environment and the options (:func:`llm_from_args`)."""
    return llm_from_args(args)


def _approval(args: argparse.Namespace) -> ApprovalMode:
    return ApprovalMode.NEVER if args.yes else ApprovalMode(args.approve)


def cmd_chat(args: argparse.Namespace) -> int:
    llm = _llm(args)
    from ..repl import Chat  # prompt_toolkit only for the commands that prompt

    registry = registry_from_args(args)
    with open_store(args) as store, step_runner(args) as runner:
        chat = Chat(
            console,
            registry,
            llm,
            store=store,
            approve=_approval(args),
            policy=args.policy,
            max_replans=args.max_replans,
            debug=args.debug,
            runner=runner,
            stream=args.stream,
            join=args.join,
        )
        asyncio.run(chat.repl())
    return EXIT_OK


async def _run_goal(chat: Chat, goal: str) -> Any:
    with chat.interrupts():
        try:
            return await chat.run_goal(goal)
        finally:
            await chat.close()


def cmd_run(args: argparse.Namespace) -> int:
    try:
        llm = _llm(args)
    except LLMError as exc:  # not configured: still one JSON object with --json
        if not args.json:
            raise
        return _json_failure(exc, args)
    from prompt_toolkit.output import create_output

    from ..repl import Chat

    registry = registry_from_args(args)
    goal = " ".join(args.goal)
    # Plans, questions and progress go to stderr; the result to stdout (JSON with --json).
    out = Console(file=io.StringIO()) if args.json else console
    with open_store(args) as store, step_runner(args) as runner:
        chat = Chat(
            err_console,
            registry,
            llm,
            store=store,
            approve=_approval(args),
            policy=args.policy,
            # Off a terminal no one can answer: what needs a question is refused before it runs.
            interactive=sys.stdin.isatty(),
            max_replans=args.max_replans,
            out=out,
            # Questions go where the plan is shown, not into a redirected stdout.
            output=create_output(stdout=sys.stderr),
            debug=args.debug,
            runner=runner,
            stream=args.stream,
            join=args.join,
        )
        chat.ctrl_c.second_aborts = True  # one goal, as exec: a second Ctrl-C aborts
        try:
            result = asyncio.run(_run_goal(chat, goal))
        except LLMError as exc:
            if not args.json:
                raise
            return _json_failure(exc, args)
    if result is None:
        if args.json and chat.last_rejection is not None:
            print_json(_rejected(chat.last_rejection))
        return EXIT_FAILED
    if args.json:
        print_json(result.to_json())
    return exit_code(result.status)


def _rejected(exc: PlanError) -> dict[str, Any]:
    return {"status": "rejected", "error": str(exc), "issues": [i.to_dict() for i in exc.issues]}


def _json_failure(exc: LLMError, args: argparse.Namespace) -> int:
    """With --json, stdout still holds one JSON object when the LLM fails (scripts read it);
    the error line goes to stderr as always."""
    code = fail(exc, debug=args.debug)
    print_json({"status": "failed", "error": str(exc), "issues": []})
    return code


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        llm = _llm(args)
    except LLMError as exc:
        if not args.json:
            raise
        return _json_failure(exc, args)
    registry = registry_from_args(args)
    goal = " ".join(args.goal)
    from ...planning.planner import Planner

    planner = Planner(registry, llm)

    async def plan() -> Any:
        try:
            return await planner.plan(goal)
        finally:
            await llm.aclose()

    try:
        with err_console.status(f"planning with {llm.model}...", spinner="dots"):
            result = asyncio.run(plan())
    except PlanError as exc:
        if args.json:
            print_json(_rejected(exc))
            return EXIT_FAILED
        raise
    except LLMError as exc:
        if args.json:
            return _json_failure(exc, args)
        raise
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    console.print(plan_view(result, registry))
    tokens = usage_text(planner.usage)
    note = "valid" + (f" · {tokens}" if tokens else "")
    console.print(Text(note + " · `tooldag plan --json GOAL > plan.json` saves it", style="dim"))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    auto = args.auto or (not terminal and not args.interactive)
    return run_demo(console, auto=auto, play=not args.interactive)
