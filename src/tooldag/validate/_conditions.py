"""The condition checks: a step's ``when`` tree, its form, operators and types.

Kept apart from the walker (:mod:`~tooldag.validate.validator`), which calls
:func:`check_condition` once per step that has a ``when``: one form per node (all/any/not/ref), a
known operator, and a value that can be compared with what the reference declares. References
inside a condition are checked by the :class:`~tooldag.validate._references.References` it is
given, which also records their edges in ``deps``; issues go to the given report.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..plan.model import CONDITION_OPS, Condition
from ..plan.refs import BadReference, Ref, parse_string
from ..registry.schemas import describe_types, json_type_of
from ._references import References
from ._report import Report, Types, short

__all__ = ["check_condition"]

_ORDERING_OPS = frozenset({"<", "<=", ">", ">="})
_UNARY_OPS = frozenset({"is_none", "not_none"})
_CONTAINERS = frozenset({"string", "array", "object"})
_EXAMPLE_CONDITION = '{"ref": "$weather.temp", "op": "<", "value": 0}'


def check_condition(
    cond: Condition, owner: str, path: str, deps: list[int], refs: References, report: Report
) -> None:
    """Report what is wrong with the condition ``cond`` of step ``owner`` (at ``path``)."""
    forms = [
        name
        for name, present in (
            ("all", cond.all_ is not None),
            ("any", cond.any_ is not None),
            ("not", cond.not_ is not None),
            ("ref", cond.ref is not None),
        )
        if present
    ]
    if len(forms) > 1:
        report.add(
            "bad_condition",
            f"a condition is one of all/any/not/ref, but this one has {' and '.join(forms)}",
            step=owner,
            path=path,
            hint='nest them: {"all": [{"ref": ...}, {"any": [...]}]}',
        )
    for key, items in (("all", cond.all_), ("any", cond.any_)):
        if items is None:
            continue
        if not items:
            report.add(
                "bad_condition",
                f"'{key}' needs at least one condition",
                step=owner,
                path=f"{path}.{key}",
                hint=f'e.g. {{"{key}": [{_EXAMPLE_CONDITION}]}}',
            )
        for i, sub in enumerate(items):
            check_condition(sub, owner, f"{path}.{key}[{i}]", deps, refs, report)
        return
    if cond.not_ is not None:
        check_condition(cond.not_, owner, f"{path}.not", deps, refs, report)
        return
    if cond.ref is None:
        report.add(
            "bad_condition",
            "the condition has no 'ref' (nor all/any/not)",
            step=owner,
            path=path,
            hint=f"write it as {_EXAMPLE_CONDITION}",
        )
        return
    _check_leaf(cond, owner, path, deps, refs, report)


def _check_leaf(
    cond: Condition, owner: str, path: str, deps: list[int], refs: References, report: Report
) -> None:
    """A ``{"ref": ..., "op": ..., "value": ...}`` node."""
    op = cond.op
    known_op = isinstance(op, str) and op in CONDITION_OPS
    ref_types: Types = None
    parsed = parse_string(cond.ref) if isinstance(cond.ref, str) else None
    if isinstance(parsed, Ref | BadReference):
        unary = known_op and op in _UNARY_OPS
        ref_types = refs.check_ref(parsed, owner, f"{path}.ref", deps, absent_is_null=unary)
    else:
        report.add(
            "bad_condition",
            f"'ref' must be a reference like \"$weather.temp\", not {short(cond.ref)}",
            step=owner,
            path=f"{path}.ref",
            hint=f"e.g. {_EXAMPLE_CONDITION}",
        )
    if not known_op:
        close = difflib.get_close_matches(str(op), CONDITION_OPS, n=1, cutoff=0.4)
        report.add(
            "bad_condition",
            f"unknown condition operator {op!r}",
            step=owner,
            path=f"{path}.op",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"operators: {', '.join(CONDITION_OPS)}",
        )
        return
    value = cond.value
    if (
        isinstance(value, str)
        and "$" in value
        and refs.check_text(value, owner, f"{path}.value", deps) in ("ref", "bad")
    ):
        return
    if op in _UNARY_OPS:
        return
    problem = _incomparable(str(op), ref_types, value)
    if problem:
        report.add(
            "bad_condition",
            f"'{cond.ref} {op} {short(value)}': {problem}",
            step=owner,
            path=f"{path}.value",
            hint="compare numbers with numbers and text with text; 'in' needs a list",
        )


def _incomparable(op: str, ref_types: Types, value: Any) -> str | None:
    """Why ``ref op value`` can never be evaluated, judging by the declared types, or None."""
    if isinstance(value, str) and "$" in value and not isinstance(parse_string(value), str):
        return None  # the value is (or holds) a reference: its type is known only at run time
    value_type = json_type_of(value)
    numeric = value_type in ("integer", "number")
    if op in _ORDERING_OPS:
        if not (numeric or value_type == "string"):
            return f"'{op}' orders numbers or text, not {describe_types([value_type])}"
        if ref_types is not None:
            fits = ref_types & {"integer", "number"} if numeric else "string" in ref_types
            if not fits:
                return (
                    f"the reference is {describe_types(ref_types)}, which cannot be ordered "
                    f"against {describe_types([value_type])}"
                )
        return None
    if op == "in":
        if value_type not in _CONTAINERS:
            return f"'in' looks inside a list, text or object, not {describe_types([value_type])}"
        if value_type == "string" and ref_types is not None and "string" not in ref_types:
            return (
                f"only text can be found inside text; the reference is {describe_types(ref_types)}"
            )
        return None
    if op == "contains" and ref_types is not None:
        if not ref_types & _CONTAINERS:
            return (
                f"'contains' looks inside a list, text or object; the reference is "
                f"{describe_types(ref_types)}"
            )
        if ref_types <= {"string", "null"} and value_type != "string":
            return f"text can only contain text, not {describe_types([value_type])}"
    return None
