"""SFT of a causal LM on chat traces: TRL `SFTTrainer` + peft LoRA, on a 4-bit NF4 base (QLoRA) or a full one.

The training loop is TRL's, and so are its options: a `TrainConfig` (training/config.py) holds TRL's
own `SFTConfig` and `ModelConfig`. This module only loads the model (quantized or not, real or
random weights), builds the LoRA config with TRL's `get_peft_config`, and lays out the output.
QLoRA runs through the same path on CUDA and on a CPU: TRL's `SFTTrainer` sees a 4-bit model and
calls peft's `prepare_model_for_kbit_training` itself, whichever device holds it.

    output_dir/
      adapter/              LoRA adapter + tokenizer (load with peft.PeftModel.from_pretrained)
      checkpoints/          checkpoint-N every save_steps (what `resume=True` continues from)
      train_config.yaml     the exact recipe of the run (load_recipe(path) reads it back)
      metrics.json          loss curve, tokens/s, peak memory, device, steps
      merged/               base model with the adapter merged in (only with merge_adapter)

Loss falls on the final assistant turn only (see `training.data`); `prepare_trainer` is public so
the label mask can be inspected before any step runs.
"""

from __future__ import annotations

import dataclasses
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
from trl import SFTConfig, SFTTrainer, get_peft_config

from training.config import TrainConfig, dump_config
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


def resolve_base_model(model_name_or_path: str | None) -> Path | str:
    """A local dir (as a Path) or a hub id, passed as is; "embedded" is refused with the way to a path."""
    if model_name_or_path is None:
        raise ValueError("model_name_or_path is not set: name a model directory or hub id in the recipe, "
                         "or pass it (CLI: --model_name_or_path DIR)")
    if model_name_or_path == "embedded":
        raise ValueError(
            'model_name_or_path "embedded": training takes a model directory or hub id. Run through `tool-distill '
            'train-eval` (it resolves "embedded"), or pass the directory `tool-distill` prints for it.'
        )
    path = Path(model_name_or_path).expanduser()
    return path if path.exists() else model_name_or_path


def load_model_and_tokenizer(config: TrainConfig) -> tuple[Any, Any]:
    """The base model (4-bit NF4 when the recipe says load_in_4bit) and its tokenizer."""
    model_args, extras = config.model_args, config.extras
    source = resolve_base_model(model_args.model_name_or_path)
    hub_kwargs = {"revision": model_args.model_revision, "trust_remote_code": config.training_args.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
    dtype = getattr(torch, model_args.dtype)
    if not extras.random_init:
        return load_causal_lm(source, load_in_4bit=model_args.load_in_4bit, dtype=dtype, device=config.device,
                              attn_implementation=model_args.attn_implementation, **hub_kwargs), tokenizer

    model_config = AutoConfig.from_pretrained(source, **hub_kwargs)
    for key, value in (extras.model_config_overrides or {}).items():
        if not hasattr(model_config, key):
            raise ValueError(f"model_config_overrides: {type(model_config).__name__} has no field {key!r}")
        setattr(model_config, key, value)
    torch.manual_seed(config.training_args.seed)
    model = AutoModelForCausalLM.from_config(model_config, dtype=dtype, attn_implementation=model_args.attn_implementation)
    if not model_args.load_in_4bit:
        return model, tokenizer
    # bitsandbytes quantizes while loading weights, so a random model goes through disk once.
    with tempfile.TemporaryDirectory(prefix="random-init-") as scratch:
        model.save_pretrained(scratch)
        return load_causal_lm(scratch, load_in_4bit=True, dtype=dtype, device=config.device,
                              attn_implementation=model_args.attn_implementation), tokenizer


def sft_arguments(config: TrainConfig, checkpoints_dir: Path, show_progress: bool) -> SFTConfig:
    """The recipe's SFTConfig with the fields train() owns (training/recipe_files.py SET_BY_TRAIN) filled in."""
    return dataclasses.replace(
        config.training_args,
        output_dir=str(checkpoints_dir),
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=not show_progress,
    )


def lora_config(config: TrainConfig, num_layers: int) -> LoraConfig:
    """TRL's LoraConfig for the recipe's ModelConfig, limited to the last `lora_last_layers` layers if set."""
    peft_config = get_peft_config(config.model_args)
    last = config.extras.lora_last_layers
    if last is None:
        return peft_config
    if last > num_layers:
        raise ValueError(f"lora_last_layers={last}: the model has only {num_layers} layers")
    return dataclasses.replace(peft_config, layers_to_transform=list(range(num_layers - last, num_layers)))


def prepare_trainer(
    config: TrainConfig,
    dataset_path: Path,
    output_dir: Path,
    *,
    show_progress: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> SFTTrainer:
    """A ready SFTTrainer (model loaded, LoRA attached, dataset tokenized and label-masked)."""
    dataset = load_chat_dataset(Path(dataset_path))
    model, tokenizer = load_model_and_tokenizer(config)
    return SFTTrainer(
        model=model,
        args=sft_arguments(config, Path(output_dir) / "checkpoints", show_progress),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config, model.config.get_text_config().num_hidden_layers),
        callbacks=callbacks,
    )


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
    """Fine-tune `config.model_args.model_name_or_path` with LoRA on the chat data at `dataset_path`; see the module doc for outputs.

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

    callbacks = [_ForwardLogs(on_log)] if on_log else None
    trainer = prepare_trainer(config, dataset_path, output_dir, show_progress=show_progress, callbacks=callbacks)
    config_path = dump_config(config, output_dir / "train_config.yaml")
    if config.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=last_checkpoint if resume else None)
    runtime_s = time.perf_counter() - started

    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))  # adapter weights + adapter_config.json + tokenizer
    resumed_state = _checkpoint_state(last_checkpoint) if resume and last_checkpoint else {}
    metrics = _run_metrics(trainer, config, output.metrics, resumed_state)  # before merging loads another model
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    merged_dir = merge_adapter(config, adapter_dir, output_dir / "merged") if config.extras.merge_adapter else None
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
        device=config.device,
        load_in_4bit=config.model_args.load_in_4bit,
    )


def _checkpoint_state(checkpoint: str) -> dict[str, Any]:
    """The Trainer state saved with a checkpoint (step, tokens seen, log history)."""
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))


def _run_metrics(trainer: SFTTrainer, config: TrainConfig, train_metrics: dict[str, Any], resumed_state: dict) -> dict:
    """Loss curve of the whole run (a resumed run keeps the earlier steps); speed and memory of this session.

    Tokens are the non-padding input tokens (prompt + completion) the model processed in this
    session, divided by the Trainer's own train_runtime (the loop only, not model loading).
    """
    curve = [
        {key: entry[key] for key in ("step", "loss", "learning_rate", "grad_norm", "num_tokens") if key in entry}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    if config.device == "cuda":
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
        "device": config.device,
        "load_in_4bit": config.model_args.load_in_4bit,
        "bf16": trainer.args.bf16,
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "optim": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
        "trainable_params": trainable,
        "total_params": total,
    }


def merge_adapter(config: TrainConfig, adapter_dir: Path, merged_dir: Path) -> Path:
    """Reload the base model unquantized, fold the adapter in, save a plain model + tokenizer.

    A 4-bit base cannot hold merged weights exactly, so merging always starts from the full-precision
    weights (bf16 where the GPU trained in bf16, fp32 otherwise).
    """
    source = resolve_base_model(config.model_args.model_name_or_path)
    dtype = torch.bfloat16 if config.training_args.bf16 else torch.float32
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(merged_dir)
    return merged_dir
