"""The typed training config, and the YAML recipes under `training/recipes/` that fill it.

One `TrainConfig` describes a whole SFT run (model, LoRA, quantization, schedule, checkpoints); the
CLI and the Prefect flow both take it, and `train()` writes it next to the adapter so a run can be
repeated exactly. Fields set to "auto" are resolved on the machine that trains (CUDA or not) by
`resolve_runtime`, so one recipe runs as 4-bit QLoRA on a GPU and as plain fp32 LoRA on a CPU;
`quantization: 4bit` asks for QLoRA everywhere, on a CPU through bitsandbytes' CPU backend.

`base_model` is a local model directory or a hub id. Recipes may say "embedded" (the offline
SmolLM2 copy), but that name is resolved by the caller (the train-eval flow, `tool-distill`), never
here: training/ knows nothing of where the pipeline keeps its models.

Defaults follow common QLoRA practice (Dettmers et al. 2023, and the TRL/peft QLoRA examples):
LoRA r=16, alpha=32, dropout 0.05 on all linear projections, 4-bit NF4 with double quantization and
bf16 compute, lr 2e-4 with a cosine schedule and 3 % warmup, max grad norm 0.3, paged AdamW.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


class TrainConfig(BaseModel):
    """Everything that decides what a training run does; unknown keys are rejected, not ignored."""

    model_config = ConfigDict(extra="forbid")

    # Model
    base_model: str = Field(
        "embedded",
        description='A local HF model dir or a hub id; "embedded" (the offline SmolLM2-135M-Instruct copy) '
        "only through the train-eval flow or tool-distill, which resolve it to its directory.",
    )
    random_init: bool = Field(
        False,
        description="Build the model from base_model's config with random weights (GPU throughput runs "
        "where no weights can travel); only config and tokenizer files are read.",
    )
    model_config_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Config fields replaced before a random_init build, e.g. num_hidden_layers.",
    )
    quantization: Literal["auto", "4bit", "none"] = Field(
        "auto",
        description='"auto" = 4-bit NF4 (QLoRA) on CUDA, no quantization (fp32 LoRA) on CPU; '
        '"4bit" = NF4 + double quantization on either (bitsandbytes has a CPU backend).',
    )

    # LoRA
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: str | list[str] = Field(
        "all-linear", description='"all-linear" or module names such as [q_proj, v_proj].'
    )
    lora_last_layers: int | None = Field(
        None,
        gt=0,
        description="Adapt only the last N transformer layers (None: all). On CPU this is the cheap knob: "
        "backward stops below the lowest adapted layer.",
    )

    # Schedule
    max_steps: int = Field(-1, description="Optimizer steps; -1 trains for num_train_epochs instead.")
    num_train_epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(0.3, gt=0)
    optim: str = Field(
        "auto",
        description='"auto" = paged_adamw_32bit with 4-bit on CUDA (QLoRA paper), adamw_torch otherwise '
        "(paging moves optimizer state between GPU and host memory; on a CPU there is nothing to page).",
    )

    # Batches and sequences
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(4, gt=0)
    max_seq_length: int = Field(1024, gt=0, description="Longer examples are truncated (prompt kept first).")
    packing: bool = False
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto", description='"auto" = on with CUDA (memory), off on CPU (it only costs time there).'
    )
    bf16: bool | Literal["auto"] = Field(
        "auto", description='"auto" = bf16 on a CUDA GPU that supports it; fp32 on CPU (bf16 autocast is slow there).'
    )

    # Checkpoints, logging, output
    save_steps: int = Field(50, gt=0, description="Checkpoint every N optimizer steps (for --resume).")
    save_total_limit: int | None = Field(2, description="Checkpoints kept on disk; None keeps all.")
    logging_steps: int = Field(1, gt=0)
    seed: int = 42
    merge_adapter: bool = Field(False, description="Also write the base model with the adapter merged in.")

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainConfig:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps={self.max_steps}: use a positive number of steps, or -1 to train by epochs")
        if self.lora_last_layers is not None and isinstance(self.lora_target_modules, str):
            raise ValueError(
                "lora_last_layers needs lora_target_modules as a list of module names (peft cannot restrict "
                f"{self.lora_target_modules!r} to layers), e.g. [q_proj, k_proj, v_proj, o_proj, up_proj, down_proj]"
            )
        if self.model_config_overrides and not self.random_init:
            raise ValueError(
                "model_config_overrides only apply with random_init: true (pretrained weights fix the shapes)"
            )
        return self


class Runtime(BaseModel):
    """The "auto" fields of a TrainConfig, decided for the machine that trains."""

    device: Literal["cuda", "cpu"]
    load_in_4bit: bool
    bf16: bool
    gradient_checkpointing: bool
    optim: str


def resolve_runtime(config: TrainConfig, cuda_available: bool) -> Runtime:
    """Turn "auto" into concrete choices for this machine.

    4-bit is honoured without CUDA too: bitsandbytes' CPU backend holds NF4 weights and dequantizes
    them per matmul, so the same QLoRA code path (and its quantization error) runs on a laptop.
    """
    load_in_4bit = config.quantization == "4bit" or (config.quantization == "auto" and cuda_available)
    if config.bf16 == "auto":
        bf16 = cuda_available and _cuda_supports_bf16()
    else:
        bf16 = config.bf16
    if config.gradient_checkpointing == "auto":
        checkpointing = cuda_available
    else:
        checkpointing = config.gradient_checkpointing
    if config.optim == "auto":
        optim = "paged_adamw_32bit" if load_in_4bit and cuda_available else "adamw_torch"
    else:
        optim = config.optim
    return Runtime(
        device="cuda" if cuda_available else "cpu",
        load_in_4bit=load_in_4bit,
        bf16=bf16,
        gradient_checkpointing=checkpointing,
        optim=optim,
    )


def _cuda_supports_bf16() -> bool:
    import torch

    return torch.cuda.is_bf16_supported()


def available_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path, **overrides: Any) -> TrainConfig:
    """A recipe by name (`training/recipes/<name>.yaml`) or YAML path, with keyword overrides on top.

    Overrides go through the same validation as the file, so `load_recipe("embedded", max_steps=3)`
    and a typo such as `load_recipe("embedded", max_step=3)` fail or pass exactly like YAML would.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"recipe {str(name_or_path)!r}: no file {path}. Use one of {available_recipes()} or a path to a YAML file."
        )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig fields at the top level, got {type(raw).__name__}")
    try:
        return TrainConfig.model_validate({**raw, **overrides})
    except ValidationError as error:
        raise ValueError(f"{path} (with overrides {overrides}): invalid training config\n{error}") from error


def dump_config(config: TrainConfig, path: Path) -> Path:
    """Write the exact config as YAML, loadable again with `load_recipe(path)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path
