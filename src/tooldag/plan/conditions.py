"""Evaluating a step's ``when`` condition against the outputs of the steps before it.

The executor asks this module one question when a step becomes ready: run it or skip it? The
answer must never be a crash. Values that cannot be compared (``"hot" < 0``, ``None > 3``) raise
:class:`~tooldag.errors.ConditionError` with a message saying what was compared, and the executor
turns that into a clear failure of the guarded step.

Operators: the seed's ``==, !=, <, <=, >, >=, contains, is_none`` plus ``not_none`` and ``in``;
``all`` / ``any`` / ``not`` combine them. ``value`` may itself be a reference.

>>> outputs = {"weather": {"temp": -3, "condition": "snow"}}
>>> evaluate({"ref": "$weather.temp", "op": "<", "value": 0}, outputs)
True
>>> evaluate({"any": [{"ref": "$weather.condition", "op": "in", "value": ["rain", "snow"]},
...                   {"ref": "$weather.temp", "op": ">", "value": 35}]}, outputs)
True
>>> evaluate_explained({"ref": "$weather.temp", "op": ">", "value": 35}, outputs)
(False, '$weather.temp > 35 (got -3)')
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConditionError, ReferenceResolutionError
from .model import CONDITION_OPS, Condition
from .refs import BadReference, Ref, lookup, parse_string, resolve

__all__ = ["describe", "evaluate", "evaluate_explained"]

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_UNARY = ("is_none", "not_none")


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(left: Any, right: Any) -> bool:
    # JSON semantics: true is not 1 (Python says it is).
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    try:
        return bool(left == right)
    except Exception:
        return False


def _member(item: Any, container: Any, text: str) -> bool:
    """``item`` in ``container`` for text (substring), lists (an equal element), objects (a key)."""
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ConditionError(
                f"{text}: cannot look for {_kind(item)} {_short(item)} inside text; "
                "compare text with text"
            )
        return item in container
    if isinstance(container, list | tuple):
        return any(_equal(item, element) for element in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    raise ConditionError(
        f"{text}: {_kind(container)} {_short(container)} is not text, a list or an object, "
        "so nothing can be looked up in it"
    )


def _operand(value: Any, outputs: Mapping[str, Any], *, absent_is_none: bool = False) -> Any:
    """Resolve a condition operand (a reference, a template or a literal)."""
    if not isinstance(value, str) or "$" not in value:
        return value
    parsed = parse_string(value)
    if isinstance(parsed, Ref) and absent_is_none:
        try:
            return lookup(parsed, outputs)
        except ReferenceResolutionError:
            # ``is_none`` / ``not_none`` ask "is there a value?": an absent last key answers no.
            if not parsed.path:
                raise
            parent = lookup(Ref(parsed.step, parsed.path[:-1]), outputs)
            if isinstance(parent, Mapping):
                return None
            raise
    if isinstance(parsed, BadReference):
        raise ReferenceResolutionError(parsed.text, parsed.reason)
    return resolve(value, outputs)


def _as_condition(condition: Condition | Mapping[str, Any]) -> Condition:
    if isinstance(condition, Condition):
        return condition
    if isinstance(condition, Mapping):
        return Condition.model_validate(dict(condition))
    raise ConditionError(
        f'a condition must be an object like {{"ref": "$step.field", "op": "==", '
        f'"value": 1}}, not {_kind(condition)}'
    )


def describe(condition: Condition | Mapping[str, Any]) -> str:
    """The condition as one line of text: ``$weather.temp < 0``, ``all(... , ...)``."""
    cond = _as_condition(condition)
    if cond.all_ is not None:
        return "all(" + ", ".join(describe(c) for c in cond.all_) + ")"
    if cond.any_ is not None:
        return "any(" + ", ".join(describe(c) for c in cond.any_) + ")"
    if cond.not_ is not None:
        return f"not({describe(cond.not_)})"
    ref = cond.ref if isinstance(cond.ref, str) else _short(cond.ref)
    if cond.op in _UNARY:
        return f"{ref} {cond.op}"
    value = cond.value if isinstance(cond.value, str) and "$" in cond.value else _short(cond.value)
    return f"{ref} {cond.op} {value}"


def _leaf(cond: Condition, outputs: Mapping[str, Any], notes: list[str] | None) -> bool:
    op = cond.op
    text = describe(cond)
    if op not in CONDITION_OPS:
        raise ConditionError(
            f"{text}: unknown operator {op!r}; use one of {', '.join(CONDITION_OPS)}"
        )
    if cond.ref is None:
        raise ConditionError(
            "a condition needs 'ref' (or all/any/not), e.g. "
            '{"ref": "$weather.temp", "op": "<", "value": 0}'
        )
    left = _operand(cond.ref, outputs, absent_is_none=op in _UNARY)
    if notes is not None:
        notes.append(f"{text} (got {_short(left)})")
    if op == "is_none":
        return left is None
    if op == "not_none":
        return left is not None
    right = _operand(cond.value, outputs)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "contains":
        return _member(right, left, text)
    if op == "in":
        return _member(left, right, text)
    comparable = (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        raise ConditionError(
            f"{text}: cannot order {_kind(left)} {_short(left)} against {_kind(right)} "
            f"{_short(right)}; '{op}' compares two numbers or two texts"
        )
    return _ORDERING[op](left, right)


def _evaluate(cond: Condition, outputs: Mapping[str, Any], notes: list[str] | None) -> bool:
    if cond.all_ is not None:
        return all(_evaluate(c, outputs, notes) for c in cond.all_)
    if cond.any_ is not None:
        return any(_evaluate(c, outputs, notes) for c in cond.any_)
    if cond.not_ is not None:
        return not _evaluate(cond.not_, outputs, notes)
    return _leaf(cond, outputs, notes)


def evaluate(condition: Condition | Mapping[str, Any], outputs: Mapping[str, Any]) -> bool:
    """Whether ``condition`` holds over ``outputs`` (step id -> output).

    Raises :class:`ConditionError` for values that cannot be compared or an unknown operator, and
    :class:`ReferenceResolutionError` for a reference that does not resolve. For ``is_none`` and
    ``not_none`` only, an absent last key counts as null (``$search.error is_none`` holds when the
    output has no ``error`` key).
    """
    return _evaluate(_as_condition(condition), outputs, None)


def evaluate_explained(
    condition: Condition | Mapping[str, Any], outputs: Mapping[str, Any]
) -> tuple[bool, str]:
    """Like :func:`evaluate`, and a line saying what was compared (for a skip's reason)."""
    notes: list[str] = []
    result = _evaluate(_as_condition(condition), outputs, notes)
    return result, "; ".join(notes)
