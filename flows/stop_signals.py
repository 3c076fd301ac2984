"""Ctrl-C, SIGTERM and SIGHUP stop a run and say so in one line, with the shell's exit code 128 + signal.

The first signal raises `StopRequested` in the main thread, so Prefect records the run as ended and the
CLI prints its line. Every finished row is already cached on disk, so abandoning the LLM calls in flight
loses nothing; waiting for them could take minutes (a slow model, an endpoint that hangs), so the
process guard's parent ends the run after `STOP_GRACE_S` (flows/process_guard.py), and a second signal
ends it at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

STOP_GRACE_S = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Ctrl-C reaches the work twice at once (from the terminal, and forwarded by the process guard's parent):
# only a signal later than this is the user's second.
SAME_SIGNAL_S = 1.0


class StopRequested(KeyboardInterrupt):
    """A stop signal, raised like Ctrl-C's KeyboardInterrupt; `exit_code` is the shell's 128 + signal."""

    def __init__(self, number: int) -> None:
        self.signal_name = signal.Signals(number).name
        self.exit_code = 128 + number
        super().__init__(self.signal_name)


class StopOnSignals:
    """Install in the main thread; `say(stop)` prints the run's one line, once, whichever path ends it."""

    def __init__(self, say: Callable[[StopRequested], None]) -> None:
        self._say = say
        self._said = threading.Lock()
        self._first: StopRequested | None = None
        self._first_at = 0.0
        for number in STOP_SIGNALS:
            signal.signal(number, self._on_signal)

    def say_once(self, stop: StopRequested) -> None:
        if self._said.acquire(blocking=False):
            self._say(stop)
            sys.stdout.flush()
            sys.stderr.flush()

    def _on_signal(self, number: int, _frame: object) -> None:
        if self._first is None:
            self._first, self._first_at = StopRequested(number), time.monotonic()
            raise self._first
        if time.monotonic() - self._first_at > SAME_SIGNAL_S:
            self.say_once(self._first)
            os._exit(self._first.exit_code)
