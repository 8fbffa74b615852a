"""The calc pack: safe arithmetic (fuzzed) and statistics, called through a registry."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tooldag.packs.calc import FUNCTIONS, MAX_INT_BITS, evaluate

from packs_fixtures import pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError

registry = pack_registry("calc")


def calculate(expression: str) -> object:
    return registry.execute("calculate", expression=expression)["result"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 * (3 + 4) ** 2", 98),
        ("7 // 2 + 7 % 2", 4),
        ("-3 ** 2", -9),
        ("2 ^ 10", 1024),
        ("round(sqrt(2), 3)", 1.414),
        ("log(8, 2)", 3.0),
        ("max(1, 2.5, -3) + min(4, 5)", 6.5),
        ("factorial(20)", 2432902008176640000),
        ("comb(52, 5)", 2598960),
        ("floor(pi * 100) / 100", 3.14),
        ("1 / 4", 0.25),
    ],
)
def test_calculate_evaluates_arithmetic_and_math_functions(
    expression: str, expected: float
) -> None:
    assert calculate(expression) == expected


def test_calculate_returns_exact_integers_up_to_the_bound() -> None:
    assert calculate("2 ** 4000") == 2**4000


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "too large"),
        ("factorial(10**6)", "too large"),
        ("factorial(100000)", "too large"),
        ("comb(10**6, 5*10**5)", "too large"),
        ("perm(10**5, 10**5)", "too large"),
        ("(2**4000) * (2**4000)", "too large"),
        ("lcm(2**4000 - 1, 2**4000 - 3)", "4096 bits"),
        ("round(5, -10**9)", "digits"),
        ("10**4000 / 3", "too large"),
        ("1e308 * 10", "not a finite number"),
        ("exp(1000)", "too large for a floating-point"),
    ],
)
def test_calculate_refuses_huge_results_before_computing_them(
    expression: str, message: str
) -> None:
    with pytest.raises(PermanentToolError, match=message):
        calculate(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "unknown function"),
        ("(1).__class__", "Attribute is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("sqrt", "call it with parentheses"),
        ("'a' * 3", "is not a number"),
        ("True + 1", "is not a number"),
        ("[1, 2]", "List is not allowed"),
        ("1 if 2 else 3", "IfExp is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("sqrt(x=4)", "positional arguments only"),
        ("1 +", "not a valid expression"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** (1/3)", "complex"),
        ("1 << 3", "operator LShift is not allowed"),
        ("1 < 3", "Compare is not allowed"),
        ("-" * 200 + "1", "too long or too deeply nested"),
        ("min()", "at least one number"),
    ],
)
def test_calculate_refuses_what_is_not_arithmetic_with_a_clear_error(
    expression: str, message: str
) -> None:
    with pytest.raises(PermanentToolError, match=message):
        calculate(expression)


def test_calculate_error_lists_what_is_allowed() -> None:
    with pytest.raises(PermanentToolError) as caught:
        calculate("open('/etc/passwd')")
    assert "sqrt" in str(caught.value) and "pi" in str(caught.value)


def test_calculate_argument_length_is_bounded_by_the_schema() -> None:
    with pytest.raises(ToolArgumentError, match="expression"):
        calculate("1+" * 600 + "1")


def _settles(expression: str) -> None:
    """A finite number or a PermanentToolError: never any other outcome."""
    try:
        result = evaluate(expression)
    except PermanentToolError as exc:
        assert str(exc)
        return
    assert isinstance(result, int | float) and not isinstance(result, bool)
    if isinstance(result, float):
        assert math.isfinite(result)
    else:
        assert result.bit_length() <= MAX_INT_BITS


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120))
def test_calculate_fuzzed_with_any_text_only_ever_fails_cleanly(expression: str) -> None:
    _settles(expression)


_atoms = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["pi", "e", "tau", "9", "99999", "0", "1e308", "2**4095"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(
        children, st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "^"]), children
    ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    unary = st.tuples(st.sampled_from(["-", "+"]), children).map(lambda t: f"{t[0]}{t[1]}")
    call = st.tuples(
        st.sampled_from(sorted(FUNCTIONS)), st.lists(children, min_size=0, max_size=3)
    ).map(lambda t: f"{t[0]}({', '.join(t[1])})")
    return st.one_of(binary, unary, call)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(_atoms, _combine, max_leaves=12))
def test_calculate_fuzzed_with_well_formed_expressions_only_ever_fails_cleanly(
    expression: str,
) -> None:
    _settles(expression)


def test_statistics_summarises_a_list_of_numbers() -> None:
    out = registry.execute("statistics", values=[2, 4, 4, 4, 5, 5, 7, 9])
    assert out == {
        "count": 8,
        "sum": 40.0,
        "mean": 5.0,
        "median": 4.5,
        "stdev": pytest.approx(2.138089935),
        "pstdev": 2.0,
        "min": 2.0,
        "max": 9.0,
    }


def test_statistics_of_one_number_has_no_sample_stdev() -> None:
    out = registry.execute("statistics", values=[3.5])
    assert out["stdev"] is None and out["mean"] == 3.5 and out["pstdev"] == 0.0


def test_statistics_refuses_an_empty_list_and_non_finite_values() -> None:
    with pytest.raises(ToolArgumentError, match="values"):
        registry.execute("statistics", values=[])
    with pytest.raises(ToolArgumentError, match="values"):
        registry.execute("statistics", values=[1.0, float("inf")])


def test_statistics_overflow_is_a_clear_error() -> None:
    with pytest.raises(PermanentToolError, match="too large"):
        registry.execute("statistics", values=[1e308, 1e308])


def test_calc_tools_are_read_only_and_typed() -> None:
    for name in ("calculate", "statistics"):
        t = registry.get(name)
        assert t.side_effects is False and t.idempotent is True
        assert t.output_schema is not None and t.category == "computation"
