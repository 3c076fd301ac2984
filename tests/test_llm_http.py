"""A call gate taken per HTTP request (tasks/llm/http.py), as the mock server sees it.

For `openai/` and `hosted_vllm/` a slot is held from sending a request until its reply has been
read: the server never has more in flight than the gate allows, a retry's backoff holds no slot,
and no fault (reset, timeout, error status, truncated body) leaks one.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import litellm
import pytest
from mock_llm_server import FaultRule, MockLLMServer, ServerStats

from tasks.llm import LLMCallError, LLMSettings, complete
from tasks.llm.limits import call_limits

PROVIDERS = ["openai", "hosted_vllm"]


@pytest.fixture(autouse=True)
def _fake_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-llm-http")


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} + 3?"}]


def _settings(server: MockLLMServer, provider: str, **overrides) -> LLMSettings:
    return LLMSettings(**{"model": f"{provider}/scripted", "api_base": server.url, "timeout_s": 1.0} | overrides)


def _run_at_once(settings: LLMSettings, calls: list[list[dict[str, str]]], threads: int) -> list:
    """`complete` for every conversation on `threads` threads, all inside the caller's call limits."""
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(contextvars.copy_context().run, complete, m, settings) for m in calls]
        return [f.result() for f in futures]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_server_never_has_more_requests_in_flight_than_the_gate_allows(provider: str) -> None:
    with MockLLMServer(latency_s=0.15) as server:
        settings = _settings(server, provider)
        with call_limits(settings, max_concurrency=3):
            replies = _run_at_once(settings, [_messages(i) for i in range(15)], threads=15)
        stats = server.stats()
    assert [f"print({i} + 3)" in r.content for i, r in enumerate(replies)] == [True] * 15  # each its own answer
    assert stats.requests == 15 and stats.peak_in_flight == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_call_backing_off_after_a_429_leaves_its_slot_to_the_next_call(provider: str) -> None:
    """One slot: call A is told to retry after 1 s; call B, sent meanwhile, is answered before A's retry."""
    stats, finished = _backoff_beside_another_call(provider)
    assert stats.faults["rate_limit"] == 1 and stats.requests == 3 and stats.peak_in_flight == 1
    assert finished["b"] < finished["a"] - 0.4  # B did not wait for A's retry


def _backoff_beside_another_call(provider: str) -> tuple[ServerStats, dict[str, float]]:
    """Call A gets a 429 (retry after 1 s) on the one slot; call B is sent while A waits. When each finished."""
    finished: dict[str, float] = {}
    with MockLLMServer(faults=[FaultRule("rate_limit", match="What is 1 + 3?")], retry_after_s=1) as server:
        settings = _settings(server, provider)

        def call(name: str, i: int) -> None:
            complete(_messages(i), settings)
            finished[name] = time.monotonic()

        with call_limits(settings, max_concurrency=1):
            a = threading.Thread(target=contextvars.copy_context().run, args=(call, "a", 1))
            a.start()
            time.sleep(0.3)  # A has had its 429 and is waiting out Retry-After
            call("b", 2)
            a.join()
        return server.stats(), finished


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_fault_keeps_a_slot(provider: str) -> None:
    """Resets, timeouts, error statuses and truncated bodies each end an attempt; afterwards all slots are free."""
    faults = [FaultRule(kind, match=f"What is {i} + 3?") for i, kind in
              enumerate(["reset", "slow", "server_error", "malformed", "rate_limit"])]
    with MockLLMServer(faults=faults, slow_s=1.5, retry_after_s=1, latency_s=0.2) as server:
        settings = _settings(server, provider, num_retries=0)
        with call_limits(settings, max_concurrency=3):
            for i in range(len(faults)):
                with contextlib.suppress(LLMCallError):  # litellm itself re-sends once after a reset
                    complete(_messages(i), settings)
            server.reset_stats()
            _run_at_once(settings, [_messages(10 + i) for i in range(9)], threads=9)
        stats = server.stats()
    assert stats.requests == 9 and stats.peak_in_flight == 3  # 3 slots still there, and never more


def test_a_session_the_user_set_for_litellm_is_kept_and_calls_are_still_capped() -> None:
    own = httpx.AsyncClient()
    previous, litellm.aclient_session = litellm.aclient_session, own
    try:
        with MockLLMServer(latency_s=0.15) as server:
            settings = _settings(server, "openai")
            with call_limits(settings, max_concurrency=2):
                _run_at_once(settings, [_messages(i) for i in range(8)], threads=8)
            stats = server.stats()
        assert litellm.aclient_session is own
        assert stats.requests == 8 and stats.peak_in_flight == 2
    finally:
        litellm.aclient_session = previous


def test_requests_are_gated_one_by_one_whichever_transport_litellm_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """litellm's httpx transport instead of its aiohttp one: each request still holds its own slot (a 429's backoff none)."""
    from tasks.llm import http

    monkeypatch.setattr(litellm, "disable_aiohttp_transport", True)
    monkeypatch.setattr(http, "_clients", {})  # clients built from now on, with litellm's httpx transport
    stats, finished = _backoff_beside_another_call("hosted_vllm")
    transports = {type(c.handler.client._transport._inner._transport).__name__ for c in http._clients.values()}
    assert transports == {"AsyncHTTPTransport"}  # httpx's own, not aiohttp's
    assert stats.requests == 3 and stats.peak_in_flight == 1 and finished["b"] < finished["a"] - 0.4
