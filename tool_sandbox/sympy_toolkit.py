"""The paper's SymPy toolkit: named math tools with typed arguments, for function-calling models.

Each public tool below is an ordinary function that takes strings in SymPy syntax (plus lists of
strings and ints) and returns its answer as a string. Its docstring is the single source of truth:
the first paragraph completes the sentence "This problem ..." (the Translator prompt uses it via
`tool_description`), and `name: text` lines after it describe the arguments in the JSON schema.

The tools run *inside* the sandbox: `call_to_code(name, arguments)` turns a model's function call
into a line of Python that imports this module there and prints the tool's result, so a function
call and a code call take the same path through `Sandbox.run`.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_application,
    implicit_multiplication,
    parse_expr,
    standard_transformations,
)

_TRANSFORMATIONS = (*standard_transformations, implicit_multiplication, implicit_application, convert_xor)


# --- parsing helpers (shared by the tools; not tools themselves) ------------------------------------------------
def parse(text: str, what: str = "expression") -> Any:
    """Parse SymPy syntax (also `2x` and `x^2`); "lhs = rhs" becomes Eq(lhs, rhs)."""
    text = str(text).strip()
    if not text:
        raise ValueError(f"the {what} is empty; give it in SymPy syntax, e.g. 'x**2 - 4'")
    sides = _split_equation(text)
    try:
        if sides:
            return sympy.Eq(parse_expr(sides[0], transformations=_TRANSFORMATIONS),
                            parse_expr(sides[1], transformations=_TRANSFORMATIONS))
        return parse_expr(text, transformations=_TRANSFORMATIONS)
    except Exception as exc:  # noqa: BLE001 - parse_expr raises many types; all mean "bad input"
        raise ValueError(f"could not read the {what} {text!r} as SymPy syntax ({type(exc).__name__}: {exc}); "
                         "write it like 'x**2 + 3*x - 4' or 'sin(x)/x'") from None


def _split_equation(text: str) -> tuple[str, str] | None:
    """Split 'lhs = rhs' at a lone '=' (not '==', '<=', '>=', '!=' or a keyword argument inside brackets)."""
    depth = 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "=" and depth == 0 and text[i - 1:i] not in ("=", "<", ">", "!") and text[i + 1:i + 2] != "=":
            return text[:i], text[i + 1:]
    return None


def _symbol(name: str) -> sympy.Symbol:
    expr = parse(name, "variable")
    if not isinstance(expr, sympy.Symbol):
        raise ValueError(f"{name!r} is not a single variable name; give one symbol such as 'x'")
    return expr


def _matrix(text: str) -> sympy.Matrix:
    value = parse(text, "matrix")
    try:
        return sympy.Matrix(value)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"could not read {text!r} as a matrix ({exc}); write rows as lists: '[[1, 2], [3, 4]]'") \
            from None


def _integer(text: str, what: str = "integer") -> sympy.Integer:
    value = sympy.sympify(parse(text, what))
    if not value.is_Integer:
        raise ValueError(f"the {what} {text!r} is not an integer (it evaluates to {value})")
    return value


def _to_zero_form(equation: Any) -> Any:
    return equation.lhs - equation.rhs if isinstance(equation, sympy.Equality) else equation


# --- algebra ----------------------------------------------------------------------------------------------------
def solve_equations(equations: list[str], variables: list[str] | None = None) -> str:
    """requires solving an equation or a system of equations exactly for the unknowns.

    equations: each as "lhs = rhs" or an expression equal to zero, e.g. ["x + y = 10", "x - y = 2"].
    variables: the unknowns to solve for, e.g. ["x", "y"]; all symbols when omitted.
    """
    parsed = [parse(e, "equation") for e in equations]
    unknowns = [_symbol(v) for v in variables] if variables else None
    solutions = sympy.solve(parsed, unknowns, dict=True) if unknowns else sympy.solve(parsed, dict=True)
    if not solutions:
        return "no solution"
    return "; ".join(", ".join(f"{k} = {v}" for k, v in solution.items()) for solution in solutions)


def solve_inequality(inequality: str, variable: str) -> str:
    """requires finding all real values of a variable that satisfy an inequality.

    inequality: e.g. "x**2 - 5*x + 6 < 0".
    variable: the variable, e.g. "x".
    """
    return str(sympy.solve_univariate_inequality(parse(inequality, "inequality"), _symbol(variable),
                                                 relational=False))


def simplify_expression(expression: str) -> str:
    """requires simplifying an algebraic or trigonometric expression to its simplest form.

    expression: e.g. "(x**2 - 1)/(x - 1)".
    """
    return str(sympy.simplify(parse(expression)))


def expand_expression(expression: str) -> str:
    """requires expanding a product or power of expressions into a sum of terms.

    expression: e.g. "(x + 2)**3".
    """
    return str(sympy.expand(parse(expression)))


def factor_expression(expression: str) -> str:
    """requires factoring a polynomial (or an integer expression) into irreducible factors.

    expression: e.g. "x**3 - 6*x**2 + 11*x - 6".
    """
    return str(sympy.factor(parse(expression)))


def evaluate_expression(expression: str, digits: int | None = None) -> str:
    """requires evaluating an arithmetic expression exactly, with fractions, roots and constants kept exact.

    expression: e.g. "Rational(3, 4) + sqrt(8) * binomial(10, 3)".
    digits: give a decimal approximation with this many significant digits instead of the exact value.
    """
    value = sympy.simplify(parse(expression))
    return str(sympy.N(value, digits)) if digits else str(value)


# --- calculus ---------------------------------------------------------------------------------------------------
def differentiate(expression: str, variable: str, order: int = 1) -> str:
    """requires differentiating a function with respect to a variable.

    expression: the function, e.g. "x**3 * sin(x)".
    variable: the variable of differentiation, e.g. "x".
    order: how many times to differentiate (1 for the first derivative).
    """
    return str(sympy.simplify(sympy.diff(parse(expression), _symbol(variable), order)))


def integrate_expression(expression: str, variable: str, lower: str | None = None, upper: str | None = None) -> str:
    """requires integrating a function: an antiderivative, or a definite integral between two bounds.

    expression: the integrand, e.g. "x * exp(x)".
    variable: the variable of integration, e.g. "x".
    lower: the lower bound of a definite integral, e.g. "0" (omit both bounds for an antiderivative).
    upper: the upper bound of a definite integral, e.g. "oo" for infinity.
    """
    if (lower is None) != (upper is None):
        raise ValueError("give both `lower` and `upper` for a definite integral, or neither for an antiderivative")
    x = _symbol(variable)
    if lower is None:
        return str(sympy.integrate(parse(expression), x))
    return str(sympy.simplify(sympy.integrate(parse(expression), (x, parse(lower, "lower bound"),
                                                                   parse(upper, "upper bound")))))


def compute_limit(expression: str, variable: str, point: str, direction: Literal["+", "-", "+-"] = "+-") -> str:
    """requires computing the limit of an expression as a variable approaches a point.

    expression: e.g. "sin(x)/x".
    variable: the variable, e.g. "x".
    point: the point it approaches, e.g. "0" or "oo".
    direction: "+" from above, "-" from below, "+-" from both sides.
    """
    return str(sympy.limit(parse(expression), _symbol(variable), parse(point, "point"), dir=direction))


def series_expansion(expression: str, variable: str, point: str = "0", order: int = 6) -> str:
    """requires expanding a function as a Taylor (power) series around a point.

    expression: e.g. "exp(x) * cos(x)".
    variable: the variable, e.g. "x".
    point: the expansion point, e.g. "0".
    order: terms up to (but not including) this power are kept.
    """
    return str(sympy.series(parse(expression), _symbol(variable), parse(point, "point"), order))


def compute_sum(expression: str, variable: str, lower: str, upper: str) -> str:
    """requires summing a sequence over a range of an index, in closed form where possible.

    expression: the general term, e.g. "k**2".
    variable: the summation index, e.g. "k".
    lower: the first index value, e.g. "1".
    upper: the last index value, e.g. "n" or "100" or "oo".
    """
    total = sympy.summation(parse(expression), (_symbol(variable), parse(lower, "lower bound"),
                                                parse(upper, "upper bound")))
    return str(sympy.simplify(total))


# --- matrices ---------------------------------------------------------------------------------------------------
def matrix_determinant(matrix: str) -> str:
    """requires computing the determinant of a square matrix.

    matrix: rows as nested lists, e.g. "[[1, 2], [3, 4]]".
    """
    return str(sympy.simplify(_matrix(matrix).det()))


def matrix_inverse(matrix: str) -> str:
    """requires inverting a square matrix exactly.

    matrix: rows as nested lists, e.g. "[[2, 1], [1, 1]]".
    """
    m = _matrix(matrix)
    if m.det() == 0:
        raise ValueError(f"the matrix {matrix} is singular (determinant 0), so it has no inverse")
    return str(m.inv().tolist())


def matrix_eigenvalues(matrix: str) -> str:
    """requires finding the eigenvalues of a square matrix, with their multiplicities.

    matrix: rows as nested lists, e.g. "[[2, 0], [0, 3]]".
    """
    return ", ".join(f"{value} (multiplicity {mult})" for value, mult in _matrix(matrix).eigenvals().items())


def matrix_rank(matrix: str) -> str:
    """requires computing the rank of a matrix.

    matrix: rows as nested lists, e.g. "[[1, 2], [2, 4]]".
    """
    return str(_matrix(matrix).rank())


def matrix_product(left: str, right: str) -> str:
    """requires multiplying two matrices.

    left: the left matrix, rows as nested lists, e.g. "[[1, 2], [3, 4]]".
    right: the right matrix, e.g. "[[0, 1], [1, 0]]".
    """
    a, b = _matrix(left), _matrix(right)
    if a.cols != b.rows:
        raise ValueError(f"cannot multiply a {a.rows}x{a.cols} matrix by a {b.rows}x{b.cols} matrix")
    return str((a * b).tolist())


# --- number theory ----------------------------------------------------------------------------------------------
def integer_gcd(numbers: list[str]) -> str:
    """requires computing the greatest common divisor of integers.

    numbers: the integers, e.g. ["84", "126", "210"].
    """
    return str(sympy.gcd([_integer(n) for n in numbers]))


def integer_lcm(numbers: list[str]) -> str:
    """requires computing the least common multiple of integers.

    numbers: the integers, e.g. ["4", "6", "15"].
    """
    return str(sympy.lcm([_integer(n) for n in numbers]))


def prime_factorization(number: str) -> str:
    """requires factoring an integer into primes.

    number: the integer, e.g. "360" or "2**10 - 1".
    """
    factors = sympy.factorint(_integer(number, "number"))
    return " * ".join(f"{p}**{e}" if e > 1 else str(p) for p, e in factors.items()) or str(_integer(number))


def is_prime(number: str) -> str:
    """requires checking whether an integer is prime.

    number: the integer, e.g. "97".
    """
    return str(sympy.isprime(_integer(number, "number")))


def modular_inverse(number: str, modulus: str) -> str:
    """requires finding the inverse of an integer modulo m.

    number: the integer a, e.g. "3".
    modulus: the modulus m, e.g. "11".
    """
    a, m = _integer(number, "number"), _integer(modulus, "modulus")
    if sympy.gcd(a, m) != 1:
        raise ValueError(f"{a} has no inverse modulo {m}: they share the factor {sympy.gcd(a, m)}")
    return str(sympy.mod_inverse(a, m))


def modular_power(base: str, exponent: str, modulus: str) -> str:
    """requires computing a large power modulo m, that is base**exponent mod m.

    base: e.g. "7".
    exponent: e.g. "2024".
    modulus: e.g. "1000".
    """
    return str(pow(int(_integer(base, "base")), int(_integer(exponent, "exponent")),
                   int(_integer(modulus, "modulus"))))


TOOLS: dict[str, Callable[..., str]] = {f.__name__: f for f in (
    solve_equations, solve_inequality, simplify_expression, expand_expression, factor_expression,
    evaluate_expression, differentiate, integrate_expression, compute_limit, series_expansion, compute_sum,
    matrix_determinant, matrix_inverse, matrix_eigenvalues, matrix_rank, matrix_product,
    integer_gcd, integer_lcm, prime_factorization, is_prime, modular_inverse, modular_power,
)}


# --- function-calling surface -----------------------------------------------------------------------------------
def tool_names() -> list[str]:
    return list(TOOLS)


def tool_description(name: str) -> str:
    """The first paragraph of the tool's docstring: it completes "This problem ..."."""
    return _docstring_parts(_tool(name))[0]


def tool_schemas() -> list[dict[str, Any]]:
    """The OpenAI function-calling `tools` list for every tool."""
    return [_schema(name, func) for name, func in TOOLS.items()]


def call_to_code(name: str, arguments: dict[str, Any] | str) -> str:
    """Python source that runs tool `name` inside the sandbox and prints its result.

    `arguments` is the call's argument object (or its JSON text, as OpenAI returns it). Raises
    ValueError naming the tool and argument when the tool is unknown or an argument is missing,
    unexpected or of the wrong type, so the message can go straight back to the model.
    """
    func = _tool(name)
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"tool {name!r}: arguments are not valid JSON ({exc}): {arguments[:200]!r}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"tool {name!r}: arguments must be a JSON object of named values, "
                         f"got {type(arguments).__name__}")
    params = _parameters(func)
    unexpected = sorted(set(arguments) - set(params))
    if unexpected:
        raise ValueError(f"tool {name!r}: unexpected argument(s) {unexpected}; it takes {list(params)}")
    missing = [p for p, (_, required) in params.items() if required and p not in arguments]
    if missing:
        raise ValueError(f"tool {name!r}: missing required argument(s) {missing}; it takes {list(params)}")
    clean = {key: _coerce(name, key, value, params[key][0]) for key, value in arguments.items()}
    return f"print(__import__({__name__!r}, fromlist=['_']).{name}(**{clean!r}))"


def _tool(name: str) -> Callable[..., str]:
    try:
        return TOOLS[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; available tools: {', '.join(TOOLS)}") from None


def _docstring_parts(func: Callable[..., str]) -> tuple[str, dict[str, str]]:
    summary, _, rest = inspect.getdoc(func).partition("\n\n")  # type: ignore[union-attr]
    params = {}
    for line in rest.splitlines():
        key, sep, text = line.partition(":")
        if sep:
            params[key.strip()] = text.strip()
    return " ".join(summary.split()), params


def _parameters(func: Callable[..., str]) -> dict[str, tuple[Any, bool]]:
    """name -> (type hint, required) for each parameter."""
    hints = typing.get_type_hints(func)
    return {name: (hints[name], p.default is inspect.Parameter.empty)
            for name, p in inspect.signature(func).parameters.items()}


def _json_type(hint: Any) -> dict[str, Any]:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _json_type(next(a for a in args if a is not type(None)))
    if typing.get_origin(hint) is Literal:
        return {"type": "string", "enum": list(args)}
    if typing.get_origin(hint) is list:
        return {"type": "array", "items": _json_type(args[0])}
    return {str: {"type": "string"}, int: {"type": "integer"}}[hint]


def _schema(name: str, func: Callable[..., str]) -> dict[str, Any]:
    summary, descriptions = _docstring_parts(func)
    params = _parameters(func)
    properties = {p: {**_json_type(hint), "description": descriptions.get(p, "")} for p, (hint, _) in params.items()}
    return {"type": "function", "function": {
        "name": name,
        "description": f"Use when the problem {summary}",
        "parameters": {"type": "object", "properties": properties,
                       "required": [p for p, (_, required) in params.items() if required]},
    }}


def _coerce(tool: str, key: str, value: Any, hint: Any) -> Any:
    """Check one argument against its type, accepting the near-misses models make (a number for a string)."""
    schema = _json_type(hint)
    optional = type(None) in typing.get_args(hint)
    if value is None and optional:
        return None
    if schema["type"] == "array":
        items = value if isinstance(value, list) else [value]
        return [_coerce(tool, key, item, str) for item in items]
    if "enum" in schema:
        if value not in schema["enum"]:
            raise ValueError(f"tool {tool!r}: argument {key!r} must be one of {schema['enum']}, got {value!r}")
        return value
    if schema["type"] == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
            raise ValueError(f"tool {tool!r}: argument {key!r} must be a whole number, got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"tool {tool!r}: argument {key!r} must be a string in SymPy syntax, "
                         f"got {type(value).__name__} {value!r}")
    return str(value)
