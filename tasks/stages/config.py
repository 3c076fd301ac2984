"""The settings of the LLM stages, in one light module: the CLI and the Prefect UI form validate them
before anything heavy (litellm, sympy, Prefect) is imported, so a bad flag fails in a fraction of a second."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from tasks.prompt_store import available_versions


HF_PREFIX = "hf:"  # a problems source read through Hugging Face `datasets` (tasks/stages/problems.py)


def bundled_problems_path() -> Path:
    """The demo set shipped with the package: easy problems the embedded model can solve with code."""
    return Path(__file__).parent / "data" / "demo_problems.jsonl"


def _prompt_of(agent: str) -> AfterValidator:
    """A prompt version that exists for `agent` ("latest" or vN): checked with the flags, not an hour into a run."""
    def check(version: str) -> str:
        versions = available_versions(agent)
        if version != "latest" and version not in versions:
            raise ValueError(f"no {agent} prompt {version!r}; available: latest, {', '.join(versions)}")
        return version
    return AfterValidator(check)


Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[int, Field(ge=1)]


class SolveConfig(BaseModel):
    tool_protocol: Literal["auto", "functions", "code"] = Field(
        default="auto", description="auto: function calling where the model supports it, else code blocks."
    )
    max_turns: int = Field(default=15, ge=1, description="Model turns after the plan.")
    plan_first: bool = Field(default=True, description="Ask for a tool-free plan before acting (the paper's protocol).")
    plan_max_tokens: MaxTokens = 256
    turn_max_tokens: MaxTokens = 512
    tool_timeout_s: float = Field(default=10.0, gt=0, le=600)
    sample_temperature: float = Field(default=0.7, gt=0, le=2, description=(
        "Temperature of the 2nd and later samples of a problem when the model's own temperature is 0 "
        "(sample 0 keeps the model's settings; sample j asks for seed j)."))
    prompt_version: Annotated[str, _prompt_of("solver")] = "latest"


class SamplingConfig(BaseModel):
    """How many solver samples a problem gets, how many distinct correct ones are enough, and how votes label
    problems without a reference answer (tasks/stages/sampling.py)."""

    samples_per_problem: int = Field(default=1, ge=1, le=64, description=(
        "Solve each problem up to k times; each sample is its own cached row, so raising k later adds only new ones."))
    keep_per_problem: int = Field(default=1, ge=1, le=64, description=(
        "Stop sampling a problem with a reference answer once it has this many distinct correct traces; "
        "at most this many traces of a problem go on to translation."))
    majority_min: float = Field(default=0.6, gt=0, le=1, description=(
        "A problem without a reference answer is labelled by the answer that at least this share of its samples "
        "agree on (the grader decides equivalence); otherwise it is dropped as no_consensus."))
    near_duplicate_jaccard: float = Field(default=0.8, gt=0, le=1, description=(
        "Two solutions of one problem whose word 3-gram sets overlap this much (Jaccard) are near-identical: "
        "the longer one is dropped as duplicate_trace."))

    @model_validator(mode="after")
    def _keep_at_most_samples(self) -> SamplingConfig:
        if self.keep_per_problem > self.samples_per_problem:
            raise ValueError(f"--keep-per-problem {self.keep_per_problem} is more than --samples-per-problem "
                             f"{self.samples_per_problem}: a problem has no more traces than samples; raise "
                             "--samples-per-problem or lower --keep-per-problem")
        return self


class TranslateConfig(BaseModel):
    max_attempts: int = Field(default=3, ge=1)
    retry_temperature: Temperature = 0.7
    use_judge: bool = Field(default=True, description="Ask an LLM judge only when the tool output is not math.")
    max_tokens: MaxTokens = 512
    show_tool_output: bool = Field(default=False, description=(
        "Guided mode: show the model the tool's output and accept only derivations whose written arithmetic is "
        "all true. For weak teachers (the embedded demo model); blind derivation is the stronger check."))
    prompt_version: Annotated[str, _prompt_of("translator")] = "latest"
    judge_prompt_version: Annotated[str, _prompt_of("judge")] = "latest"


class RephraseConfig(BaseModel):
    max_tokens: MaxTokens = 1024
    max_attempts: int = Field(default=2, ge=1, description="Samples to try while the solution fails the filter's checks.")
    retry_temperature: Temperature = 0.7
    prompt_version: Annotated[str, _prompt_of("rephraser")] = "latest"
