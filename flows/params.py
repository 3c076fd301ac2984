"""The flows' parameters: one pydantic model per flow, the Prefect UI form and the CLI both render it.

Light on purpose (pydantic and the stages' light config module only): the CLI validates a run's
parameters, and fails on a bad one, before Prefect, litellm or sympy is imported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tasks.llm.records import LLMSettings, SpendSettings
from tasks.stages.config import HF_PREFIX, RephraseConfig, SamplingConfig, SolveConfig, TranslateConfig
from training.recipe_files import max_steps_refused
from tasks.stages.config import bundled_problems_path


# Each call in flight is a thread (two per call for a remote model): past this many a run is a mistake, not a plan.
MAX_CONCURRENCY = 1024
MAX_NEW_TOKENS = 1 << 20  # beyond any model's context: a typo, not a budget
MAX_EVAL_BATCH = 1 << 14  # prompts per generate call: past this the batch cannot fit any accelerator


class DistillParams(BaseModel):
    """Parameters of the distill flow (rendered as a form in the Prefect UI)."""

    problems: str = Field(default="bundled", min_length=1, description=(
        'A JSONL/Parquet/CSV file or folder, "bundled" (24 easy demo problems), or a Hugging Face dataset read from '
        "local copies: hf:<dataset>[:<split>] or hf:<dataset>:<config>:<split> (an id in the cache, or a "
        "save_to_disk folder)."))
    problem_field: str | None = Field(default=None, min_length=1, description="The column holding the problem "
                                      "(default: problem, or question).")
    answer_field: str | None = Field(default=None, min_length=1, description=(
        'The column holding the reference answer (default: answer, final_answer, or the last \\boxed{} of solution); '
        '"none": read no answer, label every problem by the majority vote of its samples.'))
    output_dir: str = Field(default="out/distill", min_length=1, description="Where the stage Parquet files go.")
    limit: int | None = Field(default=None, ge=1, description="Use only the first N problems (after dedup and decontamination).")
    skip_bad_rows: bool = Field(default=False, description="Skip malformed input rows (reported) instead of stopping.")
    max_problem_chars: int = Field(default=20_000, gt=0, description="Longer problems are bad rows.")
    max_input_mb: int = Field(default=1024, ge=1, description="Read at most this much of any one problems file.")
    decontaminate: bool = Field(default=True, description="Remove problems that overlap an eval benchmark (8-gram coverage, tasks/stages/decontam.py).")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    max_concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY, description="LLM calls in flight at once (capped by the Prefect limit `llm-<model>` if one exists).")
    rows_per_task: int = Field(default=128, ge=1, description="Rows per Prefect task run: the stage runs its rows on "
                                                           "2 x `max_concurrency` threads (1 x for an in-process model) and caches every row as it finishes.")
    requests_per_minute: float | None = Field(default=None, gt=0, description="Start at most this many LLM calls per minute (capped by `llm-<model>-rpm` if it exists).")
    solve: SolveConfig = Field(default_factory=SolveConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    rephrase: RephraseConfig = Field(default_factory=RephraseConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    license: str | None = Field(default=None, description='Dataset card licence; default "apache-2.0" for the bundled set, else "other".')
    max_failed_fraction: float = Field(default=0.5, ge=0, le=1, description=(
        "Fail the run when more than this share of a stage's rows failed in their LLM calls (a wrong model, key or endpoint)."))
    push_to_hub: str | None = Field(default=None, description="Hugging Face dataset repo to upload to (needs HF_TOKEN).")
    spend: SpendSettings = Field(default_factory=SpendSettings, description="Budget, prices and batch APIs "
                                 "(not part of any cache key: raising a budget redoes nothing).")
    pilot: int | None = Field(default=None, ge=1, description="Distil only a seeded random pilot of N of the problems "
                              "(what `tool-distill estimate` runs; its rows are reused by the full run).")
    pilot_seed: int = Field(default=0, description="Seed of the pilot's random choice of problems.")
    cache_dir: str | None = Field(default=None, min_length=1, description="Row and stage caches and the spend "
                                  "ledger; default <output_dir>/.prefect-results (the estimate's pilot uses the full run's).")

    @field_validator("license")
    @classmethod
    def _license_is_an_id(cls, value: str | None) -> str | None:
        """The dataset card's `license:` key, which the Hub reads as an SPDX-style id."""
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", value):
            raise ValueError("expected an SPDX-style licence id such as apache-2.0, mit or other; leave out --license "
                             "for the default")
        return value

    @field_validator("push_to_hub")
    @classmethod
    def _push_to_hub_is_a_repo_id(cls, value: str | None) -> str | None:
        """Checked with the flags: the upload is the run's last step, after every LLM call is paid for."""
        if value is None:
            return value
        from huggingface_hub.utils import HFValidationError, validate_repo_id  # 0.1 s, only when a repo is named

        try:
            validate_repo_id(value)
        except HFValidationError:
            raise ValueError("expected a Hugging Face repo id, name or namespace/name, of letters, digits, '-', '_' "
                             "and '.' (no '--' or '..', at most 96 characters), like your-name/tool-distill-traces"
                             ) from None
        return value

    @model_validator(mode="after")
    def _fields_and_pilot_agree(self) -> DistillParams:
        if self.problem_field is not None and self.problem_field == self.answer_field:
            raise ValueError(f"--problem-field and --answer-field both name {self.problem_field!r}: every reference "
                             "answer would be the problem's own text; name the answer's column, or leave --answer-field out")
        if "pilot" in self.model_fields_set and self.pilot is not None and self.limit is not None \
                and self.pilot > self.limit:
            raise ValueError(f"--pilot {self.pilot} is more problems than --limit {self.limit}; lower --pilot or "
                             "raise --limit")
        return self

    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.output_dir) / ".prefect-results"

    def problems_path(self) -> Path | str:
        """The bundled file, a path, or the `hf:` spec as it is (the loader parses it)."""
        if self.problems == "bundled":
            return bundled_problems_path()
        return self.problems if self.problems.startswith(HF_PREFIX) else Path(self.problems)

    def dataset_name(self) -> str:
        if self.problems.startswith(HF_PREFIX):  # hf:openai/gsm8k:main:train -> gsm8k
            return Path(self.problems.removeprefix(HF_PREFIX).split(":")[0]).name or "hf"
        return "bundled" if self.problems == "bundled" else Path(self.problems).stem

    def run_slug(self) -> str:
        """`<dataset>-<model>`, the tail of flow run names shown in the Prefect UI."""
        return f"{self.dataset_name()}-{self.llm.model.replace('/', '_')}"


MATH_TRAIN_HUB_ID = "EleutherAI/hendrycks_math"  # what `--math-train hub` reads
NO_TRAINING_EXAMPLES = ("no training examples: the distill filter kept nothing. Use a stronger teacher model (--model) "
                        "or more problems, then re-run distill.")


class TrainEvalParams(BaseModel):
    """Parameters of the train-eval flow (rendered as a form in the Prefect UI)."""

    sft_path: str = Field(default="out/distill/sft.parquet", min_length=1, description="sft.parquet from the distill flow.")
    output_dir: str = Field(default="out/train_eval", min_length=1)
    recipe: str = Field(default="embedded", min_length=1, description="training/recipes/<name>.yaml or a path to a recipe file.")
    max_steps: int | None = Field(default=None, description="Override the recipe's optimizer steps (-1: train by "
                                  "the recipe's num_train_epochs).")
    base_model: str | None = Field(default=None, min_length=1, description='Override the recipe\'s base model: a model dir, a hub id, '
                                   'or "embedded".')
    benchmarks: list[str] = Field(default_factory=lambda: ["math500", "gsm8k"])
    eval_limit: int | None = Field(default=10, ge=1, description="First N problems of each benchmark (None: all).")
    max_new_tokens: int = Field(default=256, gt=0, le=MAX_NEW_TOKENS)
    batch_size: int = Field(default=8, ge=1, le=MAX_EVAL_BATCH)
    eval_in_4bit: bool | None = Field(default=None, description=(
        "Evaluate base and tuned on the 4-bit base QLoRA trained against. Default: yes on CUDA; on a CPU the "
        "full-precision base, since bitsandbytes' CPU backend dequantizes every weight for every generated token."))
    eval_source: Literal["offline", "hub"] = Field(default="offline", description="Benchmark data: the bundled "
                                                   "copies, or the Hugging Face Hub (needs network).")

    @field_validator("max_steps")
    @classmethod
    def _max_steps_trains(cls, value: int | None) -> int | None:
        """What TRL accepts: 0 would be read as "no override", -5 refused once training starts."""
        if value is not None and (advice := max_steps_refused(value)):
            raise ValueError(advice)
        return value


class PaperParams(BaseModel):
    """Parameters of the paper flow (a form in the Prefect UI; the CLI's flags)."""

    teacher: str = Field(default="openai/gpt-4o-mini", min_length=1, description="litellm model string of the teacher.")
    student: str = Field(default="Qwen/Qwen2.5-1.5B-Instruct", min_length=1, description="Hub id or local dir of the student.")
    output_dir: str = Field(default="out/paper", min_length=1)
    math_train: str = Field(default="hub", min_length=1, description='"hub" (MATH train from the Hub) or a local problems file.')
    distill_limit: int | None = Field(default=None, ge=1, description="Distil only the first N problems (a dry run).")
    recipe: str = Field(default="paper_qlora", min_length=1, description="Training recipe; its base model is replaced by student.")
    max_steps: int | None = Field(default=None, ge=1, description="Stop training after N steps (a dry run).")
    eval_limit: int | None = Field(default=None, ge=1, description="First N problems of each benchmark (None: all).")
    max_new_tokens: int = Field(default=2048, gt=0, le=MAX_NEW_TOKENS, description="Eval generation budget per problem.")
    batch_size: int = Field(default=64, ge=1, le=MAX_EVAL_BATCH, description="Eval prompts per generate call.")
    pilot: int = Field(default=20, ge=0, description="Price the distillation first from a seeded pilot of N problems "
                       "(`tool-distill estimate`; the run reuses its rows); 0: no estimate.")
    spend: SpendSettings = Field(default_factory=SpendSettings, description="The teacher's budget, price and batch APIs.")

    def hub_math_train_path(self) -> Path:
        """Where MATH train read from the Hub (`math_train: hub`) is written once, for this and later runs."""
        return Path(self.output_dir) / "math_train.jsonl"
