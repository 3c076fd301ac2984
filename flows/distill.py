"""Distill flow: problems → solve → translate → rephrase → filter, one Parquet file per stage.

Stages run one after another; inside a stage the rows run concurrently in chunked Prefect tasks.
Input problems are deduplicated and decontaminated against every eval benchmark before any LLM
call, translation and rephrasing are spent only on traces whose answer the solver got right, and
rephrasing only on those whose every tool call was derived faithfully (the rest could never be
kept). Every row's result is cached the moment it is done, so re-running
the same command after a crash, or with a larger `limit`, only pays for rows not done yet; each
finished stage is also cached as a whole, so re-running a finished run is a few cache lookups
(tasks/stage_map.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from eval.benchmarks import BENCHMARK_NAMES
from flows.artifacts import publish_table
from tasks.dataset_card import DatasetCardInfo, DecontaminationReport, push_to_hub, write_dataset_card
from tasks.decontam import decontaminate
from tasks.dedup import dedup_problems, dedup_traces
from tasks.filter import decide, solver_drop_reason, to_sft_record, translation_drop_reason
from tasks.llm import LLMSettings
from tasks.llm_limits import call_limits
from tasks.parquet_io import stage_path, write_records
from tasks.problems import bundled_problems_path, load_problems
from tasks.prompt_store import load_prompt
from tasks.quality import summarize_quality, trace_quality
from tasks.records import FilterDecision, NLTraceRecord, ProblemRecord, SFTRecord, ToolCallRecord, TraceRecord
from tasks.records import TranslationRecord
from tasks.rephrase import RephraseConfig
from tasks.solve import SolveConfig
from tasks.stage_items import rephrase_item, solve_item, translate_item
from tasks.stage_map import ItemFunction, map_stage, row_threads
from tasks.translate import TranslateConfig

DECONTAMINATION_NGRAM = 8


class DistillParams(BaseModel):
    """Parameters of the distill flow (rendered as a form in the Prefect UI)."""

    problems: str = Field(default="bundled", description='A JSONL/Parquet/CSV file or folder, or "bundled" (24 easy demo problems).')
    output_dir: str = Field(default="out/distill", description="Where the stage Parquet files go.")
    limit: int | None = Field(default=None, ge=1, description="Use only the first N problems (after dedup and decontamination).")
    skip_bad_rows: bool = Field(default=False, description="Skip malformed input rows (reported) instead of stopping.")
    max_problem_chars: int = Field(default=20_000, gt=0, description="Longer problems are bad rows.")
    decontaminate: bool = Field(default=True, description=f"Remove problems that overlap an eval benchmark ({DECONTAMINATION_NGRAM}-grams).")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    max_concurrency: int = Field(default=4, ge=1, description="LLM calls in flight at once (capped by the Prefect limit `llm-<model>` if one exists).")
    rows_per_task: int = Field(default=128, ge=1, description="Rows per Prefect task run: the stage runs its rows on "
                                                           "2 x `max_concurrency` threads (1 x for an in-process model) and caches every row as it finishes.")
    requests_per_minute: float | None = Field(default=None, gt=0, description="Start at most this many LLM calls per minute (capped by `llm-<model>-rpm` if it exists).")
    solve: SolveConfig = Field(default_factory=SolveConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    rephrase: RephraseConfig = Field(default_factory=RephraseConfig)
    license: str | None = Field(default=None, description='Dataset card licence; default "apache-2.0" for the bundled set, else "other".')
    push_to_hub: str | None = Field(default=None, description="Hugging Face dataset repo to upload to (needs HF_TOKEN).")

    def problems_path(self) -> Path:
        return bundled_problems_path() if self.problems == "bundled" else Path(self.problems)

    def dataset_name(self) -> str:
        return "bundled" if self.problems == "bundled" else Path(self.problems).stem

    def run_slug(self) -> str:
        """`<dataset>-<model>`, the tail of flow run names shown in the Prefect UI."""
        return f"{self.dataset_name()}-{self.llm.model.replace('/', '_')}"


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


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = DistillParams.model_validate(flow_run.parameters.get("params") or {})
    return f"distill-{params.run_slug()}"


def _pin_prompt_versions(params: DistillParams) -> DistillParams:
    """Replace "latest" by the concrete version, so the cache key changes when a new prompt lands."""
    return params.model_copy(update={
        "solve": params.solve.model_copy(update={"prompt_version": load_prompt("solver", params.solve.prompt_version).version}),
        "translate": params.translate.model_copy(update={
            "prompt_version": load_prompt("translator", params.translate.prompt_version).version,
            "judge_prompt_version": load_prompt("judge", params.translate.judge_prompt_version).version}),
        "rephrase": params.rephrase.model_copy(update={"prompt_version": load_prompt("rephraser", params.rephrase.prompt_version).version}),
    })


def _group(rows: list, key: str = "problem_id") -> dict[str, list]:
    grouped: dict[str, list] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


def _problems_stage(params: DistillParams, out: Path) -> tuple[list[ProblemRecord], dict[str, int], DecontaminationReport | None, int]:
    """Load, dedup, decontaminate, limit; write problems.parquet. Returns (problems, counts, decontam report, duplicates)."""
    log = get_run_logger()
    report = load_problems(params.problems_path(), skip_bad_rows=params.skip_bad_rows, max_problem_chars=params.max_problem_chars)
    unique, duplicates = dedup_problems(report.problems)
    counts = {"loaded": len(report.problems), "after_dedup": len(unique)}
    decontam = None
    if params.decontaminate:
        unique, hits = decontaminate(unique, ngram_size=DECONTAMINATION_NGRAM)
        decontam = DecontaminationReport(benchmarks=list(BENCHMARK_NAMES), ngram_size=DECONTAMINATION_NGRAM,
                                         min_coverage=0.5, hits=hits)
        counts["after_decontamination"] = len(unique)
        publish_table("distill-contamination", [h.model_dump() for h in hits] or [{"hits": 0}],
                      "Problems removed before solving because they overlap an eval benchmark")
    problems = unique[: params.limit]
    counts["problems"] = len(problems)
    write_records(problems, ProblemRecord, stage_path(out, "problems"))
    log.info("problems: %s (%d bad rows skipped, %d duplicates, %d contaminated)", counts, len(report.skipped),
             len(duplicates), len(decontam.hits) if decontam else 0)
    return problems, counts, decontam, len(duplicates)


@flow(name="distill", flow_run_name=_flow_run_name, task_runner=ThreadPoolTaskRunner(max_workers=8))
def distill(params: DistillParams = DistillParams()) -> DistillSummary:
    with call_limits(params.llm, params.max_concurrency, params.requests_per_minute):
        return _distill_stages(params)


def _distill_stages(params: DistillParams) -> DistillSummary:
    log = get_run_logger()
    params = _pin_prompt_versions(params)
    out = Path(params.output_dir)
    cache = out / ".prefect-results"

    threads = row_threads(params.max_concurrency, in_process_model=params.llm.in_process)

    def run_stage(name: str, item_fn: ItemFunction, per_item: list[tuple], *shared: object) -> list:
        return map_stage(name, item_fn, per_item, *shared, cache_dir=cache, workers=threads, chunk_size=params.rows_per_task)

    problems, counts, decontam, n_duplicates = _problems_stage(params, out)

    outcomes = run_stage("solve", solve_item, [(p,) for p in problems], params.llm, params.solve)
    traces = [o.trace for o in outcomes]
    calls = [c for o in outcomes for c in o.tool_calls]
    write_records(traces, TraceRecord, stage_path(out, "traces"))
    write_records(calls, ToolCallRecord, stage_path(out, "tool_calls"))
    worth_keeping = [t for t in traces if solver_drop_reason(t) is None]
    counts["solved_correct"] = len(worth_keeping)
    log.info("solve: %d/%d correct, %d tool calls", len(worth_keeping), len(traces), len(calls))

    keep_ids = {t.problem_id for t in worth_keeping}
    to_translate = [c for c in calls if c.problem_id in keep_ids and c.status == "ok"]
    translations = run_stage("translate", translate_item, [(c,) for c in to_translate], params.llm, params.translate)
    write_records(translations, TranslationRecord, stage_path(out, "translations"))
    log.info("translate: %d/%d faithful", sum(t.faithful for t in translations), len(translations))

    calls_by_problem, translations_by_problem = _group(calls), _group(translations)
    to_rephrase = [t for t in worth_keeping
                   if translation_drop_reason(calls_by_problem[t.problem_id], translations_by_problem[t.problem_id]) is None]
    nl_traces = run_stage("rephrase", rephrase_item,
                          [(t, calls_by_problem[t.problem_id], translations_by_problem[t.problem_id]) for t in to_rephrase],
                          params.llm, params.rephrase)
    write_records(nl_traces, NLTraceRecord, stage_path(out, "nl_traces"))
    counts["rephrased"] = len(nl_traces)

    nl_by_problem = {n.problem_id: n for n in nl_traces}
    duplicate_traces = {d.id for d in dedup_traces(nl_traces)[1]}
    source = {p.id: p.source for p in problems}
    decisions, sft, quality = [], [], []
    for trace in traces:
        pid = trace.problem_id
        decision = decide(trace, nl_by_problem.get(pid), calls_by_problem[pid], translations_by_problem[pid])
        if decision.kept and pid in duplicate_traces:
            decision = decision.model_copy(update={"kept": False, "drop_reason": "duplicate_trace"})
        decisions.append(decision)
        quality.append(trace_quality(decision, trace, nl_by_problem.get(pid), translations_by_problem[pid]))
        if decision.kept:
            sft.append(to_sft_record(nl_by_problem[pid], trace, translations_by_problem[pid], source[pid]))
    write_records(decisions, FilterDecision, stage_path(out, "filter_report"))
    write_records(sft, SFTRecord, stage_path(out, "sft"))
    counts["kept"] = len(sft)

    llm_rows = [*traces, *translations, *nl_traces]
    summary = DistillSummary(
        output_dir=str(out),
        problems=len(problems),
        solved_correct=len(worth_keeping),
        tool_calls=len(calls),
        translations=len(translations),
        faithful_translations=sum(t.faithful for t in translations),
        nl_traces=len(nl_traces),
        kept=len(sft),
        drop_reasons=dict(Counter(d.drop_reason for d in decisions if d.drop_reason)),
        contaminated=len(decontam.hits) if decontam else 0,
        duplicate_problems=n_duplicates,
        prompt_tokens=sum(r.prompt_tokens for r in llm_rows),
        completion_tokens=sum(r.completion_tokens for r in llm_rows),
        cost_usd=round(sum(r.cost_usd for r in llm_rows), 6),
    )
    quality_summary = summarize_quality(quality)
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    (out / "quality.json").write_text(quality_summary.model_dump_json(indent=2))
    publish_table("distill-summary", [summary.model_dump()], "Rows per stage, tokens and cost of this distill run")
    publish_table("distill-quality", [q.model_dump() for q in quality], "Per-trace quality metrics and drop reasons")
    write_dataset_card(out, DatasetCardInfo(
        pretty_name=f"tool-distill {params.dataset_name()} ({params.llm.model})",
        license=params.license or ("apache-2.0" if params.problems == "bundled" else "other"),
        source_datasets=sorted({p.source for p in problems if p.source}),
        teacher_model=params.llm.model,
        prompt_versions={"solver": params.solve.prompt_version, "translator": params.translate.prompt_version,
                         "judge": params.translate.judge_prompt_version, "rephraser": params.rephrase.prompt_version},
        stage_counts=counts,
        drop_reasons=summary.drop_reasons,
        decontamination=decontam,
        duplicates_removed={"problem": n_duplicates, "trace": len(duplicate_traces)},
        quality=quality_summary,
        cost_usd=summary.cost_usd,
    ))
    if params.push_to_hub:
        push_to_hub(out, params.push_to_hub)
    log.info("distill done: %s", summary.model_dump_json())
    return summary
