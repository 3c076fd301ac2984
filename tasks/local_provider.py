"""A litellm custom provider that serves Hugging Face models in-process: `local/<name-or-path>`.

It lets the embedded default model sit behind exactly the same `litellm.completion` call as any
hosted model, so no stage knows which backend it talks to. Generation is greedy unless a
temperature is given, honours `max_tokens` and `stop`, and reports token usage.

One model instance per process is shared by all threads; a lock serialises generation because
two concurrent `generate` calls on 2 CPU cores only slow each other down.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import ModelResponse

from tasks.embedded_model import resolve_local_model

PROVIDER = "local"
_generate_lock = threading.Lock()
_load_lock = threading.Lock()


def load_local_model(model_dir: Path) -> tuple[Any, Any]:
    """Load (model, tokenizer) once per process, even when many solver threads ask at the same moment."""
    with _load_lock:
        return _load_local_model(model_dir)


@lru_cache(maxsize=2)
def _load_local_model(model_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def _truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` before the first stop sequence, as the OpenAI API does."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generate_chat(
    model_dir: Path,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int,
    stop: list[str],
    temperature: float = 0.0,
) -> tuple[str, int, int, str]:
    """Generate one reply. Returns (text, prompt_tokens, completion_tokens, finish_reason)."""
    import torch

    model, tokenizer = load_local_model(model_dir)
    prompt_ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with _generate_lock, torch.inference_mode():
        output = model.generate(
            prompt_ids,
            attention_mask=torch.ones_like(prompt_ids),
            max_new_tokens=max_new_tokens,
            stop_strings=stop or None,
            tokenizer=tokenizer,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            **sampling,
        )
    new_ids = output[0, prompt_ids.shape[1] :]
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    text, stopped = _truncate_at_stop(text, stop)
    hit_eos = len(new_ids) < max_new_tokens
    finish = "stop" if stopped or hit_eos else "length"
    return text, int(prompt_ids.shape[1]), int(len(new_ids)), finish


class LocalTransformersLLM(CustomLLM):
    """litellm handler for `local/<name-or-path>` models."""

    def completion(self, model: str, messages: list, optional_params: dict, model_response: ModelResponse,
                   *args: Any, **kwargs: Any) -> ModelResponse:
        name = model.split("/", 1)[1] if model.startswith(f"{PROVIDER}/") else model
        try:
            model_dir = resolve_local_model(name)
        except (ValueError, RuntimeError) as exc:
            raise CustomLLMError(status_code=400, message=str(exc)) from exc
        if optional_params.get("tools"):
            raise CustomLLMError(status_code=400, message=f"local/{name} has no function calling; use the code tool protocol")
        stop = optional_params.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        started = time.perf_counter()
        text, n_prompt, n_completion, finish = generate_chat(
            model_dir,
            [{"role": m["role"], "content": m["content"] or ""} for m in messages],
            max_new_tokens=int(optional_params.get("max_tokens") or 512),
            stop=stop,
            temperature=float(optional_params.get("temperature") or 0.0),
        )
        model_response.choices[0].message.content = text  # type: ignore[union-attr]
        model_response.choices[0].finish_reason = finish
        model_response.model = f"{PROVIDER}/{name}"
        model_response.usage = litellm.Usage(  # type: ignore[attr-defined]
            prompt_tokens=n_prompt, completion_tokens=n_completion, total_tokens=n_prompt + n_completion
        )
        model_response._response_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
        return model_response


_registered = threading.Lock()


def register_local_provider() -> None:
    """Make `local/...` model strings resolvable by litellm (idempotent)."""
    with _registered:
        if any(entry.get("provider") == PROVIDER for entry in litellm.custom_provider_map):
            return
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": PROVIDER, "custom_handler": LocalTransformersLLM()},
        ]
        # litellm's custom_llm_setup() adds the provider to its lists on the next call.
