"""The push scanner of streamed plans: each step exactly once and exactly when its last character
arrives, whatever the pieces (1-24 characters, cut inside strings, escapes and characters), in
compact and indented JSON; a streamed string field decoded as it comes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tooldag.plan.stream import StepScanner, TextField

# Text that exercises the scanner: quotes, backslashes, braces and brackets inside strings,
# escapes, characters outside the BMP (a surrogate pair in JSON's \u form), combining marks.
_TRICKY = st.text(alphabet=st.sampled_from(list('ab "\\{}[],:\n\té€😀\u0301\u200d/$')), max_size=12)
_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(-1e6, 1e6) | _TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
    max_leaves=8,
)
_STEP = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
        "tool": st.sampled_from(["now", "calculate", "http_get"]),
        "args": st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), _VALUE, max_size=3),
    }
)
_PLAN = st.fixed_dictionaries(
    {"goal": _TRICKY, "steps": st.lists(_STEP, max_size=6), "answer": _TRICKY | st.none()}
)


def _step_ends(text: str, steps_at: int) -> list[int]:
    """Where each element of the array starting at ``steps_at`` ends: the oracle, from
    json's own decoder."""
    decoder = json.JSONDecoder()
    ends = []
    i = steps_at + 1
    while True:
        while text[i] in " \n\t,":
            i += 1
        if text[i] == "]":
            return ends
        _, i = decoder.raw_decode(text, i)
        ends.append(i)


def _pieces(text: str, sizes: list[int]) -> list[tuple[int, int, str]]:
    """``text`` cut into pieces of the given sizes (cycled): (start, end, piece)."""
    out, i, k = [], 0, 0
    while i < len(text):
        size = sizes[k % len(sizes)]
        out.append((i, min(i + size, len(text)), text[i : i + size]))
        i += size
        k += 1
    return out


def _feed(text: str, sizes: list[int]) -> list[tuple[int, int, Any]]:
    """Each step the scanner returned, with the span of the piece that completed it."""
    scanner = StepScanner()
    found = []
    for start, end, piece in _pieces(text, sizes):
        found.extend((start, end, step) for step in scanner.feed(piece))
    return found


@settings(max_examples=300, deadline=None)
@given(
    plan=_PLAN,
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
    sizes=st.lists(st.integers(1, 24), min_size=1, max_size=20),
)
def test_every_step_is_returned_once_by_the_piece_that_completes_it(
    plan: dict[str, Any], indent: int | None, ascii_only: bool, sizes: list[int]
) -> None:
    text = json.dumps(plan, indent=indent, ensure_ascii=ascii_only)
    ends = _step_ends(text, text.index("[", text.index('"steps"')))
    found = _feed(text, sizes)
    assert [step for _, _, step in found] == plan["steps"]
    for (start, end, _), step_end in zip(found, ends, strict=True):
        # The piece that brought the closing brace, not an earlier or a later one.
        assert start < step_end <= end


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(_STEP, min_size=1, max_size=5),
    sizes=st.lists(st.integers(1, 24), min_size=1, max_size=10),
)
def test_a_bare_list_of_steps_in_a_fenced_reply_streams_too(
    steps: list[dict[str, Any]], sizes: list[int]
) -> None:
    text = "Here is the plan:\n```json\n" + json.dumps(steps, indent=1) + "\n```\nDone."
    assert [s for _, _, s in _feed(text, sizes)] == steps


def test_a_bracket_in_the_prose_before_the_plan_gets_no_step_out_early() -> None:
    # Taken for the start of the JSON, it is a list closed at once: nothing is returned (the
    # whole reply's parse finds the plan after the prose), and certainly no wrong step.
    text = 'Plan [v1]: {"steps": [{"id": "a", "tool": "now"}]}'
    assert [s for _, _, s in _feed(text, [5])] == []


def test_a_step_is_not_returned_before_its_closing_brace() -> None:
    scanner = StepScanner()
    text = '{"goal": "g", "steps": [{"id": "a", "tool": "now", "args": {"x": "}"}}'
    for i in range(len(text) - 1):
        assert scanner.feed(text[i]) == []
    assert scanner.feed(text[-1]) == [{"id": "a", "tool": "now", "args": {"x": "}"}}]
    assert not scanner.steps_closed
    assert scanner.feed("]") == [] and scanner.steps_closed


def test_steps_nested_elsewhere_are_not_the_plan_s_steps() -> None:
    scanner = StepScanner()
    text = '{"goal": {"steps": [{"id": "no"}]}, "other": [{"id": "no"}], "steps": [{"id": "a"}]}'
    assert scanner.feed(text) == [{"id": "a"}]


def test_a_step_written_with_python_literals_is_read_leniently() -> None:
    scanner = StepScanner()
    assert scanner.feed('{"steps": [{"id": "a", "args": {"on": True,},}]}') == [
        {"id": "a", "args": {"on": True}}
    ]


def test_broken_json_leaves_the_scanner_lost_and_silent() -> None:
    scanner = StepScanner()
    assert scanner.feed('{"steps": [{"id": "a"}]]') == [{"id": "a"}]
    assert scanner.lost
    assert scanner.feed('{"steps": [{"id": "b"}]}') == []


@settings(max_examples=300, deadline=None)
@given(
    answer=_TRICKY,
    before=_VALUE,
    ascii_only=st.booleans(),
    sizes=st.lists(st.integers(1, 24), min_size=1, max_size=20),
)
def test_a_text_field_streams_exactly_its_decoded_characters(
    answer: str, before: Any, ascii_only: bool, sizes: list[int]
) -> None:
    reply = {"thought": before, "action": "finish", "answer": answer, "reason": None}
    text = json.dumps(reply, ensure_ascii=ascii_only)
    field = TextField("answer")
    pieces = [field.feed(piece) for _, _, piece in _pieces(text, sizes)]
    assert "".join(pieces) == answer
    for piece in pieces:  # never half a surrogate pair, however the escapes were cut
        assert not any("\ud800" <= c <= "\udfff" for c in piece)
    assert field.closed


def test_a_text_field_hands_on_text_as_it_arrives() -> None:
    field = TextField("answer")
    assert field.feed('{"thought": "answer: no", "answer": "It is ') == "It is "
    assert field.feed("12\\") == "12"
    assert field.feed("u00b0C \\ud83d") == "°C "
    assert field.feed('\\ude00"}') == "😀"
