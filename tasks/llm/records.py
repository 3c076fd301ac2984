"""The records that cross the LLM client's boundary: how to reach a model, and what a call returned."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field, field_validator, model_validator

from tasks.llm.embedded_model import EMBEDDED_LITELLM_MODEL

# Providers served inside this process (no HTTP, no cost): the embedded model and the test double.
LOCAL_PROVIDER = "local"
SCRIPTED_PROVIDER = "scripted"
IN_PROCESS_PROVIDERS = (LOCAL_PROVIDER, SCRIPTED_PROVIDER)

# The characters of the Prefect limit names a run looks up (tasks/llm/limits.py `limit_name`): a model string's
# others become '-'. Prefect refuses '/', '%', '&', '<', '>' in a name, so a prefix with them matches no limit.
LIMIT_NAME_CHARS = "A-Za-z0-9_.-"


class LLMSettings(BaseModel):
    """How to reach one model. Part of every LLM task's cache key, so it must hold no secret."""

    model: str = Field(default=EMBEDDED_LITELLM_MODEL, min_length=1, description="Any litellm model string.")
    api_base: str | None = Field(default=None, description="Endpoint for self-hosted servers (vLLM, a proxy).")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=1 << 20)  # past any model's context: a typo
    timeout_s: float = Field(default=120.0, gt=0)
    num_retries: int = Field(default=3, ge=0, le=20)
    concurrency_limit: str | None = Field(
        default="llm", description="Prefix of the Prefect limits that cap this model across runs, if an operator "
                                   "created them: `<prefix>-<model>` (in flight) and `<prefix>-<model>-rpm`; "
                                   "letters, digits, '.', '_' and '-'. Empty or None: no limit is looked up.",
    )

    @field_validator("api_base")
    @classmethod
    def _api_base_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL; write it like http://localhost:8000/v1")
        return value

    @field_validator("concurrency_limit")
    @classmethod
    def _concurrency_limit_is_a_name_prefix(cls, value: str | None) -> str | None:
        """A prefix no Prefect limit can carry would leave the model uncapped without a word, for the whole run."""
        if value and not re.fullmatch(f"[{LIMIT_NAME_CHARS}]+", value):
            raise ValueError("expected the prefix of a Prefect limit name, of letters, digits, '.', '_' and '-', "
                             "like llm; or '' to look up no limit")
        return value

    @property
    def in_process(self) -> bool:
        """True for `local/...` (embedded transformers model) and `scripted/...` (test double)."""
        return self.model.split("/", 1)[0] in IN_PROCESS_PROVIDERS


class FunctionCall(BaseModel):
    id: str
    name: str
    arguments_json: str


class LLMReply(BaseModel):
    content: str
    tool_calls: list[FunctionCall] = []
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    model: str


class LLMCallError(RuntimeError):
    """A call that failed for good (after litellm's retries): the row records it, the flow goes on."""


class Usage(BaseModel):
    """Calls, tokens and dollars, summed over calls (`add` a reply) or over rows (`total`): the one place they add up."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0

    def add(self, spent: LLMReply | Usage) -> None:
        self.prompt_tokens += spent.prompt_tokens
        self.completion_tokens += spent.completion_tokens
        self.cost_usd += spent.cost_usd
        self.llm_calls += getattr(spent, "llm_calls", 1)  # a reply is one call; a Usage or an LLM row carries its count

    @classmethod
    def total(cls, rows: Iterable[object]) -> Usage:
        """The sum over anything carrying `prompt_tokens`, `completion_tokens` and `cost_usd` (replies, LLM rows)."""
        usage = cls()
        for row in rows:
            usage.add(row)  # type: ignore[arg-type]
        return usage


# Providers litellm 1.102 sends to the OpenAI-compatible files + batches API (its
# OPENAI_COMPATIBLE_BATCH_AND_FILES_PROVIDERS); named here so the CLI can refuse `--batch` for others without
# importing litellm.
BATCH_PROVIDERS = ("openai", "hosted_vllm", "litellm_proxy")


class ModelPrice(BaseModel):
    """Dollars per million tokens, for a model litellm's price map lacks (or to override it)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    batch_input_per_mtok: float | None = Field(default=None, ge=0)
    batch_output_per_mtok: float | None = Field(default=None, ge=0)

    @classmethod
    def parse(cls, text: str) -> ModelPrice:
        """`IN,OUT` or `IN,OUT,BATCH_IN,BATCH_OUT` ($ per 1M tokens), e.g. `0.15,0.60,0.075,0.30`."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (2, 4):
            raise ValueError("expected IN,OUT or IN,OUT,BATCH_IN,BATCH_OUT in $ per 1M tokens, e.g. 0.15,0.60")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError("prices must be numbers ($ per 1M tokens, e.g. 0.15,0.60)") from None
        if any(v < 0 or v != v for v in values):
            raise ValueError("prices must be >= 0")
        return cls(input_per_mtok=values[0], output_per_mtok=values[1],
                   batch_input_per_mtok=values[2] if len(values) == 4 else None,
                   batch_output_per_mtok=values[3] if len(values) == 4 else None)


class SpendSettings(BaseModel):
    """What a run may spend and how it pays: a budget, a price, batch APIs (tasks/llm/spend.py, tasks/llm/batch.py).

    Not part of the rows' cache keys (`LLMSettings` is): raising a budget or turning batch mode on redoes nothing
    already paid for.
    """

    max_budget_usd: float | None = Field(default=None, gt=0, description=(
        "Stop before the run's LLM spend in this output dir (all runs of it together) could pass this many dollars: "
        "no new row starts, rows in flight finish, exit code 3; a re-run with a higher budget goes on."))
    max_tokens_total: int | None = Field(default=None, ge=1, description=(
        "The same cap in tokens (prompt + completion), for models without a price."))
    price: str | None = Field(default=None, description=(
        "IN,OUT or IN,OUT,BATCH_IN,BATCH_OUT: $ per 1M tokens, registered with litellm for --model (for a model its "
        "price map lacks, or to override it). Without batch prices, batch calls are priced as online ones."))
    batch: bool = Field(default=False, description=(
        "Send the single-turn calls (translator, judge, rephraser) through the provider's batch API (openai/, "
        "hosted_vllm/, litellm_proxy/): about half the price, hours of latency. The solver stays online."))
    batch_max_lines: int = Field(default=500, ge=1, le=50_000, description="Requests per batch at most (a batch "
                                 "closes when full or batch_window_s after its first request).")
    batch_window_s: float = Field(default=10.0, gt=0, description="Seconds a batch waits for more requests.")
    batch_poll_s: float = Field(default=10.0, gt=0, description="First wait before polling a batch; it grows x1.5 "
                                "per poll up to batch_poll_max_s.")
    batch_poll_max_s: float = Field(default=300.0, gt=0)

    @field_validator("price")
    @classmethod
    def _price_parses(cls, value: str | None) -> str | None:
        if value is not None:
            ModelPrice.parse(value)
        return value

    @model_validator(mode="after")
    def _first_poll_within_the_longest(self) -> SpendSettings:
        if self.batch_poll_s > self.batch_poll_max_s:
            raise ValueError(f"--spend.batch-poll-s {self.batch_poll_s:g} is longer than --spend.batch-poll-max-s "
                             f"{self.batch_poll_max_s:g}, the longest wait between polls; lower the first or raise the longest")
        return self

    def model_price(self) -> ModelPrice | None:
        return None if self.price is None else ModelPrice.parse(self.price)
