"""Where the distill flow's mapped solve/translate/rephrase tasks run: local threads, Dask or Ray.

The flow code is the same on every engine: Prefect's task runners (`prefect-dask`, `prefect-ray`)
own scheduling and result transport, this module only builds one from a small typed setting. The
setting comes from a flow parameter (the pipeline's `task_runner`) or from the environment of the
process that runs the flow, so a deployment switches engines with one job variable:

    TOOL_DISTILL_TASK_RUNNER=dask                               # threads (default) | dask | ray
    TOOL_DISTILL_TASK_RUNNER_ADDRESS=tcp://scheduler:8786       # Dask scheduler, or ray://head:10001;
                                                                # unset: a local cluster per flow run
    TOOL_DISTILL_TASK_RUNNER_WORKERS=4                          # threads, or local cluster workers

Tasks hold no state between calls (the sandbox pool is per process, LLM settings travel as
parameters), so moving them to another engine needs nothing but the runner.
"""

from __future__ import annotations

from prefect import Flow

from flows.distill import distill
from flows.runner_settings import ADDRESS_ENV, KIND_ENV, WORKERS_ENV, TaskRunnerSettings

__all__ = ["ADDRESS_ENV", "KIND_ENV", "WORKERS_ENV", "TaskRunnerSettings", "distill_on"]


def distill_on(settings: TaskRunnerSettings | None = None) -> Flow:
    """The distill flow on the chosen engine (the environment's setting when none is given)."""
    return distill.with_options(task_runner=(settings or TaskRunnerSettings.from_env()).build())
