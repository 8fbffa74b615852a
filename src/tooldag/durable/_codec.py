"""How the run store encodes values as JSON, with the documented fallback for what JSON cannot
express.

Outputs, arguments, errors and plans are stored as JSON text. Values pydantic knows a JSON form of
(models, dataclasses, datetimes, sets, bytes as base64) are stored in that form; anything else is
replaced by ``{"__tooldag_unserializable__": {"type": ..., "repr": ...}}`` and a
:class:`StoreWarning` is issued. Kept apart from :mod:`tooldag.durable.store` and
:mod:`tooldag.durable.journal` because both write and read the same encoding, and it involves no
SQL; users import :data:`JSON_FALLBACK_KEY` and :class:`StoreWarning` from
:mod:`tooldag.durable.store`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from ..errors import StoreError
from ..plan.model import Plan
from ..result import StepError

__all__ = [
    "JSON_FALLBACK_KEY",
    "StoreWarning",
    "dumps_json",
    "error_json",
    "loads_json",
    "plan_json",
]

JSON_FALLBACK_KEY = "__tooldag_unserializable__"
_REPR_LIMIT = 2000


class StoreWarning(UserWarning):
    """A value was stored in a lossy form (see the :mod:`tooldag.durable.store` docstring)."""


_fast_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _marker(obj: Any) -> dict[str, Any]:
    """The documented stand-in for a value JSON cannot express: its type and (cut) repr."""
    kind = type(obj)
    text = repr(obj)
    if len(text) > _REPR_LIMIT:
        text = text[:_REPR_LIMIT] + "..."
    return {JSON_FALLBACK_KEY: {"type": f"{kind.__module__}.{kind.__qualname__}", "repr": text}}


def dumps_json(value: Any, *, what: str | None = None) -> str:
    """JSON text of ``value``; the documented fallback (and a warning when ``what`` is given)."""
    try:
        return _fast_dumps(value)
    except (TypeError, ValueError):
        pass
    lossy: list[str] = []

    def fallback(obj: Any) -> Any:
        lossy.append(type(obj).__qualname__)
        return _marker(obj)

    try:
        text = _fast_dumps(to_jsonable_python(value, fallback=fallback, bytes_mode="base64"))
    except Exception:  # circular structures, exotic __eq__/__hash__: keep the whole repr
        lossy.append(type(value).__qualname__)
        text = _fast_dumps(_marker(value))
    if lossy and what is not None:
        kinds = ", ".join(sorted(set(lossy)))
        warnings.warn(
            f"{what} is not JSON-serialisable ({kinds}); stored as its repr under "
            f"{JSON_FALLBACK_KEY!r}: return JSON data or a pydantic model to store it faithfully",
            StoreWarning,
            stacklevel=3,
        )
    return text


def loads_json(text: str | None) -> Any:
    """The value of stored JSON text (None stays None)."""
    return None if text is None else json.loads(text)


def plan_json(plan: Any) -> dict[str, Any]:
    """The JSON form of a plan given as a :class:`Plan` or a dict."""
    if isinstance(plan, Plan):
        return plan.to_json()
    if isinstance(plan, Mapping):
        return dict(plan)
    raise StoreError(f"cannot store a plan of type {type(plan).__name__}: pass a Plan or a dict")


def error_json(error: StepError | None) -> str | None:
    """A step error as stored: the JSON of its fields (None stays None)."""
    return None if error is None else dumps_json(error.model_dump())
