"""The LLM door against a real OpenAI-compatible HTTP server that misbehaves on purpose.

Transient faults must be retried by exactly one layer, with the waits the server asks for;
permanent ones must fail at once with a reason a person can act on, and become failed rows.
Every count below is what the server saw, not what the client believes it sent.
"""

from __future__ import annotations

import time

import pytest
from mock_llm_server import FaultRule, MockLLMServer

from tasks.llm import LLMCallError, LLMSettings, complete
from tasks.prompt_store import load_prompt
from tasks.records import ProblemRecord, ToolCallRecord
from tasks.stages.solve import SolveConfig, solve_problem
from tasks.stages.translate import TranslateConfig, translate_tool_call

FAKE_KEY = "sk-fake-faults-7f3a9c1e5b"
TRANSLATOR = load_prompt("translator")
MESSAGES = [{"role": "system", "content": TRANSLATOR.render("system")},
            {"role": "user", "content": TRANSLATOR.render("user_code", code="print(12 * 7)")}]


@pytest.fixture(autouse=True)
def _fake_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def _settings(server: MockLLMServer, model: str = "openai/scripted", **overrides) -> LLMSettings:
    fields = dict(model=model, api_base=server.url, timeout_s=1.0, num_retries=3) | overrides
    return LLMSettings(**fields)


@pytest.mark.parametrize("kind", ["rate_limit", "server_error", "unavailable", "reset", "slow", "malformed"])
def test_transient_fault_is_retried_by_one_layer_until_the_call_succeeds(kind: str) -> None:
    with MockLLMServer(faults=[FaultRule(kind, times=2)], retry_after_s=1, slow_s=2.0) as server:
        reply = complete(MESSAGES, _settings(server))
        stats = server.stats()
    assert reply.content.endswith("\\boxed{84}")
    assert stats.faults[kind] == 2
    assert stats.requests == 3  # two faults, then the answer: no second layer re-sending on top


def test_rate_limit_waits_at_least_what_retry_after_says() -> None:
    arrivals: list[float] = []
    with MockLLMServer(faults=[FaultRule("rate_limit")], retry_after_s=2,
                       on_request=lambda agent, stats: arrivals.append(time.monotonic())) as server:
        complete(MESSAGES, _settings(server))
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 2.0


def test_a_fault_that_persists_gives_up_after_num_retries_with_the_reason() -> None:
    with MockLLMServer(faults=[FaultRule("unavailable", times=100)]) as server:
        with pytest.raises(LLMCallError, match="ServiceUnavailableError") as raised:
            complete(MESSAGES, _settings(server, num_retries=2))
        assert server.stats().requests == 3  # 1 + num_retries, not (1 + SDK retries) x (1 + litellm retries)
    assert "overloaded" in str(raised.value)


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty reply"),
    ("content_filter", "refused by the provider's content filter"),
    ("policy_violation", "ContentPolicyViolationError"),
    ("bad_key", "AuthenticationError"),
])
def test_permanent_fault_is_not_retried_and_names_the_reason(kind: str, reason: str) -> None:
    with MockLLMServer(faults=[FaultRule(kind)]) as server:
        with pytest.raises(LLMCallError, match=reason) as raised:
            complete(MESSAGES, _settings(server))
        assert server.stats().requests == 1
    assert FAKE_KEY not in str(raised.value)


def test_an_api_key_echoed_by_the_server_is_scrubbed_from_the_error() -> None:
    with MockLLMServer(faults=[FaultRule("bad_key")]) as server:
        with pytest.raises(LLMCallError) as raised:
            complete(MESSAGES, _settings(server))
        assert server.stats().api_keys_seen == {FAKE_KEY}  # the key did go out, in the header
    assert "Incorrect API key provided: ***" in str(raised.value)


def test_hosted_vllm_provider_gets_the_same_retry_policy() -> None:
    with MockLLMServer(faults=[FaultRule("unavailable", times=2), FaultRule("policy_violation", match="5 * 5")]) as server:
        settings = _settings(server, model="hosted_vllm/scripted")
        assert complete(MESSAGES, settings).content.endswith("\\boxed{84}")
        assert server.stats().requests == 3
        refused = [MESSAGES[0], {"role": "user", "content": TRANSLATOR.render("user_code", code="print(5 * 5)")}]
        with pytest.raises(LLMCallError, match="ContentPolicyViolationError"):
            complete(refused, settings)
        assert server.stats().requests == 4


def test_usage_and_cost_come_from_the_reply_and_litellms_price_table() -> None:
    import litellm

    with MockLLMServer() as server:
        reply = complete(MESSAGES, _settings(server, model="openai/gpt-4o-mini"))
    price = litellm.model_cost["gpt-4o-mini"]
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    expected = reply.prompt_tokens * price["input_cost_per_token"] + reply.completion_tokens * price["output_cost_per_token"]
    assert reply.cost_usd == pytest.approx(expected)


def test_a_model_litellm_cannot_price_costs_zero_with_a_warning_and_keeps_known_prices(caplog) -> None:
    import litellm

    model = "hosted_vllm/unpriced-test-model"
    with pytest.raises(Exception):  # noqa: B017 (litellm raises a bare Exception for a model it has no entry for)
        litellm.get_model_info(model)
    with MockLLMServer() as server, caplog.at_level("WARNING", logger="tasks.llm"):
        reply = complete(MESSAGES, _settings(server, model=model))
        assert complete(MESSAGES, _settings(server, model="openai/gpt-4o-mini")).cost_usd > 0
    assert reply.completion_tokens > 0 and reply.cost_usd == 0.0
    assert litellm.get_model_info(model)["input_cost_per_token"] == 0.0  # priced now: litellm stops failing to look it up
    assert any("no price for hosted_vllm/unpriced-test-model" in r.getMessage() for r in caplog.records)


def test_translation_refused_by_the_content_filter_is_an_unfaithful_row_with_the_reason() -> None:
    call = ToolCallRecord(problem_id="p1", call_index=0, tool_protocol="code", tool_name="python", arguments_json="{}",
                          code="print(12 * 7)", output="84\n", error=None, status="ok", duration_s=0.01,
                          model="m", prompt_version="solver/v1")
    with MockLLMServer(faults=[FaultRule("content_filter", agent="translator")]) as server:
        row = translate_tool_call(call, _settings(server), TranslateConfig())
        assert server.stats().requests == 1
    assert not row.faithful and row.attempts == 1
    assert "content filter" in (row.reason or "")


def test_solver_call_rejected_by_policy_is_an_error_trace_not_an_exception() -> None:
    problem = ProblemRecord(id="p1", problem="What is 12 * 7?", answer="84")
    with MockLLMServer(faults=[FaultRule("policy_violation", agent="solver")]) as server:
        outcome = solve_problem(problem, _settings(server), SolveConfig(tool_protocol="code"))
    assert outcome.trace.status == "error" and outcome.tool_calls == []
    assert "ContentPolicyViolationError" in (outcome.trace.error or "")
