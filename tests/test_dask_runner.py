"""Task runner choice: the same distill flow maps its tasks onto a real two-worker Dask cluster by one
setting (threads or worker processes), and the environment variables that pick the engine are read
and checked. On worker processes the run's limit on LLM calls in flight still holds, counted by an
OpenAI-compatible server."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, get_task_stream
from mock_llm_server import MockLLMServer
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.distill import DistillParams
from flows.runners import KIND_ENV, WORKERS_ENV, TaskRunnerSettings, distill_on
from tasks.llm import LLMSettings, SpendSettings, ledger_totals
from tasks.parquet_io import read_records, stage_path
from tasks.records import SFTRecord


@pytest.mark.slow
def test_distill_runs_its_mapped_tasks_on_a_two_worker_dask_cluster(prefect_api, tmp_path: Path) -> None:
    params = DistillParams(limit=2, llm=LLMSettings(model="scripted/arithmetic"), output_dir=str(tmp_path),
                           rows_per_task=1)
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=2, dashboard_address=None) as cluster, \
            Client(cluster) as client, get_task_stream(client) as stream:
        runner = TaskRunnerSettings(kind="dask", address=cluster.scheduler_address)
        summary = distill_on(runner)(params)
        workers = set(client.scheduler_info()["workers"])

    assert (summary.problems, summary.solved_correct, summary.kept) == (2, 2, 2)
    assert [r.id for r in read_records(stage_path(tmp_path, "sft"), SFTRecord)] == ["demo-01", "demo-02"]
    # 2 solve + 2 translate + 2 rephrase chunk task runs of one row each, each executed by a worker of this cluster
    executed_on = [t["worker"] for t in stream.data]
    assert len(executed_on) >= 6 and set(executed_on) <= workers and len(workers) == 2


@pytest.mark.slow
def test_worker_processes_share_the_runs_limit_on_calls_in_flight(prefect_api, tmp_path: Path, monkeypatch) -> None:
    """Chunks pickled to other processes cannot see the run's gate; each gets its share of it instead."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dask-test")  # the worker processes start after this, with it
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                                for i in range(1, 9)))
    with MockLLMServer(latency_s=0.2) as server:
        params = DistillParams(problems=str(problems), output_dir=str(tmp_path / "out"), decontaminate=False,
                               llm=LLMSettings(model="openai/scripted", api_base=server.url), max_concurrency=3,
                               rows_per_task=1)
        params.solve.tool_protocol = "code"
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=4, dashboard_address=None) as cluster, \
                Client(cluster) as client, get_task_stream(client) as stream:
            summary = distill_on(TaskRunnerSettings(kind="dask", address=cluster.scheduler_address))(params)
            worker_pids = set(client.run(lambda: __import__("os").getpid()).values())
        stats = server.stats()

    assert (summary.problems, summary.solved_correct, summary.kept) == (8, 8, 8)
    assert len(worker_pids) == 2 and len({t["worker"] for t in stream.data}) == 2, "chunks ran on both processes"
    # 8 threads across the two workers would allow 8 calls at once; the run allows 3
    assert 2 <= stats.peak_in_flight <= 3, stats.peak_in_flight


@pytest.mark.slow
def test_worker_processes_hold_the_runs_budget_together_at_its_registered_price(prefect_api, tmp_path: Path,
                                                                               monkeypatch) -> None:
    """Chunks on two worker processes: each prices its calls at the run's `--price` (their litellm never saw it)
    and counts the other's calls in flight, so the output dir's ledger stays under the cap."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dask-test")
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                                for i in range(1, 13)))
    price = "100,200"  # $ per 1M tokens: a few calls make a budget
    with MockLLMServer(latency_s=0.05) as server:
        params = DistillParams(problems=str(problems), output_dir=str(tmp_path / "full"), decontaminate=False,
                               llm=LLMSettings(model="openai/scripted-dask-budget", api_base=server.url),
                               max_concurrency=8, rows_per_task=2, spend=SpendSettings(price=price))
        params.solve.tool_protocol = "code"
        full_cost = distill_on(TaskRunnerSettings(kind="threads"))(params).spend.paid_usd
        cap = 0.4 * full_cost
        capped = params.model_copy(update={"output_dir": str(tmp_path / "capped"),
                                           "spend": SpendSettings(price=price, max_budget_usd=cap)})
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=4, dashboard_address=None) as cluster, \
                Client(cluster) as client, get_task_stream(client) as stream:
            summary = distill_on(TaskRunnerSettings(kind="dask", address=cluster.scheduler_address))(capped)
    workers = {t["worker"] for t in stream.data}
    paid = ledger_totals(tmp_path / "capped" / ".prefect-results").usd
    assert len(workers) == 2, "chunks ran on both processes"
    assert summary.spend.budget.reached and 0 < paid <= cap, (paid, cap, full_cost)
    # Calls wait for the others' calls in flight to settle rather than stop: most of the budget is used (it
    # stopped at 37% of its cap when every worker thread's call in flight held its worst case).
    assert paid > 0.5 * cap, (paid, cap)


def test_environment_picks_the_runner_and_defaults_to_local_threads() -> None:
    assert isinstance(TaskRunnerSettings.from_env({}).build(), ThreadPoolTaskRunner)
    dask = TaskRunnerSettings.from_env({KIND_ENV: "dask", WORKERS_ENV: "2"}).build()
    assert isinstance(dask, DaskTaskRunner)
    assert dask.cluster_kwargs["n_workers"] == 2 and dask.address is None
    remote = TaskRunnerSettings.from_env({KIND_ENV: "dask", "TOOL_DISTILL_TASK_RUNNER_ADDRESS": "tcp://10.0.0.5:8786"}).build()
    assert remote.address == "tcp://10.0.0.5:8786"


def test_a_bad_runner_setting_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ValueError, match=f"Set {KIND_ENV} to threads, dask or ray"):
        TaskRunnerSettings.from_env({KIND_ENV: "spark"})


@pytest.mark.skipif(importlib.util.find_spec("prefect_ray") is not None, reason="prefect-ray is installed here")
def test_ray_without_prefect_ray_says_what_to_install() -> None:
    with pytest.raises(ImportError, match="needs prefect-ray: pip install"):
        TaskRunnerSettings(kind="ray").build()
