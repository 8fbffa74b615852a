"""The answer checkers on hand-checked examples: exact text, a number with a tolerance, a regex."""

from __future__ import annotations

import pydantic
import pytest

from tooldag.evaluation.answers import Expected, check_answer, numbers_in


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("17% of 2,340 is 397.8.", [17, 2340, 397.8]),
        ("It costs $1,000.00 in all", [1000.0]),
        ("a share of 35.1%", [35.1]),
        ("-3.5 and +2 and .5", [-3.5, 2, 0.5]),
        ("1e-3 or 2.5E2", [0.001, 250.0]),
        ("1,234,567 people", [1234567]),
        ("the list 1,2,3", [1, 2, 3]),
        ("1,2345 is not grouped", [1, 2345]),
        ("2025-06-13 is a Friday", [2025, 6, 13]),  # hyphens, not minus signs
        ("5-3", [5, 3]),
        ("v2 and item3 are names, not numbers", []),
        ("no numbers here", []),
    ],
)
def test_numbers_are_read_as_written(text: str, numbers: list[float]) -> None:
    assert numbers_in(text) == pytest.approx(numbers)


@pytest.mark.parametrize(
    ("answer", "right"),
    [
        ("Friday", True),
        ("  friday. ", True),  # trimmed, one full stop dropped, case ignored
        ("FRIDAY", True),
        ("Friday!", False),
        ("It is Friday", False),  # exact means the whole answer
        ("Fri day", False),
    ],
)
def test_exact(answer: str, right: bool) -> None:
    assert check_answer(Expected(exact="Friday"), answer) is right


def test_exact_collapses_white_space() -> None:
    assert check_answer(Expected(exact="New  York"), "new york\n")


@pytest.mark.parametrize(
    ("answer", "right"),
    [
        ("17% of 2,340 is 397.8.", True),
        ("about 397.80", True),
        ("397.805", True),  # within 0.01
        ("397.82", False),  # 0.02 off
        ("three hundred ninety-seven point eight", False),
        ("", False),
    ],
)
def test_number_with_tolerance(answer: str, right: bool) -> None:
    assert check_answer(Expected(number=397.8, tolerance=0.01), answer) is right


def test_number_without_tolerance_is_one_in_a_million() -> None:
    expected = Expected(number=2598960)
    assert check_answer(expected, "2,598,960 hands")
    assert check_answer(expected, "2598962 hands")  # 2 off: within 2.6
    assert not check_answer(expected, "2598965 hands")  # 5 off
    assert check_answer(Expected(number=0.5), "0.5000001")
    assert not check_answer(Expected(number=0.5), "0.501")


def test_regex_is_searched_as_written() -> None:
    expected = Expected(regex=r"INV-\d{4}-\d+")
    assert check_answer(expected, "The invoice number is INV-2024-0042.")
    assert not check_answer(expected, "the invoice number is inv-2024-0042")  # case counts
    assert check_answer(Expected(regex=r"(?i)inv-\d+"), "INV-2024")


def test_no_answer_is_wrong() -> None:
    for expected in (Expected(exact="x"), Expected(number=1), Expected(regex=".*")):
        assert not check_answer(expected, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "exactly one of"),
        ({"exact": "a", "number": 1}, "exactly one of"),
        ({"regex": "(unclosed"}, "does not compile"),
        ({"exact": "a", "tolerance": 0.1}, '"tolerance" goes with "number"'),
        ({"number": 1, "tolerance": -1}, "greater than or equal to 0"),
        ({"numbr": 1}, "Extra inputs"),
    ],
)
def test_a_malformed_expectation_says_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Expected.model_validate(data)


def test_describe() -> None:
    assert Expected(exact="Friday").describe() == "= Friday"
    assert Expected(number=397.8, tolerance=0.01).describe() == "397.8 ± 0.01"
    assert Expected(regex=r"\d+").describe() == r"/\d+/"
