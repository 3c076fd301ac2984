"""Spend control: what batch mode saves on a distill run, and what the budget check costs in throughput.

    python -m benchmarks.spend_bench [--quick] [--problems 200] [--calls 1200] [--concurrency 16] [--latency 0.2]
                                     [--repeats 5]

Against `tests/mock_llm_server.py` in a process of its own (so serving takes no CPU from the client):

1. **Online vs `--batch`**: the distill flow (in-process, Prefect's ephemeral API) on N generated
   problems of 1-4 tool calls each, once online and once with `spend.batch` (translator and
   rephraser through the mock's files + batches API), both under one registered price whose batch
   rate is half the online one (`--price 0.15,0.60,0.075,0.30`, as gpt-4o-mini's). Reports the
   cost of each run by stage, what the ledger says batch mode saved, and each run's wall time (a
   batch waits 2 s at the mock, 0.5 s with `--quick`, and up to 1 s at the client to fill). Both
   runs must make the very same rows.
2. **Budget-check overhead**: the translate stage (`map_stage`, the flow's own code; K independent
   calls) at `--concurrency` in flight against a `--latency` endpoint, with no spend control (the
   baseline: the client as it was) and under `spend_control` with a budget it never reaches (every
   call reserves its worst case, is recorded in the SQLite ledger and settles), alternating
   `--repeats` times in fresh cache dirs. The overhead is 1 - median(baseline time / budget
   time over the pairs); both are also set against the ideal (calls x latency / concurrency). On a
   shared machine the wall times swing by tens of percent between runs, so the client's CPU per
   call is reported too (median budget/baseline ratio over the pairs): a CPU-bound client's
   throughput falls by at most that share.
3. **The client's CPU per call**, the steadier figure: `complete` one call at a time against a mock
   that answers at once (`--cpu-calls` per mode and repeat, alternating), without spend control and
   under a budget; and the budget path alone (worst case + reserve + settle), in microseconds.

Prints the figures last as one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.llm_throughput_bench import MockServerProcess, run_ours, translate_workload

from flows.distill import distill  # noqa: E402 (the throughput bench set the offline environment first)
from flows.params import DistillParams  # noqa: E402
from tasks.llm import LLMReply, LLMSettings, ModelPrice, SpendSettings, complete, register_price, spend_control  # noqa: E402
from tasks.llm import spend_item  # noqa: E402
from tasks.llm.spend import SpendLedger, worst_case  # noqa: E402

MODEL = "openai/scripted-spend-bench"
PRICE = "0.15,0.60,0.075,0.30"  # gpt-4o-mini's online and batch prices, $ per 1M tokens


def problems_file(path: Path, n: int) -> Path:
    rows = []
    for p in range(n):
        terms = [(11 + p, 3 + j) for j in range(1 + p % 4)]
        rows.append({"id": f"p{p}", "problem": f"What is {' + '.join(f'{a} * {b}' for a, b in terms)}? Compute one "
                     "term per step.", "answer": str(sum(a * b for a, b in terms))})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def warm_up(workdir: Path) -> None:
    """One problem through the flow first, so neither measured run pays for the ephemeral API's and sandbox's start."""
    workdir.mkdir(parents=True)
    distill(DistillParams(problems=str(problems_file(workdir / "problems.jsonl", 1)), output_dir=str(workdir),
                          decontaminate=False, llm=LLMSettings(model="scripted/arithmetic")))


def online_vs_batch(problems: int, concurrency: int, workdir: Path, batch_delay_s: float) -> dict:
    server = MockServerProcess(0.05, 0.0, "--batch-delay", str(batch_delay_s))
    workdir.mkdir(parents=True, exist_ok=True)
    problems_path = problems_file(workdir / "problems.jsonl", problems)
    try:
        results = {}
        for mode in ("online", "batch"):
            spend = SpendSettings(price=PRICE, batch=mode == "batch", batch_max_lines=2000,
                                  batch_window_s=min(1.0, batch_delay_s), batch_poll_s=batch_delay_s / 4,
                                  batch_poll_max_s=batch_delay_s)
            params = DistillParams(problems=str(problems_path),
                                   output_dir=str(workdir / mode), decontaminate=False, max_concurrency=concurrency,
                                   llm=LLMSettings(model=MODEL, api_base=server.url), spend=spend)
            params.solve.tool_protocol = "code"
            server.reset()
            started = time.perf_counter()
            summary = distill(params)
            results[mode] = {"wall_s": round(time.perf_counter() - started, 1), "summary": summary,
                             "server": server.stats()}
    finally:
        server.stop()
    online, batch = results["online"]["summary"], results["batch"]["summary"]
    assert (online.kept, online.translations, online.nl_traces) == (batch.kept, batch.translations, batch.nl_traces), \
        "batch mode must make the very same rows"
    assert results["batch"]["server"]["batch_lines_billed_twice"] == 0
    by_stage = {mode: {s.stage: s.cost_usd for s in results[mode]["summary"].spend.stages} for mode in results}
    return {
        "problems": problems, "online_usd": online.cost_usd, "batch_usd": batch.cost_usd,
        "batch_vs_online": round(batch.cost_usd / online.cost_usd, 4),
        "batch_stages_vs_online": round(sum(by_stage["batch"][s] for s in ("translate", "rephrase"))
                                        / sum(by_stage["online"][s] for s in ("translate", "rephrase")), 4),
        "online_usd_by_stage": by_stage["online"], "batch_usd_by_stage": by_stage["batch"],
        "batch_saved_usd": batch.spend.batch_saved_usd, "batch_calls": batch.spend.batch_calls,
        "batches": results["batch"]["server"]["batches"],
        "online_wall_s": results["online"]["wall_s"], "batch_wall_s": results["batch"]["wall_s"],
        "kept": online.kept,
    }


def budget_overhead(calls: int, concurrency: int, latency: float, repeats: int, workdir: Path) -> dict:
    workload = translate_workload(calls // 3, 3)
    server = MockServerProcess(latency)
    settings = LLMSettings(model=MODEL, api_base=server.url)
    ideal = workload.calls * latency / concurrency
    times: dict[str, list[float]] = {"baseline": [], "budget": []}
    cpu: dict[str, list[float]] = {"baseline": [], "budget": []}
    try:
        for repeat in range(repeats):
            order = ("baseline", "budget") if repeat % 2 == 0 else ("budget", "baseline")
            for mode in order:
                budget = SpendSettings(price=PRICE, max_budget_usd=1e6)
                ledger_dir = workdir / f"ledger-{mode}-{repeat}"

                def around(budget: SpendSettings = budget, ledger_dir: Path = ledger_dir,
                           mode: str = mode) -> contextlib.AbstractContextManager:
                    return spend_control(budget, settings, ledger_dir) if mode == "budget" else contextlib.nullcontext()

                first = run_ours(workload, server, settings, concurrency, 128, workdir / f"results-{mode}-{repeat}",
                                 phases=("first",), around=around)["first"]
                assert first["requests"] == workload.calls
                times[mode].append(first["wall_s"])
                cpu[mode].append(first["cpu_s"])
    finally:
        server.stop()
    ratios = [b / m for b, m in zip(times["baseline"], times["budget"])]
    cpu_ratios = [m / b for b, m in zip(cpu["baseline"], cpu["budget"])]
    return {"calls": workload.calls, "concurrency": concurrency, "latency_s": latency, "ideal_s": round(ideal, 2),
            "repeats": repeats, "baseline_s": times["baseline"], "budget_s": times["budget"],
            "baseline_vs_ideal": round(ideal / statistics.median(times["baseline"]), 3),
            "budget_vs_ideal": round(ideal / statistics.median(times["budget"]), 3),
            "budget_throughput_vs_baseline": round(statistics.median(ratios), 4),
            "budget_overhead_pct": round(100 * (1 - statistics.median(ratios)), 2),
            "baseline_cpu_ms_per_call": round(1000 * statistics.median(cpu["baseline"]) / workload.calls, 2),
            "budget_cpu_ms_per_call": round(1000 * statistics.median(cpu["budget"]) / workload.calls, 2),
            "budget_cpu_overhead_pct": round(100 * (statistics.median(cpu_ratios) - 1), 2)}


def complete_cpu(calls: int, repeats: int, workdir: Path) -> dict:
    """Client CPU per `complete` call, one call at a time (no concurrency to add noise), against a mock that answers at
    once: without spend control, and under a budget (each call in its own row, as the stage runtime runs them)."""
    server = MockServerProcess(0.0)
    settings = LLMSettings(model=MODEL, api_base=server.url)
    requests = translate_workload(calls, 1).distilabel_job["conversations"]
    cpu: dict[str, list[float]] = {"baseline": [], "budget": []}
    try:
        complete(requests[0], settings, max_tokens=512)  # warm-up: litellm's lazy parts, the connection
        for repeat in range(repeats):
            for mode in ("baseline", "budget") if repeat % 2 == 0 else ("budget", "baseline"):
                budget = SpendSettings(price=PRICE, max_budget_usd=1e6)
                spend = spend_control(budget, settings, workdir / f"cpu-{mode}-{repeat}") if mode == "budget" \
                    else contextlib.nullcontext()
                with spend:
                    started = time.process_time()
                    for messages in requests:
                        with spend_item("translate"):
                            complete(messages, settings, max_tokens=512)
                    cpu[mode].append((time.process_time() - started) / calls)
    finally:
        server.stop()
    ratios = [m / b for b, m in zip(cpu["baseline"], cpu["budget"])]
    return {"complete_cpu_us_baseline": round(1e6 * statistics.median(cpu["baseline"]), 1),
            "complete_cpu_us_budget": round(1e6 * statistics.median(cpu["budget"]), 1),
            "complete_cpu_overhead_pct": round(100 * (statistics.median(ratios) - 1), 2)}


def budget_path_cpu_us(workdir: Path, calls: int = 2000) -> dict:
    """The budget path alone, as `complete` runs it around every call: worst case, reserve, settle (a SQLite commit)."""
    register_price(MODEL, ModelPrice.parse(PRICE))
    settings = LLMSettings(model=MODEL)
    request = translate_workload(1, 1).distilabel_job["conversations"][0]
    reply = LLMReply(content="x", prompt_tokens=400, completion_tokens=40, cost_usd=1e-5, model=MODEL)
    ledger = SpendLedger(workdir / "cpu.sqlite", max_usd=1e6)
    started, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        held = ledger.reserve(worst_case(settings, {"messages": request, "max_tokens": 512}))
        ledger.settle(held, reply, stage="translate", batch=False, online_cost_usd=reply.cost_usd)
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    ledger.close()
    return {"budget_path_cpu_us_per_call": round(1e6 * cpu / calls, 1), "budget_path_wall_us_per_call": round(1e6 * wall / calls, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 problems, 96 calls at 8 in flight, 2 repeats")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--calls", type=int, default=1200, help="translate calls per overhead run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-cost", action="store_true", help="skip the online vs batch runs (re-measure overhead)")
    parser.add_argument("--cpu-calls", type=int, default=400, help="calls per mode and repeat of the one-at-a-time CPU run")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.calls, args.concurrency, args.latency, args.repeats, args.cpu_calls = 12, 96, 8, 0.05, 2, 100
    with tempfile.TemporaryDirectory(prefix="spend-bench-") as tmp:
        cpu = budget_path_cpu_us(Path(tmp)) | complete_cpu(args.cpu_calls, max(2, args.repeats), Path(tmp))
        warm_up(Path(tmp) / "warm-up")
        cost = {} if args.no_cost else online_vs_batch(args.problems, args.concurrency, Path(tmp) / "cost",
                                                       0.5 if args.quick else 2.0)
        overhead = budget_overhead(args.calls, args.concurrency, args.latency, args.repeats, Path(tmp) / "overhead")
    figures = {"bench": "spend", "load_avg_1m": round(os.getloadavg()[0], 1), **cost, **overhead, **cpu}
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
