"""First contact with a GPU machine: QLoRA SFT and batched generation on a Qwen2.5-1.5B-shaped model.

    python -m benchmarks.gpu.first_contact --out OUT            # CUDA: the real check (first_contact.sh runs it)
    python -m benchmarks.gpu.first_contact --out OUT --cpu --tiny   # here, in tests, so the script cannot rot

No weights can travel to the GPU machine (64 MiB carried, no hub), so the model is built from
Qwen2.5-1.5B-Instruct's architecture (written below, 1.54 B parameters) with random weights; the
tokenizer is the embedded SmolLM2 one carried in the wheelhouse (its 49 k ids fit Qwen's 152 k
vocabulary; the embedding and lm_head keep Qwen's full size). Throughput and memory depend on the
shapes, not the weights, so these figures hold for the real model; losses mean nothing.

Steps, each timed and logged:
1. versions of torch, CUDA, transformers, peft, accelerate, trl, datasets, bitsandbytes, vllm;
2. the random model saved once (bf16), and the committed demo SFT rows repeated to length;
3. QLoRA SFT for a fixed number of steps with `training.sft.train` (ours) and with the plain
   TRL + bitsandbytes tutorial script (benchmarks/training_bench.py's baseline), each in its own
   process: tokens/s and peak memory;
4. batched greedy generation on 64 prompts with eval's transformers backend (and vLLM when it is
   installed): tokens/s.
The last line printed, and OUT/first_contact.json, is one JSON object; OUT/first_contact.log has
everything printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_SFT = REPO / "docs" / "results" / "demo_embedded" / "sft.parquet"

# Qwen/Qwen2.5-1.5B-Instruct's config.json (architecture fields only).
QWEN25_15B = dict(
    architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=1536, intermediate_size=8960,
    num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
    rms_norm_eps=1e-6, rope_theta=1000000.0, vocab_size=151936, tie_word_embeddings=True, hidden_act="silu",
    attention_dropout=0.0, use_sliding_window=False, sliding_window=None,
)
TINY_OVERRIDES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2)

FULL = dict(steps=30, batch=8, seq_tokens=1024, prompts=64, new_tokens=256, gen_batch=64)
TINY = dict(steps=3, batch=2, seq_tokens=96, prompts=4, new_tokens=8, gen_batch=4)

PACKAGES = ["torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "vllm", "tool_distill"]


def probe_versions() -> dict:
    """What this machine has; absent packages are null, so the JSON says what the run adapted to."""
    versions: dict = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            module = importlib.import_module("eval" if name == "tool_distill" else name)
            versions[name] = getattr(module, "__version__", "present")
        except Exception as error:  # noqa: BLE001 (a broken install is reported, not fatal)
            versions[name] = None if isinstance(error, ImportError) else f"error: {error!r}"[:200]
    import torch

    versions["cuda_available"] = torch.cuda.is_available()
    versions["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        versions["gpu"] = torch.cuda.get_device_name(0)
        versions["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return versions


def tokenizer_dir(wheelhouse: Path | None) -> Path:
    """The carried tokenizer (wheelhouse/tokenizer), else the embedded model's own (this machine)."""
    if wheelhouse is not None and (wheelhouse / "tokenizer" / "tokenizer.json").exists():
        return wheelhouse / "tokenizer"
    from tasks.llm.embedded_model import embedded_model_dir

    return embedded_model_dir()


def build_random_model(target: Path, tiny: bool, wheelhouse: Path | None) -> dict:
    """Qwen2.5-1.5B's shapes, random weights, saved in bf16 with the tokenizer: a model dir like any other."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(wheelhouse))
    fields = {**QWEN25_15B, **(TINY_OVERRIDES if tiny else {})}
    config = Qwen2Config(**fields, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 1.5 B parameters on the GPU takes seconds, on a CPU minutes
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    del model
    return {"parameters": parameters, "layers": config.num_hidden_layers, "hidden": config.hidden_size}


def demo_rows_to_length(target: Path, rows: int, seq_tokens: int) -> Path:
    """The committed demo SFT rows, each assistant answer repeated until the chat is about `seq_tokens` long."""
    import pyarrow.parquet as pq

    from tasks.parquet_io import write_records
    from tasks.records import ChatMessage, SFTRecord

    source = pq.read_table(DEMO_SFT).to_pylist()
    records = []
    for index in range(rows):
        row = source[index % len(source)]
        messages = [dict(m) for m in row["messages"]]
        answer = messages[-1]["content"]
        repeats = max(1, seq_tokens * 4 // (len(answer) + 1) - 1)  # ~4 characters per token
        messages[-1]["content"] = "\n".join([answer] * repeats)
        records.append(SFTRecord(**{**row, "id": f"{row['id']}-{index}",
                                    "messages": [ChatMessage(**m) for m in messages]}))
    return write_records(records, SFTRecord, target)


def train_side(side: str, model_dir: Path, data: Path, sizes: dict, log: Path) -> dict:
    """One training side of benchmarks/training_bench.py in a fresh process (its own peak memory)."""
    result = data.parent / f"{side}.json"
    command = [sys.executable, "-m", "benchmarks.training_bench", "--side", side, "--model-dir", str(model_dir),
               "--data", str(data), "--steps", str(sizes["steps"]), "--batch", str(sizes["batch"]),
               "--max-length", str(sizes["seq_tokens"]), "--result", str(result)]
    started = time.perf_counter()
    with log.open("a") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}; see first_contact.log", "wall_s": round(time.perf_counter() - started, 1)}
    figures = json.loads(result.read_text())
    return {**{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
            "wall_s": round(time.perf_counter() - started, 1)}


def generate_hf(model_dir: Path, sizes: dict) -> dict:
    """Eval's batched transformers backend (left padding, length-sorted) on the benchmark prompts."""
    from eval.benchmarks import load_benchmark, prompt_for
    from eval.generation import GenerationParams, TransformersBackend

    items = (load_benchmark("math500", None) + load_benchmark("gsm8k", None))[: sizes["prompts"]]
    conversations = [[{"role": "user", "content": prompt_for(item)}] for item in items]
    backend = TransformersBackend(model_dir)
    params = GenerationParams(max_new_tokens=sizes["new_tokens"], batch_size=sizes["gen_batch"], cpu_threads=1)
    backend.generate(conversations[:2], params.model_copy(update={"max_new_tokens": 2}))  # warm-up
    started = time.perf_counter()
    completions = backend.generate(conversations, params)
    seconds = time.perf_counter() - started
    tokens = sum(samples[0].completion_tokens for samples in completions)
    return {"prompts": len(conversations), "new_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "batch_size": sizes["gen_batch"], "device": backend.device,
            "peak_memory_mb": _peak_memory_mb()}


def generate_vllm(model_dir: Path, sizes: dict) -> dict | None:
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        return None
    from eval.benchmarks import load_benchmark, prompt_for
    from eval.generation import GenerationParams, VLLMBackend

    items = (load_benchmark("math500", None) + load_benchmark("gsm8k", None))[: sizes["prompts"]]
    conversations = [[{"role": "user", "content": prompt_for(item)}] for item in items]
    backend = VLLMBackend(model_dir)
    started = time.perf_counter()
    completions = backend.generate(conversations, GenerationParams(max_new_tokens=sizes["new_tokens"]))
    seconds = time.perf_counter() - started
    tokens = sum(samples[0].completion_tokens for samples in completions)
    return {"prompts": len(conversations), "new_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def _peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for first_contact.json and .log")
    parser.add_argument("--cpu", action="store_true", help="run without CUDA (the test mode)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 64-wide model of the same family")
    parser.add_argument("--wheelhouse", type=Path, default=None, help="where the carried tokenizer lies")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "first_contact.log"

    import torch

    if not torch.cuda.is_available() and not args.cpu:
        print("first_contact: no CUDA GPU visible; pass --cpu --tiny to exercise the script on a CPU")
        return 2
    sizes = TINY if args.tiny else FULL
    figures: dict = {"bench": "gpu_first_contact", "tiny": args.tiny, "sizes": sizes,
                     "versions": probe_versions(), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps({"versions": figures["versions"]}), flush=True)
    with tempfile.TemporaryDirectory(prefix="first-contact-") as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        figures["model"] = build_random_model(work / "model", args.tiny, args.wheelhouse)
        figures["model"]["build_s"] = round(time.perf_counter() - started, 1)
        data = demo_rows_to_length(work / "sft.parquet", sizes["steps"] * sizes["batch"] * 2, sizes["seq_tokens"])
        print(f"model {figures['model']}; data {data}", flush=True)
        for side in ("ours-qlora", "plain"):
            figures[side.replace("-", "_")] = train_side(side, work / "model", data, sizes, log)
            print(f"{side}: {figures[side.replace('-', '_')]}", flush=True)
        ours, plain = figures["ours_qlora"], figures["plain"]
        if "tokens_per_s" in ours and "tokens_per_s" in plain:
            figures["ratio_tokens_per_s_ours_over_plain"] = round(ours["tokens_per_s"] / plain["tokens_per_s"], 3)
            figures["ratio_peak_memory_ours_over_plain"] = round(ours["peak_memory_mb"] / plain["peak_memory_mb"], 3)
        figures["generate_hf"] = generate_hf(work / "model", sizes)
        print(f"generate (transformers): {figures['generate_hf']}", flush=True)
        figures["generate_vllm"] = generate_vllm(work / "model", sizes)
    figures["total_s"] = round(time.perf_counter() - started, 1)
    line = json.dumps(figures)
    (args.out / "first_contact.json").write_text(line + "\n")
    print(line)
    return 0 if all("error" not in figures[k] for k in ("ours_qlora", "plain")) else 1


if __name__ == "__main__":
    sys.exit(main())
