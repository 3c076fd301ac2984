"""What a distill run cost: per stage, per kept trace, against the budget, against its estimate, and what batch saved.

Two sources, for two questions:
- the rows (every LLM row carries its tokens and dollars) say what the *dataset* cost: each row
  once, whichever run paid for it (rows reused from the estimate's pilot or an earlier run count);
- the spend ledger of the output dir (tasks/llm/spend.py) says what was *paid* into it: every
  call of every run, the pilot's and those of rows a budget stopped included. The budget is
  checked against it, and batch savings are read from it.

When a budget stopped the run, only problems whose chain is finished (`finished_traces`) go to the
filter: a solved trace with a translation or its rephrase still to do is not done, and must not
be reported as dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from tasks.llm import SpendSettings, SpendTotals, Usage
from tasks.records import NLTraceRecord, ToolCallRecord, TraceRecord, TranslationRecord, rows_by_trace, trace_key
from tasks.stages.estimate import LLM_STAGES, EstimateCheck, check_estimate, load_estimate
from tasks.stages.filter import FilterOutcome, selection_drop_reasons, translation_drop_reason


class StageCost(BaseModel):
    """One stage's LLM rows: calls, tokens and dollars (`calls` counts judge calls once per translation that ended
    on the judge's verdict: rows record their attempts, not every judge call)."""

    stage: str
    rows: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class BudgetStatus(BaseModel):
    reached: bool
    spent_usd: float
    max_usd: float | None
    spent_tokens: int
    max_tokens: int | None
    problems_done: int
    problems: int

    def line(self) -> str:
        cap = f"${self.max_usd:.4f}" if self.max_usd is not None else f"{self.max_tokens} tokens"
        spent = f"${self.spent_usd:.4f}" if self.max_usd is not None else f"{self.spent_tokens} tokens"
        return f"budget reached: {spent} of {cap}, {self.problems_done} of {self.problems} problems done"


class PilotInfo(BaseModel):
    size: int
    seed: int
    of_problems: int


class SpendSummary(BaseModel):
    stages: list[StageCost]
    cost_usd: float
    cost_per_kept_usd: float | None
    paid_usd: float  # the ledger: every call paid into this output dir, by any run
    paid_calls: int
    batch_calls: int
    batch_saved_usd: float
    budget: BudgetStatus | None = None
    estimate: EstimateCheck | None = None
    pilot: PilotInfo | None = None


def finished_traces(traces: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                    translations: Sequence[TranslationRecord], nl_traces: Sequence[NLTraceRecord],
                    keep_per_problem: int = 1) -> list[TraceRecord]:
    """The traces whose whole chain is done: dropped by the solver or the selection of distinct traces, dropped for
    an unfaithful translation with every call translated, or rephrased. The others were cut short by a budget."""
    selection = selection_drop_reasons(traces, calls, keep_per_problem)
    calls_of, translations_of = rows_by_trace(calls), rows_by_trace(translations)
    rephrased = {trace_key(n) for n in nl_traces}
    done = []
    for trace in traces:
        key = trace_key(trace)
        translated = {t.call_index for t in translations_of[key]}
        all_translated = all(c.call_index in translated for c in calls_of[key] if c.status == "ok")
        if selection[key] is not None or key in rephrased or (
                all_translated and translation_drop_reason(calls_of[key], translations_of[key]) is not None):
            done.append(trace)
    return done


def problems_done(traces: Sequence[TraceRecord], done: Sequence[TraceRecord]) -> int:
    """Problems every drawn trace of which is done (for "N of M problems done" when a budget stopped the run)."""
    finished = {trace_key(t) for t in done}
    open_problems = {t.problem_id for t in traces if trace_key(t) not in finished}
    return len({t.problem_id for t in traces} - open_problems)


def stage_costs(traces: Sequence[TraceRecord], translations: Sequence[TranslationRecord],
                nl_traces: Sequence[NLTraceRecord]) -> list[StageCost]:
    calls = {"solve": sum(t.n_turns for t in traces),
             "translate": sum(t.attempts + (t.check_method == "judge") for t in translations),
             "rephrase": sum(n.attempts for n in nl_traces)}
    rows = {"solve": traces, "translate": translations, "rephrase": nl_traces}
    costs = []
    for stage in LLM_STAGES:
        usage = Usage.total(rows[stage])
        costs.append(StageCost(stage=stage, rows=len(rows[stage]), calls=calls[stage], prompt_tokens=usage.prompt_tokens,
                               completion_tokens=usage.completion_tokens, cost_usd=round(usage.cost_usd, 6)))
    return costs


def summarize_spend(traces: Sequence[TraceRecord], translations: Sequence[TranslationRecord],
                    nl_traces: Sequence[NLTraceRecord], kept: int, paid: SpendTotals, *,
                    budget: BudgetStatus | None = None, estimate: EstimateCheck | None = None,
                    pilot: PilotInfo | None = None) -> SpendSummary:
    stages = stage_costs(traces, translations, nl_traces)
    cost = sum(s.cost_usd for s in stages)
    return SpendSummary(
        stages=stages, cost_usd=round(cost, 6), cost_per_kept_usd=round(cost / kept, 6) if kept else None,
        paid_usd=round(paid.usd, 6), paid_calls=sum(s.calls for s in paid.by_stage.values()),
        batch_calls=sum(s.batch_calls for s in paid.by_stage.values()), batch_saved_usd=round(paid.batch_saved_usd, 6),
        budget=budget, estimate=estimate, pilot=pilot)


def run_spend_summary(traces: Sequence[TraceRecord], translations: Sequence[TranslationRecord],
                      nl_traces: Sequence[NLTraceRecord], filtered: FilterOutcome, paid: SpendTotals, *,
                      settings: SpendSettings, model: str, stopped: bool, problems_done: int, problems: int,
                      pilot: PilotInfo | None, estimate_path: Path | None) -> SpendSummary:
    """The distill flow's spend summary: its rows' cost, the ledger's, the budget's state, and the estimate's error
    (when `estimate_path` holds an estimate of this very run)."""
    budget = None
    if settings.max_budget_usd is not None or settings.max_tokens_total is not None:
        budget = BudgetStatus(reached=stopped, spent_usd=round(paid.usd, 6), max_usd=settings.max_budget_usd,
                              spent_tokens=paid.tokens, max_tokens=settings.max_tokens_total,
                              problems_done=problems_done, problems=problems)
    kept = len(filtered.sft)
    summary = summarize_spend(traces, translations, nl_traces, kept, paid, budget=budget, pilot=pilot)
    estimate = load_estimate(estimate_path, problems, model) if estimate_path is not None and not stopped else None
    if estimate is not None:
        summary.estimate = check_estimate(estimate, summary.cost_usd, kept)
    return summary


def spend_lines(spend: SpendSummary) -> list[str]:
    """The spend summary as the lines the CLI prints and the dataset card and the Prefect artifact show."""
    stages = ", ".join(f"{s.stage} ${s.cost_usd:.4f} ({s.calls} calls)" for s in spend.stages)
    lines = [f"cost by stage: {stages}",
             "cost per kept trace: " + (f"${spend.cost_per_kept_usd:.5f}" if spend.cost_per_kept_usd is not None
                                        else "no trace kept"),
             f"paid into this output dir, all runs together: ${spend.paid_usd:.4f} in {spend.paid_calls} calls"]
    if spend.batch_calls:
        lines.append(f"batch: {spend.batch_calls} calls, ${spend.batch_saved_usd:.4f} saved against online prices")
    if spend.budget is not None:
        budget = spend.budget
        lines.append(budget.line() if budget.reached else
                     f"budget: ${budget.spent_usd:.4f} of {'$' + format(budget.max_usd, '.4f') if budget.max_usd else '-'}"
                     f", {budget.spent_tokens} of {budget.max_tokens or '-'} tokens")
    if spend.estimate is not None:
        e = spend.estimate
        error = f"{100 * e.error:+.1f}%" if e.error is not None else "n/a"
        lines.append(f"estimate: ${e.estimated_usd:.4f} [{e.estimated_usd_low:.4f}, {e.estimated_usd_high:.4f}], actual "
                     f"${e.actual_usd:.4f} (error {error}, {'within' if e.within_interval else 'outside'} the 90% "
                     f"interval); kept: estimated {e.estimated_kept:.0f} [{e.estimated_kept_low:.0f}, "
                     f"{e.estimated_kept_high:.0f}], actual {e.actual_kept}")
    if spend.pilot is not None:
        lines.append(f"pilot: {spend.pilot.size} of {spend.pilot.of_problems} problems (seed {spend.pilot.seed})")
    return lines


def spend_markdown(spend: SpendSummary) -> str:
    """Cost per stage as a table, then the other spend lines: the dataset card's section, the Prefect artifact."""
    head = "| stage | rows | calls | prompt tokens | completion tokens | cost usd |\n|---|---|---|---|---|---|\n"
    rows = "".join(f"| {s.stage} | {s.rows} | {s.calls} | {s.prompt_tokens} | {s.completion_tokens} | {s.cost_usd:.6f} |\n"
                   for s in spend.stages)
    return head + rows + "\n" + "".join(f"- {line}\n" for line in spend_lines(spend)[1:])
