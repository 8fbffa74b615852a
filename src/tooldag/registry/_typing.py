"""``typing.TypedDict`` rebuilt so that pydantic accepts it on Python 3.11.

pydantic builds the argument and output schemas of ``@tool`` functions from their type hints, and
before Python 3.12 it refuses a ``typing.TypedDict`` (it wants the ``typing_extensions`` one).
:func:`typeddict_compat` rebuilds such hints so that users need not know.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any, get_type_hints

import typing_extensions

__all__ = ["typeddict_compat"]


def typeddict_compat(annotation: Any, _depth: int = 0) -> Any:
    """pydantic refuses ``typing.TypedDict`` before Python 3.12; rebuild each one (also inside
    ``list[...]``, ``X | None``, ``Annotated`` and other TypedDicts) as the ``typing_extensions``
    one, which carries the same fields, so users need not know."""
    if sys.version_info >= (3, 12) or _depth > 20:
        return annotation
    if typing_extensions.is_typeddict(annotation):
        return _compat_typeddict(annotation, _depth)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None or not args or origin is typing.Literal:
        return annotation
    new_args = tuple(typeddict_compat(a, _depth + 1) for a in args)
    if all(new is old for new, old in zip(new_args, args, strict=True)):
        return annotation
    try:
        if origin is typing.Annotated:
            return typing.Annotated[new_args]
        if origin in (typing.Union, types.UnionType):
            return typing.Union[new_args]  # noqa: UP007 - rebuilding a Union from its parts
        return origin[new_args[0] if len(new_args) == 1 else new_args]
    except TypeError:
        return annotation


def _compat_typeddict(td: Any, depth: int) -> Any:
    try:
        hints = get_type_hints(td, include_extras=True)
    except Exception:
        return td
    fields: dict[str, Any] = {}
    changed = type(td).__module__ == "typing"
    for key, hint in hints.items():
        # Required/NotRequired wrap the whole hint. They decide, not __required_keys__: with
        # ``from __future__ import annotations`` 3.11 cannot see them when it builds the class.
        required = key in td.__required_keys__
        wrapper = typing.get_origin(hint)
        if wrapper in (typing.Required, typing.NotRequired):
            required = wrapper is typing.Required
            hint = typing.get_args(hint)[0]
        new = typeddict_compat(hint, depth + 1)
        changed = changed or new is not hint or required != (key in td.__required_keys__)
        fields[key] = new if required else typing.NotRequired[new]
    if not changed:
        return td
    rebuilt: Any = typing_extensions.TypedDict(td.__name__, fields)  # type: ignore[misc]
    rebuilt.__doc__ = td.__doc__
    rebuilt.__module__ = td.__module__
    return rebuilt
