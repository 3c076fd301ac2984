"""The distill flow end to end on Prefect's test API: every stage file, its schema, lineage, and caching."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.distill import DistillParams, distill
from tasks.llm import LLMSettings
from tasks.records import STAGE_RECORDS, arrow_schema
from tasks.llm.scripted_provider import ScriptedLLM

LLM_STAGES = ("traces", "tool_calls", "translations", "nl_traces")


def _write_problems(path: Path) -> Path:
    rows = [{"id": "a", "problem": "What is 12 * 7?", "answer": "84"},
            {"id": "b", "problem": "What is 123 + 456?", "answer": "579"},
            {"id": "c", "problem": "What is 2 + 2?", "answer": "5"}]  # wrong reference: must be dropped
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _assert_stage_files(out: Path, model: str) -> None:
    """Every stage file exists with its record's schema; every LLM row names its model and prompt version."""
    for stage, record in STAGE_RECORDS.items():
        table = pq.read_table(out / f"{stage}.parquet")
        assert table.schema.remove_metadata().equals(arrow_schema(record).remove_metadata()), stage
    for stage in LLM_STAGES:
        table = pq.read_table(out / f"{stage}.parquet")
        assert set(table.column("model").to_pylist()) <= {model}, stage
        assert all(v.split("/")[1].startswith("v") for v in table.column("prompt_version").to_pylist()), stage


def test_distill_writes_every_stage_with_its_schema_and_a_rerun_makes_no_llm_calls(prefect_api, tmp_path: Path):
    params = DistillParams(problems=str(_write_problems(tmp_path / "problems.jsonl")), output_dir=str(tmp_path / "out"),
                           llm=LLMSettings(model="scripted/arithmetic"))
    before = ScriptedLLM.calls_served
    summary = distill(params)
    first_run_calls = ScriptedLLM.calls_served - before

    out = tmp_path / "out"
    _assert_stage_files(out, "scripted/arithmetic")

    assert (summary.problems, summary.solved_correct, summary.kept) == (3, 2, 2)
    assert summary.drop_reasons == {"solver_wrong_answer": 1}
    assert pq.read_table(out / "sft.parquet").column("id").to_pylist() == ["a", "b"]
    assert first_run_calls > 0
    card = (out / "README.md").read_text()
    assert card.startswith("---") and "scripted/arithmetic" in card

    before = ScriptedLLM.calls_served
    again = distill(params)
    assert ScriptedLLM.calls_served == before, "a re-run must be served from the task cache"
    assert again == summary


@pytest.mark.slow
def test_distill_runs_end_to_end_on_the_embedded_model(prefect_api, tmp_path: Path):
    params = DistillParams(problems=str(_write_problems(tmp_path / "problems.jsonl")), output_dir=str(tmp_path / "out"))
    params.solve.plan_first, params.solve.max_turns, params.solve.turn_max_tokens = False, 2, 96
    params.translate.max_tokens, params.translate.max_attempts, params.rephrase.max_tokens = 96, 1, 128
    summary = distill(params)
    _assert_stage_files(tmp_path / "out", "local/smollm2-135m")
    traces = pq.read_table(tmp_path / "out" / "traces.parquet").to_pylist()
    assert summary.problems == 3 and len(traces) == 3
    assert all(t["n_turns"] >= 1 and t["status"] in {"answered", "no_answer"} for t in traces)
