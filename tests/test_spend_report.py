"""What a run cost, as the CLI, the dataset card and the Prefect artifact show it."""

from __future__ import annotations

import pytest
import yaml
from test_dataset_card import card_info, run_dir  # noqa: F401 (a fixture)

from tasks.llm import SpendTotals, StageSpend
from tasks.records import NLTraceRecord, TraceRecord, TranslationRecord
from tasks.stages.dataset_card import write_dataset_card
from tasks.stages.estimate import EstimateCheck
from tasks.stages.spend_report import BudgetStatus, PilotInfo, spend_lines, spend_markdown, summarize_spend

MODEL = "openai/gpt-4o-mini"


def _rows() -> tuple[list[TraceRecord], list[TranslationRecord], list[NLTraceRecord]]:
    lineage = {"model": MODEL, "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.002}
    traces = [TraceRecord(problem_id=f"p{i}", problem="?", reference_answer="1", plan="", messages_json="[]",
                          final_answer="1", answer_correct=True, n_tool_calls=1, n_turns=3, status="answered",
                          tool_protocol="code", prompt_version="solver/v1", **lineage) for i in range(4)]
    translations = [TranslationRecord(problem_id=f"p{i}", call_index=0, tool_name="python", tool_output="1",
                                      explanation="", derived_answer="1", faithful=True, check_method="judge",
                                      attempts=2, prompt_version="translator/v1", **lineage) for i in range(4)]
    nl = [NLTraceRecord(problem_id=f"p{i}", problem="?", reference_answer="1", solution="\\boxed{1}", final_answer="1",
                        prompt_version="rephraser/v1", **lineage) for i in range(4)]
    return traces, translations, nl


def test_the_summary_counts_calls_and_dollars_per_stage_and_per_kept_trace() -> None:
    paid = SpendTotals(usd=0.03, tokens=1500, by_stage={
        "solve": StageSpend(13, 400, 40, 0.01, 0, 0.0, 0.5),
        "translate": StageSpend(12, 400, 40, 0.012, 12, 0.012, None)})
    spend = summarize_spend(*_rows(), kept=2, paid=paid,
                            budget=BudgetStatus(reached=False, spent_usd=0.03, max_usd=1.0, spent_tokens=1500,
                                                max_tokens=None, problems_done=4, problems=4),
                            pilot=PilotInfo(size=4, seed=0, of_problems=40))
    assert [(s.stage, s.calls, s.cost_usd) for s in spend.stages] == [
        ("solve", 12, 0.008), ("translate", 12, 0.008), ("rephrase", 4, 0.008)]  # translate: 2 attempts + 1 judge
    assert spend.cost_usd == pytest.approx(0.024) and spend.cost_per_kept_usd == pytest.approx(0.012)
    assert (spend.paid_calls, spend.batch_calls, spend.batch_saved_usd) == (25, 12, 0.012)
    lines = spend_lines(spend)
    assert lines[0].startswith("cost by stage: solve $0.0080 (12 calls)") and "cost per kept trace: $0.01200" in lines
    assert any("batch: 12 calls, $0.0120 saved" in line for line in lines)
    assert any(line.startswith("budget: $0.0300 of $1.0000") for line in lines)
    assert lines[-1] == "pilot: 4 of 40 problems (seed 0)"
    assert "| translate | 4 | 12 | 400 | 40 | 0.008000 |" in spend_markdown(spend)


def test_a_budget_stop_and_the_estimates_error_read_as_one_line_each() -> None:
    budget = BudgetStatus(reached=True, spent_usd=0.51, max_usd=0.5, spent_tokens=9, max_tokens=None, problems_done=7,
                          problems=40)
    assert budget.line() == "budget reached: $0.5100 of $0.5000, 7 of 40 problems done"
    check = EstimateCheck(estimated_usd=1.0, estimated_usd_low=0.8, estimated_usd_high=1.3, actual_usd=1.1, error=0.1,
                          within_interval=True, estimated_kept=30, estimated_kept_low=25, estimated_kept_high=35,
                          actual_kept=31)
    spend = summarize_spend(*_rows(), kept=0, paid=SpendTotals(0.0, 0), budget=budget, estimate=check)
    lines = spend_lines(spend)
    assert "cost per kept trace: no trace kept" in lines and budget.line() in lines
    assert any("actual $1.1000 (error +10.0%, within the 90% interval)" in line for line in lines)


def test_the_dataset_card_shows_the_generation_cost(run_dir) -> None:  # noqa: F811 (the fixture)
    spend = summarize_spend(*_rows(), kept=2, paid=SpendTotals(0.024, 1320))
    card = write_dataset_card(run_dir, card_info(spend=spend)).read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["tool_distill"]["spend"]["cost_per_kept_usd"] == pytest.approx(0.012)
    assert "## Generation cost" in card and "| solve | 4 | 12 |" in card and "cost per kept trace: $0.01200" in card
