"""The train-eval flow wires training and evaluation: a short real LoRA run, then base vs tuned eval."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.train_eval import TrainEvalParams, train_eval
from tasks.parquet_io import write_records
from tasks.records import ChatMessage, SFTRecord


def _sft(path: Path) -> Path:
    rows = [SFTRecord(id=f"r{i}", messages=[ChatMessage(role="user", content=f"What is {i} + {i}?"),
                                             ChatMessage(role="assistant", content=f"{i} + {i} = {2 * i}. The answer is \\boxed{{{2 * i}}}.")],
                      source="test", teacher_model="scripted/arithmetic", prompt_versions_json="[]", reference_answer=str(2 * i))
            for i in range(1, 5)]
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
