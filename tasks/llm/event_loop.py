"""One asyncio event loop per process, on a daemon thread, for blocking code that needs async I/O.

The stages are plain blocking code on threads (a solver waits on the sandbox, a translator on its
check), but their HTTP calls are cheaper on one event loop: litellm's sync Router runs its async
retry machinery in a brand-new event loop for every call, and 16 threads each parsing their own
replies fight over the GIL. Sent to one long-lived loop, every call shares litellm's cached async
client (its keep-alive connections) and the loop thread does all socket work: measured 1,500
calls at 16 in flight against the 200 ms mock server, 29.0 s from threads, 23.0 s through here.

`litellm.acompletion` builds each request in the loop's default executor (`run_in_executor`), a
CPU-only job for providers with a native async client, which then hops back to the loop through
its self-pipe while a second thread fights the loop thread for the GIL. `run_blocking(...,
inline_executor_jobs=True)` runs such jobs on the loop thread instead (see `_InlineableExecutor`).
It is only for coroutines whose executor jobs never block: for a provider without an async
client litellm makes the whole HTTP call in that job, which inline would stall every other call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_run_jobs_inline: ContextVar[bool] = ContextVar("run_executor_jobs_inline", default=False)


class _InlineableExecutor(ThreadPoolExecutor):
    """The loop's default executor: a thread pool, except for the coroutines that asked to run their jobs inline.

    Inline, the job runs at once in the loop thread and the returned future is already done, so
    `run_in_executor` resumes its caller without a thread switch. Measured with `hosted_vllm/`,
    1,600 calls at 16 in flight against the 200 ms mock server, 4 interleaved pairs on 2 cores:
    21.75 s and 6.7 ms of CPU per call inline, 22.6 s and 7.2 ms through the pool.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if not _run_jobs_inline.get():
            return super().submit(fn, *args, **kwargs)
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the awaiting coroutine gets it, as it would from a pool thread
            future.set_exception(exc)
        return future


def _running_loop() -> asyncio.AbstractEventLoop:
    """This process's loop, started on first use (and again in a forked child, where the thread is gone)."""
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop = asyncio.new_event_loop()
            _loop.set_default_executor(_InlineableExecutor(thread_name_prefix="tool-distill-loop-executor"))
            _loop_pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="tool-distill-event-loop", daemon=True).start()
        return _loop


async def _with_inline_jobs(coroutine: Coroutine[Any, Any, T]) -> T:
    _run_jobs_inline.set(True)  # in this task's own context: other tasks on the loop keep the pool
    return await coroutine


def run_blocking(coroutine: Coroutine[Any, Any, T], *, inline_executor_jobs: bool = False) -> T:
    """Run `coroutine` on the shared loop and wait for its result in the calling thread.

    `inline_executor_jobs`: run the coroutine's `run_in_executor(None, ...)` jobs on the loop
    thread; only for jobs that are pure CPU (see the module docstring).
    Must not be called from the loop's own thread (it would wait on itself); nothing in the
    pipeline does, since only blocking stage code calls it.
    """
    if inline_executor_jobs:
        coroutine = _with_inline_jobs(coroutine)
    return asyncio.run_coroutine_threadsafe(coroutine, _running_loop()).result()
