"""Task runner choice: the same distill flow maps its tasks onto a real two-worker Dask cluster by one
setting, and the environment variables that pick the engine are read and checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, get_task_stream
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness
from prefect_dask import DaskTaskRunner

from flows.distill import DistillParams
from flows.runners import KIND_ENV, WORKERS_ENV, TaskRunnerSettings, distill_on
from tasks.llm import LLMSettings
from tasks.parquet_io import read_records, stage_path
from tasks.records import SFTRecord


@pytest.fixture(scope="module")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


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
