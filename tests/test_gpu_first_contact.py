"""The prepared GPU check runs here in its CPU mode, so it cannot rot between the rare GPU sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # two training processes and a generation on a 2-layer model: ~50 s on 2 cores
def test_first_contact_script_runs_end_to_end_in_cpu_tiny_mode(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run([str(REPO / "benchmarks" / "gpu" / "first_contact.sh"), "--cpu", "--tiny"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / "first_contact.json").read_text())
    assert json.loads(done.stdout.strip().splitlines()[-2]) == figures  # the last JSON line printed
    assert figures["versions"]["trl"] and figures["versions"]["cuda_available"] is False
    assert figures["ours_qlora"]["load_in_4bit"] is True  # the same QLoRA path the GPU run takes
    assert figures["ours_qlora"]["tokens_per_s"] > 0 and figures["plain"]["tokens_per_s"] > 0
    assert figures["generate_hf"]["prompts"] == 4 and figures["generate_hf"]["new_tokens"] > 0
    log = (tmp_path / "first_contact.log").read_text()
    assert "ours-qlora:" in log and "plain:" in log and "generate (transformers):" in log


def test_bitsandbytes_is_repacked_with_the_cuda13_library_only_and_a_matching_record(tmp_path):
    from benchmarks.gpu.wheelhouse import slim_bitsandbytes

    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as fake:
        for name in ("bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cuda130.so",
                     "bitsandbytes/libbitsandbytes_cuda121.so", "bitsandbytes/libbitsandbytes_rocm63.so"):
            fake.writestr(name, f"contents of {name}")
        fake.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "stale\n")
    slim_bitsandbytes(wheel)
    with zipfile.ZipFile(wheel) as slim:
        names = set(slim.namelist())
        record = slim.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert names == {"bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cuda130.so",
                     "bitsandbytes-0.50.2.dist-info/RECORD"}
    assert "libbitsandbytes_cuda130.so,sha256=" in record and "cuda121" not in record and "stale" not in record
