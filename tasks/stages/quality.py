"""Trace quality: per-row metrics of the distilled traces and per-run aggregates.

The dataset is only worth publishing if it is tool-free, verified and in one language, so these
numbers are measured on every row and summed per run: tool calls per trace, faithful-translation
rate, answer-verified rate, solution length in tokens, leftover tool/code mentions, a language
check, and the drop reasons of the filter. Everything here is plain data (pydantic rows and dicts)
that the flow publishes as a Prefect table artifact and writes into the run summary and the card.

`count_tool_mentions` is also the filter's test for "tool-free": one owner, one definition.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel

from tasks.records import FilterDecision, NLTraceRecord, TraceRecord, TranslationRecord, fields_of

# Words that give away a tool-assisted origin. Whole words, any case; plurals and verb forms included.
_TOOL_WORDS = re.compile(
    r"\b(?:sympy|numpy|python|tools?|code|coding|snippets?|scripts?|interpreter|execut(?:e|ed|es|ing|ion)"
    r"|function[ -]calls?|tool[ _-]calls?|outputs?|calculator|programs?)\b",
    re.IGNORECASE,
)
# Code syntax: fences, prompts, imports, calls of Python/SymPy API names, and snake_case identifiers
# (math notation such as f(x), \gcd(48, 18), a_n or \log_b(x) does not match).
_CODE_SYNTAX = re.compile(
    r"```|>>>|<tool_call>|\bimport\s+\w|\bfrom\s+\w+\s+import\b|\bdef\s+\w+\s*\(|\blambda\s+\w+\s*:"
    r"|\b(?:print|symbols|Symbol|sympify|simplify|expand|factor|solve|solveset|linsolve|nsolve|Rational|Eq"
    r"|factorint|isprime|nsimplify|lambdify|evalf|subs|integrate|diff|Matrix|range|len)\("
    r"|\b[A-Za-z]{2,}(?:_[A-Za-z]{2,})+\b"  # snake_case names: the sandbox's tools (integer_gcd, solve_equations)
)
_WORD = re.compile(r"[A-Za-z]+")
# Asymptote diagrams ([asy] ... [/asy], as in MATH) are figures, not tool calls; math is not prose.
_ASY_BLOCK = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.DOTALL)
_MATH = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\[.*?\\\]|\\\(.*?\\\)|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.DOTALL)
_TOKEN = re.compile(r"\w+|[^\w\s]")
_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an is are was be of to and in so we that this it for with by then thus therefore since which "
    "has have as at from on or not each if there these their our us can must".split())


def count_tool_mentions(text: str, *, problem: str = "") -> int:
    """How many tool/code traces a solution still holds (code fences, 'sympy', 'python', `print(`...).

    A word the problem itself uses is not counted: "a lock code of 4 digits" may say "code" freely.
    """
    text, problem = _ASY_BLOCK.sub(" ", text), _ASY_BLOCK.sub(" ", problem)
    allowed = {m.group(0).lower() for regex in (_TOOL_WORDS, _CODE_SYNTAX) for m in regex.finditer(problem)}
    return sum(1 for regex in (_TOOL_WORDS, _CODE_SYNTAX) for m in regex.finditer(text)
               if m.group(0).lower() not in allowed)


def count_repeated_lines(text: str, *, times: int = 3) -> int:
    """Distinct non-empty lines that occur at least `times` times: the loop of a degenerate generation."""
    counts = Counter(line.strip() for line in text.splitlines() if line.strip())
    return sum(1 for n in counts.values() if n >= times)


def count_tokens(text: str) -> int:
    """A cheap, tokenizer-free length: words, numbers and punctuation marks each count one."""
    return len(_TOKEN.findall(text))


def is_english(text: str) -> bool:
    """Mostly-ASCII letters and, beyond a few words, some English function words.

    A heuristic for catching a teacher that drifted into another language, not a language detector:
    only the prose is judged (math and diagrams are set aside), so LaTeX-heavy solutions pass.
    """
    prose = _MATH.sub(" ", _ASY_BLOCK.sub(" ", text))
    letters = [ch for ch in prose if ch.isalpha()]
    if letters and sum(ch.isascii() for ch in letters) / len(letters) < 0.9:
        return False
    words = [w.lower() for w in _WORD.findall(prose)]
    if len(words) < 12:
        return True
    return sum(w in _ENGLISH_FUNCTION_WORDS for w in words) / len(words) >= 0.05


class TraceQuality(BaseModel):
    """Quality metrics of one trace (a solver sample of a problem), kept or dropped."""

    problem_id: str
    sample_index: int = 0
    kept: bool
    drop_reason: str | None
    solver_correct: bool
    rephrased: bool
    answer_verified: bool  # the tool-free solution's final answer matches the reference
    n_tool_calls: int
    n_translated: int
    n_faithful: int
    faithful_rate: float | None  # None when no call was translated
    solution_tokens: int
    tool_mentions: int
    english: bool


def trace_quality(decision: FilterDecision, trace: TraceRecord, nl: NLTraceRecord | None,
                  translations: list[TranslationRecord]) -> TraceQuality:
    """Metrics of one trace from what the stages wrote; `nl` is None when it was never rephrased."""
    solution = nl.solution if nl else ""
    n_faithful = sum(t.faithful for t in translations)
    return TraceQuality(
        **fields_of(decision, "kept", "drop_reason"),
        solver_correct=trace.answer_correct,
        rephrased=nl is not None,
        answer_verified=decision.answer_correct,
        n_tool_calls=trace.n_tool_calls,
        n_translated=len(translations),
        n_faithful=n_faithful,
        faithful_rate=round(n_faithful / len(translations), 4) if translations else None,
        solution_tokens=count_tokens(solution),
        tool_mentions=count_tool_mentions(solution, problem=trace.problem),
        english=is_english(solution),
    )


class QualitySummary(BaseModel):
    """Per-run aggregates; rates are over the rows where they apply (None when none does)."""

    traces: int
    kept: int
    solver_correct_rate: float | None
    answer_verified_rate: float | None  # over rephrased traces
    faithful_translation_rate: float | None  # over all translated tool calls
    mean_tool_calls: float | None
    kept_mean_tool_calls: float | None
    kept_solution_tokens_mean: float | None
    kept_solution_tokens_p50: float | None
    kept_solution_tokens_max: int | None
    rows_with_tool_mentions: int
    rows_not_english: int  # over rephrased traces
    drop_reasons: dict[str, int]


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _mean(values: list[int]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def summarize_quality(rows: Iterable[TraceQuality]) -> QualitySummary:
    rows = list(rows)
    kept = [r for r in rows if r.kept]
    rephrased = [r for r in rows if r.rephrased]
    kept_tokens = [r.solution_tokens for r in kept]
    return QualitySummary(
        traces=len(rows),
        kept=len(kept),
        solver_correct_rate=_rate(sum(r.solver_correct for r in rows), len(rows)),
        answer_verified_rate=_rate(sum(r.answer_verified for r in rephrased), len(rephrased)),
        faithful_translation_rate=_rate(sum(r.n_faithful for r in rows), sum(r.n_translated for r in rows)),
        mean_tool_calls=_mean([r.n_tool_calls for r in rows]),
        kept_mean_tool_calls=_mean([r.n_tool_calls for r in kept]),
        kept_solution_tokens_mean=_mean(kept_tokens),
        kept_solution_tokens_p50=statistics.median(kept_tokens) if kept_tokens else None,
        kept_solution_tokens_max=max(kept_tokens) if kept_tokens else None,
        rows_with_tool_mentions=sum(r.tool_mentions > 0 for r in rows),
        rows_not_english=sum(not r.english for r in rephrased),
        drop_reasons=drop_reason_tally(rows),
    )


def drop_reason_tally(rows: Iterable[TraceQuality | FilterDecision]) -> dict[str, int]:
    """Dropped rows per reason, most frequent first."""
    return dict(Counter(r.drop_reason for r in rows if r.drop_reason).most_common())
