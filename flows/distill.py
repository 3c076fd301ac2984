"""Distill flow: problems → solve → translate → rephrase → filter, one Parquet file per stage.

Stages run one after another; inside a stage the rows run concurrently in chunked Prefect tasks.
Input problems are deduplicated and decontaminated against every eval benchmark before any LLM
call. The solver runs in rounds, one sample per problem each, for the problems that still need one
(tasks/stages/sampling.py: adaptive stopping, majority labels); translation and rephrasing are
spent only on correct, distinct traces, and rephrasing only on those whose every tool call was
derived faithfully (the rest could never be kept). Every row's result is cached the moment it is done, so re-running
the same command after a crash, or with a larger `limit`, only pays for rows not done yet; each
finished stage is also cached as a whole, so re-running a finished run is a few cache lookups
(tasks/runtime/stage_map.py).

Spend (tasks/llm/spend.py): every call is recorded in the output dir's ledger and checked against
`spend.max_budget_usd` / `max_tokens_total` before it is sent. A budget that stops the run leaves
the finished rows written (each stage file holds what is done; the filter sees only problems whose
chain is done) and ends the flow in a Completed state named "BudgetReached"; the CLI exits 3.
With `spend.batch`, the translate and rephrase stages' calls go through the provider's batch API.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from flows.run_names import named_after_params
from flows.run_report import publish_distill_report
from flows.artifacts import StageProgressArtifact
from flows.params import DistillParams
from tasks.llm import batch_calls, call_limits, spend_control
from tasks.parquet_io import stage_path, write_records
from tasks.prompt_store import load_prompt
from tasks.records import FilterDecision, NLTraceRecord, ProblemRecord, SFTRecord, ToolCallRecord, TraceRecord
from tasks.records import TranslationRecord
from tasks.runtime import StageFunction, map_stage, row_threads
from tasks.stages.failures import check_llm_failures
from tasks.stages.dataset_card import DatasetCardInfo, write_dataset_card
from tasks.stages.hub_upload import push_to_hub
from tasks.stages.filter import calls_to_translate, filter_traces, rephrase_inputs, solved_traces, traces_to_translate
from tasks.stages.problems import FieldMap, PreparedProblems, prepare_problems
from tasks.stages.quality import QualitySummary, summarize_quality
from tasks.stages.rephrase import rephrase_trace
from tasks.stages.sampling import grade_against_labels, label_problems, problems_to_sample
from tasks.stages.solve import SolveOutcome, solve_sample
from tasks.stages.summary import DistillSummary, summarize_distill
from tasks.stages.estimate import ESTIMATE_NAME, pilot_problems
from tasks.stages.spend_report import PilotInfo, finished_traces, problems_done, run_spend_summary
from tasks.stages.translate import translate_tool_call

BATCH_STAGES = ("translate", "rephrase")  # single-turn calls; the solver's turns wait on the sandbox: online


def _pin_prompt_versions(params: DistillParams) -> DistillParams:
    """Replace "latest" by the concrete version, so the cache key changes when a new prompt lands."""
    return params.model_copy(update={
        "solve": params.solve.model_copy(update={"prompt_version": load_prompt("solver", params.solve.prompt_version).version}),
        "translate": params.translate.model_copy(update={
            "prompt_version": load_prompt("translator", params.translate.prompt_version).version,
            "judge_prompt_version": load_prompt("judge", params.translate.judge_prompt_version).version}),
        "rephrase": params.rephrase.model_copy(update={"prompt_version": load_prompt("rephraser", params.rephrase.prompt_version).version}),
    })


@flow(name="distill", flow_run_name=named_after_params("distill", DistillParams),
      task_runner=ThreadPoolTaskRunner(max_workers=8))
def distill(params: DistillParams = DistillParams()) -> DistillSummary | State:
    log = get_run_logger()
    params = _pin_prompt_versions(params)
    out, cache = Path(params.output_dir), params.cache_path()
    threads = row_threads(params.max_concurrency, in_process_model=params.llm.in_process)
    batch_threads = row_threads(params.max_concurrency, batch_lines=params.spend.batch_max_lines)

    def run_stage(name: str, stage_fn: StageFunction, per_item: list[tuple], config: BaseModel) -> list:
        workers = batch_threads if params.spend.batch and name in BATCH_STAGES else threads
        return map_stage(name, stage_fn, per_item, params.llm, config, cache_dir=cache,
                         workers=workers, chunk_size=params.rows_per_task, progress_sink=StageProgressArtifact())

    with (call_limits(params.llm, params.max_concurrency, params.requests_per_minute),
          spend_control(params.spend, params.llm, cache) as ledger, batch_calls(params.llm, params.spend, cache, BATCH_STAGES)):
        prepared = prepare_problems(params.problems_path(), skip_bad_rows=params.skip_bad_rows,
                                    max_problem_chars=params.max_problem_chars, max_input_bytes=params.max_input_mb << 20,
                                    decontaminate=params.decontaminate, limit=params.limit,
                                    fields=FieldMap(problem=params.problem_field, answer=params.answer_field))
        all_problems = len(prepared.problems)
        if params.pilot:
            prepared = pilot_problems(prepared, params.pilot, params.pilot_seed)
        write_records(prepared.problems, ProblemRecord, stage_path(out, "problems"))
        log.info("problems: %s (%d bad rows skipped, %d duplicates)", prepared.counts, prepared.skipped_rows,
                 prepared.duplicates)

        outcomes: list[SolveOutcome] = []
        for sample_index in range(params.sampling.samples_per_problem):
            todo = problems_to_sample(prepared.problems, [o.trace for o in outcomes],
                                      [c for o in outcomes for c in o.tool_calls], sample_index, params.sampling)
            if not todo:
                break
            drawn = run_stage(solve_stage_name(sample_index), solve_sample, [(p, sample_index) for p in todo],
                              params.solve)
            outcomes += drawn
            write_records([o.trace for o in outcomes], TraceRecord, stage_path(out, "traces"))
            check_llm_failures("solve", drawn, params.max_failed_fraction)
        problems = label_problems(prepared.problems, [o.trace for o in outcomes], params.sampling)
        traces = grade_against_labels([o.trace for o in outcomes], problems)
        calls = [c for o in outcomes for c in o.tool_calls]
        write_records(problems, ProblemRecord, stage_path(out, "problems"))
        write_records(traces, TraceRecord, stage_path(out, "traces"))
        write_records(calls, ToolCallRecord, stage_path(out, "tool_calls"))
        selected = traces_to_translate(traces, calls, params.sampling.keep_per_problem)
        log.info("solve: %d/%d correct, %d distinct to translate, %d tool calls", len(solved_traces(traces)),
                 len(traces), len(selected), len(calls))

        translations = run_stage("translate", translate_tool_call, [(c,) for c in calls_to_translate(selected, calls)],
                                 params.translate)
        write_records(translations, TranslationRecord, stage_path(out, "translations"))
        check_llm_failures("translate", translations, params.max_failed_fraction)
        log.info("translate: %d/%d faithful", sum(t.faithful for t in translations), len(translations))

        nl_traces = run_stage("rephrase", rephrase_trace, rephrase_inputs(selected, calls, translations), params.rephrase)
        write_records(nl_traces, NLTraceRecord, stage_path(out, "nl_traces"))
        check_llm_failures("rephrase", nl_traces, params.max_failed_fraction)
        paid, stopped = ledger.totals(), ledger.stopped

    done = finished_traces(traces, calls, translations, nl_traces, params.sampling.keep_per_problem) if stopped else traces
    filtered = filter_traces(done, nl_traces, calls, translations, problems, params.sampling)
    write_records(filtered.decisions, FilterDecision, stage_path(out, "filter_report"))
    write_records(filtered.sft, SFTRecord, stage_path(out, "sft"))

    pilot = PilotInfo(size=len(prepared.problems), seed=params.pilot_seed, of_problems=all_problems) if params.pilot else None
    spend = run_spend_summary(traces, translations, nl_traces, filtered, paid, settings=params.spend, model=params.llm.model,
                              stopped=stopped, problems_done=problems_done(traces, done), problems=len(prepared.problems),
                              pilot=pilot, estimate_path=None if params.pilot else out / ESTIMATE_NAME)
    summary = summarize_distill(str(out), prepared, problems, traces, calls, translations, nl_traces, filtered,
                                params.sampling, spend=spend)
    quality_summary = summarize_quality(filtered.quality)
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    (out / "quality.json").write_text(quality_summary.model_dump_json(indent=2))
    publish_distill_report(out, prepared, traces, calls, translations, nl_traces, filtered, summary)
    write_dataset_card(out, _card_info(params, prepared, summary, filtered.duplicate_traces, quality_summary))
    if params.push_to_hub:
        push_to_hub(out, params.push_to_hub)
    log.info("distill done: %s", summary.model_dump_json())
    if spend.budget is not None and spend.budget.reached:
        log.warning("%s; raise spend.max_budget_usd and run again to go on (nothing paid for is paid again)",
                    spend.budget.line())
        return Completed(name="BudgetReached", message=spend.budget.line(), data=summary)
    return summary


def solve_stage_name(sample_index: int) -> str:
    """The solve stage of sample 0 keeps its name (its progress bar, its row store); each later round has its own."""
    return "solve" if sample_index == 0 else f"solve-sample-{sample_index}"


def _card_info(params: DistillParams, prepared: PreparedProblems, summary: DistillSummary, duplicate_traces: int,
               quality: QualitySummary) -> DatasetCardInfo:
    counts = {**prepared.counts, "solved_correct": summary.solved_correct, "rephrased": summary.nl_traces,
              "kept": summary.kept}
    return DatasetCardInfo(
        pretty_name=f"tool-distill {params.dataset_name()} ({params.llm.model})",
        license=params.license or ("apache-2.0" if params.problems == "bundled" else "other"),
        source_datasets=sorted({p.source for p in prepared.problems if p.source}),
        teacher_model=params.llm.model,
        prompt_versions={"solver": params.solve.prompt_version, "translator": params.translate.prompt_version,
                         "judge": params.translate.judge_prompt_version, "rephraser": params.rephrase.prompt_version},
        stage_counts=counts,
        drop_reasons=summary.drop_reasons,
        decontamination=prepared.decontamination,
        duplicates_removed={"problem": prepared.duplicates, "trace": duplicate_traces},
        quality=quality,
        cost_usd=summary.cost_usd,
        spend=summary.spend,
        yield_report=summary.yield_report,
    )
