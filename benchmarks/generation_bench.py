"""Generation throughput of the harness's batched transformers backend vs a naive one-by-one loop.

    python -m benchmarks.generation_bench [--quick] [--prompts N] [--max-new-tokens T] [--batch-size B]

Both run greedy on the same GSM8K prompts (the harness's default prompt and the model's chat
template), in the same process, with the same model object:

- naive: `model.generate` on one prompt at a time, the loop people write first;
- batched: `TransformersBackend.generate` (left padding, length-sorted batches of B).

Tokens/s counts only useful tokens (up to and including each completion's end-of-sequence), so
the padding a batch keeps generating after a short answer finishes earns nothing. The share of
prompts whose batched completion equals the one-by-one completion checks that left padding does
not change greedy output. Runs on CUDA when available, else CPU (with --cpu-threads, default 1:
on a machine shared with other jobs, more threads thrash). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from eval.benchmarks import load_benchmark, prompt_for
from eval.generation import GenerationParams, TransformersBackend, resolve_model_dir


def model_dir(model: str):
    """The pipeline's "embedded" model by its directory (eval itself takes paths only)."""
    if model != "embedded":
        return resolve_model_dir(model)
    from tasks.llm.embedded_model import embedded_model_dir

    return embedded_model_dir()


def naive_generate(backend: TransformersBackend, conversations: list[list[dict[str, str]]],
                   max_new_tokens: int) -> tuple[float, list[str], int]:
    import torch

    texts, tokens = [], 0
    started = time.perf_counter()
    for conversation in conversations:
        encoded = backend.tokenizer(backend.render(conversation), return_tensors="pt",
                                    add_special_tokens=False).to(backend.device)
        with torch.inference_mode():
            output = backend.model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                            temperature=None, top_p=None, top_k=None,
                                            pad_token_id=backend.tokenizer.pad_token_id)
        ids = output[0, encoded["input_ids"].shape[1]:].tolist()
        length, _ = backend._completion_length(ids)
        tokens += length
        texts.append(backend.tokenizer.decode(ids[:length], skip_special_tokens=True))
    return time.perf_counter() - started, texts, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 prompts, 16 new tokens")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--load-in-4bit", action="store_true", help="the base as 4-bit NF4 (what QLoRA evaluates)")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.max_new_tokens, args.batch_size = 4, 16, 4

    import torch

    backend = TransformersBackend(model_dir(args.model), load_in_4bit=args.load_in_4bit)
    if backend.device == "cpu":
        torch.set_num_threads(args.cpu_threads)
    conversations = [[{"role": "user", "content": prompt_for(item)}] for item in load_benchmark("gsm8k", args.prompts)]
    params = GenerationParams(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              cpu_threads=args.cpu_threads)
    backend.generate(conversations[:1], params.model_copy(update={"max_new_tokens": 2}))  # warm-up

    naive_s, naive_texts, naive_tokens = naive_generate(backend, conversations, args.max_new_tokens)
    started = time.perf_counter()
    batched = backend.generate(conversations, params)
    batched_s = time.perf_counter() - started
    batched_tokens = sum(samples[0].completion_tokens for samples in batched)
    same = sum(samples[0].text == text for samples, text in zip(batched, naive_texts, strict=True))

    naive_tps, batched_tps = naive_tokens / naive_s, batched_tokens / batched_s
    print(f"{args.prompts} prompts, max_new_tokens={args.max_new_tokens}, device={backend.device}")
    print(f"naive one-by-one: {naive_tokens} tokens in {naive_s:.1f} s = {naive_tps:.1f} tokens/s")
    print(f"batched (batch {args.batch_size}): {batched_tokens} tokens in {batched_s:.1f} s = {batched_tps:.1f} tokens/s")
    print(f"identical greedy completions: {same}/{args.prompts}")
    print(json.dumps({
        "bench": "generation",
        "device": backend.device,
        "load_in_4bit": args.load_in_4bit,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "naive_tokens_per_s": round(naive_tps, 2),
        "batched_tokens_per_s": round(batched_tps, 2),
        "ratio_vs_naive": round(batched_tps / naive_tps, 2),
        "identical_completions": same,
    }))


if __name__ == "__main__":
    main()
