"""In-process call limits: in-flight calls and requests/min, as the server sees them."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from mock_llm_server import MockLLMServer

from tasks.llm import LLMSettings, complete
from tasks.llm.event_loop import portal
from tasks.llm.limits import CallGate, GateLimits, call_limits, gate_for, limit_name


def test_calls_inside_call_limits_never_exceed_max_concurrency_at_the_server(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-limits")
    with MockLLMServer(latency_s=0.2) as server:
        settings = LLMSettings(model="openai/scripted", api_base=server.url)
        messages = [{"role": "user", "content": "What is 2 + 3?"}]
        with call_limits(settings, max_concurrency=3), ThreadPoolExecutor(12) as pool:
            # Prefect's task runner copies the context into its threads; a bare pool must do it by hand.
            futures = [pool.submit(contextvars.copy_context().run, complete, messages, settings) for _ in range(12)]
            [f.result() for f in futures]
        stats = server.stats()
    assert stats.requests == 12 and stats.peak_in_flight == 3


def test_requests_per_minute_spaces_call_starts_evenly() -> None:
    gate = CallGate(max_in_flight=8, requests_per_minute=600)  # one start every 0.1 s
    starts: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        with gate.slot():
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert min(gaps) >= 0.09  # never two starts closer than 60/rpm (minus clock slack)


def test_async_slots_cap_coroutines_in_flight_and_space_their_starts() -> None:
    gate = CallGate(max_in_flight=2, requests_per_minute=1200)  # one start every 0.05 s
    in_flight, peak, starts = 0, 0, []

    async def call() -> None:
        nonlocal in_flight, peak
        async with gate.async_slot():
            starts.append(time.monotonic())
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.12)  # longer than the spacing: a third call would overlap without the cap
            in_flight -= 1

    async def main() -> None:
        await asyncio.gather(*(call() for _ in range(8)))

    asyncio.run(main())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert peak == 2 and len(starts) == 8 and min(gaps) >= 0.045


def test_requests_per_minute_holds_for_http_calls_made_on_the_event_loop(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-limits")
    with MockLLMServer(latency_s=0.0) as server:
        settings = LLMSettings(model="hosted_vllm/scripted", api_base=server.url)
        messages = [{"role": "user", "content": "What is 2 + 3?"}]
        started = time.monotonic()
        with call_limits(settings, max_concurrency=8, requests_per_minute=600), ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(contextvars.copy_context().run, complete, messages, settings) for _ in range(6)]
            [f.result() for f in futures]
        assert server.stats().requests == 6
    assert time.monotonic() - started >= 0.45  # 6 starts 0.1 s apart: the last one 0.5 s after the first


def test_in_process_calls_take_their_slots_from_the_gate_on_the_loop(monkeypatch) -> None:
    """`scripted/` calls run in their row threads; their slots (and rpm turns) come from the shared loop."""
    from tasks.llm.scripted_provider import ScriptedLLM

    served = ScriptedLLM.completion
    in_flight, peak, starts, lock = 0, 0, [], threading.Lock()

    def slow_completion(self, *args, **kwargs):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            starts.append(time.monotonic())
        time.sleep(0.1)
        with lock:
            in_flight -= 1
        return served(self, *args, **kwargs)

    monkeypatch.setattr(ScriptedLLM, "completion", slow_completion)
    settings = LLMSettings(model="scripted/arithmetic")
    with call_limits(settings, max_concurrency=2, requests_per_minute=1200), ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(contextvars.copy_context().run, complete, [{"role": "user", "content": f"What is {i} + 1?"}],
                               settings) for i in range(8)]
        replies = [f.result() for f in futures]
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert len(replies) == 8 and peak == 2 and min(gaps) >= 0.045  # one start every 0.05 s at most


def test_threads_and_coroutines_on_the_loop_count_against_the_same_slots() -> None:
    """A blocking thread's `slot()` is taken on the shared loop, from the same semaphore as `async_slot()`."""
    gate = CallGate(max_in_flight=2)
    held, release = threading.Event(), threading.Event()
    in_flight, peak = 0, 0

    def thread_call() -> None:
        with gate.slot():
            held.set()
            release.wait(5)

    async def loop_call() -> None:
        nonlocal in_flight, peak
        async with gate.async_slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1

    async def loop_calls() -> None:
        await asyncio.gather(*(loop_call() for _ in range(4)))

    holder = threading.Thread(target=thread_call)
    holder.start()
    assert held.wait(5)
    started = time.monotonic()
    portal().call(loop_calls)  # one slot left while the thread holds the other: one at a time
    elapsed = time.monotonic() - started
    release.set()
    holder.join()
    assert peak == 1 and elapsed >= 0.19
    portal().call(loop_calls)  # the thread's slot is back
    assert peak == 2


def test_a_waiting_thread_gets_the_slot_a_coroutine_frees() -> None:
    gate = CallGate(max_in_flight=1)
    order: list[str] = []

    async def hold_then_free() -> None:
        async with gate.async_slot():
            waiter.start()
            await asyncio.sleep(0.1)
            order.append("coroutine done")

    def thread_call() -> None:
        with gate.slot():
            order.append("thread in")

    waiter = threading.Thread(target=thread_call)
    portal().call(hold_then_free)
    waiter.join(5)
    assert order == ["coroutine done", "thread in"]


def test_gate_is_set_only_inside_the_block_and_only_for_its_model() -> None:
    settings = LLMSettings(model="openai/a", api_base="http://127.0.0.1:9/v1")
    other = LLMSettings(model="openai/b", api_base="http://127.0.0.1:9/v1")
    assert gate_for(settings) is None
    with call_limits(settings, max_concurrency=5, requests_per_minute=120) as gate:
        assert gate_for(settings) is gate and gate_for(other) is None
        assert (gate.max_in_flight, gate.requests_per_minute) == (5, 120)
    assert gate_for(settings) is None


def test_limit_name_is_per_model_and_a_valid_prefect_name() -> None:
    assert limit_name(LLMSettings(model="hosted_vllm/Qwen/Qwen2.5-7B-Instruct")) == "llm-hosted_vllm-Qwen-Qwen2.5-7B-Instruct"
    assert limit_name(LLMSettings(model="openai/gpt-4o-mini", concurrency_limit=None)) is None


@pytest.mark.parametrize("kwargs", [{"max_in_flight": 0}, {"max_in_flight": 2, "requests_per_minute": 0}])
def test_gate_rejects_limits_that_would_block_forever(kwargs) -> None:
    with pytest.raises(ValueError, match="must be"):
        CallGate(**kwargs)


def test_shares_of_a_gate_stay_within_its_limits_and_allow_a_call_each() -> None:
    limits = CallGate(16, requests_per_minute=600).limits
    assert limits == GateLimits(16, 600)
    for parts in (1, 2, 3, 5, 16):
        share = limits.share(parts)
        assert share.max_in_flight >= 1 and parts * share.max_in_flight <= 16
        assert parts * share.requests_per_minute == pytest.approx(600)
    assert GateLimits(4).share(3) == GateLimits(1, None)
