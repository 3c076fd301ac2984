"""Filter: keep a natural-language trace only if it is correct, distinct, faithful and tool-free.

A trace (one solver sample of a problem) is kept when (in this order of drop reasons):
- the solver finished without an LLM error               -> else "solver_error"
- its problem has an answer: a reference, or its samples' majority vote (tasks/stages/sampling.py)
                                                          -> else "no_consensus"
- the solver's boxed answer matched it                   -> else "solver_no_answer" / "solver_wrong_answer"
- its tool calls and answer differ from every earlier correct sample of the problem
                                                          -> else "duplicate_trace"
- fewer than `keep_per_problem` distinct correct traces of the problem came before it
                                                          -> else "keep_limit_reached"
  (traces dropped so far are never translated or rephrased: no money is spent on them)
- every successful tool call was translated faithfully  -> else "unfaithful_translation"
  (such traces are never rephrased either)
- the rephrase produced a non-empty solution             -> else "empty_solution"
- it ends its answer in \\boxed{}                        -> else "no_boxed_answer"
- its boxed answer matches the reference (grader)        -> else "wrong_answer"
- every written-out numeric equality in it is true       -> else "arithmetic_error"
  (the rephraser writes the solution afresh and can break a checked number on the way)
- no code fence or tool/code mention is left            -> else "tool_mentions_left"
- no line repeats 3+ times (a generation stuck in a loop) -> else "repetitive"
- its text is not near-identical to a shorter kept solution of the problem, nor the same text as
  another problem's kept solution                         -> else "duplicate_trace"
Kept traces become chat examples (user: problem, assistant: solution) for SFT. The checks on the
solution itself (`solution_drop_reason`) also tell the rephraser when to try again. An LLM error
comes before "no_consensus": a sample cut short by a transport fault says nothing about the problem,
and the operator needs to see it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel

from eval.grader import answers_match, extract_boxed
from tasks.stages.arithmetic_check import find_arithmetic_errors
from tasks.stages.config import SamplingConfig
from tasks.stages.dedup import dedup_traces, near_duplicates
from tasks.stages.quality import TraceQuality, count_repeated_lines, count_tool_mentions, trace_quality
from tasks.stages.sampling import distinct_key
from tasks.records import ChatMessage, FilterDecision, NLTraceRecord, ProblemRecord, SFTRecord, ToolCallRecord
from tasks.records import TraceRecord, TranslationRecord, rows_by_trace, trace_key

TraceKey = tuple[str, int]


def solver_drop_reason(trace: TraceRecord) -> str | None:
    """Why a solver trace goes no further (None: translate and rephrase it)."""
    if trace.status == "error":
        return "solver_error"
    if not trace.reference_answer:  # no reference, and its samples did not agree on one
        return "no_consensus"
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
           translations: list[TranslationRecord], selection_reason: str | None = None) -> FilterDecision:
    """The decision on one trace; `selection_reason` is `selection_drop_reasons`' verdict on it, if it was dropped
    before translation (a single trace per problem never is, apart from `solver_drop_reason`)."""
    successful = [c for c in calls if c.status == "ok"]
    faithful_ids = {t.call_index for t in translations if t.faithful}
    n_faithful = sum(1 for c in successful if c.call_index in faithful_ids)
    solution = nl.solution if nl else ""
    final_answer = nl.final_answer if nl else None
    reason = (solver_drop_reason(trace) or selection_reason or translation_drop_reason(calls, translations)
              or solution_drop_reason(solution, final_answer, trace.reference_answer, trace.problem))
    return FilterDecision(
        problem_id=trace.problem_id,
        sample_index=trace.sample_index,
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


def sft_id(problem_id: str, sample_index: int) -> str:
    """The training example's id: the problem's for sample 0 (as a single-sample run names it), unique for the others."""
    return problem_id if sample_index == 0 else f"{problem_id}/sample-{sample_index}"


def to_sft_record(nl: NLTraceRecord, trace: TraceRecord, translations: list[TranslationRecord], source: str,
                  answer_source: str = "reference") -> SFTRecord:
    prompt_versions = sorted({trace.prompt_version, nl.prompt_version, *(t.prompt_version for t in translations)})
    return SFTRecord(
        id=sft_id(nl.problem_id, nl.sample_index),
        messages=[ChatMessage(role="user", content=nl.problem), ChatMessage(role="assistant", content=nl.solution)],
        source=source,
        teacher_model=nl.model,
        prompt_versions_json=json.dumps(prompt_versions),
        reference_answer=nl.reference_answer,
        answer_source=answer_source,
    )


def solved_traces(traces: Sequence[TraceRecord]) -> list[TraceRecord]:
    """The traces the solver got right: finished, and its answer matched the problem's answer."""
    return [t for t in traces if solver_drop_reason(t) is None]


def selection_drop_reasons(traces: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                           keep_per_problem: int = 1) -> dict[TraceKey, str | None]:
    """Why each trace goes no further than the solver (None: translate it).

    Among a problem's correct traces, those with the same tool calls and answer (`sampling.distinct_key`)
    are one trace: the earliest sample stands for them, the others are "duplicate_trace". Not the
    shortest: the group's tool calls are the same, so their derivations would be too, and a later,
    shorter twin would replace a trace already translated when k is raised, sending the very same
    translator requests again (on the embedded model, k = 4 displaced 2 of the 9 traces k = 1 had
    translated). "Keep the shorter" applies where text is what is kept: near-identical solutions
    (`_duplicate_solutions`). Of the distinct ones, the first `keep_per_problem` in sample order go
    on, the rest are "keep_limit_reached" (only problems labelled by vote, which get all their
    samples, can have more).
    """
    reasons: dict[TraceKey, str | None] = {trace_key(t): solver_drop_reason(t) for t in traces}
    calls_of = rows_by_trace(calls)
    groups: dict[str, dict[str, list[TraceRecord]]] = defaultdict(dict)  # problem -> distinct key -> traces
    for trace in sorted(traces, key=lambda t: t.sample_index):
        if reasons[trace_key(trace)] is None:
            groups[trace.problem_id].setdefault(distinct_key(trace, calls_of[trace_key(trace)]), []).append(trace)
    for same_trace_groups in groups.values():
        for rank, (first, *twins) in enumerate(same_trace_groups.values()):  # each group in sample order
            if rank >= keep_per_problem:
                reasons[trace_key(first)] = "keep_limit_reached"
            for twin in twins:
                reasons[trace_key(twin)] = "duplicate_trace"
    return reasons


def traces_to_translate(traces: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                        keep_per_problem: int = 1) -> list[TraceRecord]:
    """The traces worth translating: correct, distinct, and within the problem's `keep_per_problem`."""
    reasons = selection_drop_reasons(traces, calls, keep_per_problem)
    return [t for t in traces if reasons[trace_key(t)] is None]


def calls_to_translate(selected: Sequence[TraceRecord], calls: Sequence[ToolCallRecord]) -> list[ToolCallRecord]:
    """The successful tool calls of the selected traces (a failed call has no result to derive)."""
    keep = {trace_key(t) for t in selected}
    return [c for c in calls if trace_key(c) in keep and c.status == "ok"]


def rephrase_inputs(selected: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                    translations: Sequence[TranslationRecord]) -> list[tuple[TraceRecord, list, list]]:
    """(trace, its calls, its translations) for each selected trace whose every call was derived faithfully."""
    calls_of, translations_of = rows_by_trace(calls), rows_by_trace(translations)
    return [(t, calls_of[trace_key(t)], translations_of[trace_key(t)]) for t in selected
            if translation_drop_reason(calls_of[trace_key(t)], translations_of[trace_key(t)]) is None]


class FilterOutcome(BaseModel):
    decisions: list[FilterDecision]
    sft: list[SFTRecord]
    quality: list[TraceQuality]
    duplicate_traces: int  # traces dropped as duplicate_trace, before translation or after rephrasing


def _duplicate_solutions(kept: Sequence[NLTraceRecord], near_duplicate_jaccard: float) -> set[TraceKey]:
    """Kept solutions that repeat another: near-identical to a shorter one of the same problem, or the same
    normalised text as an earlier one of another problem (`dedup_traces`)."""
    of_problem: dict[str, list[NLTraceRecord]] = defaultdict(list)
    for nl in kept:
        of_problem[nl.problem_id].append(nl)
    near = {trace_key(row) for rows in of_problem.values()
            for row, _ in near_duplicates([(nl, nl.solution) for nl in rows], near_duplicate_jaccard)}
    remaining = [nl for nl in kept if trace_key(nl) not in near]
    unique = {trace_key(nl) for nl in dedup_traces(remaining)[0]}
    return near | ({trace_key(nl) for nl in remaining} - unique)


def filter_traces(traces: Sequence[TraceRecord], nl_traces: Sequence[NLTraceRecord], calls: Sequence[ToolCallRecord],
                  translations: Sequence[TranslationRecord], problems: Sequence[ProblemRecord],
                  config: SamplingConfig | None = None) -> FilterOutcome:
    """One decision per solver trace; the kept ones become SFT rows (repeated solutions kept once)."""
    config = config or SamplingConfig()
    problem_of = {p.id: p for p in problems}
    nl_of = {trace_key(n): n for n in nl_traces}
    calls_of, translations_of = rows_by_trace(calls), rows_by_trace(translations)
    selection = selection_drop_reasons(traces, calls, config.keep_per_problem)
    decisions = [decide(t, nl_of.get(trace_key(t)), calls_of[trace_key(t)], translations_of[trace_key(t)],
                        selection[trace_key(t)]) for t in traces]
    duplicates = _duplicate_solutions([nl_of[trace_key(d)] for d in decisions if d.kept], config.near_duplicate_jaccard)
    decisions = [d.model_copy(update={"kept": False, "drop_reason": "duplicate_trace"}) if trace_key(d) in duplicates
                 else d for d in decisions]
    sft, quality = [], []
    for trace, decision in zip(traces, decisions):
        key = trace_key(trace)
        quality.append(trace_quality(decision, trace, nl_of.get(key), translations_of[key]))
        if decision.kept:
            problem = problem_of[trace.problem_id]
            sft.append(to_sft_record(nl_of[key], trace, translations_of[key], problem.source, problem.answer_source))
    return FilterOutcome(decisions=decisions, sft=sft, quality=quality,
                         duplicate_traces=sum(d.drop_reason == "duplicate_trace" for d in decisions))
