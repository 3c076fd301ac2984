"""Dynamic batching: requests that arrive from many threads at once share one `generate` call.

The distill flow runs up to `max_concurrency` solve/translate/rephrase tasks in threads, and each
waits on one LLM reply at a time. Served one by one, an in-process model decodes a single sequence
per forward pass, which on a CPU costs almost as much as decoding eight. So the first waiting
thread becomes the *leader*: it takes up to `max_batch` compatible pending requests, runs them as
one batch, hands every request its result, and repeats until its own request is answered; then the
next waiting thread takes over. Requests that arrive while a batch runs join the next one, so no
thread ever waits on a timer to fill a batch.

Requests are compatible when they share a `batch_key` (stop strings and temperature: one
`generate` call applies one of each to all its rows). The batcher knows nothing about models:
`run_batch` does the work and is given only compatible requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Result = TypeVar("Result")


@dataclass(eq=False)
class BatchItem(Generic[Result]):
    """One request in the queue; `run_batch` fills `result` (or the batcher fills `error`)."""

    batch_key: Hashable
    payload: object
    result: Result | None = None
    error: BaseException | None = None
    finished: bool = field(default=False, repr=False)


class DynamicBatcher(Generic[Result]):
    """Serialises `run_batch` calls and packs concurrent requests into them (see the module docstring)."""

    def __init__(self, run_batch: Callable[[list[BatchItem[Result]]], list[Result]], max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._pending: list[BatchItem[Result]] = []
        self._changed = threading.Condition()
        self._leader_active = False
        self.batch_sizes: list[int] = []  # one entry per run_batch call: for tests and benchmarks

    def submit(self, batch_key: Hashable, payload: object) -> Result:
        """Queue one request and block until its result is ready; re-raises the error of its batch."""
        item: BatchItem[Result] = BatchItem(batch_key, payload)
        with self._changed:
            self._pending.append(item)
            while not item.finished and self._leader_active:
                self._changed.wait()
            if not item.finished:
                self._leader_active = True
        if not item.finished:
            self._lead_until_done(item)
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _lead_until_done(self, own: BatchItem[Result]) -> None:
        try:
            while not own.finished:
                with self._changed:
                    batch = self._take_batch()
                self._run(batch)
                with self._changed:
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._leader_active = False
                self._changed.notify_all()

    def _take_batch(self) -> list[BatchItem[Result]]:
        """The oldest request and up to max_batch - 1 younger ones with the same key, in arrival order."""
        key = self._pending[0].batch_key
        batch = [item for item in self._pending if item.batch_key == key][: self.max_batch]
        taken = set(map(id, batch))
        self._pending = [item for item in self._pending if id(item) not in taken]
        return batch

    def _run(self, batch: list[BatchItem[Result]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = self._run_batch(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} requests")
            for item, result in zip(batch, results):
                item.result = result
        except BaseException as exc:  # noqa: BLE001 - every waiting request must learn why, not hang
            for item in batch:
                item.error = exc
        for item in batch:
            item.finished = True
