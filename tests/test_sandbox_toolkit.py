"""The SymPy toolkit: every tool runs through the sandbox via call_to_code; schemas are valid function tools."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tool_sandbox import Sandbox
from tool_sandbox.sympy_toolkit import call_to_code, tool_description, tool_names, tool_schemas

# One real call per tool, with the exact answer SymPy must give (models send numbers where strings are expected).
EXAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    "solve_equations": ({"equations": ["x + y = 10", "x - y = 2"], "variables": ["x", "y"]}, "x = 6, y = 4"),
    "solve_inequality": ({"inequality": "x**2 - 5x + 6 < 0", "variable": "x"}, "Interval.open(2, 3)"),
    "simplify_expression": ({"expression": "(x^2 - 1)/(x - 1)"}, "x + 1"),
    "expand_expression": ({"expression": "(x + 2)**3"}, "x**3 + 6*x**2 + 12*x + 8"),
    "factor_expression": ({"expression": "x**3 - 6*x**2 + 11*x - 6"}, "(x - 3)*(x - 2)*(x - 1)"),
    "evaluate_expression": ({"expression": "Rational(3, 4) + Rational(1, 4) * binomial(10, 3)"}, "123/4"),
    "differentiate": ({"expression": "x**3", "variable": "x", "order": 2}, "6*x"),
    "integrate_expression": ({"expression": "x*exp(-x)", "variable": "x", "lower": "0", "upper": "oo"}, "1"),
    "compute_limit": ({"expression": "sin(x)/x", "variable": "x", "point": 0}, "1"),
    "series_expansion": ({"expression": "exp(x)", "variable": "x", "order": 4}, "1 + x + x**2/2 + x**3/6 + O(x**4)"),
    "compute_sum": ({"expression": "k", "variable": "k", "lower": "1", "upper": "100"}, "5050"),
    "matrix_determinant": ({"matrix": "[[1, 2], [3, 4]]"}, "-2"),
    "matrix_inverse": ({"matrix": "[[2, 1], [1, 1]]"}, "[[1, -1], [-1, 2]]"),
    "matrix_eigenvalues": ({"matrix": "[[2, 0], [0, 3]]"}, "2 (multiplicity 1), 3 (multiplicity 1)"),
    "matrix_rank": ({"matrix": "[[1, 2], [2, 4]]"}, "1"),
    "matrix_product": ({"left": "[[1, 2], [3, 4]]", "right": "[[0, 1], [1, 0]]"}, "[[2, 1], [4, 3]]"),
    "integer_gcd": ({"numbers": ["84", "126", 210]}, "42"),
    "integer_lcm": ({"numbers": [4, 6, 15]}, "60"),
    "prime_factorization": ({"number": "360"}, "2**3 * 3**2 * 5"),
    "is_prime": ({"number": 97}, "True"),
    "modular_inverse": ({"number": "3", "modulus": "11"}, "4"),
    "modular_power": ({"base": "7", "exponent": "2024", "modulus": "1000"}, "401"),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(pool_size=1) as box:
        yield box


def test_every_tool_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(tool_names())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tool_runs_in_the_sandbox_and_prints_the_exact_answer(sandbox: Sandbox, name: str) -> None:
    arguments, expected = EXAMPLES[name]
    out = sandbox.run(call_to_code(name, arguments), f"tool-{name}")
    assert (out.status, out.stdout.strip()) == ("ok", expected), out.text_for_model()


def test_json_text_arguments_are_accepted_as_openai_sends_them(sandbox: Sandbox) -> None:
    code = call_to_code("factor_expression", json.dumps({"expression": "x**2 - 1"}))
    assert sandbox.run(code, "json-args").stdout.strip() == "(x - 1)*(x + 1)"


def test_unparseable_expression_reaches_the_model_as_a_clear_error(sandbox: Sandbox) -> None:
    out = sandbox.run(call_to_code("solve_equations", {"equations": ["x**"]}), "bad-expression")
    assert out.status == "error"
    assert out.error.startswith("ValueError: could not read the equation 'x**' as SymPy syntax")


def test_singular_matrix_error_says_why(sandbox: Sandbox) -> None:
    out = sandbox.run(call_to_code("matrix_inverse", {"matrix": "[[1, 2], [2, 4]]"}), "singular")
    assert "singular (determinant 0)" in out.error


def test_tool_and_code_calls_share_the_session(sandbox: Sandbox) -> None:
    sandbox.run("marker = 'kept'", "mixed")
    sandbox.run(call_to_code("is_prime", {"number": "7"}), "mixed")
    assert sandbox.run("marker", "mixed").result == "'kept'"


@pytest.mark.parametrize(("name", "arguments", "message"), [
    ("no_such_tool", {}, "unknown tool 'no_such_tool'; available tools: solve_equations"),
    ("differentiate", {"expression": "x**2"}, "missing required argument(s) ['variable']"),
    ("differentiate", {"expression": "x", "variable": "x", "wrt": "y"}, "unexpected argument(s) ['wrt']"),
    ("differentiate", {"expression": "x", "variable": "x", "order": "two"}, "'order' must be a whole number"),
    ("compute_limit", {"expression": "x", "variable": "x", "point": "0", "direction": "up"}, "must be one of"),
    ("simplify_expression", {"expression": {"a": 1}}, "must be a string in SymPy syntax"),
    ("simplify_expression", "{not json", "arguments are not valid JSON"),
    ("simplify_expression", ["x"], "must be a JSON object"),
])
def test_bad_calls_raise_value_error_naming_the_problem(name: str, arguments: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call_to_code(name, arguments)
    assert message in str(info.value)


def test_schemas_are_valid_openai_function_tools() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == tool_names()
    for schema in schemas:
        json.dumps(schema)
        function = schema["function"]
        assert schema["type"] == "function"
        assert function["description"].startswith("Use when the problem requires")
        parameters = function["parameters"]
        jsonschema.Draft202012Validator.check_schema(parameters)
        assert set(parameters["required"]) <= set(parameters["properties"])
        assert all(p["description"] for p in parameters["properties"].values()), function["name"]
        example, _ = EXAMPLES[function["name"]]
        strict = {k: (str(v) if isinstance(v, int) and parameters["properties"][k]["type"] == "string" else v)
                  for k, v in example.items()}
        strict = {k: [str(i) for i in v] if isinstance(v, list) else v for k, v in strict.items()}
        jsonschema.validate(strict, parameters)


def test_description_completes_this_problem_sentence() -> None:
    description = tool_description("solve_equations")
    assert description == "requires solving an equation or a system of equations exactly for the unknowns."
    assert all("\n" not in tool_description(name) for name in tool_names())
