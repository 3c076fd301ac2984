"""Filter: keep a natural-language trace only if it is correct, faithful and tool-free.

A trace is kept when (in this order of drop reasons):
- the solver finished without an LLM error               -> else "solver_error"
- the solver's boxed answer matched the reference        -> else "solver_no_answer" / "solver_wrong_answer"
  (such traces are never translated or rephrased: no money is spent on them)
- the rephrase produced a non-empty solution             -> else "empty_solution"
- it ends its answer in \\boxed{}                        -> else "no_boxed_answer"
- its boxed answer matches the reference (grader)        -> else "wrong_answer"
- every successful tool call was translated faithfully  -> else "unfaithful_translation"
- every written-out numeric equality in it is true       -> else "arithmetic_error"
  (the rephraser writes the solution afresh and can break a checked number on the way)
- no code fence or tool/code mention is left            -> else "tool_mentions_left"
- no line repeats 3+ times (a generation stuck in a loop) -> else "repetitive"
Kept traces become chat examples (user: problem, assistant: solution) for SFT.
"""

from __future__ import annotations

import json

from eval.grader import answers_match, extract_boxed
from tasks.arithmetic_check import find_arithmetic_errors
from tasks.quality import count_repeated_lines, count_tool_mentions
from tasks.records import ChatMessage, FilterDecision, NLTraceRecord, SFTRecord, ToolCallRecord, TraceRecord
from tasks.records import TranslationRecord


def solver_drop_reason(trace: TraceRecord) -> str | None:
    """Why a solver trace goes no further (None: translate and rephrase it)."""
    if trace.status == "error":
        return "solver_error"
    if trace.final_answer is None:
        return "solver_no_answer"
    return None if trace.answer_correct else "solver_wrong_answer"


def decide(trace: TraceRecord, nl: NLTraceRecord | None, calls: list[ToolCallRecord],
           translations: list[TranslationRecord]) -> FilterDecision:
    successful = [c for c in calls if c.status == "ok"]
    faithful_ids = {t.call_index for t in translations if t.faithful}
    n_faithful = sum(1 for c in successful if c.call_index in faithful_ids)
    solution = nl.solution if nl else ""
    final_answer = nl.final_answer if nl else None
    answer_correct = final_answer is not None and answers_match(final_answer, trace.reference_answer)
    mentions = count_tool_mentions(solution, problem=trace.problem)
    false_equalities = len(find_arithmetic_errors(solution))
    checks = [
        (not solution.strip(), "empty_solution"),
        (extract_boxed(solution) is None, "no_boxed_answer"),
        (not answer_correct, "wrong_answer"),
        (n_faithful < len(successful), "unfaithful_translation"),
        (false_equalities > 0, "arithmetic_error"),
        (mentions > 0, "tool_mentions_left"),
        (count_repeated_lines(solution) > 0, "repetitive"),
    ]
    reason = solver_drop_reason(trace) or next((why for failed, why in checks if failed), None)
    return FilterDecision(
        problem_id=trace.problem_id,
        kept=reason is None,
        drop_reason=reason,
        answer_correct=answer_correct,
        all_calls_faithful=n_faithful == len(successful),
        n_tool_calls=len(successful),
        n_faithful_calls=n_faithful,
        leftover_tool_mentions=mentions,
        arithmetic_errors=false_equalities,
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
