"""The train-eval flow wires training and evaluation: a short real LoRA run, then base vs tuned eval."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.train_eval import TrainEvalParams, train_eval, training_run_dir
from tasks.parquet_io import write_records
from tasks.records import ChatMessage, SFTRecord
from training.config import load_recipe


def _sft(path: Path, n_rows: int = 4) -> Path:
    rows = [SFTRecord(id=f"r{i}", messages=[ChatMessage(role="user", content=f"What is {i} + {i}?"),
                                             ChatMessage(role="assistant", content=f"{i} + {i} = {2 * i}. The answer is \\boxed{{{2 * i}}}.")],
                      source="test", teacher_model="scripted/arithmetic", prompt_versions_json="[]", reference_answer=str(2 * i))
            for i in range(1, n_rows + 1)]
    return write_records(rows, SFTRecord, path)


def test_train_eval_refuses_an_empty_dataset_with_the_fix(tmp_path: Path):
    empty = write_records([], SFTRecord, tmp_path / "sft.parquet")
    with prefect_test_harness(server_startup_timeout=120), pytest.raises(ValueError, match="stronger teacher"):
        train_eval(TrainEvalParams(sft_path=str(empty), output_dir=str(tmp_path / "out")))


@pytest.mark.slow
def test_train_eval_trains_an_adapter_and_evaluates_base_and_tuned(tmp_path: Path):
    params = TrainEvalParams(sft_path=str(_sft(tmp_path / "sft.parquet")), output_dir=str(tmp_path / "out"),
                             max_steps=2, benchmarks=["gsm8k"], eval_limit=2, max_new_tokens=16, batch_size=2)
    with prefect_test_harness(server_startup_timeout=120):
        summary = train_eval(params)
    assert summary.train_steps == 2 and (Path(summary.adapter_dir) / "adapter_config.json").exists()
    assert set(summary.accuracy) == {"base", "tuned"} and set(summary.accuracy["tuned"]) == {"gsm8k"}
    assert Path(summary.report_path).exists()
    # The recipe trains QLoRA even here; without CUDA base and tuned are both evaluated on the full-precision base
    # (a 4-bit base on a CPU dequantizes every weight per token; tests/test_qlora_cpu.py evaluates one).
    assert summary.load_in_4bit == (load_recipe("embedded").model_args.load_in_4bit)
    assert summary.eval_in_4bit is False
    for label in ("base", "tuned"):
        rows = pq.read_table(Path(summary.report_path).parent / "per_problem" / label / "gsm8k.parquet").to_pylist()
        assert rows and not any("4-bit NF4" in r["backend"] for r in rows)


def test_each_dataset_and_recipe_trains_in_its_own_dir(tmp_path: Path):
    embedded, longer = load_recipe("embedded"), load_recipe("embedded", max_steps=7)
    first = training_run_dir(tmp_path, embedded, "a" * 64)
    assert first == training_run_dir(tmp_path, load_recipe("embedded"), "a" * 64), "same run must continue its dir"
    assert first.parent == tmp_path / "train"
    assert first != training_run_dir(tmp_path, embedded, "b" * 64), "new data must not meet old checkpoints"
    assert first != training_run_dir(tmp_path, longer, "a" * 64)


@pytest.mark.slow
def test_train_eval_reruns_on_new_data_in_the_same_output_dir(tmp_path: Path):
    """A second demo whose distill kept other rows used to stop at the first run's checkpoints."""
    out = tmp_path / "out"
    summaries = []
    with prefect_test_harness(server_startup_timeout=120):
        for n_rows in (3, 5):
            sft = _sft(tmp_path / f"sft{n_rows}.parquet", n_rows)
            summaries.append(train_eval(TrainEvalParams(sft_path=str(sft), output_dir=str(out), max_steps=1,
                                                        benchmarks=["gsm8k"], eval_limit=1, max_new_tokens=8)))
    assert [s.train_steps for s in summaries] == [1, 1]
    assert summaries[0].adapter_dir != summaries[1].adapter_dir
    assert all((Path(s.adapter_dir) / "adapter_config.json").exists() for s in summaries)
