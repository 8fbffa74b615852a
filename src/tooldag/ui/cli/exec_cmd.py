"""``tooldag exec``: run a hand-written plan, with live progress, and print what happened.

The run is journalled in the run store (``--store PATH``; default ``$TOOLDAG_HOME/runs.sqlite3``,
else the user's data directory) under a fresh id printed on stderr, so a process that dies mid-run
can be continued with ``tooldag runs resume ID``. A journalled run that fails is left as it is, not
compensated, so that it can be resumed (``tooldag runs cancel ID`` undoes it). ``--no-store`` runs
without a journal, and then a failed run is compensated at once.

Exit codes: 0 the run succeeded, 1 it failed (or the plan is invalid: its issues are printed),
2 the plan file cannot be read or parsed, 130 cancelled (Ctrl-C cancels the run: running steps are
cancelled and what succeeded is compensated; a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import argparse
import functools
from typing import TYPE_CHECKING

from rich.markup import escape

from ..._terminal import printable
from ...durable.runner import DurableExecutor
from ...durable.store import RunStore
from ...errors import ConfigError, PlanParseError
from ...execution.executor import Executor
from ...issues import errors_of, warnings_of
from ...observe.monitor import Monitor
from ...plan.model import Plan
from ...registry.registry import ToolRegistry
from ...result import RunResult, new_run_id
from ...validate.validator import validate
from ..interrupts import cancellable
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    add_run_options,
    add_tools_option,
    err_console,
    print_json,
    read_plan_file,
    registry_from_args,
    resume_command,
)
from .running import run_and_report

if TYPE_CHECKING:
    from ...web.server import ViewerServer

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "exec",
        help="run a plan file (parallel, with live progress) and print the answer",
        description="Validate and run a plan. Exit 0 succeeded, 1 failed or invalid plan, "
        "2 unreadable plan file, 130 cancelled (Ctrl-C cancels and compensates).",
        epilog="examples:\n"
        "  tooldag exec examples/weather_plan.json --tools examples/weather_tools.py\n"
        "  tooldag exec plan.json --json --max-concurrency 4\n"
        "  tooldag plan 'sum the totals in sales.db' --json | tooldag exec -",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("plan", metavar="PLAN.json", help="the plan file ('-' reads stdin)")
    add_tools_option(parser)
    add_run_options(parser)
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop the run at the first failed step (default: independent branches run on)",
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help="open the run's page in the web viewer, served by this process while the run goes "
        "(needs the run store and pip install 'tooldag[ui]')",
    )
    journal = parser.add_mutually_exclusive_group()
    journal.add_argument(
        "--store",
        metavar="PATH",
        help="journal the run in this store file (default: $TOOLDAG_HOME/runs.sqlite3, else the "
        "user data dir)",
    )
    journal.add_argument(
        "--no-store",
        action="store_true",
        help="do not journal the run (it cannot be resumed; a failed run is compensated at once)",
    )
    parser.set_defaults(handler=cmd_exec)


def _print_issues(path: str, issues: list[object], what: str) -> None:
    err_console.print(f"{escape(printable(path))}: {what}", highlight=False)
    for issue in issues:
        line = escape(printable(str(issue)))
        err_console.print(f"  [red]✗[/red] {line}", highlight=False, soft_wrap=True)


async def _run_plain(executor: Executor, plan: Plan) -> RunResult:
    handle = executor.start(plan)
    return await cancellable(err_console, handle.wait(), handle.cancel)


async def _run_durable(runner: DurableExecutor, run_id: str, plan: Plan) -> RunResult:
    cancel = functools.partial(runner.acancel_workflow, run_id)
    return await cancellable(err_console, runner.astart(run_id, plan), cancel)


def cmd_exec(args: argparse.Namespace) -> int:
    try:
        plan = read_plan_file(args.plan)
    except PlanParseError as exc:
        if args.json:
            print_json({"status": "rejected", "issues": [i.to_dict() for i in exc.issues]})
        else:
            _print_issues(args.plan, list(exc.issues), "not a readable plan")
        return EXIT_USAGE
    if args.ui and args.no_store:
        raise ConfigError("--ui shows the run from the run store: leave out --no-store")
    registry = registry_from_args(args)
    found = validate(plan, registry)
    issues = errors_of(found)  # warnings do not stop a plan: they are shown, and it runs
    if issues:
        if args.json:
            print_json({"status": "rejected", "issues": [i.to_dict() for i in issues]})
        else:
            _print_issues(args.plan, list(issues), f"{len(issues)} issue(s); the plan was not run")
        return EXIT_FAILED
    for warning in [] if args.json else warnings_of(found):
        err_console.print(f"  [yellow]![/yellow] {escape(str(warning))}", soft_wrap=True)
    if args.no_store:
        executor = Executor(
            registry, max_concurrency=args.max_concurrency, fail_fast=args.fail_fast
        )
        monitor = Monitor(executor.bus)
        return run_and_report(monitor, lambda: _run_plain(executor, plan), as_json=args.json)
    with RunStore(args.store) as store:
        return _execute_durable(args, registry, store, plan)


def _execute_durable(
    args: argparse.Namespace, registry: ToolRegistry, store: RunStore, plan: Plan
) -> int:
    runner = DurableExecutor(
        registry, store=store, max_concurrency=args.max_concurrency, fail_fast=args.fail_fast
    )
    try:
        run_id = new_run_id()
        err_console.print(
            f"run {run_id}  (resume with: {resume_command(run_id, args.store)})",
            markup=False,
            soft_wrap=True,
        )
        monitor = Monitor(runner.executor.bus)
        work = functools.partial(_run_durable, runner, run_id, plan)
        viewer, opened = _viewer(store, registry, runner, run_id) if args.ui else (None, False)
        try:
            return run_and_report(monitor, work, as_json=args.json)
        finally:
            if viewer is not None:
                if opened:  # the page is left showing the run's end, not a viewer gone early
                    viewer.wait_shown(run_id, timeout=5.0)
                viewer.stop()
    finally:
        runner.close()


def _viewer(
    store: RunStore, registry: ToolRegistry, runner: DurableExecutor, run_id: str
) -> tuple[ViewerServer, bool]:
    """``--ui``: the viewer on a thread of this process and whether the run's page was opened
    in a browser; the page's Cancel reaches the run through ``runner``."""
    from .ui_cmd import open_page, start_viewer

    viewer = start_viewer(
        store.path, tools=lambda: registry, runner=runner, here=frozenset({run_id})
    ).start()
    say = functools.partial(err_console.print, markup=False, soft_wrap=True)
    return viewer, open_page(viewer, run_id, say)
