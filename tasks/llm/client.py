"""The one door to language models: every LLM call of tool-distill goes through `complete`.

- Any litellm model string works (`openai/gpt-4o-mini`, `hosted_vllm/Qwen/...`, `local/smollm2-135m`);
  API keys come from the provider's usual environment variables and never enter a row, a log or a
  cache key (`LLMSettings` has no key field on purpose; error texts are scrubbed of key values).
- Retries live in ONE layer, litellm's Router: it retries only transient faults (429, 408, 409,
  5xx, timeouts, dropped connections), waits what `Retry-After` says (else exponential backoff with
  jitter) and sends `settings.num_retries` retries at most, for every provider. Plain
  `litellm.completion(num_retries=...)` is not used: in litellm 1.102 it hands the count to the
  OpenAI SDK (which retries with backoff, `openai/` only) and then retries again through
  `tenacity` with no wait and for any API error, 400s included; `tenacity` is not even installed,
  so against the mock server every `hosted_vllm/` fault ended at once as "tenacity import failed". Prefect task retries never see LLM errors either: a call that still
  fails raises `LLMCallError`, which every stage turns into a failed row with the reason.
- Concurrency and requests/min: each call holds a slot of the gate set by `limits.call_limits`
  (the flow sets it per run and model; see tasks/llm/limits.py for why not a Prefect limit per call);
  for `openai/` and `hosted_vllm/` each HTTP request holds it while the endpoint has it (tasks/llm/http.py).
- Accounting: every reply carries its token counts and cost (litellm's cost map; 0 for local models).
- HTTP providers are called through the Router's async API on one event loop per process, behind
  anyio's blocking portal (tasks/llm/event_loop.py): the calling thread blocks, the loop shares
  connections; for `openai/` and `hosted_vllm/` litellm's request building runs on the loop thread too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import time
from typing import Any

import litellm

from tasks.llm.event_loop import run_blocking
from tasks.llm.http import gated_requests
from tasks.llm.limits import gate_for
from tasks.llm.batch import BatchCollector, active_collector
from tasks.llm.records import IN_PROCESS_PROVIDERS, FunctionCall, LLMCallError, LLMReply, LLMSettings
from tasks.llm.spend import active_ledger, current_stage, note_reply, request_key, token_prices, worst_case
from tasks.llm.local_provider import register_local_provider
from tasks.llm.scripted_provider import register_scripted_provider

litellm.suppress_debug_info = True
log = logging.getLogger(__name__)

# Providers served inside this process (no HTTP, no cost): registered with litellm on first use.
_REGISTER_PROVIDER = dict(zip(IN_PROCESS_PROVIDERS, (register_local_provider, register_scripted_provider), strict=True))


def supports_function_calling(settings: LLMSettings) -> bool:
    if settings.in_process:
        return False
    try:
        return bool(litellm.supports_function_calling(model=settings.model))
    except Exception:  # unknown model strings raise; assume the plain-text protocol then
        return False


def _custom_provider(settings: LLMSettings) -> bool:
    """In-process and test providers (litellm custom handlers): nothing to retry, no network."""
    provider = settings.model.split("/", 1)[0]
    return settings.in_process or any(entry.get("provider") == provider for entry in litellm.custom_provider_map)


def _accepts_seed(settings: LLMSettings) -> bool:
    return _custom_provider(settings) or _provider_accepts_seed(settings.model)


@functools.lru_cache(maxsize=64)
def _placement(model: str) -> tuple[str, str] | None:
    """(model name, provider) as litellm routes `model`, or None for a model string it cannot place."""
    try:
        name, provider, *_ = litellm.get_llm_provider(model)
    except Exception:  # litellm raises several kinds for a string it cannot place
        return None
    return name, provider


@functools.lru_cache(maxsize=64)
def _provider_accepts_seed(model: str) -> bool:
    placement = _placement(model)
    if placement is None:  # sending an unknown parameter could fail the call
        return False
    name, provider = placement
    try:
        return "seed" in (litellm.get_supported_openai_params(model=name, custom_llm_provider=provider) or [])
    except Exception:  # no parameter list for this provider: the same caution
        return False


# Providers whose `acompletion` only builds the request in litellm's executor job and sends it with an async
# client: that job can run on the event loop thread (tasks/llm/event_loop.py). Others may make the whole call in
# it (no async client) or fetch credentials with blocking I/O (Azure AD, Vertex, Bedrock), so they keep the pool.
_NON_BLOCKING_REQUEST_BUILDERS = frozenset({"openai", "hosted_vllm"})


def _builds_requests_without_io(model: str) -> bool:
    placement = _placement(model)  # a model string litellm cannot place keeps the pool: always safe
    return placement is not None and placement[1] in _NON_BLOCKING_REQUEST_BUILDERS


@functools.lru_cache(maxsize=16)
def _router(model: str, api_base: str | None, timeout_s: float, num_retries: int) -> litellm.Router:
    """One single-deployment Router per endpoint: litellm's retry policy without its load balancing.

    Cooldowns are off: with one deployment they would turn a burst of 429s into minutes of
    "no deployments available" for every thread, instead of waiting what the server asked for.
    """
    _price_at_zero_if_unknown(model)
    params: dict[str, Any] = {"model": model, "api_base": api_base} if api_base else {"model": model}
    router = litellm.Router(model_list=[{"model_name": model, "litellm_params": params}], num_retries=num_retries,
                            timeout=timeout_s, disable_cooldowns=True)
    _detach_deployment_tracking(router)
    return router


def _price_at_zero_if_unknown(model: str) -> None:
    """Give litellm a zero price for a model its cost map lacks (a self-hosted vLLM, a model newer than the map).

    Such a model's calls are recorded at cost 0 anyway (`_cost`). Without a price, litellm's own
    logging of every call looks for one and fails, raising and catching on the way, a large part
    of litellm's CPU per call (docs/llm.md, "Tokens and cost").
    """
    try:
        litellm.get_model_info(model)
        return
    except Exception:  # litellm raises a bare Exception for a model it has no entry for
        pass
    placement = _placement(model)
    if placement is None:  # the call will fail with a clearer error
        return
    litellm.register_model({model: {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                                    "litellm_provider": placement[1], "mode": "chat"}})
    log.warning("litellm has no price for %s: its calls are recorded at cost 0 (register one with "
                "litellm.register_model to have it counted)", model)


def _detach_deployment_tracking(router: litellm.Router) -> None:
    """Take the Router's per-deployment usage tracking out of litellm's global callback lists.

    A Router registers it for every litellm call in the process (each router runs on every
    other router's calls too); it feeds load balancing and cooldowns, which one deployment with
    cooldowns off never uses, and it deep-copies the deployment on every call (its cost:
    docs/llm.md, "Throughput").
    """
    for callbacks, callback in ((litellm._async_success_callback, router.deployment_callback_on_success),
                                (litellm.success_callback, router.sync_deployment_callback_on_success),
                                (litellm._async_failure_callback, router.async_deployment_callback_on_failure),
                                (litellm.failure_callback, router.deployment_callback_on_failure)):
        with contextlib.suppress(ValueError):  # a litellm version that does not register it
            callbacks.remove(callback)


_SECRET_ENV = re.compile(r"(API_KEY|APIKEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)


def redact_secrets(text: str) -> str:
    """`text` with the value of every key-like environment variable replaced by `***`.

    Error texts end up in Parquet rows and logs; some providers echo the key (or part of it) back.
    """
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_ENV.search(name) and value in text:
            text = text.replace(value, "***")
    return text


def _cost(response: Any, settings: LLMSettings) -> float:
    if settings.in_process:
        return 0.0
    known = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if known is not None:  # litellm priced it already while logging the call
        return float(known)
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
    seed: int | None = None,
) -> LLMReply:
    """One chat completion. Raises `LLMCallError` when the model cannot answer after retries, and
    `BudgetReached` (tasks/llm/spend.py) when the call could pass the run's budget.

    `seed` asks for a reproducible sample where the provider takes one (OpenAI, vLLM, the local
    model); it is left out for providers that would reject it (Anthropic, Gemini). Inside
    `spend_control` the call's worst case is reserved before it is sent and its cost recorded
    after; inside `batch_calls` it goes through the provider's batch API (tasks/llm/batch.py).
    """
    if settings.in_process:
        _REGISTER_PROVIDER[settings.model.split("/", 1)[0]]()
    request: dict[str, Any] = {
        "messages": messages,
        "temperature": settings.temperature if temperature is None else temperature,
        "max_tokens": max_tokens or settings.max_tokens,
    }
    if tools:
        request["tools"] = tools
    if stop:
        request["stop"] = stop
    if seed is not None and _accepts_seed(settings):
        request["seed"] = seed
    ledger = active_ledger()
    if ledger is not None and ledger.has_kept_replies:  # a row the budget stopped earlier paid for this reply already
        kept = ledger.kept_reply(request_key(settings, request))
        if kept is not None:
            note_reply(settings, request, kept)
            return kept
    batcher = active_collector(settings)
    reservation = None
    if ledger is not None and ledger.capped:
        reservation = ledger.reserve(worst_case(settings, request, batch=batcher is not None))
    try:
        response, latency = _send(settings, request) if batcher is None else _send_in_batch(batcher, request)
        reply = _reply(response, settings, latency, batch=batcher is not None)
    except BaseException:
        if ledger is not None:
            ledger.release(reservation)
        raise
    if ledger is not None:  # recorded before anyone sees the reply: an empty one was paid for too
        online_cost = token_prices(settings.model).cost(reply.prompt_tokens, reply.completion_tokens) if batcher \
            else reply.cost_usd
        ledger.settle(reservation, reply, stage=current_stage(), batch=batcher is not None, online_cost_usd=online_cost)
        note_reply(settings, request, reply)
    return _checked(reply, response)


def _send_in_batch(batcher: BatchCollector, request: dict[str, Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    response = batcher.complete(request)
    return response, time.perf_counter() - started


def _send(settings: LLMSettings, request: dict[str, Any]) -> tuple[Any, float]:
    """The provider's response to one online request, and how long it held the endpoint: from when its first
    request got a slot of the gate (not counting its wait for one) to the reply."""
    gate = gate_for(settings)
    first_slot_at: list[float] = []
    started = time.perf_counter()
    try:
        if _custom_provider(settings):
            with gate.slot() if gate else contextlib.nullcontext():
                first_slot_at.append(time.perf_counter())
                response = litellm.completion(model=settings.model, api_base=settings.api_base,
                                              timeout=settings.timeout_s, **request)
        else:
            router = _router(settings.model, settings.api_base, settings.timeout_s, settings.num_retries)
            placement = _placement(settings.model)
            call = functools.partial(router.acompletion, model=settings.model, **request)
            response = run_blocking(gated_requests(gate, placement and placement[1], call, first_slot_at),
                                    inline_executor_jobs=_builds_requests_without_io(settings.model))
    except Exception as exc:  # the Router has retried what was transient; what is left is final
        detail = " ".join(str(exc).split())[:500]  # one line: it lands in a Parquet cell and a log line
        raise LLMCallError(redact_secrets(f"{settings.model}: {type(exc).__name__}: {detail}")) from exc
    return response, time.perf_counter() - (first_slot_at[0] if first_slot_at else started)


def _reply(response: Any, settings: LLMSettings, latency: float, *, batch: bool = False) -> LLMReply:
    """The provider's response as our record (possibly empty: `_checked` refuses that after it is paid for), priced
    by litellm, or at the model's batch price for a batch line."""
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
    usage = getattr(response, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
    completion_tokens = getattr(usage, "completion_tokens", 0) or 0
    return LLMReply(
        content=content,
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=token_prices(settings.model).cost(prompt_tokens, completion_tokens, batch=True) if batch
        else _cost(response, settings),
        latency_s=latency,
        model=settings.model,
    )


def _checked(reply: LLMReply, response: Any) -> LLMReply:
    if not reply.content and not reply.tool_calls:
        # Deterministic at the temperatures we use, so not retried: the row records why it is empty.
        if reply.finish_reason == "content_filter":
            raise LLMCallError(f"{reply.model}: refused by the provider's content filter (finish_reason=content_filter)")
        refusal = getattr(response.choices[0].message, "refusal", None)
        raise LLMCallError(f"{reply.model}: empty reply (finish_reason={reply.finish_reason}"
                           f"{f', refusal={refusal!r}' if refusal else ''})")
    return reply


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
