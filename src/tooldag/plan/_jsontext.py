"""Finding the JSON in what a model wrote: the text half of the lenient plan parser.

A reply is prose around JSON more often than bare JSON: a fenced ```json block, an explanation
before or after it, trailing commas, Python literals (single quotes, ``True``/``None``), JSON
encoded twice. :func:`extract_json` gets the value out of all of those, and tells a reply that was
cut off (``truncated_json``) from one with a syntax error (``not_json``, naming the line and
column) rather than guessing. No repair ever changes the inside of a string: the text is read
string by string, and what a plan says in its strings comes through byte for byte.

The issues speak to whoever wrote the text (``audience``): to the LLM, whose reply goes back to
it in a re-ask ("the reply was probably truncated", "send the complete plan"), or to a person who
wrote a plan file ("the file ends before the JSON is complete"). One table holds both wordings.
A person's text can also be told what was repaired to read it (``notes``: a ``repaired_json``
warning for a trailing comma or a Python constant), since another JSON reader would refuse it.

Turning the value into a plan is :mod:`tooldag.plan.parse`'s job; the two halves are separate
modules so that each stays small enough to read.

>>> extract_json('Here it is: {"steps": [],}')
{'steps': []}
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal, TypeAlias

from ..errors import PlanParseError
from ..issues import Issue, Severity

__all__ = ["Audience", "extract_json", "lenient_loads", "repair_json"]

Audience: TypeAlias = Literal["llm", "person"]
"""Who wrote the text, and so who reads the issues: ``llm`` (a reply, re-asked) or ``person``."""

# What a parse issue says, by audience: (message, hint), formatted with the issue's details.
_WORDING: dict[str, dict[Audience, tuple[str, str]]] = {
    "truncated": {
        "llm": (
            "the JSON plan is cut off mid-way (it ends at line {line} with {depth} unclosed "
            "bracket(s)); the reply was probably truncated",
            "send the complete plan; if it is long, use fewer steps",
        ),
        "person": (
            "the file ends before the JSON is complete (line {line}: {depth} bracket(s) still "
            "open)",
            "close every [ and {{ that is opened: a ] or }} left out is the usual cause",
        ),
    },
    "syntax": {
        "llm": (
            "the JSON plan has a syntax error: {syntax}",
            "send valid JSON: double-quoted keys and strings, commas between items",
        ),
        "person": (
            "the JSON has a syntax error: {syntax}",
            "JSON needs double-quoted keys and strings, and commas between items",
        ),
    },
    "no_json": {
        "llm": (
            "no JSON object or list was found in the text",
            'reply with one JSON object: {{"goal": ..., "steps": [...], "answer": ...}}',
        ),
        "person": (
            "no JSON object or list was found in the file",
            'a plan is one JSON object: {{"goal": ..., "steps": [...], "answer": ...}}',
        ),
    },
}


def _worded(code: str, kind: str, audience: Audience, **details: Any) -> Issue:
    message, hint = _WORDING[kind][audience]
    return Issue(code, message.format(**details), hint=hint.format(**details))


@dataclass(slots=True)
class _Reading:
    """One text being read: who wrote it, and where the repairs made to read it are noted
    (``notes`` None: not asked for)."""

    source: str = ""
    audience: Audience = "llm"
    notes: list[Issue] | None = field(default=None)

    def repaired(self, fragment: str) -> None:
        """``fragment`` (a part of the source) was read only once repaired: note the slips."""
        if self.notes is None:
            return
        offset = self.source.find(fragment)
        commas: list[int] = []
        slips: list[str] = []
        for m in _REPAIR_RE.finditer(fragment):
            if m.end() == m.end(1):
                continue
            line = self.source.count("\n", 0, offset + m.end(1)) + 1 if offset >= 0 else 0
            constant = m.group(2)
            if constant:
                at = f" (line {line})" if line else ""
                slips.append(f"{constant} read as {_JSON_CONSTANTS[constant]}{at}")
            else:
                commas.append(line)
        if commas:
            lines = sorted({n for n in commas if n})
            at = f" (line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))})"
            many = "a trailing comma" if len(commas) == 1 else f"{len(commas)} trailing commas"
            slips.insert(0, f"{many} dropped{at if lines else ''}")
        if slips:
            self.notes.append(
                Issue(
                    "repaired_json",
                    f"the JSON was read once repaired: {', '.join(slips)}",
                    hint="JSON allows no comma before ] or } and spells true, false and null "
                    "in lower case; other JSON readers refuse the file as it is",
                    severity=Severity.WARNING,
                )
            )


_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.S)
# A JSON string, escapes and all; the closing quote is optional so that an unclosed string runs to
# the end of the text instead of being tried again at every later quote (which is quadratic).
_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?'
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
# Where a bracketed value ends is decided by its brackets outside strings (either quote): a slice
# of text that ends between two strings (a few thousand characters or whole strings), what is not
# such a bracket, and the text up to and with the next one.
_SQ_STRING = r"'[^'\\]*+(?:\\.[^'\\]*+)*+'?"
_CHUNK_RE = re.compile(rf"(?:[^\"']|{_STRING}|{_SQ_STRING}){{1,4096}}+")
_NOT_BRACKET_RE = re.compile(rf"{_STRING}|{_SQ_STRING}|[^\"'{{}}\[\]]++")
_UP_TO_BRACKET_RE = re.compile(rf"(?:{_NOT_BRACKET_RE.pattern})*+[{{}}\[\]]")
# After JSON that was cut off, what lies between two candidate brackets: text, whole JSON strings,
# and a separator with the brackets nested after it (a bracket just after ``[ , : {`` is part of
# the broken JSON, not the start of a plan).
_NESTED = r"(?:[ \t\r\n]*+[{\[])*+"
_NESTED_RE = re.compile(_NESTED)
_PROSE_RE = re.compile(rf'(?:[^"{{\[,:]++|"[^"\\]*+(?:\\.[^"\\]*+)*+"|[,:]{_NESTED})*+')
_JSON_LANGS = ("json", "jsonc", "json5", "javascript", "js")
# Bound the search through prose and fences, so that junk text stays cheap to reject.
_MAX_ATTEMPTS = 50
_MAX_FENCES = 20
# Python's parser costs about a microsecond per character: the literal fallback is for replies,
# not for megabytes of text that JSON could not read.
_MAX_LITERAL_CHARS = 256 * 1024
# Where json.loads can stop on a slip that repair_json mends; stopped anywhere else, the repaired
# text stops there too (the repairs change nothing before it), so it is not tried.
_SLIP_STARTS = frozenset("TFN,]}")


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
    return _lenient(text, _Reading())


def _lenient(text: str, reading: _Reading) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = exc
    if text[error.pos : error.pos + 1] in _SLIP_STARTS:
        try:
            value = json.loads(repair_json(text))
        except json.JSONDecodeError:
            pass
        else:
            reading.repaired(text)
            return value
    if text.lstrip()[:1] in ("{", "[") and len(text) <= _MAX_LITERAL_CHARS:
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
    bracket depth left open at the end of the text.

    The text is read a chunk at a time: C code drops the strings and text of a chunk, and only a
    chunk where the depth can come back to zero (it has as many closing brackets as are open) is
    read bracket by bracket, so megabytes of brackets cost milliseconds, not seconds.
    """
    depth = 0
    pos = start
    while chunk := _CHUNK_RE.match(text, pos):
        brackets = _NOT_BRACKET_RE.sub("", chunk.group())
        closing = brackets.count("}") + brackets.count("]")
        if closing < depth:
            depth += len(brackets) - 2 * closing
        else:
            for i, bracket in enumerate(brackets):
                depth += 1 if bracket in "{[" else -1
                if depth == 0:
                    found = _UP_TO_BRACKET_RE.finditer(text, pos, chunk.end())
                    return next(islice(found, i, None)).end(), 0
        pos = chunk.end()
    return None, depth


def _next_open(text: str, start: int) -> int | None:
    """The next ``{`` or ``[`` at or after ``start``."""
    m = _OPEN_RE.search(text, start)
    return None if m is None else m.start()


def _next_fresh_open(text: str, start: int, *, after_open: bool) -> int | None:
    """After JSON that was cut off: the next ``{`` or ``[`` at or after ``start`` that is neither
    inside one of its strings nor nested in it (just after ``[``, ``,``, ``:`` or ``{``).

    ``start`` is outside the strings of the cut-off JSON; ``after_open``: it is just past an
    opening bracket, so the brackets right after it are nested. One regex match in C, however
    many strings and nested brackets it passes.
    """
    if after_open:
        start = _NESTED_RE.match(text, start).end()  # type: ignore[union-attr]
    end = _PROSE_RE.match(text, start).end()  # type: ignore[union-attr]
    # The match stops at a fresh bracket, at a string that never closes (the rest of the text is
    # inside it), or at the end.
    return end if text[end : end + 1] in ("{", "[") else None


def _plan_like(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _syntax_text(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


def _truncation_issue(text: str, depth: int, audience: Audience) -> Issue:
    line = text.count(chr(10)) + 1
    return _worded("truncated_json", "truncated", audience, line=line, depth=depth)


def _search(text: str, reading: _Reading) -> tuple[Any, Issue | None, str | None, Any]:
    """Look for a plan inside prose.

    Returns (a plan-like value or None, a truncation issue, a syntax error, the first other list
    seen as a last resort). Positions inside a value already tried are skipped, and so are values
    nested in JSON that was cut off, or inside one of its strings: a part of broken JSON is never
    taken for the plan.

    Linear in the text: at most ``_MAX_ATTEMPTS`` positions are tried, the bracket scans of the
    values tried cover disjoint spans (a value that closes is skipped whole, one that never closes
    runs to the end and marks the JSON as cut off), and after that only strict JSON is tried (a
    lenient value there would cost a scan to the end of the text per position).
    """
    decoder = json.JSONDecoder()
    truncation: Issue | None = None
    syntax: str | None = None
    other: Any = None
    pos = _next_open(text, 0)
    for _ in range(_MAX_ATTEMPTS):
        if pos is None:
            break
        try:
            value, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            if truncation is not None:
                pos = _next_fresh_open(text, pos + 1, after_open=True)
                continue
            scanned_end, depth = _scan(text, pos)
            if scanned_end is None:
                truncation = _truncation_issue(text, depth, reading.audience)
                pos = _next_fresh_open(text, pos + 1, after_open=True)
                continue
            end = scanned_end
            try:
                value = _lenient(text[pos:end], reading)
            except (json.JSONDecodeError, RecursionError, ValueError):
                if syntax is None and isinstance(exc, json.JSONDecodeError):
                    syntax = _syntax_text(exc)
                pos = _next_open(text, end)
                continue
        if _plan_like(value):
            return value, truncation, syntax, other
        if isinstance(value, list) and other is None:
            other = value
        pos = (
            _next_open(text, end)
            if truncation is None
            else _next_fresh_open(text, end, after_open=False)
        )
    return None, truncation, syntax, other


def extract_json(text: str, *, audience: Audience = "llm", notes: list[Issue] | None = None) -> Any:
    """The JSON value a reply holds: a fenced block, the whole text, or the first object (or list
    of objects) in the prose.

    Raises :class:`PlanParseError` with a ``not_json`` or ``truncated_json`` issue, worded for
    ``audience``; ``notes``, when given, receives a ``repaired_json`` warning for each value that
    was read only once repaired.
    """
    return _extract(text, _Reading(text, audience, notes), unwrap=True)


def _extract(text: str, reading: _Reading, *, unwrap: bool) -> Any:
    stripped = text.strip().lstrip("\ufeff").strip()
    if not stripped:
        raise PlanParseError("empty plan", [Issue("not_json", "the plan text is empty")])
    fences = _FENCE_RE.findall(stripped)
    # Prefer fences labelled json, then any fence, then the raw text.
    candidates: list[str] = [body for lang, body in fences if lang.lower() in _JSON_LANGS]
    candidates += [body for lang, body in fences if lang.lower() not in _JSON_LANGS]
    del candidates[_MAX_FENCES:]
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
            value = _lenient(candidate, reading)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            too_deep = too_deep or isinstance(exc, RecursionError)
            if syntax is None and candidate[0] in "{[" and isinstance(exc, json.JSONDecodeError):
                syntax = _syntax_text(exc)
        else:
            if unwrap and isinstance(value, str) and value.strip()[:1] in ("{", "["):
                return _extract(value, reading, unwrap=False)  # JSON encoded twice
            return value
        found, truncated, error, other = _search(candidate, reading)
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
        issue = _worded("not_json", "syntax", reading.audience, syntax=syntax)
        raise PlanParseError("the plan JSON is malformed", [issue])
    if fallback is not None:
        return fallback
    issue = _worded("not_json", "no_json", reading.audience)
    raise PlanParseError("no JSON plan found", [issue])
