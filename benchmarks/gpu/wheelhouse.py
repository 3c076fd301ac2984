"""`make gpu-wheelhouse`: the slim wheelhouse the GPU machine needs, under an ignored folder (.whl/gpu).

The GPU machine (docs/results/gpu/README.md) has Python 3.12 with torch (CUDA 13), transformers, peft,
accelerate, pyarrow, pandas, pyyaml, xxhash, fsspec and huggingface-hub, no network, and takes at
most 64 MiB of carried files. So this holds, as wheels for CPython 3.12 on manylinux x86-64, only
what it lacks for training and generation: trl, datasets (+ dill, multiprocess), pydantic (+ its
core and helpers), bitsandbytes repacked with its CUDA 13 library alone (the full wheel carries one
library per CUDA/ROCm/XPU version, ~125 MB), and tool-distill itself; plus the embedded model's
tokenizer files (the random Qwen-shaped model needs a tokenizer and no hub is reachable there).
Versions are the ones installed in this venv, so the GPU run uses the code the tests ran.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CARRY_LIMIT_MIB = 64
WHEELS = ["trl", "datasets", "dill", "multiprocess", "pydantic", "pydantic-core", "annotated-types",
          "typing-inspection", "bitsandbytes"]
TARGET = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
          *[arg for n in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                          "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
            for arg in ("--platform", n)]]
KEEP_BNB_LIBRARY = "libbitsandbytes_cuda130.so"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]


def download(name: str, dest: Path) -> None:
    version = importlib.metadata.version(name)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *TARGET, "-d", str(dest),
                    f"{name}=={version}"], check=True)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def slim_bitsandbytes(wheel: Path) -> Path:
    """Rewrite the wheel without the native libraries the GPU machine cannot use, with a RECORD to match."""
    slim = wheel.with_name(wheel.name + ".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        kept = [i for i in source.infolist()
                if not (i.filename.endswith(".so") and Path(i.filename).name != KEEP_BNB_LIBRARY)]
        if not any(Path(i.filename).name == KEEP_BNB_LIBRARY for i in kept):
            raise RuntimeError(f"{wheel.name} holds no {KEEP_BNB_LIBRARY}; pick a bitsandbytes built for CUDA 13")
        record_name = next(i.filename for i in kept if i.filename.endswith(".dist-info/RECORD"))
        lines = []
        for info in kept:
            if info.filename == record_name:
                continue
            data = source.read(info)
            target.writestr(info, data)
            lines.append(_record_line(info.filename, data))
        target.writestr(record_name, "\n".join([*lines, f"{record_name},,"]) + "\n")
    slim.replace(wheel)
    return wheel


def build_self(dest: Path) -> None:
    """tool-distill's own wheel; setuptools builds in-tree, so its build/ folder is removed after."""
    leftover = not (REPO / "build").exists()
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", str(dest), str(REPO)], check=True)
    finally:
        if leftover:
            shutil.rmtree(REPO / "build", ignore_errors=True)


def copy_tokenizer(dest: Path) -> None:
    sys.path.insert(0, str(REPO))
    from tasks.llm.embedded_model import embedded_model_dir

    source = embedded_model_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, nargs="?", default=REPO / ".whl" / "gpu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-", dir=args.dest.parent if args.dest.parent.exists() else None) as scratch:
        staging = Path(scratch)
        for name in WHEELS:
            download(name, staging)
        (bnb,) = staging.glob("bitsandbytes-*.whl")
        full_mib = bnb.stat().st_size / 2**20
        slim_bitsandbytes(bnb)
        print(f"bitsandbytes: {full_mib:.1f} MiB -> {bnb.stat().st_size / 2**20:.1f} MiB ({KEEP_BNB_LIBRARY} only)")
        build_self(staging)
        copy_tokenizer(staging / "tokenizer")
        if args.dest.exists():
            shutil.rmtree(args.dest)
        shutil.copytree(staging, args.dest)
    total = size_mib(args.dest)
    for wheel in sorted(args.dest.glob("*.whl")):
        print(f"  {wheel.stat().st_size / 2**20:6.2f} MiB  {wheel.name}")
    print(f"wheelhouse {args.dest}: {total:.1f} MiB (carry limit {CARRY_LIMIT_MIB} MiB)")
    if total > CARRY_LIMIT_MIB:
        print(f"too large to carry: over {CARRY_LIMIT_MIB} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
