"""How many LLM calls a run may have in flight, and how many it may start per minute.

Two layers, because the one Prefect offers is too slow to sit on every call (docs/llm.md, "Limits"):

- **In the process (every call):** a `CallGate` per model: in-flight slots plus an even spacing
  of call starts for requests/min, a few microseconds per call.
- **Across runs (once per run):** when an operator has created a Prefect global concurrency limit
  for the model, `prefect gcl create llm-openai-gpt-4o-mini --limit 32` (and `...-rpm --limit 500`
  for requests/min), each run leases a block of it for its whole duration: its share, min(its own
  `max_concurrency`, the limit). Runs on any number of workers then stay under the model's cap,
  and the per-call path never talks to the API. A run killed with its block gives the block back
  when the lease expires (the server's repossessor). Nothing is created by default: an ephemeral
  API (the CLI's) keeps leases in memory, so slots held by a killed run would never come back and
  would stall the re-run.

`call_limits(...)` sets the gates for the calls made inside it (in this thread and in the task
threads Prefect starts from it, which copy the context); `complete` picks them up with `gate_for`.
Calls outside any `call_limits` (a script, a unit test) are not throttled. Work sent to another
process (a Dask or Ray worker) does not carry the gates: it gets a `share` of their `limits`
and runs under `using_gates` (tasks/runtime/stage_map.py does this for its chunks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from tasks.llm.event_loop import portal
from tasks.llm.records import LIMIT_NAME_CHARS, LLMSettings

RPM_SUFFIX = "-rpm"
_gates: ContextVar[dict[str, CallGate]] = ContextVar("llm_call_gates", default={})  # noqa: B039 (never mutated)


@dataclass(frozen=True)
class GateLimits:
    """A gate's limits without its locks: what travels to another process."""

    max_in_flight: int
    requests_per_minute: float | None = None

    def share(self, parts: int) -> GateLimits:
        """One of `parts` equal shares (at least one call in flight each): `parts` of them stay within these limits
        as long as `parts <= max_in_flight`."""
        return GateLimits(max(1, self.max_in_flight // parts),
                          self.requests_per_minute / parts if self.requests_per_minute else None)


class CallGate:
    """At most `max_in_flight` calls at once, and call starts spaced by 60/`requests_per_minute` s.

    Both limits live on the process's event loop (tasks/llm/event_loop.py): an asyncio semaphore
    for the calls in flight and an `aiolimiter.AsyncLimiter` of capacity one for the starts (even
    spacing, not a bucket with bursts: every 60 s window stays under the rate, which is what
    providers count). A coroutine on that loop takes a slot with `async_slot()` (HTTP requests, in
    tasks/llm/http.py), a blocking thread with `slot()` (in-process providers), which asks the loop
    for it; both count against the same limits. A request that ends hands its slot to a waiting
    one in the same loop turn, with no thread to wake.
    """

    def __init__(self, max_in_flight: int, requests_per_minute: float | None = None) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be > 0 or None, got {requests_per_minute}")
        self.max_in_flight = max_in_flight
        self.requests_per_minute = requests_per_minute
        self._in_flight = asyncio.Semaphore(max_in_flight)  # bound to the loop that first waits on it
        self._starts = AsyncLimiter(1, 60.0 / requests_per_minute) if requests_per_minute else None

    @property
    def limits(self) -> GateLimits:
        return GateLimits(self.max_in_flight, self.requests_per_minute)

    async def _acquire(self) -> None:
        await self._in_flight.acquire()
        if self._starts is not None:
            try:
                await self._starts.acquire()
            except BaseException:  # cancelled while waiting for its turn: the slot is free again
                self._in_flight.release()
                raise

    @contextlib.asynccontextmanager
    async def async_slot(self) -> AsyncIterator[None]:
        """Hold one in-flight slot (and, with a rate, this call's turn to start) on the running loop."""
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight.release()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """`async_slot()` for a blocking thread: waits for the slot on the shared loop, holds it here.

        Retries inside the call (litellm's, for an in-process provider) reuse the slot and its turn.
        """
        loop = portal()
        loop.call(self._acquire)
        try:
            yield
        finally:
            loop.call(self._in_flight.release)


def limit_name(settings: LLMSettings) -> str | None:
    """The Prefect GCL name that caps `settings.model` across runs, e.g. `llm-openai-gpt-4o-mini`."""
    if not settings.concurrency_limit:
        return None
    return f"{settings.concurrency_limit}-{re.sub(f'[^{LIMIT_NAME_CHARS}]+', '-', settings.model).strip('-')}"


def gate_for(settings: LLMSettings) -> CallGate | None:
    """The gate set by the enclosing `call_limits` for this model, if any."""
    return _gates.get().get(_gate_key(settings))


def active_gates() -> dict[str, CallGate]:
    """The gates set by the enclosing `call_limits` blocks, by model and endpoint."""
    return dict(_gates.get())


@contextlib.contextmanager
def using_gates(gates: Mapping[str, CallGate]) -> Iterator[None]:
    """Throttle the calls made inside this block with `gates` (from `active_gates`, or new ones from shared limits)."""
    token = _gates.set(dict(gates))
    try:
        yield
    finally:
        _gates.reset(token)


def _gate_key(settings: LLMSettings) -> str:
    return f"{settings.model}@{settings.api_base or ''}"


def _logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    if FlowRunContext.get() or TaskRunContext.get():
        return get_run_logger()
    return logging.getLogger(__name__)


def _operator_limit(name: str) -> int | None:
    """The limit of an active GCL called `name`, or None when there is none (or no flow run)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.exceptions import ObjectNotFound

    if FlowRunContext.get() is None:
        return None
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None
    return limit.limit if limit.active else None


def _lease_share(stack: contextlib.ExitStack, name: str, wanted: int | None, what: str) -> int | None:
    """Lease min(wanted, limit) slots of the GCL `name` until `stack` closes, if an operator created it.

    Returns the run's share (the whole limit when `wanted` is None), or None when there is no such limit.
    """
    limit = _operator_limit(name)
    if limit is None:
        return None
    share = min(wanted or limit, limit)
    if wanted and wanted > limit:
        _logger().warning("%s: this run asked for %s but the Prefect limit %r allows %d; raise it with "
                          "`prefect gcl update %s --limit N`", what, wanted, name, limit, name)
    _logger().info("%s: leasing %d of %d from Prefect limit %r (waits while other runs hold it)", what, share, limit, name)
    from prefect.concurrency.sync import concurrency

    stack.enter_context(concurrency(name, occupy=share, strict=True))
    return share


@contextlib.contextmanager
def call_limits(settings: LLMSettings, max_concurrency: int, requests_per_minute: float | None = None) -> Iterator[CallGate]:
    """Throttle the calls to `settings`' model made inside this block (see the module docstring).

    In-process models (`local/`, `scripted/`) take no Prefect lease: their own lock serialises them.
    """
    name = None if settings.in_process else limit_name(settings)
    with contextlib.ExitStack() as stack:
        if name is not None:
            in_flight = _lease_share(stack, name, max_concurrency, "LLM calls in flight")
            rpm = _lease_share(stack, name + RPM_SUFFIX, math.ceil(requests_per_minute) if requests_per_minute else None,
                               "LLM requests per minute")
            max_concurrency = in_flight or max_concurrency
            requests_per_minute = min(rpm, requests_per_minute or rpm) if rpm else requests_per_minute
        gate = CallGate(max_concurrency, requests_per_minute)
        with using_gates(active_gates() | {_gate_key(settings): gate}):
            yield gate
