"""What ``@tool`` reads from a docstring: the description and one line per argument.

A thin adapter over `docstring_parser`_ (Google, NumPy, Sphinx/ReST and Epydoc styles) that keeps
what the hand-written parser it replaced gave ``@tool``: the description is the text before the
first section; an argument's description is one line (its wrapped lines joined); ``x, y : float``
documents both; Google's ``Keyword Args`` and ``Other Parameters`` document arguments too; and a
slip in one argument's line costs that argument its description, not every argument theirs.

.. _docstring_parser: https://pypi.org/project/docstring-parser/

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

import docstring_parser
from docstring_parser import google

__all__ = ["parse_docstring"]

# The meta keys that describe an argument. Not "attribute": a class's fields parse as params too.
_ARG_KEYS = frozenset({"param", "parameter", "arg", "argument", "key", "keyword", "other_param"})


class _GoogleParser(google.GoogleParser):
    """docstring_parser's Google parser, forgiving one malformed item.

    Upstream raises ParseError for a whole docstring when one item lacks its colon
    (``units "c" or "f"``), and every argument description is lost; here only that item is.
    ``_build_meta`` is upstream's per-item hook (tests/test_registry.py notices if it goes).
    """

    def _build_meta(self, text: str, title: str) -> docstring_parser.DocstringMeta:
        try:
            return super()._build_meta(text, title)
        except docstring_parser.ParseError:
            return docstring_parser.DocstringMeta(args=["unreadable", title], description=text)


def _section(title: str, key: str) -> google.Section:
    kind = google.SectionType.MULTIPLE if key == "param" else google.SectionType.SINGULAR
    return google.Section(title, key, kind)


# Sections Napoleon knows that docstring_parser's Google list lacks: three more that document
# arguments, and some that end the description instead of running on inside it.
_GOOGLE_SECTIONS = [
    *google.DEFAULT_SECTIONS,
    *(_section(t, "param") for t in ("Keyword Args", "Keyword Arguments", "Other Parameters")),
    *(
        _section(t, t.lower())
        for t in ("Note", "Notes", "Warning", "Warnings", "See Also", "References", "Todo")
    ),
]
# Titles match exactly upstream; ``args:`` is common enough to be read as ``Args:``.
_GOOGLE = _GoogleParser(
    [*_GOOGLE_SECTIONS, *(s._replace(title=s.title.lower()) for s in _GOOGLE_SECTIONS)]
)

# docstring_parser's own choice of style counts sections of any kind, so a NumPy docstring whose
# "See Also" lists :meth: roles reads as ReST, with no arguments: here the most arguments win,
# then the most sections, then the earlier style. None is the Google parser above.
_STYLES = (
    docstring_parser.DocstringStyle.REST,
    None,
    docstring_parser.DocstringStyle.NUMPYDOC,
    docstring_parser.DocstringStyle.EPYDOC,
)

# ``:param int | None x:``: docstring_parser refuses a Sphinx field of more than three words and
# drops every description. The type is not needed (the schema's types come from the hints).
_SPHINX_TYPED_FIELD_RE = re.compile(
    r"^([ \t]*):(param|parameter|arg|argument|key|keyword)[ \t]+[^:\n]*[ \t](\*{0,2}\w+)[ \t]*:",
    re.M,
)


def _prepare(doc: str) -> str:
    """``doc`` cleaned as PEP 257 says, with two shapes docstring_parser misreads made plain."""
    text = _SPHINX_TYPED_FIELD_RE.sub(r"\1:\2 \3:", inspect.cleandoc(doc))
    first, _, rest = text.partition("\n")
    if _GOOGLE.titles_re.fullmatch(first) and rest[:1] not in ("", " ", "\t"):
        # ``"""Args:`` on the docstring's first line: cleaning dedents the items below it to the
        # margin, where they no longer read as the section's items (docstring_parser issue 115).
        indented = "\n".join("    " + line if line else line for line in rest.split("\n"))
        text = f"{first}\n{indented}"
    return text


def _arg_params(parsed: docstring_parser.Docstring) -> list[docstring_parser.DocstringParam]:
    return [p for p in parsed.params if p.args[0] in _ARG_KEYS]


def _parse(text: str) -> docstring_parser.Docstring | None:
    """The best reading of cleaned ``text`` (see ``_STYLES``); None when no style reads it."""
    readings = []
    for style in _STYLES:
        # Each style cleans its input again; after a blank first line that changes nothing, so
        # the indentation _prepare fixed stays.
        source = "\n" + text
        try:
            if style is None:
                readings.append(_GOOGLE.parse(source))
            else:
                readings.append(docstring_parser.parse(source, style))
        except docstring_parser.ParseError:
            continue
    return max(readings, key=lambda d: (len(_arg_params(d)), len(d.meta)), default=None)


def _one_line(text: str | None) -> str:
    return " ".join(line.strip() for line in (text or "").splitlines() if line.strip())


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description and the per-argument descriptions of a docstring (``""``, ``{}`` if
    none)."""
    if not doc or not doc.strip():
        return "", {}
    text = _prepare(doc)
    parsed = _parse(text)
    if parsed is None:
        return text, {}
    args: dict[str, str] = {}
    for param in _arg_params(parsed):
        for name in param.arg_name.split(","):  # NumPy's "x, y : float"
            args[name.strip().lstrip("*")] = _one_line(param.description)
    return (parsed.description or "").strip(), args
