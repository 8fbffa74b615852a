"""The reference language of plans.

- A string that is exactly ``$id`` or ``$id.path`` is a *whole-value* reference: it is replaced by
  the typed value (dict, list, number, ...), never by its text.
- ``${id.path}`` inside a longer string is interpolated as text (JSON for non-strings).
- A path is keys and integer indexes: ``$search.results.0.url``; a key that is not an identifier is
  quoted: ``$rate["Exchange Rate"]``. ``[0]`` is accepted as well as ``.0``.
- ``$$`` is a literal dollar.
- ``$step.path`` written inside longer text, where ``step`` is a step of the plan, is read as
  ``${step.path}`` (:func:`read_bare_refs`, applied once when a :class:`~tooldag.plan.Plan` is
  built, so the validator and the executor read the same text); ``$5``, ``$PATH`` or any ``$name``
  that names no step stays literal text.

References are data lookups only: no ``eval``, no attribute access on objects. What models write
instead (``${a.b.toString()}``, ``${a.b + 1}``, ``${a.b || 0}``, ``${len(a.b)}``...) is a
:class:`BadReference` whose ``hint`` says what to write.

>>> resolve("$weather.temp", {"weather": {"temp": 18}})
18
>>> resolve("It is ${weather.temp} C", {"weather": {"temp": 18}})
'It is 18 C'
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import ReferenceResolutionError

__all__ = [
    "BadReference",
    "Ref",
    "Template",
    "bare_calls",
    "format_path",
    "iter_refs",
    "lookup",
    "may_hold_bare_ref",
    "method_hint",
    "parse_ref",
    "parse_string",
    "read_bare_refs",
    "reference_hint",
    "render_text",
    "resolve",
]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
_SEGMENT = rf"(?:\.(?:{_IDENT}|\d+)|\[\s*(?:\d+|{_QUOTED})\s*\])"
_BODY = rf"{_IDENT}{_SEGMENT}*"
_WHOLE_RE = re.compile(rf"\$({_BODY})")
_SEGMENT_RE = re.compile(rf"\.({_IDENT})|\.(\d+)|\[\s*(\d+)\s*\]|\[\s*({_QUOTED})\s*\]")
# ``$$``, or ``${...}`` whose body may hold quoted keys with braces in them (``${r["a}"]}``).
_TOKEN_RE = re.compile(rf"\$\$|\$\{{((?:[^{{}}\"']|{_QUOTED})*)\}}?")
# The common case, dotted keys and indexes only, parsed with one regex and a split (a plan of 100k
# steps holds 100k+ references, so this path is hot).
_SIMPLE_BODY_RE = re.compile(rf"({_IDENT})((?:\.(?:{_IDENT}|\d+))*)")
_IDENT_RE = re.compile(_IDENT)
_INDEX_RE = re.compile(r"\.\d")
_SIMPLE_TEMPLATE_RE = re.compile(rf"\$\{{\s*\$?({_IDENT})((?:\.(?:{_IDENT}|\d+))*)\s*\}}")
# A ``$step.path`` inside text, without braces. ``$$`` and whole ``${...}`` tokens are matched
# first, so an escaped dollar or a dollar inside a quoted key never counts. Group 1 is the step,
# group 2 its path (a segment must end at a word boundary: ``$a.5th`` is ``$a`` then ``.5th``),
# group 3 an opening parenthesis right after it (a method call, which is never read).
_BARE_RE = re.compile(
    rf"\$\$|\$\{{(?:[^{{}}\"']|{_QUOTED})*\}}?"
    rf"|\$({_IDENT})((?:\.(?:{_IDENT}|\d+)(?![A-Za-z0-9_])|\[\s*(?:\d+|{_QUOTED})\s*\])*)(\()?"
)

PathSeg = str | int


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to step ``step``'s output at ``path``."""

    step: str
    path: tuple[PathSeg, ...] = ()

    def __str__(self) -> str:
        return "$" + self.step + format_path(self.path)

    @property
    def field(self) -> str | None:
        """The first key of the path, if it is a key (the output field the reference reads)."""
        return self.path[0] if self.path and isinstance(self.path[0], str) else None


@dataclass(frozen=True, slots=True)
class Template:
    """A string with ``${...}`` interpolations: literal text and refs, in order."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(p for p in self.parts if isinstance(p, Ref))


@dataclass(frozen=True, slots=True)
class BadReference:
    """A string that tries to be a reference and is malformed; ``reason`` says how, ``hint`` (when
    the mistake is a known one) what to write instead."""

    text: str
    reason: str
    hint: str | None = None

    @property
    def explanation(self) -> str:
        """The reason and the hint in one line (for an error raised at run time)."""
        return f"{self.reason}; {self.hint}" if self.hint else self.reason


def format_path(path: tuple[PathSeg, ...]) -> str:
    out = []
    for seg in path:
        if isinstance(seg, int) or _IDENT_RE.fullmatch(seg):
            out.append(f".{seg}")
        else:
            out.append("[" + json.dumps(seg, ensure_ascii=False) + "]")
    return "".join(out)


def _unquote(token: str) -> str:
    if token.startswith("'"):
        # Single-quoted keys: swap quotes so json can decode the escapes.
        inner = token[1:-1].replace('\\"', '"').replace('"', '\\"').replace("\\'", "'")
        token = '"' + inner + '"'
    value: str = json.loads(token)
    return value


# Output paths repeat across a plan (".temp", ".results.0.url"): share their tuples.
_PATHS: dict[str, tuple[PathSeg, ...]] = {}


def _simple_path(dotted: str) -> tuple[PathSeg, ...]:
    path = _PATHS.get(dotted)
    if path is None:
        parts = dotted[1:].split(".")
        if _INDEX_RE.search(dotted) is None:
            path = tuple(parts)
        else:
            path = tuple([int(p) if p.isdigit() else p for p in parts])
        if len(_PATHS) < 4096:
            _PATHS[dotted] = path
    return path


def _parse_body(body: str) -> Ref | None:
    simple = _SIMPLE_BODY_RE.fullmatch(body)
    if simple:
        step, dotted = simple.groups()
        return Ref(step, _simple_path(dotted) if dotted else ())
    m = _IDENT_RE.match(body)
    if not m:
        return None
    step = m.group(0)
    pos = m.end()
    path: list[PathSeg] = []
    while pos < len(body):
        seg = _SEGMENT_RE.match(body, pos)
        if not seg:
            return None
        ident, digits, bracket_digits, quoted = seg.groups()
        if ident is not None:
            path.append(ident)
        elif digits is not None:
            path.append(int(digits))
        elif bracket_digits is not None:
            path.append(int(bracket_digits))
        else:
            try:
                path.append(_unquote(quoted))
            except (json.JSONDecodeError, ValueError):
                return None
        pos = seg.end()
    return Ref(step, tuple(path))


def parse_ref(text: str) -> Ref | None:
    """``"$a.b.0"`` -> ``Ref("a", ("b", 0))``; None when ``text`` is not exactly one reference."""
    if not text.startswith("$") or text.startswith("$$"):
        return None
    return _parse_body(text[1:].strip()) if _WHOLE_RE.fullmatch(text) else None


# A plan's strings are parsed when it is built, when a run takes its steps and when each step's
# arguments are resolved: the cache must hold a large plan's references (100k steps, 100k+
# distinct strings), or a run that walks them in order evicts each before it is read again.
@lru_cache(maxsize=1 << 18)
def parse_string(text: str) -> str | Ref | Template | BadReference:
    """Classify a string of a plan: literal text, a whole-value Ref, a Template, or a BadReference.

    Literal strings come back unchanged (with ``$$`` turned into ``$``).
    """
    if "$" not in text:
        return text
    if text[0] == "$" and text[1:2] not in ("$", "{"):
        simple = _SIMPLE_BODY_RE.fullmatch(text, 1)
        if simple is not None:
            step, dotted = simple.groups()
            return Ref(step, _simple_path(dotted) if dotted else ())
        ref = parse_ref(text)
        if ref is not None:
            return ref
        if re.match(rf"\$\s*{_IDENT}", text) and _WHOLE_RE.match(text):
            head = _WHOLE_RE.match(text)
            assert head is not None
            if text[head.end() :].strip() and text[head.end()] in ".[":
                return BadReference(
                    text,
                    "malformed path: quote keys that are not identifiers, "
                    'e.g. $rate["Exchange Rate"]',
                )
    if "$$" not in text:
        # Fast path: every ${...} is a plain dotted reference.
        pieces = _SIMPLE_TEMPLATE_RE.split(text)
        if len(pieces) > 1 and (len(pieces) - 1) // 3 == text.count("${"):
            simple_parts: list[str | Ref] = []
            for i in range(0, len(pieces) - 1, 3):
                if pieces[i]:
                    simple_parts.append(pieces[i])
                dotted = pieces[i + 2]
                simple_parts.append(Ref(pieces[i + 1], _simple_path(dotted) if dotted else ()))
            if pieces[-1]:
                simple_parts.append(pieces[-1])
            return Template(tuple(simple_parts))
    parts: list[str | Ref] = []
    buf: list[str] = []
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        buf.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "$$":
            buf.append("$")
            continue
        if not token.endswith("}"):
            if text.startswith("{", m.start() + 2):
                inner = text[m.start() + 3 :].split("}", 1)[0].strip()
                fix = f"${{{inner}}}" if _parse_body(inner) else "${step.field}"
                return BadReference(
                    text, "${{ ... }} has two pairs of braces", f"write {fix}, with one pair"
                )
            return BadReference(text, "unclosed ${ ... }: write ${step.field}")
        ref = _parse_body(m.group(1).strip().removeprefix("$"))
        if ref is None:
            reason, hint = reference_hint(m.group(1))
            return BadReference(text, reason, hint)
        before = "".join(buf)
        if before:
            parts.append(before)
        buf = []
        parts.append(ref)
    buf.append(text[pos:])
    tail = "".join(buf)
    if not parts:
        return tail
    if tail:
        parts.append(tail)
    return Template(tuple(parts))


# --------------------------------------------------------------------------- $step inside text


def may_hold_bare_ref(text: str) -> bool:
    """Whether ``text`` may hold a ``$step.path`` without braces: the cheap test that lets by the
    strings whose every ``$`` opens a ``${...}``, and whole references."""
    count = text.count("$")
    if not count or count == text.count("${"):
        return False
    return not (text[0] == "$" and type(parse_string(text)) is Ref)


def _bare_matches(text: str, steps: Container[str]) -> Iterator[re.Match[str]]:
    """The ``$step.path`` of ``text`` written without braces whose ``step`` is one of ``steps``."""
    for m in _BARE_RE.finditer(text):
        step = m.group(1)
        if step is not None and step in steps:
            yield m


def read_bare_refs(text: str, steps: Container[str]) -> tuple[str, list[str]] | None:
    """``text`` with each ``$step.path`` whose ``step`` is one of ``steps`` written as
    ``${step.path}``, and those references (``"step.path"``); None when there is none.

    A whole reference, a malformed one, a ``$`` before a name that is no step (``$PATH``), a
    number (``$5``) and an escaped ``$$`` are left as they are; so is ``$step.f(...)``, a method
    call, which is an error (:func:`bare_calls`) rather than a guess.

    >>> read_bare_refs("The weekday is $weekday.", {"weekday"})
    ('The weekday is ${weekday}.', ['weekday'])
    >>> read_bare_refs("Costs $5 in $HOME, $$weekday", {"weekday"}) is None
    True
    """
    if not may_hold_bare_ref(text) or isinstance(parse_string(text), BadReference):
        return None
    out: list[str] = []
    read: list[str] = []
    pos = 0
    for m in _bare_matches(text, steps):
        if m.group(3):
            continue
        body = m.group(1) + format_path(_path_of(m.group(2)))
        out.append(text[pos : m.start()])
        out.append("${" + body + "}")
        read.append(body)
        pos = m.end()
    if not read:
        return None
    out.append(text[pos:])
    return "".join(out), read


def bare_calls(text: str, steps: Container[str]) -> list[str]:
    """The ``$step.path(...)`` of ``text`` (a method call on a bare reference, which
    :func:`read_bare_refs` leaves as text), written as ``step.path(...)``."""
    found = []
    for m in _bare_matches(text, steps):
        if m.group(3):
            close = text.find(")", m.end())
            found.append(text[m.start(1) : close + 1 if close >= 0 else m.end()])
    return found


def _path_of(segments: str) -> tuple[PathSeg, ...]:
    ref = _parse_body("x" + segments)
    return ref.path if ref is not None else ()


# --------------------------------------------------------------------------- what models write

# Method and function names models reach for, by what to write instead.
_AS_TEXT = frozenset({"toString", "toJSON", "valueOf", "toLocaleString", "str", "String", "repr"})
_ROUNDING = frozenset({"toFixed", "toPrecision", "round", "Math.round", "floor", "ceil"})
_COUNTING = frozenset({"length", "len", "count", "size"})
_AS_NUMBER = frozenset({"int", "float", "Number", "parseInt", "parseFloat", "Math.abs", "abs"})
_JSON_TEXT = frozenset({"JSON.stringify", "json.dumps"})
_HEAD_RE = re.compile(rf"\s*\$?({_IDENT}{_SEGMENT}*)")
_CALL_RE = re.compile(
    rf"\s*({_IDENT}(?:\.{_IDENT})?)\s*\(\s*\$?({_IDENT}{_SEGMENT}*)\s*(,[^)]*)?\)\s*$"
)
_PATHLIKE_RE = re.compile(rf"(?<![\w.$]){_IDENT}(?:\.(?:{_IDENT}|\d+))+")
_ARITHMETIC = ("+", "-", "*", "/", "%")


def _braced(expression: str) -> str:
    """``a.b + c.d * 2`` -> ``${a.b} + ${c.d} * 2``: the references of an expression braced."""
    return _PATHLIKE_RE.sub(lambda m: "${" + m.group(0) + "}", expression)


def reference_hint(body: str) -> tuple[str, str | None]:
    """Why ``${body}`` is not a reference, and what to write instead when the mistake is one models
    make: a method or function call (``toString()``, ``len(...)``, ``toFixed(2)``), arithmetic,
    a default (``||``, ``??``), optional chaining (``?.``), a format spec or filter, a negative
    index, an unquoted key in brackets.

    >>> reference_hint("stats.mean.toString()")[1]
    'write ${stats.mean}: inside text a value is already its text'
    """
    text = body.strip()
    generic = f"${{{text}}} is not a reference"
    head_m = _HEAD_RE.match(text)
    call = _CALL_RE.match(text)
    if call is not None:  # len(a.b), round(a.b, 2), str(a.b)
        name, ref, extra = call.group(1), call.group(2), call.group(3)
        return f"{generic}: references call no functions", _fix(name, ref, extra)
    if head_m is None:
        return f"{generic}: write ${{step.field}}, where step is a step id", None
    head = head_m.group(1)
    rest = text[head_m.end() :].strip()
    if rest.startswith("(") and "." in head:
        base, _, method = head.rpartition(".")
        args = rest[1:].rstrip(")").strip() or None
        if method == "get" and args and args[0] in "\"'":
            key = args.strip("\"'")
            return (
                f"{generic}: references call no methods",
                f"write ${{{base}{format_path((key,))}}}",
            )
        return f"{generic}: references call no methods", _fix(
            method, base, f",{args}" if args else None
        )
    if rest.startswith("?.") or "?." in text:
        fixed = text.replace("?.", ".")
        if _parse_body(fixed) is not None:
            return (
                f"{generic}: there is no optional chaining",
                f"write ${{{fixed}}} (a step whose field is missing fails; a 'when' with is_none "
                "can test for it first)",
            )
    if rest[:2] in ("||", "??", "or", "if") or rest.startswith("?"):
        return (
            f"{generic}: a reference has no defaults or conditions",
            f"write ${{{head}}}; to act only when a value is there, give the step a 'when' "
            "(not_none)",
        )
    if rest.startswith(_ARITHMETIC):
        if rest[1:].lstrip()[:1] in "\"'":
            literal = rest[1:].strip().strip("\"'")
            return (
                f"{generic}: text is not joined with +",
                f"write ${{{head}}}{literal}: text around ${{...}} is kept as it is",
            )
        expression = f"${{{head}}} {rest[0]} {_braced(rest[1:].strip())}"
        return (
            f"{generic}: a reference does no arithmetic",
            f'compute it in a step of its own, e.g. calculate with expression "{expression}", '
            "and use that step's result",
        )
    if rest.startswith((":", "|")):
        return (
            f"{generic}: a reference has no format specs or filters",
            f"write ${{{head}}}; to round, use a step of its own, e.g. calculate with expression "
            f'"round(${{{head}}}, 2)"',
        )
    if rest.startswith("["):
        inner = rest[1:].split("]", 1)[0].strip()
        if inner.lstrip("-").isdigit() and inner.startswith("-"):
            return (
                f"{generic}: indexes count from 0 at the start; negative ones are not supported",
                f"write ${{{head}.0}} for the first item",
            )
        if _IDENT_RE.fullmatch(inner):
            return (
                f"{generic}: a key in brackets is quoted",
                f'write ${{{head}.{inner}}} or ${{{head}["{inner}"]}}',
            )
        return f"{generic}: a reference reads one value", f"write ${{{head}}} for the whole value"
    return f"{generic}: write ${{step.field}}", None


def method_hint(ref: str, name: str) -> str | None:
    """What to write instead of ``${ref.name}`` (a path) or ``${ref.name()}`` when ``name`` is a
    method or property models reach for (``toString``, ``length``, ``toFixed``...); None for any
    other name."""
    known = name in _AS_TEXT or name in _JSON_TEXT or name in _ROUNDING or name in _COUNTING
    return _fix(name, ref, None) if known or name in _AS_NUMBER else None


def _fix(name: str, ref: str, extra: str | None) -> str:
    """What to write instead of calling ``name`` on the reference ``ref``."""
    if name in _AS_TEXT or name in _JSON_TEXT:
        return f"write ${{{ref}}}: inside text a value is already its text"
    if name in _ROUNDING:
        digits = extra.lstrip(",").strip() if extra else ""
        expression = f"round(${{{ref}}}, {digits})" if digits else f"round(${{{ref}}})"
        return (
            f'round in a step of its own, e.g. calculate with expression "{expression}", and use '
            "that step's result"
        )
    if name in _COUNTING:
        return (
            "a reference cannot count: use a field that holds the count (statistics returns "
            "count) or a step that counts"
        )
    if name in _AS_NUMBER:
        return f'pass the value itself as a whole reference: "${ref}" (a number stays a number)'
    return f"write ${{{ref}}} and transform the value in a step of its own"


def iter_refs(value: Any, path: str = "") -> Iterator[tuple[Ref | BadReference, str]]:
    """Every reference (and malformed one) inside ``value``, with its JSON path below ``path``."""
    if isinstance(value, str):
        if "$" not in value:
            return
        parsed = parse_string(value)
        if isinstance(parsed, Ref | BadReference):
            yield parsed, path
        elif isinstance(parsed, Template):
            for ref in parsed.refs:
                yield ref, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_refs(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from iter_refs(item, f"{path}[{i}]")


def lookup(ref: Ref, outputs: Mapping[str, Any]) -> Any:
    """The value ``ref`` points at; ReferenceResolutionError saying which segment failed."""
    if ref.step not in outputs:
        raise ReferenceResolutionError(str(ref), f"step {ref.step!r} has no output")
    value = outputs[ref.step]
    walked = "$" + ref.step
    for seg in ref.path:
        if isinstance(value, Mapping):
            key: Any = seg
            if key not in value and isinstance(seg, int) and str(seg) in value:
                key = str(seg)
            if key not in value:
                keys = ", ".join(sorted(map(str, value))[:12]) or "none"
                raise ReferenceResolutionError(
                    str(ref), f"{walked} has no key {seg!r} (keys: {keys})"
                )
            value = value[key]
        elif isinstance(value, list | tuple):
            index = seg if isinstance(seg, int) else int(seg) if str(seg).isdecimal() else None
            if index is None:
                raise ReferenceResolutionError(
                    str(ref), f"{walked} is a list; index it with a number, not {seg!r}"
                )
            if not -len(value) <= index < len(value):
                raise ReferenceResolutionError(
                    str(ref), f"{walked} has {len(value)} items; index {index} is out of range"
                )
            value = value[index]
        else:
            raise ReferenceResolutionError(
                str(ref),
                f"{walked} is {type(value).__name__} {_short(value)}, not an object or list",
            )
        walked += format_path((seg,))
    return value


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_text(value: Any) -> str:
    """How a value reads inside interpolated text: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def resolve(value: Any, outputs: Mapping[str, Any]) -> Any:
    """Replace every reference in ``value`` (recursively through dicts and lists) by its value."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        parsed = parse_string(value)
        if isinstance(parsed, Ref):
            return lookup(parsed, outputs)
        if isinstance(parsed, Template):
            return "".join(
                render_text(lookup(p, outputs)) if isinstance(p, Ref) else p for p in parsed.parts
            )
        if isinstance(parsed, BadReference):
            raise ReferenceResolutionError(parsed.text, parsed.explanation)
        return parsed
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value
