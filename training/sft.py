"""SFT of a causal LM on chat traces: TRL `SFTTrainer` + peft LoRA, on a 4-bit NF4 base (QLoRA) or a full one.

The training loop is TRL's; this module only decides how to load the model (quantized or not, real
or random weights), configures LoRA and `SFTConfig` from a `TrainConfig`, and lays out the output.
QLoRA runs through the same path on CUDA and on a CPU: TRL's `SFTTrainer` sees a 4-bit model and
calls peft's `prepare_model_for_kbit_training` itself, whichever device holds it.

    output_dir/
      adapter/              LoRA adapter + tokenizer (load with peft.PeftModel.from_pretrained)
      checkpoints/          checkpoint-N every save_steps (what `resume=True` continues from)
      train_config.yaml     the exact TrainConfig of the run (load_recipe(path) reads it back)
      metrics.json          loss curve, tokens/s, peak memory, device, steps
      merged/               base model with the adapter merged in (only with merge_adapter)

Loss falls on the final assistant turn only (see `training.data`); `prepare_trainer` is public so
the label mask can be inspected before any step runs.
"""

from __future__ import annotations

import json
import math
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel
from pydantic import BaseModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer

from training.config import Runtime, TrainConfig, dump_config, resolve_runtime
from training.data import load_chat_dataset
from training.quantization import load_causal_lm

LogHook = Callable[[dict[str, Any]], None]


class TrainResult(BaseModel):
    """What a run produced and how fast it went; every path lies under `output_dir`."""

    output_dir: Path
    adapter_dir: Path
    metrics_path: Path
    config_path: Path
    merged_dir: Path | None
    steps: int
    resumed_from_step: int
    final_loss: float
    train_tokens_per_s: float
    peak_memory_mb: float
    runtime_s: float
    device: str
    load_in_4bit: bool


def resolve_base_model(base_model: str) -> Path | str:
    """A local dir (as a Path) or a hub id, passed as is; "embedded" is refused with the way to a path."""
    if base_model == "embedded":
        raise ValueError(
            'base_model "embedded": training takes a model directory or hub id. Run through `tool-distill '
            'train-eval` (it resolves "embedded"), or pass the directory `tool-distill` prints for it.'
        )
    path = Path(base_model).expanduser()
    return path if path.exists() else base_model


def compute_dtype(runtime: Runtime) -> torch.dtype:
    """bf16 where the GPU has it; fp16 for a 4-bit base on an older GPU (QLoRA's fallback); fp32 on a CPU."""
    if runtime.bf16:
        return torch.bfloat16
    return torch.float16 if runtime.load_in_4bit and runtime.device == "cuda" else torch.float32


def load_model_and_tokenizer(config: TrainConfig, runtime: Runtime) -> tuple[Any, Any]:
    """The base model (4-bit NF4 when the runtime says so) and its tokenizer."""
    source = resolve_base_model(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    dtype = compute_dtype(runtime)
    if not config.random_init:
        return load_causal_lm(source, load_in_4bit=runtime.load_in_4bit, dtype=dtype, device=runtime.device), tokenizer

    model_config = AutoConfig.from_pretrained(source)
    for key, value in config.model_config_overrides.items():
        if not hasattr(model_config, key):
            raise ValueError(f"model_config_overrides: {type(model_config).__name__} has no field {key!r}")
        setattr(model_config, key, value)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(model_config, dtype=dtype)
    if not runtime.load_in_4bit:
        return model, tokenizer
    # bitsandbytes quantizes while loading weights, so a random model goes through disk once.
    with tempfile.TemporaryDirectory(prefix="random-init-") as scratch:
        model.save_pretrained(scratch)
        return load_causal_lm(scratch, load_in_4bit=True, dtype=dtype, device=runtime.device), tokenizer


def sft_arguments(config: TrainConfig, runtime: Runtime, checkpoints_dir: Path, show_progress: bool) -> SFTConfig:
    return SFTConfig(
        output_dir=str(checkpoints_dir),
        max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # transformers 5: a value below 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim=runtime.optim,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_seq_length,
        packing=config.packing,
        completion_only_loss=True,
        gradient_checkpointing=runtime.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=runtime.bf16,
        fp16=compute_dtype(runtime) == torch.float16,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        include_num_input_tokens_seen="non_padding",
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=not show_progress,
        use_cpu=runtime.device == "cpu",
    )


def lora_config(config: TrainConfig, num_layers: int) -> LoraConfig:
    layers = None
    if config.lora_last_layers is not None:
        if config.lora_last_layers > num_layers:
            raise ValueError(f"lora_last_layers={config.lora_last_layers}: the model has only {num_layers} layers")
        layers = list(range(num_layers - config.lora_last_layers, num_layers))
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        layers_to_transform=layers,
        bias="none",
        task_type="CAUSAL_LM",
    )


def prepare_trainer(
    config: TrainConfig,
    dataset_path: Path,
    output_dir: Path,
    *,
    show_progress: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[SFTTrainer, Runtime]:
    """A ready SFTTrainer (model loaded, LoRA attached, dataset tokenized and label-masked)."""
    runtime = resolve_runtime(config, cuda_available=torch.cuda.is_available())
    dataset = load_chat_dataset(Path(dataset_path))
    model, tokenizer = load_model_and_tokenizer(config, runtime)
    trainer = SFTTrainer(
        model=model,
        args=sft_arguments(config, runtime, Path(output_dir) / "checkpoints", show_progress),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config, model.config.get_text_config().num_hidden_layers),
        callbacks=callbacks,
    )
    return trainer, runtime


class _ForwardLogs(TrainerCallback):
    """Hands every Trainer log (loss, lr, grad norm, tokens) to `on_log`, e.g. a Prefect logger."""

    def __init__(self, hook: LogHook) -> None:
        self.hook = hook

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if logs:
            self.hook({"step": state.global_step, "max_steps": state.max_steps, **logs})


def train(
    config: TrainConfig,
    dataset_path: Path,
    output_dir: Path,
    *,
    resume: bool = False,
    on_log: LogHook | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Fine-tune `config.base_model` with LoRA on the chat data at `dataset_path`; see the module doc for outputs.

    With `resume=True` the run continues from the newest checkpoint under `output_dir/checkpoints`
    (step count, optimizer, scheduler and data order included); with no checkpoint there it starts
    at step 0. Without `resume`, an output dir that already holds checkpoints is refused, so two runs
    never mix their checkpoints.
    """
    output_dir = Path(output_dir)
    checkpoints_dir = output_dir / "checkpoints"
    last_checkpoint = get_last_checkpoint(str(checkpoints_dir)) if checkpoints_dir.is_dir() else None
    if last_checkpoint and not resume:
        raise FileExistsError(
            f"{output_dir}: holds checkpoints of an earlier run ({Path(last_checkpoint).name}). "
            "Pass resume=True (CLI: --resume) to continue it, or choose an empty output dir."
        )
    if config.random_init and config.merge_adapter:
        raise ValueError("merge_adapter with random_init: there are no base weights to merge into; drop one of them")

    callbacks = [_ForwardLogs(on_log)] if on_log else None
    trainer, runtime = prepare_trainer(
        config, dataset_path, output_dir, show_progress=show_progress, callbacks=callbacks
    )
    config_path = dump_config(config, output_dir / "train_config.yaml")
    if runtime.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=last_checkpoint if resume else None)
    runtime_s = time.perf_counter() - started

    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))  # adapter weights + adapter_config.json + tokenizer
    resumed_state = _checkpoint_state(last_checkpoint) if resume and last_checkpoint else {}
    metrics = _run_metrics(trainer, runtime, output.metrics, resumed_state)  # before merging loads another model
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    merged_dir = merge_adapter(config, runtime, adapter_dir, output_dir / "merged") if config.merge_adapter else None
    return TrainResult(
        output_dir=output_dir,
        adapter_dir=adapter_dir,
        metrics_path=metrics_path,
        config_path=config_path,
        merged_dir=merged_dir,
        steps=trainer.state.global_step,
        resumed_from_step=metrics["resumed_from_step"],
        final_loss=metrics["final_loss"],
        train_tokens_per_s=metrics["train_tokens_per_s"],
        peak_memory_mb=metrics["peak_memory_mb"],
        runtime_s=runtime_s,
        device=runtime.device,
        load_in_4bit=runtime.load_in_4bit,
    )


def _checkpoint_state(checkpoint: str) -> dict[str, Any]:
    """The Trainer state saved with a checkpoint (step, tokens seen, log history)."""
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))


def _run_metrics(trainer: SFTTrainer, runtime: Runtime, train_metrics: dict[str, Any], resumed_state: dict) -> dict:
    """Loss curve of the whole run (a resumed run keeps the earlier steps); speed and memory of this session.

    Tokens are the non-padding input tokens (prompt + completion) the model processed in this
    session, divided by the Trainer's own train_runtime (the loop only, not model loading).
    """
    curve = [
        {key: entry[key] for key in ("step", "loss", "learning_rate", "grad_norm", "num_tokens") if key in entry}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    if runtime.device == "cuda":
        peak_mb, peak_kind = torch.cuda.max_memory_allocated() / 2**20, "cuda_max_memory_allocated"
    else:  # ru_maxrss is in KiB on Linux: the process's peak, model load and data included
        peak_mb, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"
    trainable, total = trainer.model.get_nb_trainable_parameters()
    session_tokens = trainer.state.num_input_tokens_seen - resumed_state.get("num_input_tokens_seen", 0)
    runtime_s = train_metrics["train_runtime"]
    return {
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed_state.get("global_step", 0),
        "final_loss": curve[-1]["loss"] if curve else math.nan,
        "loss_curve": curve,
        "train_tokens_total": trainer.state.num_input_tokens_seen,
        "session_tokens": session_tokens,
        "session_runtime_s": runtime_s,
        "train_tokens_per_s": session_tokens / runtime_s if runtime_s > 0 else 0.0,
        "seconds_per_step": runtime_s / max(1, trainer.state.global_step - resumed_state.get("global_step", 0)),
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": peak_kind,
        "device": runtime.device,
        "load_in_4bit": runtime.load_in_4bit,
        "bf16": runtime.bf16,
        "gradient_checkpointing": runtime.gradient_checkpointing,
        "optim": runtime.optim,
        "trainable_params": trainable,
        "total_params": total,
    }


def merge_adapter(config: TrainConfig, runtime: Runtime, adapter_dir: Path, merged_dir: Path) -> Path:
    """Reload the base model unquantized, fold the adapter in, save a plain model + tokenizer.

    A 4-bit base cannot hold merged weights exactly, so merging always starts from the full-precision
    weights (bf16 where the GPU trained in bf16, fp32 otherwise).
    """
    source = resolve_base_model(config.base_model)
    dtype = torch.bfloat16 if runtime.bf16 else torch.float32
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(merged_dir)
    return merged_dir
