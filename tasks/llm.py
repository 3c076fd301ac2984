"""The one door to language models: every LLM call of tool-distill goes through `complete`.

- Any litellm model string works (`openai/gpt-4o-mini`, `hosted_vllm/Qwen/...`, `local/smollm2-135m`);
  API keys come from the provider's usual environment variables and never enter a row, a log or a
  cache key (`LLMSettings` has no key field on purpose).
- Retries: transient faults (429, 5xx, timeouts, dropped connections) are retried inside litellm with
  exponential backoff that honours `Retry-After`. Prefect task retries are NOT used for LLM errors:
  two retry layers multiply (3 x 3 = 9 calls per item) and turn one rate-limit into a storm.
- Concurrency: inside a flow run, each call holds a slot of a Prefect global concurrency limit
  (`settings.concurrency_limit`, created by the flow), so all workers of a deployment share one cap.
- Accounting: every reply carries its token counts and cost (litellm's cost map; 0 for local models).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import litellm
from pydantic import BaseModel, Field

from tasks.embedded_model import EMBEDDED_LITELLM_MODEL
from tasks.local_provider import PROVIDER as LOCAL_PROVIDER
from tasks.local_provider import register_local_provider
from tasks.scripted_provider import PROVIDER as SCRIPTED_PROVIDER
from tasks.scripted_provider import register_scripted_provider

litellm.suppress_debug_info = True

# Providers served inside this process (no HTTP, no cost): registered with litellm on first use.
_IN_PROCESS_PROVIDERS = {LOCAL_PROVIDER: register_local_provider, SCRIPTED_PROVIDER: register_scripted_provider}


class LLMSettings(BaseModel):
    """How to reach one model. Part of every LLM task's cache key, so it must hold no secret."""

    model: str = Field(default=EMBEDDED_LITELLM_MODEL, description="Any litellm model string.")
    api_base: str | None = Field(default=None, description="Endpoint for self-hosted servers (vLLM, a proxy).")
    temperature: float = 0.0
    max_tokens: int = 512
    timeout_s: float = 120.0
    num_retries: int = 3
    concurrency_limit: str | None = Field(
        default="llm", description="Prefect global concurrency limit held by each call inside a flow run."
    )

    @property
    def in_process(self) -> bool:
        """True for `local/...` (embedded transformers model) and `scripted/...` (test double)."""
        return self.model.split("/", 1)[0] in _IN_PROCESS_PROVIDERS


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


def supports_function_calling(settings: LLMSettings) -> bool:
    if settings.in_process:
        return False
    try:
        return bool(litellm.supports_function_calling(model=settings.model))
    except Exception:  # unknown model strings raise; assume the plain-text protocol then
        return False


@contextlib.contextmanager
def _concurrency_slot(settings: LLMSettings) -> Iterator[None]:
    from prefect.context import FlowRunContext

    # In-process models are serialised by their own lock; a server-side slot would only add polling
    # delay, and slots leaked by a killed run would stall the next one until their leases expire.
    if settings.concurrency_limit and not settings.in_process and FlowRunContext.get() is not None:
        from prefect.concurrency.sync import concurrency

        with concurrency(settings.concurrency_limit, occupy=1, strict=False):
            yield
    else:
        yield


def _cost(response: Any, settings: LLMSettings) -> float:
    if settings.in_process:
        return 0.0
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # models missing from the cost map (self-hosted) cost nothing we can know
        return 0.0


def complete(
    messages: list[dict[str, Any]],
    settings: LLMSettings,
    *,
    tools: list[dict[str, Any]] | None = None,
    stop: list[str] | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> LLMReply:
    """One chat completion. Raises `LLMCallError` when the model cannot answer after retries."""
    if settings.in_process:
        _IN_PROCESS_PROVIDERS[settings.model.split("/", 1)[0]]()
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "temperature": settings.temperature if temperature is None else temperature,
        "max_tokens": max_tokens or settings.max_tokens,
        "timeout": settings.timeout_s,
        "num_retries": settings.num_retries,
    }
    if settings.api_base:
        kwargs["api_base"] = settings.api_base
    if tools:
        kwargs["tools"] = tools
    if stop:
        kwargs["stop"] = stop
    started = time.perf_counter()
    try:
        with _concurrency_slot(settings):
            response = litellm.completion(**kwargs)
    except Exception as exc:  # litellm maps provider errors to its own types; all are final here
        raise LLMCallError(f"{settings.model}: {type(exc).__name__}: {str(exc)[:500]}") from exc
    latency = time.perf_counter() - started
    try:
        choice = response.choices[0]
        message = choice.message
        calls = [
            FunctionCall(id=c.id or f"call_{i}", name=c.function.name, arguments_json=c.function.arguments or "{}")
            for i, c in enumerate(message.tool_calls or [])
        ]
        content = message.content or ""
    except (AttributeError, IndexError, TypeError) as exc:
        raise LLMCallError(f"{settings.model}: malformed reply: {exc}") from exc
    if not content and not calls:
        raise LLMCallError(f"{settings.model}: empty reply (finish_reason={choice.finish_reason})")
    usage = getattr(response, "usage", None)
    return LLMReply(
        content=content,
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cost_usd=_cost(response, settings),
        latency_s=latency,
        model=settings.model,
    )


def assistant_message(reply: LLMReply) -> dict[str, Any]:
    """The reply as a chat message to append to the conversation (with its tool calls, if any)."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in reply.tool_calls
        ]
    return message


def parse_arguments(call: FunctionCall) -> dict[str, Any]:
    """Function-call arguments as a dict; malformed JSON is a tool error the model must see."""
    value = json.loads(call.arguments_json or "{}")
    if not isinstance(value, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value
