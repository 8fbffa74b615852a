"""The reference language: typed whole-value refs, ${} interpolation, paths, escapes, lookups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tooldag.errors import ReferenceResolutionError
from tooldag.plan.refs import (
    BadReference,
    Ref,
    Template,
    format_path,
    iter_refs,
    lookup,
    parse_ref,
    parse_string,
    render_text,
    resolve,
)

OUTPUTS: dict[str, Any] = {
    "weather": {"temp": 18, "condition": "rainy", "location": "London", "ok": True},
    "search": {"results": [{"url": "https://a.example", "score": 0.9}, {"url": "https://b"}]},
    "rate": {"Exchange Rate": 1.17, 'say "hi"': "quoted", "0": "string zero"},
    "items": ["first", "second"],
    "nothing": None,
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$weather", OUTPUTS["weather"]),
        ("$weather.temp", 18),
        ("$weather.ok", True),
        ("$search.results", OUTPUTS["search"]["results"]),
        ("$search.results.0", {"url": "https://a.example", "score": 0.9}),
        ("$nothing", None),
    ],
)
def test_whole_value_reference_keeps_the_type(text: str, value: Any) -> None:
    assert resolve(text, OUTPUTS) == value
    assert type(resolve(text, OUTPUTS)) is type(value)


def test_interpolation_renders_text_and_json() -> None:
    assert resolve("It is ${weather.temp} C in ${weather.location}", OUTPUTS) == (
        "It is 18 C in London"
    )
    assert resolve("ok=${weather.ok}, none=${nothing}", OUTPUTS) == "ok=true, none=null"
    assert resolve("first: ${search.results.0}", OUTPUTS) == (
        'first: {"url": "https://a.example", "score": 0.9}'
    )


def test_resolve_walks_dicts_and_lists_and_leaves_other_values() -> None:
    value = {"a": ["$weather.temp", {"b": "${weather.condition}!"}], "n": 3, "s": "plain"}
    assert resolve(value, OUTPUTS) == {"a": [18, {"b": "rainy!"}], "n": 3, "s": "plain"}


@pytest.mark.parametrize("text", ["$search.results.0.url", "$search.results[0].url"])
def test_integer_index_with_dot_or_brackets(text: str) -> None:
    assert parse_string(text) == Ref("search", ("results", 0, "url"))
    assert resolve(text, OUTPUTS) == "https://a.example"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('$rate["Exchange Rate"]', "Exchange Rate"),
        ("$rate['Exchange Rate']", "Exchange Rate"),
        ('$rate["say \\"hi\\""]', 'say "hi"'),
        ('$rate["0"]', "0"),
    ],
)
def test_quoted_keys(text: str, key: str) -> None:
    assert parse_string(text) == Ref("rate", (key,))
    assert resolve(text, OUTPUTS) == OUTPUTS["rate"][key]
    assert resolve("${" + text[1:] + "}", OUTPUTS) == str(OUTPUTS["rate"][key])


def test_quoted_digit_key_is_a_key_and_bare_digits_an_index() -> None:
    assert parse_string('$rate["0"]') == Ref("rate", ("0",))
    assert parse_string("$items.0") == Ref("items", (0,))
    assert resolve("$items.1", OUTPUTS) == "second"
    # An index into an object finds a key spelled like the number.
    assert resolve("$rate.0", OUTPUTS) == "string zero"


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("$$", "$"),
        ("costs $$5", "costs $5"),
        ("$$weather.temp", "$weather.temp"),
        ("$${weather.temp}", "${weather.temp}"),
        ("costs $5 or 5$", "costs $5 or 5$"),
        ("$", "$"),
    ],
)
def test_double_dollar_and_lone_dollars_are_literal(text: str, literal: str) -> None:
    assert parse_string(text) == literal
    assert resolve(text, OUTPUTS) == literal


def test_escaped_dollar_next_to_an_interpolation() -> None:
    assert resolve("$$${weather.temp}", OUTPUTS) == "$18"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("$weather.", "malformed path"),
        ("$weather.temp[", "malformed path"),
        ("$rate[Exchange Rate]", "malformed path"),
        ("${weather.temp", "unclosed"),
        ("in ${weather temp}", "is not a reference"),
        ("${}", "is not a reference"),
        ("${__import__('os').system('ls')}", "is not a reference"),
    ],
)
def test_malformed_references_say_how(text: str, reason: str) -> None:
    parsed = parse_string(text)
    assert isinstance(parsed, BadReference)
    assert reason in parsed.reason
    with pytest.raises(ReferenceResolutionError, match="does not resolve"):
        resolve(text, OUTPUTS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$forecast.temp", "step 'forecast' has no output"),
        (
            "$weather.humidity",
            "$weather has no key 'humidity' (keys: condition, location, ok, temp)",
        ),
        ("$search.results.5.url", "$search.results has 2 items; index 5 is out of range"),
        ("$search.results.first", "$search.results is a list; index it with a number"),
        ("$weather.temp.celsius", "$weather.temp is int 18, not an object or list"),
        ("$search.results.1.score", "$search.results.1 has no key 'score'"),
    ],
)
def test_lookup_errors_name_the_failing_segment(text: str, message: str) -> None:
    ref = parse_string(text)
    assert isinstance(ref, Ref)
    with pytest.raises(ReferenceResolutionError) as error:
        lookup(ref, OUTPUTS)
    assert message in str(error.value)
    assert error.value.ref == text


class Secret:
    password = "hunter2"

    def __getitem__(self, key: str) -> str:
        return "via getitem"


def test_references_are_data_lookups_only() -> None:
    outputs = {"obj": Secret(), "text": "abc", "d": {"k": 1}}
    for text in ("$obj.password", "$text.upper", "$d.__class__", "$d.keys", "$text.__len__"):
        with pytest.raises(ReferenceResolutionError):
            resolve(text, outputs)


def test_iter_refs_finds_every_reference_with_its_path() -> None:
    value = {"a": "$x.y", "b": ["lit", "${p} and ${q.r}"], "c": {"d": "${bad"}}
    found = [(str(r) if isinstance(r, Ref) else r.text, path) for r, path in iter_refs(value)]
    assert found == [("$x.y", "a"), ("$p", "b[1]"), ("$q.r", "b[1]"), ("${bad", "c.d")]


def test_template_parts_keep_text_and_refs_in_order() -> None:
    parsed = parse_string("${a}${b.c} and $$ ${ $d }")
    assert parsed == Template((Ref("a"), Ref("b", ("c",)), " and $ ", Ref("d")))


def test_parse_ref_accepts_exactly_one_reference() -> None:
    assert parse_ref("$a.b") == Ref("a", ("b",))
    for text in ("a.b", "$$a", "$a.b c", "${a}", "$a.", ""):
        assert parse_ref(text) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [("x", "x"), (3, "3"), (2.5, "2.5"), (None, "null"), ([1, "é"], '[1, "é"]'), (True, "true")],
)
def test_render_text(value: Any, text: str) -> None:
    assert render_text(value) == text


_keys = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.text(min_size=0, max_size=8),
)
_paths = st.lists(st.one_of(st.integers(min_value=0, max_value=999), _keys), max_size=5)


@given(step=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), path=_paths)
@example(step="s", path=["a}b"])
@example(step="s", path=["{", 0, "'\"", "é", "x\\y"])
def test_a_formatted_reference_parses_back_to_itself(step: str, path: list[str | int]) -> None:
    ref = Ref(step, tuple(path))
    assert str(ref) == "$" + step + format_path(ref.path)
    assert parse_string(str(ref)) == ref
    assert parse_string("x ${" + str(ref)[1:] + "} y") == Template(("x ", ref, " y"))


@given(st.text(max_size=60))
def test_parse_string_never_raises(text: str) -> None:
    parsed = parse_string(text)
    assert isinstance(parsed, str | Ref | Template | BadReference)
