"""`tool-distill estimate`: a pilot of the real pipeline, extrapolated with 90% intervals, checked against the run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from command_lines import TOOL_DISTILL, env_without_prefect
from mock_llm_server import MockLLMServer

from tasks.parquet_io import read_records, stage_path
from tasks.records import ProblemRecord, TraceRecord, TranslationRecord
from tasks.stages.estimate import DistillEstimate, ProblemCost, StageDraw, extrapolate, pilot_problems
from tasks.stages.problems import PreparedProblems
from tasks.stages.spend_report import finished_traces

FAKE_KEY = "sk-fake-estimate-9f8e7d6c"
MODEL = "openai/scripted-estimate"


def _draw(cost: float, kept: bool = True) -> ProblemCost:
    stage = StageDraw(calls=2, prompt_tokens=100, completion_tokens=10, cost_usd=cost)
    return ProblemCost(problem_id=f"p{cost}", stages={"solve": stage, "translate": stage, "rephrase": stage},
                       solved=True, faithful=True, kept=kept)


def test_the_pilot_is_a_seeded_random_choice_kept_in_input_order() -> None:
    prepared = PreparedProblems(problems=[ProblemRecord(id=f"p{i}", problem="?", answer="1") for i in range(50)],
                                counts={"problems": 50}, skipped_rows=0, duplicates=0, decontamination=None)
    pilot = pilot_problems(prepared, 20, seed=3)
    ids = [p.id for p in pilot.problems]
    assert len(ids) == 20 and ids == sorted(ids, key=lambda i: int(i[1:])) and ids != [f"p{i}" for i in range(20)]
    assert ids == [p.id for p in pilot_problems(prepared, 20, seed=3).problems]  # the same seed, the same pilot
    assert ids != [p.id for p in pilot_problems(prepared, 20, seed=4).problems]
    assert pilot.counts["pilot"] == 20 and len(pilot_problems(prepared, 80, seed=3).problems) == 50


def test_identical_problems_extrapolate_exactly_with_no_spread() -> None:
    estimate = extrapolate([_draw(0.01)] * 20, 200, model=MODEL, max_concurrency=4,
                           latency_s={"solve": 2.0, "translate": 1.0, "rephrase": 1.0})
    total = estimate.total
    assert total.cost_usd.point == pytest.approx(200 * 0.03) and total.cost_usd.low == pytest.approx(total.cost_usd.high)
    assert total.calls.point == 1200 and estimate.stages[0].wall_s.point == pytest.approx(400 * 2.0 / 4)
    assert total.wall_s.point == pytest.approx(400 * (2.0 + 1.0 + 1.0) / 4)
    assert estimate.cost_per_kept_usd.point == pytest.approx(0.03)


def test_the_interval_widens_with_the_spread_between_pilot_problems_and_covers_its_mean() -> None:
    draws = [_draw(0.001 * (1 + i % 5), kept=i % 3 != 0) for i in range(20)]
    estimate = extrapolate(draws, 1000, model=MODEL, max_concurrency=4, latency_s={}, batch_stages=("translate",))
    cost = estimate.total.cost_usd
    assert cost.low < cost.point < cost.high
    assert estimate.funnel["kept"].low < estimate.funnel["kept"].point == pytest.approx(1000 * 13 / 20)
    assert estimate.stages[1].wall_s is None and estimate.total.wall_s is None  # a batch stage: provider turnaround


def _trace(pid: str, correct: bool) -> TraceRecord:
    return TraceRecord(problem_id=pid, problem="?", reference_answer="1", plan="", messages_json="[]",
                       final_answer="1" if correct else "2", answer_correct=correct, n_tool_calls=1, n_turns=2,
                       status="answered", tool_protocol="code", model=MODEL, prompt_version="solver/v1")


def test_only_problems_whose_chain_is_done_count_as_done_when_a_budget_stopped_the_run() -> None:
    from tasks.records import NLTraceRecord, ToolCallRecord

    def call(pid: str) -> ToolCallRecord:
        return ToolCallRecord(problem_id=pid, call_index=0, tool_protocol="code", tool_name="python", arguments_json="{}",
                              code="print(1)", output="1", error=None, status="ok", duration_s=0.0, model=MODEL,
                              prompt_version="solver/v1")

    def translation(pid: str, faithful: bool) -> TranslationRecord:
        return TranslationRecord(problem_id=pid, call_index=0, tool_name="python", tool_output="1", explanation="",
                                 derived_answer="1", faithful=faithful, check_method="exact", attempts=1, model=MODEL,
                                 prompt_version="translator/v1")

    traces = [_trace("wrong", False), _trace("untranslated", True), _trace("unfaithful", True),
              _trace("unrephrased", True), _trace("rephrased", True)]
    calls = [call(t.problem_id) for t in traces]
    translations = [translation("unfaithful", False), translation("unrephrased", True), translation("rephrased", True)]
    nl = [NLTraceRecord(problem_id="rephrased", problem="?", reference_answer="1", solution="\\boxed{1}",
                        final_answer="1", model=MODEL, prompt_version="rephraser/v1")]
    done = [t.problem_id for t in finished_traces(traces, calls, translations, nl)]
    assert done == ["wrong", "unfaithful", "rephrased"]


def problems_file(path: Path, n: int) -> Path:
    """n problems of 1-4 tool calls each; every 7th has a wrong reference answer, so the funnel narrows."""
    rows = []
    for p in range(n):
        terms = [(11 + p, 3 + j) for j in range(1 + p % 4)]
        answer = sum(a * b for a, b in terms) + (p % 7 == 0)
        rows.append({"id": f"p{p}", "problem": f"What is {' + '.join(f'{a} * {b}' for a, b in terms)}? Compute one "
                     "term per step.", "answer": str(answer)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_a_20_problem_pilot_estimates_the_200_problem_run_within_its_interval(tmp_path: Path) -> None:
    problems = problems_file(tmp_path / "problems.jsonl", 200)
    env = {**env_without_prefect(), "OPENAI_API_KEY": FAKE_KEY}
    with MockLLMServer(latency_s=0.02) as server:
        common = ["--model", MODEL, "--api-base", server.url, "--problems", str(problems), "--output-dir", "out",
                  "--tool-protocol", "code", "--max-concurrency", "8", "--price", "0.15,0.60", "--skip-preflight",
                  "--quiet"]
        estimated = subprocess.run([*TOOL_DISTILL, "estimate", *common], cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=600)
        assert estimated.returncode == 0, estimated.stdout[-3000:] + estimated.stderr[-3000:]
        assert "== estimate: 200 problems, from a pilot of 20" in estimated.stdout and "$ per kept trace" in estimated.stdout
        pilot_requests = server.stats().requests
        ran = subprocess.run([*TOOL_DISTILL, "distill", *common], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        stats = server.stats()
    out = tmp_path / "out"
    estimate = DistillEstimate.model_validate_json((out / "estimate.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert stats.repeated_requests == 0  # the full run reused every pilot row
    assert stats.requests == summary["spend"]["paid_calls"] and pilot_requests < stats.requests

    # the pilot's rows are the full run's rows for those problems: its tokens are the mock's counts, exactly
    pilot_traces = read_records(stage_path(out / "estimate-pilot", "traces"), TraceRecord)
    full = {t.problem_id: t for t in read_records(stage_path(out, "traces"), TraceRecord)}
    assert len(pilot_traces) == 20 and all(full[t.problem_id] == t for t in pilot_traces)

    # $ through the registered price: the mock's token counts times --price
    assert summary["cost_usd"] == pytest.approx(summary["prompt_tokens"] * 0.15e-6 + summary["completion_tokens"] * 0.60e-6,
                                                abs=1e-6)  # the summary rounds to 6 decimals
    assert estimate.total.cost_usd.covers(summary["cost_usd"]), (estimate.total.cost_usd, summary["cost_usd"])
    assert estimate.total.prompt_tokens.covers(summary["prompt_tokens"])
    assert estimate.total.completion_tokens.covers(summary["completion_tokens"])
    assert estimate.total.calls.covers(summary["spend"]["paid_calls"])
    check = summary["spend"]["estimate"]
    assert check["within_interval"] and abs(check["error"]) < 0.15 and check["actual_usd"] == summary["cost_usd"]
    assert "estimate: $" in ran.stdout and "within the 90% interval" in ran.stdout
