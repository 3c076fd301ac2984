"""pass@k, maj@k, the 95% interval, and the summary/report built from graded rows."""

import json
import math

import pytest

from eval.harness import EvalConfig, EvalRecord, k_values, summarize
from eval.metrics import accuracy_interval, bootstrap_interval, majority_correct, pass_at_k, wilson_interval
from eval.report import inline_chart, markdown_report, summary_rows, write_chart


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 0.5
    assert pass_at_k(5, 4, 2) == 1.0  # fewer wrong samples than k: a right one is always drawn
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_majority_vote_groups_equivalent_spellings_and_ignores_missing_answers():
    # "18.0" and "18" are the same answer: 2 votes beat the single "17".
    assert majority_correct(["17", "18.0", "18"], [False, True, True])
    assert not majority_correct(["17", "17", "18"], [False, False, True])
    assert not majority_correct([None, None], [False, False])
    assert majority_correct([None, None, "5"], [False, False, True])  # no answer never wins
    assert majority_correct(["5", "6"], [True, False])  # tie: first answer seen wins


def test_wilson_interval_stays_inside_0_1_and_is_not_empty_at_zero():
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and 0.05 < high < 0.1
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and 0.9 < low < 0.95
    low, high = wilson_interval(25, 50)
    assert low < 0.5 < high and high - low == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 50), rel=0.05)


def test_fractional_scores_use_a_reproducible_bootstrap():
    scores = [0.0, 1 / 3, 2 / 3, 1.0] * 10
    assert accuracy_interval(scores) == bootstrap_interval(scores)
    low, high = accuracy_interval(scores)
    assert low < 0.5 < high


def test_k_values_are_powers_of_two_up_to_n():
    assert k_values(1) == [1]
    assert k_values(4) == [1, 2, 4]
    assert k_values(6) == [1, 2, 4, 6]


def _record(problem: str, sample: int, correct: bool, extracted: str | None, label: str = "base") -> EvalRecord:
    return EvalRecord(
        benchmark="gsm8k", problem_id=problem, label=label, model="m", adapter=None, backend="m", prompt="p",
        reference_answer="18", sample_index=sample, completion="c", extracted_answer=extracted,
        correct=correct, grade_method="exact" if correct else "mismatch", prompt_tokens=10,
        completion_tokens=20, finish_reason="stop" if extracted else "length", latency_s=1.0, batch_size=1,
        seed=0, temperature=0.7, top_p=1.0, max_new_tokens=20,
    )


def test_summary_of_sampled_runs_reports_pass_at_k_and_maj_at_k(tmp_path):
    records = [
        _record("a", 0, True, "18"), _record("a", 1, False, "17"), _record("a", 2, False, None),
        _record("b", 0, False, "3"), _record("b", 1, False, "3"), _record("b", 2, False, "4"),
    ]
    summary = summarize(records, generation_s=2.0, path=tmp_path / "x.parquet")
    assert (summary.n_problems, summary.samples_per_problem) == (2, 3)
    assert summary.accuracy == pytest.approx((1 / 3 + 0) / 2)
    assert summary.pass_at[1] == pytest.approx(1 / 6)
    assert summary.pass_at[3] == pytest.approx(0.5)  # problem a is solved by one of its 3 samples
    # maj@2: a votes "18" vs "17", a tie that the first answer seen ("18", right) wins; b votes "3" (wrong).
    assert summary.maj_at[2] == pytest.approx(0.5)
    assert summary.maj_at[3] == pytest.approx(0.5)
    assert summary.no_answer_rate == pytest.approx(1 / 6)
    assert summary.tokens_per_s == pytest.approx(120 / 2.0)


def test_report_and_chart_compare_labels(tmp_path):
    base = summarize([_record("a", 0, False, "1"), _record("b", 0, True, "18")], 1.0, tmp_path / "b.parquet")
    tuned = summarize([_record("a", 0, True, "18", "tuned"), _record("b", 0, True, "18", "tuned")], 1.0,
                      tmp_path / "t.parquet")
    text = markdown_report([base, tuned], EvalConfig(limit=2, max_new_tokens=20), "accuracy.png")
    assert "first 2 problems" in text and "greedy" in text
    assert "| gsm8k | base | 2 | 50.0 [" in text
    assert "| gsm8k | 50.0 | 100.0 | +50.0 |" in text
    chart = write_chart([base, tuned], tmp_path / "accuracy.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_carries_its_chart_inline_and_the_table_a_row_per_label_and_benchmark(tmp_path):
    summary = summarize([_record("a", 0, True, "18")], 1.0, tmp_path / "a.parquet")
    chart = write_chart([summary], tmp_path / "accuracy.png")
    inline = inline_chart(markdown_report([summary], EvalConfig(), chart.name), chart)
    assert "](data:image/png;base64," in inline and "](accuracy.png)" not in inline  # the chart travels inline
    assert inline_chart("# no chart", tmp_path / "missing.png") == "# no chart"
    assert summary_rows([summary]) == [{"benchmark": summary.benchmark, "label": summary.label, "problems": 1,
                                        "accuracy_pct": 100.0, "ci_low_pct": round(100 * summary.ci_low, 2),
                                        "ci_high_pct": round(100 * summary.ci_high, 2),
                                        "mean_tokens": round(summary.mean_completion_tokens, 1)}]
