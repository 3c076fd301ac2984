"""Problem and trace deduplication on normalised text."""

from __future__ import annotations

import hashlib

from tasks.stages.dedup import dedup_problems, dedup_traces, text_key
from tasks.records import NLTraceRecord, ProblemRecord


def problem(pid: str, text: str, answer: str = "84") -> ProblemRecord:
    return ProblemRecord(id=pid, problem=text, answer=answer)


def test_problems_equal_up_to_spacing_case_and_punctuation_are_duplicates():
    problems = [
        problem("a", "What is $12 \\times 7$?"),
        problem("b", "what is 12 \\cdot 7"),
        problem("c", "What is 12 * 8?", answer="96"),
        problem("d", "WHAT IS   12*7 ?", answer="85"),
    ]
    unique, duplicates = dedup_problems(problems)
    assert [p.id for p in unique] == ["a", "c"]
    assert [(d.id, d.duplicate_of, d.same_answer) for d in duplicates] == [("b", "a", True), ("d", "a", False)]
    assert {d.kind for d in duplicates} == {"problem"}


def test_different_numbers_or_operators_are_not_duplicates():
    unique, duplicates = dedup_problems([problem("a", "Solve x + 5 = 12"), problem("b", "Solve x - 5 = 12"),
                                         problem("c", "Solve x + 6 = 12")])
    assert len(unique) == 3 and duplicates == []


def test_text_key_is_stable_and_normalised():
    assert text_key("Compute 2^10.") == text_key("compute  2 ^ 10")
    assert text_key("Compute 2^10.") == hashlib.blake2b(b"compute 2 ^ 10", digest_size=16).hexdigest()


def nl_trace(pid: str, solution: str) -> NLTraceRecord:
    return NLTraceRecord(model="m", prompt_version="v1", problem_id=pid, problem="p", reference_answer="84",
                         solution=solution, final_answer="84")


def test_repeated_solutions_are_dropped_keeping_the_first():
    traces = [nl_trace("a", "12 times 7 is 84. \\boxed{84}"), nl_trace("b", "We get 84, so \\boxed{84}."),
              nl_trace("c", "12 times 7 is 84 \\boxed{84}")]
    unique, duplicates = dedup_traces(traces)
    assert [t.problem_id for t in unique] == ["a", "b"]
    assert [(d.id, d.duplicate_of, d.kind) for d in duplicates] == [("c", "a", "trace")]
