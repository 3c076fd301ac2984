"""Where recipes live, which names exist and which keys a recipe may hold: light enough for the CLI's
checks before anything starts (training.config imports TRL and torch, which take seconds).

The keys a recipe may hold are the fields of TrainExtras, TRL's SFTConfig and ModelConfig. Listing
them needs those imports, so the list for the pinned TRL is kept in `recipe_fields.txt` (a key and the
kind of value it takes per line); tests/test_training.py checks it against the classes themselves, so it
cannot drift unnoticed. The kind is checked here: TRL's parser sets a dataclass field to whatever the YAML
holds, and `lora_r: eight` would fail only once training starts.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


def max_steps_refused(max_steps: int) -> str | None:
    """What to pass instead of a `max_steps` TRL cannot train by (0, or below -1), or None; checked by the recipe
    parser and, before anything starts, by the CLI's and the UI's parameter model."""
    if max_steps == 0 or max_steps < -1:
        return "use a positive number of steps, or -1 to train by num_train_epochs"
    return None
RECORDED_FIELDS = Path(__file__).resolve().parent / "recipe_fields.txt"

# TrainConfig fields of the old pydantic config whose TRL names differ: a recipe written for it gets the new name.
RENAMED = {
    "base_model": "model_name_or_path",
    "max_seq_length": "max_length (TRL 1.x)",
    "warmup_ratio": "warmup_steps (transformers 5: a value below 1 is a ratio of the total steps)",
    "quantization": "load_in_4bit (true: 4-bit NF4 on any device; false: none; unset: 4-bit on CUDA only)",
}

# SFTConfig fields `train()` sets itself, so a recipe cannot make them say something the run does not do.
SET_BY_TRAIN = {
    "output_dir": "the output dir is train()'s argument (CLI: --output_dir); checkpoints go to <output_dir>/checkpoints",
    "resume_from_checkpoint": "pass resume=True to train() (CLI: --resume)",
    "disable_tqdm": "pass show_progress to train()",
    "include_num_input_tokens_seen": "train() counts non-padding tokens for metrics.json's tokens/s",
}

# Fields decided per machine when a recipe leaves them unset (training/config.py machine_defaults).
MACHINE_FIELDS = ("use_cpu", "load_in_4bit", "bf16", "fp16", "dtype", "activation_checkpointing", "gradient_checkpointing",
                  "optim", "use_peft")


def available_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """`training/recipes/<name>.yaml` for a name, the path itself for a .yaml/.yml path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"recipe {str(name_or_path)!r}: no file {path}. Use one of {available_recipes()} or a path to a YAML file."
        )
    return path


def read_recipe_yaml(path: Path) -> Any:
    """The YAML of a recipe file; a key written twice is an error (YAML keeps the last one without a word)."""
    import yaml

    class _NoDuplicateKeys(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
            if repeated := sorted({str(key) for key in keys if keys.count(key) > 1}):
                raise yaml.constructor.ConstructorError(None, None, f"{', '.join(repeated)} set twice; keep one of them",
                                                        node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(path.read_text(encoding="utf-8"), Loader=_NoDuplicateKeys)  # noqa: S506 - a SafeLoader


def recorded_fields() -> dict[str, str]:
    """The keys a recipe may hold and the kind of value each takes, as recorded for the pinned TRL (see the module
    docstring)."""
    lines = RECORDED_FIELDS.read_text(encoding="utf-8").splitlines()
    return dict(line.split() for line in lines if line.strip())


_SIMPLE_KINDS = {int: "int", float: "float", bool: "bool", str: "str"}


def value_kind(annotation: Any) -> str:
    """int, float, bool or str for a field of that type, with a `?` if it may be null; else any."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = "?" if len(inner) < len(typing.get_args(annotation)) else ""
        return value_kind(inner[0]).rstrip("?") + optional if len(inner) == 1 else "any"
    return _SIMPLE_KINDS.get(annotation, "any")


# Fields whose value must be above zero (a batch of 0, a LoRA rank of -4 fail only once training starts).
POSITIVE_FIELDS = frozenset({"per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                             "lora_r", "lora_alpha", "learning_rate", "num_train_epochs", "max_length"})


def _value_problem(key: str, value: Any, kind: str) -> str | None:
    """What is wrong with a recipe value of the field's `kind`, or None."""
    if value is None:
        return None if kind.endswith("?") or kind == "any" else f"null is not {_KIND_WORDS[kind]}"
    kind = kind.rstrip("?")
    if not _has_kind(value, kind):
        return f"{value!r} is not {_KIND_WORDS[kind]}"
    if kind not in ("int", "float"):
        return None
    number = float(value) if isinstance(value, str) else value
    if not math.isfinite(number):
        return f"{value!r} is not a finite number"
    if key in POSITIVE_FIELDS and number <= 0:
        return f"{value!r} must be above 0"
    if key == "lora_dropout" and not 0 <= number < 1:
        return f"{value!r} is not a dropout rate (0 <= p < 1)"
    if key == "max_steps" and (advice := max_steps_refused(int(number))):
        return advice
    return None


def _has_kind(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":  # YAML reads `2e-4` (no dot) as a string; TRL converts it
        return isinstance(value, int | float) and not isinstance(value, bool) or _is_float_text(value)
    return not isinstance(value, Mapping | list)  # a str field: a scalar YAML may have typed (`run_name: 42`)


def _is_float_text(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


_KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a single value"}


def check_recipe_keys(recipe: Mapping[str, Any], known: Mapping[str, str]) -> None:
    """Refuse keys no class has (with the likely intended one), keys train() sets, values of the wrong kind
    (`lora_r: eight`), and "auto" values."""
    for key, value in recipe.items():
        if key in RENAMED:
            raise ValueError(f"unknown key {key!r}: it is now {RENAMED[key]}")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(f"unknown key {key!r}: not a field of TrainExtras, TRL's SFTConfig or ModelConfig{hint}")
        if key in SET_BY_TRAIN:
            raise ValueError(f"{key!r} cannot be set in a recipe: {SET_BY_TRAIN[key]}")
        if key in MACHINE_FIELDS and value == "auto":
            raise ValueError(f"{key}: auto: leave {key} unset instead; unset, it is decided for the machine that "
                             "trains (training/config.py machine_defaults)")
        if (problem := _value_problem(key, value, known[key])) is not None:
            raise ValueError(f"{key}: {problem}; fix the value, or leave {key} out for its default")
