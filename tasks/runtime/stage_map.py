"""Run a stage's items (solve a problem, translate a tool call, ...) in chunked Prefect tasks.

Why chunks and not one Prefect task per item: a task run costs more CPU in the flow process (state
transitions, events, result records) than the LLM call it wraps, so with one task per call the
translate stage reached only a fraction of what the endpoint allowed (docs/benchmarks.md, "History"). A chunk task runs up to `chunk_size` items on `workers` threads of its own,
so Prefect's cost is paid once per chunk, and chunks still spread over Dask or Ray workers.

The run's call gates (tasks/llm/limits.py) bound the LLM calls in flight across chunks. Chunks in
the stage's process share its gates and one pool of `workers` threads. A chunk that a Dask or Ray
worker runs in another process cannot share them: the stage keeps at most `parts` chunks in
flight and gives each a 1/`parts` share of every gate (and that many threads), so the whole
cluster stays within the run's limits. Its row store must then be on storage the workers share.

Nothing finished is ever recomputed, at three levels:
1. the stage task is cached on all its inputs: a finished stage re-runs as one cache lookup;
2. every item writes its result to an `ItemStore` the moment it is done, so a stage cut short by
   a crash resumes with only the missing items (in new chunks, whatever the old ones were);
3. a chunk retried by Prefect (one retry, for faults outside the LLM call such as a sandbox worker
   dying) skips the items its first try finished.
LLM errors never reach Prefect's retries: the item functions turn them into failed rows.

A run's budget (tasks/llm/spend.py) stops a stage short: a row whose call was refused
(`BudgetReached`) is not stored, so a re-run with a higher budget does it, and once one was
refused no row starts that is not done already; rows in flight finish and are stored. The stage
then returns only its finished rows, and its partial result is not cached as the stage's result.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import closing, contextmanager, nullcontext
from contextvars import copy_context
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.transactions import CommitMode, get_transaction
from prefect.utilities.annotations import quote

from tasks.runtime.item_store import ItemStore, item_key
from tasks.runtime.progress import ProgressSink, StageProgress
from tasks.llm import BudgetReached, LedgerSpec, SpendLedger, active_ledger, open_ledger, spend_item, using_ledger
from tasks.llm.limits import CallGate, GateLimits, active_gates, using_gates

StageFunction = Callable[..., Any]


class NotRun:
    """A row the budget kept from finishing (or from starting): not stored, left for a re-run."""


@dataclass
class _StageRuntime:
    """What the chunks of one stage share when they run in its process."""

    pool: ThreadPoolExecutor
    gates: dict[str, CallGate]
    progress: StageProgress
    ledger: SpendLedger | None


# The stages running in this process, by id. Chunks that run here share their stage's pool:
# `workers` threads in all, fed in chunk order, so one chunk's last rows overlap the next chunk's
# first ones and no more threads than that compete for the GIL (a pool per chunk was slower:
# docs/benchmarks.md, "History"). A chunk in another process (Dask, Ray) finds nothing here.
_stages: dict[str, _StageRuntime] = {}


@contextmanager
def _stage_runtime(workers: int, gates: dict[str, CallGate], progress: StageProgress,
                   ledger: SpendLedger | None) -> Iterator[str]:
    stage_id = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stage-row") as pool:
        _stages[stage_id] = _StageRuntime(pool, gates, progress, ledger)
        try:
            yield stage_id
        finally:
            del _stages[stage_id]


def _stage_in_this_process(stage_id: str) -> _StageRuntime | None:
    # The one reader of `_stages`: a task sent to another process is pickled by value with the globals
    # it reads (the stage task too, as part of the chunk's Prefect context), and a live pool cannot be.
    return _stages.get(stage_id)


@task(name="chunk", task_run_name="{label}", cache_policy=NO_CACHE, persist_result=False, retries=1,
      retry_delay_seconds=2)
def _run_chunk(label: str, item_fn: StageFunction, per_item: Sequence[tuple], shared: tuple, keys: Sequence[str],
               store_dir: str, stage_id: str, remote_share: dict[str, GateLimits], remote_threads: int,
               stage_name: str = "", remote_ledger: LedgerSpec | None = None) -> tuple[list[Any], bool]:
    """The chunk's results (`NotRun` for rows the budget stopped), and whether its rows were counted as they
    finished (in the stage's own process)."""
    stage = _stage_in_this_process(stage_id)
    opened: SpendLedger | None = None
    if stage is not None:
        pool, gates, progress, ledger = nullcontext(stage.pool), stage.gates, stage.progress, stage.ledger
    else:  # in another process: this chunk's share of the stage's limits, the run's ledger on shared storage
        pool = ThreadPoolExecutor(remote_threads, thread_name_prefix=label)
        gates = {key: CallGate(share.max_in_flight, share.requests_per_minute) for key, share in remote_share.items()}
        progress, ledger = None, open_ledger(remote_ledger) if remote_ledger is not None else None
        opened = ledger

    with ItemStore(Path(store_dir)) as store, closing(opened) if opened is not None else nullcontext():

        def run_item(args: tuple, key: str) -> Any:
            found, result = store.get(key)
            if not found:
                if ledger is not None and ledger.stopped:  # the budget stopped a row: start no new one
                    return NotRun()
                try:
                    with using_gates(gates), using_ledger(ledger), spend_item(stage_name):
                        result = item_fn(*args, *shared)
                except BudgetReached:
                    return NotRun()
                store.put(key, result)
            if progress is not None:
                progress.item_done(key, result)
            return result

        with pool as rows:
            # Each row runs in a copy of this task's context: its log lines belong to this task run.
            futures = [rows.submit(copy_context().run, run_item, args, key) for args, key in zip(per_item, keys)]
            wait(futures)  # every row finishes (and is stored) before a failure is raised
            return [future.result() for future in futures], progress is not None


@task(name="stage", task_run_name="{name}-stage", persist_result=True,
      cache_policy=(INPUTS - "item_fn" - "workers" - "chunk_size" - "store_dir" - "progress_sink") + TASK_SOURCE)
def _run_stage(name: str, item_fn: StageFunction, item_fn_source: str, per_item: Sequence[tuple], shared: tuple,
               store_dir: str, workers: int, chunk_size: int, progress_sink: ProgressSink | None) -> list[Any]:
    log = get_run_logger()
    shared_key = item_key(item_fn_source, *shared)
    keys = [item_key(shared_key, *args) for args in per_item]
    results: list[Any] = [NotRun()] * len(per_item)  # until a chunk brings the row
    todo = []
    with ItemStore(Path(store_dir)) as store:
        for index, key in enumerate(keys):
            found, result = store.get(key)
            if found:
                results[index] = result
            else:
                todo.append(index)
    chunks = [todo[start:start + chunk_size] for start in range(0, len(todo), chunk_size)]
    log.info("%s: %d items, %d done before, %d to run in %d chunk(s) of up to %d, on %d threads",
             name, len(per_item), len(per_item) - len(todo), len(todo), len(chunks), chunk_size, workers)
    wrap = _argument_wrapper()
    gates = active_gates()
    # no more chunks than the tightest gate has slots (a Prefect limit may have cut the run's share)
    parts = min([_chunks_at_once(len(chunks), workers), *(gate.max_in_flight for gate in gates.values())])
    remote_share = {key: gate.limits.share(parts) for key, gate in gates.items()}
    progress = StageProgress(name, len(per_item), len(per_item) - len(todo), sink=progress_sink)
    ledger = active_ledger()
    with _stage_runtime(workers, gates, progress, ledger) as stage_id:

        def submit(number: int) -> tuple[PrefectFuture, list[int]]:
            chunk = chunks[number]
            future = _run_chunk.submit(f"{name}-{number + 1}of{len(chunks)}", item_fn, wrap([per_item[i] for i in chunk]),
                                       wrap(shared), [keys[i] for i in chunk], store_dir, stage_id, remote_share,
                                       max(1, workers // parts), name, ledger.spec if ledger is not None else None)
            return future, chunk

        in_flight = dict(submit(number) for number in range(min(parts, len(chunks))))
        next_chunk = len(in_flight)
        while in_flight:
            future = next(as_completed(list(in_flight)))
            chunk = in_flight.pop(future)
            chunk_results, counted = future.result()
            if not counted:
                progress.chunk_done(chunk_results)
            for index, result in zip(chunk, chunk_results):
                results[index] = result
            if ledger is not None and any(isinstance(result, NotRun) for result in chunk_results):
                ledger.stopped = True  # the budget stopped a chunk in another process: the run stops here too
            if next_chunk < len(chunks) and not (ledger is not None and ledger.stopped):
                new_future, new_chunk = submit(next_chunk)
                in_flight[new_future] = new_chunk
                next_chunk += 1
            log.info(progress.line())
    progress.finish()
    stopped = sum(isinstance(result, NotRun) for result in results)
    if stopped:
        log.warning("%s: budget reached: %d of %d rows done, %d left for a re-run with a higher budget", name,
                    len(results) - stopped, len(results), stopped)
        _do_not_cache_this_result()
    return results


def _do_not_cache_this_result() -> None:
    """A stage cut short returns its finished rows, but must not be cached as the stage's result: the re-run must
    run the rest. Its transaction (Prefect's cache write) is turned off; the task still ends Completed."""
    transaction = get_transaction()
    if transaction is not None:
        transaction.commit_mode = CommitMode.OFF


def _chunks_at_once(n_chunks: int, workers: int) -> int:
    """How many chunks the stage keeps in flight: all of them on local threads (they share its pool and
    gates); on a cluster, no more than its worker threads and no more than `workers`, so each chunk's
    share of the gates allows at least one call."""
    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    if runner is None or isinstance(runner, ThreadPoolTaskRunner):
        return max(1, n_chunks)
    return max(1, min(n_chunks, workers, _cluster_threads(runner) or workers))


def _cluster_threads(runner: Any) -> int | None:
    """Worker threads of a Dask runner's cluster (None for runners that do not say)."""
    client = getattr(runner, "client", None)
    return sum(client.nthreads().values()) if client is not None else None


def _argument_wrapper() -> Callable[[Any], Any]:
    """`quote` for in-process task runners, where it spares Prefect a walk over every row of every argument.

    A distributed runner (Dask) rebuilds the arguments on the way to its workers and turns a quote, which is a
    tuple subclass, into a plain 1-tuple, so there the arguments travel as they are.
    """
    context = FlowRunContext.get()
    if context is not None and isinstance(context.task_runner, ThreadPoolTaskRunner):
        return quote
    return lambda arg: arg


def row_threads(max_in_flight: int, *, in_process_model: bool = False, batch_lines: int | None = None) -> int:
    """Row threads for a stage whose calls are capped at `max_in_flight`: twice as many for an HTTP model.

    In batch mode (`batch_lines`: the most requests a batch holds) a row waits on its batch for
    minutes or hours, and a batch holds only the requests of rows waiting: as many threads as a
    batch holds, or it could never fill.

    The gate, not the pool, caps the calls in flight. An HTTP call takes its slot on the event
    loop (`CallGate.async_slot`), so with spare threads a slot that frees goes at once to a row
    whose request is ready, while other rows read replies, run tools and check results: with twice
    the slots the gate stays full where as many threads as slots leave it idle (docs/benchmarks.md,
    "Figures behind choices in the code"). An in-process model takes its slot in the row thread and
    batches whatever holds one, so spare threads would only add GIL contention (measured there too).
    """
    if batch_lines is not None:
        return max(batch_lines, 2 * max_in_flight)
    return max_in_flight if in_process_model else 2 * max_in_flight


def stage_source_hash(item_fn: StageFunction) -> str:
    """The hash of the code that decides a stage's rows: the module of `item_fn` and, transitively, the modules
    of its own package it imports (rephrase retries on the filter's rules, so a filter edit is a rephrase edit).

    Whole modules, not the function: an edit to any helper of the stage changes its rows. Other packages
    (the LLM client, the grader) are left out on purpose: they do not change what a stage asks, and an edit
    there must not pay for every cached call again; the filter, run afresh each time, regrades.
    """
    module = inspect.getmodule(item_fn)
    package = module.__name__.rpartition(".")[0] + "."
    seen: dict[str, str] = {}
    pending = [module.__name__]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen[name] = inspect.getsource(sys.modules[name])
        for node in ast.walk(ast.parse(seen[name])):
            imported = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                        [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            pending += [n for n in imported if n.startswith(package) and n in sys.modules]
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\n{seen[name]}".encode())
    return digest.hexdigest()


def map_stage(name: str, item_fn: StageFunction, per_item: list[tuple], *shared: Any, cache_dir: Path, workers: int,
              chunk_size: int, progress_sink: ProgressSink | None = None) -> list[Any]:
    """`[item_fn(*args, *shared) for args in per_item]`, in Prefect tasks of `chunk_size` items, on `workers` threads.

    Must be called inside a flow run; chunks run on the flow's task runner, their rows on one pool
    of `workers` threads per stage (a share of them per chunk in another process). Results are cached under
    `cache_dir`: the stage's Prefect result there, each item's in `cache_dir/items/<name>`. Editing
    `item_fn` changes both keys. When the run's budget stopped the stage, only the finished rows come back
    (in order); the ledger of the enclosing `spend_control` says so (`stopped`).
    """
    if workers < 1 or chunk_size < 1:
        raise ValueError(f"workers and chunk_size must be >= 1, got {workers} and {chunk_size}")
    source = stage_source_hash(item_fn)
    stage = _run_stage.with_options(result_storage=cache_dir)
    # quote: Prefect would otherwise walk every field of every row looking for futures to resolve, which
    # made a cache hit many times slower (docs/benchmarks.md). Quoted or not, the inputs hash to the same key.
    results = stage(name, item_fn, source, quote(per_item), shared, str(cache_dir / "items" / name), workers, chunk_size,
                    progress_sink)
    return [result for result in results if not isinstance(result, NotRun)]
