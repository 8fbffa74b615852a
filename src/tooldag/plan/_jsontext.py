"""Finding the JSON in what a model wrote: the text half of the lenient plan parser.

A reply is prose around JSON more often than bare JSON: a fenced ```json block, an explanation
before or after it, trailing commas, Python literals (single quotes, ``True``/``None``), JSON
encoded twice. :func:`extract_json` gets the value out of all of those, and tells a reply that was
cut off (``truncated_json``) from one with a syntax error (``not_json``, naming the line and
column) rather than guessing. No repair ever changes the inside of a string: the text is read
string by string, and what a plan says in its strings comes through byte for byte.

Turning the value into a plan is :mod:`tooldag.plan.parse`'s job; the two halves are separate
modules so that each stays small enough to read.

>>> extract_json('Here it is: {"steps": [],}')
{'steps': []}
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

from ..errors import PlanParseError
from ..issues import Issue

__all__ = ["extract_json", "lenient_loads", "repair_json"]

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.S)
# A JSON string, escapes and all; the closing quote is optional so that an unclosed string runs to
# the end of the text instead of being tried again at every later quote (which is quadratic).
_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?'
_JSON_STRING_RE = re.compile(_STRING)
_TRAILING_COMMA = r",(?=\s*[}\]])"
_CONSTANT = r"(?:True|False|None)\b"
# The repairs of JSON with slips in it, in one pass: group 1 is everything up to the next slip
# (strings whole, so nothing inside one is ever taken for a slip), then the slip: a trailing comma
# (dropped) or a Python constant (group 2, spelled the JSON way). Possessive loops keep it linear
# and in C: one match per slip, not per string.
_REPAIR_RE = re.compile(
    rf"((?:[^\",TFN]++|{_STRING}|(?!{_TRAILING_COMMA}),|(?!{_CONSTANT})[TFN])*+)"
    rf"(?:{_TRAILING_COMMA}|({_CONSTANT}))?"
)
_JSON_CONSTANTS = {"True": "true", "False": "false", "None": "null"}
_OPEN_RE = re.compile(r"[{\[]")
# Strings (either quote) and brackets: the tokens that decide where a bracketed value ends.
_STRUCT_RE = re.compile(rf"{_STRING}|'[^'\\]*+(?:\\.[^'\\]*+)*+'?|[{{}}\[\]]")
_JSON_LANGS = ("json", "jsonc", "json5", "javascript", "js")
# Bound the search through prose, so that junk text stays cheap to reject.
_MAX_ATTEMPTS = 50


def _repaired(m: re.Match[str]) -> str:
    kept, constant = m.groups()
    return kept + _JSON_CONSTANTS[constant] if constant else kept


def repair_json(text: str) -> str:
    """``text`` with trailing commas dropped and ``True``/``False``/``None`` spelled the JSON way,
    outside strings only: every string comes through byte for byte.

    >>> repair_json('{"a": [True, "keep , ] True"],}')
    '{"a": [true, "keep , ] True"]}'
    """
    return _REPAIR_RE.sub(_repaired, text)


def lenient_loads(text: str) -> Any:
    """json.loads, then the forgivable variants: trailing commas and Python's constants
    (:func:`repair_json`), then a Python literal (single quotes, tuples).

    The strings of JSON text are read by JSON's rules whatever else is repaired; only text that
    is a Python literal (not JSON once repaired) is read by Python's. Raises
    :class:`json.JSONDecodeError` (or ``ValueError``/``RecursionError``) when none reads.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = exc
    fixed = repair_json(text)
    if fixed != text:
        try:
            return json.loads(fixed)
        except json.JSONDecodeError:
            pass
    if text.lstrip()[:1] in ("{", "["):
        try:
            # Models sometimes answer in Python syntax (single quotes, True/None). literal_eval
            # only builds literals: no names, no calls.
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            value = None
        if isinstance(value, dict | list):
            return _jsonable(value)
    raise error


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A Python literal as the JSON it stands for: tuples and sets become lists, keys strings."""
    if depth > 200:
        raise ValueError("nested too deeply")
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, complex):
        return str(value)
    return value


def _scan(text: str, start: int) -> tuple[int | None, int]:
    """Where the bracketed value starting at ``start`` ends (None if it never closes), and the
    bracket depth left open at the end of the text."""
    depth = 0
    for m in _STRUCT_RE.finditer(text, start):
        first = m.group()[0]
        if first in "{[":
            depth += 1
        elif first in "}]":
            depth -= 1
            if depth <= 0:
                return m.end(), 0
    return None, depth


def _previous_char(text: str, pos: int) -> str:
    i = pos - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    return text[i] if i >= 0 else ""


def _plan_like(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _syntax_text(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


def _truncation_issue(text: str, depth: int) -> Issue:
    return Issue(
        "truncated_json",
        f"the JSON plan is cut off mid-way (it ends at line {text.count(chr(10)) + 1} with "
        f"{depth} unclosed bracket(s)); the reply was probably truncated",
        hint="send the complete plan; if it is long, use fewer steps",
    )


def _search(text: str) -> tuple[Any, Issue | None, str | None, Any]:
    """Look for a plan inside prose.

    Returns (a plan-like value or None, a truncation issue, a syntax error, the first other list
    seen as a last resort). Positions inside a value already tried are skipped, and so are values
    nested in JSON that was cut off, or inside one of its strings: a part of broken JSON is never
    taken for the plan.
    """
    decoder = json.JSONDecoder()
    truncation: Issue | None = None
    syntax: str | None = None
    other: Any = None
    skip_until = 0
    attempts = 0
    # After a cut-off value: its strings, in order, and the first one not yet behind us.
    strings: Iterator[re.Match[str]] = iter(())
    string: re.Match[str] | None = None
    for m in _OPEN_RE.finditer(text):
        pos = m.start()
        if pos < skip_until:
            continue
        if truncation is not None:
            while string is not None and string.end() <= pos:
                string = next(strings, None)
            if string is not None and string.start() < pos:
                continue  # a bracket inside a string of the cut-off JSON is text
            if _previous_char(text, pos) in "[,:{":
                continue
        attempts += 1
        if attempts > _MAX_ATTEMPTS:
            break
        try:
            value, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            scanned_end, depth = _scan(text, pos)
            if scanned_end is None:
                if truncation is None and depth > 0:
                    truncation = _truncation_issue(text, depth)
                    strings = _JSON_STRING_RE.finditer(text, pos)
                    string = next(strings, None)
                continue
            end = scanned_end
            try:
                value = lenient_loads(text[pos:end])
            except (json.JSONDecodeError, RecursionError, ValueError):
                if syntax is None and isinstance(exc, json.JSONDecodeError):
                    syntax = _syntax_text(exc)
                skip_until = end
                continue
        if _plan_like(value):
            return value, truncation, syntax, other
        if isinstance(value, list) and other is None:
            other = value
        skip_until = end
    return None, truncation, syntax, other


def extract_json(text: str) -> Any:
    """The JSON value a reply holds: a fenced block, the whole text, or the first object (or list
    of objects) in the prose.

    Raises :class:`PlanParseError` with a ``not_json`` or ``truncated_json`` issue.
    """
    return _extract(text, unwrap=True)


def _extract(text: str, *, unwrap: bool) -> Any:
    stripped = text.strip().lstrip("\ufeff").strip()
    if not stripped:
        raise PlanParseError("empty plan", [Issue("not_json", "the plan text is empty")])
    fences = _FENCE_RE.findall(stripped)
    # Prefer fences labelled json, then any fence, then the raw text.
    candidates: list[str] = [body for lang, body in fences if lang.lower() in _JSON_LANGS]
    candidates += [body for lang, body in fences if lang.lower() not in _JSON_LANGS]
    candidates.append(stripped)
    truncation: Issue | None = None
    syntax: str | None = None
    fallback: Any = None
    too_deep = False
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate:
            continue
        try:
            value = lenient_loads(candidate)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            too_deep = too_deep or isinstance(exc, RecursionError)
            if syntax is None and candidate[0] in "{[" and isinstance(exc, json.JSONDecodeError):
                syntax = _syntax_text(exc)
        else:
            if unwrap and isinstance(value, str) and value.strip()[:1] in ("{", "["):
                return _extract(value, unwrap=False)  # JSON encoded twice
            return value
        found, truncated, error, other = _search(candidate)
        if found is not None:
            return found
        truncation = truncation or truncated
        syntax = syntax or error
        fallback = other if fallback is None else fallback
    if truncation is not None:
        raise PlanParseError("the plan JSON is incomplete", [truncation])
    if too_deep:
        # Valid JSON, but deeper than Python's parser recurses: saying "no JSON found" would
        # send the reader looking for a syntax error that is not there.
        raise PlanParseError(
            "the plan JSON is nested too deeply",
            [
                Issue(
                    "not_json",
                    "the JSON is nested too deeply to read (thousands of levels of [ or {)",
                    hint="a plan needs a few levels: steps, their args, and values within them",
                )
            ],
        )
    if syntax is not None:
        raise PlanParseError(
            "the plan JSON is malformed",
            [
                Issue(
                    "not_json",
                    f"the JSON plan has a syntax error: {syntax}",
                    hint="send valid JSON: double-quoted keys and strings, commas between items",
                )
            ],
        )
    if fallback is not None:
        return fallback
    raise PlanParseError(
        "no JSON plan found",
        [
            Issue(
                "not_json",
                "no JSON object or list was found in the text",
                hint='reply with one JSON object: {"goal": ..., "steps": [...], "answer": ...}',
            )
        ],
    )
