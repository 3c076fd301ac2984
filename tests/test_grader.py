"""Answer extraction and equivalence (eval/grader.py)."""

import pytest

from eval.grader import answers_match, extract_boxed, extract_final_answer, grade, normalize_answer


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
        ("Thus \\boxed{7}. The answer is 8.", "8"),  # a later answer sentence corrects the box
        ("Thus \\boxed{7}. The answer is reasonable.", "7"),  # ... only one that states a value
        ("So \\boxed{15}, not \\boxed{14}.", "15"),
        ("Final answer: \\boxed{73}. (An earlier attempt gave \\boxed{37}.)", "73"),
        ("So the final answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "18"),
        ("I don't know.", None),
        ("So, the answer is $x = 4$.", "x = 4"),
        ("The answer is $2.$", "2"),
        ("The answer is within \\boxed{}.", None),
        ("Only (C) fits.\nThe correct option is (C).", "(C)"),
        ("The best choice is B.", "B"),
        ("So the answer choice is $\\textbf{(E)}$.", "\\textbf{(E)}"),
        ("<think>maybe \\boxed{3}</think>\n<answer>17</answer>", "17"),
        ("<answer>The answer is $\\frac{1}{2}$.</answer>", "\\frac{1}{2}"),
        ("<answer>\n\\boxed{x = 4}\n</answer>", "x = 4"),
        ("Final answer:\n\\[\n\\frac{3}{4}\n\\]", "\\frac{3}{4}"),
        ("The final answer is:\n$$\n5\n$$", "5"),
        ("## Answer\n\n$x = 4$", "x = 4"),  # a markdown heading, the answer on a later line
        ("Final answer:\n```\n42\n```", "42"),  # in a code fence
        ("We add them.\nResult: 42", "42"),  # a "Result:" label opening a line
        ("The result is 12. Then adding 3 we get 15.", None),  # "result" mid-sentence is no anchor
    ],
)
def test_extract_final_answer_prefers_boxes_then_sentences_then_hashes(text, expected):
    assert extract_final_answer(text) == expected


def test_grade_reports_extraction_verdict_and_method():
    result = grade("Therefore \\boxed{\\dfrac{1}{2}}", "\\frac12")
    assert (result.extracted, result.correct) == ("\\dfrac{1}{2}", True)
    assert grade("I could not solve this.", "3").method == "no_answer"
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


# ---------------------------------------------------------------- formats models write (issue 23)


@pytest.mark.parametrize(
    ("completion", "reference", "correct"),
    [
        ("First \\boxed{2}, but that misses a case; the answer is \\boxed{3}.", "3", True),
        ("First \\boxed{3}, then corrected to \\boxed{2}.", "3", False),
        ("The roots are $\\boxed{2}$ and $\\boxed{-5}$.", "-5, 2", True),
        ("The roots are $\\boxed{2}$ and $\\boxed{-4}$.", "-5, 2", False),
        ("So $x = \\boxed{2}$ and $y = \\boxed{3}$.", "(2, 3)", True),
        ("So $x = \\boxed{3}$ and $y = \\boxed{2}$.", "(2, 3)", False),  # a point's order matters
    ],
)
def test_several_boxes_mean_the_last_or_together_the_listed_answer(completion, reference, correct):
    assert grade(completion, reference).correct is correct


def test_minerva_final_answer_sentence_is_extracted_whole():
    text = "We get 12 and 7.\nFinal Answer: The final answer is $\\$36$. I hope it is correct."
    assert grade(text, "36").extracted == "\\$36"
    assert grade(text, "36").correct
    assert not grade(text.replace("36", "35"), "36").correct


@pytest.mark.parametrize(
    ("prediction", "reference", "correct"),
    [
        ("1\\,000", "1000", True), ("1{,}000", "1000", True), ("1,\\!000", "1000", True),
        ("1\u2009000", "1000", True), ("12,345,678", "12345678", True),
        ("2,880,001", "2880000", False),  # integers are exact: no relative tolerance between them
        ("3,5", "3.5", True), ("0,125", "\\frac{1}{8}", True), ("3,5", "3, 5", True),
        ("1e6", "1000000", True), ("3\\times10^{5}", "300000", True), ("3 \\cdot 10^{6}", "300000", False),
        ("5\\text{ cm}^2", "5", True), ("5\\text{ cm}^2", "25", False), ("18 dollars", "18", True),
        ("12.5\\%", "12.5", True), ("30^\\circ", "30", True), ("x = 3", "3", True), ("x = 4", "3", False),
        ("2516_{11}", "2516_8", False),  # digits in another base are not the same number
        ("(2, 3)", "[2, 3]", False), ("\\left[2,3\\right)", "[2, 3)", True), ("x \\approx 11", "11", True),
    ],
)
def test_separators_notation_units_and_relations(prediction, reference, correct):
    assert answers_match(prediction, reference) is correct


def test_units_are_only_known_units_or_long_words():
    assert normalize_answer("5 \\mathrm{kg}")[0] == "5"
    assert normalize_answer("2 ab")[0] == "2 ab"  # a short word that is not a unit may be algebra


def test_a_stated_precision_decides_numeric_matches():
    problem = "What is $\\sqrt{2}$? Express your answer as a decimal to the nearest hundredth."
    assert answers_match("1.41", "\\sqrt{2}", problem=problem)
    assert not answers_match("1.42", "\\sqrt{2}", problem=problem)
    assert not answers_match("1.41", "\\sqrt{2}")  # no precision asked: a rounding is not the value
    assert answers_match("0.33", "\\frac{1}{3}", problem="Round to 2 decimal places.")
    assert answers_match("3.14159", "\\approx 3.14")  # the reference states its own precision


@pytest.mark.parametrize(
    ("problem", "prediction", "reference"),
    [
        ("Alice rounds 1234 to the nearest hundred and Bob rounds it to the nearest ten. "
         "What is Bob's result minus Alice's?", "28", "30"),  # the story rounds its data; the answer is exact
        ("Round 2.718 to the nearest tenth and 3.14159 to the nearest hundredth, then add them.", "5.8", "5.84"),
        ("A whole number rounded to the nearest ten is 40. What is the largest such number?", "41", "44"),
        ("Artie rounds all his prices to the nearest dollar. If he sells 12 pots, how much will he make?",
         "235.6", "236"),
    ],
)
def test_a_precision_the_story_states_is_not_the_answers(problem, prediction, reference):
    assert not answers_match(prediction, reference, problem=problem)
    assert answers_match(reference, reference, problem=problem)


def test_values_joined_by_and_or_or_are_one_answer():
    minerva = "Final Answer: The final answer is $2$ and $-3$. I hope it is correct."
    assert not grade(minerva, "2").correct  # an extra root
    assert grade(minerva, "2, -3").correct
    assert not grade("Therefore the answer is $12$ or $13$.", "12").correct  # a hedge


# Which box or span is the answer: lists of boxes, later answer sentences, clauses after the value.
WHICH_BOX_OR_SPAN = [
    ("The roots are $\\boxed{-1}$, $\\boxed{2}$, $\\boxed{5}$.", "2, 5", False),  # an extra root
    ("The roots are $\\boxed{-1}$, $\\boxed{2}$, $\\boxed{5}$.", "-1, 2, 5", True),
    ("The points are $\\boxed{(2, 5)}$ and $\\boxed{(-2, 5)}$.", "(-2,5)", False),
    ("The points are $\\boxed{(2, 5)}$ and $\\boxed{(-2, 5)}$.", "(2,5),(-2,5)", True),
    ("It might be $\\boxed{8}$ or $\\boxed{9}$, I am not sure.", "9", False),  # a hedge
    ("I first wrote $\\boxed{35}$ but counted a case twice.\n\n**Answer: 30**", "30", True),
    ("We may check our answer: $17 \\cdot 44 = 748$, after $\\boxed{44}$.", "44", True),
    ("The answer is 4, which is less than 7.", "4", True),
    ("The answer is 5 because the sum is 12.", "12", False),
    ("Thus the minimum value is $-3$, attained at $x = 2$.", "2", False),
    ("Thus the minimum value is $-3$, attained at $x = 2$.", "-3", True),
    ("We need $5 + 3 \\times 2 = 11$. So the answer", "11", False),  # cut off before stating it
    ("Therefore, the answer is all $x$ with $-3 < x < 3$.", "(-3,3)", True),
    ("<think>Try 2, then 3.</think>\nThe solutions are $x = 2$ or $x = 3$.", "2, 3", True),  # the reply after it
    ("<think>Try 2, then 3.</think>\nThe solutions are $x = 2$ or $x = 3$.", "2", False),
    ("$\\boxed{x = \\pm\\sqrt{2}}$ and $\\boxed{x=0}$", "0, \\sqrt{2}, -\\sqrt{2}", True),
]


# A unit written after the box or the math counts.
UNIT_AFTER_THE_MATH = [
    ("The answer is $\\boxed{5}$ cm.", "5\\text{ mm}", False),
    ("The answer is $\\boxed{5}$ cm.", "0.05\\text{ m}", True),
    ("Final Answer: The final answer is $12$ m. I hope it is correct.", "12 \\mathrm{~cm}", False),
    ("Final Answer: The final answer is $120$ mm. I hope it is correct.", "12 \\mathrm{~cm}", True),
    ("So the total is $\\boxed{5}$ in all.", "5", True),  # "in" is no unit here
]


# A conclusion in words is read when it holds no math.
CONCLUSION_IN_WORDS = [
    ("Therefore, k equals four.", "4", True),
    ("Hence there are twenty-one ways.", "21", True),
    ("Hence there are twenty-one ways.", "12", False),
    ("Hence there are four solutions and one double root.", "4", False),  # two counts: which one is meant?
    ("The function is odd.", "\\text{odd}", True),
    ("It is even, not odd.", "\\text{odd}", False),  # a negation: no word answer is read
    ("There is no solution.", "\\text{No solution}", True),
    ("Yes, it is possible.", "Yes", True),
    ("No, it is not possible.", "Yes", False),
    ("The answer is 17, not 71.", "71", False),
]


# From the fourth blind probe: where a completion takes its answer back, states it after the fact, or sets it apart.
TAKEN_BACK_OR_SET_APART = [
    ("<think>\nTry \\boxed{12}? No wait, the problem says each group has 5, so I need to redo", "12", False),
    ("Maybe the answer is $\\boxed{15}$? Hmm, that ignores the extra group.", "15", False),  # a box asked as a question
    ("So the count is $\\boxed{12}$. But the problem asks for both teams, so we double it: 24 is the answer.", "24", True),
    ("So the count is $\\boxed{12}$. But the problem asks for both teams, so we double it: 24 is the answer.", "12", False),
    ("Adding everything, we have x = 42 and then adding the remaining", "42", False),  # cut off mid-sentence
    ("We set up the problem. The total is 6 * 7 = 42. Let me reconsider the problem.", "42", False),
    ("So the answer is 3/4 of the pizza.", "\\frac{3}{4}", True),
    ("So the answer is 3/4 of the pizza.", "4", False),
    ("Summing up the contributions gives the result.\n\n**42**", "42", True),
    ("Each box holds 6 * 7 = 42 apples.\nTherefore, there are 42 apples in total.", "42", True),
    ("Each box holds 6 * 7 = 42 apples.\nTherefore, there are 42 apples in total.", "48", False),
    ("Hence the answer is \\(\\boxed{\\textstyle\\frac{14}{3}}\\).", "\\frac{14}{3}", True),
    ("The population is \\(\\boxed{1.5 \\text{ million}}\\).", "1500000", True),
    ("The population is \\(\\boxed{1.5 \\text{ million}}\\).", "150000", False),
    ("$$\\boxed{y = 3, x = 2}$$", "(2, 3)", True),  # a point's coordinates, named: x first
    ("$$\\boxed{y = 2, x = 3}$$", "(2, 3)", False),
]


@pytest.mark.parametrize(("completion", "reference", "correct"),
                         WHICH_BOX_OR_SPAN + UNIT_AFTER_THE_MATH + CONCLUSION_IN_WORDS + TAKEN_BACK_OR_SET_APART)
def test_the_answer_a_completion_states(completion, reference, correct):
    assert grade(completion, reference).correct is correct


def test_named_values_follow_the_order_the_problem_asks_for():
    problem = "Find the constants. Enter the ordered pair $(a,b)$."
    assert grade("\\boxed{b = 3, a = 2}", "(2,3)", problem=problem).correct
    assert not grade("\\boxed{b = 2, a = 3}", "(2,3)", problem=problem).correct


def test_multiple_choice_letters_and_words():
    assert grade("So the answer is $\\boxed{\\textbf{(C)}}$.", "\\text{(C)}").correct
    assert not grade("So the answer is $\\boxed{D}$.", "(C)").correct
    assert grade("The answer is evelyn.", "\\text{Evelyn}").correct


def test_unanchored_replies_use_math_verify_extraction_but_cut_off_text_states_nothing():
    assert grade("We find that $x \\lt 3$.", "x < 3").correct
    assert grade("The identity matrix is $\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}$.",
                 "\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}").confidence == "heuristic"
    assert grade("The total cost is \\$1,234.50.", "1234.5").correct  # a price, not a math delimiter
    assert grade("**5**", "5").correct  # markdown bold around a bare answer
    assert grade("Only option C works.", "C").correct  # option letters, math-verify's way, in an unanchored reply
    rambling = "Step 1: 15 liters.\n" * 20 + "11. We know that 15 liters of pineapple drink is 15 *"
    assert grade(rambling, "15").method == "no_answer"


def test_result_keeps_span_method_and_confidence():
    text = "Thus the total is \\boxed{1{,}000} dollars."
    result = grade(text, "1000")
    assert text[result.span[0]:result.span[1]] == "1{,}000"
    assert result.extracted == "1{,}000 dollars"  # a unit written after the box counts: "5 cm" is not "5 mm"
    assert (result.method, result.confidence) == ("exact", "exact")
    assert grade("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}").confidence == "symbolic"
    assert grade("\\boxed{0.5}", "\\frac{1}{2}").confidence == "numeric"
    assert grade("\\boxed{4}", "3").confidence is None


def test_reference_given_as_a_whole_solution_is_reduced_to_its_box():
    assert grade("\\boxed{14}", "so the sum is $\\boxed{14}$.").correct


def test_symbolic_step_stops_at_its_limit_in_a_worker_thread():
    """math-verify's own timeout uses signal.alarm, which does nothing outside the main thread."""
    import threading
    import time

    results = {}

    def grade_in_thread():
        started = time.monotonic()
        results["grade"] = grade("\\boxed{(x+1)^{399}+(x+1)^{398}}", "\\frac{(x+1)^{400}-1}{x}", time_limit_s=0.5)
        results["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=grade_in_thread)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert (results["grade"].method, results["grade"].correct) == ("timeout", False)
    assert results["seconds"] <= 0.5
    assert grade("\\boxed{\\sqrt{8}}", "2\\sqrt{2}").correct  # a fresh worker replaces the killed one


@pytest.mark.parametrize(
    ("completion", "reference", "correct"),
    [
        ("The solution set is $\\boxed{x \\le 8}$.", "(-\\infty, 8]", True),
        ("The solution set is $\\boxed{x < 8}$.", "(-\\infty, 8]", False),  # the endpoint is in one only
        ("Therefore $x \\geq 5$ is the solution.", "$x >= 5$", True),
        ("Therefore $x < 5$ is the solution.", "$x > 5$", False),
        ("We get $2 < x \\le 7$.", "(2, 7]", True),
        ("Final Answer: The largest $n$ is 34.", "$34$", True),
        ("So the answer is 19 points. <|im_start|>user\nAnd 20?", "19", True),
        ("The identity matrix is $\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}$.",
         "$\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}$", True),
        ("$\\boxed{28 pct}$", "$28\\%$", True),
        ("is $\\boxed{32,\\! 349}$", "\\boxed{32349}", True),
        ("is $\\boxed{32, 349}$", "\\boxed{32349}", False),  # a space after the comma makes a list
        ("AZYUK2A", "2", False),
    ],
)
def test_answers_in_sentences_relations_and_references_with_delimiters(completion, reference, correct):
    assert grade(completion, reference).correct is correct


def test_nested_and_cut_off_boxes_are_read_in_one_pass_over_the_braces():
    """A completion may nest thousands of boxes (a looping model): the innermost is the answer, and
    finding it must not rescan the text once per box (it took 6 s at 3,000 levels)."""
    nested = "\\boxed{" * 3000 + "5" + "}" * 3000
    assert (grade(nested, "5").extracted, grade(nested, "5").correct) == ("5", True)
    assert extract_final_answer("so \\boxed{\\{1, 2\\}}.") == "\\{1, 2\\}"  # set braces are text, not groups
    assert extract_final_answer("so the answer is \\boxed{\\frac{1}{2}") is None  # cut off inside its box


def test_long_sets_and_tuples_are_compared_without_pairing_every_element_with_every_other():
    """3,000 elements took a minute when every element was compared with every other one."""
    numbers = [str(n) for n in range(3000)]
    as_set = "\\{" + ", ".join(numbers) + "\\}"
    assert answers_match("\\{" + ", ".join(reversed(numbers)) + "\\}", as_set)  # a set in any order
    assert not answers_match("\\{" + ", ".join([*numbers[:-1], "3000"]) + "\\}", as_set)  # one element off
    assert answers_match("\\{" + ", ".join([*numbers[:-1], "2999.0000001"]) + "\\}", as_set)  # a decimal's tolerance
    as_tuple = "(" + ", ".join(numbers) + ")"
    assert answers_match(as_tuple, as_tuple)
    assert not answers_match("(" + ", ".join(reversed(numbers)) + ")", as_tuple)  # a tuple keeps its order
