"""Trace quality metrics: tool mentions, token counts, the language check, per-row and per-run numbers."""

from __future__ import annotations

import pytest

from tasks.stages.quality import count_tokens, count_tool_mentions, drop_reason_tally, is_english, summarize_quality
from tasks.stages.quality import trace_quality
from tasks.records import FilterDecision, NLTraceRecord, TraceRecord, TranslationRecord

CLEAN = ("We multiply: $12 \\times 7 = 84$. Since $\\gcd(48, 18) = 6$, $f(x) = \\log_b(x)$ and $a_n = x_{max}$, "
         "the answer is $\\boxed{84}$.")


def test_a_clean_solution_has_no_tool_mentions():
    assert count_tool_mentions(CLEAN) == 0


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("```python\nprint(12 * 7)\n```", 4),  # two fences, 'python', print(
        ("Using SymPy we get 84.", 1),
        ("The code outputs 84, as the tool showed.", 3),
        ("After executing the script: 84.", 2),
        ("from sympy import symbols\nx = symbols('x')", 3),
        ("We call solve_equation(x + 5 = 12) and get 7.", 1),
        ("By integer_gcd the answer is 6.", 1),
        ("Then solve(x**2 - 49, x) gives 7.", 1),
        (">>> 2**10\n1024", 1),
    ],
)
def test_tool_and_code_leftovers_are_counted(text, count):
    assert count_tool_mentions(text) == count


def test_asymptote_diagrams_are_figures_not_tool_calls():
    solution = "[asy]\nimport graph; size(100);\nrr_cartesian_axes(-5,5,-5,5);\n[/asy]\nThe range (all outputs"
    assert count_tool_mentions(solution) == 1  # only 'outputs'


def test_words_the_problem_itself_uses_are_not_counted():
    problem = "A lock code has 4 digits. How many codes are possible?"
    assert count_tool_mentions("Each digit of the code has 10 choices, so $10^4$.", problem=problem) == 0
    assert count_tool_mentions("The Python code gives 10000.", problem=problem) == 1


def test_token_count_counts_words_numbers_and_marks():
    assert count_tokens("12 * 7 = 84.") == 6
    assert count_tokens("") == 0


def test_language_check_flags_other_scripts_and_non_english_prose():
    assert is_english(CLEAN)
    assert is_english("$x = 7$")
    assert is_english("Then \\[\\frac{a}{b} \\cdot \\sqrt{c^2 + d^2} = \\left( e f g h i j k l m \\right)\\] so "
                      "$\\boxed{7}$ holds, and we are done with the whole argument here.")
    assert not is_english("Мы умножаем двенадцать на семь и получаем восемьдесят четыре.")
    assert not is_english("Wir multiplizieren zwölf mit sieben und erhalten vierundachtzig, also ist die Lösung "
                          "vierundachtzig, weil zwölf mal sieben genau vierundachtzig ergibt.")


def trace(pid: str, correct: bool, n_calls: int) -> TraceRecord:
    return TraceRecord(model="m", prompt_version="v1", problem_id=pid, problem="What is 12 * 7?",
                       reference_answer="84", plan="", messages_json="[]", final_answer="84" if correct else None,
                       answer_correct=correct, n_tool_calls=n_calls, n_turns=1,
                       status="answered" if correct else "no_answer", tool_protocol="code")


def translation(pid: str, index: int, faithful: bool) -> TranslationRecord:
    return TranslationRecord(model="m", prompt_version="v1", problem_id=pid, call_index=index, tool_name="python",
                             tool_output="84", explanation="12 times 7 is 84", derived_answer="84",
                             faithful=faithful, check_method="exact", attempts=1)


def decision(pid: str, kept: bool, reason: str | None, correct: bool) -> FilterDecision:
    return FilterDecision(problem_id=pid, kept=kept, drop_reason=reason, answer_correct=correct,
                          all_calls_faithful=kept, n_tool_calls=1, n_faithful_calls=1, leftover_tool_mentions=0,
                          solution_chars=10)


def nl(pid: str, solution: str) -> NLTraceRecord:
    return NLTraceRecord(model="m", prompt_version="v1", problem_id=pid, problem="What is 12 * 7?",
                         reference_answer="84", solution=solution, final_answer="84")


def test_per_row_metrics_and_run_aggregates():
    rows = [
        trace_quality(decision("a", True, None, True), trace("a", True, 2), nl("a", CLEAN),
                      [translation("a", 0, True), translation("a", 1, True)]),
        trace_quality(decision("b", False, "tool_mentions_left", True), trace("b", True, 1),
                      nl("b", "The Python tool printed 84, so \\boxed{84}."), [translation("b", 0, False)]),
        trace_quality(decision("c", False, "solver_no_answer", False), trace("c", False, 0), None, []),
    ]
    a, b, c = rows
    assert (a.faithful_rate, a.tool_mentions, a.english, a.answer_verified) == (1.0, 0, True, True)
    assert (b.faithful_rate, b.tool_mentions) == (0.0, 2)
    assert (c.rephrased, c.faithful_rate, c.solution_tokens) == (False, None, 0)
    summary = summarize_quality(rows)
    assert summary.traces == 3 and summary.kept == 1
    assert summary.faithful_translation_rate == pytest.approx(2 / 3, abs=1e-4)
    assert summary.answer_verified_rate == 1.0  # over the two rephrased rows
    assert summary.solver_correct_rate == pytest.approx(2 / 3, abs=1e-4)
    assert summary.kept_solution_tokens_mean == count_tokens(CLEAN)
    assert summary.rows_with_tool_mentions == 1
    assert summary.drop_reasons == {"tool_mentions_left": 1, "solver_no_answer": 1}


def test_empty_run_has_no_rates():
    summary = summarize_quality([])
    assert summary.traces == 0 and summary.faithful_translation_rate is None and summary.drop_reasons == {}
    assert drop_reason_tally([]) == {}
