"""A litellm custom provider that serves Hugging Face models in-process: `local/<name-or-path>`.

It lets the embedded default model sit behind exactly the same `litellm.completion` call as any
hosted model, so no stage knows which backend it talks to. Generation is greedy unless a
temperature is given, honours `max_tokens` and `stop`, and reports token usage.

Sampling is a function of the request alone: each row draws its own Gumbel noise from a generator
seeded by its prompt and its `seed` (`RowSeededSampling`), so a sampled reply does not depend on
which other requests happened to share its batch. Before, the batch's rows drew from torch's one
global generator, and the same run could keep three traces or none by the timing of its batches.

One model instance per process is shared by all threads. Concurrent requests are packed into one
left-padded `generate` call by a `DynamicBatcher` (tasks/llm/local_batching.py): on a CPU, decoding
eight sequences per forward pass costs little more than decoding one. Greedy replies can differ
from unbatched ones in rare near-ties (padding changes float rounding); both are valid replies, and
the per-task caches keep whatever a run produced.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import ModelResponse

from tasks.llm.embedded_model import resolve_local_model
from tasks.llm.local_batching import BatchItem, DynamicBatcher
from tasks.llm.records import LOCAL_PROVIDER

PROVIDER = LOCAL_PROVIDER
MAX_BATCH_ENV = "TOOL_DISTILL_LOCAL_MAX_BATCH"
DEFAULT_MAX_BATCH = 8
_load_lock = threading.Lock()


@dataclass(frozen=True)
class LocalRequest:
    prompt_ids: list[int]
    max_new_tokens: int
    seed: int = 0  # only read when sampling


def row_seed(prompt_ids: list[int], seed: int) -> int:
    """The generator seed of one sampled row: the same request always draws the same noise."""
    digest = hashlib.sha256(f"{seed}:{','.join(map(str, prompt_ids))}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class RowSeededSampling:
    """A logits processor that turns greedy decoding into sampling at `temperature`, row by row.

    Gumbel-max: the argmax of `logits / T + Gumbel noise` is a draw from `softmax(logits / T)`.
    Each row's noise comes from its own generator, so a row samples the same tokens alone or in
    any batch (up to the float rounding that batching changes, as for greedy replies).
    """

    def __init__(self, temperature: float, seeds: list[int]) -> None:
        import torch

        self.temperature = temperature
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        uniform = torch.stack([torch.rand(scores.shape[-1], generator=g, dtype=torch.float64)
                               for g in self.generators]).clamp_(min=1e-300)
        gumbel = -torch.log(-torch.log(uniform)).to(scores.dtype)
        return scores / self.temperature + gumbel


@dataclass(frozen=True)
class LocalReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    batch_size: int


class LocalModel:
    """A loaded model + tokenizer and the batcher that feeds it."""

    def __init__(self, model_dir: Path, max_batch: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) \
            | {self.tokenizer.eos_token_id}
        self.batcher: DynamicBatcher[LocalReply] = DynamicBatcher(self._generate_batch, max_batch)

    def generate(self, messages: list[dict[str, str]], *, max_new_tokens: int, stop: list[str],
                 temperature: float = 0.0, seed: int = 0) -> LocalReply:
        """One reply; blocks while it waits for (or leads) a batch. `seed` picks the sample when `temperature` > 0."""
        prompt_ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                        return_dict=True)["input_ids"]
        return self.batcher.submit((tuple(stop), temperature), LocalRequest(list(prompt_ids), max_new_tokens, seed))

    def _generate_batch(self, items: list[BatchItem[LocalReply]]) -> list[LocalReply]:
        import torch
        from transformers import LogitsProcessorList

        requests: list[LocalRequest] = [item.payload for item in items]  # type: ignore[misc]
        stop, temperature = items[0].batch_key  # type: ignore[misc]
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.tensor([[self.pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests])
        attention_mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests])
        # Greedy decoding throughout; when sampling, the processor adds each row's own noise first.
        sampling = [RowSeededSampling(temperature, [row_seed(r.prompt_ids, r.seed) for r in requests])] \
            if temperature > 0 else []
        with torch.inference_mode():
            output = self.model.generate(
                input_ids, attention_mask=attention_mask, max_new_tokens=max(r.max_new_tokens for r in requests),
                stop_strings=list(stop) or None, tokenizer=self.tokenizer, pad_token_id=self.pad_id,
                do_sample=False, logits_processor=LogitsProcessorList(sampling))
        return [self._reply(row[width:].tolist()[: r.max_new_tokens], r, list(stop), len(requests))
                for row, r in zip(output, requests)]

    def _reply(self, new_ids: list[int], request: LocalRequest, stop: list[str], batch_size: int) -> LocalReply:
        # A row that finished early is padded to the batch's length. It ends at its first end-of-sequence
        # token (kept in the count, as a server counts it) or, when a stop string ended it, before its
        # first pad. Where the pad token is the end-of-sequence token (SmolLM2), only the text tells the
        # two apart: a row whose text already holds a stop string was ended by it.
        length, hit_eos = len(new_ids), False
        for index, token in enumerate(new_ids):
            if token in self.eos_ids or token == self.pad_id:
                padding = token not in self.eos_ids or (
                    token == self.pad_id and _truncate_at_stop(self.tokenizer.decode(new_ids[:index]), stop)[1])
                hit_eos = not padding
                length = index if padding else index + 1
                break
        text = self.tokenizer.decode(new_ids[:length], skip_special_tokens=True)
        text, stopped = _truncate_at_stop(text, stop)
        finish = "stop" if stopped or hit_eos else "length"
        return LocalReply(text, len(request.prompt_ids), length, finish, batch_size)


def load_local_model(model_dir: Path) -> LocalModel:
    """Load a model once per process, even when many solver threads ask at the same moment."""
    with _load_lock:
        return _load_local_model(model_dir, int(os.environ.get(MAX_BATCH_ENV, DEFAULT_MAX_BATCH)))


@lru_cache(maxsize=2)
def _load_local_model(model_dir: Path, max_batch: int) -> LocalModel:
    return LocalModel(model_dir, max_batch)


def _truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` before the first stop sequence, as the OpenAI API does."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


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
        reply = load_local_model(model_dir).generate(
            [{"role": m["role"], "content": m["content"] or ""} for m in messages],
            max_new_tokens=int(optional_params.get("max_tokens") or 512),
            stop=stop,
            temperature=float(optional_params.get("temperature") or 0.0),
            seed=int(optional_params.get("seed") or 0),
        )
        model_response.choices[0].message.content = reply.text  # type: ignore[union-attr]
        model_response.choices[0].finish_reason = reply.finish_reason
        model_response.model = f"{PROVIDER}/{name}"
        model_response.usage = litellm.Usage(  # type: ignore[attr-defined]
            prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
            total_tokens=reply.prompt_tokens + reply.completion_tokens,
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
