"""Whether an answer is right: an exact text, a number within a tolerance, or a regular expression.

The answer checked is the run's rendered ``answer`` (the plan's template over the step outputs):
what a user would read.

- ``{"exact": "Friday"}``: equal after trimming, collapsing runs of white space, dropping one
  trailing full stop and ignoring case (``" friday. "`` matches; ``"It is Friday"`` does not).
- ``{"number": 397.8, "tolerance": 0.05}``: some number written in the answer is within
  ``tolerance`` (absolute) of 397.8. Numbers are read as people write them: ``2,340``,
  ``-3.5``, ``1e-3``, ``35.1%`` (read as 35.1), ``$1,000.00``. Without a tolerance, a relative
  one of one in a million. Any number counts, so an answer that only restates the goal's own
  figures can pass when the expected value is one of them: a goal set should ask for a number
  the goal does not contain (the shipped set does, and its tests check).
- ``{"regex": "INV-\\d+"}``: the pattern is found anywhere in the answer (``re.search``, as
  written: add ``(?i)`` to ignore case).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Expected", "check_answer", "numbers_in"]

# A number as written in prose: not glued to a word or a number before it (so the "-" of
# "2024-01-05" or "item-3" is a hyphen, not a sign), thousands grouped by commas or not, an
# optional fraction and exponent.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+(?![\d,]*\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"|(?<![\w.])[-+]?\.\d+(?:[eE][-+]?\d+)?"
)
_SPACES = re.compile(r"\s+")
_RELATIVE = 1e-6


class Expected(BaseModel):
    """The expected answer of a goal: exactly one of ``exact``, ``number`` or ``regex``."""

    model_config = ConfigDict(extra="forbid")

    exact: str | None = None
    number: float | None = None
    tolerance: float | None = Field(default=None, ge=0)
    regex: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Expected:
        given = [k for k in ("exact", "number", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                'give exactly one of "exact", "number" or "regex" (e.g. {"number": 42, '
                '"tolerance": 0.01})'
            )
        if self.tolerance is not None and self.number is None:
            raise ValueError('"tolerance" goes with "number"')
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        return self

    def describe(self) -> str:
        """How it reads in a table: ``= Friday``, ``397.8 ± 0.05``, ``/INV-\\d+/``."""
        if self.exact is not None:
            return f"= {self.exact}"
        if self.number is not None:
            tol = f" ± {self.tolerance:g}" if self.tolerance else ""
            return f"{self.number:g}{tol}"
        return f"/{self.regex}/"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text``, in order (see the module docstring for the forms)."""
    found: list[float] = []
    for match in _NUMBER.finditer(text):
        try:
            found.append(float(match.group(0).replace(",", "")))
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            continue
    return found


def _normal(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text.casefold()


def check_answer(expected: Expected, answer: str | None) -> bool:
    """Whether ``answer`` (``None``: the run gave none) is what ``expected`` asks for."""
    if answer is None:
        return False
    if expected.exact is not None:
        return _normal(answer) == _normal(expected.exact)
    if expected.number is not None:
        want = expected.number
        tol = expected.tolerance
        if tol is None:
            tol = _RELATIVE * max(1.0, abs(want))
        return any(abs(got - want) <= tol for got in numbers_in(answer))
    assert expected.regex is not None
    return re.search(expected.regex, answer) is not None
