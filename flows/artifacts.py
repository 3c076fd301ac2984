"""Publish run results to the Prefect UI as artifacts: tables, markdown (with inline PNG charts), live progress.

Artifacts are the user's window on a run, never a reason for it to fail. Every publish goes
through `_publish`: outside a flow or task run it is a no-op; inside one, the first error (the API
down, a payload it refuses) logs one warning and turns artifacts off for the rest of that flow run,
so an outage costs one failed request instead of one retried request per artifact, and the run
goes on. Every text is passed through `redact_secrets` on its way out (API keys in environment
variables never reach the Prefect database).

Keys name a kind, not a run (`distill-funnel`, `distill-solve-progress`, ...): the Artifacts page
then shows each kind's history across runs.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prefect.context import FlowRunContext, TaskRunContext

from tasks.llm import redact_secrets

_fallback_log = logging.getLogger(__name__)
_lock = threading.Lock()
_failed_runs: set[str] = set()  # flow runs whose artifacts are off after an error


def _flow_run_id() -> str | None:
    """The flow run the current code belongs to (a task run's own flow run), None outside any run."""
    task_run = TaskRunContext.get()
    if task_run is not None:
        return str(task_run.task_run.flow_run_id or task_run.task_run.id)
    flow_run = FlowRunContext.get()
    return str(flow_run.flow_run.id) if flow_run is not None and flow_run.flow_run is not None else None


def _warn(message: str, *args: Any) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message, *args)
    except Exception:  # no run logger in this context: the module's own
        _fallback_log.warning(message, *args)


def _publish(key: str, create: Callable[[], Any]) -> Any | None:
    """`create()` inside a run, unless artifacts are off for it; any error turns them off with one warning."""
    run_id = _flow_run_id()
    if run_id is None or run_id in _failed_runs:
        return None
    try:
        return create()
    except Exception as exc:  # artifacts must never fail a run
        with _lock:
            first = run_id not in _failed_runs
            _failed_runs.add(run_id)
        if first:
            _warn("artifact %r not published (%s: %s); no more artifacts for this run, which goes on",
                  key, type(exc).__name__, redact_secrets(str(exc))[:300])
        return None


def never_fails(build: Callable[..., None]) -> Callable[..., None]:
    """For the functions that build and publish a run's artifacts: a bug or a missing file in the building logs
    one warning instead of failing the run (publishing itself is guarded by `_publish`)."""
    @functools.wraps(build)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            build(*args, **kwargs)
        except Exception as exc:
            _warn("artifacts of %s not built (%s: %s); the run goes on", build.__name__, type(exc).__name__,
                  redact_secrets(str(exc))[:300])
    return guarded


def _cell(value: Any) -> int | float | str | bool | None:
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_secrets(str(value))  # nested fields render as their text


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> bool:
    """A table artifact (nested values as text). False when nothing was published (no run, or an outage)."""
    from prefect.artifacts import create_table_artifact

    table = [{k: _cell(v) for k, v in row.items()} for row in rows]
    return _publish(key, lambda: create_table_artifact(table=table, key=key, description=description)) is not None


def publish_markdown(key: str, markdown: str, description: str) -> bool:
    """A markdown artifact; the Prefect UI renders GitHub tables, inline HTML and `data:` images in it."""
    from prefect.artifacts import create_markdown_artifact

    text = redact_secrets(markdown)
    return _publish(key, lambda: create_markdown_artifact(markdown=text, key=key, description=description)) is not None


def png_markdown(png: bytes, alt: str) -> str:
    """An inline image for a markdown artifact: the PNG travels in the artifact, no file server needed."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


class StageProgressArtifact:
    """A live progress bar per stage in the Prefect UI (key `<flow>-<stage>-progress`).

    Called by the stage runtime: `start(stage, total)` when a stage begins (items already done
    before count once `advance` reports them), `advance(done, failed)` each time more items
    finish, with the numbers finished (and failed) since the last call, and `finish()` when the
    stage is over. Updates closer than `min_interval_s` are folded into the next one (each is an
    HTTP request); `finish` always sends 100 %. Outside a run every method is a no-op; during an
    outage the bar stops, the stage does not.
    """

    def __init__(self, flow: str = "distill", min_interval_s: float = 2.0) -> None:
        self.flow = flow
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._artifact_id: Any = None
        self._total = self._done = self._failed = 0
        self._last_update = 0.0

    def __reduce__(self) -> tuple[type[StageProgressArtifact], tuple[str, float]]:
        # The stage task's parameters (this sink among them) travel in the Prefect context of every chunk sent to
        # another process (a Dask worker); the copy there starts fresh, since only the stage's own process reports.
        return type(self), (self.flow, self.min_interval_s)

    @property
    def key(self) -> str:
        return f"{self.flow}-{self._stage}-progress".lower().replace("_", "-")

    def _description(self) -> str:
        failed = f", {self._failed} failed" if self._failed else ""
        return f"{self._stage}: {self._done}/{self._total} items done{failed}"

    def _percent(self) -> float:
        return 100.0 if self._total == 0 else min(100.0, 100.0 * self._done / self._total)

    def start(self, stage: str, total: int) -> None:
        from prefect.artifacts import create_progress_artifact

        with self._lock:
            self._stage, self._total, self._done, self._failed = stage, total, 0, 0
            self._last_update = time.monotonic()
            self._artifact_id = _publish(self.key, lambda: create_progress_artifact(
                progress=self._percent(), key=self.key, description=self._description()))

    def advance(self, done: int, failed: int = 0) -> None:
        with self._lock:
            self._done += done
            self._failed += failed
            if time.monotonic() - self._last_update >= self.min_interval_s:
                self._send()

    def finish(self) -> None:
        with self._lock:
            self._done = max(self._done, self._total)
            self._send()
            self._artifact_id = None

    def _send(self) -> None:
        from prefect.artifacts import update_progress_artifact

        if self._artifact_id is None:
            return
        self._last_update = time.monotonic()
        artifact_id, percent, description = self._artifact_id, self._percent(), self._description()
        _publish(self.key, lambda: update_progress_artifact(artifact_id, percent, description=description))
