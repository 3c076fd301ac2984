"""Evaluate models on benchmarks without tools: generate, grade, write per-problem Parquet and a summary.

`evaluate_models` is the one entry point (the CLI and the train_eval flow both call it):

    report = evaluate_models(
        [ModelUnderTest(model="models/smollm2-135m", label="base"),
         ModelUnderTest(model="models/smollm2-135m", adapter=Path("out/adapter"), label="tuned")],
        ["math500", "gsm8k"], EvalConfig(limit=50, max_new_tokens=256), Path("out/eval"))

Every model sees the same problems, the same prompt and the same sampling settings, and every
completion is graded by `eval.grader.grade`, so base and tuned differ only in their weights.

Output layout under `output_dir`:

    per_problem/<label>/<benchmark>.parquet   one EvalRecord per (problem, sample)
    summary.json                              BenchmarkSummary per (label, benchmark) + config
    report.md, accuracy.png                   see eval/report.py
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from eval.benchmarks import BenchmarkItem, load_benchmark, prompt_for
from eval.generation import ChatCompletionFn, Completion, ModelUnderTest, open_backend
from eval.grader import grade
from eval.metrics import accuracy_interval, majority_correct, pass_at_k
from eval.records import (  # noqa: F401 (EvalConfig and the records are re-exported: callers import them here)
    BenchmarkSummary,
    EvalConfig,
    EvalRecord,
    EvalReport,
    read_eval_records,
    write_eval_records,
)
from eval.report import write_chart, write_markdown_report



def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow/task run (so progress shows in the UI), else the module's."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself: the k reported for pass@k and maj@k."""
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    return ks if ks[-1] == n else [*ks, n]


def _conversation(item: BenchmarkItem, config: EvalConfig) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return [*messages, {"role": "user", "content": prompt_for(item, config.prompt_template)}]


def _records(spec: ModelUnderTest, backend: str, item: BenchmarkItem, prompt: str,
             completions: list[Completion], config: EvalConfig) -> list[EvalRecord]:
    records = []
    for index, completion in enumerate(completions):
        verdict = grade(completion.text, item.answer, problem=item.problem)  # a stated precision applies
        records.append(EvalRecord(
            benchmark=item.benchmark, problem_id=item.id, label=spec.label, model=spec.model,
            adapter=str(spec.adapter) if spec.adapter else None, backend=backend, prompt=prompt,
            reference_answer=item.answer, sample_index=index, completion=completion.text,
            extracted_answer=verdict.extracted, correct=verdict.correct, grade_method=verdict.method,
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason, latency_s=completion.latency_s,
            batch_size=completion.batch_size, seed=config.seed, temperature=config.temperature,
            top_p=config.top_p, max_new_tokens=config.max_new_tokens,
        ))
    return records


def summarize(records: list[EvalRecord], generation_s: float, path: Path) -> BenchmarkSummary:
    """Accuracy with its 95% interval, pass@k / maj@k and cost figures of one (label, benchmark) run."""
    by_problem: dict[str, list[EvalRecord]] = {}
    for record in records:
        by_problem.setdefault(record.problem_id, []).append(record)
    n = min(len(samples) for samples in by_problem.values())
    ks = k_values(n)
    per_problem = [sum(r.correct for r in samples) / len(samples) for samples in by_problem.values()]
    ci_low, ci_high = accuracy_interval(per_problem)
    problems = len(by_problem)
    pass_at = {k: sum(pass_at_k(len(s), sum(r.correct for r in s), k) for s in by_problem.values()) / problems
               for k in ks}
    maj_at = {k: sum(majority_correct([r.extracted_answer for r in s[:k]], [r.correct for r in s[:k]])
                     for s in by_problem.values()) / problems
              for k in ks if k > 1}
    tokens = sum(r.completion_tokens for r in records)
    first = records[0]
    return BenchmarkSummary(
        label=first.label, model=first.model, adapter=first.adapter, benchmark=first.benchmark,
        n_problems=problems, samples_per_problem=n, accuracy=sum(per_problem) / problems,
        ci_low=ci_low, ci_high=ci_high, pass_at=pass_at, maj_at=maj_at,
        mean_completion_tokens=tokens / len(records),
        no_answer_rate=sum(r.extracted_answer is None for r in records) / len(records),
        truncated_rate=sum(r.finish_reason == "length" for r in records) / len(records),
        generation_s=generation_s, tokens_per_s=tokens / generation_s if generation_s > 0 else 0.0,
        per_problem_path=str(path),
    )


# Told "<label>/<benchmark>", the problems in it, and how many more are done (a caller's progress display).
ProgressHook = Callable[[str, int, int], None]


def evaluate_model(spec: ModelUnderTest, benchmarks: list[str], config: EvalConfig, output_dir: Path,
                   completion: ChatCompletionFn | None = None,
                   on_progress: ProgressHook | None = None) -> list[BenchmarkSummary]:
    """Load one model once and run it over every benchmark; one Parquet file per benchmark."""
    log = _logger()
    backend = open_backend(spec, completion)
    summaries = []
    try:
        for name in benchmarks:
            items = load_benchmark(name, config.limit, source=config.source, seed=config.subset_seed)
            conversations = [_conversation(item, config) for item in items]
            log.info("%s/%s: generating for %d problems with %s", spec.label, name, len(items), backend.description)
            with tqdm(total=len(items), desc=f"{spec.label}/{name}", unit="problem",
                      disable=not config.progress) as bar:

                def advance(count: int, bar: tqdm = bar, name: str = name, total: int = len(items)) -> None:
                    bar.update(count)
                    if on_progress is not None:
                        on_progress(f"{spec.label}/{name}", total, count)

                started = time.perf_counter()
                advance(0)  # the caller's display starts its clock with the generation
                completions = backend.generate(conversations, config, progress=advance)
                generation_s = time.perf_counter() - started
            records = [record
                       for item, conversation, samples in zip(items, conversations, completions, strict=True)
                       for record in _records(spec, backend.description, item, conversation[-1]["content"],
                                              samples, config)]
            path = write_eval_records(records, output_dir / "per_problem" / spec.label / f"{name}.parquet")
            summary = summarize(records, generation_s, path)
            log.info("%s/%s: accuracy %.1f%% [%.1f, %.1f] on %d problems (%.0f s)", spec.label, name,
                        100 * summary.accuracy, 100 * summary.ci_low, 100 * summary.ci_high,
                        summary.n_problems, generation_s)
            summaries.append(summary)
    finally:
        del backend
        gc.collect()
        _free_cuda_memory()
    return summaries


def _free_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_models(models: list[ModelUnderTest], benchmarks: list[str], config: EvalConfig, output_dir: Path,
                    completion: ChatCompletionFn | None = None, on_progress: ProgressHook | None = None) -> EvalReport:
    """Evaluate every model on every benchmark the same way, then write the summary, report and chart.

    `completion` answers the litellm model strings among `models` (default: `litellm.completion`).
    """
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels must be unique, got {labels}: give each model its own label")
    for name in benchmarks:
        load_benchmark(name, 1, source=config.source)  # fail on a typo before any model loads
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summaries = [s for spec in models for s in evaluate_model(spec, benchmarks, config, output_dir, completion,
                                                              on_progress)]
    return write_outputs(models, summaries, config, output_dir)


def write_outputs(models: list[ModelUnderTest], summaries: list[BenchmarkSummary], config: EvalConfig,
                  output_dir: Path) -> EvalReport:
    """summary.json, report.md and accuracy.png (a flow publishes them as artifacts: flows/run_report.py)."""
    summary_path = output_dir / "summary.json"
    summary_path.write_text(json.dumps({
        "config": config.model_dump(mode="json"),
        "models": [m.model_dump(mode="json") for m in models],
        "summaries": [s.model_dump(mode="json") for s in summaries],
    }, indent=2))
    chart_path = write_chart(summaries, output_dir / "accuracy.png")
    write_markdown_report(summaries, config, chart_path, output_dir / "report.md")
    return EvalReport(output_dir=output_dir, summaries=summaries, summary_path=summary_path,
                      report_path=output_dir / "report.md", chart_path=chart_path)


def regrade(output_dir: Path) -> EvalReport:
    """Grade saved completions again with the current grader (no generation), and rewrite the outputs.

    For when eval/grader.py improves after an expensive run: the completions are kept, only the
    extracted answers, verdicts, summaries, report and chart change.
    """
    output_dir = Path(output_dir)
    saved = json.loads((output_dir / "summary.json").read_text())
    config = EvalConfig.model_validate(saved["config"])
    models = [ModelUnderTest.model_validate(m) for m in saved["models"]]
    summaries = []
    for old in saved["summaries"]:
        path = output_dir / "per_problem" / old["label"] / f"{old['benchmark']}.parquet"
        records = []
        for record in read_eval_records(path):
            # the prompt holds the problem, and so any precision it states ("to the nearest tenth")
            verdict = grade(record.completion, record.reference_answer, problem=record.prompt)
            records.append(record.model_copy(update={"extracted_answer": verdict.extracted,
                                                     "correct": verdict.correct, "grade_method": verdict.method}))
        write_eval_records(records, path)
        summaries.append(summarize(records, old["generation_s"], path))
    return write_outputs(models, summaries, config, output_dir)
