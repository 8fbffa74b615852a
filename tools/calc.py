"""Calc pack: safe arithmetic and basic statistics.

``calculate`` never calls ``eval``: the expression is parsed with :mod:`ast` and walked over an
allow-list (numbers, ``+ - * / // % **``, parentheses, the functions in :data:`FUNCTIONS` and the
constants in :data:`CONSTANTS`). Python integers are unbounded, so every step that could grow
one is checked *before* it runs (``9**9**9``, ``factorial(10**6)`` and ``comb(10**6, 5*10**5)``
are refused at once instead of eating the CPU); anything that goes wrong is a
:class:`~tooldag.errors.PermanentToolError` saying what is allowed.
"""

from __future__ import annotations

import ast
import math
import operator
import statistics as stats
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError
from tooldag.registry import RetryPolicy, tool

__all__ = ["Calculation", "Statistics", "calculate", "evaluate", "statistics"]

# ~1233 decimal digits: far past any quantity a plan needs, small enough to compute instantly.
MAX_INT_BITS = 4096
_MAX_NODES = 300
_MAX_DEPTH = 40
_MAX_ROUND_DIGITS = 100
_NO_RETRY = RetryPolicy(attempts=1)
# Both tools' metadata: pure computation, so nothing private, sent or untrusted.
_calc_tool = tool(
    category="computation",
    side_effects=False,
    idempotent=True,
    timeout=10.0,
    retry=_NO_RETRY,
    reads_private=False,
    egress=False,
    untrusted_output=False,
)

Number = int | float

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _bits_of_factorial(n: float) -> float:
    return math.lgamma(n + 1) / math.log(2) if n > 1 else 0.0


def _factorial(n: Any) -> int:
    if not isinstance(n, int) or n < 0:
        raise PermanentToolError("factorial() takes a whole number >= 0")
    if _bits_of_factorial(n) > MAX_INT_BITS:
        raise PermanentToolError(f"factorial({n}) is too large (the limit is {MAX_INT_BITS} bits)")
    return math.factorial(n)


def _comb_or_perm(name: str) -> Callable[..., int]:
    def function(n: Any, k: Any) -> int:
        if not (isinstance(n, int) and isinstance(k, int)) or n < 0 or k < 0:
            raise PermanentToolError(f"{name}() takes two whole numbers >= 0")
        if k > n:
            return 0
        try:
            bits = _bits_of_factorial(n) - _bits_of_factorial(n - k)
            if name == "comb":
                bits -= _bits_of_factorial(k)
        except OverflowError:
            bits = math.inf
        if bits > MAX_INT_BITS:
            raise PermanentToolError(f"{name}({n}, {k}) is too large (limit {MAX_INT_BITS} bits)")
        return math.comb(n, k) if name == "comb" else math.perm(n, k)

    return function


def _round(x: Any, ndigits: Any = None) -> Number:
    if ndigits is None:
        whole: int = round(x)
        return whole
    # round(5, -10**9) would build 10**(10**9): bound the digits first.
    if not isinstance(ndigits, int) or abs(ndigits) > _MAX_ROUND_DIGITS:
        raise PermanentToolError(
            f"round()'s digits must be a whole number within ±{_MAX_ROUND_DIGITS}"
        )
    result: Number = round(x, ndigits)
    return result


def _log(x: Any, base: Any = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _min(*args: Any) -> Any:
    if not args:
        raise PermanentToolError("min() needs at least one number")
    return min(args)


def _max(*args: Any) -> Any:
    if not args:
        raise PermanentToolError("max() needs at least one number")
    return max(args)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
    "min": _min,
    "max": _max,
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "exp2": math.exp2,
    "expm1": math.expm1,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "log1p": math.log1p,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": math.acosh,
    "atanh": math.atanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "fabs": math.fabs,
    "fmod": math.fmod,
    "remainder": math.remainder,
    "copysign": math.copysign,
    "isqrt": math.isqrt,
    "gcd": math.gcd,
    "lcm": math.lcm,
    "factorial": _factorial,
    "comb": _comb_or_perm("comb"),
    "perm": _comb_or_perm("perm"),
    "gamma": math.gamma,
    "lgamma": math.lgamma,
    "erf": math.erf,
    "erfc": math.erfc,
}

_ALLOWED_HELP = (
    "use numbers, + - * / // % ** and parentheses, the constants pi, e, tau and the functions "
    + ", ".join(sorted(FUNCTIONS))
)


def _checked_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise PermanentToolError(
            f"an intermediate result has more than {MAX_INT_BITS} bits; the numbers are too large"
        )
    return value


def _power(base: Number, exponent: Number) -> Number:
    grows = isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
    if grows and (bits := exponent * math.log2(abs(base))) > MAX_INT_BITS:
        raise PermanentToolError(
            f"the power is too large (about 2**{bits:.0f}; the limit is 2**{MAX_INT_BITS})"
        )
    result = base**exponent
    if isinstance(result, complex):
        raise PermanentToolError("the result is a complex number; only real results are supported")
    return result


def _multiply(a: Number, b: Number) -> Number:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and a.bit_length() + b.bit_length() > MAX_INT_BITS + 1
    ):
        raise PermanentToolError(f"the product is too large (the limit is {MAX_INT_BITS} bits)")
    return a * b


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _check_shape(tree: ast.AST) -> None:
    """Refuse oversized or over-deep trees before evaluating (the evaluator recurses)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > _MAX_NODES or depth > _MAX_DEPTH:
            raise PermanentToolError("the expression is too long or too deeply nested; split it")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PermanentToolError(f"{value!r} is not a number; {_ALLOWED_HELP}")
        return _checked_int(value)
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        hint = " (call it with parentheses)" if node.id in FUNCTIONS else ""
        raise PermanentToolError(f"unknown name {node.id!r}{hint}; {_ALLOWED_HELP}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        return _checked_int(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise PermanentToolError(f"unknown function {name!r}; {_ALLOWED_HELP}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise PermanentToolError(f"{node.func.id}() takes plain positional arguments only")
        args = [_eval(a) for a in node.args]
        return _checked_int(FUNCTIONS[node.func.id](*args))
    op = getattr(node, "op", None)
    what = f"the operator {type(op).__name__}" if op is not None else type(node).__name__
    raise PermanentToolError(f"{what} is not allowed in calculate; {_ALLOWED_HELP}")


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


def evaluate(expression: str) -> Number:
    """The value of ``expression``; PermanentToolError (only) for anything that is not allowed.

    >>> evaluate("2 * (3 + 4) ** 2")
    98
    >>> evaluate("round(sqrt(2), 3)")
    1.414
    """
    text = expression.strip().replace("^", "**")
    if not text:
        raise PermanentToolError(f"the expression is empty; {_ALLOWED_HELP}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else "it cannot be parsed"
        raise PermanentToolError(
            f"{_short(expression)} is not a valid expression ({detail}); {_ALLOWED_HELP}"
        ) from None
    _check_shape(tree)
    try:
        result = _eval(tree)
    except PermanentToolError:
        raise
    except ZeroDivisionError:
        raise PermanentToolError("division by zero") from None
    except OverflowError:
        raise PermanentToolError("the result is too large for a floating-point number") from None
    except (ValueError, TypeError) as exc:
        raise PermanentToolError(
            f"{exc} (a math function got an argument outside its domain or the wrong number of "
            "arguments)"
        ) from None
    if isinstance(result, float) and not math.isfinite(result):
        raise PermanentToolError("the result is not a finite number")
    if not isinstance(result, int | float) or isinstance(result, bool):
        raise PermanentToolError(f"the result is not a number; {_ALLOWED_HELP}")
    return result


class Calculation(TypedDict):
    expression: str
    result: Annotated[Number, Field(description="The value: an integer when exact, else a float")]


@_calc_tool
def calculate(expression: Annotated[str, Field(min_length=1, max_length=1000)]) -> Calculation:
    """Evaluate an arithmetic expression safely, e.g. "2 * (3 + 4) ** 2" or "sqrt(2) * pi".

    Supports + - * / // % ** (also ^), parentheses, pi, e, tau and math functions such as sqrt,
    log, log10, exp, sin, cos, tan, floor, ceil, round, abs, min, max, factorial, comb, gcd.

    Args:
        expression: The expression; no variables or other names.
    """
    return Calculation(expression=expression, result=evaluate(expression))


# --------------------------------------------------------------------------- statistics

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Statistics(TypedDict):
    count: int
    sum: float
    mean: float
    median: float
    stdev: Annotated[float | None, Field(description="Sample standard deviation (None if n < 2)")]
    pstdev: Annotated[float, Field(description="Population standard deviation")]
    min: float
    max: float


@_calc_tool
def statistics(
    values: Annotated[list[FiniteFloat], Field(min_length=1, max_length=100_000)],
) -> Statistics:
    """Count, sum, mean, median, standard deviation, min and max of a list of numbers.

    Args:
        values: The numbers, e.g. [3, 1.5, 4].
    """
    try:
        total = math.fsum(values)
        result = Statistics(
            count=len(values),
            sum=total,
            mean=stats.fmean(values),
            median=float(stats.median(values)),
            stdev=stats.stdev(values) if len(values) > 1 else None,
            pstdev=stats.pstdev(values),
            min=float(min(values)),
            max=float(max(values)),
        )
    except (OverflowError, ValueError, stats.StatisticsError) as exc:
        raise PermanentToolError(
            f"cannot summarise these numbers ({exc}); they are too large"
        ) from None
    floats = [v for v in result.values() if isinstance(v, float)]
    if not all(math.isfinite(v) for v in floats):
        raise PermanentToolError("the numbers are too large to summarise (a result overflows)")
    return result


TOOLS = [calculate, statistics]
