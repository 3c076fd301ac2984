"""Train-eval flow: LoRA/QLoRA fine-tuning on sft.parquet, then base vs tuned evaluation without tools.

It is the step the pipeline hands to the GPU work pool: on CUDA the recipe trains 4-bit QLoRA, on
a CPU machine the recipe decides (the embedded one trains QLoRA there too, see docs/training.md).
Base and tuned are evaluated in one call, the same way and on the same (4-bit or full) base, so
their accuracies are comparable.

This flow is where a recipe's "embedded" base model becomes a directory: training/ and eval/ are
handed paths and know nothing of the pipeline's model store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from eval.benchmarks import BENCHMARK_NAMES
from eval.generation import ModelUnderTest
from eval.harness import EvalConfig, EvalReport
from flows.run_report import publish_train_eval_report
from flows.params import NO_TRAINING_EXAMPLES, TrainEvalParams
from tasks.parquet_io import count_records
from tasks.prefect_model_tasks import evaluate_task, resolve_model_dir, train_task
from tasks.records import SFTRecord
from training.config import TrainConfig, load_recipe


class TrainEvalSummary(BaseModel):
    adapter_dir: str
    train_steps: int
    final_loss: float
    load_in_4bit: bool = Field(description="trained on a 4-bit NF4 base: QLoRA; else plain LoRA")
    eval_in_4bit: bool = Field(description="base and tuned evaluated on the 4-bit base; else on the full-precision one")
    accuracy: dict[str, dict[str, float]] = Field(description="label -> benchmark -> accuracy")
    report_path: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_run_dir(output_dir: Path, config: TrainConfig, dataset_sha256: str) -> Path:
    """One training dir per (recipe, dataset) pair under `output_dir/train/`.

    A re-run with new SFT data gets a fresh dir instead of meeting the old run's checkpoints, and
    a re-run with the same data and recipe continues its own checkpoints, so the flow always
    resumes and never mixes two runs.
    """
    recipe = json.dumps(config.recipe, sort_keys=True)
    key = hashlib.sha256(f"{recipe}\n{dataset_sha256}".encode()).hexdigest()[:12]
    return output_dir / "train" / key


@flow(name="train-eval", flow_run_name="train-eval-{params.recipe}")
def train_eval(params: TrainEvalParams = TrainEvalParams()) -> TrainEvalSummary:
    log = get_run_logger()
    unknown = sorted(set(params.benchmarks) - set(BENCHMARK_NAMES))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARK_NAMES)}")
    sft_path = Path(params.sft_path)
    n_examples = count_records(sft_path, SFTRecord)
    if n_examples == 0:
        raise ValueError(f"{sft_path}: {NO_TRAINING_EXAMPLES}")
    out = Path(params.output_dir)
    overrides = {"max_steps": params.max_steps} if params.max_steps else {}
    if params.base_model:
        overrides["model_name_or_path"] = params.base_model
    recipe_model = load_recipe(params.recipe, **overrides).model_args.model_name_or_path
    if recipe_model is None:
        raise ValueError(f"recipe {params.recipe!r} names no model_name_or_path; pass base_model (--base-model)")
    config = load_recipe(params.recipe, **{**overrides, "model_name_or_path": resolve_model_dir(recipe_model)})
    base_model = config.model_args.model_name_or_path
    dataset_sha256 = _sha256(sft_path)
    run_dir = training_run_dir(out, config, dataset_sha256)
    log.info("training %s on %d examples from %s into %s", base_model, n_examples, sft_path, run_dir)
    result = train_task.with_options(result_storage=out / ".prefect-results")(
        config, sft_path, dataset_sha256, run_dir, resume=True)

    # Base and tuned alike: on the 4-bit base the adapter was trained on, unless that is slow (a CPU) or the user
    # says otherwise; then the adapter is applied to the full-precision base, as QLoRA adapters usually are served.
    on_cuda = result.device == "cuda"
    quantized = result.load_in_4bit and (params.eval_in_4bit if params.eval_in_4bit is not None else on_cuda)
    log.info("trained %s on %s; evaluating on the %s base", "QLoRA (4-bit NF4 base)" if result.load_in_4bit
             else "LoRA (full-precision base)", result.device, "4-bit NF4" if quantized else "full-precision")
    models = [ModelUnderTest(model=base_model, label="base", load_in_4bit=quantized),
              ModelUnderTest(model=base_model, adapter=result.adapter_dir, label="tuned",
                             load_in_4bit=quantized)]
    eval_config = EvalConfig(limit=params.eval_limit, max_new_tokens=params.max_new_tokens, batch_size=params.batch_size,
                             source=params.eval_source)
    report: EvalReport = evaluate_task(models, params.benchmarks, eval_config, out / "eval")
    publish_train_eval_report(result, report)  # loss curve, base vs tuned accuracy (artifacts)
    accuracy: dict[str, dict[str, float]] = {}
    for s in report.summaries:
        accuracy.setdefault(s.label, {})[s.benchmark] = s.accuracy
    return TrainEvalSummary(adapter_dir=str(result.adapter_dir), train_steps=result.steps, final_loss=result.final_loss,
                            load_in_4bit=result.load_in_4bit, eval_in_4bit=quantized, accuracy=accuracy,
                            report_path=str(report.report_path))
