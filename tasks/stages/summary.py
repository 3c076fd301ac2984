"""The run summary: how many rows each stage made, why the rest were dropped, and what it cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

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

    def require_training_data(self) -> None:
        """Raise unless the run finished and kept rows: a budget-stopped run is a partial dataset, trained on only
        once the same command (with a higher budget) has completed it."""
        budget = self.spend.budget if self.spend is not None else None
        if budget is not None and budget.reached:
            raise RuntimeError(f"distill stopped: {budget.line()}; raise spend.max_budget_usd and run again")
        if self.kept == 0:
            raise ValueError(f"distill kept no rows ({self.problems} problems, drops {self.drop_reasons}), so there is "
                             f"nothing to train on; see {Path(self.output_dir) / 'filter_report.parquet'} and use more "
                             "problems or a stronger teacher.")


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
