"""QLoRA without a GPU: 4-bit NF4 bases through bitsandbytes' CPU backend, trained and evaluated as on CUDA.

The training tests use a tiny Llama built from a config (2 layers, hidden 64, the embedded model's
tokenizer, random weights) so each step costs milliseconds; only the fidelity test loads the real
embedded model, because quantization error means nothing on random weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.llm.embedded_model import embedded_model_dir
from tasks.parquet_io import write_records
from tasks.records import ChatMessage, SFTRecord
from training.config import load_recipe

pytestmark = pytest.mark.slow  # each test imports torch, transformers, peft, trl and bitsandbytes (~10 s)

PROMPTS = ["What is 12 * 7?", "The capital of France is", "Solve for x: 2x + 3 = 11.",
           "Write a Python function that adds two numbers.", "Name three primary colours."]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with the embedded tokenizer; hidden 64 is one bitsandbytes 4-bit block per row."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    target = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def sft_path(tmp_path_factory) -> Path:
    records = [SFTRecord(id=f"p{a}", messages=[ChatMessage(role="user", content=f"What is {a} + {a}?"),
                                               ChatMessage(role="assistant", content=f"The answer is \\boxed{{{2 * a}}}.")],
                         source="test", teacher_model="replay/teacher", prompt_versions_json="{}",
                         reference_answer=str(2 * a))
               for a in range(1, 5)]
    return write_records(records, SFTRecord, tmp_path_factory.mktemp("data") / "sft.parquet")


def qlora_config(model_dir: Path, **overrides):
    settings = dict(model_name_or_path=str(model_dir), load_in_4bit=True, lora_target_modules="all-linear",
                    lora_last_layers=None, lora_dropout=0.0, max_steps=6, learning_rate=1e-2, save_steps=100,
                    max_length=64, per_device_train_batch_size=4)
    return load_recipe("embedded", **{**settings, **overrides})


def test_qlora_on_cpu_trains_a_4bit_nf4_base_and_lowers_the_loss(tiny_model_dir, sft_path, tmp_path):
    import bitsandbytes as bnb

    from training.sft import prepare_trainer, train

    trainer = prepare_trainer(qlora_config(tiny_model_dir), sft_path, tmp_path / "probe", show_progress=False)
    assert (trainer.args.use_cpu, trainer.args.bf16, trainer.args.optim) == (True, False, "adamw_torch")
    quantized = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7  # every projection of both layers (lm_head stays full precision)
    state = quantized[0].weight.quant_state
    assert quantized[0].weight.quant_type == "nf4" and state.nested  # nested = double quantization
    del trainer

    result = train(qlora_config(tiny_model_dir), sft_path, tmp_path / "run", show_progress=False)
    metrics = json.loads(result.metrics_path.read_text())
    losses = [point["loss"] for point in metrics["loss_curve"]]
    assert result.load_in_4bit and result.device == "cpu" and metrics["load_in_4bit"]
    # A random model starts near ln(vocab) = 10.8 nats; LoRA on 4-bit weights must still pull it down every step.
    assert len(losses) == 6 and all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[0] - losses[-1] > 0.3, losses
    assert (result.adapter_dir / "adapter_model.safetensors").exists()


def test_qlora_adapter_round_trips_into_evals_4bit_base(tiny_model_dir, sft_path, tmp_path):
    """What training ends with is what eval loads: the same 4-bit base + the saved adapter, the same logits."""
    import torch

    from eval.generation import GenerationParams, TransformersBackend
    from training.sft import prepare_trainer

    trainer = prepare_trainer(qlora_config(tiny_model_dir, max_steps=3), sft_path, tmp_path, show_progress=False)
    trainer.train()
    adapter_dir = tmp_path / "adapter"
    trainer.save_model(str(adapter_dir))
    ids = torch.tensor([[1, 504, 3458, 314, 216, 34]])
    with torch.no_grad():
        trained = trainer.model.eval()(input_ids=ids).logits

    tuned = TransformersBackend(tiny_model_dir, adapter_dir, device="cpu", load_in_4bit=True)
    base = TransformersBackend(tiny_model_dir, device="cpu", load_in_4bit=True)
    assert "4-bit NF4" in tuned.description
    with torch.no_grad():
        reloaded = tuned.model(input_ids=ids).logits
        untuned = base.model(input_ids=ids).logits
    # Not bit-equal: after training, bitsandbytes' CPU backend serves the same NF4 weights through another
    # kernel than a freshly loaded model (~3e-3 apart here, even with the adapter disabled). The adapter's
    # own effect is two orders larger, so a lost or mis-loaded adapter cannot hide inside that tolerance.
    round_trip = (trained - reloaded).abs().max().item()
    adapter_effect = (untuned - reloaded).abs().max().item()
    assert round_trip < 1e-2 and adapter_effect > 20 * round_trip, (round_trip, adapter_effect)
    completions = tuned.generate([[{"role": "user", "content": "What is 2 + 2?"}]],
                                 GenerationParams(max_new_tokens=4, cpu_threads=1))
    assert completions[0][0].completion_tokens >= 1


def test_4bit_embedded_model_stays_close_to_fp32_on_a_few_prompts():
    """NF4 changes a 135M model's outputs but not what it is: at the token after the generation prompt,
    fp32's top token stays among 4-bit's top 3 and KL(fp32 || 4-bit) stays under 1.5 nats on each prompt,
    under 0.75 on average (measured values: docs/training.md)."""
    import torch
    from transformers import AutoTokenizer

    from training.quantization import load_causal_lm

    model_dir = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    full = load_causal_lm(model_dir, load_in_4bit=False, dtype=torch.float32, device="cpu").eval()
    nf4 = load_causal_lm(model_dir, load_in_4bit=True, dtype=torch.float32, device="cpu").eval()
    divergences = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            reference = full(**ids).logits[0, -1].float().log_softmax(-1)
            quantized = nf4(**ids).logits[0, -1].float().log_softmax(-1)
        top = reference.argmax()
        assert (quantized > quantized[top]).sum().item() <= 2, prompt
        divergences.append((reference.exp() * (reference - quantized)).sum().item())
    assert max(divergences) < 1.5 and sum(divergences) / len(divergences) < 0.75, divergences
