"""The artifacts a run publishes to the Prefect UI: funnel, cost, sample traces, train-eval charts, live progress;
and that publishing them never fails a run and never carries a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from eval.records import BenchmarkSummary, EvalReport
from flows.artifacts import StageProgressArtifact, publish_markdown, publish_table
from flows.run_report import (accuracy_markdown, cost_rows, funnel_chart_png, loss_markdown, pick_samples,
                              publish_train_eval_report, sample_markdown, samples_markdown)
from tasks.records import FilterDecision, NLTraceRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.stages.funnel import funnel_steps
from tasks.stages.spend_report import stage_costs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LINEAGE = {"model": "scripted/arithmetic", "prompt_version": "solver/v1"}


def _trace(pid: str, *, correct: bool = True, answer: str | None = "84", tokens: int = 100, cost: float = 0.01) -> TraceRecord:
    return TraceRecord(**LINEAGE, prompt_tokens=tokens, completion_tokens=tokens // 10, cost_usd=cost, problem_id=pid,
                       problem=f"What is 12 * 7? ({pid})", reference_answer="84", plan="multiply", messages_json="[]",
                       final_answer=answer, answer_correct=correct, n_tool_calls=1, n_turns=2, status="answered",
                       tool_protocol="code")


def _call(pid: str, index: int = 0, code: str = "print(12 * 7)", output: str = "84") -> ToolCallRecord:
    return ToolCallRecord(**LINEAGE, problem_id=pid, call_index=index, tool_protocol="code", tool_name="python",
                          arguments_json="{}", code=code, output=output, error=None, status="ok", duration_s=0.1)


def _translation(pid: str, index: int = 0, *, faithful: bool = True, method: str = "exact",
                 tokens: int = 40, cost: float = 0.002) -> TranslationRecord:
    return TranslationRecord(model="scripted/arithmetic", prompt_version="translator/v1", prompt_tokens=tokens,
                             completion_tokens=tokens // 4, cost_usd=cost, problem_id=pid, call_index=index,
                             tool_name="python", tool_output="84", explanation="12 * 7 = 84 by long multiplication",
                             derived_answer="84" if faithful else "74", faithful=faithful, check_method=method,
                             attempts=1 if faithful else 3, reason=None if faithful else "derived 74, the tool said 84")


def _nl(pid: str, tokens: int = 60, cost: float = 0.003) -> NLTraceRecord:
    return NLTraceRecord(model="scripted/arithmetic", prompt_version="rephraser/v1", prompt_tokens=tokens,
                         completion_tokens=tokens // 3, cost_usd=cost, problem_id=pid, problem=f"What is 12 * 7? ({pid})",
                         reference_answer="84", solution="Twelve sevens are 84, so the answer is \\boxed{84}.",
                         final_answer="84")


def _decision(pid: str, reason: str | None) -> FilterDecision:
    return FilterDecision(problem_id=pid, kept=reason is None, drop_reason=reason, answer_correct=reason is None,
                          all_calls_faithful=reason != "unfaithful_translation", n_tool_calls=1, n_faithful_calls=1,
                          leftover_tool_mentions=0, solution_chars=50)


DECISIONS = [_decision("a", None), _decision("b", "solver_wrong_answer"), _decision("c", "solver_wrong_answer"),
             _decision("d", "unfaithful_translation"), _decision("e", "tool_mentions_left"), _decision("f", None),
             _decision("g", "duplicate_trace")]


def test_funnel_attributes_each_drop_reason_to_the_step_that_lost_the_row() -> None:
    counts = {"loaded": 12, "after_dedup": 10, "after_decontamination": 9, "problems": 7}
    steps = {s.stage: s for s in funnel_steps(counts, DECISIONS)}
    assert [(s, steps[s].rows) for s in steps] == [("loaded", 12), ("problems", 7), ("solved", 5), ("faithful", 4),
                                                    ("kept", 2)]
    assert steps["problems"].drop_reasons == {"duplicate_problem": 2, "benchmark_overlap": 1, "beyond_limit": 2}
    assert steps["solved"].drop_reasons == {"solver_wrong_answer": 2} and steps["solved"].dropped == 2
    assert steps["faithful"].drop_reasons == {"unfaithful_translation": 1}
    assert steps["kept"].drop_reasons == {"tool_mentions_left": 1, "duplicate_trace": 1}
    assert steps["kept"].share_of_problems == pytest.approx(2 / 7, abs=1e-4)


def test_with_several_samples_the_funnel_counts_traces_and_a_distinct_step_loses_the_duplicates() -> None:
    decisions = [_decision("a", None), _decision("a", "duplicate_trace").model_copy(update={"sample_index": 1}),
                 _decision("a", None).model_copy(update={"sample_index": 2}),
                 _decision("b", "no_consensus"), _decision("b", "no_consensus").model_copy(update={"sample_index": 1}),
                 _decision("c", "solver_wrong_answer"), _decision("c", "keep_limit_reached").model_copy(update={"sample_index": 1}),
                 _decision("d", "unfaithful_translation")]
    steps = {s.stage: s for s in funnel_steps({"loaded": 4}, decisions)}
    assert [(s, steps[s].rows) for s in steps] == [("loaded", 4), ("problems", 4), ("samples", 8), ("solved", 5),
                                                    ("distinct", 3), ("faithful", 2), ("kept", 2)]
    assert steps["solved"].drop_reasons == {"no_consensus": 2, "solver_wrong_answer": 1}
    assert steps["distinct"].drop_reasons == {"duplicate_trace": 1, "keep_limit_reached": 1}
    assert steps["kept"].share_of_problems == 0.5


def test_funnel_chart_is_a_png_that_changes_with_the_counts() -> None:
    steps = funnel_steps({"loaded": 7}, DECISIONS)
    png = funnel_chart_png(steps, "7 problems")
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert funnel_chart_png(funnel_steps({"loaded": 7}, DECISIONS[:3]), "3 problems") != png


def test_cost_rows_sum_each_stage_and_divide_the_total_by_the_kept_traces() -> None:
    traces = [_trace("a", tokens=100, cost=0.01), _trace("b", tokens=300, cost=0.03)]
    translations = [_translation("a", tokens=40, cost=0.002)]
    stages = stage_costs(traces, translations, [_nl("a", cost=0.004)])
    rows = {r["stage"].split(" (")[0]: r for r in cost_rows(stages, kept=2)}
    assert rows["solve"]["prompt tokens"] == 400 and rows["solve"]["cost usd"] == pytest.approx(0.04)
    assert rows["translate"]["llm rows"] == 1 and rows["rephrase"]["cost usd"] == pytest.approx(0.004)
    assert rows["total"]["cost usd"] == pytest.approx(0.046) and rows["total"]["llm rows"] == 4
    assert rows["per kept trace"]["cost usd"] == pytest.approx(0.023) and rows["per kept trace"]["prompt tokens"] == 250
    nothing_kept = cost_rows(stage_costs(traces, [], []), kept=0)[-1]
    assert nothing_kept["stage"] == "per kept trace" and nothing_kept["prompt tokens"] == "no trace kept"


def test_samples_pick_kept_ones_then_one_dropped_per_reason_latest_stage_first() -> None:
    picked = pick_samples(DECISIONS, n_kept=2, n_dropped=3)
    assert [d.problem_id for d in picked] == ["a", "f", "e", "g", "d"]
    more = pick_samples(DECISIONS, n_kept=1, n_dropped=6)  # a second round reaches the reasons' second problems
    assert [d.problem_id for d in more] == ["a", "e", "g", "d", "b", "c"]


def test_a_sample_shows_the_problem_the_real_tool_output_each_verdict_and_the_solution() -> None:
    calls = [_call("d", 0, code="print(12 * 7 < 100)", output="True"), _call("d", 1)]
    translations = [_translation("d", 0, method="judge"), _translation("d", 1, faithful=False, method="math_verify")]
    text = sample_markdown(_decision("d", "unfaithful_translation"), _trace("d"), calls, translations, None)
    assert "Dropped (`unfaithful_translation`)" in text and "What is 12 * 7? (d)" in text
    assert "print(12 * 7 &lt; 100)" in text and "<pre>True</pre>" in text  # code is escaped, not parsed as HTML
    assert "method: <code>judge</code>" in text and "<b>NOT faithful</b>" in text and "derived 74, the tool said 84" in text
    assert "not rephrased" in text
    kept = sample_markdown(_decision("a", None), _trace("a"), [_call("a")], [_translation("a")], _nl("a"))
    assert kept.startswith("## Kept") and "> Twelve sevens are 84, so the answer is \\boxed{84}." in kept


def test_samples_link_every_parquet_file_of_the_run(tmp_path: Path) -> None:
    traces = [_trace(p) for p in "abcdefg"]
    text = samples_markdown(tmp_path, traces, [_call("a")], [_translation("a")], [_nl("a")], DECISIONS)
    assert text.startswith("# Sample traces: 2 kept, 3 dropped (of 7 problems)")
    for name in ("traces", "tool_calls", "translations", "nl_traces", "sft"):
        assert f"({(tmp_path / f'{name}.parquet').as_uri()})" in text


def _summary(label: str, bench: str, acc: float, low: float, high: float) -> BenchmarkSummary:
    return BenchmarkSummary(label=label, model="m", adapter=None, benchmark=bench, n_problems=50, samples_per_problem=1,
                            accuracy=acc, ci_low=low, ci_high=high, pass_at={1: acc}, maj_at={}, mean_completion_tokens=10,
                            no_answer_rate=0, truncated_rate=0, generation_s=1, tokens_per_s=10, per_problem_path="x")


def test_accuracy_artifact_gives_base_and_tuned_with_intervals_and_says_when_they_overlap(tmp_path: Path) -> None:
    chart = tmp_path / "accuracy.png"
    chart.write_bytes(funnel_chart_png(funnel_steps({}, DECISIONS), "any png"))
    report = EvalReport(output_dir=tmp_path, summary_path=tmp_path / "s.json", report_path=tmp_path / "report.md",
                        chart_path=chart, summaries=[
                            _summary("base", "gsm8k", 0.20, 0.10, 0.30), _summary("tuned", "gsm8k", 0.60, 0.45, 0.72),
                            _summary("base", "math500", 0.10, 0.04, 0.20), _summary("tuned", "math500", 0.14, 0.07, 0.26)])
    text = accuracy_markdown(report)
    assert "| gsm8k | 50 | 20.0 [10.0, 30.0] | 60.0 [45.0, 72.0] | +40.0 points (intervals apart) |" in text
    assert "| math500 | 50 | 10.0 [4.0, 20.0] | 14.0 [7.0, 26.0] | +4.0 points (intervals overlap" in text
    assert "](data:image/png;base64," in text


def test_loss_artifact_draws_the_logged_curve(tmp_path: Path) -> None:
    class Result:  # the TrainResult fields the artifact reads (training/ is not imported by the distill side)
        steps, resumed_from_step, final_loss, train_tokens_per_s, peak_memory_mb = 3, 0, 1.25, 900.0, 2048.0
        device, load_in_4bit, adapter_dir, metrics_path = "cpu", True, tmp_path / "adapter", tmp_path / "metrics.json"

    curve = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.25}]
    text = loss_markdown({"loss_curve": curve}, Result())  # type: ignore[arg-type]
    assert "](data:image/png;base64," in text and "| 3 | 0 | 1.2500 | 900.0 | 2048 | cpu | True |" in text
    assert "no loss was logged" in loss_markdown({"loss_curve": []}, Result())  # type: ignore[arg-type]


def test_publishing_outside_a_run_is_a_no_op() -> None:
    assert publish_table("distill-funnel", [{"a": 1}], "x") is False
    assert publish_markdown("distill-samples", "# x", "x") is False
    StageProgressArtifact().start("solve", 3)  # nothing to attach to, nothing raised


# ---- inside real flow runs (Prefect's test API) --------------------------------------------------------------------

def _latest(key: str):
    with get_client(sync_client=True) as client:
        return next(a for a in client.read_latest_artifacts() if a.key == key)


def test_an_artifact_api_outage_logs_one_warning_and_the_run_goes_on(prefect_api, caplog, monkeypatch) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    requests: list[str] = []

    def refused(self, artifact, *args, **kwargs):  # what the client raises when the API is down
        requests.append(artifact.key)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    @flow(name="artifact-outage")
    def publishes_during_an_outage() -> list[bool]:
        with monkeypatch.context() as outage:
            outage.setattr(SyncPrefectClient, "create_artifact", refused)
            down = [publish_table("outage-table", [{"a": 1}], "x"), publish_markdown("outage-markdown", "# x", "x")]
            StageProgressArtifact(flow="outage").start("solve", 2)
        return [*down, publish_markdown("outage-after", "# back", "x")]  # still off: this run already warned

    caplog.set_level(logging.WARNING)
    assert publishes_during_an_outage() == [False, False, False]
    assert requests == ["outage-table"]  # one refused request, not one (retried) per artifact
    warnings = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
    assert len(warnings) == 1 and "outage-table" in warnings[0] and "Connection refused" in warnings[0]

    @flow(name="artifact-after-outage")
    def next_run() -> bool:
        return publish_markdown("outage-after", "# back", "x")

    assert next_run() is True  # another run publishes again
    assert _latest("outage-after").data == "# back"


def test_artifacts_carry_no_secret_from_the_environment(prefect_api, monkeypatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    @flow(name="artifact-secret")
    def leaks() -> None:
        publish_markdown("secret-markdown", f"provider said: invalid key {secret}", "x")
        publish_table("secret-table", [{"error": f"401 {secret}", "nested": {"key": secret}}], "x")

    leaks()
    markdown, table = _latest("secret-markdown"), _latest("secret-table")
    assert secret not in markdown.data and "invalid key ***" in markdown.data
    assert secret not in json.dumps(table.data) and "401 ***" in json.dumps(table.data)


def test_stage_progress_artifact_counts_items_and_ends_at_100(prefect_api) -> None:
    @flow(name="artifact-progress")
    def stage() -> None:
        progress = StageProgressArtifact(flow="distill", min_interval_s=0)
        progress.start("solve", 4)
        progress.advance(1)
        progress.advance(2, failed=1)
        assert _latest("distill-solve-progress").data == pytest.approx(75.0)
        progress.finish()

    stage()
    artifact = _latest("distill-solve-progress")
    assert artifact.type == "progress" and artifact.data == pytest.approx(100.0)
    assert artifact.description == "solve: 4/4 items done, 1 failed"


def test_train_eval_artifacts_are_published_and_a_broken_input_only_warns(prefect_api, tmp_path: Path, caplog) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"loss_curve": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]}))

    class Result:
        steps, resumed_from_step, final_loss, train_tokens_per_s, peak_memory_mb = 2, 0, 1.0, 50.0, 900.0
        device, load_in_4bit, adapter_dir, metrics_path = "cpu", False, tmp_path / "adapter", metrics

    (tmp_path / "report.md").write_text("# the eval's report.md\n")
    report = EvalReport(output_dir=tmp_path, summary_path=tmp_path / "s.json", report_path=tmp_path / "report.md",
                        chart_path=tmp_path / "no-chart.png",
                        summaries=[_summary("base", "gsm8k", 0.2, 0.1, 0.3), _summary("tuned", "gsm8k", 0.3, 0.2, 0.4)])

    @flow(name="artifact-train-eval")
    def train_eval_like(result, eval_report) -> str:
        publish_train_eval_report(result, eval_report)
        return "went on"

    assert train_eval_like(Result(), report) == "went on"
    assert "](data:image/png;base64," in _latest("train-eval-loss").data
    assert "| gsm8k | 50 | 20.0 [10.0, 30.0] | 30.0 [20.0, 40.0] | +10.0 points" in _latest("train-eval-accuracy").data
    assert _latest("eval-report").data == "# the eval's report.md\n"
    assert {"label": "tuned", "accuracy_pct": 30.0}.items() <= json.loads(_latest("eval-summary").data)[1].items()

    caplog.set_level(logging.WARNING)
    assert train_eval_like(object(), report) == "went on"  # no TrainResult fields at all
    assert any("artifacts of publish_train_eval_report not built (AttributeError" in r.getMessage() for r in caplog.records)
