"""Generation backends for the harness: transformers (always), vLLM (CUDA, when installed), litellm.

All three take the same chat conversations and `GenerationParams` and return, for each
conversation, `n` `Completion`s, so the harness grades every backend's output the same way.

- transformers: the model's own chat template, batches with LEFT padding (decoder-only models
  continue from the right edge, so padding must sit on the left), prompts sorted by length so a
  batch wastes little padding. A LoRA adapter is loaded with `PeftModel.from_pretrained` and merged
  into a fresh copy of the base (same outputs, no adapter overhead per token). With
  `load_in_4bit` the base is the 4-bit NF4 model QLoRA trained against, and the adapter stays
  unmerged: folding it into 4-bit weights would re-quantize them and change the model.
- vLLM: used instead of transformers on CUDA when `vllm` is importable (optional extra).
- litellm: any model string (`openai/...`, ...), `n` calls per problem, through `litellm.completion`
  or a completion function the caller hands in (the pipeline's own client, with its in-process
  `local/` models): eval itself knows nothing of the pipeline.

Models are named by path or id: "embedded" is resolved to its directory by the caller (the
train-eval flow, `tool-distill`), so eval reads no state of the pipeline.

Sampling is seeded: greedy output is deterministic; sampled output repeats for the same seed,
batch size and device.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, model_validator

Conversation = list[dict[str, str]]
ProgressCallback = Callable[[int], None]
BackendName = Literal["auto", "transformers", "vllm", "litellm"]


class GenerationParams(BaseModel):
    """How to sample: greedy pass@1 by default; `n` > 1 with temperature > 0 for pass@k / maj@k."""

    max_new_tokens: int = Field(1024, gt=0)
    n: int = Field(1, ge=1, description="samples per problem")
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = 0
    batch_size: int = Field(8, ge=1, description="prompts per generate call (transformers)")
    concurrency: int = Field(4, ge=1, description="parallel requests (litellm)")
    cpu_threads: int | None = Field(None, ge=1, description="torch CPU threads (transformers on CPU); "
                                    "1 is often much faster on a machine shared with other jobs")

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> GenerationParams:
        if self.n > 1 and self.temperature == 0.0:
            raise ValueError(f"n={self.n} samples with temperature 0 would be {self.n} identical greedy "
                             "answers; set temperature > 0 (e.g. 0.6) for pass@k / maj@k")
        return self


ChatCompletionFn = Callable[..., Any]
"""`litellm.completion`'s signature and reply: (model=, messages=, max_tokens=, temperature=, top_p=, seed=)
-> a reply with `.choices[0].message.content`, `.choices[0].finish_reason` and `.usage`."""


class ModelUnderTest(BaseModel):
    """One model to evaluate: a base (HF dir or litellm string), optionally + a LoRA adapter."""

    model: str = Field(description="a local Hugging Face model directory, or a litellm model string")
    adapter: Path | None = Field(None, description="LoRA adapter directory (from training/) applied on the base")
    load_in_4bit: bool = Field(False, description="load the base as 4-bit NF4, as QLoRA trained it "
                               "(set it for base and tuned alike so they differ only in the adapter)")
    label: str = Field("base", pattern=r"^[A-Za-z0-9_.-]+$", description='name in reports, e.g. "base" or "tuned"')
    backend: BackendName = "auto"


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of sequence) or "length" (hit max_new_tokens)
    latency_s: float  # wall time of the call that produced it (a whole batch for batched backends)
    batch_size: int  # prompts in that call: latency_s / batch_size is the amortised cost


class GenerationBackend(Protocol):
    description: str  # model (+ adapter) and backend, for the per-problem lineage columns

    def generate(self, conversations: list[Conversation], params: GenerationParams,
                 progress: ProgressCallback | None = None) -> list[list[Completion]]: ...


EMBEDDED_HINT = ('"embedded" is resolved by the pipeline, not by eval: run `tool-distill train-eval`, or pass '
                 "the model directory (python -c 'from tasks.llm.embedded_model import embedded_model_dir; "
                 "print(embedded_model_dir())')")


def resolve_model_dir(model: str) -> Path | None:
    """The local HF directory a model string names, or None for API models."""
    if model == "embedded":
        raise ValueError(f"--model embedded: {EMBEDDED_HINT}")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"--model {model}: directory has no config.json; pass a Hugging Face model "
                             "directory or a litellm model string such as openai/gpt-4o-mini")
        return path
    return None


def _vllm_usable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def open_backend(spec: ModelUnderTest, completion: ChatCompletionFn | None = None) -> GenerationBackend:
    """Pick and load the backend for one model under test; `completion` serves litellm model strings."""
    model_dir = resolve_model_dir(spec.model)
    backend = spec.backend
    if backend == "auto":
        backend = "litellm" if model_dir is None else ("vllm" if _vllm_usable() else "transformers")
    if spec.adapter is not None and not (Path(spec.adapter) / "adapter_config.json").exists():
        raise ValueError(f"--adapter {spec.adapter}: no adapter_config.json there; pass the directory "
                         "training/ saved the LoRA adapter to")
    if backend == "litellm":
        if spec.adapter is not None:
            raise ValueError(f"{spec.model}: a LoRA adapter needs a local base model directory, "
                             "not a litellm model string")
        return LiteLLMBackend(spec.model, completion)
    if model_dir is None:
        raise ValueError(f"backend {backend} needs a local model directory, got {spec.model!r}")
    if backend == "vllm":
        if not _vllm_usable():
            raise RuntimeError("backend vllm needs the vllm package and a CUDA GPU; use --backend transformers")
        return VLLMBackend(model_dir, spec.adapter, load_in_4bit=spec.load_in_4bit)
    return TransformersBackend(model_dir, spec.adapter, load_in_4bit=spec.load_in_4bit)


# ---------------------------------------------------------------- transformers


class TransformersBackend:
    """Batched `model.generate` with left padding, on CUDA when available, else CPU."""

    def __init__(self, model_dir: Path, adapter_dir: Path | None = None, device: str | None = None,
                 load_in_4bit: bool = False) -> None:
        import torch
        from transformers import AutoTokenizer

        from training.quantization import load_causal_lm

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = load_causal_lm(model_dir, load_in_4bit=load_in_4bit, dtype=dtype, device=self.device)
        if adapter_dir is not None:
            from peft import PeftModel

            if load_in_4bit:
                # Keep the adapter in the dtype it was trained and saved in (TRL trains QLoRA adapters in
                # bf16); peft would otherwise upcast it to fp32 and evaluate a slightly different model.
                model = PeftModel.from_pretrained(model, str(adapter_dir), autocast_adapter_dtype=False)
            else:
                model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        self.model = (model if load_in_4bit else model.to(self.device)).eval()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids = eos_ids | {self.tokenizer.eos_token_id}
        self.description = (f"{model_dir}" + (" (4-bit NF4)" if load_in_4bit else "")
                            + (f" + {adapter_dir}" if adapter_dir else ""))

    def render(self, conversation: Conversation) -> str:
        """The prompt text: the chat template, or the bare user text for models without one."""
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(message["content"] for message in conversation) + "\n"

    def _sampling_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        if params.temperature == 0.0:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        # top_k=0 switches off any top-k a model's generation_config sets, so only top_p applies.
        return {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": 0}

    def _completion_length(self, ids: list[int]) -> tuple[int, str]:
        for index, token in enumerate(ids):
            if token in self.eos_ids:
                return index + 1, "stop"
        return len(ids), "length"

    def generate(self, conversations: list[Conversation], params: GenerationParams,
                 progress: ProgressCallback | None = None) -> list[list[Completion]]:
        import torch
        from transformers import set_seed

        set_seed(params.seed)
        if self.device == "cpu" and params.cpu_threads:
            torch.set_num_threads(params.cpu_threads)
        texts = [self.render(c) for c in conversations]
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # similar lengths share a batch
        results: list[list[Completion]] = [[] for _ in texts]
        for start in range(0, len(order), params.batch_size):
            batch = order[start : start + params.batch_size]
            encoded = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
            started = time.perf_counter()
            with torch.inference_mode():
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=params.max_new_tokens,
                    num_return_sequences=params.n,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **self._sampling_kwargs(params),
                )
            latency = time.perf_counter() - started
            new_tokens = output[:, encoded["input_ids"].shape[1] :].tolist()
            for row, ids in enumerate(new_tokens):  # rows are grouped per prompt: n consecutive rows each
                index = batch[row // params.n]
                length, finish = self._completion_length(ids)
                text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
                results[index].append(Completion(text, lengths[index], length, finish, latency, len(batch)))
            if progress:
                progress(len(batch))
        return results


# ---------------------------------------------------------------- vLLM (CUDA only; not exercised in CPU CI)


class VLLMBackend:
    """vLLM offline engine with the model's chat template; a LoRA adapter is served via LoRARequest."""

    def __init__(self, model_dir: Path, adapter_dir: Path | None = None, load_in_4bit: bool = False) -> None:
        from vllm import LLM

        self.adapter_dir = adapter_dir
        quantization = {"quantization": "bitsandbytes"} if load_in_4bit else {}  # vLLM's NF4 on-the-fly path
        self.llm = LLM(model=str(model_dir), enable_lora=adapter_dir is not None, max_lora_rank=64, **quantization)
        self.description = (f"{model_dir}" + (" (4-bit NF4)" if load_in_4bit else "")
                            + (f" + {adapter_dir}" if adapter_dir else "") + " (vllm)")

    def generate(self, conversations: list[Conversation], params: GenerationParams,
                 progress: ProgressCallback | None = None) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        sampling = SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                  max_tokens=params.max_new_tokens, seed=params.seed)
        lora = LoRARequest("adapter", 1, str(self.adapter_dir)) if self.adapter_dir else None
        started = time.perf_counter()
        outputs = self.llm.chat(conversations, sampling, lora_request=lora, use_tqdm=False)
        latency = time.perf_counter() - started
        if progress:
            progress(len(conversations))
        return [
            [Completion(o.text, len(out.prompt_token_ids or []), len(o.token_ids),
                        "length" if o.finish_reason == "length" else "stop", latency, len(conversations))
             for o in out.outputs]
            for out in outputs
        ]


# ---------------------------------------------------------------- litellm


def _litellm_completion(**request: Any) -> Any:
    import litellm

    return litellm.completion(**request, num_retries=3, drop_params=True)


class LiteLLMBackend:
    """Any litellm model string, through `completion` (litellm's own call unless the caller hands one in)."""

    def __init__(self, model: str, completion: ChatCompletionFn | None = None) -> None:
        if model.startswith("local/") and completion is None:
            raise ValueError(f"{model}: local/ models run inside the pipeline's LLM client; evaluate it through "
                             "`tool-distill`, which hands eval its completion function, or pass the model directory")
        self.model = model
        self.complete = completion or _litellm_completion
        self.description = model

    def _one(self, conversation: Conversation, params: GenerationParams, sample: int) -> Completion:
        started = time.perf_counter()
        response = self.complete(
            model=self.model, messages=conversation, max_tokens=params.max_new_tokens,
            temperature=params.temperature, top_p=params.top_p, seed=params.seed + sample,
        )
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            latency_s=time.perf_counter() - started,
            batch_size=1,
        )

    def generate(self, conversations: list[Conversation], params: GenerationParams,
                 progress: ProgressCallback | None = None) -> list[list[Completion]]:
        def solve(conversation: Conversation) -> list[Completion]:
            completions = [self._one(conversation, params, sample) for sample in range(params.n)]
            if progress:
                progress(1)
            return completions

        with ThreadPoolExecutor(max_workers=params.concurrency) as pool:
            return list(pool.map(solve, conversations))
