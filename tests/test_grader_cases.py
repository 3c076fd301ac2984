"""The hand-checked grader set: every (prediction, reference, verdict) triple in grader_cases.jsonl.

Each verdict was decided by a person reading the pair, not by running a grader; the categories
cover fractions, radicals, intervals, multiple answers, tuples, matrices, percentages, degrees,
units, \\text{}, words, GSM8K numbers, expressions and constants. How plain math-verify scores on
the same set is measured by benchmarks/grading_bench.py.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from eval.grader import answers_match

CASES = [json.loads(line) for line in (Path(__file__).parent / "grader_cases.jsonl").read_text().splitlines()]


def test_the_set_is_large_and_covers_every_category():
    categories = Counter(case["category"] for case in CASES)
    assert len(CASES) >= 100
    assert {"fraction", "radical", "interval", "multiple", "matrix", "percent", "degrees", "units", "text",
            "gsm8k"} <= categories.keys()
    assert 0.25 < sum(not case["correct"] for case in CASES) / len(CASES) < 0.75  # both verdicts well represented


@pytest.mark.parametrize("case", CASES, ids=[f"{c['category']}:{c['prediction']}|{c['reference']}" for c in CASES])
def test_grader_agrees_with_the_hand_checked_verdict(case):
    assert answers_match(case["prediction"], case["reference"]) is case["correct"], case["note"]
