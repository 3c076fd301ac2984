"""The dataset card makes the output folder loadable with `datasets`, and its counts match the Parquet."""

from __future__ import annotations

import json

import pytest
import yaml

from tasks.stages.dataset_card import DatasetCardInfo, DecontaminationReport, write_dataset_card
from tasks.stages.hub_upload import push_to_hub
from tasks.stages.decontam import ContaminationHit
from tasks.parquet_io import stage_path, write_records
from tasks.stages.quality import summarize_quality
from tasks.records import ChatMessage, FilterDecision, ProblemRecord, SFTRecord


def sft_row(i: int) -> SFTRecord:
    return SFTRecord(id=f"p{i}", messages=[ChatMessage(role="user", content=f"What is {i} + {i}?"),
                                           ChatMessage(role="assistant", content=f"{i} + {i} = {2 * i}. \\boxed{{{2 * i}}}")],
                     source="demo", teacher_model="local/smollm2-135m",
                     prompt_versions_json=json.dumps(["solver@v1"]), reference_answer=str(2 * i))


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "out"
    write_records([ProblemRecord(id=f"p{i}", problem=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(5)],
                  ProblemRecord, stage_path(out, "problems"))
    decisions = [FilterDecision(problem_id=f"p{i}", kept=i < 3, drop_reason=None if i < 3 else "wrong_answer",
                                answer_correct=i < 3, all_calls_faithful=True, n_tool_calls=1, n_faithful_calls=1,
                                leftover_tool_mentions=0, solution_chars=20) for i in range(5)]
    write_records(decisions, FilterDecision, stage_path(out, "filter_report"))
    write_records([sft_row(i) for i in range(3)], SFTRecord, stage_path(out, "sft"))
    (out / ".prefect-results").mkdir()
    return out


def card_info(**overrides) -> DatasetCardInfo:
    info = DatasetCardInfo(
        pretty_name="tool-distill demo",
        license="apache-2.0",
        source_datasets=["tool-distill-demo"],
        teacher_model="local/smollm2-135m",
        prompt_versions={"solver": "v1", "translator": "v1", "rephraser": "v1"},
        stage_counts={"loaded": 6, "after_decontamination": 5, "after_dedup": 5, "solved_correct": 4, "kept": 3},
        drop_reasons={"wrong_answer": 2},
        decontamination=DecontaminationReport(
            benchmarks=["math500", "gsm8k"], ngram_size=8, min_coverage=0.5,
            hits=[ContaminationHit(problem_id="x", benchmark="gsm8k", benchmark_id="gsm8k/0",
                                   matched_span="janet s ducks | lay 16 eggs", method="exact", coverage=1.0)]),
        duplicates_removed={"problem": 1, "trace": 0},
        quality=summarize_quality([]),
        cost_usd=0.0,
    )
    return info.model_copy(update=overrides)


def read_header(path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_header_describes_the_run_and_counts_rows_from_the_files(run_dir):
    path = write_dataset_card(run_dir, card_info())
    assert path == run_dir / "README.md"
    header = read_header(path)
    assert header["license"] == "apache-2.0"
    assert header["source_datasets"] == ["tool-distill-demo"]
    assert header["configs"][0] == {"config_name": "default", "data_files": [{"split": "train", "path": "sft.parquet"}]}
    assert {c["config_name"] for c in header["configs"]} == {"default", "problems", "filter_report"}
    meta = header["tool_distill"]
    assert meta["teacher_model"] == "local/smollm2-135m"
    assert meta["prompt_versions"]["rephraser"] == "v1"
    assert meta["file_rows"] == {"problems": 5, "filter_report": 5, "sft": 3}
    assert meta["decontamination"]["removed_by_benchmark"] == {"gsm8k": 1}
    assert meta["drop_reasons"] == {"wrong_answer": 2}
    body = path.read_text(encoding="utf-8")
    assert "| x | gsm8k | gsm8k/0 | exact | 1.0 | janet s ducks \\| lay 16 eggs |" in body  # pipes escaped
    assert "| kept | 3 |" in body and "| `sft.parquet` | 3 |" in body


def test_datasets_loads_the_folder_as_is_and_counts_match(run_dir):
    datasets = pytest.importorskip("datasets")
    write_dataset_card(run_dir, card_info())
    cache = run_dir.parent / "hf-cache"
    train = datasets.load_dataset(str(run_dir), split="train", cache_dir=str(cache))
    assert train.num_rows == read_header(run_dir / "README.md")["tool_distill"]["file_rows"]["sft"] == 3
    assert train[0]["messages"][1]["role"] == "assistant"
    report = datasets.load_dataset(str(run_dir), "filter_report", split="train", cache_dir=str(cache))
    assert report.num_rows == 5


def test_card_needs_the_sft_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="sft.parquet"):
        write_dataset_card(tmp_path, card_info())


def test_push_to_hub_without_a_token_says_how_to_get_one(run_dir, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(RuntimeError, match="no Hugging Face token"):
        push_to_hub(run_dir, "someone/tool-distill-demo")
