"""The distill flow against a misbehaving OpenAI-compatible server: faults end as rows, never as a crash.

One run meets every kind of outcome at once: transient faults (retried, the problem is kept),
a rejected key echoed back by the server, a content-filter refusal and an empty reply (each a
failed row with its reason). The server's request count pins down that nothing was retried twice
(neither a second retry layer nor a Prefect task retry), and every byte the run left behind is
searched for the API key. Also: a Prefect limit an operator created caps the run's share.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mock_llm_server import FaultRule, MockLLMServer
from prefect.client.orchestration import get_client

from flows.distill import DistillParams, distill
from tasks.llm import LLMSettings
from tasks.llm.limits import call_limits, gate_for, limit_name

FAKE_KEY = "sk-fake-flow-4d2e8b6a0c9f"
MODEL = "openai/gpt-4o-mini"  # in litellm's price table, so cost is not 0
PROBLEMS = {  # id: (problem, answer, what the server does to it)
    "a": ("What is 12 * 7?", "84", "bad key on the plan"),
    "b": ("What is 123 + 456?", "579", "content filter on the translation"),
    "c": ("What is 9 * 9?", "81", "empty reply to the rephrase"),
    "d": ("What is 21 * 2?", "42", "429, connection reset and 503, one per agent"),
}
FAULTS = [
    FaultRule("bad_key", agent="solver", match="12 * 7"),
    FaultRule("content_filter", agent="translator", match="123 + 456"),
    FaultRule("empty", agent="rephraser", match="9 * 9"),
    FaultRule("rate_limit", agent="solver", match="21 * 2"),
    FaultRule("reset", agent="translator", match="21 * 2"),
    FaultRule("unavailable", agent="rephraser", match="21 * 2"),
]
CALLS_PER_PROBLEM = 5  # plan, code, answer, one translation, one rephrase


def _params(tmp_path: Path, server: MockLLMServer) -> DistillParams:
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": k, "problem": p, "answer": a}) + "\n" for k, (p, a, _) in PROBLEMS.items()))
    params = DistillParams(problems=str(problems), output_dir=str(tmp_path / "out"), decontaminate=False,
                           llm=LLMSettings(model=MODEL, api_base=server.url, timeout_s=2.0, num_retries=2),
                           max_concurrency=2)
    params.solve.tool_protocol = "code"
    return params


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_faults_become_failed_rows_with_reasons_and_the_key_is_nowhere(prefect_api, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with MockLLMServer(faults=FAULTS) as server:
        summary = distill(_params(tmp_path, server))
        stats = server.stats()
    out = tmp_path / "out"

    assert summary.drop_reasons == {"solver_error": 1, "unfaithful_translation": 1, "empty_solution": 1}
    assert summary.kept == 1 and pq.read_table(out / "sft.parquet").column("id").to_pylist() == ["d"]
    traces = {r["problem_id"]: r for r in pq.read_table(out / "traces.parquet").to_pylist()}
    assert traces["a"]["status"] == "error" and "AuthenticationError" in traces["a"]["error"]
    assert "Incorrect API key provided: ***" in traces["a"]["error"]
    [refused] = [r for r in pq.read_table(out / "translations.parquet").to_pylist() if r["problem_id"] == "b"]
    assert not refused["faithful"] and "content filter" in refused["reason"]

    # a: 1 call (the plan, rejected); b: 4 (an unfaithful translation is never rephrased); c: all 5 (an empty reply
    # is a failed call, which the rephraser does not sample again); d: all 5 plus one retry for each of its 3
    # transient faults.
    assert stats.faults == {kind: 1 for kind in ("bad_key", "content_filter", "empty", "rate_limit", "reset", "unavailable")}
    assert stats.requests == 1 + (CALLS_PER_PROBLEM - 1) + 2 * CALLS_PER_PROBLEM + 3
    assert stats.by_agent["rephraser"] == 1 + 2  # c once, d once plus its retried 503: none for b
    assert stats.peak_in_flight <= 2

    rows = [r for stage in ("traces", "translations", "nl_traces") for r in pq.read_table(out / f"{stage}.parquet").to_pylist()]
    assert summary.prompt_tokens == sum(r["prompt_tokens"] for r in rows) > 0
    assert summary.cost_usd == pytest.approx(sum(r["cost_usd"] for r in rows), abs=1e-6) and summary.cost_usd > 0
    assert json.loads((out / "summary.json").read_text())["cost_usd"] == summary.cost_usd
    with get_client(sync_client=True) as client:
        [artifact] = [a for a in client.read_latest_artifacts() if a.key == "distill-summary"]
    assert json.loads(artifact.data)[0]["cost_usd"] == summary.cost_usd

    # The key went out (in the Authorization header) and came back in an error; it must be nowhere we keep.
    assert stats.api_keys_seen == {FAKE_KEY}
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    database = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    kept = _files_under(out, database.parent)
    assert any(p.parent.name == ".prefect-results" for p in kept) and database in kept
    leaks = [str(p) for p in kept if FAKE_KEY.encode() in p.read_bytes()]
    captured = capfd.readouterr()
    assert leaks == [] and FAKE_KEY not in captured.out + captured.err


def test_an_operator_limit_caps_the_runs_share_and_is_leased_for_the_block(prefect_api) -> None:
    from prefect import flow

    settings = LLMSettings(model="openai/some-model", api_base="http://127.0.0.1:9/v1")
    name = limit_name(settings)
    assert name == "llm-openai-some-model"
    seen: dict[str, int] = {}

    @flow
    def run_with_limits() -> None:
        with call_limits(settings, max_concurrency=8, requests_per_minute=100) as gate:
            seen.update(in_flight=gate.max_in_flight, rpm=gate.requests_per_minute, gate_found=gate_for(settings) is gate)
            with get_client(sync_client=True) as client:
                seen["held"] = client.read_global_concurrency_limit_by_name(name).active_slots

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 3)
        try:
            run_with_limits()
            after = client.read_global_concurrency_limit_by_name(name).active_slots
        finally:
            client.delete_global_concurrency_limit_by_name(name)
    assert seen == {"in_flight": 3, "rpm": 100, "gate_found": True, "held": 3}
    assert after == 0
