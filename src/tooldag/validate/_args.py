"""The argument checks: one step's argument values against its tool's schema.

Kept apart from the walker (:mod:`~tooldag.validate.validator`), which visits every argument and
resolves references: these functions judge one argument at a time and only report, to the
:class:`~tooldag.validate._report.Report` they are given: unknown or missing arguments, literals
that do not fit, references whose declared type cannot fit, ``${...}`` text given to a parameter
that does not take text, containers of the wrong type.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from ..registry.registry import Tool
from ..registry.schemas import (
    ValueCheck,
    describe_types,
    json_type_of,
    json_types,
    types_compatible,
    value_checker,
)
from ._report import Report, Types

__all__ = [
    "ToolView",
    "check_container_arg",
    "check_literal",
    "check_ref_arg",
    "check_template_arg",
    "has_dollar",
    "missing",
    "strings_in",
    "type_issue",
    "unexpected",
]


class ToolView:
    """What the validator needs of a tool, computed once per validation."""

    __slots__ = (
        "accepted",
        "checks",
        "defs",
        "fits",
        "name",
        "open",
        "output",
        "props",
        "required",
        "tool",
    )

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.name = tool.name
        self.output = tool.output_schema
        self.props = tool.properties
        required = tool.parameters.get("required", [])
        # A dict: ordered (issues come out in the schema's order) and fast to test.
        self.required = dict.fromkeys(r for r in required if isinstance(r, str))
        extra = tool.parameters.get("additionalProperties")
        self.open = extra is True or isinstance(extra, dict)
        defs = tool.parameters.get("$defs")
        self.defs: dict[str, Any] | None = defs if isinstance(defs, dict) else None
        self.checks: dict[str, ValueCheck] = {}
        self.accepted: dict[str, Types] = {}
        # (argument, types a reference produces) -> whether such a reference fits the argument.
        self.fits: dict[tuple[str, Types], bool] = {}

    def compiled(self, arg: str) -> ValueCheck:
        check = self.checks.get(arg)
        if check is None:
            check = self.checks[arg] = value_checker(self.props.get(arg), self.defs)
        return check

    def types(self, arg: str) -> Types:
        if arg not in self.accepted:
            schema = self.props.get(arg)
            found = json_types(schema) if isinstance(schema, dict) else None
            self.accepted[arg] = frozenset(found) if found is not None else None
        return self.accepted[arg]

    def description(self, arg: str) -> str | None:
        schema = self.props.get(arg)
        text = schema.get("description") if isinstance(schema, dict) else None
        return text if isinstance(text, str) else None


def has_dollar(value: Any) -> bool:
    """Whether a nested argument value holds a ``$`` anywhere: the cheap test before a walk."""
    kind = type(value)
    if kind is str:
        return "$" in value
    if kind is list or kind is dict:
        for item in value if kind is list else value.values():
            if has_dollar(item):
                return True
    return False


def strings_in(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a nested argument value, with its JSON path."""
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings_in(item, f"{path}[{i}]")


def missing(report: Report, view: ToolView, owner: str, index: int, name: str) -> None:
    """Report that the step at ``index`` lacks the required argument ``name``."""
    types = view.types(name)
    report.add(
        "missing_argument",
        f"{view.name} needs argument {name!r}" + (f" ({describe_types(types)})" if types else ""),
        step=owner,
        path=f"steps[{index}].args",
        hint=view.description(name) or f"add {name!r} to the step's args",
    )


def type_issue(
    report: Report, view: ToolView, owner: str, index: int, arg: str, problem: str
) -> None:
    """Report that a literal value of ``arg`` does not fit its schema (``problem`` says how)."""
    report.add(
        "type_mismatch",
        f"{view.name}.{arg}: {problem}",
        step=owner,
        path=(index, arg),
        hint=view.description(arg),
    )


def unexpected(report: Report, view: ToolView, owner: str, index: int, arg: str) -> bool:
    """Report ``arg`` if the tool takes no such argument; return whether it was reported."""
    if arg in view.props or view.open:
        return False
    params = list(view.props)
    close = difflib.get_close_matches(arg, params, n=1, cutoff=0.5)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif params:
        hint = f"its arguments: {', '.join(params)}"
    else:
        hint = f"{view.name} takes no arguments"
    report.add(
        "unexpected_argument",
        f"{view.name} has no argument {arg!r}",
        step=owner,
        path=(index, arg),
        hint=hint,
    )
    return True


def check_literal(
    report: Report, view: ToolView, owner: str, index: int, arg: str, value: Any
) -> None:
    """A value without references: the argument exists and the value fits its schema."""
    if arg not in view.props:
        unexpected(report, view, owner, index, arg)
        return
    if value is None and arg not in view.required:
        return
    problem = view.compiled(arg)(value)
    if problem is not None:
        type_issue(report, view, owner, index, arg, problem)


def check_ref_arg(
    report: Report,
    view: ToolView,
    owner: str,
    index: int,
    arg: str,
    value: str,
    produced: Types,
) -> None:
    """A whole-value reference (``value``) whose target declares ``produced``: can it fit?"""
    if arg not in view.props:
        unexpected(report, view, owner, index, arg)
        return
    key = (arg, produced)
    fits = view.fits.get(key)
    if fits is None:
        fits = view.fits[key] = types_compatible(produced, view.types(arg))
    if not fits:
        accepted = view.types(arg)
        assert produced is not None and accepted is not None
        report.add(
            "type_mismatch",
            f"{view.name}.{arg} takes {describe_types(accepted)}, but {value} is "
            f"{describe_types(produced)}",
            step=owner,
            path=(index, arg),
            hint="reference a field of the right type, or add a step that converts it",
        )


def check_template_arg(report: Report, view: ToolView, owner: str, index: int, arg: str) -> None:
    """Text with ``${...}`` interpolation: the argument exists and takes text."""
    if unexpected(report, view, owner, index, arg):
        return
    accepted = view.types(arg)
    if accepted is not None and "string" not in accepted:
        report.add(
            "type_mismatch",
            f"{view.name}.{arg} takes {describe_types(accepted)}, but the value is "
            "text with ${...} interpolation",
            step=owner,
            path=(index, arg),
            hint='pass the value itself as a whole reference, e.g. "$step.field"',
        )


def check_container_arg(
    report: Report,
    view: ToolView,
    owner: str,
    index: int,
    arg: str,
    value: Any,
    has_refs: bool,
) -> None:
    """A list or object with ``$`` inside, whose references the walker has checked: if it has any,
    only its own type can be checked now, else it is checked as a literal."""
    if not has_refs:
        check_literal(report, view, owner, index, arg, value)
        return
    if unexpected(report, view, owner, index, arg):
        return
    accepted = view.types(arg)
    if accepted is not None and json_type_of(value) not in accepted:
        report.add(
            "type_mismatch",
            f"{view.name}.{arg} takes {describe_types(accepted)}, not "
            f"{describe_types([json_type_of(value)])}",
            step=owner,
            path=(index, arg),
            hint=view.description(arg),
        )
