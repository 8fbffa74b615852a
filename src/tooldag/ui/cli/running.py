"""What every command that runs a plan does around it (``exec``, ``runs resume``): the live step
table on stderr while it runs (on a terminal, without ``--json``), then the result on stdout (the
step table, what went wrong, the answer and a summary line, or the run's JSON) and the exit code
of how the run ended. The work wires Ctrl-C itself (:func:`~tooldag.ui.interrupts.cancellable`):
only it knows the run's handle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from rich.live import Live

from ...observe.monitor import Monitor
from ...result import RunResult
from ..views import print_result, progress_view
from .common import console, err_console, exit_code, print_json, say_resumable

__all__ = ["run_and_report"]


def run_and_report(
    monitor: Monitor,
    work: Callable[[], Coroutine[Any, Any, RunResult]],
    *,
    as_json: bool,
    store: str | Literal[False] | None = False,
) -> int:
    """Run ``work()`` in a new event loop, watched by ``monitor`` (attached to the run's bus),
    and report it; the exit code. A journalled run (``store``: the ``--store`` given, None for
    the default) that did not finish ends with how to resume it; a run that succeeded is
    reported by its result alone (the table's title names the run)."""
    live = not as_json and err_console.is_terminal
    with (
        Live(
            get_renderable=lambda: progress_view(monitor, width=err_console.width),
            console=err_console,
            refresh_per_second=8,
            transient=True,
        )
        if live
        else contextlib.nullcontext()
    ):
        result = asyncio.run(work())
    if as_json:
        print_json(result.to_json())
    else:
        print_result(console, result, monitor)
        if store is not False:
            say_resumable(result, store)
    return exit_code(result.status)
