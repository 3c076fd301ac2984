"""training/: recipes, data conversion, label mask, a few real LoRA steps on the embedded model, resume, adapter.

The model tests share one short training run (module fixture) on a tiny real sft.parquet; each
step is a real fwd+bwd of SmolLM2-135M on CPU, so the runs are kept to a handful of steps.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from tasks.llm.embedded_model import embedded_model_dir
from tasks.parquet_io import write_records
from tasks.records import ChatMessage, SFTRecord
from training.config import dump_config, known_fields, load_recipe, machine_defaults
from training.recipe_files import available_recipes, recorded_fields
from training.data import load_chat_dataset

PAIRS = [(2, 3), (10, 7), (12, 30), (8, 9)]
PROMPT = "What is {a} + {b}?"
SOLUTION = "Adding {a} and {b} gives {c}. The answer is \\boxed{{{c}}}."


def write_sft(path: Path) -> Path:
    records = [
        SFTRecord(
            id=f"p{i}",
            messages=[
                ChatMessage(role="user", content=PROMPT.format(a=a, b=b)),
                ChatMessage(role="assistant", content=SOLUTION.format(a=a, b=b, c=a + b)),
            ],
            source="test",
            teacher_model="replay/teacher",
            prompt_versions_json="{}",
            reference_answer=str(a + b),
        )
        for i, (a, b) in enumerate(PAIRS)
    ]
    return write_records(records, SFTRecord, path)


def tiny_config(**overrides):
    """The embedded recipe in full precision, shrunk so that a step takes about a second on an idle core.

    The recipe's own 4-bit path is pinned by tests/test_qlora_cpu.py; these tests pin the fp32 one.
    """
    settings = dict(model_name_or_path=str(embedded_model_dir()), load_in_4bit=False, max_steps=3, save_steps=2,
                    save_total_limit=None, learning_rate=3e-3, lora_dropout=0.0, max_length=96)
    return load_recipe("embedded", **{**settings, **overrides})


@pytest.fixture(scope="module")
def sft_path(tmp_path_factory) -> Path:
    return write_sft(tmp_path_factory.mktemp("data") / "sft.parquet")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sft_path):
    from training.sft import train

    logs: list[dict] = []
    output_dir = tmp_path_factory.mktemp("train")
    result = train(tiny_config(), sft_path, output_dir, on_log=logs.append, show_progress=False)
    return result, logs


# --- config and data: no model needed ---------------------------------------------------------


def test_every_shipped_recipe_parses_into_trls_own_configs_and_overrides_apply():
    from trl import ModelConfig, SFTConfig

    assert {"embedded", "qwen2.5-1.5b-instruct", "tiny-gpu-random", "paper_qlora"} <= set(available_recipes())
    for name in available_recipes():
        config = load_recipe(name)
        assert isinstance(config.training_args, SFTConfig) and isinstance(config.model_args, ModelConfig)
    qwen = load_recipe("qwen2.5-1.5b-instruct")
    model, args = qwen.model_args, qwen.training_args
    assert (model.lora_r, model.lora_alpha, model.lora_dropout, model.lora_target_modules) == (16, 32, 0.05, "all-linear")
    assert (args.learning_rate, args.lr_scheduler_type, args.warmup_steps, args.max_length) == (2e-4, "cosine", 0.03, 2048)
    assert load_recipe("embedded", max_steps=3).training_args.max_steps == 3
    assert load_recipe("embedded", model_name_or_path="/models/x").model_args.model_name_or_path == "/models/x"


def test_the_recorded_recipe_keys_are_the_fields_of_the_installed_trl():
    """The CLI checks a recipe's keys against training/recipe_fields.txt without importing TRL."""
    assert recorded_fields() == known_fields(), (
        "training/recipe_fields.txt is out of date for the installed TRL; regenerate it with\n"
        "  .venv/bin/python -c \"from training.config import known_fields; print(*sorted(f'{k} {v}' for k, v in known_fields().items()), sep='\\n')\" "
        "> training/recipe_fields.txt")


def test_recipe_typos_and_unknown_names_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="'max_step'.*did you mean max_steps"):
        load_recipe("embedded", max_step=3)
    with pytest.raises(ValueError, match="'max_seq_length'.*max_length"):  # the old name says the new one
        load_recipe("embedded", max_seq_length=96)
    with pytest.raises(ValueError, match="leave bf16 unset"):
        load_recipe("embedded", bf16="auto")
    with pytest.raises(ValueError, match="output_dir.*train"):
        load_recipe("embedded", output_dir="/tmp/x")
    with pytest.raises(ValueError, match="adamw_foo"):  # TRL's own validation, reached through the recipe
        load_recipe("embedded", optim="adamw_foo")
    with pytest.raises(FileNotFoundError, match="embedded"):
        load_recipe("no-such-recipe")
    with pytest.raises(ValueError, match="list of module names"):
        load_recipe("embedded", lora_target_modules="all-linear")  # peft cannot limit "all-linear" to layers


def test_a_written_recipe_holds_this_machines_choices_and_loads_back_equal(tmp_path):
    config = load_recipe("qwen2.5-1.5b-instruct", max_steps=5, lora_r=32)
    path = dump_config(config, tmp_path / "train_config.yaml")
    assert load_recipe(path) == config and load_recipe(path).model_args.lora_r == 32
    written = path.read_text()
    assert "use_cpu: true" in written and "optim: adamw_torch" in written and "trl 1." in written


def test_unset_machine_fields_are_qlora_on_cuda_and_fp32_lora_on_cpu_and_explicit_values_win():
    gpu = machine_defaults({}, cuda=True, cuda_bf16=True)
    assert gpu == {"use_cpu": False, "load_in_4bit": True, "bf16": True, "fp16": False, "dtype": "bfloat16",
                   "activation_checkpointing": True, "optim": "paged_adamw_32bit", "use_peft": True}
    old_gpu = machine_defaults({}, cuda=True, cuda_bf16=False)  # QLoRA's fp16 fallback
    assert (old_gpu["bf16"], old_gpu["fp16"], old_gpu["dtype"]) == (False, True, "float16")
    cpu = machine_defaults({}, cuda=False, cuda_bf16=False)
    assert cpu == {"use_cpu": True, "load_in_4bit": False, "bf16": False, "fp16": False, "dtype": "float32",
                   "activation_checkpointing": False, "optim": "adamw_torch", "use_peft": True}
    # What a recipe says is kept, and the choices that depend on it follow it.
    assert machine_defaults({"load_in_4bit": True}, cuda=False, cuda_bf16=False)["optim"] == "adamw_torch"
    full_gpu = machine_defaults({"load_in_4bit": False, "optim": "sgd"}, cuda=True, cuda_bf16=True)
    assert "load_in_4bit" not in full_gpu and "optim" not in full_gpu and full_gpu["activation_checkpointing"]
    # gradient_checkpointing, transformers 5's old name for activation_checkpointing, counts as set too.
    assert "activation_checkpointing" not in machine_defaults({"gradient_checkpointing": True}, cuda=False, cuda_bf16=False)

    # On this machine (no CUDA): the same choices land in TRL's configs, 4-bit honoured where the recipe asks.
    qwen = load_recipe("qwen2.5-1.5b-instruct")
    args = qwen.training_args
    assert (qwen.device, qwen.model_args.load_in_4bit, args.bf16, args.gradient_checkpointing, args.optim) == (
        "cpu", False, False, False, "adamw_torch")
    qlora_cpu = load_recipe("embedded")
    assert (qlora_cpu.device, qlora_cpu.model_args.load_in_4bit, qlora_cpu.training_args.bf16,
            qlora_cpu.training_args.optim, qlora_cpu.model_args.dtype) == ("cpu", True, False, "adamw_torch", "float32")


@pytest.mark.slow  # importing training.sft (torch, transformers, trl) alone takes ~10 s here
def test_training_takes_a_path_and_refuses_embedded_with_the_way_to_one(tmp_path, sft_path):
    from training.__main__ import main
    from training.sft import train

    with pytest.raises(ValueError, match="tool-distill"):
        train(load_recipe("embedded"), sft_path, tmp_path)
    with pytest.raises(SystemExit):
        main(["--config", "embedded", "--data", str(sft_path), "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit):  # a flag typo is not taken for the flag it abbreviates
        main(["--config", "embedded", "--data", str(sft_path), "--output_dir", str(tmp_path), "--max_step", "3"])


def test_sft_parquet_becomes_prompt_and_final_assistant_completion(sft_path):
    dataset = load_chat_dataset(sft_path)
    assert len(dataset) == len(PAIRS)
    row = dataset[0]
    assert row["prompt"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert row["completion"] == [{"role": "assistant", "content": SOLUTION.format(a=2, b=3, c=5)}]


def test_sharegpt_jsonl_is_read_and_a_row_without_assistant_target_is_named(tmp_path):
    good = tmp_path / "chat.jsonl"
    chat = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ho"}]}
    good.write_text(json.dumps(chat) + "\n")
    assert load_chat_dataset(good)[0]["completion"] == [{"role": "assistant", "content": "ho"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match="row 0"):
        load_chat_dataset(bad)


@pytest.mark.slow  # importing training.sft (torch, transformers, trl) alone takes ~10 s here
def test_a_dir_with_checkpoints_is_not_silently_overwritten(tmp_path, sft_path):
    from training.sft import train

    (tmp_path / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(), sft_path, tmp_path)


# --- the model -------------------------------------------------------------------------------


@pytest.mark.slow
def test_only_assistant_tokens_carry_loss(tmp_path, sft_path):
    from training.sft import prepare_trainer

    trainer = prepare_trainer(tiny_config(), sft_path, tmp_path, show_progress=False)
    tokenizer = trainer.processing_class
    for row in trainer.train_dataset:
        labelled = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        masked = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label == -100]
        completion = row["completion"][0]["content"]
        # Exactly the assistant answer and its end-of-turn token are trained ...
        assert tokenizer.decode(labelled).strip() == completion + "<|im_end|>"
        # ... and the system prompt, the user's question and the assistant header are not.
        prompt_text = tokenizer.decode(masked)
        assert row["prompt"][0]["content"] in prompt_text and prompt_text.endswith("<|im_start|>assistant\n")
        assert row["input_ids"][: len(masked)] == masked  # the masked part is one prefix


@pytest.mark.slow
def test_a_few_lora_steps_lower_the_loss_and_write_every_output(trained):
    result, logs = trained
    assert result.steps == 3 and result.device == "cpu" and not result.load_in_4bit
    metrics = json.loads(result.metrics_path.read_text())
    losses = [point["loss"] for point in metrics["loss_curve"]]
    assert len(losses) == 3
    assert losses[-1] < 0.8 * losses[0], losses
    assert metrics["train_tokens_per_s"] > 0 and metrics["peak_memory_mb"] > 100
    assert 0 < metrics["trainable_params"] < metrics["total_params"] / 50
    with safe_open(result.adapter_dir / "adapter_model.safetensors", framework="pt") as adapter:
        adapted_layers = {int(re.search(r"layers\.(\d+)\.", key).group(1)) for key in adapter.keys()}
    assert adapted_layers == set(range(22, 30))  # the embedded recipe's lora_last_layers: 8 of 30
    assert (result.adapter_dir / "tokenizer.json").exists()
    assert load_recipe(result.config_path) == tiny_config()
    assert sorted(p.name for p in (result.output_dir / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2", "checkpoint-3"]
    # on_log saw the loss of every step as it went (what the Prefect flow logs).
    assert [entry["step"] for entry in logs if "loss" in entry] == [1, 2, 3]


@pytest.mark.slow
def test_resume_continues_the_step_count_from_the_last_checkpoint(trained, sft_path, tmp_path):
    from training.sft import train

    first, _ = trained
    output_dir = tmp_path / "resumed"
    shutil.copytree(first.output_dir, output_dir)
    result = train(tiny_config(max_steps=4), sft_path, output_dir, resume=True, show_progress=False)
    assert (result.resumed_from_step, result.steps) == (3, 4)
    curve = json.loads(result.metrics_path.read_text())["loss_curve"]
    first_curve = json.loads(first.metrics_path.read_text())["loss_curve"]
    assert [point["step"] for point in curve] == [1, 2, 3, 4]
    assert curve[:3] == first_curve  # the earlier steps come from the checkpoint, not from a re-run


@pytest.mark.slow
def test_saved_adapter_loads_with_peft_and_changes_generations(trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(result.adapter_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT.format(a=12, b=30)}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )

    def greedy(model) -> str:
        with torch.no_grad():
            out = model.generate(**prompt, max_new_tokens=16, do_sample=False)
        return tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)

    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    before = greedy(base)
    tuned = PeftModel.from_pretrained(base, str(result.adapter_dir))
    after = greedy(tuned)
    assert after != before, after


@pytest.mark.slow
def test_cli_trains_and_merges(tmp_path, sft_path):
    """One CLI step in a fresh process: the only way to see what got imported from a clean start."""
    output_dir = tmp_path / "cli"
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['training', '--config', 'embedded', '--data', {str(sft_path)!r}, '--output_dir', "
        f"{str(output_dir)!r}, '--model_name_or_path', {str(embedded_model_dir())!r}, '--max-steps', '1', "
        "'--max_length', '96', '--load_in_4bit', 'false', '--merge_adapter']\n"
        "try:\n    runpy.run_module('training', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "== train ==" in done.stdout and "steps          1" in done.stdout

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 504, 3458, 314, 216, 34]])
    merged = AutoModelForCausalLM.from_pretrained(output_dir / "merged", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(output_dir / "adapter"))
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU (4-bit QLoRA)")
def test_auto_recipe_trains_4bit_nf4_qlora_on_cuda(tmp_path, sft_path):
    import bitsandbytes as bnb
    import torch

    from training.sft import prepare_trainer, train

    config = load_recipe("tiny-gpu-random", max_steps=4, save_steps=2)
    trainer = prepare_trainer(config, sft_path, tmp_path / "probe", show_progress=False)
    assert config.model_args.load_in_4bit and trainer.args.gradient_checkpointing
    assert trainer.args.optim == "paged_adamw_32bit" and trainer.args.bf16 == torch.cuda.is_bf16_supported()
    quantized = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and quantized[0].weight.quant_type == "nf4"
    del trainer
    torch.cuda.empty_cache()

    result = train(config, sft_path, tmp_path / "run", show_progress=False)
    assert (result.device, result.load_in_4bit, result.steps) == ("cuda", True, 4)
    assert math.isfinite(result.final_loss) and result.peak_memory_mb > 0 and result.train_tokens_per_s > 0


@pytest.mark.slow  # a fresh interpreter importing torch, transformers, trl, peft and bitsandbytes (~10 s)
def test_training_and_eval_import_nothing_of_tasks():
    """They are handed model paths; the pipeline's model store and LLM client stay in tasks/."""
    script = ("import sys\nimport training.sft, training.__main__, eval.harness, eval.cli, eval.report\n"
              "print(sorted(m for m in sys.modules if m == 'tasks' or m.startswith('tasks.')))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
