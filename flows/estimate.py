"""Estimate flow: what a distill run will cost, from a pilot run of the real pipeline on a few random problems.

The pilot is the distill flow itself (a subflow) on a seeded random `pilot` of the problems
(default 20), writing its stage files under `<output_dir>/estimate-pilot/` but its rows into the
full run's caches (`<output_dir>/.prefect-results`): the full run reuses every pilot row and pays
for none twice. Its rows are then extrapolated (tasks/stages/estimate.py) to every problem: calls,
tokens, $, wall time, the funnel and $ per kept trace, each with a 90% interval, written to
`<output_dir>/estimate.json` (the full run's summary compares itself with it) and shown as a table
artifact. The pilot spends real money: it is checked against the same budget and ledger.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import publish_table
from flows.distill import BATCH_STAGES, distill
from flows.params import DistillParams
from flows.run_names import named_after_params
from tasks.stages.estimate import ESTIMATE_NAME, DistillEstimate, estimate_from_pilot, estimate_table

PILOT_DIR = "estimate-pilot"
DEFAULT_PILOT = 20


class PilotStopped(RuntimeError):
    """The budget stopped the pilot: an estimate from its finished problems alone would be biased."""


@flow(name="estimate", flow_run_name=named_after_params("estimate", DistillParams))
def estimate(params: DistillParams = DistillParams(pilot=DEFAULT_PILOT)) -> DistillEstimate:
    out = Path(params.output_dir)
    pilot = params.model_copy(update={"pilot": params.pilot or DEFAULT_PILOT, "output_dir": str(out / PILOT_DIR),
                                      "cache_dir": str(params.cache_path()), "push_to_hub": None})
    summary = distill(pilot)
    spend = summary.spend
    if spend.budget is not None and spend.budget.reached:
        raise PilotStopped(f"the pilot was stopped ({spend.budget.line()}); raise --max-budget-usd or lower --pilot")
    result = estimate_from_pilot(out / PILOT_DIR, params.cache_path(), spend.pilot.of_problems, model=params.llm.model,
                                 max_concurrency=params.max_concurrency,
                                 batch_stages=BATCH_STAGES if params.spend.batch else (), seed=params.pilot_seed)
    (out / ESTIMATE_NAME).write_text(result.model_dump_json(indent=2))
    head = ("what", "calls", "prompt tokens", "completion tokens", "usd", "wall s")
    publish_table("distill-estimate", [dict(zip(head, row)) for row in estimate_table(result)],
                  f"Estimate for {result.problems} problems from a pilot of {result.pilot}: point [90% interval]")
    get_run_logger().info("estimate: $%.4f [%.4f, %.4f] for %d problems", result.total.cost_usd.point,
                          result.total.cost_usd.low, result.total.cost_usd.high, result.problems)
    return result

