"""Solver, Translator, Rephraser and filter behaviour with scripted LLM replies and the real sandbox."""

from __future__ import annotations

import json

import pytest

from tool_sandbox import get_default_sandbox
from tasks.stages.filter import decide, to_sft_record
from tasks.llm import LLMSettings
from tasks.records import ProblemRecord, ToolCallRecord
from tasks.stages.rephrase import RephraseConfig, build_draft, end_at_final_answer, rephrase_trace
from tasks.stages.solve import SolveConfig, extract_code, solve_problem, solve_sample
from tasks.stages.translate import TranslateConfig, check_derivation, derived_result, translate_tool_call

SCRIPTED = LLMSettings(model="scripted/arithmetic", concurrency_limit=None)
REPLAY = LLMSettings(model="replay/test", concurrency_limit=None, num_retries=0)
PROBLEM = ProblemRecord(id="p1", problem="What is 12 * 7?", answer="84", source="test")


def _call(output: str, code: str = "print(12 * 7)", **overrides) -> ToolCallRecord:
    fields = dict(problem_id="p1", call_index=0, tool_protocol="code", tool_name="python", arguments_json="{}",
                  code=code, output=output, error=None, status="ok", duration_s=0.01, turn_index=1,
                  model="m", prompt_version="solver/v1")
    return ToolCallRecord(**(fields | overrides))


def test_extract_code_takes_the_last_block_even_if_generation_stopped_inside_it():
    text = "first\n```python\nprint(1)\n```\nthen\n```python\nx = 2\nprint(x)\n"
    assert extract_code(text) == "x = 2\nprint(x)"
    assert extract_code("no code here") is None


def test_solver_plans_runs_code_in_the_sandbox_and_boxes_the_real_output():
    outcome = solve_problem(PROBLEM, SCRIPTED, SolveConfig(tool_protocol="code"))
    trace = outcome.trace
    assert (trace.status, trace.final_answer, trace.answer_correct) == ("answered", "84", True)
    assert trace.plan.startswith("1.")
    [call] = outcome.tool_calls
    assert (call.tool_name, call.code, call.output.strip(), call.status) == ("python", "print(12 * 7)", "84", "ok")
    assert call.isolation == get_default_sandbox().confinement()["isolation"]  # the row says how the call was confined
    assert trace.model == "scripted/arithmetic" and trace.prompt_version == "solver/v1"
    roles = [m["role"] for m in json.loads(trace.messages_json)]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]


def test_solver_shows_a_failed_call_to_the_model_and_asks_it_to_reflect(replay_llm):
    replay_llm.replies = [
        "Plan: compute it.",
        "```python\nprint(undefined_name)\n```\n",
        "Fixed.\n```python\nprint(12 * 7)\n```\n",
        "The answer is \\boxed{84}.",
    ]
    outcome = solve_problem(PROBLEM, REPLAY, SolveConfig(tool_protocol="code"))
    assert [c.status for c in outcome.tool_calls] == ["error", "ok"]
    assert "NameError" in (outcome.tool_calls[0].error or "")
    reflect_turn = replay_llm.requests[2][-1]["content"]
    assert "NameError" in reflect_turn and "Reflect" in reflect_turn
    assert outcome.trace.answer_correct


def test_solver_session_keeps_variables_between_turns(replay_llm):
    replay_llm.replies = [
        "```python\nfrom sympy import symbols\nx = symbols('x')\nprint(x)\n```",
        "```python\nprint(((x + 1)**2 - x**2).expand())\n```",
        "The answer is \\boxed{2x+1}.",
    ]
    outcome = solve_problem(ProblemRecord(id="s", problem="Simplify (x+1)^2 - x^2", answer="2x+1"), REPLAY,
                            SolveConfig(tool_protocol="code", plan_first=False))
    assert outcome.tool_calls[1].status == "ok"
    assert outcome.tool_calls[1].output.strip() == "2*x + 1"


def test_solver_stops_at_the_turn_budget_and_asks_to_wrap_up(replay_llm):
    replay_llm.replies = ["Thinking.", "Still thinking."]
    outcome = solve_problem(PROBLEM, REPLAY, SolveConfig(tool_protocol="code", plan_first=False, max_turns=2))
    assert outcome.trace.status == "no_answer" and outcome.trace.n_turns == 2
    assert "wrap up" in replay_llm.requests[-1][-1]["content"]


def test_solver_llm_failure_becomes_an_error_row_not_an_exception(replay_llm):
    replay_llm.replies = []  # the replay handler raises: a permanent provider failure
    outcome = solve_problem(PROBLEM, REPLAY, SolveConfig(tool_protocol="code"))
    assert outcome.trace.status == "error" and "replay" in (outcome.trace.error or "")


def test_sample_zero_keeps_the_models_settings_and_later_samples_sample_with_their_index_as_seed(replay_llm):
    replay_llm.replies = ["```python\nprint(12 * 7)\n```", "\\boxed{84}"] * 2
    config = SolveConfig(tool_protocol="code", plan_first=False, sample_temperature=0.9)
    first = solve_problem(PROBLEM, REPLAY, config)
    third = solve_sample(PROBLEM, 2, REPLAY, config)
    assert [(p.get("temperature"), p.get("seed")) for p in replay_llm.params] == [(0.0, None)] * 2 + [(0.9, 2)] * 2
    assert (first.trace.sample_index, third.trace.sample_index, third.tool_calls[0].sample_index) == (0, 2, 2)
    hot = REPLAY.model_copy(update={"temperature": 0.3})  # a model that samples already keeps its temperature
    replay_llm.replies = ["\\boxed{84}"]
    solve_sample(PROBLEM, 1, hot, config)
    assert (replay_llm.params[-1]["temperature"], replay_llm.params[-1]["seed"]) == (0.3, 1)


def test_functions_protocol_runs_toolkit_calls_through_the_sandbox():
    outcome = solve_problem(PROBLEM, SCRIPTED, SolveConfig(tool_protocol="functions"))
    [call] = outcome.tool_calls
    assert call.tool_protocol == "functions" and call.status == "ok"
    assert call.output.strip() == "84" and outcome.trace.answer_correct


@pytest.mark.parametrize("protocol", ["code", "functions"])
def test_scripted_solver_makes_one_tool_call_per_term_when_asked_to(protocol: str) -> None:
    """The load-test workload: a known number of sequential tool calls per problem, each fed by the last."""
    problem = ProblemRecord(id="p3", problem="What is 11 * 3 + 7 * 2 + 5? Compute one term per step.", answer="52",
                            source="test")
    outcome = solve_problem(problem, SCRIPTED, SolveConfig(tool_protocol=protocol))
    assert [c.output.strip() for c in outcome.tool_calls] == ["33", "14", "5"]
    assert [c.turn_index for c in outcome.tool_calls] == [1, 2, 3]  # turn 0 is the plan
    assert (outcome.trace.final_answer, outcome.trace.answer_correct, outcome.trace.n_turns) == ("52", True, 5)


@pytest.mark.parametrize(("derived", "output", "method"), [
    ("84", "84\n", "exact"),
    ("\\frac{1}{2}", "1/2", "math_verify"),
    ("x^{2} + 2 x + 1", "x**2 + 2*x + 1", "sympy"),
    ("-7, 7", "[-7, 7]", None),
])
def test_derivations_are_checked_against_the_real_tool_output(derived, output, method):
    check = check_derivation(derived, output)
    assert check is not None and check.faithful, check
    if method:
        assert check.method == method


def test_a_derivation_with_a_different_value_is_unfaithful():
    check = check_derivation("85", "84")
    assert check is not None and not check.faithful and "84" in (check.reason or "")


def test_translator_retries_with_feedback_and_gives_up_after_max_attempts(replay_llm):
    replay_llm.replies = ["12*7 = 74. \\boxed{74}", "\\boxed{85}", "\\boxed{94}"]
    row = translate_tool_call(_call("84"), REPLAY, TranslateConfig(max_attempts=3))
    assert (row.faithful, row.attempts, row.derived_answer) == (False, 3, "94")
    assert "not the correct result" in replay_llm.requests[1][-1]["content"]
    assert "84" not in replay_llm.requests[1][-1]["content"]  # feedback never leaks the tool's answer


def test_guided_translator_sees_the_output_and_must_show_true_arithmetic(replay_llm):
    replay_llm.replies = ["The printed result is \\boxed{84}.",  # copied the output, computed nothing
                          "12 * 7 = 78\nThe printed result is \\boxed{84}.",  # box right, arithmetic false
                          "12 * 7 = 84\nThe printed result is \\boxed{84}."]
    row = translate_tool_call(_call("84"), REPLAY, TranslateConfig(show_tool_output=True, max_attempts=3))
    assert (row.faithful, row.attempts, row.check_method) == (True, 3, "exact")
    first, second = replay_llm.requests[0], replay_llm.requests[1]
    assert "printed:\n84" in first[-1]["content"]  # guided: the real output is in the request
    assert second == first  # a guided retry is a fresh sample, not a conversation with its own mistakes

    replay_llm.replies = ["12 * 7 = 78\nThe printed result is \\boxed{84}."]
    row = translate_tool_call(_call("84"), REPLAY, TranslateConfig(show_tool_output=True, max_attempts=1))
    assert (row.faithful, row.check_method, row.reason) == (False, "arithmetic", "false arithmetic: 12 * 7 = 78")


def test_translator_accepts_a_correct_retry(replay_llm):
    replay_llm.replies = ["\\boxed{74}", "12 \\times 7 = 84, so \\boxed{84}"]
    row = translate_tool_call(_call("84"), REPLAY, TranslateConfig())
    assert (row.faithful, row.attempts, row.check_method) == (True, 2, "exact")
    assert row.prompt_version == "translator/v2+judge/v1"


def test_judge_is_asked_only_for_non_math_output_and_must_give_a_strict_verdict(replay_llm):
    replay_llm.replies = ["It is prime. \\boxed{prime}", "I think they agree."]
    row = translate_tool_call(_call("the number is prime!"), REPLAY, TranslateConfig(max_attempts=1))
    assert row.check_method == "judge" and not row.faithful and "verdict" in (row.reason or "")
    assert len(replay_llm.requests) == 2


def test_rephrase_draft_replaces_code_with_faithful_explanations_only():
    outcome = solve_problem(PROBLEM, SCRIPTED, SolveConfig(tool_protocol="code"))
    [call] = outcome.tool_calls
    row = translate_tool_call(call, SCRIPTED, TranslateConfig())
    draft = build_draft(outcome.trace, outcome.tool_calls, [row])
    assert "```" not in draft and "print(" not in draft
    assert row.explanation in draft and draft.startswith("Plan:")
    assert row.explanation not in build_draft(outcome.trace, outcome.tool_calls, [row.model_copy(update={"faithful": False})])


def test_filter_keeps_a_correct_faithful_tool_free_trace_and_names_drop_reasons():
    outcome = solve_problem(PROBLEM, SCRIPTED, SolveConfig(tool_protocol="code"))
    translations = [translate_tool_call(c, SCRIPTED, TranslateConfig()) for c in outcome.tool_calls]
    nl = rephrase_trace(outcome.trace, outcome.tool_calls, translations, SCRIPTED, RephraseConfig())
    kept = decide(outcome.trace, nl, outcome.tool_calls, translations)
    assert kept.kept and kept.drop_reason is None and kept.n_faithful_calls == 1

    wrong = nl.model_copy(update={"final_answer": "85"})
    assert decide(outcome.trace, wrong, outcome.tool_calls, translations).drop_reason == "wrong_answer"
    leaky = nl.model_copy(update={"solution": nl.solution + " (computed with sympy)"})
    assert decide(outcome.trace, leaky, outcome.tool_calls, translations).drop_reason == "tool_mentions_left"
    false_sum = nl.model_copy(update={"solution": "12 * 7 = 94, so 84 + 0 = 84. The answer is \\boxed{84}."})
    miscounted = decide(outcome.trace, false_sum, outcome.tool_calls, translations)
    assert miscounted.drop_reason == "arithmetic_error" and miscounted.arithmetic_errors == 1
    unboxed = nl.model_copy(update={"solution": "12 * 7 = 84. The answer is 84."})
    assert decide(outcome.trace, unboxed, outcome.tool_calls, translations).drop_reason == "no_boxed_answer"
    looping = nl.model_copy(update={"solution": "The answer is 84.\n" * 3 + nl.solution})
    assert decide(outcome.trace, looping, outcome.tool_calls, translations).drop_reason == "repetitive"
    unfaithful = [t.model_copy(update={"faithful": False}) for t in translations]
    assert decide(outcome.trace, nl, outcome.tool_calls, unfaithful).drop_reason == "unfaithful_translation"
    unsolved = outcome.trace.model_copy(update={"final_answer": None, "answer_correct": False})
    assert decide(unsolved, None, outcome.tool_calls, []).drop_reason == "solver_no_answer"

    sft = to_sft_record(nl, outcome.trace, translations, "test")
    assert [m.role for m in sft.messages] == ["user", "assistant"] and sft.teacher_model == "scripted/arithmetic"
    assert json.loads(sft.prompt_versions_json) == ["rephraser/v1", "solver/v1", "translator/v2+judge/v1"]


def _solved_and_translated():
    outcome = solve_problem(PROBLEM, SCRIPTED, SolveConfig(tool_protocol="code"))
    return outcome, [translate_tool_call(c, SCRIPTED, TranslateConfig()) for c in outcome.tool_calls]


def test_rephraser_samples_again_while_the_solution_fails_the_filter(replay_llm):
    outcome, translations = _solved_and_translated()
    replay_llm.replies = ["12 times 7 is 84, so the answer is 84.", "12 * 7 = 84, so the answer is \\boxed{84}."]
    nl = rephrase_trace(outcome.trace, outcome.tool_calls, translations, REPLAY, RephraseConfig())
    assert (nl.attempts, nl.final_answer) == (2, "84") and nl.prompt_tokens == 20
    assert decide(outcome.trace, nl, outcome.tool_calls, translations).kept
    assert [p.get("temperature") for p in replay_llm.params] == [0.0, 0.7]  # a retry is a fresh sample...
    assert [p.get("seed") for p in replay_llm.params] == [0, 1]  # ...that a re-run draws again
    assert replay_llm.requests[0] == replay_llm.requests[1]


def test_rephraser_stops_at_a_good_solution_and_gives_up_after_max_attempts(replay_llm):
    outcome, translations = _solved_and_translated()
    replay_llm.replies = ["12 * 7 = 84. The answer is \\boxed{84}."]
    assert rephrase_trace(outcome.trace, outcome.tool_calls, translations, REPLAY, RephraseConfig()).attempts == 1
    replay_llm.replies = ["12 * 7 = 94. \\boxed{94}", "12 * 7 = 94. \\boxed{94}", "\\boxed{85}"]
    nl = rephrase_trace(outcome.trace, outcome.tool_calls, translations, REPLAY, RephraseConfig(max_attempts=3))
    assert (nl.attempts, nl.final_answer) == (3, "85") and not replay_llm.replies
    assert decide(outcome.trace, nl, outcome.tool_calls, translations).drop_reason == "wrong_answer"


@pytest.mark.parametrize(("reply", "kept"), [
    ("12 * 7 = 84\n\nThe answer is \\boxed{84}.\n\nThe original solution was clear.", "12 * 7 = 84\n\nThe answer is \\boxed{84}."),
    ("2^10 = 1024.\nThe answer is \\boxed{1024}.\nThe answer is 1024.\nThe answer is 1024.",
     "2^10 = 1024.\nThe answer is \\boxed{1024}."),
    ("So\n$$\n\\boxed{84}\n$$\nDone.", "So\n$$\n\\boxed{84}\n$$"),
    ("A first guess \\boxed{3}.\nThen \\boxed{4} is the answer.", "A first guess \\boxed{3}.\nThen \\boxed{4} is the answer."),
    ("No box at all.\nMore text.", "No box at all.\nMore text."),
])
def test_rephrased_solution_ends_with_its_last_boxed_line(reply: str, kept: str) -> None:
    assert end_at_final_answer(reply) == kept



@pytest.mark.parametrize(("explanation", "result"), [
    ("17 * 23 = 391. The printed result is \\boxed{391}.", "391"),
    ("The output is: 1024.\nThe result is: 1024.\nSystem: No answer reached.", "1024"),
    ("2.5 * 4 = 10, so it prints 10.0", None),
    ("It prints: 10.0", "10.0"),
    ("12 * 7 = 80.\nThe correct answer is 80 * 2 or 160.", "80 * 2 or 160"),
    ("I am not sure what this does.", None),
])
def test_derived_result_takes_the_box_else_a_stated_result(explanation: str, result: str | None) -> None:
    assert derived_result(explanation) == result
