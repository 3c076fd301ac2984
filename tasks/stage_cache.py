"""Cache a whole mapped stage as one Prefect result, on top of the per-item caches.

Per-item caching makes a killed run resume without repeating a finished call, but a re-run of a
finished stage still pays one cached task run per item: measured here at ~18 ms of CPU each
(11 s for 300 translations, 64% of the first run's time). `map_stage` wraps the mapped item tasks
in one stage task keyed on all their inputs, so a finished stage comes back as one cache lookup,
while a stage cut short has no stage result and resumes item by item as before.

The stage key includes the item task's source, so editing the item task invalidates both levels.
Measured on 1,500 translate rows: a finished stage re-runs in ~0.1-2 s instead of 26 s.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.transactions import CommitMode, transaction
from prefect.utilities.annotations import quote


@task(name="stage", task_run_name="{name}-stage", cache_policy=(INPUTS - "item_task") + TASK_SOURCE, persist_result=True)
def _map_stage(name: str, item_task: Task, item_task_source: str, per_item: list[tuple], shared: tuple) -> list[Any]:
    # Item tasks run inside this task's transaction and would inherit its lazy commit: their results
    # would be written only when the whole stage succeeds, and a kill mid-stage would lose them all.
    # An eager transaction around them makes each item persist its result as soon as it finishes.
    wrap = _argument_wrapper()
    with transaction(commit_mode=CommitMode.EAGER):
        futures = [item_task.submit(*(wrap(arg) for arg in (*args, *shared))) for args in per_item]
        return [future.result() for future in futures]


def _argument_wrapper() -> Callable[[Any], Any]:
    """`quote` for in-process task runners, where it spares Prefect a walk over every row of every argument.

    A distributed runner (Dask) rebuilds the arguments on the way to its workers and turns a quote, which is a
    tuple subclass, into a plain 1-tuple, so there the arguments travel as they are.
    """
    context = FlowRunContext.get()
    if context is not None and isinstance(context.task_runner, ThreadPoolTaskRunner):
        return quote
    return lambda arg: arg


def map_stage(name: str, item_task: Task, per_item: list[tuple], *shared: Any, result_storage: Path) -> list[Any]:
    """`[item_task(*args, *shared) for args in per_item]`, run concurrently, cached per item and as a whole.

    Must be called inside a flow run. The stage task runs in the calling thread; its items run on
    the flow's task runner.
    """
    source = hashlib.sha256(inspect.getsource(item_task.fn).encode()).hexdigest()
    stage = _map_stage.with_options(result_storage=result_storage)
    # quote: Prefect would otherwise walk every field of every row looking for futures to resolve,
    # which made a cache hit on 1,500 rows take 1.2 s instead of 0.05 s, and cost each item task
    # ~5 ms of CPU. Quoted or not, the inputs hash to the same cache key.
    return stage(name, item_task.with_options(result_storage=result_storage), source, quote(per_item), shared)
