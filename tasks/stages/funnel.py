"""The funnel of a distill run: how many rows each step kept, and which step each drop reason belongs to.

loaded -> problems -> (samples) -> solved -> (distinct) -> faithful -> kept, from the problem counts of
tasks/stages/problems.py and the filter's decisions; flows/run_report.py draws it as a table and a chart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel

from tasks.records import FilterDecision

SOLVER_DROPS = ("solver_error", "no_consensus", "solver_no_answer", "solver_wrong_answer")
DISTINCT_DROPS = ("duplicate_trace", "keep_limit_reached")  # a step of its own when problems have several samples
TRANSLATION_DROPS = ("unfaithful_translation",)


class FunnelStep(BaseModel):
    stage: str
    rows: int
    share_of_problems: float | None  # None for the rows loaded before dedup/decontamination/limit
    dropped: int  # lost between the previous step and this one
    drop_reasons: dict[str, int]


def funnel_steps(counts: dict[str, int], decisions: Sequence[FilterDecision]) -> list[FunnelStep]:
    """loaded -> problems -> solved -> faithful -> kept; each step says how many the previous one lost, and why.

    When problems have several samples, the steps after "problems" count traces: "samples" (drawn),
    then "distinct" after "solved" loses the duplicates and the traces beyond `keep_per_problem`
    (a solution found near-identical after rephrasing is counted there too: the step counts what
    the run keeps per distinct trace). With one sample per problem, duplicates count at "kept".
    """
    several = any(d.sample_index for d in decisions)
    reasons = Counter(d.drop_reason for d in decisions if d.drop_reason)
    traces = len(decisions)
    problems = len({d.problem_id for d in decisions}) if several else traces
    distinct_drops = DISTINCT_DROPS if several else ()
    solver = {r: n for r, n in reasons.items() if r in SOLVER_DROPS}
    duplicate = {r: n for r, n in reasons.items() if r in distinct_drops}
    translation = {r: n for r, n in reasons.items() if r in TRANSLATION_DROPS}
    solution = {r: n for r, n in reasons.items() if r not in (*SOLVER_DROPS, *distinct_drops, *TRANSLATION_DROPS)}
    solved = traces - sum(solver.values())
    distinct = solved - sum(duplicate.values())
    faithful = distinct - sum(translation.values())
    kept = faithful - sum(solution.values())

    loaded = counts.get("loaded", problems)
    before = {"duplicate_problem": loaded - counts.get("after_dedup", loaded)}
    after_dedup = counts.get("after_dedup", loaded)
    before["benchmark_overlap"] = after_dedup - counts.get("after_decontamination", after_dedup)
    before["beyond_limit"] = counts.get("after_decontamination", after_dedup) - problems
    before = {r: n for r, n in before.items() if n > 0}

    def share(n: int) -> float | None:
        return round(n / problems, 4) if problems else None

    def step(stage: str, rows: int, previous: int, drop_reasons: dict[str, int]) -> FunnelStep:
        return FunnelStep(stage=stage, rows=rows, share_of_problems=share(rows), dropped=previous - rows,
                          drop_reasons=drop_reasons)

    steps = [FunnelStep(stage="loaded", rows=loaded, share_of_problems=None, dropped=0, drop_reasons={}),
             step("problems", problems, loaded, before)]
    if several:
        steps.append(FunnelStep(stage="samples", rows=traces, share_of_problems=share(traces), dropped=0,
                                drop_reasons={}))
    steps.append(step("solved", solved, traces, solver))
    if several:
        steps.append(step("distinct", distinct, solved, duplicate))
    return [*steps, step("faithful", faithful, distinct, translation), step("kept", kept, faithful, solution)]
