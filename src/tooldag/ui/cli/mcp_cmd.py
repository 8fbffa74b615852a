"""``tooldag mcp serve``: tooldag as an MCP server, for MCP hosts (desktop assistants, IDEs).

Over stdio by default (what a host starts from its config); ``--http PORT`` serves streamable HTTP
at ``http://127.0.0.1:PORT/mcp`` instead (loopback only). The served tools are
:mod:`tooldag.ui.mcp_server`'s. Side-effecting steps are refused unless ``--allow TOOL`` or
``--yes`` says otherwise: nobody is there to ask.

Over stdio, standard output belongs to the protocol: nothing else is printed there.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .common import (
    EXIT_OK,
    add_llm_options,
    add_tools_option,
    at_least,
    err_console,
    examples,
    llm_from_args,
    registry_from_args,
)

__all__ = ["register"]

_EXAMPLES = examples(
    ("tooldag mcp serve", "the built-in tools, over stdio"),
    ("tooldag mcp serve --tools calc --tools time --http 8765", "over HTTP on 127.0.0.1"),
    ("tooldag mcp serve --tools files --allow write_file", "let run/exec write files"),
    (
        'tooldag mcp serve --tools "mcp:stdio:python -m mcp_server_time"',
        "another server's tools",
    ),
    note="""An MCP host's config (Claude Desktop, Cursor, ...):

  {"mcpServers": {"tooldag": {"command": "tooldag",
                              "args": ["mcp", "serve", "--tools", "calc"],
                              "env": {"OPENAI_API_KEY": "sk-..."}}}}""",
)


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "mcp",
        help="serve tooldag to MCP hosts (tooldag mcp serve)",
        description="tooldag and the Model Context Protocol. MCP servers' tools are used with "
        "--tools mcp:stdio:COMMAND, --tools mcp:http://HOST:PORT/mcp or --tools "
        "mcp-config.json on every command; `tooldag mcp serve` serves tooldag itself.",
    )
    commands = group.add_subparsers(dest="mcp_command", metavar="COMMAND")
    p = commands.add_parser(
        "serve",
        help="serve plan, validate, run, exec and tools as an MCP server",
        description="Serve tooldag's plan, validate, run, exec and tools to an MCP client, over "
        "stdio (default) or streamable HTTP on 127.0.0.1. The LLM comes from the usual "
        "environment (OPENAI_API_KEY, OPENAI_BASE_URL, TOOLDAG_MODEL...). run and exec refuse "
        "steps whose tools have side effects unless --allow or --yes allows them.",
        epilog=_EXAMPLES,
    )
    add_tools_option(p)
    p.add_argument(
        "--http",
        type=at_least(1),
        metavar="PORT",
        help="serve streamable HTTP on http://127.0.0.1:PORT/mcp instead of stdio",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="TOOL",
        help="let run and exec call this side-effecting tool (repeatable)",
    )
    p.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="let run and exec call every side-effecting tool",
    )
    add_llm_options(p)
    p.add_argument(
        "--max-replans",
        type=at_least(0),
        default=2,
        metavar="N",
        help="replans a failed run may take (default 2)",
    )
    p.set_defaults(handler=cmd_serve)
    group.set_defaults(handler=lambda args: _help(group))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ..mcp_server import build_server

    registry = registry_from_args(args)
    unknown = sorted(set(args.allow) - set(registry.names()))
    if unknown:
        from ...errors import ConfigError

        raise ConfigError(f"--allow {unknown[0]}: no such tool (`tooldag tools` lists them)")

    server = build_server(
        registry,
        allow_side_effects=True if args.yes else args.allow,
        # Made on the first plan or run: validate and exec need no LLM configured.
        llm=lambda: llm_from_args(args),
        max_replans=args.max_replans,
    )

    async def serve() -> None:
        try:
            if args.http is None:
                await server.run_stdio_async()
            else:
                err_console.print(
                    f"tooldag MCP server on http://127.0.0.1:{args.http}/mcp "
                    f"({len(registry)} tools); Ctrl-C stops it",
                    markup=False,
                )
                await server.run_streamable_http_async(host="127.0.0.1", port=args.http)
        finally:
            await server.aclose()

    asyncio.run(serve())
    return EXIT_OK
