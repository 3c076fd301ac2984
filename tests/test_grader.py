"""Answer extraction and equivalence (eval/grader.py)."""

import pytest

from eval.grader import answers_match, extract_boxed, extract_final_answer, grade


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{1}{\\sqrt{2}}} and finally \\boxed{3}.", "3"),
        ("\\fbox{a{b}c}", "a{b}c"),
        ("The result is $\\boxed 5$.", "5"),
        ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
        ("no box here", None),
        ("\\boxed{12} so the answer is within \\boxed{}.", "12"),
        ("cut off \\boxed{\\frac{1}{2", None),
    ],
)
def test_extract_boxed_takes_the_last_complete_box(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thus \\boxed{7}. The answer is 8.", "7"),
        ("So the final answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "18"),
        ("I don't know.", None),
        ("So, the answer is $x = 4$.", "x = 4"),
        ("The answer is $2.$", "2"),
        ("The answer is within \\boxed{}.", None),
    ],
)
def test_extract_final_answer_prefers_boxes_then_sentences_then_hashes(text, expected):
    assert extract_final_answer(text) == expected


def test_grade_reports_extraction_verdict_and_method():
    result = grade("Therefore \\boxed{\\dfrac{1}{2}}", "\\frac12")
    assert (result.extracted, result.correct) == ("\\dfrac{1}{2}", True)
    assert grade("nothing", "3").method == "no_answer"
    assert grade("\\boxed{4}", "3").method == "mismatch"


def test_words_are_not_judged_as_products_of_symbols():
    # math-verify alone reads "Evelny" as E*v*e*l*n*y and accepts the anagram of "Evelyn".
    assert not answers_match("Evelny", "Evelyn")
    assert answers_match("evelyn", "\\text{Evelyn}")


def test_gold_solutions_of_math500_and_gsm8k_grade_as_correct():
    """Real reference solutions: nested braces in MATH boxes, '#### n' in GSM8K."""
    import json

    from eval.benchmarks import DATA_DIR, load_benchmark

    for name, field in (("math500", "solution"), ("gsm8k", "answer")):
        rows = [json.loads(line) for line in (DATA_DIR / name / "test.jsonl").read_text().splitlines()]
        verdicts = [grade(row[field], item.answer).correct for row, item in zip(rows, load_benchmark(name), strict=True)]
        assert all(verdicts), f"{name}: {verdicts.count(False)} gold solutions graded wrong"
