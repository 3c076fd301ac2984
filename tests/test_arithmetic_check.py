"""The rephrased-solution arithmetic scanner: proves false equalities, never flags what it cannot read."""

from __future__ import annotations

import pytest

from tasks.stages.arithmetic_check import find_arithmetic_errors


@pytest.mark.parametrize("text", [
    "123 + 456 = 57",
    "1000 - 387 = 387 - 387 = 0",
    "$12 \\times 7 = 94$",
    "2^{10} = 1000",
    "First, 15 * 4 = 60. Then 60 + 3 = 64.",
    "So 3 \\cdot (4 + 5) = 21, done.",
    "The total is 1,250 + 250 = 1,400.",
])
def test_false_arithmetic_is_found(text: str) -> None:
    assert len(find_arithmetic_errors(text)) == 1, text


@pytest.mark.parametrize("text", [
    "123 + 456 = 579",
    "$12 \\times 7 = 84$ and $2^{10} = 1024$",
    "1/3 = 0.33 (rounded)",
    "22/7 = 3.142857",
    "The total is 1,250 + 250 = 1,500.",
    "x^2 = 49, so x = 7 or x = -7.",
    "2x + 3 = 11 gives x = 4.",
    "Step 2. 5 + 3 = 8",
    "(1) 2(3 + 4) = 14",
    "50% = 0.5",
    "3 = 3",
    "10^{400} - 1 = 10^{400} - 1",
    "9^9^9 = 1",  # too large to evaluate: skipped, not guessed
    "1/0 = 5",
    "The answer is \\boxed{84}.",
])
def test_true_or_unreadable_arithmetic_is_not_flagged(text: str) -> None:
    assert find_arithmetic_errors(text) == [], text


def test_each_false_equality_is_reported_with_its_values() -> None:
    errors = find_arithmetic_errors("12 * 7 = 84\n123 + 456 = 57\n2 + 2 = 5")
    assert [e.written for e in errors] == ["123 + 456 = 57", "2 + 2 = 5"]
    assert errors[0].values == ("579", "57")
