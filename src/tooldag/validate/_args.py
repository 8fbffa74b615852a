"""The half of the validator that looks at values: a step's arguments against its tool's schema.

:class:`ArgumentChecks` is mixed into the validator (:mod:`tooldag.validate.validator`), which walks
the plan and the references; these methods judge one argument at a time: unknown or missing
arguments, literals that do not fit, references whose declared type cannot fit, ``${...}`` text
given to a parameter that does not take text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from ..issues import Issue
from ..registry.registry import Tool
from ..registry.schemas import (
    ValueCheck,
    describe_types,
    json_type_of,
    json_types,
    types_compatible,
    value_checker,
)

__all__ = ["ArgumentChecks", "ToolView", "Types", "Where", "has_dollar", "issue_path", "strings_in"]

# The JSON types a value can have, None when unknown.
Types = frozenset[str] | None


class ToolView:
    """What the validator needs of a tool, computed once per validation."""

    __slots__ = (
        "accepted",
        "checks",
        "defs",
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


# Where an issue is: a JSON path, or (step index, argument) turned into one only when an issue is
# reported (most arguments have none, and a plan may have 100k steps).
Where = str | tuple[int, str]


def issue_path(where: Where) -> str:
    """The JSON path an issue reports for ``where``."""
    return where if isinstance(where, str) else f"steps[{where[0]}].args.{where[1]}"


class ArgumentChecks:
    """The checks of one step's arguments against its tool's schema, mixed into the validator.

    The validator provides ``issues`` (where :meth:`add` reports), :meth:`check_text` (the
    references in one string) and the ``fits`` cache.
    """

    issues: list[Issue]
    fits: dict[tuple[str, str, Types], bool]

    def add(
        self,
        code: str,
        message: str,
        step: str | None = None,
        path: Where = "",
        hint: str | None = None,
    ) -> None:
        self.issues.append(Issue(code, message, step=step, path=issue_path(path), hint=hint))

    def check_text(self, value: str, owner: str | None, where: Where, deps: list[int]) -> str:
        raise NotImplementedError

    def missing(self, view: ToolView, owner: str, index: int, name: str) -> None:
        types = view.types(name)
        self.add(
            "missing_argument",
            f"{view.name} needs argument {name!r}"
            + (f" ({describe_types(types)})" if types else ""),
            step=owner,
            path=f"steps[{index}].args",
            hint=view.description(name) or f"add {name!r} to the step's args",
        )

    def type_issue(self, view: ToolView, owner: str, index: int, arg: str, problem: str) -> None:
        self.add(
            "type_mismatch",
            f"{view.name}.{arg}: {problem}",
            step=owner,
            path=(index, arg),
            hint=view.description(arg),
        )

    def unexpected(self, view: ToolView, owner: str, index: int, arg: str) -> bool:
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
        self.add(
            "unexpected_argument",
            f"{view.name} has no argument {arg!r}",
            step=owner,
            path=(index, arg),
            hint=hint,
        )
        return True

    def check_literal(self, view: ToolView, owner: str, index: int, arg: str, value: Any) -> None:
        if arg not in view.props:
            self.unexpected(view, owner, index, arg)
            return
        if value is None and arg not in view.required:
            return
        problem = view.compiled(arg)(value)
        if problem is not None:
            self.type_issue(view, owner, index, arg, problem)

    def check_ref_arg(
        self, view: ToolView, owner: str, index: int, arg: str, value: str, produced: Types
    ) -> None:
        if arg not in view.props:
            self.unexpected(view, owner, index, arg)
            return
        key = (view.name, arg, produced)
        fits = self.fits.get(key)
        if fits is None:
            fits = self.fits[key] = types_compatible(produced, view.types(arg))
        if not fits:
            accepted = view.types(arg)
            assert produced is not None and accepted is not None
            self.add(
                "type_mismatch",
                f"{view.name}.{arg} takes {describe_types(accepted)}, but {value} is "
                f"{describe_types(produced)}",
                step=owner,
                path=(index, arg),
                hint="reference a field of the right type, or add a step that converts it",
            )

    def check_template_arg(self, view: ToolView, owner: str, index: int, arg: str) -> None:
        if self.unexpected(view, owner, index, arg):
            return
        accepted = view.types(arg)
        if accepted is not None and "string" not in accepted:
            self.add(
                "type_mismatch",
                f"{view.name}.{arg} takes {describe_types(accepted)}, but the value is "
                "text with ${...} interpolation",
                step=owner,
                path=(index, arg),
                hint='pass the value itself as a whole reference, e.g. "$step.field"',
            )

    def check_container(
        self,
        view: ToolView | None,
        owner: str,
        index: int,
        arg: str,
        value: Any,
        deps: list[int],
    ) -> None:
        """A list or object with ``$`` inside: check its references; if it has any, only its own
        type can be checked now, else it is checked as a literal."""
        has_refs = False
        for text, sub in strings_in(value, issue_path((index, arg))):
            if "$" in text and self.check_text(text, owner, sub, deps) != "literal":
                has_refs = True
        if view is None:
            return
        if not has_refs:
            self.check_literal(view, owner, index, arg, value)
            return
        if self.unexpected(view, owner, index, arg):
            return
        accepted = view.types(arg)
        if accepted is not None and json_type_of(value) not in accepted:
            self.add(
                "type_mismatch",
                f"{view.name}.{arg} takes {describe_types(accepted)}, not "
                f"{describe_types([json_type_of(value)])}",
                step=owner,
                path=(index, arg),
                hint=view.description(arg),
            )
