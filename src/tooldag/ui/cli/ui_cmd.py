"""``tooldag ui``: the local web viewer over the run store (``pip install 'tooldag[ui]'``).

It listens on 127.0.0.1 only, on a free port unless ``--port`` says one, and prints its address,
which carries the token that every request needs (other local users and web pages cannot drive
it). Nothing opens unless ``--open`` asks. Runs going in other processes (``tooldag exec``,
``tooldag chat``) show live: the store is the source. Ctrl-C stops it.

``tooldag exec --ui`` and the REPL's ``/ui`` open the same page for the run at hand:
:func:`start_viewer` is what they share.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...durable.store import default_store_path
from ...errors import ConfigError
from ...registry.registry import ToolRegistry
from .common import (
    EXIT_OK,
    add_tools_option,
    console,
    err_console,
    examples,
    registry_from_args,
)

if TYPE_CHECKING:
    from ...durable.runner import DurableExecutor
    from ...web.server import ViewerServer

__all__ = ["open_page", "register", "start_viewer"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="the runs in your browser: live graphs, timelines, steps (local web viewer)",
        description="Serve the local web viewer over the run store, on 127.0.0.1. The address "
        "it prints carries the token every request needs. Ctrl-C stops it.",
        epilog=examples(
            ("tooldag ui", "a free port; open the printed address"),
            ("tooldag ui --open --port 8765", "a fixed port, opened in the browser"),
            ("tooldag ui --tools my_tools.py", "the tools the page's Resume and Cancel use"),
        ),
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="the run store file (default: $TOOLDAG_HOME/runs.sqlite3, else the user data dir)",
    )
    parser.add_argument(
        "--port", type=int, default=0, metavar="N", help="listen on port N (default: a free one)"
    )
    parser.add_argument("--open", action="store_true", help="open the runs list in the browser")
    add_tools_option(parser)
    parser.set_defaults(handler=cmd_ui)


def start_viewer(
    store_path: str,
    *,
    tools: Callable[[], ToolRegistry] | None,
    port: int = 0,
    runner: DurableExecutor | None = None,
    here: frozenset[str] = frozenset(),
) -> ViewerServer:
    """A viewer over ``store_path``, not yet serving; :class:`ConfigError` without the extra."""
    try:
        from ...web.server import ViewerServer
    except ImportError as exc:
        raise ConfigError(
            f"the web viewer needs its extra ({exc.name} is missing): pip install 'tooldag[ui]'"
        ) from None
    return ViewerServer(store_path, port=port, tools=tools, runner=runner, here=here)


def open_page(viewer: ViewerServer, run_id: str | None, say: Callable[[str], None]) -> bool:
    """Open the page of ``run_id`` (the runs list for ``None``) in the browser, and say where
    it is; false when there is no browser to open (the address is all there is)."""
    from ...web.server import open_browser

    url = viewer.url(run_id)
    say(f"viewer: {url}")
    if open_browser(url):
        return True
    say("no browser to open: open the address above")
    return False


def cmd_ui(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: a port is 0 to 65535 (0: a free one)")
    store_path = args.store or str(default_store_path())
    registry = registry_from_args(args)  # now, so that a wrong --tools is said at once
    viewer = start_viewer(store_path, tools=lambda: registry, port=args.port)
    url = viewer.url()
    console.print(f"tooldag ui: {url}", markup=False, highlight=False, soft_wrap=True)
    err_console.print(
        f"the runs of {store_path}; this address (with its token) is yours alone. Ctrl-C stops.",
        markup=False,
        soft_wrap=True,
    )
    console.file.flush()
    if args.open:
        from ...web.server import open_browser

        if not open_browser(url):
            err_console.print("no browser to open: open the address above", markup=False)
    viewer.serve()
    return EXIT_OK
