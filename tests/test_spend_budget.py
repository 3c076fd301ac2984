"""The budget: checked before each call is sent, held by concurrent calls, and resumed without paying twice.

Against the real mock server on loopback: the client refuses a call that could pass the cap before
sending it (the server sees nothing); 20 distill runs at concurrency 8 with random budgets never
pass theirs; and the CLI stopped by a budget exits 3 with one line, writes consistent Parquet, and
a re-run with a higher budget finishes with no request the server had seen before and the very
Parquet files of a run that had no budget.
"""

from __future__ import annotations

import contextvars
import json
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from command_lines import TOOL_DISTILL, env_without_prefect
from mock_llm_server import MockLLMServer, _prompt_tokens
from prefect.client.orchestration import get_client

from flows.distill import distill
from flows.params import DistillParams
from tasks.llm import BudgetReached, LLMSettings, ModelPrice, SpendSettings, complete, ledger_totals, spend_control
from tasks.llm.spend import LEDGER_NAME, Cost, SpendLedger, register_price, token_bound, worst_case
from tasks.parquet_io import read_records, stage_path
from tasks.prompt_store import load_prompt
from tasks.records import STAGE_RECORDS, FilterDecision, TraceRecord

MODEL = "openai/scripted-budget"
PRICE = "100,200"  # $ per 1M tokens: dear enough that a few calls make a budget
FAKE_KEY = "sk-fake-budget-5e6f7a8b"


def stepwise_problems(path: Path, n: int, *, offset: int = 0) -> Path:
    """Problems of 1 to 4 tool calls each (the scripted model's "one term per step"): rows of 3 to 6 calls."""
    rows = []
    for p in range(offset, offset + n):
        terms = [(11 + p, 3 + j) for j in range(1 + p % 4)]
        text = " + ".join(f"{a} * {b}" for a, b in terms)
        rows.append({"id": f"p{p}", "problem": f"What is {text}? Compute one term per step.",
                     "answer": str(sum(a * b for a, b in terms))})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(autouse=True)
def _fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def test_the_worst_case_bounds_what_the_server_counts_for_every_agent() -> None:
    """The bound (`token_bound` plus 4 per message) is never below the mock's whitespace-word count."""
    settings = LLMSettings(model=MODEL)
    for agent in ("solver", "translator", "rephraser", "judge"):
        prompt = load_prompt(agent)
        messages = [{"role": "system", "content": prompt.render(next(k for k in prompt.parts if k.startswith("system")))},
                    {"role": "user", "content": "What is 11 * 3 + 12 * 4? Compute one term per step."},
                    {"role": "assistant", "content": "Term 1 of 2.\n```python\nprint(11 * 3)\n```"},
                    {"role": "user", "content": "```output\n33\n```"}]
        bound = worst_case(settings, {"messages": messages, "max_tokens": 7})
        assert bound.tokens >= _prompt_tokens({"messages": messages}) + 7, agent


def test_the_token_bound_holds_for_a_real_bpe_tokenizer_on_digits_latex_and_cjk() -> None:
    from transformers import AutoTokenizer

    from tasks.llm.embedded_model import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())  # SmolLM2's byte-level BPE
    texts = ["What is 11 * 3 + 12 * 4? Compute one term per step.",
             "\\frac{\\sqrt{3}}{2} + \\left(\\dfrac{x^{2}-1}{x+1}\\right)_{n=1}^{\\infty}",
             "31415926535897932384626433832795028841971693993751",  # tokenizers that split digits one by one
             "三角形的面积是多少？请一步一步地计算。", "Ответ: площадь равна 12 см².", "∫∮∑∏√∞≠≤≥ 🙂🧮"]
    for text in texts:
        assert token_bound(text) >= len(tokenizer.encode(text, add_special_tokens=False)), text


def test_processes_sharing_a_ledger_count_each_others_calls_in_flight(tmp_path: Path) -> None:
    """Two ledgers on one file, as a run's Dask workers open it: the second cannot take what the first holds; it
    waits for it, and is refused only if it is not freed in time."""
    path = tmp_path / LEDGER_NAME
    first, second = SpendLedger(path, max_usd=1.0), SpendLedger(path, max_usd=1.0, in_flight_wait_s=0.3)
    held = first.reserve(Cost(0.6, 100))
    with pytest.raises(BudgetReached, match=r"\$0.600000 in flight; .*the calls in flight did not settle within 0.3 s"):
        second.reserve(Cost(0.6, 100))
    second.in_flight_wait_s = 30.0
    threading.Timer(0.2, first.release, args=(held,)).start()  # the first worker's call fails meanwhile
    started = time.monotonic()
    second.release(second.reserve(Cost(0.6, 100)))  # it waited for that, then fit
    assert 0.15 < time.monotonic() - started < 10
    stale = second.reserve(Cost(0.9, 100))  # then its process is killed: the reservation stays in the file
    first.in_flight_wait_s = 0.2
    with pytest.raises(BudgetReached, match="did not settle"):
        first.reserve(Cost(0.2, 10))
    first.clear_reservations()  # what a new run's spend_control does first
    first.release(first.reserve(Cost(0.2, 10)))
    with pytest.raises(BudgetReached) as refused:  # could pass the cap with nothing in flight: refused at once
        first.reserve(Cost(1.1, 10))
    assert "did not settle" not in str(refused.value)
    assert stale.cost.usd == 0.9
    first.close()
    second.close()


def test_a_call_that_could_pass_the_budget_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    register_price(MODEL, ModelPrice.parse(PRICE))
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    with MockLLMServer() as server:
        settings = LLMSettings(model=MODEL, api_base=server.url)
        one_call = worst_case(settings, {"messages": messages, "max_tokens": 16})
        with spend_control(SpendSettings(max_budget_usd=one_call.usd * 1.5), settings, tmp_path) as ledger:
            reply = complete(messages, settings, max_tokens=16)  # fits: its worst case is under the cap
            assert ledger.spent().usd == pytest.approx(reply.cost_usd) and reply.cost_usd > 0
            with pytest.raises(BudgetReached, match="budget reached"):
                complete(messages, settings, max_tokens=16)  # spent + this worst case > cap
            assert ledger.stopped
        assert server.stats().requests == 1  # the refused call never left the client

        # The ledger is the output dir's: another run (a new ledger on the same file) starts from what was spent.
        with spend_control(SpendSettings(max_budget_usd=one_call.usd * 1.5), settings, tmp_path):
            with pytest.raises(BudgetReached):
                complete(messages, settings, max_tokens=16)
        with spend_control(SpendSettings(max_budget_usd=1.0), settings, tmp_path):
            complete(messages, settings, max_tokens=16)
        assert server.stats().requests == 2
    totals = ledger_totals(tmp_path)
    assert totals.usd == pytest.approx(2 * reply.cost_usd) and totals.by_stage[""].calls == 2


def test_calls_in_flight_hold_their_worst_case_so_concurrent_calls_cannot_pass_the_cap_together(tmp_path: Path) -> None:
    register_price(MODEL, ModelPrice.parse(PRICE))
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    with MockLLMServer(latency_s=0.3) as server:
        settings = LLMSettings(model=MODEL, api_base=server.url)
        one_call = worst_case(settings, {"messages": messages, "max_tokens": 16})
        with spend_control(SpendSettings(max_budget_usd=one_call.usd * 3.5), settings, tmp_path) as ledger, \
                ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(contextvars.copy_context().run, complete, messages, settings, max_tokens=16)
                       for _ in range(8)]
            outcomes = [f.exception() for f in futures]
        answered = sum(o is None for o in outcomes)
        # All 8 at once: only 3 worst cases fit in flight together; the others wait for those to settle, and as
        # replies cost less than their worst case, more than 3 calls fit in the cap before one is refused.
        assert server.stats().peak_in_flight == 3 and 3 < answered < 8 and server.stats().requests == answered
        assert all(isinstance(o, BudgetReached) for o in outcomes if o is not None)
        assert SpendLedger(tmp_path / LEDGER_NAME).spent().usd <= one_call.usd * 3.5
        assert ledger.stopped


@pytest.mark.slow
def test_twenty_random_budgets_at_concurrency_8_are_never_passed(prefect_api, tmp_path: Path) -> None:
    """Each run has its own output dir, budget and latency spread; the ledger must stay within the budget and the
    Parquet files must agree with each other (the filter only sees problems whose chain is done)."""
    rng = random.Random(2506)
    problems = stepwise_problems(tmp_path / "problems.jsonl", 12)
    overshoots = []
    with MockLLMServer(latency_s=0.02, latency_jitter=0.9) as server:
        settings = LLMSettings(model=MODEL, api_base=server.url)
        full = DistillParams(problems=str(problems), output_dir=str(tmp_path / "full"), llm=settings, decontaminate=False,
                             max_concurrency=8, spend=SpendSettings(price=PRICE))
        full.solve.tool_protocol = "code"
        full_cost = distill(full).spend.paid_usd
        with get_client(sync_client=True) as client:  # the run's spend, as the Prefect UI shows it
            [artifact] = [a for a in client.read_latest_artifacts() if a.key == "distill-spend"]
        assert "| solve | 12 |" in artifact.data and "cost per kept trace: $" in artifact.data
        worst_call = max(worst_case(settings, {"messages": [{"role": "user", "content": "x" * 6000}], "max_tokens": m}).usd
                         for m in (512, 1024))  # longer than any prompt of these runs, with the largest max_tokens
        for run in range(20):
            cap = rng.uniform(0.02, 1.1) * full_cost
            params = full.model_copy(update={"output_dir": str(tmp_path / f"run{run}"),
                                             "spend": SpendSettings(price=PRICE, max_budget_usd=cap)})
            summary = distill(params)
            paid = ledger_totals(Path(params.output_dir) / ".prefect-results").usd
            overshoots.append(paid - cap)
            assert paid <= cap + worst_call, (run, paid, cap)
            out = Path(params.output_dir)
            traces = {t.problem_id for t in read_records(stage_path(out, "traces"), TraceRecord)}
            decided = {d.problem_id for d in read_records(stage_path(out, "filter_report"), FilterDecision)}
            assert decided <= traces and summary.spend.budget.problems_done == len(decided)
            assert summary.spend.budget.reached == (len(decided) < 12)
    print(f"budget overshoot over 20 runs: max {max(overshoots):+.6f} USD (one call's worst case: {worst_call:.6f})")
    assert max(overshoots) <= 0  # with a true bound per call, the cap itself holds


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**env_without_prefect(), "OPENAI_API_KEY": FAKE_KEY}
    return subprocess.run([*TOOL_DISTILL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


STABLE_COLUMNS_DROP = {"tool_calls": ["duration_s"]}  # the sandbox's wall time differs from run to run


@pytest.mark.slow
def test_a_run_stopped_by_its_budget_exits_3_and_its_rerun_with_more_pays_nothing_twice(tmp_path: Path) -> None:
    problems = stepwise_problems(tmp_path / "problems.jsonl", 16)
    with MockLLMServer(latency_s=0.05) as server:
        common = ["distill", "--model", MODEL, "--api-base", server.url, "--problems", str(problems), "--tool-protocol",
                  "code", "--max-concurrency", "8", "--price", PRICE, "--skip-preflight", "--quiet"]
        stopped = _cli([*common, "--output-dir", "budget", "--max-budget-usd", "0.6"], tmp_path)
        assert stopped.returncode == 3, stopped.stdout + stopped.stderr
        line = stopped.stderr.strip().splitlines()[-1]
        assert line.startswith("tool-distill: budget reached: $") and " of $0.6000, " in line, stopped.stderr
        assert "problems done" in line and "Traceback" not in stopped.stderr
        out = tmp_path / "budget"
        for stage, record in STAGE_RECORDS.items():  # every stage file whole and of its schema
            read_records(stage_path(out, stage), record)
        first = server.stats()

        resumed = _cli([*common, "--output-dir", "budget", "--max-budget-usd", "50"], tmp_path)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        both = server.stats()
        assert both.repeated_requests == 0  # not one request of the stopped run was sent again
        assert both.requests > first.requests

        unbudgeted = _cli([*common, "--output-dir", "plain"], tmp_path)
        assert unbudgeted.returncode == 0, unbudgeted.stdout + unbudgeted.stderr
    for stage in STAGE_RECORDS:
        drop = STABLE_COLUMNS_DROP.get(stage, [])
        budgeted, plain = (pq.read_table(tmp_path / d / f"{stage}.parquet").drop_columns(drop) for d in ("budget", "plain"))
        assert budgeted.equals(plain), stage
    # what the rows say the dataset cost is what the two budgeted runs paid together: nothing twice, nothing lost
    paid = ledger_totals(out / ".prefect-results")
    assert paid.usd == pytest.approx(json.loads((out / "summary.json").read_text())["cost_usd"])
