"""Pipeline flow: distill on a CPU worker, then hand QLoRA training + evaluation to the GPU work pool.

The hand-off is Prefect's own `run_deployment`: a flow run of the `train-eval/gpu` deployment (work
pool `gpu-pool`) is created as a child of this run, so the UI shows both stages under one pipeline
run, and this flow waits for it. `train_eval_deployment: null` runs train-eval inside this process
instead (one machine, no GPU worker needed).

The SFT file crosses the hand-off as an absolute path: the GPU worker must see the distill output
dir (the same machine, a shared mount, or the same bind mount in both Docker work pools).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import get_current_settings
from prefect.states import State
from pydantic import BaseModel, Field

from flows.artifacts import publish_markdown
from flows.params import DistillParams
from flows.run_names import named_after_params
from flows.runners import TaskRunnerSettings, distill_on
from flows.train_eval import TrainEvalParams, train_eval
from tasks.parquet_io import stage_path
from tasks.stages.summary import DistillSummary

# The hand-off waits hours for training; a status read every few seconds costs nothing and keeps
# the pipeline's own end close to the child's.
HANDOFF_POLL_S = 3


class PipelineParams(BaseModel):
    """Parameters of the pipeline flow (a form in the Prefect UI)."""

    distill: DistillParams = Field(default_factory=DistillParams)
    train_eval: TrainEvalParams = Field(
        default_factory=TrainEvalParams, description="Training and evaluation; sft_path is set to distill's sft.parquet."
    )
    train_eval_deployment: str | None = Field(
        default="train-eval/gpu",
        description='Deployment ("flow/name") that trains and evaluates, on its work pool; null: run it in this process.',
    )
    train_eval_timeout_s: float | None = Field(
        default=None, gt=0, description="Stop waiting after this long (the run goes on in its pool); null waits for the end."
    )
    task_runner: TaskRunnerSettings | None = Field(
        default=None, description="Engine for distill's mapped tasks; null: the worker's TOOL_DISTILL_TASK_RUNNER (threads)."
    )

    def run_slug(self) -> str:
        return self.distill.run_slug()


class PipelineSummary(BaseModel):
    distill: DistillSummary
    sft_path: str
    train_eval_flow_run_id: str
    train_eval_flow_run_name: str
    train_eval_ran_on: str


def _submit_to_pool(deployment: str, train_params: TrainEvalParams, timeout_s: float | None) -> FlowRun:
    """Run `deployment` as a child flow run, wait for it, and fail loudly unless it completed."""
    run = run_deployment(name=deployment, parameters={"params": train_params.model_dump(mode="json")},
                         timeout=timeout_s, poll_interval=HANDOFF_POLL_S)
    state = run.state
    where = f"train-eval run {run.name!r} ({run.id}) of deployment {deployment!r} on work pool {run.work_pool_name!r}"
    if state is None or not state.is_final():
        raise TimeoutError(
            f"{where} is still {state.name if state else 'unscheduled'} after {timeout_s} s; it was left running. Is a "
            f"worker polling that pool (make worker POOL={run.work_pool_name})? Raise train_eval_timeout_s or follow it in the UI."
        )
    if not state.is_completed():
        raise RuntimeError(f"{where} ended {state.name}: {state.message}. Its logs are on that flow run in the UI.")
    return run


def _report(summary: PipelineSummary) -> str:
    ui = get_current_settings().ui_url
    child = f"[{summary.train_eval_flow_run_name}]({ui}/runs/flow-run/{summary.train_eval_flow_run_id})" if ui \
        else summary.train_eval_flow_run_name
    d = summary.distill
    return "\n".join([
        "# Pipeline",
        "",
        "| stage | result |",
        "|---|---|",
        f"| distill | {d.problems} problems, {d.solved_correct} solved, {d.kept} kept for SFT (drops: {d.drop_reasons or 'none'}) |",
        f"| SFT data | `{summary.sft_path}` |",
        f"| train-eval | {child}, {summary.train_eval_ran_on} |",
    ])


@flow(name="pipeline", flow_run_name=named_after_params("pipeline", PipelineParams))
def pipeline(params: PipelineParams = PipelineParams()) -> PipelineSummary:
    log = get_run_logger()
    distilled = distill_on(params.task_runner)(params.distill)
    sft_path = stage_path(Path(distilled.output_dir), "sft").resolve()
    distilled.require_training_data()
    train_params = params.train_eval.model_copy(update={"sft_path": str(sft_path)})

    if params.train_eval_deployment:
        log.info("handing %s (%d rows) to deployment %s", sft_path, distilled.kept, params.train_eval_deployment)
        child = _submit_to_pool(params.train_eval_deployment, train_params, params.train_eval_timeout_s)
        run_id, run_name, ran_on = str(child.id), child.name, f"deployment {params.train_eval_deployment} on work pool {child.work_pool_name}"
    else:
        state: State = train_eval(train_params, return_state=True)
        state.result()  # raises the child's error here, with its traceback
        run_id, run_name, ran_on = str(state.state_details.flow_run_id), "train-eval (in-process)", "in the pipeline's process"

    summary = PipelineSummary(distill=distilled, sft_path=str(sft_path), train_eval_flow_run_id=run_id,
                              train_eval_flow_run_name=run_name, train_eval_ran_on=ran_on)
    publish_markdown("pipeline-summary", _report(summary), "Distill → SFT data → train-eval hand-off of this pipeline run")
    log.info("pipeline done: %s", summary.model_dump_json())
    return summary
