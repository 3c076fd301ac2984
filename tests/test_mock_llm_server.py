"""The mock server's own behaviour that benchmarks rely on: its latency is what it claims."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from mock_llm_server import MockLLMServer


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} + {i}?"}]


def test_jittered_latency_is_spread_evenly_around_its_mean_and_fixed_per_request() -> None:
    server = MockLLMServer(latency_s=0.2, latency_jitter=0.5)
    waits = [server.latency_for(_messages(i)) for i in range(4000)]
    assert all(0.1 <= w < 0.3 for w in waits)
    assert sum(waits) / len(waits) == pytest.approx(0.2, rel=0.02)
    assert sum(w < 0.15 for w in waits) / len(waits) == pytest.approx(0.25, abs=0.03)  # even, not bunched at the mean
    assert server.latency_for(_messages(7)) == server.latency_for(_messages(7))  # any client: same request, same wait
    assert MockLLMServer(latency_s=0.2).latency_for(_messages(7)) == 0.2


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="latency_jitter"):
        MockLLMServer(latency_s=0.2, latency_jitter=1.5)


def test_a_request_waits_its_jittered_latency() -> None:
    with MockLLMServer(latency_s=0.3, latency_jitter=0.9) as server:
        for i in (1, 2, 3):
            body = json.dumps({"model": "scripted", "messages": _messages(i)}).encode()
            request = urllib.request.Request(f"{server.url}/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            started = time.perf_counter()
            reply = json.loads(urllib.request.urlopen(request, timeout=5).read())
            took = time.perf_counter() - started
            assert reply["choices"][0]["message"]["content"]
            # the floor is exact; the ceiling leaves room for a loaded CI machine's scheduling
            assert server.latency_for(_messages(i)) <= took < server.latency_for(_messages(i)) + 0.5


def _post(server: MockLLMServer, messages: list[dict[str, str]]) -> None:
    body = json.dumps({"model": "scripted", "messages": messages}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/chat/completions", data=body,
                                                  headers={"Content-Type": "application/json"}), timeout=5).read()


def test_the_requests_digest_is_the_multiset_of_requests_in_any_order() -> None:
    """Benchmarks compare it across clients to prove both sent the very same workload."""
    with MockLLMServer() as server:
        digests = []
        for order in ([1, 2, 2], [2, 1, 2], [1, 2], [1, 2, 3]):
            server.reset_stats()
            for i in order:
                _post(server, _messages(i))
            digests.append(server.stats().requests_digest)
    assert digests[0] == digests[1]  # order does not matter
    assert len(set(digests[1:])) == 3  # a missing repeat or another request does


def test_the_servers_own_work_happens_inside_the_latency_not_on_top_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.3 s endpoint answers 0.3 s after the request arrived, however long building the answer took."""
    import mock_llm_server

    build = mock_llm_server._Handler._scripted_answer

    def slow_build(body: dict) -> bytes:
        time.sleep(0.2)  # far more than the real build costs (~1 ms), so the test cannot pass by chance
        return build(body)

    monkeypatch.setattr(mock_llm_server._Handler, "_scripted_answer", staticmethod(slow_build))
    with MockLLMServer(latency_s=0.3) as server:
        took = []
        for i in (1, 2, 3):
            started = time.perf_counter()
            _post(server, _messages(i))
            took.append(time.perf_counter() - started)
    assert 0.3 <= min(took) and sorted(took)[1] < 0.45  # 0.5 s if the build came on top of the wait


def test_a_seed_makes_a_sampled_request_another_request_but_not_a_greedy_one() -> None:
    """Sample j of a problem differs from sample i only by its seed: not a repeat. At temperature 0 a seed changes
    nothing a model answers, so clients that send one and clients that do not send the same requests."""
    from mock_llm_server import request_key

    def key(temperature: float, seed: int | None) -> str:
        body = {"model": "scripted", "messages": _messages(1), "temperature": temperature}
        return request_key(body if seed is None else {**body, "seed": seed})

    assert key(0.7, 1) != key(0.7, 2)
    assert key(0.0, 1) == key(0.0, 2) == key(0.0, None)
