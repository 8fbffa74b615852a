"""``tooldag exec``: run hand-written plans, with live progress, and print what happened.

The run is journalled in the run store (``--store PATH|URL``; default ``$TOOLDAG_STORE``, else
``$TOOLDAG_HOME/runs.sqlite3``, else the user's data directory) under a fresh id, named in the
title of the live view and of the result; a run that does not finish (failed, paused) ends with
``run ID failed: tooldag runs resume ID continues it``, and one whose process died is listed as
``interrupted`` by ``tooldag runs list``. A
journalled run that fails is left as it is, not compensated, so that it can be resumed (``tooldag
runs cancel ID`` undoes it). ``--no-store`` runs without a journal, and then a failed run is
compensated at once. ``--dask WHERE`` sends the tool calls to a Dask cluster.

Several plan files are several runs at once: in this process, or with ``--workers N`` in a pool
of N worker processes that share the store (:class:`~tooldag.durable.pool.RunPool`), each run
owned by one worker at a time. At the end each run's id, answer and summary is printed;
the exit code is 0 when every run succeeded, 130 when one was cancelled, else 1.

Exit codes: 0 the run succeeded, 1 it failed (or the plan is invalid: its issues are printed),
2 the plan file cannot be read or parsed, 130 cancelled (Ctrl-C cancels the run: running steps are
cancelled and what succeeded is compensated; a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..._terminal import printable
from ...durable.runner import DurableExecutor
from ...durable.store import RunStore
from ...errors import ConfigError, PlanParseError
from ...execution.executor import Executor
from ...execution.runners import StepRunner
from ...issues import Issue, errors_of, warnings_of
from ...observe.monitor import Monitor
from ...plan.model import Plan
from ...registry.registry import ToolRegistry
from ...result import RunResult, RunStatus, new_run_id
from ...validate.validator import validate
from ..interrupts import cancellable
from ..views import print_line, print_result
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_dask_option,
    add_run_options,
    add_store_options,
    add_tools_option,
    at_least,
    console,
    err_console,
    examples,
    exit_code,
    print_issues,
    print_json,
    read_plan_file,
    registry_from_args,
    say_resumable,
    step_runner,
)
from .running import run_and_report

if TYPE_CHECKING:
    from ...web.server import ViewerServer

__all__ = ["check_plan", "register", "run_journalled"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "exec",
        help="run a plan file (parallel, with live progress) and print the answer",
        description="Validate and run a plan. Exit 0 succeeded, 1 failed or invalid plan, "
        "2 unreadable plan file, 130 cancelled (Ctrl-C cancels and compensates).",
        epilog=examples(
            "tooldag exec examples/weather_plan.json --tools examples/weather_tools.py",
            ("tooldag exec plan.json --json --max-concurrency 4", "the result as JSON"),
            (
                "tooldag plan 'sum the totals in sales.db' --json | tooldag exec -",
                "plan and run, the plan shown in between",
            ),
            ("tooldag exec crunch.json --tools crunch.py --dask local:2", "on a Dask cluster"),
            (
                "tooldag exec a.json b.json c.json --workers 2 --store postgresql://host/runs",
                "three runs in two worker processes",
            ),
            note="A run that does not finish ends with how to resume it (tooldag runs resume "
            "ID); one that succeeded says nothing more than its result.",
        ),
    )
    parser.add_argument(
        "plans",
        nargs="+",
        metavar="PLAN.json",
        help="the plan file ('-' reads stdin); several are several runs at once",
    )
    add_tools_option(parser)
    add_run_options(parser)
    add_dask_option(parser)
    parser.add_argument(
        "--workers",
        type=at_least(1),
        metavar="N",
        help="run the plans in a pool of N worker processes sharing the store, each run owned "
        "by one worker at a time (default: all in this process)",
    )
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
    add_store_options(
        parser, "do not journal the run (it cannot be resumed; a failed run is compensated at once)"
    )
    parser.set_defaults(handler=cmd_exec)


def _print_issues(path: str, issues: list[Issue], what: str) -> None:
    print_line(err_console, Text(f"{printable(path)}: {what}"))
    print_issues(err_console, issues)


async def _run_plain(executor: Executor, plan: Plan) -> RunResult:
    handle = executor.start(plan)
    return await cancellable(err_console, handle.wait(), handle.cancel)


async def _run_durable(runner: DurableExecutor, run_id: str, plan: Plan) -> RunResult:
    cancel = functools.partial(runner.acancel_workflow, run_id)
    return await cancellable(err_console, runner.astart(run_id, plan), cancel)


def _read(path: str, as_json: bool, notes: list[Issue]) -> Plan | None:
    try:
        return read_plan_file(path, notes)
    except PlanParseError as exc:
        if as_json:
            print_json({"status": "rejected", "issues": [i.to_dict() for i in exc.issues]})
        else:
            _print_issues(path, list(exc.issues), "not a readable plan")
        return None


def check_plan(
    name: str,
    plan: Plan,
    registry: ToolRegistry,
    *,
    as_json: bool,
    notes: list[Issue] | None = None,
    what: str = "the plan was not run",
) -> bool:
    """Whether ``plan`` may run: its errors printed (one JSON object with ``as_json``) when it
    may not, its warnings (and ``notes``, from reading it) when it may."""
    found = [*(notes or []), *validate(plan, registry)]
    issues = errors_of(found)  # warnings do not stop a plan: they are shown, and it runs
    if issues:
        if as_json:
            print_json({"status": "rejected", "issues": [i.to_dict() for i in issues]})
        else:
            _print_issues(name, issues, f"{len(issues)} issue(s); {what}")
        return False
    if not as_json:
        print_issues(err_console, warnings_of(found))
    return True


def cmd_exec(args: argparse.Namespace) -> int:
    if args.workers and args.no_store:
        raise ConfigError("--workers shares the runs through the store: drop --no-store")
    if args.ui and args.no_store:
        raise ConfigError("--ui shows the run from the run store: leave out --no-store")
    if args.ui and (args.workers or len(args.plans) > 1):
        raise ConfigError("--ui shows one run: give one plan file (`tooldag ui` shows them all)")
    plans: list[Plan] = []
    notes: list[list[Issue]] = []
    for path in args.plans:
        notes.append([])
        plan = _read(path, args.json, notes[-1])
        if plan is None:
            return EXIT_USAGE
        plans.append(plan)
    registry = registry_from_args(args)
    for path, plan, noted in zip(args.plans, plans, notes, strict=True):
        what = "the plan was not run" if len(plans) == 1 else "no plan was run"
        if not check_plan(path, plan, registry, as_json=args.json, notes=noted, what=what):
            return EXIT_FAILED
    if args.workers:
        return _execute_pool(args, plans)
    with step_runner(args) as runner:
        if len(plans) > 1:
            return _execute_many(args, registry, plans, runner)
        if args.no_store:
            executor = Executor(
                registry,
                max_concurrency=args.max_concurrency,
                fail_fast=args.fail_fast,
                runner=runner,
            )
            monitor = Monitor(executor.bus)
            work = functools.partial(_run_plain, executor, plans[0])
            return run_and_report(monitor, work, as_json=args.json)
        with RunStore(args.store) as store:
            return run_journalled(args, registry, store, plans[0], runner)


def run_journalled(
    args: argparse.Namespace,
    registry: ToolRegistry,
    store: RunStore,
    plan: Plan,
    runner: StepRunner[Any] | None,
) -> int:
    """``plan`` run under a new id in ``store`` with live progress, reported; the exit code.
    Nothing is said before the run: the live view and the result name it, and a run that did
    not finish ends with how to resume it (``args``: ``max_concurrency``, ``fail_fast``,
    ``json``, ``store``, ``ui``)."""
    durable = DurableExecutor(
        registry,
        store=store,
        max_concurrency=args.max_concurrency,
        fail_fast=args.fail_fast,
        runner=runner,
    )
    try:
        run_id = new_run_id()
        monitor = Monitor(durable.executor.bus)
        work = functools.partial(_run_durable, durable, run_id, plan)
        viewer, opened = _viewer(store, registry, durable, run_id) if args.ui else (None, False)
        try:
            return run_and_report(monitor, work, as_json=args.json, store=args.store)
        finally:
            if viewer is not None:
                if opened:  # the page is left showing the run's end, not a viewer gone early
                    viewer.wait_shown(run_id, timeout=5.0)
                viewer.stop()
    finally:
        durable.close()


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


# --------------------------------------------------------------------------- several plans


def _report(args: argparse.Namespace, results: list[RunResult]) -> int:
    if args.json:
        print_json([r.to_json() for r in results])
    else:
        for path, result in zip(args.plans, results, strict=True):
            console.print(f"{path} · run {result.run_id}", style="bold", markup=False)
            print_result(console, result, table=False)
        if not args.no_store:
            for result in results:
                say_resumable(result, args.store)
    statuses = {r.status for r in results}
    if statuses == {RunStatus.SUCCEEDED}:
        return EXIT_OK
    if RunStatus.CANCELLED in statuses:
        return exit_code(RunStatus.CANCELLED)
    return EXIT_FAILED


def _execute_many(
    args: argparse.Namespace,
    registry: ToolRegistry,
    plans: list[Plan],
    runner: StepRunner[Any] | None,
) -> int:
    """Every plan a run of one executor in this process, all at once."""
    options = {"max_concurrency": args.max_concurrency, "fail_fast": args.fail_fast}
    if args.no_store:
        executor = Executor(registry, runner=runner, **options)

        async def plain() -> list[RunResult]:
            started = [executor.start(plan) for plan in plans]

            def cancel() -> None:
                for handle in started:
                    handle.cancel()

            waits = asyncio.gather(*(h.wait() for h in started))
            return list(await cancellable(err_console, waits, cancel))

        return _report(args, asyncio.run(plain()))
    with RunStore(args.store) as store:
        durable = DurableExecutor(registry, store=store, runner=runner, **options)
        try:
            ids = [new_run_id() for _ in plans]

            async def journalled() -> list[RunResult]:
                async def cancel() -> None:
                    for run_id in ids:
                        if durable._active(run_id) is not None:
                            await durable.acancel_workflow(run_id)

                runs = asyncio.gather(
                    *(durable.astart(run_id, plan) for run_id, plan in zip(ids, plans, strict=True))
                )
                return list(await cancellable(err_console, runs, cancel))

            return _report(args, asyncio.run(journalled()))
        finally:
            durable.close()


def _execute_pool(args: argparse.Namespace, plans: list[Plan]) -> int:
    """The plans queued in the store for a pool of worker processes."""
    from ...durable.pool import RunPool
    from ...durable.store import default_store_path

    store = args.store or os.environ.get("TOOLDAG_STORE") or str(default_store_path())
    options = {"max_concurrency": args.max_concurrency, "fail_fast": args.fail_fast}
    pool = RunPool(store, tools=args.tools, workers=args.workers, dask=args.dask, **options)
    try:
        ids = [pool.submit(plan) for plan in plans]

        async def wait() -> dict[str, RunResult]:
            return await cancellable(err_console, asyncio.to_thread(pool.wait, ids), pool.cancel)

        results = asyncio.run(wait())
        return _report(args, [results[run_id] for run_id in ids])
    finally:
        pool.close()
