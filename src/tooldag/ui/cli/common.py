"""What every command shares: loading ``--tools`` specs, the LLM options, reading plan files,
reporting errors."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from ..._terminal import printable
from ...errors import ConfigError, PlanParseError, TooldagError
from ...execution.runners import StepRunner
from ...issues import Issue
from ...plan.model import Plan
from ...plan.parse import parse_plan
from ...registry.loading import load_registry
from ...registry.registry import ToolRegistry
from ...result import RunResult, RunStatus
from ..views import print_line

if TYPE_CHECKING:
    from ...durable.store import RunStore
    from ...llm.client import LLMClient

__all__ = [
    "DEFAULT_MAX_PLAN_BYTES",
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "HelpFormatter",
    "Parser",
    "add_dask_option",
    "add_llm_options",
    "add_run_options",
    "add_store_options",
    "add_tools_option",
    "at_least",
    "console",
    "err_console",
    "examples",
    "exit_code",
    "fail",
    "llm_from_args",
    "max_plan_bytes",
    "open_store",
    "print_issues",
    "print_json",
    "read_plan_file",
    "registry_from_args",
    "resume_command",
    "say_resumable",
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


def resume_command(run_id: str, store: str | None, action: str = "resume") -> str:
    """The command that resumes ``run_id`` (or does another ``tooldag runs`` ``action`` to it:
    ``rerun``), with ``--store`` when the run is not in the default store (a database URL's
    password left out)."""
    if store is None:
        return f"tooldag runs {action} {run_id}"
    from ...durable.store import is_database_url, redact_url

    shown = redact_url(store) if is_database_url(store) else store
    return f"tooldag runs {action} {run_id} --store {shown}"


def say_resumable(result: RunResult, store: str | None) -> None:
    """After a journalled run that did not finish (failed, paused): how to continue it, on
    stderr. A run that succeeded, or was cancelled and undone, gets no word."""
    if result.status.resumable:
        resume = resume_command(result.run_id, store)
        print_line(err_console, Text(f"run {result.run_id} {result.status}: {resume} continues it"))


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


_STORE_HELP = (
    "journal the runs in this store: a SQLite file or a postgresql:// URL (default: "
    "$TOOLDAG_STORE, else $TOOLDAG_HOME/runs.sqlite3, else the user data dir)"
)


def add_store_options(
    parser: argparse.ArgumentParser,
    no_store: str = "do not journal the runs (they cannot be listed, shown or resumed)",
) -> None:
    """``--store PATH|URL`` or ``--no-store`` (``no_store``: what it means for this command)."""
    journal = parser.add_mutually_exclusive_group()
    journal.add_argument("--store", metavar="PATH|URL", help=_STORE_HELP)
    journal.add_argument("--no-store", action="store_true", help=no_store)


@contextlib.contextmanager
def open_store(args: argparse.Namespace) -> Iterator[RunStore | None]:
    """The run store :func:`add_store_options` chose (None with ``--no-store``), closed after."""
    if getattr(args, "no_store", False):
        yield None
        return
    from ...durable.store import RunStore

    with RunStore(args.store) as store:
        yield store


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


def _setting(name: str, flag: str) -> Callable[[str], Any]:
    """An argparse type from the LLM client's setting parser ``name`` (``timeout_setting``...):
    one message for both the option and its environment variable. The client module (and the
    openai SDK, half a second to import) is loaded only when the option is given."""
    from ...errors import LLMConfigError

    def convert(text: str) -> Any:
        from ...llm import client

        try:
            return getattr(client, name)(text, flag)
        except LLMConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """The LLM endpoint and its settings; each option wins over its environment variable."""
    group = parser.add_argument_group("LLM")
    group.add_argument(
        "--model", metavar="NAME", help="the model (default: $TOOLDAG_MODEL, else gpt-4o-mini)"
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="an OpenAI-compatible endpoint, e.g. http://localhost:8080/v1 "
        "(default: $OPENAI_BASE_URL)",
    )
    group.add_argument(
        "--llm-timeout",
        type=_setting("timeout_setting", "--llm-timeout"),
        metavar="SECONDS",
        help="the seconds one LLM call may take (default: $TOOLDAG_LLM_TIMEOUT, else 60, or "
        "300 for a loopback or private-network URL)",
    )
    group.add_argument(
        "--max-tokens",
        type=_setting("max_tokens_setting", "--max-tokens"),
        metavar="N",
        help="the most tokens one LLM reply may hold (default: $TOOLDAG_MAX_TOKENS, else the "
        "server's)",
    )
    group.add_argument(
        "--temperature",
        type=_setting("temperature_setting", "--temperature"),
        metavar="T",
        help="the sampling temperature, 0-2 (default: $TOOLDAG_TEMPERATURE, else the server's)",
    )


def llm_from_args(args: argparse.Namespace) -> LLMClient:
    """The LLM client from the environment and :func:`add_llm_options`' options; with none
    configured, the library's ``LLMConfigError`` says what to set (``main`` exits 2)."""
    # Imported here, not at the top: the openai SDK takes half a second to import, and the
    # commands that never call an LLM (validate, exec, runs, tools) should not pay for it.
    from ...llm.client import LLMClient

    return LLMClient.from_env(
        model=getattr(args, "model", None),
        base_url=getattr(args, "base_url", None),
        timeout=getattr(args, "llm_timeout", None),
        max_completion_tokens=getattr(args, "max_tokens", None),
        temperature=getattr(args, "temperature", None),
    )


def add_tools_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools",
        action="append",
        metavar="SPEC",
        default=None,
        help="a Python module (pkg.mod or path/to/file.py: its @tool functions are registered), a "
        "JSON file of schema-only tools, a built-in pack name (calc, files, ...), or an MCP "
        "server: mcp:stdio:COMMAND ARGS, mcp:http://HOST:PORT/mcp, or an MCP host config file "
        '({"mcpServers": ...}). Repeatable. Default: the built-in packs.',
    )


def registry_from_args(args: argparse.Namespace) -> ToolRegistry:
    return load_registry(args.tools, option="--tools")


# --------------------------------------------------------------------------- help


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The one way every ``--help`` is laid out: prose (descriptions, notes) filled to the
    terminal's width, paragraph by paragraph; a paragraph with an indented line (examples, a
    config snippet) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n[ \t]*\n", text.strip("\n"))
        return "\n\n".join(
            paragraph
            if any(line[:1].isspace() for line in paragraph.splitlines())
            else textwrap.fill(
                " ".join(paragraph.split()),
                width,
                initial_indent=indent,
                subsequent_indent=indent,
                break_on_hyphens=False,
            )
            for paragraph in paragraphs
        )


class Parser(argparse.ArgumentParser):
    """``tooldag``'s parser: every command's (``add_parser`` makes the sub-commands' parsers of
    the parent's class) is laid out by :class:`HelpFormatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def examples(*items: str | tuple[str, str], note: str = "") -> str:
    """An epilog: ``examples:``, then each example's explanation as a ``#`` line over its
    command (copied as it is, a shell ignores the comment), a blank line between them; a bare
    string is a command with nothing to explain. ``note``: a paragraph after them."""
    blocks = [
        f"  # {item[1]}\n  {item[0]}" if isinstance(item, tuple) else f"  {item}" for item in items
    ]
    explained = any(isinstance(item, tuple) for item in items)
    text = "examples:\n" + ("\n\n" if explained else "\n").join(blocks)
    return f"{text}\n\n{note}" if note else text


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


def read_plan_file(path: str, notes: list[Issue] | None = None) -> Plan:
    """Read and leniently parse a plan file ('-' for stdin), at most :func:`max_plan_bytes`;
    ConfigError or PlanParseError, its issues worded for the person who wrote the file.
    ``notes`` receives the warnings of a plan read only once repaired (``repaired_json``)."""
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
    return parse_plan(text, audience="person", notes=notes)


def print_issues(out: Console, issues: Iterable[Issue]) -> None:
    """Issues one a line, ``✗`` an error and ``!`` a warning, each hint on a line of its own
    under it: how ``validate``, ``exec`` and ``graph`` all show them."""
    for issue in issues:
        where = f"[{issue.step}] " if issue.step else ""
        path = f"  at {issue.path}" if issue.path else ""
        kind = "" if issue.is_error else " (warning)"
        mark = ("  ✗ ", "red") if issue.is_error else ("  ! ", "yellow")
        line = Text.assemble(mark, printable(f"{issue.code}{kind}: {where}{issue.message}{path}"))
        print_line(out, line)
        if issue.hint:
            print_line(out, Text(printable(f"      hint: {issue.hint}"), style="dim"))


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout. Non-ASCII text stays readable; control characters, C1 and
    DEL included, are written as ``\\u`` escapes (json escapes only C0 by itself), so that the
    output shown on a terminal carries no control sequence and still parses as the same data."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write(_JSON_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


# Inside a JSON document these can only stand in strings (outside, JSON allows no such
# character), where a \uXXXX escape means the same character.
_JSON_CONTROL = re.compile("[\x7f-\x9f]")


def fail(exc: BaseException, *, debug: bool = False) -> int:
    """Report an error as one line (or a traceback with --debug) and return the exit code."""
    if debug:
        traceback.print_exception(exc)
    elif isinstance(exc, TooldagError):
        # A message may carry a tool's or the LLM's text: no control sequence gets through.
        print_line(err_console, Text(printable(f"error: {exc}")))
    else:
        unexpected = f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the "
        print_line(err_console, Text(printable(unexpected + "traceback)")))
    if isinstance(exc, ConfigError | PlanParseError):
        return EXIT_USAGE
    return EXIT_USAGE if not isinstance(exc, TooldagError) else EXIT_FAILED
