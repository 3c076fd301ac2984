"""A training recipe: TRL's `SFTConfig` and `ModelConfig`, plus the few fields of ours, read by TRL's own parser.

A recipe (`training/recipes/<name>.yaml`, a YAML path, or a dict) is one flat mapping that
`TrlParser((TrainExtras, SFTConfig, ModelConfig))` splits into three dataclasses, as TRL's scripts
and open-r1's `sft.py` do: every TRL/transformers field keeps TRL's name, default and validation
(`max_length`, `warmup_steps`, `lora_r`, `load_in_4bit`, `model_name_or_path` ...), and an unknown
key is refused, naming it. Only what neither class has lives in `TrainExtras`.

Fields decided per machine. A recipe that leaves these unset gets them from `machine_defaults`
on the machine that loads it, so one recipe trains 4-bit QLoRA with bf16, gradient checkpointing
and paged AdamW on a GPU and fp32 LoRA with AdamW on a CPU; a value the recipe (or an override)
sets always wins, e.g. `load_in_4bit: true` trains QLoRA on a CPU too, through bitsandbytes' CPU
backend. They are `use_cpu`, `load_in_4bit`, `bf16`, `fp16`, `dtype`, `activation_checkpointing`
(transformers 5's name for gradient checkpointing; a recipe may set either name), `optim`, and
`use_peft` (always true: training/ trains and saves an adapter).

`model_name_or_path` is a local model directory or a hub id. Recipes may say "embedded" (the
offline SmolLM2 copy), but that name is resolved by the caller (the train-eval flow,
`tool-distill`), never here: training/ knows nothing of where the pipeline keeps its models.

`TrainConfig.recipe` keeps the mapping the three dataclasses were parsed from, with this
machine's choices filled in; `train()` writes it next to the adapter, and `load_recipe` on that
file gives the same config again.
"""

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr
from trl import ModelConfig, SFTConfig, TrlParser

from training.recipe_files import (MACHINE_FIELDS, check_recipe_keys, max_steps_refused, read_recipe_yaml, recipe_path,
                                   value_kind)


@dataclass
class TrainExtras:
    """The fields of a recipe that neither TRL's SFTConfig nor its ModelConfig has."""

    random_init: bool = field(
        default=False,
        metadata={"help": "Build the model from model_name_or_path's config with random weights (GPU throughput "
                          "runs where no weights can travel); only config and tokenizer files are read."},
    )
    model_config_overrides: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": 'Config fields replaced before a random_init build, e.g. {"num_hidden_layers": 8} '
                          "(JSON on the command line)."},
    )
    lora_last_layers: int | None = field(
        default=None,
        metadata={"help": "Adapt only the last N transformer layers (None: all). On CPU this is the cheap knob: "
                          "backward stops below the lowest adapted layer."},
    )
    merge_adapter: bool = field(
        default=False, metadata={"help": "Also write the base model with the adapter merged in (output_dir/merged)."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.model_config_overrides, str):  # the command line passes JSON, as TRL's dict fields do
            self.model_config_overrides = json.loads(self.model_config_overrides)
        if self.lora_last_layers is not None and self.lora_last_layers <= 0:
            raise ValueError(f"lora_last_layers={self.lora_last_layers}: use a positive number of layers, or leave it unset")


RECIPE_CLASSES = (TrainExtras, SFTConfig, ModelConfig)


def machine_defaults(recipe: Mapping[str, Any], cuda: bool, cuda_bf16: bool) -> dict[str, Any]:
    """The values of the MACHINE_FIELDS a recipe leaves unset, for a machine with or without CUDA.

    - device: the GPU when there is one (`use_cpu: false`), else the CPU;
    - base weights: 4-bit NF4 (QLoRA) on the GPU, full precision on a CPU. 4-bit is honoured on a CPU
      when asked: bitsandbytes' CPU backend holds NF4 weights and dequantizes them per matmul, so the
      same QLoRA code path (and its quantization error) runs on a laptop;
    - precision: bf16 on a GPU that has it; fp16 for a 4-bit base on an older GPU (QLoRA's fallback);
      fp32 on a CPU (bf16 autocast is slow there); `dtype` (load and 4-bit compute dtype) follows;
    - gradient checkpointing on the GPU (memory); off on a CPU, where it only costs time;
    - paged AdamW with a 4-bit base on the GPU (QLoRA paper: optimizer state paged under memory
      spikes); plain AdamW otherwise, since on a CPU there is nothing to page.
    """
    on_gpu = not recipe.get("use_cpu", not cuda)
    load_in_4bit = recipe.get("load_in_4bit", on_gpu)
    bf16 = recipe.get("bf16", on_gpu and cuda_bf16)
    fp16 = recipe.get("fp16", on_gpu and load_in_4bit and not bf16)
    chosen = {
        "use_cpu": not on_gpu,
        "load_in_4bit": load_in_4bit,
        "bf16": bf16,
        "fp16": fp16,
        "dtype": "bfloat16" if bf16 else "float16" if fp16 else "float32",
        # transformers 5 renamed gradient_checkpointing to activation_checkpointing and reads the old
        # name (TRL's default: true, with a FutureWarning) only when the new one is unset.
        "activation_checkpointing": on_gpu,
        "optim": "paged_adamw_32bit" if load_in_4bit and on_gpu else "adamw_torch",
        "use_peft": True,
    }
    if "gradient_checkpointing" in recipe:
        del chosen["activation_checkpointing"]
    return {key: value for key, value in chosen.items() if key not in recipe}


class TrainConfig(BaseModel):
    """A parsed recipe: `extras` (ours), `training_args` (TRL's SFTConfig), `model_args` (TRL's ModelConfig).

    Build it with `load_recipe`. It compares, hashes (Prefect's task cache, the train-eval run dir)
    and serializes as `recipe`, the exact mapping it was parsed from.
    """

    model_config = ConfigDict(frozen=True)

    recipe: dict[str, Any]
    _parsed: tuple[TrainExtras, SFTConfig, ModelConfig] = PrivateAttr()

    def __init__(self, recipe: dict[str, Any]) -> None:
        super().__init__(recipe=recipe)
        # Parsed outside pydantic's validation so TRL's own errors reach the caller as they are.
        self._parsed = _parse(self.recipe)

    @property
    def extras(self) -> TrainExtras:
        return self._parsed[0]

    @property
    def training_args(self) -> SFTConfig:
        return self._parsed[1]

    @property
    def model_args(self) -> ModelConfig:
        return self._parsed[2]

    @property
    def device(self) -> str:
        return "cpu" if self.training_args.use_cpu else "cuda"


def known_fields() -> dict[str, str]:
    """Every key a recipe may hold, with the kind of value it takes (`value_kind`)."""
    fields = {}
    for cls in RECIPE_CLASSES:
        hints = typing.get_type_hints(cls)
        fields |= {f.name: value_kind(hints[f.name]) for f in dataclasses.fields(cls) if f.init}
    return fields


def _parse(recipe: dict[str, Any]) -> tuple[TrainExtras, SFTConfig, ModelConfig]:
    """TRL's parser over the whole mapping, then the checks that span the classes."""
    check_recipe_keys(recipe, known_fields())
    extras, training_args, model_args = TrlParser(RECIPE_CLASSES).parse_dict(recipe)
    if not model_args.use_peft:
        raise ValueError("use_peft: false: training/ trains and saves a LoRA adapter; leave use_peft unset or true")
    if advice := max_steps_refused(training_args.max_steps):
        raise ValueError(f"max_steps={training_args.max_steps}: {advice}")
    if extras.lora_last_layers is not None and isinstance(model_args.lora_target_modules, str | None):
        raise ValueError(
            "lora_last_layers needs lora_target_modules as a list of module names, two or more (peft cannot restrict "
            f"{model_args.lora_target_modules!r} to layers), e.g. [q_proj, k_proj, v_proj, o_proj, up_proj, down_proj]"
        )
    if extras.model_config_overrides and not extras.random_init:
        raise ValueError("model_config_overrides only apply with random_init: true (pretrained weights fix the shapes)")
    if extras.random_init and extras.merge_adapter:
        raise ValueError("merge_adapter with random_init: there are no base weights to merge into; drop one of them")
    if model_args.dtype not in ("bfloat16", "float16", "float32"):
        raise ValueError(f"dtype: {model_args.dtype}: use bfloat16, float16 or float32, or leave it unset "
                         "(then it follows bf16/fp16)")
    if model_args.load_in_8bit:
        raise ValueError("load_in_8bit: eval loads a full or 4-bit NF4 base only; use load_in_4bit")
    if model_args.load_in_4bit and (model_args.bnb_4bit_quant_type != "nf4" or not model_args.use_bnb_nested_quant
                                    or model_args.bnb_4bit_quant_storage is not None):
        # eval loads the 4-bit base through training.quantization.nf4_config; the adapter must be
        # evaluated on the very base it was trained on.
        raise ValueError("load_in_4bit: eval loads NF4 with double quantization (training/quantization.py), so "
                         "train on the same base: bnb_4bit_quant_type: nf4, use_bnb_nested_quant: true, "
                         "no bnb_4bit_quant_storage")
    return extras, training_args, model_args


def load_recipe(name_or_path: str | Path, **overrides: Any) -> TrainConfig:
    """A recipe by name (`training/recipes/<name>.yaml`) or YAML path, with keyword overrides on top.

    Overrides go through the same parser as the file, so `load_recipe("embedded", max_steps=3)`
    and a typo such as `load_recipe("embedded", max_step=3)` fail or pass exactly like YAML would.
    Fields of MACHINE_FIELDS left unset by both are then decided for this machine.
    """
    import torch

    path = recipe_path(name_or_path)
    raw = read_recipe_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of recipe fields at the top level, got {type(raw).__name__}")
    recipe = {**raw, **overrides}
    cuda = torch.cuda.is_available()
    recipe |= machine_defaults(recipe, cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported())
    try:
        return TrainConfig(recipe)
    except (ValueError, TypeError) as error:
        where = f"{path}" + (f" (with overrides {overrides})" if overrides else "")
        raise ValueError(f"{where}: {error}") from error


def dump_config(config: TrainConfig, path: Path) -> Path:
    """Write the exact recipe of a run as YAML, loadable again with `load_recipe(path)`."""
    versions = ", ".join(f"{package} {version(package)}" for package in ("trl", "transformers", "peft"))
    header = (f"# The recipe of this run, with the choices made for its machine ({config.device}).\n"
              f"# Fields not listed took the defaults of {versions}.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(config.recipe, sort_keys=False), encoding="utf-8")
    return path
