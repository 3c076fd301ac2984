"""What a person judging a run sees in the Prefect UI: the artifacts of a distill run and of a train-eval run.

Distill (`publish_distill_report`, one call at the end of the flow):
    distill-funnel        table: loaded -> problems -> solved -> faithful -> kept, with why rows dropped
                          (several samples per problem: loaded -> problems -> samples -> solved -> distinct
                          -> faithful -> kept, counted in traces)
    distill-yield         table: per sample index, what it added (drawn, correct, distinct, kept, problems
                          it first covered, LLM calls, dollars), and the run's kept traces per problem, per
                          1,000 LLM calls and per dollar
    distill-funnel-chart  markdown: the funnel as a chart, the drop reasons, links to the Parquet files
    distill-cost          table: LLM rows, tokens and dollars per stage, in all and per kept trace
    distill-spend         markdown: calls and dollars per stage, $ per kept trace, what the output dir paid in
                          all, batch savings, the budget's state, the estimate's error against this run
    distill-samples       markdown: a few kept and a few dropped problems, each with its tool calls and
                          their real outputs, each translator derivation with its verdict and check
                          method, and the final tool-free solution
    distill-summary, distill-quality, distill-contamination   the run summary and per-trace metrics
Train-eval (`publish_train_eval_report`):
    train-eval-loss       markdown: the loss curve and the run's speed and device
    train-eval-accuracy   markdown: base vs tuned per benchmark with 95% intervals, chart and table
    eval-report           markdown: the evaluation's report.md, its chart inline
    eval-summary          table: accuracy per (model, benchmark) with its 95% interval

The builders are pure functions of the stage records, so tests check them without Prefect; the
publish functions only hand their output to flows/artifacts.py.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.report import inline_chart, summary_rows
from flows.artifacts import never_fails, png_markdown, publish_markdown, publish_table
from tasks.llm import Usage
from tasks.parquet_io import stage_path
from tasks.records import STAGE_RECORDS, FilterDecision, NLTraceRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.records import rows_by_trace, trace_key
from tasks.stages.filter import FilterOutcome
from tasks.stages.funnel import SOLVER_DROPS, TRANSLATION_DROPS, FunnelStep, funnel_steps
from tasks.stages.problems import PreparedProblems
from tasks.stages.spend_report import StageCost, spend_markdown, stage_costs
from tasks.stages.summary import DistillSummary, YieldReport, shown_ratio

if TYPE_CHECKING:  # only their fields are read; importing training.sft would load torch into the distill flow
    from eval.records import EvalReport
    from training.sft import TrainResult

SAMPLES_KEPT, SAMPLES_DROPPED = 2, 3
# Long texts are cut in the samples (the Parquet files hold them whole).
MAX_PROBLEM_CHARS, MAX_CODE_CHARS, MAX_OUTPUT_CHARS, MAX_SOLUTION_CHARS = 1500, 1200, 800, 3000


# ---- funnel (its steps: tasks/stages/funnel.py) ---------------------------------------------------------------------

def _reasons_text(reasons: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])))


def funnel_table(steps: Sequence[FunnelStep]) -> list[dict[str, Any]]:
    return [{"stage": s.stage, "rows": s.rows,
             "% of problems": "" if s.share_of_problems is None else f"{100 * s.share_of_problems:.1f}",
             "dropped before this step": s.dropped, "why": _reasons_text(s.drop_reasons)} for s in steps]


def funnel_chart_png(steps: Sequence[FunnelStep], title: str) -> bytes:
    """Horizontal bars, widest at the top, each labelled with its count and the reasons the step lost rows."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 0.7 * len(steps) + 1.2))
    names = [s.stage for s in steps][::-1]
    values = [s.rows for s in steps][::-1]
    bars = ax.barh(names, values, color=["#2e7d32" if n == "kept" else "#1565c0" for n in names])
    widest = max(values, default=0) or 1
    for bar, step in zip(bars, steps[::-1]):
        label = f"{step.rows}"
        if step.dropped:
            label += f"   (-{step.dropped}: {_reasons_text(step.drop_reasons)})"
        ax.text(bar.get_width() + widest * 0.01, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=9)
    ax.set_xlim(0, widest * 2.2)  # room for the labels right of the bars
    ax.set_xlabel("problems")
    ax.set_title(title, fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


# ---- cost ---------------------------------------------------------------------------------------------------------

def cost_rows(stages: Sequence[StageCost], kept: int) -> list[dict[str, Any]]:
    """Tokens and dollars per LLM stage (`spend_report.stage_costs`), the run's total, and the total divided by
    the traces kept."""
    def row(stage: str, llm_rows: int | str, usage: Usage) -> dict[str, Any]:
        return {"stage": stage, "llm rows": llm_rows, "prompt tokens": usage.prompt_tokens,
                "completion tokens": usage.completion_tokens, "cost usd": round(usage.cost_usd, 6)}

    rows = [row(s.stage, s.rows, Usage.total([s])) for s in stages]
    total = Usage.total(stages)
    rows.append(row("total", sum(s.rows for s in stages), total))
    if kept:
        per_kept = Usage(prompt_tokens=round(total.prompt_tokens / kept), completion_tokens=round(total.completion_tokens / kept),
                         cost_usd=total.cost_usd / kept)
        rows.append(row(f"per kept trace (total / {kept})", "", per_kept))
    else:
        rows.append({"stage": "per kept trace", "llm rows": "", "prompt tokens": "no trace kept",
                     "completion tokens": "", "cost usd": ""})
    return rows


# ---- yield ---------------------------------------------------------------------------------------------------------

def yield_rows(report: YieldReport) -> list[dict[str, Any]]:
    """One row per sample index (what the k-th samples added), then the run's totals and ratios."""
    rows: list[dict[str, Any]] = [
        {"sample index": s.sample_index, "drawn": s.drawn, "correct": s.correct, "distinct, translated": s.distinct_new,
         "kept": s.kept, "problems first kept": s.problems_first_kept, "llm calls": s.llm_calls,
         "cost usd": s.cost_usd, "why dropped": _reasons_text(s.drop_reasons)} for s in report.by_sample]
    rows.append({"sample index": "all", "drawn": report.traces, "correct": sum(s.correct for s in report.by_sample),
                 "distinct, translated": sum(s.distinct_new for s in report.by_sample), "kept": report.kept,
                 "problems first kept": report.problems_with_kept, "llm calls": report.llm_calls,
                 "cost usd": report.cost_usd,
                 "why dropped": f"kept per problem {shown_ratio(report.kept_per_problem)}, per 1,000 calls "
                                f"{shown_ratio(report.kept_per_1000_calls)}, per $ {shown_ratio(report.kept_per_usd)}; "
                                f"labels {report.labels}"})
    return rows


# ---- sample traces ------------------------------------------------------------------------------------------------

def _cut(text: str | None, limit: int, where: str) -> str:
    text = text or ""
    return text if len(text) <= limit else f"{text[:limit]}\n… ({len(text) - limit} more characters in {where})"


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.splitlines() or [""])


def _stage_rank(reason: str) -> int:
    return 0 if reason in SOLVER_DROPS else 1 if reason in TRANSLATION_DROPS else 2


def pick_samples(decisions: Sequence[FilterDecision], n_kept: int = SAMPLES_KEPT,
                 n_dropped: int = SAMPLES_DROPPED) -> list[FilterDecision]:
    """The first kept problems, then dropped ones covering as many different drop reasons as possible,
    the reasons of later stages first (they carry tool calls, derivations and a solution to read)."""
    kept = [d for d in decisions if d.kept][:n_kept]
    reasons = list(dict.fromkeys(d.drop_reason for d in decisions if d.drop_reason))
    reasons.sort(key=_stage_rank, reverse=True)  # stable: first-seen order within a stage
    dropped: list[FilterDecision] = []
    while len(dropped) < n_dropped:  # one trace per reason per round, until enough or none left
        taken = {trace_key(d) for d in dropped}
        more = [next((d for d in decisions if d.drop_reason == r and trace_key(d) not in taken), None) for r in reasons]
        more = [d for d in more if d is not None]
        if not more:
            break
        dropped += more[:n_dropped - len(dropped)]
    return [*kept, *dropped]


def _calls_table(calls: Sequence[ToolCallRecord], translations: Sequence[TranslationRecord]) -> str:
    derivation_of = {t.call_index: t for t in translations}
    rows = ["<table>", "<tr><th>#</th><th>tool call (ran in the sandbox)</th><th>real output</th>"
            "<th>translator derivation</th><th>check</th></tr>"]
    for call in sorted(calls, key=lambda c: c.call_index):
        output = call.output if call.status == "ok" else f"{call.status}: {call.error or call.output}"
        t = derivation_of.get(call.call_index)
        if t is None:
            derivation, check = "not translated", "—"
        else:
            derivation = _cut(t.explanation, MAX_OUTPUT_CHARS, "translations.parquet")
            derivation += f"\n→ {t.derived_answer}" if t.derived_answer is not None else "\n→ no derived answer"
            verdict = "<b>faithful</b>" if t.faithful else "<b>NOT faithful</b>"
            check = f"{verdict}<br>method: <code>{t.check_method}</code><br>attempts: {t.attempts}"
            if t.reason:
                check += f"<br>{html.escape(_cut(t.reason, 200, 'translations.parquet'))}"
        tool = f"<code>{html.escape(call.tool_name)}</code>{_pre(_cut(call.code, MAX_CODE_CHARS, 'tool_calls.parquet'))}"
        rows.append(f"<tr><td>{call.call_index}</td><td>{tool}</td>"
                    f"<td>{_pre(_cut(output, MAX_OUTPUT_CHARS, 'tool_calls.parquet'))}</td>"
                    f"<td>{_pre(derivation)}</td><td>{check}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def sample_markdown(decision: FilterDecision, trace: TraceRecord, calls: Sequence[ToolCallRecord],
                    translations: Sequence[TranslationRecord], nl: NLTraceRecord | None) -> str:
    verdict = "Kept" if decision.kept else f"Dropped (`{decision.drop_reason}`)"
    solver = "correct" if trace.answer_correct else "wrong" if trace.final_answer is not None else "none"
    sample = f" sample {trace.sample_index}" if trace.sample_index else ""
    lines = [
        f"## {verdict} — `{trace.problem_id}`{sample}", "",
        "**Problem**", "", _quote(_cut(trace.problem, MAX_PROBLEM_CHARS, "traces.parquet")), "",
        f"Reference answer `{trace.reference_answer}` · solver's answer `{trace.final_answer}` ({solver}) · "
        f"{len(calls)} tool call(s), {trace.n_turns} turn(s), `{trace.tool_protocol}` protocol · "
        f"model `{trace.model}`, prompt `{trace.prompt_version}`", "",
    ]
    if trace.error:
        lines += [f"Solver error: `{_cut(trace.error, 300, 'traces.parquet')}`", ""]
    lines += ["**Tool calls, their real outputs, and the translator's derivations**", ""]
    lines += [_calls_table(calls, translations) if calls else "_no tool call_", ""]
    lines += ["**Final natural-language solution**", ""]
    if nl is None:
        lines.append("_not rephrased: the trace was dropped before the rephraser_")
    else:
        lines += [_quote(_cut(nl.solution, MAX_SOLUTION_CHARS, "nl_traces.parquet")), "",
                  f"final answer `{nl.final_answer}` · rephraser prompt `{nl.prompt_version}`, {nl.attempts} attempt(s)"]
    return "\n".join(lines) + "\n"


def stage_files_markdown(output_dir: Path) -> str:
    """Links to the run's Parquet files (file:// on the machine that ran it; copy the path elsewhere)."""
    links = []
    for stage in STAGE_RECORDS:
        path = stage_path(output_dir, stage).resolve()
        links.append(f"- `{path.name}`: [{path}]({path.as_uri()})")
    return "**Parquet files of this run**\n\n" + "\n".join(links) + "\n"


def samples_markdown(output_dir: Path, traces: Sequence[TraceRecord], calls: Sequence[ToolCallRecord],
                     translations: Sequence[TranslationRecord], nl_traces: Sequence[NLTraceRecord],
                     decisions: Sequence[FilterDecision]) -> str:
    trace_of = {trace_key(t): t for t in traces}
    nl_of = {trace_key(n): n for n in nl_traces}
    calls_of, translations_of = rows_by_trace(calls), rows_by_trace(translations)
    picked = pick_samples(decisions)
    kept = sum(d.kept for d in picked)
    several = any(d.sample_index for d in decisions)
    of = f"{len(decisions)} traces of {len({d.problem_id for d in decisions})} problems" if several \
        else f"{len(decisions)} problems"
    parts = [f"# Sample traces: {kept} kept, {len(picked) - kept} dropped (of {of})", "",
             stage_files_markdown(output_dir)]
    for decision in picked:
        key = trace_key(decision)
        parts.append(sample_markdown(decision, trace_of[key], calls_of[key], translations_of[key], nl_of.get(key)))
    return "\n".join(parts)


# ---- publishing ---------------------------------------------------------------------------------------------------

@never_fails
def publish_distill_report(output_dir: Path, prepared: PreparedProblems, traces: Sequence[TraceRecord],
                           calls: Sequence[ToolCallRecord], translations: Sequence[TranslationRecord],
                           nl_traces: Sequence[NLTraceRecord], filtered: FilterOutcome, summary: DistillSummary) -> None:
    """Every artifact of a finished distill run (a no-op outside a run; an outage costs one warning)."""
    steps = funnel_steps(prepared.counts, filtered.decisions)
    kept = len(filtered.sft)
    model = traces[0].model if traces else "no model call"
    rows = " → ".join(s.stage for s in steps[1:])
    of = f"{summary.problems} problems" if len(traces) == summary.problems else \
        f"{len(traces)} traces of {summary.problems} problems"
    publish_table("distill-funnel", funnel_table(steps), f"{kept} of {of} kept: {rows}, with drop reasons")
    chart = funnel_chart_png(steps, f"{of}, {kept} kept ({model})")
    reasons = [f"- **{s.stage}** lost {s.dropped}: {_reasons_text(s.drop_reasons)}" for s in steps if s.dropped]
    publish_markdown("distill-funnel-chart",
                     "\n".join(["# Distill funnel", "", png_markdown(chart, "funnel chart"), "",
                                *(reasons or ["Nothing was dropped."]), "", stage_files_markdown(output_dir)]),
                     f"Funnel chart: {kept} of {len(traces)} kept; the drop reasons; links to the Parquet files")
    report = summary.yield_report
    publish_table("distill-yield", yield_rows(report),
                  f"{report.kept} kept from {report.problems} problems ({shown_ratio(report.kept_per_problem)} per problem, "
                  f"{shown_ratio(report.kept_per_1000_calls)} per 1,000 LLM calls, {shown_ratio(report.kept_per_usd)} per $), "
                  "by sample index")
    publish_table("distill-cost", cost_rows(stage_costs(traces, translations, nl_traces), kept),
                  f"{summary.cost_usd:.4f} USD, {summary.prompt_tokens + summary.completion_tokens} tokens in all: "
                  "per stage and per kept trace")
    if summary.spend is not None:
        publish_markdown("distill-spend", "# Spend\n\n" + spend_markdown(summary.spend),
                         "Cost per stage and per kept trace, batch savings, budget, the estimate's error")
    publish_markdown("distill-samples", samples_markdown(output_dir, traces, calls, translations, nl_traces,
                                                         filtered.decisions),
                     "Sample kept and dropped traces: tool calls with real outputs, derivations with verdicts, "
                     "final solutions")
    publish_table("distill-summary", [summary.model_dump(exclude={"yield_report"})],
                  "Rows per stage, tokens and cost of this distill run")
    publish_table("distill-quality", [q.model_dump() for q in filtered.quality], "Per-trace quality metrics and drop reasons")
    if prepared.decontamination is not None:
        publish_table("distill-contamination", [h.model_dump() for h in prepared.decontamination.hits] or [{"hits": 0}],
                      "Problems removed before solving because they overlap an eval benchmark")


def loss_curve_png(curve: Sequence[dict[str, Any]], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    steps = [point["step"] for point in curve]
    ax.plot(steps, [point["loss"] for point in curve], marker="o" if len(curve) < 30 else None, color="#1565c0")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def loss_markdown(metrics: dict[str, Any], result: TrainResult) -> str:
    curve = metrics.get("loss_curve") or []
    lines = ["# Training loss", ""]
    if curve:
        lines += [png_markdown(loss_curve_png(curve, f"{len(curve)} logged steps, final loss {result.final_loss:.4f}"),
                               "loss curve"), ""]
    else:
        lines += ["_no loss was logged (a run of fewer steps than the logging interval, or resumed at its end)_", ""]
    lines += ["| steps | resumed from | final loss | tokens/s | peak memory MB | device | 4-bit base |",
              "|---|---|---|---|---|---|---|",
              f"| {result.steps} | {result.resumed_from_step} | {result.final_loss:.4f} | {result.train_tokens_per_s:.1f} "
              f"| {result.peak_memory_mb:.0f} | {result.device} | {result.load_in_4bit} |", "",
              f"Adapter: `{result.adapter_dir}` · metrics: `{result.metrics_path}`"]
    return "\n".join(lines) + "\n"


def accuracy_markdown(report: EvalReport) -> str:
    """Base vs tuned per benchmark, each with its 95% interval, the change, and whether the intervals overlap."""
    by_key = {(s.label, s.benchmark): s for s in report.summaries}
    labels = list(dict.fromkeys(s.label for s in report.summaries))
    benchmarks = list(dict.fromkeys(s.benchmark for s in report.summaries))
    lines = ["# Accuracy: base vs tuned (no tools at inference)", ""]
    if report.chart_path.exists():
        lines += [png_markdown(report.chart_path.read_bytes(), "accuracy by benchmark"), ""]
    reference = labels[0] if labels else None
    header = ["benchmark", "problems", *[f"{label} % [95% CI]" for label in labels],
              *[f"{label} − {reference}" for label in labels[1:]]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in benchmarks:
        cells = [name, str(max((by_key[(label, name)].n_problems for label in labels if (label, name) in by_key), default=0))]
        for label in labels:
            s = by_key.get((label, name))
            cells.append("" if s is None else f"{100 * s.accuracy:.1f} [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]")
        for label in labels[1:]:
            s, base = by_key.get((label, name)), by_key.get((reference, name))
            if s is None or base is None:
                cells.append("")
                continue
            overlap = s.ci_low <= base.ci_high and base.ci_low <= s.ci_high
            cells.append(f"{100 * (s.accuracy - base.accuracy):+.1f} points"
                         + (" (intervals overlap: not distinguishable)" if overlap else " (intervals apart)"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Full report: `{report.report_path}` · per-problem Parquet under `{report.output_dir}`"]
    return "\n".join(lines) + "\n"


@never_fails
def publish_train_eval_report(result: TrainResult, report: EvalReport) -> None:
    """The loss curve and the base-vs-tuned accuracy of a train-eval run (a no-op outside a run)."""
    metrics = json.loads(Path(result.metrics_path).read_text()) if Path(result.metrics_path).exists() else {}
    publish_markdown("train-eval-loss", loss_markdown(metrics, result),
                     f"Training loss curve ({result.steps} steps on {result.device})")
    publish_markdown("train-eval-accuracy", accuracy_markdown(report),
                     "Base vs tuned accuracy per benchmark with 95% intervals")
    if Path(report.report_path).exists():
        publish_markdown("eval-report", inline_chart(Path(report.report_path).read_text(), Path(report.chart_path)),
                         "No-tool benchmark accuracy: the evaluation's report")
    publish_table("eval-summary", summary_rows(report.summaries), "Accuracy per (model, benchmark) with 95% interval")
