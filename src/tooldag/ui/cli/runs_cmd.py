"""``tooldag runs``: the stored runs: list them, show one, resume, run again, cancel, or draw it
as Mermaid.

``resume`` continues a run that did not finish (failed, paused, interrupted) under its id;
a run that is done (succeeded, cancelled, rejected, over budget) is not resumed, and the error
says so and offers ``rerun``: a new run, under a new id, of the run's latest plan.

Every action takes ``--store PATH|URL`` (a SQLite file or a ``postgresql://`` URL; default:
``$TOOLDAG_STORE``, else ``$TOOLDAG_HOME/runs.sqlite3``, else the user's data directory). A run
whose row says ``running`` but whose owner is gone (its process, on this machine; its lease, in
PostgreSQL) lists as ``interrupted``.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from rich.markup import escape
from rich.text import Text

from ..._terminal import printable
from ...durable.runner import DurableExecutor
from ...durable.store import RunInfo, RunStore
from ...errors import RunStateError
from ...events import Event, EventType
from ...observe.mermaid import to_mermaid
from ...observe.monitor import Monitor, status_style
from ...result import RunResult, RunStatus, StepStatus
from ..interrupts import cancellable
from ..views import runs_table, status_text, stored_run_view
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_dask_option,
    add_run_options,
    add_tools_option,
    at_least,
    console,
    err_console,
    examples,
    print_json,
    registry_from_args,
    resume_command,
    step_runner,
)
from .exec_cmd import check_plan, run_journalled
from .running import run_and_report

__all__ = ["register"]

_STATUSES = [s.value for s in RunStatus]


def register(subparsers: Any) -> None:
    store_help = (
        "the run store: a SQLite file or a postgresql:// URL (default: $TOOLDAG_STORE, "
        "else $TOOLDAG_HOME/runs.sqlite3, else the user data dir)"
    )
    # --store is taken before the action and after it: SUPPRESS keeps an action that was not
    # given one from overwriting the one given before it with its default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="PATH|URL", default=argparse.SUPPRESS, help=store_help)
    runs = subparsers.add_parser(
        "runs",
        help="list, inspect, resume, rerun and cancel stored runs",
        description="The runs journalled in the run store (by exec, run and chat); with no "
        "action, the list.",
        epilog=examples(
            ("tooldag runs", "the runs, newest first (as `tooldag runs list`)"),
            ("tooldag runs list", "the runs, newest first"),
            ("tooldag runs show ID", "one run: plan, steps, timeline, errors"),
            ("tooldag runs resume ID", "continue a run that did not finish"),
            ("tooldag runs rerun ID", "run a run's plan again, as a new run"),
        ),
    )
    actions = runs.add_subparsers(dest="runs_action", metavar="ACTION", title="actions")
    runs.add_argument("--store", metavar="PATH|URL", help=store_help)
    runs.set_defaults(handler=_list, status=None, limit=None, json=False)

    def action(name: str, help: str, *commands: str) -> argparse.ArgumentParser:
        return actions.add_parser(  # type: ignore[no-any-return]
            name,
            parents=[common],
            help=help,
            epilog=examples(*(f"tooldag runs {e}" for e in commands)),
        )

    def run_id(parser: argparse.ArgumentParser, what: str) -> None:
        parser.add_argument("run_id", metavar="ID", help=f"{what} (`tooldag runs list` shows them)")

    p = action("list", "stored runs, newest first", "list", "list --status failed --json")
    p.add_argument("--status", choices=_STATUSES, help="only runs with this status")
    p.add_argument("--limit", type=at_least(1), metavar="N", help="at most N runs (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=_list)

    p = action(
        "show", "a run: plan, steps, timeline, errors", "show 3f2a9c1b7d4e", "show ID --json"
    )
    run_id(p, "the run to show")
    p.add_argument("--json", action="store_true", help="print one JSON object, events included")
    p.set_defaults(handler=_show)

    p = action(
        "resume",
        "continue a failed, paused or interrupted run (its completed steps are reused)",
        "resume 3f2a9c1b7d4e --tools my_tools.py",
    )
    run_id(p, "the run to continue")
    add_tools_option(p)
    add_run_options(p)
    add_dask_option(p)
    p.set_defaults(handler=_resume)

    p = action(
        "rerun",
        "run a stored run's plan again, from the start, as a new run (new id)",
        "rerun 3f2a9c1b7d4e --tools my_tools.py",
        "rerun ID --json",
    )
    run_id(p, "the run whose latest plan to run again (any status)")
    add_tools_option(p)
    add_run_options(p)
    add_dask_option(p)
    p.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop the run at the first failed step (default: independent branches run on)",
    )
    p.set_defaults(handler=_rerun, ui=False)

    p = action(
        "cancel",
        "compensate a stopped run's steps and mark it cancelled",
        "cancel 3f2a9c1b7d4e --tools my_tools.py",
    )
    run_id(p, "the run to give up and undo")
    add_tools_option(p)
    p.set_defaults(handler=_cancel)

    p = action("graph", "the run's plan as Mermaid, by status", "graph 3f2a9c1b7d4e > run.mmd")
    run_id(p, "the run to draw")
    p.set_defaults(handler=_graph)


def _open(args: argparse.Namespace) -> RunStore:
    return RunStore(args.store)


def _find(store: RunStore, run_id: str) -> RunInfo | None:
    info = store.get_run(run_id)
    if info is None:
        err_console.print(
            printable(f"error: no run {run_id!r} in {store.path} (`tooldag runs list` shows them)"),
            markup=False,
        )
    return info


# --------------------------------------------------------------------------- list / show / graph


def _list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        infos = store.list_runs(status=args.status, limit=args.limit)
        if args.json:
            print_json([i.to_json() for i in infos])
            return EXIT_OK
        if not infos:
            console.print(f"no runs in {store.path}", markup=False)
            return EXIT_OK
    console.print(runs_table(infos))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        info = _find(store, args.run_id)
        if info is None:
            return EXIT_USAGE
        result = store.load_result(args.run_id)
        if args.json:
            out = result.to_json()
            out.update(
                goal=info.goal,
                created_at=info.created_at,
                updated_at=info.updated_at,
                events=store.events_json(args.run_id),
            )
            print_json(out)
            return EXIT_OK
        view = stored_run_view(store, info, resume=resume_command(info.id, args.store))
    console.print(view)
    return EXIT_OK


def _graph(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if _find(store, args.run_id) is None:
            return EXIT_USAGE
        result = store.load_result(args.run_id)
    if result.plan is None:
        err_console.print(f"error: run {args.run_id} has no stored plan", markup=False)
        return EXIT_FAILED
    statuses = {k: s.status for k, s in result.steps.items()}
    console.print(to_mermaid(result.plan, statuses), markup=False, highlight=False)
    return EXIT_OK


# --------------------------------------------------------------------------- resume / cancel


def _compensation(event: Event) -> None:
    """What ``runs cancel`` undid, step by step, on stderr."""
    step = escape(printable(event.step_id or ""))
    if event.type is EventType.STEP_COMPENSATED:
        style = status_style(StepStatus.COMPENSATED)
        err_console.print(f"  [{style}]⟲[/] {step} compensated")
    elif event.type is EventType.STEP_COMPENSATION_FAILED:
        err_console.print(f"  [{status_style(StepStatus.FAILED)}]⟲ {step} compensation failed[/]")


def _resume(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    with _open(args) as store:
        info = _find(store, args.run_id)
        if info is None:
            return EXIT_USAGE
        if info.status.finished and not info.status.resumable:
            rerun = resume_command(info.id, args.store, "rerun")
            raise RunStateError(
                f"run {info.id} {info.status}: there is nothing to resume; `{rerun}` runs its "
                "plan again as a new run",
                run_id=info.id,
            )
        with step_runner(args) as steps:
            runner = DurableExecutor(
                registry, store=store, max_concurrency=args.max_concurrency, runner=steps
            )
            try:
                work = functools.partial(_run_resume, runner, args.run_id)
                monitor = Monitor(runner.executor.bus)
                return run_and_report(monitor, work, as_json=args.json, store=args.store)
            finally:
                runner.close()


def _rerun(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    with _open(args) as store:
        if _find(store, args.run_id) is None:
            return EXIT_USAGE
        plans = store.plans(args.run_id)
        if not plans:
            raise RunStateError(
                f"run {args.run_id} has no stored plan, so there is nothing to run again",
                run_id=args.run_id,
            )
        name = f"run {args.run_id}'s plan"
        if not check_plan(name, plans[-1], registry, as_json=args.json):
            return EXIT_FAILED
        with step_runner(args) as steps:
            return run_journalled(args, registry, store, plans[-1], steps)


async def _run_resume(runner: DurableExecutor, run_id: str) -> RunResult:
    cancel = functools.partial(runner.acancel_workflow, run_id)
    return await cancellable(err_console, runner.aresume(run_id), cancel)


def _cancel(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    with _open(args) as store:
        if _find(store, args.run_id) is None:
            return EXIT_USAGE
        runner = DurableExecutor(registry, store=store)
        runner.executor.bus.subscribe(_compensation)
        try:
            result = runner.cancel_workflow(args.run_id)
        finally:
            runner.close()
    console.print(Text(f"run {result.run_id}: ").append_text(status_text(result.status)))
    if result.error:
        err_console.print(escape(printable(f"warning: {result.error}")))
    return EXIT_OK
