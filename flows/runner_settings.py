"""The engine setting for the distill flow's mapped tasks: local threads, Dask or Ray (flows/runners.py builds it).

Apart from the runner itself so that the CLI can check the environment's setting before Prefect is imported:

    TOOL_DISTILL_TASK_RUNNER=dask                               # threads (default) | dask | ray
    TOOL_DISTILL_TASK_RUNNER_ADDRESS=tcp://scheduler:8786       # Dask scheduler, or ray://head:10001;
                                                                # unset: a local cluster per flow run
    TOOL_DISTILL_TASK_RUNNER_WORKERS=4                          # threads, or local cluster workers
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

KIND_ENV = "TOOL_DISTILL_TASK_RUNNER"
ADDRESS_ENV = "TOOL_DISTILL_TASK_RUNNER_ADDRESS"
WORKERS_ENV = "TOOL_DISTILL_TASK_RUNNER_WORKERS"

RunnerKind = Literal["threads", "dask", "ray"]


class TaskRunnerSettings(BaseModel):
    """Which engine runs the mapped tasks; a flow parameter, so it renders as a form in the UI."""

    kind: RunnerKind = Field(default="threads", description="threads: this process; dask / ray: a cluster.")
    address: str | None = Field(
        default=None,
        description="An existing cluster (tcp://scheduler:8786 for Dask, ray://head:10001 for Ray); "
        "None starts a local cluster for the flow run.",
    )
    workers: int = Field(default=8, ge=1, description="Threads (threads), or workers of the local cluster (dask).")
    processes: bool = Field(
        default=False,
        description="Local Dask cluster only: worker processes instead of threads. The tasks wait on LLM "
        "calls and on the sandbox's own processes, so threads are enough and start instantly.",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TaskRunnerSettings:
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for field, name in (("kind", KIND_ENV), ("address", ADDRESS_ENV), ("workers", WORKERS_ENV)):
            if env.get(name):
                values[field] = env[name]
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{err['loc'][0]}: {err['msg']}" for err in exc.errors())
            raise ValueError(
                f"task runner environment {values} is invalid ({problems}). Set {KIND_ENV} to threads, dask "
                f"or ray, {WORKERS_ENV} to a positive integer, or unset them for local threads."
            ) from None

    def build(self) -> TaskRunner:
        from prefect.task_runners import ThreadPoolTaskRunner

        if self.kind == "threads":
            return ThreadPoolTaskRunner(max_workers=self.workers)
        if self.kind == "dask":
            try:
                from prefect_dask import DaskTaskRunner
            except ImportError as exc:
                raise ImportError(
                    f"{KIND_ENV}=dask needs prefect-dask: pip install 'tool-distill[dask]' ({exc})"
                ) from exc
            if self.address:
                return DaskTaskRunner(address=self.address)
            return DaskTaskRunner(cluster_kwargs={"n_workers": self.workers, "processes": self.processes,
                                                  "dashboard_address": None})
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as exc:
            raise ImportError(
                f"{KIND_ENV}=ray needs prefect-ray: pip install 'prefect-ray>=0.6,<0.7' on every machine "
                f"of the cluster ({exc})"
            ) from exc
        return RayTaskRunner(address=self.address) if self.address else RayTaskRunner()
