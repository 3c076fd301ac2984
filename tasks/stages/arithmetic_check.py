"""Find written-out arithmetic that is wrong: `123 + 456 = 57`, `2^{10} = 1000`, `12 \\times 7 = 94`.

The translator's derivations are checked against the tool's real output, but the rephrase agent
writes the final solution afresh and can break a number on the way (small teachers often do). This
scanner checks every chain of purely numeric sides joined by `=` in a solution, exactly (fractions),
so the filter can drop a trace whose stated arithmetic is false. Sides with letters, functions or
anything it cannot read are skipped: it only ever reports equalities it has proved false.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from fractions import Fraction

_LATEX = [(re.compile(r"\\times|\\cdot|×|·"), "*"), (re.compile(r"\\div|÷"), "/"),
          (re.compile(r"\^\{(\d+)\}"), r"^\1"), (re.compile(r"\\left|\\right|\\[,;!]"), ""),
          (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), "")]  # 1,000 -> 1000
_RUN = re.compile(r"[\d.+\-*/^()\s=]+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_MAX_EXPONENT = 512


@dataclass(frozen=True)
class Equality:
    """A numeric equality chain as written (normalised), the exact values of its sides, and whether they agree."""

    written: str
    values: tuple[str, ...]
    holds: bool


def find_arithmetic_errors(text: str) -> list[Equality]:
    """Every `a = b [= c ...]` chain of numeric expressions in `text` whose sides are not all equal."""
    return [chain for chain in find_equalities(text) if not chain.holds]


def find_equalities(text: str) -> list[Equality]:
    """Every computed numeric chain in `text` that could be evaluated, true or false."""
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    chains = []
    for line in text.splitlines():
        for run in _RUN.findall(line):
            sides = [side.strip() for side in run.split("=")]
            if len(sides) < 2 or not all(_NUMBER.search(side) for side in sides):
                continue
            if not any(re.search(r"\d\s*[-+*/^]\s*[\d(]|\)\s*[-+*/^]", side) for side in sides):
                continue  # "3 = 3" or a lone number: nothing was computed
            values = [_evaluate(side) for side in sides]
            if any(v is None for v in values):
                continue
            holds = all(_same(values[0], v, sides[0], side) for v, side in zip(values[1:], sides[1:]))  # type: ignore[arg-type]
            chains.append(Equality(" = ".join(sides), tuple(str(v) for v in values), holds))
    return chains


def _same(a: Fraction, b: Fraction, written_a: str, written_b: str) -> bool:
    """Equal, or equal up to the rounding of a side written as a plain decimal (1/3 = 0.33)."""
    if a == b:
        return True
    tolerance = max((_rounding_of(w) for w in (written_a, written_b)), default=Fraction(0))
    return abs(a - b) <= tolerance


def _rounding_of(written: str) -> Fraction:
    match = re.fullmatch(r"-?\d+\.(\d+)", written)
    return Fraction(1, 2 * 10 ** len(match.group(1))) if match else Fraction(0)


def _evaluate(expression: str) -> Fraction | None:
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        return _value(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _value(node: ast.AST) -> Fraction | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > _MAX_EXPONENT or abs(left) > 10**6 or (left == 0 and right < 0):
                return None
            return left ** int(right)
        apply = _OPERATORS.get(type(node.op))
        return apply(left, right) if apply else None
    return None
