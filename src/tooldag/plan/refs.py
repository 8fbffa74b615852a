"""The reference language of plans.

- A string that is exactly ``$id`` or ``$id.path`` is a *whole-value* reference: it is replaced by
  the typed value (dict, list, number, ...), never by its text.
- ``${id.path}`` inside a longer string is interpolated as text (JSON for non-strings).
- A path is keys and integer indexes: ``$search.results.0.url``; a key that is not an identifier is
  quoted: ``$rate["Exchange Rate"]``. ``[0]`` is accepted as well as ``.0``.
- ``$$`` is a literal dollar.

References are data lookups only: no ``eval``, no attribute access on objects.

>>> resolve("$weather.temp", {"weather": {"temp": 18}})
18
>>> resolve("It is ${weather.temp} C", {"weather": {"temp": 18}})
'It is 18 C'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import ReferenceResolutionError

__all__ = [
    "BadReference",
    "Ref",
    "Template",
    "format_path",
    "iter_refs",
    "lookup",
    "parse_ref",
    "parse_string",
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
    """A string that tries to be a reference and is malformed; ``reason`` says how."""

    text: str
    reason: str


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


@lru_cache(maxsize=65536)
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
            return BadReference(text, "unclosed ${ ... }: write ${step.field}")
        ref = _parse_body(m.group(1).strip().removeprefix("$"))
        if ref is None:
            return BadReference(
                text, f"${{{m.group(1)}}} is not a reference: write ${{step.field}}"
            )
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
            raise ReferenceResolutionError(parsed.text, parsed.reason)
        return parsed
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value
