"""Reading a plan while it is being written: each step the moment its closing brace arrives.

An LLM streams a plan as pieces of text cut anywhere: inside a string, between a backslash and
the character it escapes, between the halves of a surrogate pair. :class:`StepScanner` is fed
those pieces and returns every step (the decoded JSON value of one element of the plan's
``steps`` array, or of a bare top-level array of steps) completed by the piece, exactly once and
exactly when its last character arrives. :class:`TextField` does the same for the text of one
top-level string field (a streamed ``answer``), handing on the decoded characters as they come.

Both are push scanners over the raw text: one pass tracks nesting, strings and escapes, and only
the text of a completed element is decoded (once, by :func:`json.loads`), so the cost is linear
in the length of the reply. Nothing re-parses the growing text, and no partial value is ever
guessed at: a step is either complete or not returned.

>>> scanner = StepScanner()
>>> scanner.feed('{"goal": "g", "steps": [{"id": "a", "to')
[]
>>> scanner.feed('ol": "now"}, {"id": "b"')
[{'id': 'a', 'tool': 'now'}]
>>> field = TextField("answer")
>>> field.feed('{"answer": "caf\\\\u00'), field.feed('e9 au lait"}')
('caf', 'é au lait')

Text that is not JSON (prose before the plan, a code fence) is skipped up to the first ``{`` or
``[``; JSON that stops making sense leaves the scanner :attr:`~StepScanner.lost` (it returns
nothing more): the finished reply is still parsed as a whole by :func:`~tooldag.plan.parse_plan`,
which stays the judge of what the plan is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._jsontext import lenient_loads

__all__ = ["StepScanner", "TextField"]

# Outside strings only these characters change the scanner's state; inside a string only the
# quote and the backslash do. Searching for them skips everything else at C speed.
_STRUCTURE = re.compile(r'[{}\[\]",:]')
_STRING_STOP = re.compile(r'["\\]')
_ROOT = re.compile(r"[{\[]")
# The longest escape is a surrogate pair, "\ud83d\ude00": text held back from a streamed field
# while the end of what has arrived may be part of one.
_LONGEST_ESCAPE = 12


class _Frame:
    """One open container: an object (``key`` is the member being read) or an array."""

    __slots__ = ("expect_key", "is_object", "key", "steps")

    def __init__(self, is_object: bool, steps: bool = False) -> None:
        self.is_object = is_object
        self.key: str | None = None
        self.expect_key = is_object
        self.steps = steps
        """An array whose elements are the plan's steps."""


class _Scanner:
    """The shared push scanner: nesting, strings and escapes, over text fed in pieces."""

    def __init__(self) -> None:
        self._stack: list[_Frame] = []
        self._started = False
        self.done = False
        """The top-level value is complete."""
        self.lost = False
        """The text stopped being JSON the scanner can follow: it reports nothing more."""
        self._in_string = False
        self._escape = False  # the previous piece ended in the backslash of an escape
        self._role = ""  # of the string being read: "key", "text" or "" (not kept)
        self._raw: list[str] = []  # raw text of the key or text string being read
        self._capture: list[str] | None = None  # raw text of the element being read
        self._capture_depth = 0

    # -- what the two scanners do differently
    def _array_is_steps(self) -> bool:
        return False

    def _string_is_text(self) -> bool:
        return False

    def _element(self, value: Any) -> None:
        """A complete element of a steps array, decoded."""

    def _text_ended(self) -> None:
        """The text string (``_string_is_text``) ended; its raw text is in ``_raw``."""

    def _steps_ended(self) -> None:
        """A steps array ended."""

    # -- the scan
    def _scan(self, piece: str) -> None:
        if self.done or self.lost or not piece:
            return
        i, n = 0, len(piece)
        if not self._started:
            found = _ROOT.search(piece)
            if found is None:
                return  # prose or a fence before the JSON
            i = found.start()
            self._started = True
        capture_from = i
        stack = self._stack
        raw = self._raw
        while i < n:
            if self._in_string:
                if self._escape:  # the character escaped by a backslash ending the last piece
                    self._escape = False
                    if self._role:
                        raw.append(piece[i])
                    i += 1
                    continue
                stop = _STRING_STOP.search(piece, i)
                if stop is None:
                    if self._role:
                        raw.append(piece[i:])
                    break
                j = stop.start()
                if piece[j] == "\\":
                    end = min(j + 2, n)
                    self._escape = j + 1 == n  # the escaped character is in the next piece
                    if self._role:
                        raw.append(piece[i:end])
                    i = end
                    continue
                if self._role:
                    raw.append(piece[i:j])
                self._end_string()
                raw = self._raw
                i = j + 1
                continue
            stop = _STRUCTURE.search(piece, i)
            if stop is None:
                break
            j = stop.start()
            char = piece[j]
            i = j + 1
            top = stack[-1] if stack else None
            if char == '"':
                self._in_string = True
                if top is not None and top.is_object and top.expect_key:
                    self._role = "key"
                elif self._string_is_text():
                    self._role = "text"
                else:
                    self._role = ""
                raw = self._raw = []
            elif char == "{" or char == "[":
                is_object = char == "{"
                steps = not is_object and self._array_is_steps()
                if top is not None and top.steps and self._capture is None:
                    self._capture = []
                    self._capture_depth = len(stack) + 1
                    capture_from = j
                stack.append(_Frame(is_object, steps))
            elif char == "}" or char == "]":
                if top is None or top.is_object != (char == "}"):
                    self.lost = True
                    return
                stack.pop()
                if self._capture is not None and len(stack) + 1 == self._capture_depth:
                    self._capture.append(piece[capture_from : j + 1])
                    text = "".join(self._capture)
                    self._capture = None
                    self._decode_element(text)
                if top.steps:
                    self._steps_ended()
                if not stack:
                    self.done = True
                    return
            elif top is not None and top.is_object:
                if char == ":":
                    top.expect_key = False
                else:  # a comma between members
                    top.expect_key = True
                    top.key = None
        if self._capture is not None:
            self._capture.append(piece[capture_from:])

    def _end_string(self) -> None:
        self._in_string = False
        role, self._role = self._role, ""
        if role == "key":
            self._stack[-1].key = _decode_string("".join(self._raw))
        elif role == "text":
            self._text_ended()
        self._raw = []

    def _decode_element(self, text: str) -> None:
        try:
            value = json.loads(text, strict=False)
        except ValueError:
            try:
                value = lenient_loads(text)
            except Exception:  # not decodable on its own: the whole reply's parse decides
                return
        self._element(value)


def _decode_string(raw: str) -> str | None:
    """The text of a JSON string's raw content (between the quotes); None if it is not valid."""
    try:
        value = json.loads(f'"{raw}"', strict=False)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _high_surrogate(text: str) -> bool:
    return bool(text) and "\ud800" <= text[-1] <= "\udbff"


class StepScanner(_Scanner):
    """Feed a plan's text in pieces; :meth:`feed` returns the steps each piece completed.

    A step is an element of the ``steps`` array of the top-level object, or of a top-level array
    (a bare list of steps), decoded as JSON (leniently if it must be). Elements are returned as
    decoded, not yet normalised into :class:`~tooldag.plan.model.Step` models.
    """

    def __init__(self) -> None:
        super().__init__()
        self._found: list[Any] = []
        self.count = 0
        """Steps returned so far."""
        self.steps_closed = False
        """The steps array has ended: every step of the reply has been returned."""

    def _array_is_steps(self) -> bool:
        stack = self._stack
        if not stack:
            return True  # a bare list of steps
        return len(stack) == 1 and stack[0].is_object and stack[0].key == "steps"

    def _element(self, value: Any) -> None:
        self._found.append(value)

    def _steps_ended(self) -> None:
        self.steps_closed = True

    def feed(self, piece: str) -> list[Any]:
        """Scan ``piece``; the steps it completed, in order."""
        self._scan(piece)
        found, self._found = self._found, []
        self.count += len(found)
        return found


class TextField(_Scanner):
    """Feed a JSON object's text in pieces; :meth:`feed` returns the decoded characters of the
    top-level string field ``key`` that each piece brought (``""`` when none)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._out: list[str] = []
        self.closed = False
        """The field's string has ended."""

    def _string_is_text(self) -> bool:
        stack = self._stack
        return (
            not self.closed
            and len(stack) == 1
            and stack[0].is_object
            and not stack[0].expect_key
            and stack[0].key == self.key
        )

    def _text_ended(self) -> None:
        self.closed = True
        decoded = _decode_string("".join(self._raw))
        if decoded is not None:
            self._out.append(decoded)

    def _flush(self) -> None:
        """Hand on what has arrived of the field, but for an escape it may end inside of."""
        raw = "".join(self._raw)
        for cut in range(len(raw), max(-1, len(raw) - _LONGEST_ESCAPE), -1):
            decoded = _decode_string(raw[:cut])
            if decoded is not None and not _high_surrogate(decoded):
                break
        else:
            self._raw = [raw]
            return
        if decoded:
            self._out.append(decoded)
        self._raw = [raw[cut:]]

    def feed(self, piece: str) -> str:
        """Scan ``piece``; the field's characters it brought."""
        self._scan(piece)
        if self._in_string and self._role == "text":
            self._flush()
        out, self._out = "".join(self._out), []
        return out
