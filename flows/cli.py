"""`tool-distill`: the pipeline from a terminal, on Prefect's ephemeral API (no server needed).

    tool-distill demo                                       # whole pipeline, embedded model, offline
    tool-distill distill --problems data.jsonl --model openai/gpt-4o-mini --limit 100
    tool-distill train-eval --sft out/distill/sft.parquet --recipe qwen2.5-1.5b-instruct
    tool-distill paper --teacher openai/gpt-4o-mini --student Qwen/Qwen2.5-1.5B-Instruct
    tool-distill estimate --problems data.jsonl --model openai/gpt-4o-mini   # price a run from a 20-problem pilot

Every flag is a field of the flow's own parameter model (flows/params.py), the one the Prefect UI
renders as a form, so defaults and checks are written once; nested fields take dotted flags
(`--solve.max-turns 5`), the common ones also a short form (`--max-turns 5`).

Before Prefect starts, the parameters, the input files, the output and cache folders and (for
`--push-to-hub`) the Hub token are checked, and the model answers one tiny request (`--skip-preflight`
to skip it): a mistake costs a second, not a run. Exit codes: 0 done; 1 the run failed (most LLM
calls failed, or an error; what finished is kept, and the same command resumes); 2 bad input or a
model that cannot answer (nothing started); 3 the budget (`--max-budget-usd`, `--max-tokens-total`)
was reached: what finished is written, and the same command with a higher budget goes on without
paying for anything twice.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, CliApp, CliSubCommand, SettingsConfigDict, SettingsError, get_subcommand

from flows.console import Console
from training.offline_env import set_offline_defaults
from flows.params import (MATH_TRAIN_HUB_ID, MAX_CONCURRENCY, NO_TRAINING_EXAMPLES, DistillParams, PaperParams,
                          TrainEvalParams)
from flows.orphan_runs import CLI_TAG, hold_live_lock, mark_orphaned_runs_crashed
from flows.process_guard import run_guarded
from flows.stop_signals import StopOnSignals, StopRequested
from tasks.llm.records import BATCH_PROVIDERS
from tasks.stages.config import RephraseConfig, SolveConfig, TranslateConfig

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUDGET_REACHED = 1, 2, 3
SHORT_FLAGS = {
    "spend.max-budget-usd": "max-budget-usd", "spend.max-tokens-total": "max-tokens-total", "spend.price": "price",
    "spend.batch": "batch",
    "llm.model": "model", "llm.api-base": "api-base", "solve.max-turns": "max-turns",
    "solve.tool-protocol": "tool-protocol", "solve.plan-first": "plan",
    "translate.show-tool-output": "guided-translation", "translate.max-attempts": "translate-attempts",
    "sampling.samples-per-problem": "samples-per-problem", "sampling.keep-per-problem": "keep-per-problem",
    "sampling.majority-min": "majority-min", "sft-path": "sft",
}


class BadInput(ValueError):
    """Input the run cannot use; the message says what and how to fix it."""


class RunOptions(BaseModel):
    """How the command talks to the terminal; not part of the flow's parameters."""

    quiet: bool = Field(default=False, description="No progress bars or lines: only the summary and errors.")
    verbose: bool = Field(default=False, description="Library output and tracebacks on the terminal "
                                                     "(otherwise they go to <output-dir>/tool-distill.log).")

    @model_validator(mode="after")
    def _quiet_or_verbose(self) -> RunOptions:
        """--verbose puts every library's log lines on the terminal, the very noise --quiet promises to keep off it."""
        if self.quiet and self.verbose:
            raise ValueError("--quiet and --verbose contradict each other (--quiet: only the summary and errors; "
                             "--verbose: every library's output too); pass one of them")
        return self


class DistillCommand(DistillParams, RunOptions):
    """problems -> solve -> translate -> rephrase -> filter -> sft.parquet"""

    skip_preflight: bool = Field(default=False, description="Do not send the model one test request first.")


class DemoCommand(DistillCommand):
    """The whole pipeline offline on the embedded model (what `make demo` runs)."""

    # A 135M model on 2 CPU cores: no planning turn (its plans are noise), short replies, a small
    # eval slice. Every correct embedded-model solve answers by turn 2; blind, it derives almost no
    # tool result by hand, guided it derives some within a few fresh samples (docs/results/demo_embedded).
    # 8 calls in flight fill the local model's batches (tasks/llm/local_batching.py).
    output_dir: str = Field(default="out/demo", description="distill/ and train_eval/ go under it.")
    max_concurrency: int = Field(default=8, ge=1, le=MAX_CONCURRENCY, description="LLM calls in flight at once.")
    solve: SolveConfig = Field(default_factory=lambda: SolveConfig(plan_first=False, max_turns=3, turn_max_tokens=128))
    translate: TranslateConfig = Field(default_factory=lambda: TranslateConfig(show_tool_output=True, max_attempts=6,
                                                                               max_tokens=96))
    rephrase: RephraseConfig = Field(default_factory=lambda: RephraseConfig(max_tokens=128))
    train_eval: TrainEvalParams = Field(
        default_factory=lambda: TrainEvalParams(eval_limit=6, max_new_tokens=160),
        description="Training and evaluation after distill; sft_path and output_dir are set under --output-dir.")


class EstimateCommand(DistillCommand):
    """Price a distill run before paying for it: run the real pipeline on a random pilot, extrapolate (with 90-percent intervals)."""

    pilot: int | None = Field(default=20, ge=1, description="Problems in the pilot (seeded by --pilot-seed); the full "
                                                             "run reuses their rows.")


class TrainEvalCommand(TrainEvalParams, RunOptions):
    """Fine-tune on sft.parquet, evaluate base vs tuned without tools."""


class PaperCommand(PaperParams, RunOptions):
    """The paper's experiment: distil MATH train, QLoRA the student, evaluate base vs tuned on six benchmarks."""

    skip_preflight: bool = Field(default=False, description="Do not send the teacher one test request first.")


class ToolDistill(BaseSettings):
    """Distil tool knowledge into a small model (arXiv 2506.19171) as a Prefect pipeline.

    tool-distill demo                                        # everything, offline, embedded model
    tool-distill distill --problems data.jsonl --model openai/gpt-4o-mini --limit 100
    tool-distill train-eval --sft out/distill/sft.parquet --recipe qwen2.5-1.5b-instruct
    tool-distill paper --teacher openai/gpt-4o-mini --student Qwen/Qwen2.5-1.5B-Instruct  # a GPU, the Hub
    tool-distill estimate --problems data.jsonl --model openai/gpt-4o-mini  # cost, time, funnel from a pilot

    `tool-distill COMMAND --help` lists a command's flags. Exit codes: 0 done, 1 the run failed
    (what finished is kept; the same command resumes), 2 bad input (nothing was started), 3 the
    budget was reached (what finished is kept; raise it and run the same command to go on).
    """

    model_config = SettingsConfigDict(
        cli_prog_name="tool-distill", cli_kebab_case=True, cli_implicit_flags=True, cli_avoid_json=True,
        cli_exit_on_error=False, cli_shortcuts=SHORT_FLAGS, nested_model_default_partial_update=True,
        env_prefix="TOOL_DISTILL_CLI_", cli_use_class_docs_for_groups=True,
    )

    distill: CliSubCommand[DistillCommand]
    estimate: CliSubCommand[EstimateCommand]
    demo: CliSubCommand[DemoCommand]
    train_eval: CliSubCommand[TrainEvalCommand]
    paper: CliSubCommand[PaperCommand]


COMMANDS = [name.replace("_", "-") for name in ToolDistill.model_fields]

# ---------------------------------------------------------------- checks before Prefect starts


def _check_folder_to_write(path: Path, flag: str) -> None:
    """A folder the run writes must be a folder, or creatable: its first existing ancestor a folder that takes one.

    Tried with a folder made and removed at once: access() says yes to root under a virtual filesystem
    (/proc), where mkdir still fails, and that failure would otherwise come once Prefect has started.
    """
    if path.exists() and not path.is_dir():
        raise BadInput(f"{flag} {path} is a file, not a folder; pass a folder path (it is created if missing)")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"{flag} {path}: cannot create it under {ancestor} (not a folder); pass a folder you can write to")
    try:
        tempfile.TemporaryDirectory(dir=ancestor, prefix=".tool-distill-probe-").cleanup()
    except OSError as exc:
        raise BadInput(f"{flag} {path}: cannot create it under {ancestor} ({exc.strerror or exc}); "
                       "pass a folder you can write to") from None


# Settings the environment gives a run and that are read late (by the flow's task runner, the progress bars,
# the embedded model's converter, Prefect's client): checked with the flags, since a typo there would be ignored
# or fail after the run started. The names are those of tasks/runtime/progress.py and tasks/llm/embedded_model.py,
# which import Prefect and litellm.
PROGRESS_ENV, PROGRESS_MODES = "TOOL_DISTILL_PROGRESS", ("auto", "plain", "off")
STATE_DIR_ENV = "TOOL_DISTILL_STATE_DIR"


def _check_environment() -> None:
    from flows.runner_settings import TaskRunnerSettings

    try:
        TaskRunnerSettings.from_env()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if (mode := os.environ.get(PROGRESS_ENV)) and mode not in PROGRESS_MODES:
        raise BadInput(f"{PROGRESS_ENV}={mode!r}: expected one of {', '.join(PROGRESS_MODES)}; unset it for bars on "
                       "a terminal and plain lines elsewhere")
    if state := os.environ.get(STATE_DIR_ENV):
        _check_folder_to_write(Path(state), STATE_DIR_ENV)
    if (url := os.environ.get("PREFECT_API_URL")) and not re.fullmatch(r"https?://[^\s/]+(?:/\S*)?", url):
        raise BadInput(f"PREFECT_API_URL={url!r}: not an http(s) URL; point it at a Prefect server's API "
                       "(http://127.0.0.1:4200/api), or unset it to run on a temporary local one")


def _check_hub_token(command: DistillCommand) -> None:
    """The upload is the run's last step: without a token it would fail after every LLM call is paid for."""
    if command.push_to_hub is None or isinstance(command, EstimateCommand):  # an estimate uploads nothing
        return
    from tasks.stages.hub_upload import hub_token

    try:
        hub_token(command.push_to_hub)
    except RuntimeError as exc:
        raise BadInput(str(exc)) from None


def _check_distill_input(command: DistillCommand) -> None:
    """The output dir, and the problems as the flow will read them (an hf: dataset from its local copy)."""
    from tasks.stages.problems import FieldMap, ProblemInputError, load_problems
    from tasks.stages.sampling import MIN_AGREEING_VOTES

    _check_folder_to_write(Path(command.output_dir), "--output-dir")
    if command.cache_dir is not None:
        _check_folder_to_write(Path(command.cache_dir), "--cache-dir")
    _check_hub_token(command)
    if isinstance(command, DemoCommand):  # its train-eval half runs after the whole distillation
        _check_benchmarks(command.train_eval, "train-eval.")
        _check_base_model(command.train_eval.recipe, command.train_eval.base_model, "--train-eval.base-model")
    provider = command.llm.model.split("/", 1)[0] if "/" in command.llm.model else None
    if command.spend.batch and provider is not None and provider not in BATCH_PROVIDERS:
        raise BadInput(f"--batch: litellm has no batch API for {command.llm.model}; it has one for "
                       f"{', '.join(p + '/' for p in BATCH_PROVIDERS)} models (leave out --batch)")
    try:
        report = load_problems(command.problems_path(), skip_bad_rows=command.skip_bad_rows,
                               max_problem_chars=command.max_problem_chars, max_input_bytes=command.max_input_mb << 20,
                               fields=FieldMap(problem=command.problem_field, answer=command.answer_field))
    except (ProblemInputError, FileNotFoundError) as exc:
        raise BadInput(str(exc)) from None
    unlabelled = sum(p.answer_source == "none" for p in report.problems)
    if unlabelled and command.sampling.samples_per_problem < MIN_AGREEING_VOTES:
        raise BadInput(f"--problems {command.problems}: {unlabelled} of {len(report.problems)} problems have no reference "
                       f"answer, and a majority vote needs {MIN_AGREEING_VOTES} or more samples; pass "
                       "--samples-per-problem 4 (or more) to label them by vote, or give them answers")


def _check_benchmarks(params: TrainEvalParams, prefix: str = "") -> None:
    """The benchmarks named, each once, and (`--eval-source hub`) each one readable from the Hub or its cache."""
    from eval.benchmarks import BENCHMARK_NAMES, REGISTRY

    flag = f"--{prefix}benchmarks"
    unknown = sorted(set(params.benchmarks) - set(BENCHMARK_NAMES))
    if not params.benchmarks or "" in unknown:
        raise BadInput(f"{flag}: name one or more of {', '.join(BENCHMARK_NAMES)}")
    if unknown:
        raise BadInput(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(BENCHMARK_NAMES)}")
    if repeated := sorted({name for name in params.benchmarks if params.benchmarks.count(name) > 1}):
        raise BadInput(f"{flag}: {', '.join(repeated)} named twice; name each benchmark once")
    if params.eval_source == "hub":
        from training.model_source import hub_dataset_problem

        for name in params.benchmarks:
            fix = f"pass --{prefix}eval-source offline to evaluate on the bundled copies"
            if (problem := hub_dataset_problem(REGISTRY[name].hub_id, fix)) is not None:
                raise BadInput(f"--{prefix}eval-source hub: {name}: {problem}")


def _check_train_eval_input(command: TrainEvalCommand) -> None:
    from tasks.parquet_io import StageFileError, count_records
    from tasks.records import SFTRecord

    _check_benchmarks(command)
    sft = Path(command.sft_path)
    if not sft.is_file():
        raise BadInput(f"--sft {sft}: no such file; run `tool-distill distill` first, or pass the path of its sft.parquet")
    try:
        rows = count_records(sft, SFTRecord)
    except StageFileError as exc:
        raise BadInput(f"--sft {sft}: {exc.problem}; pass the sft.parquet that `tool-distill distill` wrote") from None
    if rows == 0:
        raise BadInput(f"--sft {sft}: {NO_TRAINING_EXAMPLES}")
    _check_base_model(command.recipe, command.base_model, "--base-model")
    _check_folder_to_write(Path(command.output_dir), "--output-dir")


def _check_paper_input(command: PaperCommand) -> None:
    _check_folder_to_write(Path(command.output_dir), "--output-dir")
    _check_base_model(command.recipe, command.student, "--student")
    if command.math_train == "hub" and not command.hub_math_train_path().is_file():
        from training.model_source import hub_dataset_problem

        fix = "pass a local problems file (.jsonl, .parquet, .csv) with --math-train"
        if (problem := hub_dataset_problem(MATH_TRAIN_HUB_ID, fix)) is not None:
            raise BadInput(f"--math-train hub: {problem}")
    if command.math_train != "hub":
        from tasks.stages.problems import ProblemInputError, load_problems

        if not Path(command.math_train).exists():
            raise BadInput(f"--math-train {command.math_train}: no such file or folder; pass a problems file (.jsonl, "
                           ".parquet, .csv) or leave --math-train out to read MATH train from the Hub")
        try:
            load_problems(Path(command.math_train))
        except ProblemInputError as exc:
            raise BadInput(f"--math-train {exc}") from None


def _check_base_model(recipe: str, base_model: str | None, flag: str) -> None:
    """The recipe exists and the model it trains (`base_model`, else the recipe's own) can be loaded here."""
    import yaml

    from training.model_source import base_model_problem
    from training.recipe_files import check_recipe_keys, read_recipe_yaml, recipe_path, recorded_fields

    try:
        path = recipe_path(recipe)
    except FileNotFoundError as exc:
        raise BadInput(f"--recipe: {exc}") from None
    try:
        fields = read_recipe_yaml(path)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"--recipe {path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    fields = {} if fields is None else fields  # an empty file
    if not isinstance(fields, dict):
        raise BadInput(f"--recipe {path}: expected a mapping of recipe fields (key: value lines), "
                       f"got a {type(fields).__name__}")
    try:
        check_recipe_keys(fields, recorded_fields())
    except ValueError as exc:
        raise BadInput(f"--recipe {path}: {exc}") from None
    if base_model is None:
        if fields.get("model_name_or_path") is None:
            raise BadInput(f"--recipe {path}: it names no model_name_or_path; add one, or pass {flag}")
        base_model = fields["model_name_or_path"]
        flag = f"--recipe {recipe}: its model_name_or_path"
    if (problem := base_model_problem(str(base_model))) is not None:
        raise BadInput(f"{flag} {base_model}: {problem}")


def _one_line(text: str) -> str:
    """A refusal is one line even when it quotes a value with a newline in it."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _validation_line(error: ValidationError) -> str:
    first = error.errors()[0]
    flag = ".".join(str(part).replace("_", "-") for part in first["loc"][1:] or first["loc"])
    flag = "--" + SHORT_FLAGS.get(flag, flag)
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith("--"):  # a check across fields that names them itself
        return message
    if isinstance(first.get("input"), dict):  # a check across fields: its message names them
        return f"{flag}: {message}" if len(first["loc"]) > 1 else message  # across a command's own flags: no prefix
    return f"{flag}: {message} (got {first.get('input')!r})"


# ---------------------------------------------------------------- running


def _distill_params(command: DistillCommand, output_dir: Path) -> DistillParams:
    fields = command.model_dump(include=set(DistillParams.model_fields))
    return DistillParams.model_validate({**fields, "output_dir": str(output_dir)})


def _run_distill(command: DistillCommand, console: Console, output_dir: Path) -> Any:
    from flows.distill import distill

    summary = distill(_distill_params(command, output_dir))
    _print_distill_summary(summary, console)
    return summary


def _budget_stop(summary: Any, console: Console) -> int | None:
    """Exit code 3 and one line when the budget stopped the run."""
    budget = summary.spend.budget if summary.spend is not None else None
    if budget is None or not budget.reached:
        return None
    print(f"tool-distill: {budget.line()}; finished rows are written and kept: raise --max-budget-usd "
          "(or --max-tokens-total) and run the same command to go on", file=console.err)
    return EXIT_BUDGET_REACHED


def _run_estimate(command: EstimateCommand, console: Console) -> None:
    from flows.estimate import estimate

    _print_estimate(estimate(_distill_params(command, Path(command.output_dir))), Path(command.output_dir), console)


def _print_estimate(result: Any, output_dir: Path, console: Console) -> None:
    from tasks.stages.estimate import ESTIMATE_NAME, estimate_table

    rows = estimate_table(result)
    head = ("", "calls", "prompt tokens", "completion tokens", "usd", "wall s")
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    print(f"\n== estimate: {result.problems} problems, from a pilot of {result.pilot} ({result.model}, "
          f"{result.max_concurrency} calls in flight{', batch' if result.batch else ''}); point [90% interval] ==",
          file=console.out)
    for row in [head, *rows]:
        print("  " + "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip(), file=console.out)
    print(f"  the pilot cost ${result.pilot_cost_usd:.4f} (its rows are reused by the full run); "
          f"{output_dir / ESTIMATE_NAME}", file=console.out)


def _run_train_eval(params: TrainEvalParams, console: Console, sft_path: Path, output_dir: Path) -> None:
    from flows.train_eval import train_eval

    fields = params.model_dump(include=set(TrainEvalParams.model_fields))
    params = TrainEvalParams.model_validate({**fields, "sft_path": str(sft_path), "output_dir": str(output_dir)})
    _print_train_eval_summary(train_eval(params), console)


def _print_distill_summary(summary: Any, console: Console) -> None:
    out = Path(summary.output_dir)
    rows = [
        ("problems", summary.problems, out / "problems.parquet"),
        ("solved correctly", summary.solved_correct, out / "traces.parquet"),
        ("tool calls", summary.tool_calls, out / "tool_calls.parquet"),
        ("faithful translations", f"{summary.faithful_translations}/{summary.translations}", out / "translations.parquet"),
        ("NL traces", summary.nl_traces, out / "nl_traces.parquet"),
        ("kept for SFT", summary.kept, out / "sft.parquet"),
    ]
    print("\n== distill ==", file=console.out)
    for label, value, path in rows:
        print(f"  {label:<24}{value!s:>8}   {path}", file=console.out)
    print(f"  drop reasons: {summary.drop_reasons or 'none'}", file=console.out)
    print(f"  tokens: {summary.prompt_tokens} in / {summary.completion_tokens} out, cost ${summary.cost_usd:.4f}",
          file=console.out)
    if summary.spend is not None:
        from tasks.stages.spend_report import spend_lines

        for line in spend_lines(summary.spend):
            print(f"  {line}", file=console.out)
    _print_yield(summary.yield_report, console)


def _print_yield(report: Any, console: Console) -> None:
    """Kept per problem, per 1,000 calls and per dollar; with several samples, what each sample index added."""
    from tasks.stages.summary import shown_ratio

    print(f"  yield: {shown_ratio(report.kept_per_problem)} kept per problem, "
          f"{shown_ratio(report.kept_per_1000_calls)} per 1,000 LLM calls ({report.llm_calls} calls), "
          f"{shown_ratio(report.kept_per_usd)} per $", file=console.out)
    if report.labels["majority"] or report.labels["no_consensus"]:
        print(f"  answer labels: {report.labels['reference']} reference, {report.labels['majority']} majority vote, "
              f"{report.labels['no_consensus']} no consensus", file=console.out)
    if len(report.by_sample) > 1:
        print(f"  {'sample index':<14}{'drawn':>7}{'correct':>9}{'distinct':>10}{'kept':>6}{'new problems':>14}{'calls':>8}",
              file=console.out)
        for s in report.by_sample:
            print(f"  {s.sample_index:<14}{s.drawn:>7}{s.correct:>9}{s.distinct_new:>10}{s.kept:>6}"
                  f"{s.problems_first_kept:>14}{s.llm_calls:>8}", file=console.out)


def _print_train_eval_summary(summary: Any, console: Console) -> None:
    print("\n== train + eval (no tools) ==", file=console.out)
    print(f"  trained {'QLoRA (4-bit NF4 base)' if summary.load_in_4bit else 'LoRA'} {summary.train_steps} steps, "
          f"final loss {summary.final_loss:.4f}, adapter: {summary.adapter_dir}", file=console.out)
    print(f"  evaluated on the {'4-bit' if summary.eval_in_4bit else 'full-precision'} base", file=console.out)
    benchmarks = sorted({b for per_label in summary.accuracy.values() for b in per_label})
    print(f"  {'benchmark':<14}" + "".join(f"{label:>10}" for label in summary.accuracy), file=console.out)
    for benchmark in benchmarks:
        print(f"  {benchmark:<14}" + "".join(f"{100 * acc[benchmark]:>9.1f}%" for acc in summary.accuracy.values()),
              file=console.out)
    print(f"  report: {summary.report_path}", file=console.out)


def _preflight(command: DistillCommand | PaperCommand) -> None:
    from tasks.llm import LLMSettings, PreflightError, preflight, register_price

    llm = command.llm if isinstance(command, DistillCommand) else LLMSettings(model=command.teacher)
    price = command.spend.model_price()
    if price is not None:  # before litellm first sees the model: it would price it at 0 and say so
        register_price(llm.model, price)
    if command.skip_preflight:
        return
    try:
        preflight(llm)
    except PreflightError as exc:
        raise BadInput(f"{exc} (or pass --skip-preflight)") from None


def _work(name: str, command: Any, console: Console) -> int:
    """The part that runs Prefect: inside the process guard, library output already routed."""
    started = time.perf_counter()
    if isinstance(command, DemoCommand):
        root = Path(command.output_dir)
        summary = _run_distill(command, console, root / "distill")
        if (code := _budget_stop(summary, console)) is not None:
            return code
        if summary.kept == 0:
            print(f"\nNo trace survived the filter, so there is nothing to fine-tune on. The embedded teacher is a "
                  f"135M model and its hand derivations are sampled; delete {root} to sample again, or pass --model "
                  "with a real teacher.", file=console.err)
            return EXIT_FAILED
        _run_train_eval(command.train_eval, console, root / "distill" / "sft.parquet", root / "train_eval")
    elif isinstance(command, EstimateCommand):
        _run_estimate(command, console)
    elif isinstance(command, DistillCommand):
        summary = _run_distill(command, console, Path(command.output_dir))
        if (code := _budget_stop(summary, console)) is not None:
            return code
    elif isinstance(command, PaperCommand):
        from flows.paper import paper, paper_estimate

        params = PaperParams.model_validate(command.model_dump(include=set(PaperParams.model_fields)))
        if params.pilot:  # the price on the terminal before the hours of distillation it describes
            _print_estimate(paper_estimate(params), Path(params.output_dir) / "distill", console)
            params = params.model_copy(update={"pilot": 0})
        summary = paper(params)
        print(Path(summary.report_path).read_text(encoding="utf-8"), file=console.out)
    else:
        _run_train_eval(command, console, Path(command.sft_path), Path(command.output_dir))
    warnings = console.library_warnings()
    tail = f"; {warnings} library warnings in {console.log_path}" if warnings else ""
    print(f"\ndone in {time.perf_counter() - started:.0f} s{tail}", file=console.out)
    return 0


def _report_failure(name: str, exc: BaseException, console: Console, verbose: bool) -> int:
    from tasks.stages.failures import TooManyLLMFailures

    if isinstance(exc, BadInput):
        print(f"tool-distill {name}: {_one_line(str(exc))}", file=console.err)
        return EXIT_BAD_INPUT
    if verbose:
        traceback.print_exception(exc, file=console.err)
    where = f" (details: {console.log_path})" if console.log_path else ""
    what = str(exc) if isinstance(exc, TooManyLLMFailures) else f"{type(exc).__name__}: {exc}"
    print(f"tool-distill {name}: failed: {' '.join(what.split())}{where}", file=console.err)
    return EXIT_FAILED


def _keep_log_in_output_dir(console: Console, output_dir: Path) -> None:
    """Create the output dir (the first file a run writes): a folder that cannot be made is bad input, as
    for the early check (it may have changed since, during the preflight)."""
    try:
        console.keep_log_in(output_dir)
    except OSError as exc:
        raise BadInput(f"--output-dir {output_dir}: cannot write there ({exc.strerror or exc}); "
                       "pass a folder you can write to") from exc


def _stopped_line(name: str, signal_name: str) -> str:
    how = "interrupted" if signal_name == "SIGINT" else f"stopped by {signal_name}"
    return f"tool-distill {name}: {how}; finished rows are kept, the same command resumes"


def _guarded_work(name: str, command: Any) -> Callable[[], int]:
    def work() -> int:
        console = Console()
        if not command.verbose:
            console.send_libraries_away()
        try:
            if isinstance(command, (DistillCommand, PaperCommand)):
                _preflight(command)  # before anything is written: a model that cannot answer leaves no files
            _keep_log_in_output_dir(console, Path(command.output_dir))
        except BadInput as exc:
            console.discard_log()
            return _report_failure(name, exc, console, command.verbose)
        if command.quiet:
            os.environ["TOOL_DISTILL_PROGRESS"] = "off"
        prefect_home = Path(os.environ["PREFECT_HOME"]).expanduser()
        prefect_home.mkdir(parents=True, exist_ok=True)  # Prefect makes it without parents, and only warns if it cannot
        live = hold_live_lock(prefect_home)  # held until this process ends, however it ends
        mark_orphaned_runs_crashed(prefect_home, live)
        stopper = StopOnSignals(lambda stop: print(_stopped_line(name, stop.signal_name), file=console.err))
        try:
            from prefect import tags

            with tags(CLI_TAG):
                return _work(name, command, console)
        except KeyboardInterrupt as exc:  # StopRequested, or a KeyboardInterrupt raised before the handlers
            stop = exc if isinstance(exc, StopRequested) else StopRequested(signal.SIGINT)
            stopper.say_once(stop)
            return stop.exit_code
        except Exception as exc:  # the one place a run's error becomes one line and an exit code
            return _report_failure(name, exc, console, command.verbose)

    return work


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        root = CliApp.run(ToolDistill, cli_args=args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except ValidationError as exc:
        print(f"tool-distill: {_one_line(_validation_line(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SettingsError as exc:
        message = str(exc).removeprefix("error parsing CLI: ")
        print(f"tool-distill: {_one_line(message)}; see tool-distill --help", file=sys.stderr)
        return EXIT_BAD_INPUT
    command = get_subcommand(root, is_required=False)
    if command is None:
        print(f"tool-distill: name a command ({', '.join(COMMANDS)}); see tool-distill --help", file=sys.stderr)
        return EXIT_BAD_INPUT
    name = args[0]
    try:
        _check_environment()
        if isinstance(command, DistillCommand):
            _check_distill_input(command)
        elif isinstance(command, PaperCommand):
            _check_paper_input(command)
        else:
            _check_train_eval_input(command)
    except BadInput as exc:
        print(f"tool-distill {name}: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a path the system refuses to look at (a name too long, a loop): the input's fault
        where = f" {exc.filename}" if exc.filename else ""
        print(f"tool-distill {name}:{_one_line(where[:200])}: {exc.strerror or exc}; pass a shorter or other path",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    # PREFECT_HOME is project-local so the ephemeral API's database (and its concurrency slots) is not
    # shared machine-wide. Set before Prefect is imported; created once the preflight passed (a refused run
    # leaves no files).
    set_offline_defaults(PREFECT_HOME=str(Path(".state/prefect").resolve()))
    return run_guarded(_guarded_work(name, command), verbose=command.verbose,
                       on_forced_stop=lambda number: print(_stopped_line(name, signal.Signals(number).name),
                                                           file=sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
