"""What every command shares: loading ``--tools`` specs, reading plan files, reporting errors."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from ...errors import ConfigError, PlanParseError, TooldagError
from ...execution.runners import StepRunner
from ...plan.model import Plan
from ...plan.parse import parse_plan
from ...registry.loading import load_registry
from ...registry.registry import ToolRegistry
from ...result import RunStatus

__all__ = [
    "DEFAULT_MAX_PLAN_BYTES",
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_dask_option",
    "add_run_options",
    "add_tools_option",
    "at_least",
    "console",
    "err_console",
    "exit_code",
    "fail",
    "max_plan_bytes",
    "print_json",
    "read_plan_file",
    "registry_from_args",
    "resume_command",
    "step_runner",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def exit_code(status: RunStatus) -> int:
    """The exit code of a command that ran something, by how the run ended: 0 succeeded,
    130 cancelled, 1 anything else (failed, rejected, over budget, paused or interrupted)."""
    if status is RunStatus.SUCCEEDED:
        return EXIT_OK
    if status is RunStatus.CANCELLED:
        return EXIT_CANCELLED
    return EXIT_FAILED


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (``--max-concurrency``)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return whole_number


def resume_command(run_id: str, store: str | None) -> str:
    """The command that resumes ``run_id`` (with ``--store`` when the run is not in the
    default store; a database URL's password left out)."""
    if store is None:
        return f"tooldag runs resume {run_id}"
    from ...durable.store import is_database_url, redact_url

    shown = redact_url(store) if is_database_url(store) else store
    return f"tooldag runs resume {run_id} --store {shown}"


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--max-concurrency`` and ``--json``: what every command that runs a plan takes."""
    parser.add_argument(
        "--json", action="store_true", help="print the run result as one JSON object, no progress"
    )
    parser.add_argument(
        "--max-concurrency",
        type=at_least(1),
        default=16,
        metavar="N",
        help="at most N tool calls at once (default 16)",
    )


def add_dask_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dask",
        metavar="WHERE",
        default=None,
        help="run tool calls on a Dask cluster: tcp://HOST:PORT (a running scheduler) or "
        "local[:N] (N worker processes on this machine, default one per CPU); needs "
        "tooldag[dask]. Tools declared runner='local' stay in this process",
    )


@contextlib.contextmanager
def step_runner(args: argparse.Namespace) -> Iterator[StepRunner[Any] | None]:
    """The ``--dask`` runner (None without one), closed (its local cluster stopped) after."""
    spec = getattr(args, "dask", None)
    if not spec:
        yield None
        return
    from ...execution.dask_runner import DaskRunner

    runner = DaskRunner(spec)
    try:
        yield runner
    finally:
        runner.close()


def add_tools_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools",
        action="append",
        metavar="SPEC",
        default=None,
        help="a Python module (pkg.mod or path/to/file.py: its @tool functions are registered), a "
        "JSON file of schema-only tools, or a built-in pack name (calc, files, ...). Repeatable. "
        "Default: the built-in packs.",
    )


def registry_from_args(args: argparse.Namespace) -> ToolRegistry:
    return load_registry(args.tools)


# A plan is rarely over a few hundred KB; a cap keeps a wrong file (a log, a disk image, an
# endless pipe) from being read whole into memory.
DEFAULT_MAX_PLAN_BYTES = 16 * 1024 * 1024


def max_plan_bytes() -> int:
    """The plan-file size cap: ``TOOLDAG_MAX_PLAN_BYTES``, else 16 MiB."""
    raw = os.environ.get("TOOLDAG_MAX_PLAN_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_PLAN_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"TOOLDAG_MAX_PLAN_BYTES must be a whole number of bytes >= 1, not {raw!r}"
        )
    return value


def read_plan_file(path: str) -> Plan:
    """Read and leniently parse a plan file ('-' for stdin), at most :func:`max_plan_bytes`;
    ConfigError or PlanParseError."""
    limit = max_plan_bytes()
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)  # a StringIO (tests, embedding) has none
            data = stream.read(limit + 1) if stream else sys.stdin.read(limit + 1).encode()
        else:
            with Path(path).open("rb") as f:
                data = f.read(limit + 1)
        if len(data) > limit:
            raise ConfigError(
                f"{name} holds more than {limit:,} bytes, more than a plan needs: is it the "
                "right file? (TOOLDAG_MAX_PLAN_BYTES raises the limit)"
            )
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no such plan file: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a plan file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_plan(text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def fail(exc: BaseException, *, debug: bool = False) -> int:
    """Report an error as one line (or a traceback with --debug) and return the exit code."""
    if debug:
        traceback.print_exception(exc)
    elif isinstance(exc, TooldagError):
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
    else:
        err_console.print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            markup=False,
            soft_wrap=True,
        )
    if isinstance(exc, ConfigError | PlanParseError):
        return EXIT_USAGE
    return EXIT_USAGE if not isinstance(exc, TooldagError) else EXIT_FAILED
