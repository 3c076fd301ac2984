"""The records that cross the LLM client's boundary: how to reach a model, and what a call returned."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from tasks.llm.embedded_model import EMBEDDED_LITELLM_MODEL

# Providers served inside this process (no HTTP, no cost): the embedded model and the test double.
LOCAL_PROVIDER = "local"
SCRIPTED_PROVIDER = "scripted"
IN_PROCESS_PROVIDERS = (LOCAL_PROVIDER, SCRIPTED_PROVIDER)


class LLMSettings(BaseModel):
    """How to reach one model. Part of every LLM task's cache key, so it must hold no secret."""

    model: str = Field(default=EMBEDDED_LITELLM_MODEL, description="Any litellm model string.")
    api_base: str | None = Field(default=None, description="Endpoint for self-hosted servers (vLLM, a proxy).")
    temperature: float = 0.0
    max_tokens: int = 512
    timeout_s: float = 120.0
    num_retries: int = 3
    concurrency_limit: str | None = Field(
        default="llm", description="Prefix of the Prefect limits that cap this model across runs, if an operator "
                                   "created them: `<prefix>-<model>` (in flight) and `<prefix>-<model>-rpm`.",
    )

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
