"""One event loop per process, run by anyio's blocking portal, for blocking code that needs async I/O.

The stages are plain blocking code on threads (a solver waits on the sandbox, a translator on its
check), but their HTTP calls are cheaper on one event loop: litellm's sync Router runs its async
retry machinery in a brand-new event loop for every call, and many threads each parsing their own
replies fight over the GIL. Sent to one long-lived loop, every call shares litellm's cached async
clients (their keep-alive connections) and the loop thread does all socket work. The call gates
(tasks/llm/limits.py) keep their semaphores on this loop too, so a blocking thread takes its slot
here as well (`portal().call`).

`litellm.acompletion` builds each request in the loop's default executor (`run_in_executor`), a
CPU-only job for providers with a native async client, which then hops back to the loop through
its self-pipe while a second thread fights the loop thread for the GIL. `run_blocking(...,
inline_executor_jobs=True)` runs such jobs on the loop thread instead (see `_InlineableExecutor`;
what it is worth: docs/llm.md). It is only for coroutines whose executor jobs never block: for a
provider without an async client litellm makes the whole HTTP call in that job, which inline would
stall every other call.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")

LOOP_THREAD_NAME = "tool-distill-event-loop"
_lock = threading.Lock()
_portal: BlockingPortal | None = None
_portal_pid: int | None = None
_run_jobs_inline: ContextVar[bool] = ContextVar("run_executor_jobs_inline", default=False)


class _InlineableExecutor(ThreadPoolExecutor):
    """The loop's default executor: a thread pool, except for the coroutines that asked to run their jobs inline.

    Inline, the job runs at once in the loop thread and the returned future is already done, so
    `run_in_executor` resumes its caller without a thread switch.
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


def _use_inlineable_executor() -> None:
    asyncio.get_running_loop().set_default_executor(_InlineableExecutor(thread_name_prefix=f"{LOOP_THREAD_NAME}-executor"))


def portal() -> BlockingPortal:
    """This process's portal, started on first use (and again in a forked child, where its thread is gone)."""
    global _portal, _portal_pid
    with _lock:
        if _portal is None or _portal_pid != os.getpid():
            running = contextlib.ExitStack()
            _portal = running.enter_context(start_blocking_portal(name=LOOP_THREAD_NAME))
            _portal_pid = os.getpid()
            _portal.call(_use_inlineable_executor)
            # Stopped before the interpreter freezes daemon threads: left to garbage collection, the
            # portal's exit would wait on a loop thread that can no longer run.
            atexit.register(_stop, _portal, _portal_pid, running)
        return _portal


def _stop(started: BlockingPortal, pid: int, running: contextlib.ExitStack) -> None:
    if os.getpid() != pid:  # a forked child never started this portal's thread
        return
    with contextlib.suppress(RuntimeError):  # stopped already
        started.call(started.stop, True)  # cancel calls still in flight: nothing waits for them any more
    running.close()


async def _with_inline_jobs(coroutine: Coroutine[Any, Any, T]) -> T:
    _run_jobs_inline.set(True)  # in this task's own context: other tasks on the loop keep the pool
    return await coroutine


def run_blocking(coroutine: Coroutine[Any, Any, T], *, inline_executor_jobs: bool = False) -> T:
    """Run `coroutine` on the shared loop and wait for its result in the calling thread.

    `inline_executor_jobs`: run the coroutine's `run_in_executor(None, ...)` jobs on the loop
    thread; only for jobs that are pure CPU (see the module docstring). Raises RuntimeError when
    called from the loop's own thread (it would wait on itself); only blocking stage code calls it.
    """
    if inline_executor_jobs:
        coroutine = _with_inline_jobs(coroutine)
    try:
        return portal().call(lambda: coroutine)
    finally:
        coroutine.close()  # a no-op once it has run; one that never started (a wrong thread) must not warn
