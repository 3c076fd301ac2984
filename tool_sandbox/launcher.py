"""Start the zygote from one thread that lives as long as this process.

The zygote asks the kernel for PR_SET_PDEATHSIG, so it dies with its parent even when the parent is
SIGKILLed. The kernel's "parent" there is the *thread* that forked it, not the process: a zygote started
from a short-lived thread (a pipeline chunk's row pool) was killed the moment that pool finished. The next
chunk then paid a restart (SymPy imported again), and a call that was still waiting for the start-up
message of a zygote killed that way failed. Forking from a thread that never exits keeps the parent-death
promise and loses nothing else. A one-thread executor is such a thread: its worker waits for work until
the interpreter exits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def _new_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tool-sandbox-launcher")


_executor = _new_executor()


def _after_fork_in_child() -> None:
    global _executor
    _executor = _new_executor()  # a fork keeps no thread but the caller's: the old executor's worker is gone


os.register_at_fork(after_in_child=_after_fork_in_child)


def on_launcher_thread(fn: Callable[[], T]) -> T:
    """Run `fn` (which starts a process) on the process-wide launcher thread and return its result."""
    return _executor.submit(fn).result()
