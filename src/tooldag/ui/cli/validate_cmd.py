"""``tooldag validate``, ``tooldag tools`` and ``tooldag graph``: inspecting plans and tools.

``tooldag validate`` exits 0 when the plan has no errors (its warnings, marked ``!``, are printed
after the verdict), 1 when it has errors (``✗``), 2 when it cannot be read; ``--json`` gives every
issue with its ``severity``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.text import Text

from ..._terminal import printable
from ...errors import PlanParseError
from ...issues import Issue, errors_of, warnings_of
from ...observe.mermaid import to_mermaid
from ...validate.validator import validate
from ..views import print_line, tools_table
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_tools_option,
    console,
    err_console,
    examples,
    print_issues,
    print_json,
    read_plan_file,
    registry_from_args,
)

__all__ = ["register"]


def cmd_validate(args: argparse.Namespace) -> int:
    notes: list[Issue] = []
    try:
        plan = read_plan_file(args.plan, notes)
    except PlanParseError as exc:
        if args.json:
            print_json({"valid": False, "issues": [i.to_dict() for i in exc.issues]})
        else:
            print_line(console, Text(f"{printable(args.plan)}: not a readable plan"))
            print_issues(console, exc.issues)
        return EXIT_USAGE
    registry = registry_from_args(args)
    issues = [*notes, *validate(plan, registry)]
    errors, warnings = errors_of(issues), warnings_of(issues)
    if args.json:
        print_json({"valid": not errors, "issues": [i.to_dict() for i in [*errors, *warnings]]})
        return EXIT_FAILED if errors else EXIT_OK
    noted = f", {len(warnings)} warning(s)" if warnings else ""
    if not errors:
        console.print(
            f"[green]✓[/green] {escape(args.plan)}: valid plan, {len(plan.steps)} step(s) over "
            f"{len({s.tool for s in plan.steps})} tool(s){noted}",
            highlight=False,
        )
        print_issues(console, warnings)
        return EXIT_OK
    console.print(f"{args.plan}: {len(errors)} error(s){noted}", markup=False)
    print_issues(console, [*errors, *warnings])
    return EXIT_FAILED


def cmd_tools(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    if args.json:
        print_json([t.to_dict() for t in registry])
        return EXIT_OK
    if not len(registry):
        err_console.print("no tools loaded (pass --tools SPEC)", markup=False)
        return EXIT_OK
    console.print(tools_table(registry))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    try:
        plan = read_plan_file(args.plan)
    except PlanParseError as exc:
        err_console.print(f"error: {args.plan} is not a readable plan", markup=False)
        print_issues(err_console, exc.issues)
        return EXIT_USAGE
    print(to_mermaid(plan))
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check a plan file against the tools (exit 0 valid, 1 invalid, 2 unreadable)",
        description="Check that PLAN.json is an acyclic graph of known tools whose references "
        "resolve and whose arguments fit the tools' schemas. Errors (✗) make it invalid (exit "
        "1); warnings (!) say how a valid plan is read, e.g. a number passed as text (exit 0).",
        epilog=examples(
            "tooldag validate plan.json --tools my_tools.py",
            ("tooldag validate plan.json --tools tools.json --json", "schema-only tools; JSON"),
            note="A plan file that reads only once repaired (a trailing comma, True for true) "
            "is valid, with a repaired_json warning: other JSON readers would refuse it.",
        ),
    )
    p.add_argument("plan", metavar="PLAN.json", help="the plan file ('-' for stdin)")
    add_tools_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"valid": bool, "issues": [...]} instead of text; each issue has its '
        '"severity" (error or warning)',
    )
    p.set_defaults(handler=cmd_validate)

    p = subparsers.add_parser(
        "tools",
        help="list the tools with their schemas",
        description="List the tools the planner may use, with their arguments and outputs.",
        epilog=examples("tooldag tools", "tooldag tools --tools calc --json"),
    )
    add_tools_option(p)
    p.add_argument("--json", action="store_true", help="print the full schemas as JSON")
    p.set_defaults(handler=cmd_tools)

    p = subparsers.add_parser(
        "graph",
        help="print a plan as a Mermaid diagram",
        description="Print PLAN.json as a Mermaid flowchart (paste it into any Mermaid viewer).",
        epilog=examples("tooldag graph plan.json > plan.mmd"),
    )
    p.add_argument("plan", metavar="PLAN.json", help="the plan file ('-' for stdin)")
    p.set_defaults(handler=cmd_graph)
