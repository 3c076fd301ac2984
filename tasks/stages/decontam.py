"""Decontamination: drop training problems that are evaluation-benchmark problems, before solving.

A problem is contaminated by a benchmark problem B when
  * exact: both read the same once normalised (same words, numbers and operators in the same order;
    spacing, case, punctuation, braces and LaTeX spelling such as `\\dfrac` vs `\\frac` do not count), or
  * ngram: it holds at least `min_coverage` of B's distinct token n-grams (8-grams by default, as
    open-r1's decontamination uses) and every number (digits or words) and operator of B, as a multiset.

The number/operator check is what separates a leaked problem from a near-miss: a training problem
that reuses a benchmark's wording with other numbers (or `-` for `+`) is a different problem and is
kept. The coverage check keeps
shared boilerplate ("Express your answer as a common fraction in simplest form ...") from flagging
unrelated problems, which a bare "any shared 8-gram" rule does. Benchmark problems shorter than n
words have no n-gram and are matched exactly only.

The benchmark n-grams are indexed once (`BenchmarkIndex.build`); each training problem then costs one
dictionary lookup per n-gram, so 7,500 problems against all six benchmarks take seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

from pydantic import BaseModel, Field

from eval.benchmarks import BENCHMARK_NAMES, load_benchmark
from tasks.records import ProblemRecord

DEFAULT_NGRAM_SIZE = 8
DEFAULT_MIN_COVERAGE = 0.5

# Typesetting-only LaTeX commands are spelled alike or dropped before tokenising; others keep their
# name as a word. Unicode operators are spelled in ASCII. Thousands separators go ("1,000" == "1000").
_LATEX_COMMAND = re.compile(r"\\([a-zA-Z]+|!)")
_LATEX_ALIASES = {"dfrac": "frac", "tfrac": "frac", "le": "<=", "leq": "<=", "ge": ">=", "geq": ">=",
                  "ne": "!=", "neq": "!=", "cdot": "*", "times": "*", "cdots": "dots", "ldots": "dots"}
_LATEX_DROPPED = {"!", "left", "right", "displaystyle", "mathrm", "text", "textbf", "mbox", "quad", "qquad"}
_UNICODE_OPERATORS = str.maketrans({"\u2212": "-", "\u00d7": "*", "\u00b7": "*", "\u2264": "<=", "\u2265": ">=",
                                    "\u2260": "!="})
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Digits and letters split apart ("2x" == "2 x"); operators are tokens, since `z^4 - z^2` and
# `z^4 + z^2` are different problems; everything else (spaces, punctuation, $, braces) only separates.
_TOKEN = re.compile(r"\d+|[^\W\d_]+|<=|>=|!=|[-+*/=<>^!]")
_OPERATORS = frozenset({"<=", ">=", "!=", "-", "+", "*", "/", "=", "<", ">", "^", "!"})
# Numbers spelled as words count as numbers: "Six of the boxes" and "Five of the boxes" differ.
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion half third quarter twice double triple".split())


class ContaminationHit(BaseModel):
    """A training problem dropped because it matches a benchmark problem."""

    problem_id: str
    benchmark: str
    benchmark_id: str
    matched_span: str  # the longest normalised run of the training problem that the benchmark problem shares
    method: Literal["exact", "ngram"]
    coverage: float  # fraction of the benchmark problem's n-grams found in the training problem


def _latex_word(match: re.Match[str]) -> str:
    name = match.group(1)
    return " " if name in _LATEX_DROPPED else f" {_LATEX_ALIASES.get(name, name)} "


def tokenize(text: str) -> tuple[str, ...]:
    """Lower-cased word, number and operator tokens of `text` (regex passes only: this runs per problem)."""
    text = _LATEX_COMMAND.sub(_latex_word, text).translate(_UNICODE_OPERATORS)
    return tuple(_TOKEN.findall(_THOUSANDS_COMMA.sub("", text).lower()))


def normalize(text: str) -> str:
    """The normalised text: what 'the same problem' compares."""
    return " ".join(tokenize(text))


def ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return set(zip(*(words[i:] for i in range(n))))


def math_tokens(words: Iterable[str]) -> Counter[str]:
    """Numbers (also spelled out) and operators: what must agree for two similar texts to be one problem."""
    return Counter(w for w in words if w.isdigit() or w in _OPERATORS or w in _NUMBER_WORDS)


@dataclass
class _BenchmarkDoc:
    benchmark: str
    benchmark_id: str
    n_ngrams: int
    math_tokens: Counter[str]


@dataclass
class BenchmarkIndex:
    """Every benchmark problem's normalised text and n-grams, built once per run."""

    ngram_size: int
    docs: list[_BenchmarkDoc] = field(default_factory=list)
    by_text: dict[tuple[str, ...], int] = field(default_factory=dict)
    by_ngram: dict[tuple[str, ...], list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, benchmarks: Iterable[str] = BENCHMARK_NAMES, ngram_size: int = DEFAULT_NGRAM_SIZE,
              ) -> BenchmarkIndex:
        """Index the named benchmarks (all of them by default), loaded with `eval.benchmarks`."""
        index = cls(ngram_size)
        for name in benchmarks:
            for item in load_benchmark(name):
                index.add(item.benchmark, item.id, item.problem)
        return index

    def add(self, benchmark: str, benchmark_id: str, problem: str) -> None:
        words = tokenize(problem)
        doc_index = len(self.docs)
        grams = ngrams(words, self.ngram_size)
        self.docs.append(_BenchmarkDoc(benchmark, benchmark_id, len(grams), math_tokens(words)))
        self.by_text.setdefault(words, doc_index)
        for gram in grams:
            self.by_ngram.setdefault(gram, []).append(doc_index)

    def match(self, problem: str, min_coverage: float = DEFAULT_MIN_COVERAGE) -> ContaminationHit | None:
        """The benchmark problem that `problem` reproduces, best coverage first, or None.

        The hit's `problem_id` is left empty for the caller to fill.
        """
        words = tokenize(problem)
        exact = self.by_text.get(words)
        if exact is not None:
            return self._hit(exact, "exact", 1.0, " ".join(words))
        found = filter(None, map(self.by_ngram.get, ngrams(words, self.ngram_size)))
        shared: Counter[int] = Counter(chain.from_iterable(found))  # benchmark doc -> shared n-grams
        candidates = sorted(((count / self.docs[d].n_ngrams, d) for d, count in shared.items()), reverse=True)
        problem_math = None
        for coverage, doc_index in candidates:
            if coverage < min_coverage:
                break
            problem_math = problem_math if problem_math is not None else math_tokens(words)
            if not self.docs[doc_index].math_tokens - problem_math:  # all its numbers and operators are here
                return self._hit(doc_index, "ngram", coverage, self._longest_shared_run(words, doc_index))
        return None

    def _hit(self, doc_index: int, method: str, coverage: float, span: str) -> ContaminationHit:
        doc = self.docs[doc_index]
        return ContaminationHit(problem_id="", benchmark=doc.benchmark, benchmark_id=doc.benchmark_id,
                                matched_span=span, method=method, coverage=round(coverage, 4))

    def _longest_shared_run(self, words: tuple[str, ...], doc_index: int) -> str:
        """The longest run of `words` covered by n-grams shared with benchmark doc `doc_index`."""
        n = self.ngram_size
        covered = [False] * len(words)
        for start in range(len(words) - n + 1):
            if doc_index in self.by_ngram.get(words[start : start + n], ()):
                covered[start : start + n] = [True] * n
        best = (0, 0)
        run_start = None
        for position, is_covered in enumerate([*covered, False]):
            if is_covered and run_start is None:
                run_start = position
            elif not is_covered and run_start is not None:
                if position - run_start > best[1] - best[0]:
                    best = (run_start, position)
                run_start = None
        return " ".join(words[best[0] : best[1]])


def decontaminate(
    problems: Sequence[ProblemRecord],
    *,
    index: BenchmarkIndex | None = None,
    benchmarks: Iterable[str] = BENCHMARK_NAMES,
    ngram_size: int = DEFAULT_NGRAM_SIZE,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> tuple[list[ProblemRecord], list[ContaminationHit]]:
    """Split `problems` into (clean problems in input order, one hit per contaminated problem).

    Pass a prebuilt `index` to reuse it across calls; otherwise one is built from `benchmarks`.
    """
    if index is None:
        index = BenchmarkIndex.build(benchmarks, ngram_size)
    clean: list[ProblemRecord] = []
    hits: list[ContaminationHit] = []
    for problem in problems:
        hit = index.match(problem.problem, min_coverage)
        if hit is None:
            clean.append(problem)
        else:
            hits.append(hit.model_copy(update={"problem_id": problem.id}))
    return clean, hits


class DecontaminationReport(BaseModel):
    """What decontamination removed, and by which rule (for the dataset card)."""

    benchmarks: list[str]
    ngram_size: int
    min_coverage: float
    hits: list[ContaminationHit] = Field(default_factory=list)


def decontaminate_with_report(problems: Sequence[ProblemRecord],
                              benchmarks: Sequence[str] = BENCHMARK_NAMES) -> tuple[list[ProblemRecord], DecontaminationReport]:
    """`decontaminate` with the default rule, and the report the dataset card shows."""
    clean, hits = decontaminate(problems, benchmarks=benchmarks)
    return clean, DecontaminationReport(benchmarks=list(benchmarks), ngram_size=DEFAULT_NGRAM_SIZE,
                                        min_coverage=DEFAULT_MIN_COVERAGE, hits=hits)


def hits_by_benchmark(hits: Iterable[ContaminationHit]) -> dict[str, int]:
    """Contaminated-problem counts per benchmark, for the run summary and the dataset card."""
    return dict(Counter(hit.benchmark for hit in hits))
