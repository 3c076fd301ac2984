"""Batch mode: a stage's single-turn calls go through the provider's batch API (files + batches), at about half price.

Inside `batch_calls(...)` (the distill flow sets it around the translate and rephrase stages,
`--batch`), `complete` hands each request to this process's `BatchCollector` instead of sending it.
The stage functions do not change: each row thread blocks in `complete` as it would on an online
call, only for longer. The collector, on the process's event loop (tasks/llm/event_loop.py):

1. gathers the requests of the waiting row threads into one batch: it closes when it holds
   `batch_max_lines` requests or `batch_window_s` after its first (so a stage runs its rows on as
   many threads as a batch holds, `stage_map.row_threads(batch=True)`, or a batch could never fill);
   identical requests share one line;
2. writes the JSONL (one line per request, `custom_id` = a hash of the request,
   `spend.request_key`), uploads it (`litellm.acreate_file`), records the file id and its custom
   ids in the output dir (`BatchJournal`, SQLite beside the spend ledger), creates the batch
   (`litellm.acreate_batch`) and **records the batch id before waiting**. A process killed between
   the two records, or a create whose answer was lost, is covered too: the batch is found again
   among the provider's batches by its input file (`litellm.alist_batches`) before any line is
   sent again;
3. polls it (`litellm.aretrieve_batch`) after `batch_poll_s`, then x1.5 per poll up to
   `batch_poll_max_s`; reads the output and error files (`litellm.afile_content`) and wakes each
   waiting thread with its line's reply;
4. re-submits failed lines and the lines an expired batch left undone, in a later batch, up to
   `num_retries` times; then the call fails with `LLMCallError` (a failed row, as online).

After a kill -9, the re-run's requests hash to the same custom ids: one found in the journal waits
on its recorded batch (polled again, or its output file read again if it had finished) instead of
being sent, so no line is paid twice. A translator's retry and the judge are later requests of the
same rows, so they become later batches by themselves.

Only for providers litellm sends to the OpenAI-compatible files and batches API (`BATCH_PROVIDERS`:
openai, hosted_vllm, litellm_proxy). Its files and batches calls go through the OpenAI SDK's own
client, outside the gates (a batch is not a call in flight at the endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litellm

from tasks.llm.event_loop import run_blocking
from tasks.llm.records import BATCH_PROVIDERS, LLMCallError, LLMSettings, SpendSettings
from tasks.llm.spend import LEDGER_NAME, current_stage, open_sqlite, request_key

log = logging.getLogger(__name__)
ENDPOINT = "/v1/chat/completions"
FINAL_STATUSES = frozenset({"completed", "expired", "failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, model TEXT, input_file_id TEXT, lines INTEGER,
    created_at REAL, status TEXT, output_file_id TEXT, error_file_id TEXT);
CREATE TABLE IF NOT EXISTS batch_lines (custom_id TEXT PRIMARY KEY, batch_id TEXT NOT NULL, attempts INTEGER NOT NULL);
"""


def intent_id(input_file_id: str) -> str:
    """The journal's stand-in for the batch of an uploaded file until the provider has named it."""
    return f"upload:{input_file_id}"


@dataclass(frozen=True)
class RecordedBatch:
    batch_id: str  # or `intent_id(input_file_id)` when the process stopped before it learnt the id
    status: str | None  # None while it was being waited on
    output_file_id: str | None
    error_file_id: str | None
    input_file_id: str | None = None


class BatchJournal:
    """Which batch holds which request, on disk, written before the batch is waited on."""

    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def record_upload(self, input_file_id: str, model: str, custom_ids: list[str]) -> None:
        """The lines of a batch about to be created, under a stand-in id (`intent_id`) until `record_batch`."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL)",
                             (intent_id(input_file_id), model, input_file_id, len(custom_ids), time.time()))
            self._db.executemany("INSERT INTO batch_lines VALUES (?, ?, 1) ON CONFLICT(custom_id) DO UPDATE SET "
                                 "batch_id = excluded.batch_id, attempts = attempts + 1",
                                 [(custom_id, intent_id(input_file_id)) for custom_id in custom_ids])

    def record_batch(self, input_file_id: str, batch_id: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE batches SET batch_id = ? WHERE batch_id = ?", (batch_id, intent_id(input_file_id)))
            self._db.execute("UPDATE batch_lines SET batch_id = ? WHERE batch_id = ?", (batch_id, intent_id(input_file_id)))

    def finish(self, batch_id: str, status: str, output_file_id: str | None, error_file_id: str | None) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE batches SET status = ?, output_file_id = ?, error_file_id = ? WHERE batch_id = ?",
                             (status, output_file_id, error_file_id, batch_id))

    def batch_of(self, custom_id: str) -> tuple[RecordedBatch, int] | None:
        """The batch that last held `custom_id`, and how many batches have held it."""
        with self._lock:
            row = self._db.execute(
                "SELECT b.batch_id, b.status, b.output_file_id, b.error_file_id, b.input_file_id, l.attempts "
                "FROM batch_lines l JOIN batches b ON b.batch_id = l.batch_id WHERE l.custom_id = ?",
                (custom_id,)).fetchone()
        return None if row is None else (RecordedBatch(*row[:5]), row[5])

    def batch_ids(self) -> list[str]:
        with self._lock:
            return [batch_id for (batch_id,) in self._db.execute("SELECT batch_id FROM batches ORDER BY created_at")]

    def close(self) -> None:
        self._db.close()


@dataclass
class _Line:
    body: dict[str, Any]
    future: asyncio.Future
    attempts: int = 0  # batches that have held it


class BatchCollector:
    """One model's batches in this process; every method but `complete` runs on the event loop."""

    def __init__(self, settings: LLMSettings, spend: SpendSettings, journal_path: Path, stages: Sequence[str]) -> None:
        placement = litellm.get_llm_provider(settings.model)
        self.settings, self.spend, self.stages = settings, spend, frozenset(stages)
        self.model_name, self.provider = placement[0], placement[1]
        if self.provider not in BATCH_PROVIDERS:
            raise ValueError(f"--batch: litellm has no batch API for {settings.model} (provider {self.provider}); "
                             f"it has one for {', '.join(p + '/' for p in BATCH_PROVIDERS)}")
        self.journal = BatchJournal(journal_path)
        self._lines: dict[str, _Line] = {}
        self._pending: list[str] = []
        self._window: asyncio.TimerHandle | None = None
        self._followed: set[str] = set()  # batches this process polls or has read
        self._outputs: dict[str, dict[str, dict[str, Any]]] = {}  # batch id -> custom id -> output/error line

    # -- from a row thread ------------------------------------------------------------------------------------------
    def complete(self, request: dict[str, Any]) -> Any:
        """The reply to `request` (the kwargs `complete` would send), as a litellm `ModelResponse`; blocks until its
        batch is done. Raises `LLMCallError` when its line still failed after `num_retries` re-submissions."""
        custom_id = request_key(self.settings, request)
        body = {"model": self.model_name, **request}
        return litellm.ModelResponse(**run_blocking(self._reply(custom_id, body)))

    # -- on the loop ------------------------------------------------------------------------------------------------
    def _credentials(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"custom_llm_provider": self.provider, "timeout": self.settings.timeout_s}
        if self.settings.api_base:
            kwargs["api_base"] = self.settings.api_base
        if self.provider == "hosted_vllm":  # the OpenAI SDK underneath insists on a key; vLLM needs none
            kwargs["api_key"] = os.environ.get("HOSTED_VLLM_API_KEY") or "EMPTY"
        return kwargs

    async def _reply(self, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        line = self._lines.get(custom_id)
        if line is None:
            line = self._lines[custom_id] = _Line(body, asyncio.get_running_loop().create_future())
            recorded = self.journal.batch_of(custom_id)
            if recorded is None:
                self._enqueue(custom_id)
            else:  # a batch of an earlier process holds it: wait on that one, do not pay again
                batch, line.attempts = recorded
                self._follow(batch)
        try:
            return await asyncio.shield(line.future)
        finally:
            if line.future.done() and self._lines.get(custom_id) is line:  # answered: its request body can go
                del self._lines[custom_id]

    def _enqueue(self, custom_id: str) -> None:
        self._pending.append(custom_id)
        if len(self._pending) >= self.spend.batch_max_lines:
            self._close_batch()
        elif self._window is None:
            self._window = asyncio.get_running_loop().call_later(self.spend.batch_window_s, self._close_batch)

    def _close_batch(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._window = None
        custom_ids, self._pending = self._pending[:self.spend.batch_max_lines], self._pending[self.spend.batch_max_lines:]
        if self._pending:
            self._window = asyncio.get_running_loop().call_later(self.spend.batch_window_s, self._close_batch)
        if custom_ids:
            self._background(self._submit(custom_ids), custom_ids)

    async def _submit(self, custom_ids: list[str]) -> None:
        jsonl = "".join(json.dumps({"custom_id": c, "method": "POST", "url": ENDPOINT, "body": self._lines[c].body}) + "\n"
                        for c in custom_ids).encode()
        try:
            file = await self._with_retries(self._upload, jsonl)
            self.journal.record_upload(file.id, self.settings.model, custom_ids)
            for custom_id in custom_ids:
                self._lines[custom_id].attempts += 1
            batch = await self._with_retries(self._create_or_find, file.id)
        except Exception as exc:  # the endpoint refused the batch itself: every line fails as its call would
            self._fail(custom_ids, f"batch not accepted: {type(exc).__name__}: {exc}")
            return
        self.journal.record_batch(file.id, batch.id)  # before any waiting
        log.info("batch %s: %d requests submitted", batch.id, len(custom_ids))
        self._followed.add(batch.id)
        await self._poll(batch.id)

    async def _upload(self, jsonl: bytes) -> Any:
        return await litellm.acreate_file(file=("tool-distill-batch.jsonl", jsonl, "application/jsonl"), purpose="batch",
                                          **self._credentials())

    async def _create_or_find(self, input_file_id: str) -> Any:
        """Create the batch of an uploaded file, unless one exists already (a create whose answer was lost)."""
        found = await self._find(input_file_id)
        if found is not None:
            return found
        return await litellm.acreate_batch(completion_window="24h", endpoint=ENDPOINT, input_file_id=input_file_id,
                                           metadata={"created_by": "tool-distill"}, **self._credentials())

    async def _find(self, input_file_id: str) -> Any | None:
        """The provider's batch over `input_file_id` among its latest 100, if any."""
        listed = await litellm.alist_batches(limit=100, **self._credentials())
        return next((b for b in listed.data if b.input_file_id == input_file_id), None)

    async def _adopt(self, input_file_id: str, held: list[str]) -> None:
        """Lines an earlier process uploaded but whose batch id it never recorded: find that batch, or send again."""
        batch = await self._with_retries(self._find, input_file_id)
        if batch is None:
            for custom_id in held:
                self._enqueue(custom_id)
            return
        self.journal.record_batch(input_file_id, batch.id)
        self._followed.add(batch.id)
        await self._poll(batch.id, first_wait_s=0.0)

    async def _with_retries(self, call: Any, *args: Any) -> Any:
        """`call(*args)`, retried with backoff on any error (`num_retries` times): batch requests are few and cheap."""
        for attempt in range(self.settings.num_retries + 1):
            try:
                return await call(*args)
            except Exception:
                if attempt == self.settings.num_retries:
                    raise
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
        raise AssertionError("unreachable")

    def _follow(self, batch: RecordedBatch) -> None:
        """Wait on a batch recorded in the journal: poll it if it was still running, else read its files again."""
        if batch.batch_id in self._outputs:
            self._deliver(batch.batch_id)
        elif batch.batch_id not in self._followed:
            self._followed.add(batch.batch_id)
            held = [c for c, line in self._lines.items() if not line.future.done() and self._holder(c) == batch.batch_id]
            if batch.input_file_id is not None and batch.batch_id == intent_id(batch.input_file_id):
                self._background(self._adopt(batch.input_file_id, held), held)
            elif batch.status is None:
                self._background(self._poll(batch.batch_id, first_wait_s=0.0), held)
            else:
                self._background(self._read(batch.batch_id, batch.output_file_id, batch.error_file_id), held)

    async def _poll(self, batch_id: str, first_wait_s: float | None = None) -> None:
        wait = self.spend.batch_poll_s if first_wait_s is None else first_wait_s
        next_wait = self.spend.batch_poll_s
        while True:
            await asyncio.sleep(wait)
            wait, next_wait = next_wait, min(next_wait * 1.5, self.spend.batch_poll_max_s)
            try:
                batch = await self._with_retries(self._retrieve, batch_id)
            except Exception as exc:  # the batch cannot be read: its lines go into a new one
                log.warning("batch %s: cannot be read (%s); its requests are submitted again", batch_id, exc)
                self._outputs[batch_id] = {}
                self._deliver(batch_id)
                return
            if batch.status in FINAL_STATUSES:
                break
        self.journal.finish(batch_id, batch.status, batch.output_file_id, batch.error_file_id)
        log.info("batch %s: %s (%s)", batch_id, batch.status, batch.request_counts)
        await self._read(batch_id, batch.output_file_id, batch.error_file_id)

    async def _retrieve(self, batch_id: str) -> Any:
        return await litellm.aretrieve_batch(batch_id=batch_id, **self._credentials())

    async def _read(self, batch_id: str, output_file_id: str | None, error_file_id: str | None) -> None:
        lines: dict[str, dict[str, Any]] = {}
        for file_id in (error_file_id, output_file_id):  # an output line wins over an error line
            if file_id:
                try:
                    content = await self._with_retries(self._file_content, file_id)
                except Exception as exc:
                    log.warning("batch %s: file %s cannot be read (%s)", batch_id, file_id, exc)
                    continue
                lines |= {line["custom_id"]: line for line in map(json.loads, filter(str.strip, content.splitlines()))}
        self._outputs[batch_id] = lines
        self._deliver(batch_id)

    async def _file_content(self, file_id: str) -> str:
        return (await litellm.afile_content(file_id=file_id, **self._credentials())).text

    def _deliver(self, batch_id: str) -> None:
        """Wake every waiting request whose line this batch held; re-submit those it did not answer."""
        outputs = self._outputs[batch_id]
        for custom_id, line in list(self._lines.items()):
            if line.future.done() or self._holder(custom_id) != batch_id:
                continue
            output = outputs.get(custom_id) or {}
            response = output.get("response") or {}
            if response.get("status_code") == 200 and response.get("body"):
                line.future.set_result(response["body"])
            else:
                self._retry(custom_id, _line_error(output, batch_id))

    def _background(self, work: Any, custom_ids: list[str]) -> None:
        """Run `work` on the loop; if it breaks (a bug, an answer we cannot read), its waiting lines fail instead of
        waiting for ever."""
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                log.exception("batch work failed")
                self._fail(custom_ids, f"{type(exc).__name__}: {exc}")

        _keep(asyncio.ensure_future(guarded()))

    def _holder(self, custom_id: str) -> str | None:
        recorded = self.journal.batch_of(custom_id)
        return recorded[0].batch_id if recorded else None

    def _retry(self, custom_id: str, reason: str) -> None:
        line = self._lines[custom_id]
        if line.attempts > self.settings.num_retries:
            self._fail([custom_id], f"{reason} ({line.attempts} batches)")
        else:
            self._enqueue(custom_id)

    def _fail(self, custom_ids: list[str], reason: str) -> None:
        for custom_id in custom_ids:
            line = self._lines[custom_id]
            if not line.future.done():
                line.future.set_exception(LLMCallError(f"{self.settings.model}: batch: {' '.join(reason.split())[:500]}"))

    def close(self) -> None:
        self.journal.close()


def _line_error(output: dict[str, Any], batch_id: str) -> str:
    error = output.get("error") or (output.get("response") or {}).get("body", {}).get("error")
    if not output:
        return f"no result in batch {batch_id}"
    return f"line failed in batch {batch_id}: {error}"


_tasks: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    """Hold a reference to a background task until it ends (the loop keeps only weak ones)."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


_collector: ContextVar[BatchCollector | None] = ContextVar("llm_batch_collector", default=None)


def active_collector(settings: LLMSettings) -> BatchCollector | None:
    """The collector of the enclosing `batch_calls`, when it is for this model and endpoint and the call is made for
    a row of one of its stages (`spend_item` names the row's stage)."""
    collector = _collector.get()
    if collector is None or (collector.settings.model, collector.settings.api_base) != (settings.model, settings.api_base):
        return None
    return collector if current_stage() in collector.stages else None


@contextlib.contextmanager
def batch_calls(settings: LLMSettings, spend: SpendSettings, journal_dir: Path,
                stages: Sequence[str]) -> Iterator[BatchCollector | None]:
    """Send the calls to `settings`' model made for rows of `stages` inside this block through the provider's batch
    API, when `spend.batch` is on (otherwise a no-op); the journal lives in `journal_dir` beside the spend ledger."""
    if not spend.batch:
        yield None
        return
    collector = BatchCollector(settings, spend, Path(journal_dir) / LEDGER_NAME, stages)
    token = _collector.set(collector)
    try:
        yield collector
    finally:
        _collector.reset(token)
        collector.close()
