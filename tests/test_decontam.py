"""Decontamination finds benchmark problems planted in a training set and keeps near-misses."""

from __future__ import annotations

import re

import pytest

from eval.benchmarks import BENCHMARK_NAMES, load_benchmark
from tasks.stages.decontam import BenchmarkIndex, decontaminate, hits_by_benchmark, normalize
from tasks.stages.problems import bundled_problems_path, load_problems
from tasks.records import ProblemRecord


@pytest.fixture(scope="module")
def index() -> BenchmarkIndex:
    return BenchmarkIndex.build()


def benchmark_problem(name: str, position: int) -> tuple[str, str]:
    item = load_benchmark(name)[position]
    return item.id, item.problem


def respaced(text: str) -> str:
    """Whitespace runs doubled or removed around operators; line breaks become spaces."""
    text = re.sub(r"\s*([=+])\s*", r"\1", text)
    return re.sub(r"\s+", "  ", text)


def repunctuated(text: str) -> str:
    """Commas and dollar signs dropped, question marks turned into full stops, case changed."""
    return text.replace(",", "").replace("$", "").replace("?", ".").upper()


def bump_first_number(text: str) -> str:
    return re.sub(r"\d+", lambda m: str(int(m.group(0)) + 1), text, count=1)


# (benchmark, position): a GSM8K word problem, a MATH-500 algebra problem, an AIME problem.
PLANTED = [("gsm8k", 0), ("math500", 3), ("aime24", 0), ("olympiadbench", 5), ("amc23", 0), ("aime25", 0)]


def test_planted_benchmark_problems_are_found_verbatim_respaced_and_repunctuated(index):
    problems, expected = [], {}
    for name, position in PLANTED:
        bench_id, text = benchmark_problem(name, position)
        for variant, transform in (("verbatim", str), ("respaced", respaced), ("repunct", repunctuated)):
            pid = f"{name}-{position}-{variant}"
            problems.append(ProblemRecord(id=pid, problem=transform(text), answer="0"))
            expected[pid] = bench_id
    problems.append(ProblemRecord(id="own", problem="What is 12 * 7?", answer="84"))
    clean, hits = decontaminate(problems, index=index)
    assert [p.id for p in clean] == ["own"]
    assert {hit.problem_id: hit.benchmark_id for hit in hits} == expected
    assert hits_by_benchmark(hits) == {name: 3 for name, _ in PLANTED}


def test_benchmark_problem_inside_a_longer_training_problem_is_found_with_its_span(index):
    bench_id, text = benchmark_problem("gsm8k", 1)
    wrapped = f"Read carefully and answer in words. {text} Show your reasoning before the final answer."
    _, hits = decontaminate([ProblemRecord(id="w", problem=wrapped, answer="3")], index=index)
    assert [(h.benchmark_id, h.method) for h in hits] == [(bench_id, "ngram")]
    assert hits[0].matched_span == normalize(text)


@pytest.mark.parametrize(("name", "position"), PLANTED)
def test_near_misses_that_differ_in_one_number_are_kept(index, name, position):
    _, text = benchmark_problem(name, position)
    near_miss = bump_first_number(text)
    assert near_miss != text
    clean, hits = decontaminate([ProblemRecord(id="n", problem=near_miss, answer="0")], index=index)
    assert hits == [] and [p.id for p in clean] == ["n"]


def test_a_flipped_sign_or_a_spelled_out_number_makes_a_different_problem():
    index = BenchmarkIndex(ngram_size=8)
    index.add("bench", "b1", "What is the smallest positive integer $n$ such that all the roots of "
                             "$z^4 + z^2 + 1 = 0$ are $n^{th}$ roots of unity?")
    index.add("bench", "b2", "Roslyn has ten boxes. Five of the boxes contain pencils, four of the boxes "
                             "contain pens, and two of the boxes contain both pens and pencils.")
    flipped = "What is the smallest positive integer $n$ such that all the roots of $z^4 - z^2 + 1 = 0$ are " \
              "$n^{th}$ roots of unity?"
    words = "Roslyn has ten boxes. Six of the boxes contain pencils, three of the boxes contain pens, and two " \
            "of the boxes contain both pens and pencils."
    assert index.match(flipped) is None
    assert index.match(words) is None
    assert index.match(flipped.replace("z^4 - z^2", "z^{4}+z^{2}")).method == "exact"


def test_latex_spelling_and_thousands_separators_do_not_hide_a_copy():
    assert normalize(r"Find $\dfrac{1,000}{2x} \le 3$.") == normalize(r"find \left(\frac{1000}{2 x}\right) \leq 3")
    assert normalize("5 \u2212 2 \u00d7 3") == normalize("5 - 2 * 3")


def test_shared_boilerplate_alone_is_not_contamination(index):
    boilerplate = ("A jar holds 3 red and 4 blue marbles; the probability that two drawn marbles are red is "
                   "$\\frac{m}{n}$, where $m$ and $n$ are relatively prime positive integers. Find $m+n$.")
    clean, hits = decontaminate([ProblemRecord(id="b", problem=boilerplate, answer="9")], index=index)
    assert hits == []
    _, loose_hits = decontaminate([ProblemRecord(id="b", problem=boilerplate, answer="9")], index=index,
                                  min_coverage=0.0)
    assert loose_hits, "with min_coverage=0 any shared 8-gram counts, as in open-r1's decontamination"


def test_ngram_size_is_configurable():
    index = BenchmarkIndex(ngram_size=3)
    index.add("bench", "b1", "Compute 17 times 23 quickly please")
    assert index.match("Please compute 17 times 23 quickly please now").method == "ngram"
    assert BenchmarkIndex(ngram_size=8).match("anything") is None


def test_bundled_demo_problems_are_clean_of_every_benchmark(index):
    problems = load_problems(bundled_problems_path()).problems
    clean, hits = decontaminate(problems, index=index)
    assert hits == [] and len(clean) == len(problems)


def test_index_covers_all_six_benchmarks(index):
    assert set(BENCHMARK_NAMES) == {"math500", "gsm8k", "aime24", "aime25", "amc23", "olympiadbench"}
    assert {doc.benchmark for doc in index.docs} == set(BENCHMARK_NAMES)
