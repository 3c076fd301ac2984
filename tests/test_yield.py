"""Several samples per problem, through the real distill flow with the scripted model (in process, or behind the
mock OpenAI-compatible server, which counts requests per agent): adaptive stopping, reuse of drawn samples when k
grows, duplicate traces, majority labels for problems without answers, and an hf: problem source."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mock_llm_server import MockLLMServer
from prefect.testing.utilities import prefect_test_harness

from flows.distill import DistillParams, distill
from tasks.llm import LLMSettings
from tasks.llm.scripted_provider import WRONG_SAMPLES_MARKER
from tasks.records import ProblemRecord, TraceRecord
from tasks.stages.config import SamplingConfig
from tasks.stages.dedup import near_duplicates
from tasks.stages.sampling import label_by_majority, problems_to_sample

SCRIPTED = LLMSettings(model="scripted/arithmetic", concurrency_limit=None)
SOLVER_CALLS_PER_SAMPLE = 3  # plan, code, answer


def _wrong_on(*samples: int) -> str:
    return f" (The solver goes {WRONG_SAMPLES_MARKER} {', '.join(map(str, samples))}.)"


@pytest.fixture(scope="module")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _params(problems: str, out: Path, llm: LLMSettings = SCRIPTED, **sampling: float) -> DistillParams:
    params = DistillParams(problems=problems, output_dir=str(out), decontaminate=False, llm=llm,
                           sampling=SamplingConfig(**sampling))
    params.solve.tool_protocol = "code"
    return params


def _rows(out: Path, stage: str) -> list[dict]:
    return pq.read_table(out / f"{stage}.parquet").to_pylist()


def _samples_of(out: Path) -> dict[str, list[int]]:
    drawn: dict[str, list[int]] = {}
    for t in _rows(out, "traces"):
        drawn.setdefault(t["problem_id"], []).append(t["sample_index"])
    return {pid: sorted(indexes) for pid, indexes in drawn.items()}


def _reasons(out: Path) -> dict[tuple[str, int], str | None]:
    return {(d["problem_id"], d["sample_index"]): d["drop_reason"] for d in _rows(out, "filter_report")}


def test_sampling_stops_at_m_distinct_correct_traces_and_raising_k_draws_only_new_samples(prefect_api, tmp_path,
                                                                                          monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-yield-test")
    problems = _write(tmp_path / "problems.jsonl", [
        {"id": "a", "problem": "What is 12 * 7?", "answer": "84"},  # right every time: 2 samples make 2 traces
        {"id": "b", "problem": "What is 5 * 6?" + _wrong_on(0, 1), "answer": "30"},  # right from sample 3 on
        {"id": "c", "problem": "What is 9 * 9?" + _wrong_on(*range(8)), "answer": "81"},  # never right
    ])
    out = tmp_path / "out"
    with MockLLMServer() as server:
        llm = LLMSettings(model="openai/scripted", api_base=server.url, concurrency_limit=None)
        first = distill(_params(problems, out, llm, samples_per_problem=2, keep_per_problem=2))
        solver_first = server.stats().by_agent["solver"]
        assert _samples_of(out) == {"a": [0, 1], "b": [0, 1], "c": [0, 1]}
        assert solver_first == 6 * SOLVER_CALLS_PER_SAMPLE and first.kept == 2

        second = distill(_params(problems, out, llm, samples_per_problem=4, keep_per_problem=2))
        stats = server.stats()
    # a had its 2 distinct correct traces: no more samples; b and c draw samples 3 and 4 only
    assert _samples_of(out) == {"a": [0, 1], "b": [0, 1, 2, 3], "c": [0, 1, 2, 3]}
    assert stats.by_agent["solver"] - solver_first == 4 * SOLVER_CALLS_PER_SAMPLE
    assert stats.repeated_requests == 0, "a sample drawn by the first run was drawn again"
    reasons = _reasons(out)
    assert [reasons[("b", i)] for i in range(4)] == ["solver_wrong_answer", "solver_wrong_answer", None, None]
    assert {reasons[("c", i)] for i in range(4)} == {"solver_wrong_answer"}
    assert [r["id"] for r in _rows(out, "sft")] == ["a", "a/sample-1", "b/sample-2", "b/sample-3"]
    report = second.yield_report
    assert (report.kept, report.problems_with_kept, report.kept_per_problem) == (4, 2, round(4 / 3, 4))
    assert [(s.sample_index, s.drawn, s.kept, s.problems_first_kept) for s in report.by_sample] == [
        (0, 3, 1, 1), (1, 3, 1, 0), (2, 2, 1, 1), (3, 2, 1, 0)]
    translate_and_rephrase = 2 * 4  # one tool call to derive and one solution per kept trace, no retry needed
    assert report.llm_calls == 10 * SOLVER_CALLS_PER_SAMPLE + translate_and_rephrase
    assert report.kept_per_1000_calls == round(1000 * 4 / report.llm_calls, 2)
    card = (out / "README.md").read_text()
    assert "## Yield" in card and "| 2 | 2 | 1 | 1 | 1 | 1 |" in card  # sample 2: drawn, correct, distinct, kept, new


def test_duplicate_traces_are_dropped_before_translation_or_after_rephrasing(prefect_api, tmp_path) -> None:
    problems = _write(tmp_path / "problems.jsonl", [{"id": "a", "problem": "What is 12 * 7?", "answer": "84"}])
    out = tmp_path / "out"
    summary = distill(_params(problems, out, samples_per_problem=5, keep_per_problem=5))
    reasons = _reasons(out)
    # samples 0-2 write different code; 4 writes sample 0's code again; 3 differs in code but its solution
    # reads exactly like sample 0's: one is dropped before any translation is paid for, the other after
    assert [reasons[("a", i)] for i in range(5)] == [None, None, None, "duplicate_trace", "duplicate_trace"]
    assert sorted({t["sample_index"] for t in _rows(out, "translations")}) == [0, 1, 2, 3]
    assert sorted(n["sample_index"] for n in _rows(out, "nl_traces")) == [0, 1, 2, 3]
    assert summary.drop_reasons == {"duplicate_trace": 2} and summary.kept == 3
    assert "| trace | 2 |" in (out / "README.md").read_text()


def test_problems_without_answers_are_labelled_by_majority_or_dropped_without_consensus(prefect_api, tmp_path) -> None:
    problems = _write(tmp_path / "problems.jsonl", [
        {"id": "four_of_five", "problem": "What is 12 * 7?" + _wrong_on(1), "answer": ""},
        {"id": "three_of_five", "problem": "What is 9 * 9?" + _wrong_on(0, 1), "answer": None},
        {"id": "two_of_five", "problem": "What is 5 * 6?" + _wrong_on(0, 1, 2), "answer": ""},
        {"id": "reference", "problem": "What is 2 + 3?", "answer": "5"},
    ])
    out = tmp_path / "out"
    summary = distill(_params(problems, out, samples_per_problem=5, keep_per_problem=1, majority_min=0.6))
    labels = {p["id"]: (p["answer"], p["answer_source"], p["answer_agreement"]) for p in _rows(out, "problems")}
    assert labels == {"four_of_five": ("84", "majority", 0.8), "three_of_five": ("81", "majority", 0.6),
                      "two_of_five": ("", "none", 0.4), "reference": ("5", "reference", None)}
    assert _samples_of(out) == {"four_of_five": [0, 1, 2, 3, 4], "three_of_five": [0, 1, 2, 3, 4],
                                "two_of_five": [0, 1, 2, 3, 4], "reference": [0]}  # a vote needs every sample
    reasons = _reasons(out)
    assert {reasons[("two_of_five", i)] for i in range(5)} == {"no_consensus"}
    # graded against the label before translation: the one wrong sample is wrong; one trace kept (keep_per_problem)
    assert [reasons[("four_of_five", i)] for i in range(5)] == [
        None, "solver_wrong_answer", "keep_limit_reached", "keep_limit_reached", "duplicate_trace"]
    sft = {r["id"]: (r["reference_answer"], r["answer_source"]) for r in _rows(out, "sft")}
    assert sft == {"four_of_five": ("84", "majority"), "three_of_five/sample-2": ("81", "majority"),
                   "reference": ("5", "reference")}
    assert summary.yield_report.labels == {"reference": 1, "majority": 2, "no_consensus": 1}
    card = (out / "README.md").read_text()
    assert "| majority vote | 2 |" in card and "| no consensus (dropped) | 1 |" in card


def test_an_hf_dataset_saved_to_disk_is_read_with_its_fields_mapped(prefect_api, tmp_path) -> None:
    import datasets

    rows = [{"prompt": "What is 12 * 7?", "expected_answer": "84", "uid": "x1"},
            {"prompt": "What is 2 + 3?", "expected_answer": "5", "uid": "x2"}]
    folder = tmp_path / "omr_like"
    datasets.DatasetDict({"cot": datasets.Dataset.from_list(rows), "tir": datasets.Dataset.from_list(rows[:1])}
                         ).save_to_disk(str(folder))
    out = tmp_path / "out"
    params = _params(f"hf:{folder}:cot", out)
    params.problem_field, params.answer_field = "prompt", "expected_answer"
    summary = distill(params)
    problems = _rows(out, "problems")
    assert [(p["id"], p["answer"], p["source"]) for p in problems] == [("omr_like-cot-1", "84", "omr_like"),
                                                                       ("omr_like-cot-2", "5", "omr_like")]
    assert summary.kept == 2 and "omr_like" in (out / "README.md").read_text()


# ---- the decisions, on small inputs ---------------------------------------------------------------------------


def _sample(index: int, answer: str | None, status: str = "answered") -> TraceRecord:
    return TraceRecord(model="m", prompt_version="solver/v1", problem_id="p", sample_index=index, problem="Half of 1?",
                       reference_answer="", plan="", messages_json="[]", final_answer=answer, answer_correct=False,
                       n_tool_calls=0, n_turns=1, status=status, tool_protocol="code")  # type: ignore[arg-type]


UNLABELLED = ProblemRecord(id="p", problem="Half of 1?", answer="", answer_source="none")


def test_the_grader_decides_which_answers_are_one_vote() -> None:
    votes = [_sample(0, "1/2"), _sample(1, "0.5"), _sample(2, "\\frac{1}{2}"), _sample(3, "2")]
    labelled = label_by_majority(UNLABELLED, votes, majority_min=0.6)
    assert (labelled.answer, labelled.answer_source, labelled.answer_agreement) == ("1/2", "majority", 0.75)


def test_a_sample_without_answer_votes_against_and_a_failed_call_does_not_vote() -> None:
    no_answer = [_sample(0, "1/2"), _sample(1, "1/2"), _sample(2, None, "no_answer"), _sample(3, None, "no_answer")]
    assert label_by_majority(UNLABELLED, no_answer, majority_min=0.6).answer_source == "none"  # 2 of 4
    failed = [_sample(0, "1/2"), _sample(1, "1/2"), _sample(2, None, "error"), _sample(3, None, "error")]
    assert label_by_majority(UNLABELLED, failed, majority_min=0.6).answer_agreement == 1.0  # 2 of 2 voters
    assert label_by_majority(UNLABELLED, [_sample(0, "1/2")], majority_min=0.6).answer_source == "none"  # 1 vote


def test_only_problems_short_of_m_distinct_correct_traces_or_without_a_label_get_another_sample() -> None:
    reference = ProblemRecord(id="r", problem="What is 2 + 3?", answer="5")
    correct = TraceRecord(**_sample(0, "5").model_dump() | {"problem_id": "r", "answer_correct": True})
    config = SamplingConfig(samples_per_problem=3, keep_per_problem=1)
    assert problems_to_sample([reference, UNLABELLED], [correct], [], 1, config) == [UNLABELLED]
    assert problems_to_sample([reference, UNLABELLED], [correct], [], 3, config) == []  # k samples drawn


def test_near_identical_solutions_keep_the_shorter() -> None:
    long = "First 12 * 7 = 84 by long multiplication, so the answer is \\boxed{84}. Done, indeed."
    short = "First 12 * 7 = 84 by long multiplication, so the answer is \\boxed{84}. Done."
    other = "Seven twelves: 7 * 10 = 70 and 7 * 2 = 14, and 70 + 14 = 84, so \\boxed{84}."
    assert near_duplicates([("long", long), ("short", short), ("other", other)], threshold=0.8) == [("long", "short")]
    assert near_duplicates([("long", long), ("short", short)], threshold=0.95) == []


def test_keep_per_problem_beyond_samples_per_problem_is_refused() -> None:
    with pytest.raises(ValueError, match="raise --samples-per-problem"):
        SamplingConfig(samples_per_problem=2, keep_per_problem=3)
