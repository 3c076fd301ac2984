"""The settings of the LLM stages, in one light module: the CLI and the Prefect UI form validate them
before anything heavy (litellm, sympy, Prefect) is imported, so a bad flag fails in a fraction of a second."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


def bundled_problems_path() -> Path:
    """The demo set shipped with the package: easy problems the embedded model can solve with code."""
    return Path(__file__).parent / "data" / "demo_problems.jsonl"


class SolveConfig(BaseModel):
    tool_protocol: Literal["auto", "functions", "code"] = Field(
        default="auto", description="auto: function calling where the model supports it, else code blocks."
    )
    max_turns: int = Field(default=15, ge=1, description="Model turns after the plan.")
    plan_first: bool = Field(default=True, description="Ask for a tool-free plan before acting (the paper's protocol).")
    plan_max_tokens: int = 256
    turn_max_tokens: int = 512
    tool_timeout_s: float = 10.0
    prompt_version: str = "latest"


class TranslateConfig(BaseModel):
    max_attempts: int = Field(default=3, ge=1)
    retry_temperature: float = 0.7
    use_judge: bool = Field(default=True, description="Ask an LLM judge only when the tool output is not math.")
    max_tokens: int = 512
    show_tool_output: bool = Field(default=False, description=(
        "Guided mode: show the model the tool's output and accept only derivations whose written arithmetic is "
        "all true. For weak teachers (the embedded demo model); blind derivation is the stronger check."))
    prompt_version: str = "latest"
    judge_prompt_version: str = "latest"


class RephraseConfig(BaseModel):
    max_tokens: int = 1024
    max_attempts: int = Field(default=2, ge=1, description="Samples to try while the solution fails the filter's checks.")
    retry_temperature: float = 0.7
    prompt_version: str = "latest"
