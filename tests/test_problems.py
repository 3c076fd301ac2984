"""The problem-input stage: every bad input kind gives one clear error, or is skipped and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.stages.problems import FieldMap, ProblemInputError, bundled_problems_path, load_problems


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = [
    {"id": "a", "problem": "What is 2 + 2?", "answer": "4"},
    {"id": "b", "problem": "What is 3 * 3?", "answer": "9", "level": 1},
]


def test_bundled_demo_problems_load_cleanly():
    report = load_problems(bundled_problems_path())
    assert len(report.problems) == 24
    assert not report.skipped
    assert {p.source for p in report.problems} == {"tool-distill-demo"}
    assert len({p.id for p in report.problems}) == 24


def test_jsonl_rows_become_problem_records_with_file_stem_as_default_source(tmp_path):
    report = load_problems(write_jsonl(tmp_path / "mine.jsonl", GOOD))
    assert [p.id for p in report.problems] == ["a", "b"]
    assert report.problems[1].level == "1"
    assert report.problems[0].source == "mine"
    assert load_problems(tmp_path / "mine.jsonl", source="x").problems[0].source == "x"


def test_csv_and_parquet_read_the_same_rows(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text('id,problem,answer\na,"What is 2 + 2?",4\nb,"What is 3 * 3, twice?",18\n', encoding="utf-8")
    parquet_path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(GOOD), parquet_path)
    assert [p.problem for p in load_problems(csv_path).problems] == ["What is 2 + 2?", "What is 3 * 3, twice?"]
    assert [p.answer for p in load_problems(parquet_path).problems] == ["4", "9"]


def test_common_field_layouts_are_mapped(tmp_path):
    rows = [
        {"question": "Natalia sold 48 clips...", "answer": "Natalia sold 48/2 = 24.\n#### 1,072"},
        {"question": "Olympiad question", "final_answer": ["$\\frac{1}{2}$", "3"]},
        {"problem": "AMC question", "answer": 27.0},
        {"problem": "MATH question", "solution": "So $x = \\boxed{2}$ and then $y=\\boxed{\\frac{1}{3}}$."},
    ]
    problems = load_problems(write_jsonl(tmp_path / "mixed.jsonl", rows)).problems
    assert [p.answer for p in problems] == ["1072", "\\frac{1}{2}, 3", "27", "\\frac{1}{3}"]
    assert [p.id for p in problems] == ["mixed-1", "mixed-2", "mixed-3", "mixed-4"]


def test_math_solution_without_a_box_is_a_missing_answer(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "no box here"}])
    with pytest.raises(ProblemInputError, match='m.jsonl line 1: missing field: "answer"'):
        load_problems(path)


def test_an_empty_answer_marks_a_problem_for_a_majority_vote_in_every_format(tmp_path):
    rows = [{"id": "a", "problem": "What is 2 + 2?", "answer": ""}, {"id": "b", "problem": "What is 3 * 3?", "answer": None},
            {"id": "c", "problem": "What is 4 * 4?", "answer": "", "solution": "It is \\boxed{16}."}]
    problems = load_problems(write_jsonl(tmp_path / "open.jsonl", rows)).problems
    assert [(p.answer, p.answer_source) for p in problems] == [("", "none"), ("", "none"), ("16", "reference")]
    csv_path = tmp_path / "open.csv"
    csv_path.write_text('id,problem,answer\na,"What is 2 + 2?",\nb,"What is 3 * 3?",9\n', encoding="utf-8")
    assert [p.answer_source for p in load_problems(csv_path).problems] == ["none", "reference"]


def test_named_fields_replace_the_common_layouts(tmp_path):
    rows = [{"prompt": "What is 2 + 2?", "expected_answer": "4", "answer": "wrong column"},
            {"prompt": "What is 3 * 3?", "expected_answer": ""}]
    path = write_jsonl(tmp_path / "omr.jsonl", rows)
    mapped = load_problems(path, fields=FieldMap(problem="prompt", answer="expected_answer")).problems
    assert [(p.problem, p.answer, p.answer_source) for p in mapped] == [("What is 2 + 2?", "4", "reference"),
                                                                        ("What is 3 * 3?", "", "none")]
    voted = load_problems(path, fields=FieldMap(problem="prompt", answer="none")).problems
    assert {p.answer_source for p in voted} == {"none"}
    with pytest.raises(ProblemInputError, match='omr.jsonl line 1: missing field: "question"'):
        load_problems(path, fields=FieldMap(problem="question"))


def test_folder_of_files_prefixes_ids_so_per_file_numbering_does_not_collide(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    write_jsonl(folder / "algebra.jsonl", [{"id": "1", "problem": "x+1=2", "answer": "1"}])
    write_jsonl(folder / "geometry.jsonl", [{"id": "1", "problem": "area?", "answer": "2"}])
    problems = load_problems(folder).problems
    assert [p.id for p in problems] == ["algebra/1", "geometry/1"]
    assert [p.source for p in problems] == ["train/algebra", "train/geometry"]


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        (b'{"problem": "What is 2+2?", "answer": "4"}\n{"problem": "oops", \n', 2, "malformed JSON"),
        (b'{"problem": "What is 2+2?", "answer": "4"}\n{"answer": "4"}\n', 2, 'missing field: "problem"'),
        (b'{"problem": "What is 2+2?"}\n', 1, 'missing field: "answer"'),
        (b'{"problem": "What is 2+2?", "answer": "4"}\n{"problem": "caf\xe9 2+2", "answer": "4"}\n', 2, "not UTF-8"),
        (b'{"id": "p", "problem": "2+2?", "answer": "4"}\n{"id": "p", "problem": "3+3?", "answer": "6"}\n', 2,
         "duplicate id"),
        (b'{"problem": "' + b"x" * 500 + b'", "answer": "4"}\n', 1, "problem too long"),
        (b"[1, 2]\n", 1, "malformed JSON"),
    ],
    ids=["malformed", "missing-problem", "missing-answer", "non-utf8", "duplicate-id", "gigantic", "not-object"],
)
def test_each_bad_row_kind_raises_one_error_naming_file_line_and_fix(tmp_path, content, line, needle):
    path = tmp_path / "problems.jsonl"
    path.write_bytes(content)
    with pytest.raises(ProblemInputError) as caught:
        load_problems(path, max_problem_chars=100)
    message = str(caught.value)
    assert f"problems.jsonl line {line}: {needle}" in message
    # the hint only where skipping leaves problems: here the cases whose first line is good
    assert ("--skip-bad-rows" in message) == (line > 1)
    assert caught.value.bad_rows[0].line == line


def test_skip_bad_rows_keeps_good_rows_and_reports_each_skipped_one(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_bytes(
        b'{"id": "a", "problem": "What is 2+2?", "answer": "4"}\n'
        b"not json\n"
        b'{"id": "a", "problem": "dup", "answer": "1"}\n'
        b'{"id": "c", "problem": "caf\xe9", "answer": "1"}\n'
        b"\n"
        b'{"id": "d", "problem": "What is 5-1?", "answer": "4"}\n'
    )
    report = load_problems(path, skip_bad_rows=True)
    assert [p.id for p in report.problems] == ["a", "d"]
    assert [(b.line, b.reason.split(":")[0]) for b in report.skipped] == [
        (2, "malformed JSON"), (3, "duplicate id"), (4, "not UTF-8")]
    assert report.skipped_by_reason() == {"malformed JSON": 1, "not UTF-8": 1, "duplicate id": 1}


def test_empty_file_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    for skip in (False, True):
        with pytest.raises(ProblemInputError, match="empty.jsonl: empty file"):
            load_problems(path, skip_bad_rows=skip)


def test_a_byte_order_mark_and_windows_line_ends_are_read_as_plain_utf8(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"problem": "What is 1+1?", "answer": "2"}\r\n\r\n{"problem": "What is 2+2?", "answer": "4"}\r\n')
    assert [(p.problem, p.answer) for p in load_problems(path).problems] == [("What is 1+1?", "2"), ("What is 2+2?", "4")]
    csv_path = tmp_path / "p.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfproblem,answer\r\nWhat is 3+3?,6\r\n")
    assert [p.answer for p in load_problems(csv_path).problems] == ["6"]


def test_non_utf8_csv_row_is_reported_with_its_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"problem,answer\nWhat is 2+2?,4\ncaf\xe9 3+3?,6\n")
    with pytest.raises(ProblemInputError, match=r"p.csv line 3: not UTF-8: byte 0xe9"):
        load_problems(path)
    assert len(load_problems(path, skip_bad_rows=True).problems) == 1


def test_missing_file_and_unsupported_type_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="problems file not found"):
        load_problems(tmp_path / "nope.jsonl")
    (tmp_path / "p.txt").write_text("What is 2+2?", encoding="utf-8")
    with pytest.raises(ProblemInputError, match="unsupported file type '.txt'"):
        load_problems(tmp_path / "p.txt")


def _hub_cached_dataset(hub_cache: Path, repo_id: str, files: dict[str, list[dict]], readme: str = "") -> None:
    """The layout `hf download --repo-type dataset <id>` leaves in the Hub cache: refs/main names a snapshot."""
    repo = hub_cache / ("datasets--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    for name, rows in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), snapshot / name)
    if readme:
        (snapshot / "README.md").write_text(readme, encoding="utf-8")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)


def test_an_hf_id_downloaded_into_the_hub_cache_is_read_offline(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hub_cached_dataset(tmp_path / "hub", "someorg/plain", {"data/train-00000-of-00001.parquet": [
        {"question": "What is 2 + 2?", "answer": "#### 4"}, {"question": "What is 3 + 3?", "answer": "#### 6"}]})
    assert [(p.problem, p.answer) for p in load_problems("hf:someorg/plain").problems] == [
        ("What is 2 + 2?", "4"), ("What is 3 + 3?", "6")]
    configs = ("---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*.parquet\n"
               "  - split: test\n    path: main/test-*.parquet\n---\n")
    _hub_cached_dataset(tmp_path / "hub", "someorg/gsm8k_like", {
        "main/train-00000-of-00001.parquet": [{"question": "What is 1 + 1?", "answer": "#### 2"}],
        "main/test-00000-of-00001.parquet": [{"question": "What is 5 + 5?", "answer": "#### 10"}]}, readme=configs)
    assert [p.answer for p in load_problems("hf:someorg/gsm8k_like:main:test").problems] == ["10"]
    with pytest.raises(ProblemInputError, match="not found: no save_to_disk folder there and no copy"):
        load_problems("hf:someorg/not_cached")
