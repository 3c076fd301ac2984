"""The benchmark registry loads every vendored set offline, maps its fields and repairs its defects."""

import pytest

from eval.benchmarks import BENCHMARK_NAMES, load_benchmark, prompt_for
from eval.grader import answers_match

EXPECTED_ROWS = {"math500": 500, "gsm8k": 1319, "aime24": 30, "aime25": 30, "amc23": 40, "olympiadbench": 675}


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_every_benchmark_loads_offline_with_unique_ids_and_self_matching_answers(name):
    items = load_benchmark(name)
    assert len(items) == EXPECTED_ROWS[name]
    assert len({item.id for item in items}) == len(items)
    assert all(item.problem.strip() and item.answer.strip() and item.benchmark == name for item in items)
    assert all(answers_match(item.answer, item.answer) for item in items[:50])


def test_field_mappings_give_plain_reference_answers():
    assert load_benchmark("gsm8k", 1)[0].answer == "18"
    assert all("," not in item.answer for item in load_benchmark("gsm8k"))  # '#### 2,125' -> '2125'
    assert load_benchmark("amc23", 1)[0].answer == "27"  # stored as the float 27.0
    olympiad = {item.id: item.answer for item in load_benchmark("olympiadbench")}
    assert all("$" not in answer for answer in olympiad.values())
    assert load_benchmark("math500", 1)[0].id == "math500/test/precalculus/807.json"


def test_aime25_broken_latex_escapes_are_repaired_at_load_time():
    items = load_benchmark("aime25")
    assert "\\frac{\\log_k" in items[18].problem
    assert "\x0c" not in items[27].problem
    assert "\t" not in items[19].problem and "\\triangle" in items[19].problem


def test_limit_takes_the_first_items_and_seed_a_reproducible_sample():
    first = load_benchmark("math500", 5)
    assert [item.id for item in first] == [item.id for item in load_benchmark("math500")[:5]]
    sample = load_benchmark("gsm8k", 5, seed=7)
    assert [item.id for item in sample] == [item.id for item in load_benchmark("gsm8k", 5, seed=7)]
    assert [item.id for item in sample] != [item.id for item in load_benchmark("gsm8k", 5)]


def test_unknown_benchmark_error_names_the_choices():
    with pytest.raises(ValueError, match="math500"):
        load_benchmark("math5000")


def test_default_prompt_asks_for_a_boxed_answer_and_variants_add_the_answer_form():
    boxed = "Please reason step by step, and put your final answer within \\boxed{}."
    math = prompt_for(load_benchmark("math500", 1)[0])
    assert math.endswith(boxed)
    gsm8k = prompt_for(load_benchmark("gsm8k", 1)[0])
    assert gsm8k.startswith("Janet") and gsm8k.endswith(boxed + " The final answer is a number only, without units.")
    assert prompt_for(load_benchmark("aime25", 1)[0]).endswith("an integer from 0 to 999.")
    assert prompt_for(load_benchmark("gsm8k", 1)[0], "Q: {problem}").startswith("Q: Janet")
