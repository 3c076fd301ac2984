"""The run summary: how many rows each stage made, why the rest were dropped, and what it cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel

from tasks.llm import Usage
from tasks.records import NLTraceRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.stages.filter import FilterOutcome, solved_traces
from tasks.stages.problems import PreparedProblems
from tasks.stages.spend_report import SpendSummary


class DistillSummary(BaseModel):
    output_dir: str
    problems: int
    solved_correct: int
    tool_calls: int
    translations: int
    faithful_translations: int
    nl_traces: int
    kept: int
    drop_reasons: dict[str, int]
    contaminated: int
    duplicate_problems: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    spend: SpendSummary | None = None  # per stage, per kept trace, the budget, the estimate's error, batch savings


def summarize_distill(output_dir: str, prepared: PreparedProblems, traces: Sequence[TraceRecord],
                      calls: Sequence[ToolCallRecord], translations: Sequence[TranslationRecord],
                      nl_traces: Sequence[NLTraceRecord], filtered: FilterOutcome,
                      spend: SpendSummary | None = None) -> DistillSummary:
    usage = Usage.total([*traces, *translations, *nl_traces])
    decontamination = prepared.decontamination
    return DistillSummary(
        output_dir=output_dir,
        problems=len(prepared.problems),
        solved_correct=len(solved_traces(traces)),
        tool_calls=len(calls),
        translations=len(translations),
        faithful_translations=sum(t.faithful for t in translations),
        nl_traces=len(nl_traces),
        kept=len(filtered.sft),
        drop_reasons=dict(Counter(d.drop_reason for d in filtered.decisions if d.drop_reason)),
        contaminated=len(decontamination.hits) if decontamination else 0,
        duplicate_problems=prepared.duplicates,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=round(usage.cost_usd, 6),
        spend=spend,
    )
