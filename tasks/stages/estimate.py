"""What a distill run will cost, from a pilot: pure extrapolation over the pilot's rows, with 90% intervals.

`tool-distill estimate` runs the real distill flow on a seeded random pilot of the problems
(`pilot_problems`), into the full run's caches, so the full run pays nothing twice: row keys depend
on a row's content, not its position. Each pilot problem is one draw of what a problem costs
(`problem_costs`: its solve, its translations, its rephrase, and how far it got), so:

- a point estimate is the pilot's mean times the number of problems;
- its 90% interval is the 5th-95th percentile of the same total over bootstrap resamples of the
  pilot problems (`BOOTSTRAP_SAMPLES`, seeded): the spread between problems is what a pilot of 20
  knows about a run of 7,500. $ per kept trace is a ratio of two such totals, resampled together;
- wall time at the run's concurrency is calls x the mean latency the ledger recorded for that
  stage / `max_concurrency` (the gate keeps that many calls in flight; the stage's CPU and the
  sandbox run beside them). A batch stage's wall time is the provider's turnaround, not
  extrapolated (None).

Calls come from the rows (solver turns, translation and rephrase attempts, one judge call per
translation that ended on the judge's verdict); tokens and dollars are the rows' own, exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from tasks.llm import Usage, ledger_totals
from tasks.parquet_io import read_records, stage_path
from tasks.records import FilterDecision, NLTraceRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.records import rows_by_trace, trace_key
from tasks.stages.filter import solver_drop_reason, translation_drop_reason
from tasks.stages.problems import PreparedProblems

CONFIDENCE = 0.90
BOOTSTRAP_SAMPLES = 2000
ESTIMATE_NAME = "estimate.json"  # in the output dir: the full run's summary compares itself with it
LLM_STAGES = ("solve", "translate", "rephrase")


class EstimateCheck(BaseModel):
    """The estimate's error against what the run cost (actual - estimate, relative to the estimate)."""

    estimated_usd: float
    estimated_usd_low: float
    estimated_usd_high: float
    actual_usd: float
    error: float | None  # (actual - estimate) / estimate; None when the estimate was 0
    within_interval: bool
    estimated_kept: float
    estimated_kept_low: float
    estimated_kept_high: float
    actual_kept: int


class StageDraw(BaseModel):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class ProblemCost(BaseModel):
    """One pilot problem, all its samples together (the bootstrap draws problems: a problem's samples are not
    independent): what each stage spent on it, and how many of its traces got how far."""

    problem_id: str
    stages: dict[str, StageDraw]
    solved: int
    faithful: int
    kept: int


class Interval(BaseModel):
    point: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


class StageEstimate(BaseModel):
    stage: str
    calls: Interval
    prompt_tokens: Interval
    completion_tokens: Interval
    cost_usd: Interval
    wall_s: Interval | None  # None: a batch stage (the provider's turnaround), or no latency recorded yet


class DistillEstimate(BaseModel):
    problems: int
    pilot: int
    seed: int
    model: str
    max_concurrency: int
    batch: bool
    confidence: float = CONFIDENCE
    stages: list[StageEstimate]
    total: StageEstimate  # wall_s: the stages' one after another (None if any is unknown)
    funnel: dict[str, Interval]  # solved, faithful, kept: problems
    cost_per_kept_usd: Interval | None  # None when no pilot problem was kept
    pilot_cost_usd: float


def pilot_problems(prepared: PreparedProblems, size: int, seed: int) -> PreparedProblems:
    """A seeded random `size` of the prepared problems, in their input order (all of them if there are fewer)."""
    problems = prepared.problems
    chosen = sorted(random.Random(seed).sample(range(len(problems)), min(size, len(problems))))
    return prepared.model_copy(update={"problems": [problems[i] for i in chosen],
                                       "counts": {**prepared.counts, "pilot": len(chosen)}})


def problem_costs(traces: Sequence[TraceRecord], translations: Sequence[TranslationRecord],
                  nl_traces: Sequence[NLTraceRecord], calls: Sequence[ToolCallRecord],
                  decisions: Sequence[FilterDecision]) -> list[ProblemCost]:
    translations_of, calls_of = rows_by_trace(translations), rows_by_trace(calls)
    nl_of = {trace_key(n): n for n in nl_traces}
    kept = {trace_key(d) for d in decisions if d.kept}
    traces_of: dict[str, list[TraceRecord]] = {}
    for trace in traces:
        traces_of.setdefault(trace.problem_id, []).append(trace)
    costs = []
    for pid, samples in traces_of.items():
        keys = [trace_key(t) for t in samples]
        mine = [t for key in keys for t in translations_of[key]]
        nls = [nl_of[key] for key in keys if key in nl_of]
        solved = [solver_drop_reason(t) is None for t in samples]
        stages = {
            "solve": _draw(sum(t.n_turns for t in samples), samples),
            "translate": _draw(sum(t.attempts + (t.check_method == "judge") for t in mine), mine),
            "rephrase": _draw(sum(n.attempts for n in nls), nls),
        }
        faithful = sum(ok and translation_drop_reason(calls_of[key], translations_of[key]) is None
                       for key, ok in zip(keys, solved))
        costs.append(ProblemCost(problem_id=pid, stages=stages, solved=sum(solved), faithful=faithful,
                                 kept=sum(key in kept for key in keys)))
    return costs


def _draw(calls: int, rows: Sequence[TraceRecord | TranslationRecord | NLTraceRecord]) -> StageDraw:
    usage = Usage.total(rows)
    return StageDraw(calls=calls, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                     cost_usd=usage.cost_usd)


def _interval(draws: Sequence[ProblemCost], resamples: list[list[int]], problems: int,
              value: Callable[[ProblemCost], float]) -> Interval:
    """The total of `value` over `problems` problems: the pilot's mean scaled, and its bootstrap percentiles."""
    values = [value(d) for d in draws]
    totals = sorted(sum(values[i] for i in sample) * problems / len(values) for sample in resamples)
    return Interval(point=sum(values) * problems / len(values), low=_percentile(totals, (1 - CONFIDENCE) / 2),
                    high=_percentile(totals, (1 + CONFIDENCE) / 2))


def _percentile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _ratio_interval(draws: Sequence[ProblemCost], resamples: list[list[int]]) -> Interval | None:
    """$ per kept trace: total $ / kept, both from the same resample (a resample that keeps nothing is left out)."""
    cost = [sum(s.cost_usd for s in d.stages.values()) for d in draws]
    kept = [d.kept for d in draws]
    if not any(kept):
        return None
    ratios = sorted(sum(cost[i] for i in s) / n for s in resamples if (n := sum(kept[i] for i in s)))
    return Interval(point=sum(cost) / sum(kept), low=_percentile(ratios, (1 - CONFIDENCE) / 2),
                    high=_percentile(ratios, (1 + CONFIDENCE) / 2))


def extrapolate(draws: Sequence[ProblemCost], problems: int, *, model: str, max_concurrency: int,
                latency_s: dict[str, float | None], batch_stages: Sequence[str] = (), seed: int = 0) -> DistillEstimate:
    """The full run's calls, tokens, $, wall time and funnel from the pilot's `draws` (see the module docstring)."""
    if not draws:
        raise ValueError("no pilot problem to extrapolate from")
    rng = random.Random(seed)
    resamples = [[rng.randrange(len(draws)) for _ in draws] for _ in range(BOOTSTRAP_SAMPLES)]

    def total(value: Callable[[ProblemCost], float]) -> Interval:
        return _interval(draws, resamples, problems, value)

    def stage_estimate(stage: str, part: Callable[[ProblemCost], list[StageDraw]], latency: float | None) -> StageEstimate:
        calls = total(lambda d: sum(x.calls for x in part(d)))
        return StageEstimate(
            stage=stage, calls=calls,
            wall_s=None if latency is None else Interval(**{k: v * latency / max_concurrency
                                                             for k, v in calls.model_dump().items()}),
            prompt_tokens=total(lambda d: sum(x.prompt_tokens for x in part(d))),
            completion_tokens=total(lambda d: sum(x.completion_tokens for x in part(d))),
            cost_usd=total(lambda d: sum(x.cost_usd for x in part(d))))

    stages = [stage_estimate(stage, lambda d, s=stage: [d.stages[s]],
                             None if stage in batch_stages else latency_s.get(stage) or None) for stage in LLM_STAGES]
    everything = stage_estimate("total", lambda d: list(d.stages.values()), None)
    if all(s.wall_s is not None for s in stages):
        everything.wall_s = Interval(point=sum(s.wall_s.point for s in stages), low=sum(s.wall_s.low for s in stages),
                                     high=sum(s.wall_s.high for s in stages))
    return DistillEstimate(
        problems=problems, pilot=len(draws), seed=seed, model=model, max_concurrency=max_concurrency,
        batch=bool(batch_stages), stages=stages, total=everything,
        funnel={"solved": total(lambda d: d.solved), "faithful": total(lambda d: d.faithful),
                "kept": total(lambda d: d.kept)},
        cost_per_kept_usd=_ratio_interval(draws, resamples),
        pilot_cost_usd=round(sum(s.cost_usd for d in draws for s in d.stages.values()), 6))


def check_estimate(estimate: DistillEstimate, actual_usd: float, actual_kept: int) -> EstimateCheck:
    """How far the run's cost landed from its estimate."""
    cost = estimate.total.cost_usd
    return EstimateCheck(estimated_usd=round(cost.point, 6), estimated_usd_low=round(cost.low, 6),
                         estimated_usd_high=round(cost.high, 6), actual_usd=round(actual_usd, 6),
                         error=round((actual_usd - cost.point) / cost.point, 4) if cost.point else None,
                         within_interval=cost.low - 1e-9 <= actual_usd <= cost.high + 1e-9,
                         estimated_kept=round(estimate.funnel["kept"].point, 2),
                         estimated_kept_low=round(estimate.funnel["kept"].low, 2),
                         estimated_kept_high=round(estimate.funnel["kept"].high, 2), actual_kept=actual_kept)


def load_estimate(path: Path, problems: int, model: str) -> DistillEstimate | None:
    """The estimate written for this very run (same number of problems, same model), or None."""
    if not path.is_file():
        return None
    try:
        estimate = DistillEstimate.model_validate_json(path.read_text())
    except ValueError:  # written by another version: not comparable
        return None
    return estimate if (estimate.problems, estimate.model) == (problems, model) else None


def estimate_table(estimate: DistillEstimate) -> list[tuple[str, str, str, str, str, str]]:
    """Rows of the printed table: what, calls, prompt tokens, completion tokens, $, wall time (90% intervals)."""
    def show(interval: Interval | None, fmt: str) -> str:
        if interval is None:
            return "-"
        return f"{interval.point:{fmt}} [{interval.low:{fmt}}, {interval.high:{fmt}}]"

    rows = [(s.stage, show(s.calls, ".0f"), show(s.prompt_tokens, ".0f"), show(s.completion_tokens, ".0f"),
             show(s.cost_usd, ".4f"), show(s.wall_s, ".0f")) for s in [*estimate.stages, estimate.total]]
    rows += [(f"{name} problems", show(value, ".0f"), "", "", "", "") for name, value in estimate.funnel.items()]
    rows.append(("$ per kept trace", "", "", "", show(estimate.cost_per_kept_usd, ".5f"), ""))
    return rows


def estimate_from_pilot(pilot_dir: Path, cache_dir: Path, problems: int, *, model: str, max_concurrency: int,
                        batch_stages: Sequence[str], seed: int) -> DistillEstimate:
    """Extrapolate a finished pilot run (its stage files in `pilot_dir`, its calls' latencies in the ledger under
    `cache_dir`) to `problems` problems."""
    def rows(stage: str, record: type) -> list:
        return read_records(stage_path(pilot_dir, stage), record)

    draws = problem_costs(rows("traces", TraceRecord), rows("translations", TranslationRecord),
                          rows("nl_traces", NLTraceRecord), rows("tool_calls", ToolCallRecord),
                          rows("filter_report", FilterDecision))
    latency = {stage: spent.mean_latency_s for stage, spent in ledger_totals(cache_dir).by_stage.items()}
    return extrapolate(draws, problems, model=model, max_concurrency=max_concurrency, latency_s=latency,
                       batch_stages=batch_stages, seed=seed)
