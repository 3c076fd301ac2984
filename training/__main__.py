"""`python -m training`: SFT one recipe on one chat dataset, with a progress bar.

    python -m training --config embedded --model_name_or_path models/smollm2-135m \\
        --data out/distill/sft.parquet --output_dir out/train
    python -m training --config embedded --model_name_or_path models/smollm2-135m --data sft.parquet \\
        --output_dir out/train --resume --max_steps 40
    python -m training --config qwen2.5-1.5b-instruct --data sft.parquet --output_dir out/qwen --lora_r 32

The flags are TRL's: `TrlParser` over our `TrainExtras`, TRL's `SFTConfig` and `ModelConfig`, so
every field of a recipe is also a flag (`--lora_r 32`, `--max-steps 40`, `--merge_adapter`), and
the YAML named by `--config` (a recipe name or a path; default: embedded) sits under them, as in
TRL's own scripts. The model is a directory or a hub id. A recipe whose model_name_or_path is
"embedded" (the pipeline's offline SmolLM2 copy) needs --model_name_or_path here; `tool-distill
train-eval` resolves "embedded" itself.
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from training.offline_env import set_offline_defaults

set_offline_defaults()

from trl import TrlParser  # noqa: E402

from training.config import RECIPE_CLASSES, load_recipe  # noqa: E402
from training.recipe_files import available_recipes  # noqa: E402


@dataclass
class ScriptArguments:
    """What the command takes besides the recipe: the data, and whether to continue a run."""

    data: str = field(metadata={"help": "sft.parquet or any HF-style chat dataset (.parquet, .jsonl, a save_to_disk dir)"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in --output_dir"})


def given_arguments(parser: TrlParser, argv: list[str] | None) -> dict:
    """Only the flags present on the command line, typed by TrlParser: every default is dropped, so
    what the command line does not say stays the recipe's (or, unset there, TRL's)."""
    for action in parser._actions:  # as TrlParser.set_defaults_with_config does
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    # No abbreviations: `--max_step 3` must fail naming the flag, not become --max_steps. The usage line is
    # short because TRL's three dataclasses make ~200 flags (all listed by --help).
    parser = TrlParser((ScriptArguments, *RECIPE_CLASSES), prog="python -m training", allow_abbrev=False,
                       usage="python -m training [--config RECIPE] --data FILE --output_dir DIR [--FIELD VALUE ...]",
                       description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help=f"recipe: one of {available_recipes()} or a YAML path (default: embedded)")
    given = given_arguments(parser, argv)
    recipe, data, resume = given.pop("config", "embedded"), Path(given.pop("data")), given.pop("resume", False)
    if "output_dir" not in given:
        parser.error("--output_dir is required: the run writes adapter/, checkpoints/ and metrics.json under it")
    output_dir = Path(given.pop("output_dir"))
    try:
        config = load_recipe(recipe, **given)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    if config.model_args.model_name_or_path == "embedded":
        parser.error('model_name_or_path "embedded" is resolved by the pipeline, not by training: pass '
                     "--model_name_or_path DIR (the directory `tool-distill` keeps it in), or run `tool-distill train-eval`")

    from training.sft import train  # the trainer's own imports (peft, datasets) only once the arguments are valid

    result = train(config, data, output_dir, resume=resume)
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
