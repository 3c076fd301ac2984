"""The paper's experiment in one command: distil MATH train with a teacher, QLoRA the student, evaluate base vs tuned.

    tool-distill paper --teacher openai/gpt-4o --student Qwen/Qwen2.5-1.5B-Instruct   # or: make paper
    tool-distill paper --teacher openai/gpt-4o --student Qwen/Qwen2.5-7B-Instruct --distill-limit 500

For a machine with a CUDA GPU and network (the teacher's API, the Hugging Face Hub for MATH train
and the student; the six benchmarks are bundled in full). The flow only wires the others:

1. MATH train (7,500 problems, all seven subjects, `EleutherAI/hendrycks_math`) is written once
   as problems JSONL; the distill flow reads it (the answer is each solution's last \\boxed{}).
2. `distill` with the teacher: solve with tools, translate, rephrase, filter -> sft.parquet.
3. `train_eval` with `training/recipes/paper_qlora.yaml` on the student (4-bit NF4 QLoRA; what
   changes from the released full fine-tuning and why: docs/paper.md), then base vs tuned on all
   six benchmarks without tools, both on the same 4-bit base.
4. paper_report.md: teacher, student, the distillation funnel, training figures, the accuracy
   table and chart (accuracy.png, from eval).

Expected hours and GPU memory per student size: docs/paper.md (arithmetic, not yet measured).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from eval.benchmarks import BENCHMARK_NAMES
from flows.distill import distill
from flows.estimate import estimate
from flows.params import MATH_TRAIN_HUB_ID, DistillParams, PaperParams
from flows.train_eval import TrainEvalParams, TrainEvalSummary, train_eval
from tasks.llm import LLMSettings
from tasks.stages.estimate import DistillEstimate
from tasks.stages.problems import load_dataset_or_hub_copy
from tasks.stages.summary import DistillSummary
from training.model_source import base_model_problem

MATH_SUBJECTS = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus"]


class PaperSummary(BaseModel):
    sft_path: str
    sft_rows: int
    train_eval: TrainEvalSummary
    report_path: str


def write_math_train(path: Path) -> Path:
    """MATH train as problems JSONL (problem, solution, level, type): the distill flow's input format.

    Written whole or not at all (a temporary file renamed at the end): the flow writes it only when it is
    absent, so a download that failed halfway must not leave a file the next run would take as complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            for subject in MATH_SUBJECTS:
                for index, row in enumerate(load_dataset_or_hub_copy(MATH_TRAIN_HUB_ID, subject, split="train")):
                    out.write(json.dumps({"id": f"math-train-{subject}-{index}", "problem": row["problem"],
                                          "solution": row["solution"], "level": row["level"],
                                          "source": f"MATH/{row['type']}"}) + "\n")
                    rows += 1
        if rows == 0:
            raise RuntimeError(f"{MATH_TRAIN_HUB_ID}: no rows read; check network access to the Hugging Face Hub")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def paper_report(params: PaperParams, sft_rows: int, distill: DistillSummary, result: TrainEvalSummary) -> str:
    eval_dir = Path(result.report_path).parent
    eval_report = Path(result.report_path).read_text(encoding="utf-8")
    metrics = json.loads((Path(result.adapter_dir).parent / "metrics.json").read_text(encoding="utf-8"))
    lines = [
        "# tool-distill: the paper's experiment",
        "",
        f"- Teacher: `{params.teacher}`; student: `{params.student}`; recipe: `{params.recipe}`",
        f"- Distillation: {distill.problems} MATH train problems -> {sft_rows} SFT rows "
        f"(teacher tokens: {distill.prompt_tokens} in, {distill.completion_tokens} out, cost ${distill.cost_usd:.2f})",
        f"- Training: {result.train_steps} steps, final loss {result.final_loss:.4f}, "
        f"{metrics.get('train_tokens_per_s', 0):.0f} tokens/s, peak memory {metrics.get('peak_memory_mb', 0):.0f} MB "
        f"({metrics.get('peak_memory_kind', '')}), 4-bit base: {metrics.get('load_in_4bit')}",
        f"- Evaluation (no tools, {', '.join(BENCHMARK_NAMES)}): {eval_dir}",
        "",
        "## Base vs tuned",
        "",
        eval_report.replace("](accuracy.png)", f"]({eval_dir / 'accuracy.png'})"),
    ]
    return "\n".join(lines) + "\n"


def paper_distill_params(params: PaperParams) -> DistillParams:
    """The distill run of the paper's experiment (and of its estimate), on MATH train written once if from the Hub."""
    out = Path(params.output_dir)
    problems = Path(params.math_train) if params.math_train != "hub" else params.hub_math_train_path()
    if params.math_train == "hub" and not problems.exists():
        get_run_logger().info("writing MATH train (%s, %d subjects) to %s", MATH_TRAIN_HUB_ID, len(MATH_SUBJECTS),
                              problems)
        write_math_train(problems)
    return DistillParams(problems=str(problems), output_dir=str(out / "distill"), limit=params.distill_limit,
                         llm=LLMSettings(model=params.teacher), spend=params.spend, license="other")


@flow(name="paper-estimate", flow_run_name="paper-estimate-{params.student}")
def paper_estimate(params: PaperParams = PaperParams()) -> DistillEstimate:
    """What distilling MATH train with this teacher will cost, from a pilot of `params.pilot` problems."""
    return estimate(paper_distill_params(params).model_copy(update={"pilot": params.pilot}))


@flow(name="paper", flow_run_name="paper-{params.student}")
def paper(params: PaperParams = PaperParams()) -> PaperSummary:
    log = get_run_logger()
    out = Path(params.output_dir)
    if (problem := base_model_problem(params.student)) is not None:  # not after hours of distillation
        raise ValueError(f"student {params.student}: {problem}")
    if params.pilot:  # the price first: its table is an artifact of this run before any full-scale call is made
        paper_estimate(params)
    distilled = distill(paper_distill_params(params))
    distilled.require_training_data()
    sft_path = out / "distill" / "sft.parquet"
    import pyarrow.parquet as pq

    sft_rows = pq.read_metadata(sft_path).num_rows
    log.info("distilled %d SFT rows with %s", sft_rows, params.teacher)
    result = train_eval(TrainEvalParams(
        sft_path=str(sft_path), output_dir=str(out / "train_eval"), recipe=params.recipe, base_model=params.student,
        max_steps=params.max_steps,
        benchmarks=list(BENCHMARK_NAMES), eval_limit=params.eval_limit, max_new_tokens=params.max_new_tokens,
        batch_size=params.batch_size))  # the bundled benchmark copies are the full test sets
    report_path = out / "paper_report.md"
    report_path.write_text(paper_report(params, sft_rows, distilled, result), encoding="utf-8")
    log.info("paper report: %s", report_path)
    return PaperSummary(sft_path=str(sft_path), sft_rows=sft_rows, train_eval=result, report_path=str(report_path))
