"""`python -m training`: SFT one recipe on one chat dataset, with a progress bar.

    python -m training --recipe embedded --base-model models/smollm2-135m --data out/distill/sft.parquet \
        --output-dir out/train
    python -m training --recipe embedded --base-model models/smollm2-135m --data sft.parquet \
        --output-dir out/train --resume --max-steps 40
    python -m training --recipe qwen2.5-1.5b-instruct --data sft.parquet --output-dir out/qwen --set lora_r=32

The base model is a directory or a hub id. A recipe whose base_model is "embedded" (the pipeline's
offline SmolLM2 copy) needs --base-model here; `tool-distill train-eval` resolves "embedded" itself.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from training.config import available_recipes, load_recipe  # noqa: E402


def _parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with a YAML value, so `lora_r=32`, `packing=true`, `lora_target_modules=[q_proj]` all work."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected key=value, e.g. --set lora_r=32")
    return key.strip(), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="embedded", help=f"one of {available_recipes()} or a YAML path")
    parser.add_argument("--data", required=True, type=Path, help="sft.parquet or any HF-style chat dataset")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's max_steps")
    parser.add_argument("--base-model", default=None, help="override the recipe's base_model (a model dir or hub id)")
    parser.add_argument("--merge", action="store_true", help="also write output-dir/merged (adapter folded in)")
    parser.add_argument("--set", dest="overrides", type=_parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="override any TrainConfig field (repeatable)")
    args = parser.parse_args(argv)

    overrides = dict(args.overrides)
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.base_model is not None:
        overrides["base_model"] = args.base_model
    if args.merge:
        overrides["merge_adapter"] = True
    config = load_recipe(args.recipe, **overrides)
    if config.base_model == "embedded":
        parser.error('base_model "embedded" is resolved by the pipeline, not by training: pass --base-model DIR '
                     "(the directory `tool-distill` keeps it in), or run `tool-distill train-eval`")

    from training.sft import train  # heavy imports (torch, transformers, trl) only once the arguments are valid

    result = train(config, args.data, args.output_dir, resume=args.resume)
    print(
        f"\n== train ==\nsteps          {result.steps} (resumed from {result.resumed_from_step})\n"
        f"final loss     {result.final_loss:.4f}\n"
        f"tokens/s       {result.train_tokens_per_s:.1f} on {result.device}"
        f"{' (4-bit QLoRA)' if result.load_in_4bit else ''}\n"
        f"peak memory    {result.peak_memory_mb:.0f} MB\n"
        f"adapter        {result.adapter_dir}\nmetrics        {result.metrics_path}\n"
        f"config         {result.config_path}"
        + (f"\nmerged model   {result.merged_dir}" if result.merged_dir else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
