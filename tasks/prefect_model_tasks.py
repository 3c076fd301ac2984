"""Prefect task wrappers for training and evaluation.

Kept apart from the distill stages (tasks/runtime/stage_map.py) so the distill flow never imports torch, transformers and
TRL (tens of seconds per flow-run process): only the train-eval flow pays for them.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.logging import get_run_logger

from eval.generation import ModelUnderTest
from eval.harness import EvalConfig, EvalReport, evaluate_models
from tasks.runtime.progress import StageProgress
from training.config import TrainConfig
from training.model_source import EMBEDDED_MODEL
from training.sft import TrainResult, train


def resolve_model_dir(base_model: str) -> str:
    """A recipe's base model as a local directory: "embedded" is the offline SmolLM2 copy, a hub id is
    downloaded once into the Hugging Face cache, and a directory stays as it is.

    The one place outside tasks/llm that knows where the pipeline keeps its model: training/ and
    eval/ are handed the path (eval needs a directory to tell a local model from an API model).
    """
    if base_model == EMBEDDED_MODEL:
        from tasks.llm.embedded_model import embedded_model_dir

        return str(embedded_model_dir())
    if Path(base_model).expanduser().is_dir():
        return str(Path(base_model).expanduser())
    from huggingface_hub import snapshot_download

    return snapshot_download(base_model, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])


@task(name="train", task_run_name="train-{output_dir.name}", cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def train_task(config: TrainConfig, dataset_path: Path, dataset_sha256: str, output_dir: Path, resume: bool) -> TrainResult:
    """Fine-tune; cached on the config and the dataset's content hash (the path alone could hide new data)."""
    logger = get_run_logger()
    progress: StageProgress | None = None

    def log_progress(entry: dict) -> None:
        nonlocal progress
        if "loss" not in entry:
            return
        logger.info("step %s: loss %.4f", entry.get("step", "?"), entry["loss"])
        step, total = entry.get("step"), entry.get("max_steps")
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            if progress is None:  # the rate counts from here; a resumed run starts at its checkpoint's step
                progress = StageProgress("train", total, step, unit="steps")
            progress.advance(step - progress.done)

    result = train(config, dataset_path, output_dir, resume=resume, on_log=log_progress)
    if progress is not None:
        progress.finish()
    logger.info("trained %d steps, final loss %.4f, adapter at %s", result.steps, result.final_loss, result.adapter_dir)
    return result


@task(name="evaluate", task_run_name="evaluate-{output_dir.name}")
def evaluate_task(models: list[ModelUnderTest], benchmarks: list[str], config: EvalConfig, output_dir: Path) -> EvalReport:
    """Not cached: evaluation is the measurement, and it publishes the report artifacts each run."""
    shown: dict[str, StageProgress] = {}

    def show_progress(name: str, total: int, count: int) -> None:
        progress = shown.setdefault(name, StageProgress(f"eval {name}", total, unit="problems"))
        progress.advance(count)
        if progress.done >= total:
            progress.finish()

    report = evaluate_models(models, benchmarks, config, output_dir, on_progress=show_progress)
    for s in report.summaries:
        get_run_logger().info("%s %s: %.1f%% (n=%d)", s.label, s.benchmark, 100 * s.accuracy, s.n_problems)
    return report
