"""The run summary: how many rows each stage made, why the rest were dropped, what it cost, and the yield:
kept traces per problem, per 1,000 LLM calls and per dollar, and what each sample index added."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from tasks.llm import Usage
from tasks.records import FilterDecision, NLTraceRecord, ProblemRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.records import rows_by_trace, trace_key
from tasks.stages.config import SamplingConfig
from tasks.stages.filter import FilterOutcome, solved_traces
from tasks.stages.problems import PreparedProblems
from tasks.stages.spend_report import SpendSummary


class SampleYield(BaseModel):
    """What the problems' sample number `sample_index` (0: the first) added to the run."""

    sample_index: int
    drawn: int  # problems that still needed this sample (adaptive stopping) and got it
    correct: int  # its answer matched the reference or the vote label
    distinct_new: int  # correct and distinct from the problem's other traces: went on to translation
    kept: int  # ended in sft.parquet
    problems_first_kept: int  # problems whose first kept trace is this sample: the coverage it added
    llm_calls: int  # solver, translator (with judge) and rephraser calls spent on this sample's traces
    cost_usd: float
    drop_reasons: dict[str, int]


class YieldReport(BaseModel):
    """Kept traces per problem, per 1,000 LLM calls and per dollar; labels by origin; the funnel by sample index."""

    problems: int
    samples_per_problem: int
    keep_per_problem: int
    traces: int
    kept: int
    problems_with_kept: int
    kept_per_problem: float | None
    llm_calls: int
    kept_per_1000_calls: float | None
    calls_per_kept: float | None
    cost_usd: float
    kept_per_usd: float | None  # None when the calls cost nothing we know of (local and self-hosted models)
    labels: dict[str, int]  # problems by where their answer came from: reference, majority, no_consensus
    by_sample: list[SampleYield]


def _ratio(numerator: float, denominator: float, digits: int = 4) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def shown_ratio(value: float | None) -> str:
    """A yield ratio for people: "n/a" where it has no denominator (no kept trace, no known price)."""
    return "n/a" if value is None else f"{value:g}"


def yield_report(problems: Sequence[ProblemRecord], traces: Sequence[TraceRecord],
                 translations: Sequence[TranslationRecord], nl_traces: Sequence[NLTraceRecord],
                 decisions: Sequence[FilterDecision], config: SamplingConfig) -> YieldReport:
    """The yield of a run from its rows; `problems` are the labelled ones (after the vote)."""
    spent = {trace_key(t): Usage.total([t]) for t in traces}
    for key, rows in [*rows_by_trace(translations).items(), *rows_by_trace(nl_traces).items()]:
        spent[key].add(Usage.total(rows))
    first_kept: dict[str, int] = {}
    for d in sorted((d for d in decisions if d.kept), key=lambda d: d.sample_index):
        first_kept.setdefault(d.problem_id, d.sample_index)
    # every trace the selection let through has translation rows or, without a successful tool call, a rephrase
    selected = {trace_key(t) for t in translations} | {trace_key(n) for n in nl_traces}
    by_sample = []
    for index in sorted({t.sample_index for t in traces}):
        rows = [d for d in decisions if d.sample_index == index]
        usage = Usage.total(spent[trace_key(d)] for d in rows)
        by_sample.append(SampleYield(
            sample_index=index, drawn=len(rows),
            correct=sum(t.answer_correct for t in traces if t.sample_index == index),
            distinct_new=sum(trace_key(d) in selected for d in rows),
            kept=sum(d.kept for d in rows), problems_first_kept=sum(i == index for i in first_kept.values()),
            llm_calls=usage.llm_calls, cost_usd=round(usage.cost_usd, 6),
            drop_reasons=dict(Counter(d.drop_reason for d in rows if d.drop_reason).most_common())))
    total = Usage.total(spent.values())
    kept = sum(d.kept for d in decisions)
    sources = Counter(p.answer_source for p in problems)
    return YieldReport(
        problems=len(problems), samples_per_problem=config.samples_per_problem,
        keep_per_problem=config.keep_per_problem, traces=len(traces), kept=kept, problems_with_kept=len(first_kept),
        kept_per_problem=_ratio(kept, len(problems)), llm_calls=total.llm_calls,
        kept_per_1000_calls=_ratio(1000 * kept, total.llm_calls, 2), calls_per_kept=_ratio(total.llm_calls, kept, 2),
        cost_usd=round(total.cost_usd, 6), kept_per_usd=_ratio(kept, total.cost_usd, 2),
        labels={"reference": sources["reference"], "majority": sources["majority"], "no_consensus": sources["none"]},
        by_sample=by_sample,
    )


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
    yield_report: YieldReport

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


def summarize_distill(output_dir: str, prepared: PreparedProblems, problems: Sequence[ProblemRecord],
                      traces: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                      translations: Sequence[TranslationRecord], nl_traces: Sequence[NLTraceRecord],
                      filtered: FilterOutcome, sampling: SamplingConfig,
                      spend: SpendSummary | None = None) -> DistillSummary:
    """`problems` are the run's problems after the vote (their labels); `prepared` says what loading removed."""
    usage = Usage.total([*traces, *translations, *nl_traces])
    decontamination = prepared.decontamination
    return DistillSummary(
        output_dir=output_dir,
        problems=len(problems),
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
        yield_report=yield_report(problems, traces, translations, nl_traces, filtered.decisions, sampling),
    )
