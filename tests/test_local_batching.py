"""DynamicBatcher with real threads: concurrent requests share batches, each gets its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.llm.local_batching import BatchItem, DynamicBatcher


def slow_echo(items: list[BatchItem[str]]) -> list[str]:
    """Stands in for `generate`: takes a while, whatever the batch size, like a CPU forward pass."""
    time.sleep(0.05)
    return [f"{item.batch_key}:{item.payload}" for item in items]


def test_concurrent_requests_share_batches_and_each_gets_its_own_result() -> None:
    batcher: DynamicBatcher[str] = DynamicBatcher(slow_echo, max_batch=8)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: batcher.submit("k", i), range(64)))
    assert results == [f"k:{i}" for i in range(64)]
    assert sum(batcher.batch_sizes) == 64
    assert max(batcher.batch_sizes) == 8  # 16 threads waiting: batches fill up to the cap
    assert len(batcher.batch_sizes) < 20


def test_requests_with_different_keys_never_share_a_batch() -> None:
    seen_batches: list[set[str]] = []
    lock = threading.Lock()

    def record(items: list[BatchItem[str]]) -> list[str]:
        with lock:
            seen_batches.append({str(item.batch_key) for item in items})
        time.sleep(0.02)
        return [str(item.payload) for item in items]

    batcher: DynamicBatcher[str] = DynamicBatcher(record, max_batch=8)
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda i: batcher.submit(("stop-a", "stop-b")[i % 2], i), range(48)))
    assert results == [str(i) for i in range(48)]
    assert all(len(keys) == 1 for keys in seen_batches)


def test_a_failed_batch_raises_in_every_waiting_thread_and_the_batcher_goes_on() -> None:
    def fail_on_seven(items: list[BatchItem[int]]) -> list[int]:
        time.sleep(0.02)
        if any(item.payload == 7 for item in items):
            raise RuntimeError("out of memory")
        return [int(item.payload) for item in items]  # type: ignore[call-overload]

    batcher: DynamicBatcher[int] = DynamicBatcher(fail_on_seven, max_batch=4)

    def ask(i: int) -> int | str:
        try:
            return batcher.submit("k", i)
        except RuntimeError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ask, range(16)))
    assert results[7] == "out of memory"
    assert all(r == i or r == "out of memory" for i, r in enumerate(results))
    assert batcher.submit("k", 99) == 99  # no leader left stuck behind


def test_a_single_caller_is_served_alone_and_max_batch_is_validated() -> None:
    batcher: DynamicBatcher[str] = DynamicBatcher(slow_echo, max_batch=1)
    assert [batcher.submit("k", i) for i in range(3)] == ["k:0", "k:1", "k:2"]
    assert batcher.batch_sizes == [1, 1, 1]
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(slow_echo, max_batch=0)
