"""What a typed Python function says about itself, read for :func:`tooldag.tool`.

- :func:`parse_docstring`: the summary and per-argument descriptions of Google, Sphinx and NumPy
  style docstrings (the descriptions the LLM sees for each argument).
- :func:`typeddict_compat`: ``typing.TypedDict`` rebuilt so pydantic accepts it on Python 3.11.

>>> parse_docstring('''Add.
...
... Args:
...     a: The first.
... ''')
('Add.', {'a': 'The first.'})
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from typing import Any, get_type_hints

import typing_extensions

__all__ = ["parse_docstring", "typeddict_compat"]


_ARG_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "other parameters",
    }
)
_SECTION_RE = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|Returns?"
    r"|Raises|Yields?|Examples?|Notes?|See Also|References|Attributes|Warnings?|Todo)\s*:?$",
    re.IGNORECASE,
)
_RULE_RE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_PARAM_RE = re.compile(r"^:param\s+(?:[^:]*\s)?(\*{0,2}\w+)\s*:\s*(.*)$")
_SPHINX_FIELD_RE = re.compile(r"^:\w+")
_GOOGLE_ITEM_RE = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:(?:\s+(.*))?$")
_NUMPY_ITEM_RE = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::\s*.*)?$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Summary and per-argument descriptions from Google, Sphinx or NumPy style docstrings.

    Google: ``Args:`` then ``name (type): text`` with indented continuation lines. NumPy: a
    ``Parameters`` header underlined with dashes, then ``name : type`` and the text indented below
    it (the type is not the description). Sphinx: ``:param [type] name: text``; other fields
    (``:type:``, ``:returns:``) end the current parameter.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None  # None = still in the summary
    numpy = False
    item_indent: int | None = None
    current: list[str] = []

    def append(text: str) -> None:
        for name in current:
            params[name] = f"{params[name]} {text}".strip()

    i = 0
    while i < len(lines):
        raw = lines[i].rstrip()
        text = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        i += 1
        underlined = i < len(lines) and bool(_RULE_RE.match(lines[i]))
        header = _SECTION_RE.match(text) if indent == 0 or underlined else None
        if header:
            section = "args" if header.group(1).lower() in _ARG_SECTIONS else "other"
            numpy, item_indent, current = underlined, None, []
            i += 1 if underlined else 0
            continue
        sphinx = _SPHINX_PARAM_RE.match(text)
        if sphinx:
            section, current = "sphinx", [sphinx.group(1).lstrip("*")]
            params[current[0]] = sphinx.group(2).strip()
            continue
        if _SPHINX_FIELD_RE.match(text):
            section, current = "other", []
            continue
        if section is None:
            summary.append(raw)
            continue
        if section == "sphinx":
            if text:
                append(text)
            continue
        if section != "args" or not text:
            continue
        if item_indent is None:
            item_indent = indent
        if indent <= item_indent:
            if numpy:
                item = _NUMPY_ITEM_RE.match(text)
                if item:
                    current = [n.strip().lstrip("*") for n in item.group(1).split(",")]
                    for name in current:
                        params[name] = ""
                    continue
            else:
                item = _GOOGLE_ITEM_RE.match(text)
                if item:
                    current = [item.group(1).lstrip("*")]
                    params[current[0]] = (item.group(3) or "").strip()
                    continue
        append(text)
    return "\n".join(summary).strip(), params


# --------------------------------------------------------------------------- typing


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
