"""The ``tooldag`` command line.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its
sub-commands; ``main`` wires them together and turns every ``TooldagError`` into one clear line on
stderr (``--debug`` shows the traceback instead).

Exit codes: 0 success, 1 the thing checked or run failed, 2 usage or input error, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from .common import EXIT_CANCELLED, EXIT_USAGE, Parser, examples, fail

__all__ = ["build_parser", "main"]

# Command modules, in the order their commands appear in --help: the order a newcomer needs
# them (demo, chat, run, plan; exec, runs; validate, tools, graph; then the rest).
_COMMAND_MODULES = [
    "tooldag.ui.cli.chat_cmd",
    "tooldag.ui.cli.exec_cmd",
    "tooldag.ui.cli.runs_cmd",
    "tooldag.ui.cli.validate_cmd",
    "tooldag.ui.cli.mcp_cmd",
    "tooldag.ui.cli.doctor_cmd",
    "tooldag.ui.cli.eval_cmd",
    "tooldag.ui.cli.ui_cmd",
]

_EPILOG = examples(
    ("tooldag demo", "see it work with no API key (scripted LLM answers)"),
    ("tooldag chat", "plan and run goals interactively"),
    ('tooldag run "What is 17% of 2,340?"', "plan and run one goal"),
    ('tooldag plan "..." --json > plan.json', "plan only; run the plan later with tooldag exec"),
    ("tooldag exec plan.json --tools my_tools.py", "run a plan file, journalled"),
    ("tooldag runs list", "the journalled runs (tooldag runs show|resume|rerun ID)"),
    ("tooldag validate plan.json --tools my_tools.py", "check a plan file against the tools"),
    ("tooldag tools", "the built-in tools and their schemas"),
    ('tooldag tools --tools "mcp:stdio:python -m mcp_server_time"', "an MCP server's tools"),
    ("tooldag mcp serve --tools calc", "serve tooldag to MCP hosts (stdio)"),
    ("tooldag doctor", "what the LLM endpoint supports (output modes, context window)"),
    ("tooldag eval --output a.json", "measure the LLM's planning on 45 goals"),
    ("tooldag ui", "the runs in your browser, live"),
    note="Each command has --help.",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tooldag",
        description="Turn a goal into a validated graph of tool calls and run it.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    parser.add_argument(
        "--otel",
        action="store_true",
        help="send OpenTelemetry traces of runs over OTLP, where the OTEL_EXPORTER_OTLP_* "
        "variables say (needs pip install 'tooldag[otel]')",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    debug = bool(args.debug)
    stop_tracing: Callable[[], None] | None = None
    try:
        if args.otel:
            stop_tracing = _trace()
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:
        return fail(exc, debug=debug)
    finally:
        if stop_tracing is not None:
            stop_tracing()
    return code


def _trace() -> Callable[[], None]:
    """``--otel``: every run of this command traced, exported over OTLP; returns what flushes
    the spans at exit."""
    from ...observe.otel import configure_otlp, instrument, uninstrument

    shutdown = configure_otlp()
    instrument()

    def stop() -> None:
        uninstrument()
        shutdown()

    return stop


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _version() -> str:
    # The installed distribution's version: the faces floor may not import the package's
    # __init__ (it re-exports every floor), and the two are the same number.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tooldag")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
