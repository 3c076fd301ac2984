"""Progress of a running stage: a bar on a terminal, a plain line now and then elsewhere, a Prefect progress artifact.

A stage of thousands of rows runs for hours; its user wants to see items done out of total, the
rate, the time left and how many failed so far. `StageProgress` counts rows as they finish (from
the row threads of the stage's chunks) and shows the counts three ways:
- on a terminal (stderr is a TTY), a tqdm bar per stage;
- otherwise (CI logs, a worker's log), one plain line every `PLAIN_EVERY_S` seconds and at the end;
- to a `ProgressSink` the flow passes in: the distill flow's is a Prefect progress artifact per
  stage, so the UI shows a live bar (flows/artifacts.py; the runtime cannot import flows/).
`TOOL_DISTILL_PROGRESS=off` (the CLI's `--quiet`) keeps the terminal quiet; the sink still counts.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Protocol, TextIO

MODE_ENV = "TOOL_DISTILL_PROGRESS"  # auto (bar on a TTY, else plain lines) | plain | off
PLAIN_EVERY_S = 15.0


class ProgressSink(Protocol):
    """Where else the counts go (flows/artifacts.py's `StageProgressArtifact`: a live bar in the Prefect UI)."""

    def start(self, stage: str, total: int) -> None: ...
    def advance(self, done: int, failed: int = 0) -> None: ...
    def finish(self) -> None: ...

_stream: TextIO | None = None  # where bars and lines go; None: sys.stderr at the time


def show_progress_on(stream: TextIO) -> None:
    """Send the bars and lines to `stream` (the CLI's own stderr, when library output goes to its log file)."""
    global _stream
    _stream = stream


def _failed(result: Any) -> bool:
    return bool(getattr(result, "llm_error", None))


class StageProgress:
    """Counts one stage's finished rows (or training steps, or eval problems: `unit`); thread-safe, cheap per
    row (a lock and a clock read)."""

    def __init__(self, stage: str, total: int, done_before: int = 0, *, sink: ProgressSink | None = None,
                 stream: TextIO | None = None, unit: str = "rows") -> None:
        self.stage, self.total, self.unit = stage, total, unit
        self.done, self.failed = done_before, 0
        self._done_before = done_before
        self._counted: set[str] = set()
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stream = stream or _stream or sys.stderr
        mode = os.environ.get(MODE_ENV, "auto")
        self._bar = self._make_bar() if mode == "auto" and self._stream.isatty() else None
        self._plain = mode == "plain" or (mode == "auto" and self._bar is None)
        self._last_plain = 0.0
        self._shown: int | None = None  # the count the last plain line showed: the final line is not repeated
        self._sink = sink
        if sink is not None:
            sink.start(stage, total)
            sink.advance(done_before)

    def item_done(self, key: str, result: Any) -> None:
        """Row `key` finished (its result says whether its LLM calls failed); a retried chunk's rows count once."""
        with self._lock:
            if key in self._counted:
                return
            self._counted.add(key)
            self.done += 1
            self.failed += _failed(result)
            self._show(final=False)
            if self._sink is not None:
                self._sink.advance(1, _failed(result))

    def advance(self, count: int = 1) -> None:
        """`count` more units done, for work that is not a stage's rows (training steps, eval problems)."""
        with self._lock:
            self.done += count
            self._show(final=False)
            if self._sink is not None:
                self._sink.advance(count)

    def chunk_done(self, results: list[Any]) -> None:
        """A chunk finished in another process (Dask, Ray): its rows were not counted one by one here."""
        with self._lock:
            self.done += len(results)
            self.failed += sum(map(_failed, results))
            self._show(final=False)
            if self._sink is not None:
                self._sink.advance(len(results), sum(map(_failed, results)))

    def finish(self) -> None:
        with self._lock:
            self._show(final=True)
            if self._bar is not None:
                self._bar.close()
            if self._sink is not None:
                self._sink.finish()

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        rate = (self.done - self._done_before) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = f", ETA {left:.0f} s" if left is not None and self.done < self.total else ""
        failed = f", {self.failed} failed" if self.unit == "rows" else ""
        return (f"{self.stage}: {self.done}/{self.total} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.2f}/s{eta}{failed}")

    def _show(self, *, final: bool) -> None:
        now = time.monotonic()
        if self._bar is not None:
            self._bar.n = self.done
            if self.unit == "rows":
                self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self._bar.refresh()
        elif self._plain and (final or now - self._last_plain >= PLAIN_EVERY_S) and self._shown != self.done:
            self._last_plain, self._shown = now, self.done
            print(self.line(), file=self._stream, flush=True)

    def _make_bar(self) -> Any:
        from tqdm import tqdm

        return tqdm(total=self.total, initial=self.done, desc=self.stage, unit=self.unit.rstrip("s"), file=self._stream,
                    dynamic_ncols=True, leave=True)
