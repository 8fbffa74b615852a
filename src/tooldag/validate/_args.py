"""The argument checks: one step's argument values against its tool's schema.

Kept apart from the walker (:mod:`~tooldag.validate.validator`), which visits every argument and
resolves references: these functions judge one argument at a time and only report, to the
:class:`~tooldag.validate._report.Report` they are given: unknown or missing arguments, literals
that do not fit, references whose declared type cannot fit, ``${...}`` text given to a parameter
that does not take text, containers of the wrong type.

A number or boolean, literal or referenced, given to a parameter that takes free text is no error
but a ``coerced_argument`` warning: the step is given its JSON text when it runs (the same
:attr:`~tooldag.registry.Tool.text_params` decide both, in ``Tool.validate_args``). A list, even
of one item, where a scalar is expected stays an error, and so does a number given to text whose
form the parameter fixes (``enum``, ``pattern``, ``format``): the hint says what to write.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

from ..registry.registry import Tool
from ..registry.schemas import (
    TEXT_COERCIBLE,
    ValueCheck,
    describe_types,
    json_type_of,
    json_types,
    text_coercion,
    types_compatible,
    value_checker,
)
from ._report import Report, Types, short

__all__ = [
    "ToolView",
    "check_container_arg",
    "check_literal",
    "check_ref_arg",
    "check_template_arg",
    "has_dollar",
    "literal_issue",
    "missing",
    "strings_in",
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
        "text",
        "tool",
    )

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.name = tool.name
        self.output = tool.output_schema
        self.props = tool.properties
        # Parameter -> the JSON types it accepts, for those that take free text.
        self.text = tool.text_params
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


def literal_issue(
    report: Report, view: ToolView, owner: str, index: int, arg: str, value: Any, problem: str
) -> None:
    """Report that the literal ``value`` of ``arg`` does not fit its schema (``problem`` says how):
    a warning when it is a number or boolean that the step is given as its text, else an error."""
    accepted = view.text.get(arg)
    text = text_coercion(value, accepted) if accepted is not None else None
    if text is not None and view.compiled(arg)(text) is None:
        report.warn(
            "coerced_argument",
            f"{view.name}.{arg} takes {describe_types(accepted or ())}; {short(value)} is passed "
            f"as the text {json.dumps(text)}",
            step=owner,
            path=(index, arg),
            hint=f"write {json.dumps(text)} to pass the text itself",
        )
        return
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
        literal_issue(report, view, owner, index, arg, value, problem)


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
        body = value.removeprefix("$")
        if arg in view.text and produced & TEXT_COERCIBLE:
            example = '3.5 as "3.5"' if produced - {"boolean"} else 'true as "true"'
            report.warn(
                "coerced_argument",
                f"{view.name}.{arg} takes {describe_types(accepted)}, and {value} is "
                f"{describe_types(produced)}: it is passed as its JSON text ({example})",
                step=owner,
                path=(index, arg),
                hint=f'write "${{{body}}}" to pass the text itself',
            )
            return
        report.add(
            "type_mismatch",
            f"{view.name}.{arg} takes {describe_types(accepted)}, but {value} is "
            f"{describe_types(produced)}",
            step=owner,
            path=(index, arg),
            hint=_mismatch_hint(view, arg, body, produced, accepted),
        )


def _mismatch_hint(
    view: ToolView, arg: str, body: str, produced: frozenset[str], accepted: frozenset[str]
) -> str:
    """What to write instead of a whole reference of the ``produced`` types."""
    if "string" in accepted and produced & TEXT_COERCIBLE:
        schema = view.props.get(arg)
        rules = [
            k
            for k in ("enum", "const", "pattern", "format")
            if isinstance(schema, dict) and k in schema
        ]
        fixed = (
            f" (its {'/'.join(rules)} is checked on the text when the step runs)" if rules else ""
        )
        return f'if its text is meant, write "${{{body}}}"{fixed}'
    if "array" in produced and "array" not in accepted:
        return (
            f"a list, even of one item, is not {describe_types(accepted)}: reference one item, "
            f'e.g. "${body}.0"'
        )
    return "reference a field of the right type, or add a step that converts it"


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
