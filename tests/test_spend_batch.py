"""Batch mode: the translator, judge and rephraser through litellm's batch API, against the mock server's files and
batches endpoints (delays, failed lines, expired batches), priced at the batch price, and resumed after kill -9
without a line paid twice."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import litellm
import pytest
from command_lines import TOOL_DISTILL, env_without_prefect
from mock_llm_server import FaultRule, MockLLMServer, ServerStats
from test_spend_budget import stepwise_problems

from tasks.llm import LLMSettings, SpendSettings, batch_calls, complete, ledger_totals, spend_control, spend_item
from tasks.llm.spend import token_prices
from tasks.parquet_io import read_records, stage_path
from tasks.records import NLTraceRecord, SFTRecord, TranslationRecord

FAKE_KEY = "sk-fake-batch-1a2b3c4d"
MODEL = "openai/scripted-batch"
PRICE = "100,200,50,100"  # the batch price is half the online one, as OpenAI's and Anthropic's are
FAST_BATCHES = {"batch_max_lines": 8, "batch_window_s": 0.3, "batch_poll_s": 0.2, "batch_poll_max_s": 0.5}


@pytest.fixture(autouse=True)
def _fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


@pytest.mark.parametrize("provider", ["openai", "hosted_vllm"])
def test_litellms_batch_calls_work_against_the_mock_server(provider: str) -> None:
    """What litellm 1.102 sends for files and batches (through the OpenAI SDK) is what the mock serves."""
    async def round_trip(url: str) -> tuple[str, str, list[str], str]:
        kwargs = {"custom_llm_provider": provider, "api_base": url, "api_key": FAKE_KEY}
        lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "scripted", "messages": [{"role": "user", "content": f"What is {i} * 7?"}]}}
                 for i in range(3)]
        file = await litellm.acreate_file(file=("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode(),
                                                "application/jsonl"), purpose="batch", **kwargs)
        batch = await litellm.acreate_batch(completion_window="24h", endpoint="/v1/chat/completions",
                                            input_file_id=file.id, **kwargs)
        first = batch.status
        while batch.status not in ("completed", "failed", "expired"):
            await asyncio.sleep(0.1)
            batch = await litellm.aretrieve_batch(batch_id=batch.id, **kwargs)
        listed = await litellm.alist_batches(limit=10, **kwargs)
        content = await litellm.afile_content(file_id=batch.output_file_id, **kwargs)
        ids = [json.loads(line)["custom_id"] for line in content.text.splitlines()]
        return first, batch.status, ids, listed.data[0].id

    with MockLLMServer(batch_delay_s=0.3) as server:
        first, last, ids, listed = asyncio.run(round_trip(server.url))
        stats = server.stats()
    assert (first, last, ids) == ("in_progress", "completed", ["c0", "c1", "c2"])
    assert listed == stats.batch_ids[0] and stats.batch_lines == 3 and stats.requests == 0


def test_batch_mode_answers_every_row_retrying_failed_and_expired_lines_at_the_batch_price(tmp_path: Path) -> None:
    faults = [FaultRule("server_error", times=2, match="* 3")]  # two lines fail: re-sent in a later batch
    with MockLLMServer(batch_delay_s=0.3, expire_batches=1, faults=faults) as server:
        settings = LLMSettings(model=MODEL, api_base=server.url)
        spend = SpendSettings(batch=True, price=PRICE, **FAST_BATCHES)

        def row(i: int) -> str:
            with spend_item("translate"):
                return complete([{"role": "user", "content": f"What is {i} * 3?"}], settings, max_tokens=20).content

        with spend_control(spend, settings, tmp_path), batch_calls(settings, spend, tmp_path, ["translate"]), \
                ThreadPoolExecutor(20) as pool:
            contexts = [contextvars.copy_context() for _ in range(20)]  # each row thread sees the ledger and collector
            replies = list(pool.map(lambda i: contexts[i].run(row, i), range(20)))
        stats = server.stats()
    assert [f"print({i} * 3)" in reply for i, reply in enumerate(replies)] == [True] * 20
    assert stats.requests == 0 and len(stats.batch_ids) >= 3  # none online; the failed and expired lines came back
    assert stats.faults["server_error"] == 2 and sum(stats.batch_lines_billed.values()) == 20
    assert max(stats.batch_lines_billed.values()) == 1  # each line paid once
    paid = ledger_totals(tmp_path).by_stage["translate"]
    prices = token_prices(MODEL)
    assert paid.batch_calls == 20
    assert paid.cost_usd == pytest.approx(prices.cost(paid.prompt_tokens, paid.completion_tokens, batch=True))
    assert paid.batch_saved_usd == pytest.approx(paid.cost_usd)  # half price: what was saved is what was paid


def test_a_line_that_keeps_failing_ends_as_an_llm_error_after_the_retries(tmp_path: Path) -> None:
    from tasks.llm import LLMCallError

    with MockLLMServer(batch_delay_s=0.1, faults=[FaultRule("server_error", times=100)]) as server:
        settings = LLMSettings(model=MODEL, api_base=server.url, num_retries=2)
        spend = SpendSettings(batch=True, **FAST_BATCHES)
        with spend_control(spend, settings, tmp_path), batch_calls(settings, spend, tmp_path, ["rephrase"]), \
                spend_item("rephrase"), pytest.raises(LLMCallError, match="batch: line failed in batch .* \\(3 batches\\)"):
            complete([{"role": "user", "content": "What is 1 + 1?"}], settings)
        assert len(server.stats().batch_ids) == 3  # the first batch and num_retries re-submissions


def _kill_9_run(tmp_path: Path, kill_on: str) -> tuple[ServerStats, ServerStats, Path]:
    """Run distill --batch, kill -9 it at the first `kill_on` event of a batch ("created": before the answer reaches
    the client, "retrieved": while it polls), run the same command again. The server's stats of both runs."""
    problems = stepwise_problems(tmp_path / "problems.jsonl", 10)
    out = tmp_path / "out"
    env = {**env_without_prefect(), "OPENAI_API_KEY": FAKE_KEY}
    first: subprocess.Popen | None = None
    killed: list[str] = []

    def kill_9(event: str, batch_id: str, stats: ServerStats) -> None:
        if event == kill_on and not killed:
            killed.append(batch_id)
            os.killpg(first.pid, signal.SIGKILL)

    with MockLLMServer(latency_s=0.02, batch_delay_s=2.0, on_batch=kill_9) as server:
        command = [*TOOL_DISTILL, "distill", "--model", MODEL, "--api-base", server.url, "--problems", str(problems),
                   "--output-dir", str(out), "--tool-protocol", "code", "--max-concurrency", "4", "--price", PRICE,
                   "--batch", "--skip-preflight", "--quiet", "--spend.batch-max-lines", "100",
                   "--spend.batch-window-s", "1", "--spend.batch-poll-s", "0.5", "--spend.batch-poll-max-s", "1"]
        with (tmp_path / "first.log").open("wb") as log:
            first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            assert first.wait(timeout=300) == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
        run1 = server.stats()
        second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        both = server.stats()
    assert killed == [run1.batch_ids[0]]
    return run1, both, out


@pytest.mark.slow
def test_kill_9_while_a_batch_is_pending_resumes_that_batch_and_pays_no_line_twice(tmp_path: Path) -> None:
    run1, both, out = _kill_9_run(tmp_path, "retrieved")
    pending = run1.batch_ids[0]
    assert both.batch_retrievals[pending] >= 2  # the re-run polled the very batch the killed run had submitted
    assert not any(n > 1 for n in both.batch_lines_billed.values())  # no line paid twice
    assert both.by_agent["solver"] == run1.by_agent["solver"]  # the solver stage (online) was not run again
    translations = read_records(stage_path(out, "translations"), TranslationRecord)
    assert len(translations) == sum(1 + p % 4 for p in range(10)) and all(t.faithful for t in translations)
    assert len(read_records(stage_path(out, "nl_traces"), NLTraceRecord)) == 10
    assert len(read_records(stage_path(out, "sft"), SFTRecord)) >= 8  # near-identical solutions are kept once
    summary = json.loads((out / "summary.json").read_text())["spend"]
    assert summary["batch_calls"] == sum(both.batch_lines_billed.values()) and summary["batch_saved_usd"] > 0


@pytest.mark.slow
def test_a_batch_created_but_never_recorded_is_found_again_by_its_input_file(tmp_path: Path) -> None:
    """Killed inside the create call: the client never learnt the batch id, the re-run finds it by its file."""
    run1, both, _ = _kill_9_run(tmp_path, "created")
    assert both.batch_retrievals[run1.batch_ids[0]] >= 1  # adopted, not created again
    assert not any(n > 1 for n in both.batch_lines_billed.values())
