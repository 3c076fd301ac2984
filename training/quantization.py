"""Loading a causal LM in full precision or as 4-bit NF4 (QLoRA's base), on CUDA or on a CPU.

Training and evaluation load the base the same way, so a tuned model is evaluated on exactly the
quantized weights its adapter was trained against. 4-bit is NF4 with double quantization (the
QLoRA paper's choice: NF4 matches normally distributed weights, double quantization also stores
the per-block scales in 8 bits). On a CPU, bitsandbytes' CPU backend keeps the packed weights and
dequantizes them per matmul; its optional `kernels` package only speeds that up, so its absence
is logged once and ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def nf4_config(compute_dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_causal_lm(source: str | Path, *, load_in_4bit: bool, dtype: torch.dtype, device: str,
                   **from_pretrained: Any) -> Any:
    """`AutoModelForCausalLM.from_pretrained(source)`, quantized to NF4 while loading when asked.

    bitsandbytes places 4-bit weights while loading, so the device goes in as a device_map; a
    full-precision model is moved by the caller (`.to(device)`), as before. `from_pretrained` passes
    the recipe's ModelConfig options on (revision, attn_implementation, trust_remote_code).
    """
    from transformers import AutoModelForCausalLM

    if not load_in_4bit:
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **from_pretrained)
    device_map = {"": torch.cuda.current_device()} if device == "cuda" else {"": "cpu"}
    return AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, quantization_config=nf4_config(dtype), device_map=device_map, **from_pretrained
    )
