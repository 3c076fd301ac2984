"""Train-eval flow: LoRA/QLoRA fine-tuning on sft.parquet, then base vs tuned evaluation without tools.

It is the step the pipeline hands to the GPU work pool: on CUDA the recipe trains 4-bit QLoRA, on
a CPU machine the same code trains plain LoRA (the demo). Base and tuned are evaluated in one
call, the same way, so their accuracies are comparable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from eval.benchmarks import BENCHMARK_NAMES
from eval.generation import ModelUnderTest
from eval.harness import EvalConfig, EvalReport
from tasks.parquet_io import read_records
from tasks.prefect_model_tasks import evaluate_task, train_task
from tasks.records import SFTRecord
from training.config import load_recipe


class TrainEvalParams(BaseModel):
    """Parameters of the train-eval flow (rendered as a form in the Prefect UI)."""

    sft_path: str = Field(default="out/distill/sft.parquet", description="sft.parquet from the distill flow.")
    output_dir: str = Field(default="out/train_eval")
    recipe: str = Field(default="embedded", description="training/recipes/<name>.yaml or a path to a recipe file.")
    max_steps: int | None = Field(default=None, description="Override the recipe's optimizer steps.")
    resume: bool = Field(default=False, description="Continue from the last checkpoint in output_dir.")
    benchmarks: list[str] = Field(default_factory=lambda: ["math500", "gsm8k"])
    eval_limit: int | None = Field(default=10, ge=1, description="First N problems of each benchmark (None: all).")
    max_new_tokens: int = Field(default=256, gt=0)
    batch_size: int = Field(default=8, ge=1)


class TrainEvalSummary(BaseModel):
    adapter_dir: str
    train_steps: int
    final_loss: float
    accuracy: dict[str, dict[str, float]] = Field(description="label -> benchmark -> accuracy")
    report_path: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@flow(name="train-eval", flow_run_name="train-eval-{params.recipe}")
def train_eval(params: TrainEvalParams = TrainEvalParams()) -> TrainEvalSummary:
    log = get_run_logger()
    unknown = sorted(set(params.benchmarks) - set(BENCHMARK_NAMES))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARK_NAMES)}")
    sft_path = Path(params.sft_path)
    n_examples = len(read_records(sft_path, SFTRecord))
    if n_examples == 0:
        raise ValueError(f"{sft_path} has no training examples: the distill filter kept nothing. "
                         "Use a stronger teacher model (--model) or more problems, then re-run distill.")
    out = Path(params.output_dir)
    overrides = {"max_steps": params.max_steps} if params.max_steps else {}
    config = load_recipe(params.recipe, **overrides)
    log.info("training %s on %d examples from %s", config.base_model, n_examples, sft_path)
    result = train_task.with_options(result_storage=out / ".prefect-results")(
        config, sft_path, _sha256(sft_path), out / "train", params.resume)

    models = [ModelUnderTest(model=config.base_model, label="base"),
              ModelUnderTest(model=config.base_model, adapter=result.adapter_dir, label="tuned")]
    eval_config = EvalConfig(limit=params.eval_limit, max_new_tokens=params.max_new_tokens, batch_size=params.batch_size)
    report: EvalReport = evaluate_task(models, params.benchmarks, eval_config, out / "eval")
    accuracy: dict[str, dict[str, float]] = {}
    for s in report.summaries:
        accuracy.setdefault(s.label, {})[s.benchmark] = s.accuracy
    return TrainEvalSummary(adapter_dir=str(result.adapter_dir), train_steps=result.steps, final_loss=result.final_loss,
                            accuracy=accuracy, report_path=str(report.report_path))
