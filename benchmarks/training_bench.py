"""Training step time and peak memory: QLoRA vs fp32 LoRA on a CPU, and ours vs a plain TRL script.

    python -m benchmarks.training_bench [--quick]          # no CUDA: 4-bit NF4 vs fp32 LoRA, ours, same run
    python -m benchmarks.training_bench [--quick]          # CUDA: ours vs plain TRL + bitsandbytes QLoRA
    python -m benchmarks.training_bench --cpu [--quick]    # CPU: ours vs the plain script, slow

Without CUDA the default run answers "what does QLoRA cost on a CPU?": `training.sft.train` with
the embedded recipe on the embedded model, once with `load_in_4bit: true` (NF4 + double quant,
bitsandbytes' CPU backend) and once with `load_in_4bit: false` (fp32 LoRA), each in a fresh
process, same data, steps, batch and length. It reports seconds and CPU seconds per step (step 1,
the warm-up, left out) and each process's peak RSS, and their 4-bit / fp32 ratios. The demo
recipe trains QLoRA when the step-time ratio is at most 1.5 (docs/training.md says which it uses).

The comparison with the plain script (CUDA, or --cpu):

Both sides train the same model on the same synthetic SFT data (arithmetic word problems with
worked solutions of 3-30 steps, written as a real sft.parquet), for the same number of steps and
the same batch size and max length, each in a fresh process so peak memory is its own:

- ours: `training.sft.train` with the recipe of the device (CUDA: tiny-gpu-random's settings, i.e.
  4-bit NF4 QLoRA, r=16 all-linear, paged AdamW, completion-only loss; CPU: the embedded recipe).
- plain: the script most QLoRA tutorials show: BitsAndBytesConfig(nf4, double quant, bf16 compute),
  `prepare_model_for_kbit_training`, LoraConfig(r=16, alpha=32, dropout 0.05, all-linear),
  `SFTTrainer` on the `messages` column with TRL's defaults for everything else (on CPU the same
  without bitsandbytes, which leaves TRL's bf16 autocast and gradient checkpointing on).

On CUDA the model is the embedded SmolLM2 architecture with random weights (`--model-dir` takes a
real model instead): no weights over 64 MiB can reach the GPU machine. Tokens/s counts non-padding
input tokens over the Trainer's train_runtime (loading and tokenization excluded). Peak memory is
`torch.cuda.max_memory_allocated` on CUDA and the process's max RSS on CPU.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tasks.parquet_io import write_records
from tasks.records import ChatMessage, SFTRecord


def synthetic_sft(path: Path, rows: int, seed: int = 0) -> Path:
    """Word problems with step-by-step solutions: lengths vary like real traces, answers are right."""
    rng = random.Random(seed)
    records = []
    for index in range(rows):
        start = total = rng.randint(1, 50)
        steps = []
        for _ in range(rng.randint(3, 30)):
            added = rng.randint(1, 99)
            steps.append(f"Adding {added} to {total} gives {total + added}.")
            total += added
        records.append(SFTRecord(
            id=f"bench-{index}",
            messages=[
                ChatMessage(role="user", content=f"Start from {start} and add the numbers "
                            f"given one at a time ({len(steps)} of them). What is the total?"),
                ChatMessage(role="assistant", content=" ".join(steps) + f" The answer is \\boxed{{{total}}}."),
            ],
            source="synthetic", teacher_model="none", prompt_versions_json="{}", reference_answer=str(total),
        ))
    return write_records(records, SFTRecord, path)


def random_model_dir(target: Path) -> Path:
    """The tiny-gpu-random recipe's model (embedded config + overrides, random weights), saved once."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from training.config import load_recipe

    recipe = load_recipe("tiny-gpu-random")
    model = recipe.model_args.model_name_or_path
    source = embedded_dir() if model == "embedded" else model
    config = AutoConfig.from_pretrained(source)
    for key, value in (recipe.extras.model_config_overrides or {}).items():
        setattr(config, key, value)
    torch.manual_seed(recipe.training_args.seed)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


class StepClock:
    """Process CPU time at each logged step: on a shared machine CPU seconds per step are steadier than
    wall time (other jobs stretch the wall clock, not the work). Step 1 (warm-up) is left out."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    def hook(self, entry: dict) -> None:
        if "loss" in entry:
            self.ticks.append(time.process_time())

    def cpu_s_per_step(self) -> float | None:
        return (self.ticks[-1] - self.ticks[0]) / (len(self.ticks) - 1) if len(self.ticks) > 1 else None


def peak_memory_mb(cuda: bool) -> float:
    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(model_dir: str, data: Path, steps: int, batch: int, max_length: int, work: Path,
             load_in_4bit: bool | None = None, recipe: str | None = None) -> dict:
    """`training.sft.train` with the device's recipe (CUDA: tiny-gpu-random's, CPU: embedded) unless one is named;
    `load_in_4bit` None keeps the recipe's choice (unset there: 4-bit on CUDA only)."""
    import torch

    from training.config import load_recipe
    from training.sft import train

    cuda = torch.cuda.is_available()
    quantization = {} if load_in_4bit is None else {"load_in_4bit": load_in_4bit}
    config = load_recipe(recipe or ("tiny-gpu-random" if cuda else "embedded"), model_name_or_path=model_dir,
                         random_init=False, model_config_overrides=None, max_steps=steps, save_steps=10 * steps,
                         per_device_train_batch_size=batch, gradient_accumulation_steps=1, max_length=max_length,
                         **quantization)
    clock = StepClock()
    result = train(config, data, work / "ours", show_progress=False, on_log=clock.hook)
    metrics = json.loads(result.metrics_path.read_text())
    return {"tokens_per_s": metrics["train_tokens_per_s"], "peak_memory_mb": peak_memory_mb(cuda),
            "seconds_per_step": metrics["seconds_per_step"], "cpu_s_per_step": clock.cpu_s_per_step(),
            "tokens_per_step": metrics["session_tokens"] / steps, "final_loss": metrics["final_loss"],
            "load_in_4bit": metrics["load_in_4bit"]}


def run_plain(model_dir: str, data: Path, steps: int, batch: int, max_length: int, work: Path) -> dict:
    """The plain QLoRA tutorial script, kept as such on purpose: it is the baseline."""
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class ClockCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 (Trainer's signature)
            clock.hook(logs or {})

    cuda = torch.cuda.is_available()
    if cuda:
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quantization,
                                                     dtype=torch.bfloat16, device_map={"": 0})
        model = prepare_model_for_kbit_training(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list(pq.read_table(data, columns=["messages"]).to_pylist())
    args = SFTConfig(output_dir=str(work / "plain"), max_steps=steps, per_device_train_batch_size=batch,
                     gradient_accumulation_steps=1, max_length=max_length, learning_rate=2e-4, logging_steps=1,
                     save_strategy="no", report_to=[], include_num_input_tokens_seen="non_padding",
                     disable_tqdm=True, use_cpu=not cuda)  # TRL's bf16 default needs use_cpu on a CPU
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    clock = StepClock()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora,
                         callbacks=[ClockCallback()])
    output = trainer.train()
    runtime = output.metrics["train_runtime"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"tokens_per_s": trainer.state.num_input_tokens_seen / runtime, "peak_memory_mb": peak_memory_mb(cuda),
            "seconds_per_step": runtime / steps, "cpu_s_per_step": clock.cpu_s_per_step(),
            "tokens_per_step": trainer.state.num_input_tokens_seen / steps, "final_loss": losses[-1]}


def run_side(side: str, args: argparse.Namespace) -> dict:
    """One side in a fresh interpreter, so imports, allocator state and peak memory are its own; prints its figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as work:
        result_path = Path(work) / "result.json"
        command = [sys.executable, "-m", "benchmarks.training_bench", "--side", side, "--model-dir", args.model_dir,
                   "--data", str(args.data), "--steps", str(args.steps), "--batch", str(args.batch),
                   "--max-length", str(args.max_length), "--result", str(result_path)]
        done = subprocess.run(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{side} side failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
        result = json.loads(result_path.read_text())
    print(f"  {side}: {result}", flush=True)
    return result


def cpu_time_figures(ours: dict, plain: dict) -> dict:
    """CPU seconds per token of each side and their ratio (plain / ours: > 1 means ours does less work)."""
    if ours["cpu_s_per_step"] is None or plain["cpu_s_per_step"] is None:
        return {}
    ours_ms = 1000 * ours["cpu_s_per_step"] / ours["tokens_per_step"]
    plain_ms = 1000 * plain["cpu_s_per_step"] / plain["tokens_per_step"]
    return {"ours_cpu_ms_per_token": round(ours_ms, 2), "plain_cpu_ms_per_token": round(plain_ms, 2),
            "cpu_time_ratio_plain_over_ours": round(plain_ms / ours_ms, 3)}


def embedded_dir() -> str:
    from tasks.llm.embedded_model import embedded_model_dir

    return str(embedded_model_dir())


QLORA_STEP_TIME_LIMIT = 1.5  # the demo trains QLoRA on a CPU while 4-bit costs at most this much per step


def compare_quantization_on_cpu(args: argparse.Namespace) -> int:
    """4-bit NF4 vs fp32 LoRA through `training.sft.train`, each side in its own process, one JSON line."""
    args.steps = args.steps or (3 if args.quick else 8)
    args.batch, args.max_length, rows = args.batch or 2, args.max_length or 128, args.rows or 16
    with tempfile.TemporaryDirectory(prefix="training-bench-") as scratch:
        args.data = synthetic_sft(Path(scratch) / "sft.parquet", rows)
        args.model_dir = args.model_dir or embedded_dir()
        print(f"training_bench: cpu, 4-bit NF4 vs fp32 LoRA (embedded recipe), model {args.model_dir}, {rows} rows, "
              f"{args.steps} steps, batch {args.batch}, max length {args.max_length}", flush=True)
        fp32, nf4 = run_side("ours-fp32", args), run_side("ours-4bit", args)
    step_ratio = nf4["seconds_per_step"] / fp32["seconds_per_step"]
    cpu_ratio = (nf4["cpu_s_per_step"] / fp32["cpu_s_per_step"]
                 if nf4["cpu_s_per_step"] and fp32["cpu_s_per_step"] else None)
    print(json.dumps({
        "bench": "training",
        "device": "cpu",
        "mode": "4bit_vs_fp32_lora",
        "steps": args.steps,
        "batch": args.batch,
        "max_length": args.max_length,
        "fp32_s_per_step": round(fp32["seconds_per_step"], 3),
        "nf4_s_per_step": round(nf4["seconds_per_step"], 3),
        "step_time_ratio_4bit_over_fp32": round(step_ratio, 3),
        "fp32_cpu_s_per_step": round(fp32["cpu_s_per_step"], 3) if fp32["cpu_s_per_step"] else None,
        "nf4_cpu_s_per_step": round(nf4["cpu_s_per_step"], 3) if nf4["cpu_s_per_step"] else None,
        "cpu_time_ratio_4bit_over_fp32": round(cpu_ratio, 3) if cpu_ratio else None,
        "fp32_peak_rss_mb": round(fp32["peak_memory_mb"], 1),
        "nf4_peak_rss_mb": round(nf4["peak_memory_mb"], 1),
        "rss_ratio_4bit_over_fp32": round(nf4["peak_memory_mb"] / fp32["peak_memory_mb"], 3),
        "fp32_final_loss": round(fp32["final_loss"], 4),
        "nf4_final_loss": round(nf4["final_loss"], 4),
        "qlora_within_limit": step_ratio <= QLORA_STEP_TIME_LIMIT,
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under a minute)")
    parser.add_argument("--cpu", action="store_true", help="without CUDA: compare the CPU paths (minutes)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--model-dir", default=None, help="a real model dir instead of the random tiny one")
    parser.add_argument("--side", choices=["ours", "plain", "ours-4bit", "ours-fp32", "ours-qlora"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.side:  # child process: one side, result to a file
        runner = {"ours": run_ours, "plain": run_plain,
                  "ours-4bit": lambda *a: run_ours(*a, load_in_4bit=True),
                  "ours-fp32": lambda *a: run_ours(*a, load_in_4bit=False),
                  # the GPU recipe's QLoRA on any device (benchmarks/gpu/first_contact.py, also its CPU mode)
                  "ours-qlora": lambda *a: run_ours(*a, load_in_4bit=True, recipe="tiny-gpu-random")}[args.side]
        with tempfile.TemporaryDirectory(prefix="bench-work-") as work:
            result = runner(args.model_dir, args.data, args.steps, args.batch, args.max_length, Path(work))
        args.result.write_text(json.dumps(result))
        return 0

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        return compare_quantization_on_cpu(args)
    if cuda:
        args.steps = args.steps or (10 if args.quick else 50)
        args.batch, args.max_length, rows = args.batch or 8, args.max_length or 512, args.rows or 256
    else:
        args.steps = args.steps or (2 if args.quick else 4)
        args.batch, args.max_length, rows = args.batch or 2, args.max_length or 128, args.rows or 16

    with tempfile.TemporaryDirectory(prefix="training-bench-") as scratch:
        args.data = synthetic_sft(Path(scratch) / "sft.parquet", rows)
        if args.model_dir is None:
            if cuda:
                args.model_dir = str(random_model_dir(Path(scratch) / "model"))
            else:
                args.model_dir = embedded_dir()
        device = torch.cuda.get_device_name(0) if cuda else "cpu"
        print(f"training_bench: {device}, model {args.model_dir}, {rows} rows, {args.steps} steps, "
              f"batch {args.batch}, max length {args.max_length}", flush=True)
        ours, plain = run_side("ours", args), run_side("plain", args)

    print(json.dumps({
        "bench": "training",
        "device": device,
        "steps": args.steps,
        "ours_tokens_per_s": round(ours["tokens_per_s"], 1),
        "plain_tokens_per_s": round(plain["tokens_per_s"], 1),
        "ratio_vs_plain_trl": round(ours["tokens_per_s"] / plain["tokens_per_s"], 3),
        "ours_peak_memory_mb": round(ours["peak_memory_mb"], 1),
        "plain_peak_memory_mb": round(plain["peak_memory_mb"], 1),
        "memory_ratio_vs_plain_trl": round(ours["peak_memory_mb"] / plain["peak_memory_mb"], 3),
        **cpu_time_figures(ours, plain),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
