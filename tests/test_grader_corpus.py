"""Differential corpus (tests/grading_corpus/cases.jsonl): the grader against verdicts that follow
from how each case was built (tests/grading_corpus/build.py), never from what a grader said."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from eval.grader import grade

CORPUS = Path(__file__).parent / "grading_corpus" / "cases.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines()]
REQUIRED_CLASSES = {"multi_boxed", "relation", "free_text", "minerva", "matrix", "thousands", "decimal_comma",
                    "precision", "scientific", "units", "interval", "set", "tuple", "fraction", "pi", "degrees",
                    "percent", "negative", "text", "choice", "real", "unanchored"}


def test_corpus_is_large_covers_the_classes_and_both_verdicts():
    classes = {case["class"] for case in CASES}
    assert len(CASES) >= 2000
    assert REQUIRED_CLASSES <= classes
    assert 0.3 < sum(case["expected"] for case in CASES) / len(CASES) < 0.7
    assert all(case["why"] for case in CASES)


def test_committed_corpus_is_what_the_builder_writes():
    from tests.grading_corpus.build import build

    assert build() == CASES


@pytest.fixture(scope="module")
def verdicts():
    return [grade(case["completion"], case["gold"], problem=case.get("problem")).correct for case in CASES]


def test_no_wrong_answer_is_accepted(verdicts):
    accepted_wrong = [case["id"] for case, verdict in zip(CASES, verdicts, strict=True)
                      if verdict and not case["expected"]]
    assert accepted_wrong == []


def test_agreement_is_at_least_99_percent_and_95_in_every_class(verdicts):
    by_class = defaultdict(list)
    for case, verdict in zip(CASES, verdicts, strict=True):
        by_class[case["class"]].append(verdict == case["expected"])
    agreement = sum(map(sum, by_class.values())) / len(CASES)
    assert agreement >= 0.99
    assert {name: sum(hits) / len(hits) for name, hits in by_class.items() if sum(hits) / len(hits) < 0.95} == {}
