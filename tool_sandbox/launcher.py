"""Start the zygote from one thread that lives as long as this process.

The zygote asks the kernel for PR_SET_PDEATHSIG, so it dies with its parent even when the parent is
SIGKILLed. The kernel's "parent" there is the *thread* that forked it, not the process: a zygote started
from a short-lived thread (a pipeline chunk's row pool) was killed the moment that pool finished. The next
chunk then paid a restart (SymPy imported again), and a call that was still waiting for the start-up
message of a zygote killed that way failed. Forking from a thread that never exits keeps the parent-death
promise and loses nothing else.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")
_Job = tuple[Callable[[], object], "Future[object]"]


class _Launcher:
    """One daemon thread that runs the callables handed to it, in order."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a fork keeps no thread but the caller's

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] | None = None
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` run on the launcher thread; its exception is raised here."""
        future: Future[T] = Future()
        self._queue().put((fn, future))  # type: ignore[arg-type]
        return future.result()

    def _queue(self) -> queue.SimpleQueue[_Job]:
        with self._lock:
            if self._jobs is None or self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=_serve, args=(self._jobs,), name="tool-sandbox-launcher",
                                                daemon=True)
                self._thread.start()
            return self._jobs


def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        fn, future = jobs.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
            future.set_exception(exc)


_launcher = _Launcher()


def on_launcher_thread(fn: Callable[[], T]) -> T:
    """Run `fn` (which starts a process) on the process-wide launcher thread and return its result."""
    return _launcher.call(fn)
