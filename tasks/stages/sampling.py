"""Several solver samples per problem: which problems get another one, which traces are distinct, and
labels by majority vote for problems without a reference answer.

Large distillation sets (OpenMathReasoning: 306K problems, 3.2M CoT and 1.7M tool-integrated
solutions) sample several solutions per problem, keep the distinct correct ones, and label problems
without a reference answer by the samples' majority. Here:

- **Rounds.** The flow solves in rounds (`problems_to_sample`): round j draws sample j of every
  problem that still needs one. A problem with a reference answer needs one until it has
  `keep_per_problem` (m) distinct correct traces, or k = `samples_per_problem` samples; a problem
  without one gets all k, because its vote needs a fixed number of voters. Each round is one
  `map_stage` call, and each sample is its own cached row (its index is an argument of
  `solve.solve_sample`), so raising k later reuses every sample already drawn.
- **Distinct.** Two correct traces of a problem are the same trace when the code of their
  successful tool calls, in order and up to spacing and comment lines, and their final answers are
  the same (`distinct_key`): their tool-free solutions would be rephrased from the same derivations.
  Failed calls do not count, since the rephrased solution leaves them out. The filter later also
  drops solutions whose text is near-identical (`tasks/stages/dedup.py`, `near_duplicates`).
- **Votes.** `label_by_majority` groups the final answers of a problem's samples with the grader
  (`eval.grader.answers_match`, the same equivalence that grades against references, so "1/2" and
  "0.5" are one vote). The largest group's answer becomes the label (`answer_source="majority"`) when
  it holds at least `majority_min` of the voters and at least `MIN_AGREEING_VOTES` samples; the
  voters are the samples that ran to an end (answered or not): a sample that gave no answer counts
  against agreement, since a solver that answers 2 of 8 times with the same value has not shown that
  value is right; a sample cut short by an LLM error (a transport fault) is not a voter. Each trace
  of a labelled problem is then graded against the label (`grade_against_labels`) before any
  translation is paid for; every trace of a problem left without a label is dropped as
  `no_consensus` by the filter.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from eval.grader import answers_match
from tasks.records import ProblemRecord, ToolCallRecord, TraceRecord, rows_by_trace, trace_key
from tasks.stages.config import SamplingConfig
from tasks.stages.decontam import normalize

# One sample agreeing with itself is no evidence: a vote needs at least two samples that agree.
MIN_AGREEING_VOTES = 2
_COMMENT_LINE = re.compile(r"^\s*#.*$", re.MULTILINE)


def normalise_code(code: str) -> str:
    """Code up to spacing, blank lines and whole-line comments."""
    lines = (" ".join(line.split()) for line in _COMMENT_LINE.sub("", code).splitlines())
    return "\n".join(line for line in lines if line)


def distinct_key(trace: TraceRecord, calls: Sequence[ToolCallRecord]) -> str:
    """What makes a trace a different trace: the code of its successful tool calls, in order, and its final answer."""
    codes = [normalise_code(c.code) for c in sorted(calls, key=lambda c: c.call_index) if c.status == "ok"]
    return "\x00".join([*codes, normalize(trace.final_answer or "")])


def distinct_correct(traces: Sequence[TraceRecord], calls: Sequence[ToolCallRecord]) -> dict[str, int]:
    """Distinct correct traces per problem id (problems without one are absent)."""
    calls_of = rows_by_trace(calls)
    keys: dict[str, set[str]] = defaultdict(set)
    for trace in traces:
        if trace.answer_correct:
            keys[trace.problem_id].add(distinct_key(trace, calls_of[trace_key(trace)]))
    return {pid: len(found) for pid, found in keys.items()}


def problems_to_sample(problems: Sequence[ProblemRecord], traces: Sequence[TraceRecord],
                       calls: Sequence[ToolCallRecord], sample_index: int, config: SamplingConfig) -> list[ProblemRecord]:
    """The problems that get sample `sample_index`, given the traces drawn so far (adaptive stopping)."""
    if sample_index >= config.samples_per_problem:
        return []
    found = distinct_correct(traces, calls)
    return [p for p in problems
            if p.answer_source == "none" or found.get(p.id, 0) < config.keep_per_problem]


def label_by_majority(problem: ProblemRecord, samples: Sequence[TraceRecord], majority_min: float) -> ProblemRecord:
    """`problem` labelled by its samples' vote (answer_source "majority"), or as it was ("none") with the best agreement."""
    voters = [t for t in sorted(samples, key=lambda t: t.sample_index) if t.status != "error"]
    groups: list[list[str]] = []  # equivalent answers, in the order first seen
    for answer in (t.final_answer for t in voters if t.final_answer is not None):
        group = next((g for g in groups if answers_match(answer, g[0], problem=problem.problem)), None)
        if group is None:
            groups.append([answer])
        else:
            group.append(answer)
    best = max(groups, key=len, default=[])  # the first of the largest groups: ties go to the answer seen first
    agreement = round(len(best) / len(voters), 4) if voters else 0.0
    if len(best) >= MIN_AGREEING_VOTES and agreement >= majority_min:
        return problem.model_copy(update={"answer": best[0], "answer_source": "majority", "answer_agreement": agreement})
    return problem.model_copy(update={"answer_agreement": agreement})


def label_problems(problems: Sequence[ProblemRecord], traces: Sequence[TraceRecord],
                   config: SamplingConfig) -> list[ProblemRecord]:
    """Every problem, those without a reference answer labelled by their samples' majority where they agree."""
    samples: dict[str, list[TraceRecord]] = defaultdict(list)
    for trace in traces:
        samples[trace.problem_id].append(trace)
    return [label_by_majority(p, samples[p.id], config.majority_min) if p.answer_source == "none" else p
            for p in problems]


def grade_against_labels(traces: Sequence[TraceRecord], problems: Sequence[ProblemRecord]) -> list[TraceRecord]:
    """Traces of vote-labelled problems with the label as their reference and their answer graded against it."""
    labelled = {p.id: p for p in problems if p.answer_source == "majority"}
    graded = []
    for trace in traces:
        problem = labelled.get(trace.problem_id)
        if problem is not None:
            correct = trace.final_answer is not None and answers_match(trace.final_answer, problem.answer,
                                                                        problem=problem.problem)
            trace = trace.model_copy(update={"reference_answer": problem.answer, "answer_correct": correct})
        graded.append(trace)
    return graded
