"""Benchmark scripts run as `make bench` runs them, on small workloads: counts and verdicts, not timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from command_lines import env_without_prefect

ROOT = Path(__file__).resolve().parent.parent
MATH_TRAIN = Path(os.environ.get("TOOL_DISTILL_MATH_TRAIN", "/work/shared/data/math_train"))
DISTILABEL_PYTHON = ROOT / ".venv-distilabel" / "bin" / "python"


def _run_bench(name: str, *args: str) -> dict:
    """Run `benchmarks/<name>.py` alone, in its own process, and return the JSON line it prints last."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args], cwd=ROOT, env=env_without_prefect(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_throughput_bench_makes_each_call_once_within_the_concurrency_and_reruns_make_none() -> None:
    figures = _run_bench("llm_throughput_bench", "--problems", "6", "--calls-per-problem", "2", "--concurrency", "4",
                         "--latency", "0.05", "--latency-jitter", "0.5", "--rows-per-task", "5", "--no-distilabel")
    assert figures["bench"] == "llm_throughput" and figures["calls"] == 12 and figures["latency_jitter"] == 0.5
    assert figures["ours_calls"] == 12 and 1 <= figures["ours_peak_in_flight"] <= 4
    assert figures["cached_stage_calls"] == 0 and figures["cached_items_calls"] == 0
    assert figures["ideal_s"] == pytest.approx(12 * 0.05 / 4, abs=0.01)
    assert figures["ours_vs_ideal"] > 0 and figures["bare_client_vs_ideal"] > 0
    # the floor control sends what our stage sends, byte for byte as the server keys requests
    assert figures["raw_client_same_requests"] is True and figures["raw_client_vs_ideal"] > 0


@pytest.mark.slow
def test_solve_bench_runs_every_episode_to_its_answer_within_the_concurrency() -> None:
    figures = _run_bench("solve_throughput_bench", "--problems", "6", "--calls-per-problem", "3", "--concurrency", "4",
                         "--latency", "0.05", "--rows-per-task", "5", "--no-distilabel")
    # problem p needs 1 + p % 3 tool calls (1, 2, 3, 1, 2, 3), and each episode adds a plan and an answer turn
    assert figures["bench"] == "solve_throughput" and figures["rows"] == 6 and figures["calls"] == 12 + 2 * 6
    assert figures["ours_calls"] == 24 and 1 <= figures["ours_peak_in_flight"] <= 4
    assert figures["cached_stage_calls"] == 0 and figures["cached_items_calls"] == 0


@pytest.mark.slow
def test_spend_bench_prices_batch_mode_at_half_and_measures_the_budget_check() -> None:
    figures = _run_bench("spend_bench", "--problems", "6", "--calls", "24", "--concurrency", "4", "--latency", "0.02",
                         "--repeats", "1")
    assert figures["bench"] == "spend" and figures["problems"] == 6 and figures["kept"] >= 5
    assert figures["batch_stages_vs_online"] == pytest.approx(0.5, abs=1e-3)  # translator and rephraser at half price
    assert 0.5 < figures["batch_vs_online"] < 1 and figures["batch_saved_usd"] > 0  # the solver stays online
    assert figures["calls"] == 24 and len(figures["baseline_s"]) == len(figures["budget_s"]) == 1
    assert figures["budget_path_cpu_us_per_call"] > 0 and "budget_overhead_pct" in figures


@pytest.mark.slow
@pytest.mark.skipif(not DISTILABEL_PYTHON.exists(), reason="no .venv-distilabel (`make bench` creates it)")
@pytest.mark.parametrize("bench", ["llm_throughput_bench", "solve_throughput_bench"])
def test_distilabel_side_sends_the_very_same_requests(bench: str) -> None:
    """The bench itself fails unless the server's digest of distilabel's requests equals ours."""
    figures = _run_bench(bench, "--problems", "5", "--calls-per-problem", "2", "--concurrency", "4",
                         "--latency", "0.02", "--rows-per-task", "5")
    assert figures["distilabel_same_requests"] is True
    assert figures["distilabel_calls"] == figures["ours_calls"] and figures["distilabel_peak_in_flight"] <= 4


@pytest.mark.skipif(not MATH_TRAIN.is_dir(), reason=f"no MATH train folder at {MATH_TRAIN} (set TOOL_DISTILL_MATH_TRAIN)")
def test_decontam_bench_reads_all_of_math_train_and_both_methods_agree() -> None:
    figures = _run_bench("decontam_bench", "--quick")
    assert figures["bench"] == "decontam" and figures["benchmark_problems"] > 2000
    assert figures["problems"] >= 7490  # all of MATH train but the rows with no usable answer
    assert figures["contaminated"] > 0  # and the run exits non-zero when the two methods disagree


def test_sandbox_floor_bench_reports_each_part_and_the_ceiling() -> None:
    figures = _run_bench("sandbox_floor", "--sessions", "4", "--calls", "2")
    assert figures["bench"] == "sandbox_floor" and figures["sessions"] == 4 and figures["calls_per_session"] == 2
    for part in ("warm_worker", "fork_per_session", "fork_and_exit"):
        assert figures[part]["cpu_ms_per_session"] > 0, part
    # a fork copies pages the long-lived worker already owns
    assert figures["fork_per_session"]["faults_per_session"] > figures["warm_worker"]["faults_per_session"]
    assert figures["ceiling_vs_one_warm_worker_2_cores"] > 0 and figures["machine_parallel_speedup"] > 0
    layers = figures["fork_exit_with_kernel_layers"]  # None unless root with namespaces and seccomp
    assert layers is None or layers["cpu_ms_per_session"] > 0


@pytest.mark.slow
def test_yield_bench_draws_more_samples_only_where_needed_and_repeats_no_request(tmp_path: Path) -> None:
    figures = _run_bench("yield_bench", "--quick", "--out", str(tmp_path))
    curve = {point["k"]: point for point in figures["mock"]["curve"]}
    assert figures["bench"] == "yield" and sorted(curve) == [1, 2, 4, 8] and figures["embedded"] is None
    assert all(point["repeated_requests"] == 0 for point in curve.values())
    # each run draws only the samples it adds, and every k keeps at least what a smaller k kept
    assert [curve[k]["llm_calls"] for k in (1, 2, 4, 8)] == sorted(curve[k]["llm_calls"] for k in (1, 2, 4, 8))
    assert curve[8]["kept"] > curve[1]["kept"] and curve[8]["problems_with_kept"] > curve[1]["problems_with_kept"]
    # a quarter of the problems is never solved and all of them reach k = 8; the others stop at 2 distinct traces
    assert len(curve[8]["added_by_sample"]) == 8 and curve[8]["added_by_sample"][7]["drawn"] >= 2
    assert curve[8]["kept"] <= 2 * figures["mock"]["problems"]
    assert (tmp_path / "yield_curve.png").read_bytes().startswith(b"\x89PNG")
