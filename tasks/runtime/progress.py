"""Progress of a running stage: a bar on a terminal, a plain line now and then elsewhere, a Prefect progress artifact.

A stage of thousands of rows runs for hours; its user wants to see items done out of total, the
rate, the time left and how many failed so far. `StageProgress` counts rows as they finish (from
the row threads of the stage's chunks) and shows the counts three ways:
- on a terminal (stderr is a TTY), a tqdm bar per stage;
- otherwise (CI logs, a worker's log), one plain line every `PLAIN_EVERY_S` seconds and at the end;
- on the Prefect run, a progress artifact per stage (`<stage>-progress`), so the UI shows a live bar.
`TOOL_DISTILL_PROGRESS=off` (the CLI's `--quiet`) keeps the terminal quiet; the artifact stays.
The artifact is updated at most every `ARTIFACT_EVERY_S` seconds: each update is an API call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

MODE_ENV = "TOOL_DISTILL_PROGRESS"  # auto (bar on a TTY, else plain lines) | plain | off
PLAIN_EVERY_S = 15.0
ARTIFACT_EVERY_S = 2.0

log = logging.getLogger(__name__)


def _failed(result: Any) -> bool:
    return bool(getattr(result, "llm_error", None))


class StageProgress:
    """Counts one stage's finished rows; thread-safe, cheap per row (a lock and a clock read)."""

    def __init__(self, stage: str, total: int, done_before: int, *, stream: TextIO | None = None) -> None:
        self.stage, self.total = stage, total
        self.done, self.failed = done_before, 0
        self._done_before = done_before
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stream = stream or sys.stderr
        mode = os.environ.get(MODE_ENV, "auto")
        self._bar = self._make_bar() if mode == "auto" and self._stream.isatty() else None
        self._plain = mode == "plain" or (mode == "auto" and self._bar is None)
        self._last_plain = self._last_artifact = 0.0
        self._artifact_id = self._create_artifact()

    def item_done(self, result: Any) -> None:
        """One row finished (its result says whether its LLM calls failed)."""
        with self._lock:
            self.done += 1
            self.failed += _failed(result)
            self._show(final=False)

    def chunk_done(self, results: list[Any]) -> None:
        """A chunk finished in another process (Dask, Ray): its rows were not counted one by one here."""
        with self._lock:
            self.done += len(results)
            self.failed += sum(map(_failed, results))
            self._show(final=False)

    def finish(self) -> None:
        with self._lock:
            self._show(final=True)
            if self._bar is not None:
                self._bar.close()

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        rate = (self.done - self._done_before) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = f", ETA {left:.0f} s" if left is not None and self.done < self.total else ""
        return (f"{self.stage}: {self.done}/{self.total} rows ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.2f}/s{eta}, {self.failed} failed")

    def _show(self, *, final: bool) -> None:
        now = time.monotonic()
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self._bar.refresh()
        elif self._plain and (final or now - self._last_plain >= PLAIN_EVERY_S):
            self._last_plain = now
            print(self.line(), file=self._stream, flush=True)
        if self._artifact_id is not None and (final or now - self._last_artifact >= ARTIFACT_EVERY_S):
            self._last_artifact = now
            self._update_artifact()

    def _make_bar(self) -> Any:
        from tqdm import tqdm

        return tqdm(total=self.total, initial=self.done, desc=self.stage, unit="row", file=self._stream,
                    dynamic_ncols=True, leave=True)

    def _create_artifact(self) -> Any:
        from prefect.artifacts import create_progress_artifact
        from prefect.context import TaskRunContext

        if TaskRunContext.get() is None:  # outside a Prefect run (a script, a unit test): nothing to attach to
            return None
        try:
            return create_progress_artifact(progress=self._percent(), key=f"{self.stage}-progress",
                                            description=f"Rows of the {self.stage} stage done so far")
        except Exception as exc:  # a UI/API outage must never fail the run
            log.warning("no progress artifact for %s: %s", self.stage, exc)
            return None

    def _update_artifact(self) -> None:
        from prefect.artifacts import update_progress_artifact

        try:
            update_progress_artifact(self._artifact_id, progress=self._percent())
        except Exception as exc:
            log.warning("progress artifact of %s not updated: %s", self.stage, exc)
            self._artifact_id = None

    def _percent(self) -> float:
        return round(100.0 * self.done / max(self.total, 1), 1)
