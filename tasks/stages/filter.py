"""Filter: keep a natural-language trace only if it is correct, faithful and tool-free.

A trace is kept when (in this order of drop reasons):
- the solver finished without an LLM error               -> else "solver_error"
- the solver's boxed answer matched the reference        -> else "solver_no_answer" / "solver_wrong_answer"
  (such traces are never translated or rephrased: no money is spent on them)
- every successful tool call was translated faithfully  -> else "unfaithful_translation"
  (such traces are never rephrased either)
- the rephrase produced a non-empty solution             -> else "empty_solution"
- it ends its answer in \\boxed{}                        -> else "no_boxed_answer"
- its boxed answer matches the reference (grader)        -> else "wrong_answer"
- every written-out numeric equality in it is true       -> else "arithmetic_error"
  (the rephraser writes the solution afresh and can break a checked number on the way)
- no code fence or tool/code mention is left            -> else "tool_mentions_left"
- no line repeats 3+ times (a generation stuck in a loop) -> else "repetitive"
Kept traces become chat examples (user: problem, assistant: solution) for SFT. The checks on the
solution itself (`solution_drop_reason`) also tell the rephraser when to try again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel

from eval.grader import answers_match, extract_boxed
from tasks.stages.arithmetic_check import find_arithmetic_errors
from tasks.stages.dedup import dedup_traces
from tasks.stages.quality import TraceQuality, count_repeated_lines, count_tool_mentions, trace_quality
from tasks.records import ChatMessage, FilterDecision, NLTraceRecord, SFTRecord, ToolCallRecord, TraceRecord
from tasks.records import TranslationRecord


def solver_drop_reason(trace: TraceRecord) -> str | None:
    """Why a solver trace goes no further (None: translate and rephrase it)."""
    if trace.status == "error":
        return "solver_error"
    if trace.final_answer is None:
        return "solver_no_answer"
    return None if trace.answer_correct else "solver_wrong_answer"


def translation_drop_reason(calls: list[ToolCallRecord], translations: list[TranslationRecord]) -> str | None:
    """Why a solved trace is not worth rephrasing: a successful tool call without a faithful derivation."""
    faithful_ids = {t.call_index for t in translations if t.faithful}
    return None if all(c.call_index in faithful_ids for c in calls if c.status == "ok") else "unfaithful_translation"


def solution_drop_reason(solution: str, final_answer: str | None, reference_answer: str, problem: str) -> str | None:
    """Why a rephrased solution cannot be trained on (None: it can)."""
    checks = (
        (lambda: not solution.strip(), "empty_solution"),
        (lambda: extract_boxed(solution) is None, "no_boxed_answer"),
        (lambda: final_answer is None or not answers_match(final_answer, reference_answer, problem=problem), "wrong_answer"),
        (lambda: len(find_arithmetic_errors(solution)) > 0, "arithmetic_error"),
        (lambda: count_tool_mentions(solution, problem=problem) > 0, "tool_mentions_left"),
        (lambda: count_repeated_lines(solution) > 0, "repetitive"),
    )
    return next((why for failed, why in checks if failed()), None)


def decide(trace: TraceRecord, nl: NLTraceRecord | None, calls: list[ToolCallRecord],
           translations: list[TranslationRecord]) -> FilterDecision:
    successful = [c for c in calls if c.status == "ok"]
    faithful_ids = {t.call_index for t in translations if t.faithful}
    n_faithful = sum(1 for c in successful if c.call_index in faithful_ids)
    solution = nl.solution if nl else ""
    final_answer = nl.final_answer if nl else None
    reason = (solver_drop_reason(trace) or translation_drop_reason(calls, translations)
              or solution_drop_reason(solution, final_answer, trace.reference_answer, trace.problem))
    return FilterDecision(
        problem_id=trace.problem_id,
        kept=reason is None,
        drop_reason=reason,
        answer_correct=final_answer is not None and answers_match(final_answer, trace.reference_answer,
                                                                   problem=trace.problem),
        all_calls_faithful=n_faithful == len(successful),
        n_tool_calls=len(successful),
        n_faithful_calls=n_faithful,
        leftover_tool_mentions=count_tool_mentions(solution, problem=trace.problem),
        arithmetic_errors=len(find_arithmetic_errors(solution)),
        solution_chars=len(solution),
    )


def to_sft_record(nl: NLTraceRecord, trace: TraceRecord, translations: list[TranslationRecord], source: str) -> SFTRecord:
    prompt_versions = sorted({trace.prompt_version, nl.prompt_version, *(t.prompt_version for t in translations)})
    return SFTRecord(
        id=nl.problem_id,
        messages=[ChatMessage(role="user", content=nl.problem), ChatMessage(role="assistant", content=nl.solution)],
        source=source,
        teacher_model=nl.model,
        prompt_versions_json=json.dumps(prompt_versions),
        reference_answer=nl.reference_answer,
    )


def by_problem(rows: Sequence[ToolCallRecord] | Sequence[TranslationRecord]) -> dict[str, list]:
    grouped: dict[str, list] = defaultdict(list)
    for row in rows:
        grouped[row.problem_id].append(row)
    return grouped


def solved_traces(traces: Sequence[TraceRecord]) -> list[TraceRecord]:
    """The traces worth translating: the solver finished and its answer matched the reference."""
    return [t for t in traces if solver_drop_reason(t) is None]


def calls_to_translate(solved: Sequence[TraceRecord], calls: Sequence[ToolCallRecord]) -> list[ToolCallRecord]:
    """The successful tool calls of solved traces (a failed call has no result to derive)."""
    keep_ids = {t.problem_id for t in solved}
    return [c for c in calls if c.problem_id in keep_ids and c.status == "ok"]


def rephrase_inputs(solved: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                    translations: Sequence[TranslationRecord]) -> list[tuple[TraceRecord, list, list]]:
    """(trace, its calls, its translations) for each solved trace whose every call was derived faithfully."""
    calls_of, translations_of = by_problem(calls), by_problem(translations)
    return [(t, calls_of[t.problem_id], translations_of[t.problem_id]) for t in solved
            if translation_drop_reason(calls_of[t.problem_id], translations_of[t.problem_id]) is None]


class FilterOutcome(BaseModel):
    decisions: list[FilterDecision]
    sft: list[SFTRecord]
    quality: list[TraceQuality]
    duplicate_traces: int


def filter_traces(traces: Sequence[TraceRecord], nl_traces: Sequence[NLTraceRecord], calls: Sequence[ToolCallRecord],
                  translations: Sequence[TranslationRecord], source_of: dict[str, str]) -> FilterOutcome:
    """One decision per solver trace; the kept ones become SFT rows (near-identical solutions kept once)."""
    nl_of = {n.problem_id: n for n in nl_traces}
    calls_of, translations_of = by_problem(calls), by_problem(translations)
    duplicates = {d.id for d in dedup_traces(list(nl_traces))[1]}
    decisions, sft, quality = [], [], []
    for trace in traces:
        pid = trace.problem_id
        decision = decide(trace, nl_of.get(pid), calls_of[pid], translations_of[pid])
        if decision.kept and pid in duplicates:
            decision = decision.model_copy(update={"kept": False, "drop_reason": "duplicate_trace"})
        decisions.append(decision)
        quality.append(trace_quality(decision, trace, nl_of.get(pid), translations_of[pid]))
        if decision.kept:
            sft.append(to_sft_record(nl_of[pid], trace, translations_of[pid], source_of[pid]))
    return FilterOutcome(decisions=decisions, sft=sft, quality=quality, duplicate_traces=len(duplicates))
