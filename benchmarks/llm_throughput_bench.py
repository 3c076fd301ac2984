"""LLM-layer throughput: the translate stage against a mock server with a fixed latency, vs ideal and vs distilabel.

    python -m benchmarks.llm_throughput_bench [--quick] [--problems 500] [--calls-per-problem 3]
                                              [--concurrency 16] [--latency 0.2] [--latency-jitter 0]
                                              [--provider openai] [--no-distilabel]

Workload: N generated arithmetic problems x K tool calls each (`print(a * b + c)`), back-translated
by the distill flow's own stage code (`map_stage` + `translate_item`: chunked Prefect tasks,
translator prompt, litellm Router, in-process gate, derivation check, per-item and per-stage
caching) inside a Prefect flow, against `tests/mock_llm_server.py`
running in its own process with a fixed latency per request (`--latency-jitter J`: spread evenly
over latency * (1 ± J) by a hash of the request's messages, the same for both clients, the mean
unchanged). Every translation is faithful at the first attempt, so the stage makes exactly N*K
calls and the ideal time is N*K*latency/concurrency.

Phases, each counted by the server (requests, peak and mean in flight, first request to last
reply, its own CPU), after one warm-up call that loads litellm's lazy parts:
1. bare client, the control: the same rows through `translate_tool_call` on `concurrency` plain
   threads, no Prefect, no row store: what litellm and our translate logic reach on this machine;
2. ours, first run;
3. ours, re-run of the finished stage (one stage-level cache hit);
4. ours, re-run with only the per-item store (what a stage cut short by a crash resumes from);
5. distilabel 1.5.3, the very same requests (`benchmarks/distilabel_side.py`, its own venv, batches
   of `concurrency` rows, which its async client sends at once), skipped if that venv is missing.

`--provider` picks litellm's provider for the mock endpoint: `openai` (the OpenAI SDK underneath)
or `hosted_vllm` (litellm's own HTTP client, the provider for self-hosted OpenAI-compatible
servers). "busy" is the server's first-request-to-last-reply window: the LLM phase without either
side's start-up. `throughput_ratio_ceiling` is distilabel's time over the ideal: the ratio a client
that reached the ideal would score, so no client within the concurrency can beat it. Prints the
figures last as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from pathlib import Path

from flows.offline_env import apply_offline_defaults

ROOT = Path(__file__).resolve().parent.parent
apply_offline_defaults(ROOT / ".state" / "bench-prefect", OPENAI_API_KEY="sk-bench")

from prefect import flow  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.distill import DistillParams  # noqa: E402
from tasks.llm import LLMSettings  # noqa: E402
from tasks.llm_limits import call_limits  # noqa: E402
from tasks.prompt_store import load_prompt  # noqa: E402
from tasks.records import ToolCallRecord, TranslationRecord  # noqa: E402
from tasks.stage_items import translate_item  # noqa: E402
from tasks.stage_map import map_stage  # noqa: E402
from tasks.translate import TranslateConfig, translate_tool_call, translation_request  # noqa: E402

DISTILABEL_PYTHON = ROOT / ".venv-distilabel" / "bin" / "python"


class MockServerProcess:
    """tests/mock_llm_server.py in a process of its own, so serving requests takes no CPU from the client."""

    def __init__(self, latency_s: float, latency_jitter: float = 0.0) -> None:
        self.process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "mock_llm_server.py"), "--latency", str(latency_s),
                                         "--latency-jitter", str(latency_jitter), "--idle-exit", "300"],
                                        stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().split()[-1]  # "listening on http://127.0.0.1:PORT/v1"
        self._base = self.url.removesuffix("/v1")

    def stats(self) -> dict:
        return json.loads(urllib.request.urlopen(f"{self._base}/stats").read())

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self._base}/stats/reset", method="POST")).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def tool_calls(problems: int, calls_per_problem: int) -> list[ToolCallRecord]:
    """K distinct arithmetic tool calls per problem, as the solver would have recorded them."""
    calls = []
    for p in range(problems):
        for k in range(calls_per_problem):
            a, b, c = 11 + p, 3 + k, 7 * k + p % 5
            calls.append(ToolCallRecord(problem_id=f"p{p}", call_index=k, tool_protocol="code", tool_name="python",
                                        arguments_json="{}", code=f"print({a} * {b} + {c})", output=f"{a * b + c}\n",
                                        error=None, status="ok", duration_s=0.0, model="bench", prompt_version="solver/v1"))
    return calls


def measure(server: MockServerProcess, run: Callable[[], list[TranslationRecord]], n_calls: int) -> dict:
    """Wall and CPU time of `run()`, with the server's counters for it; `run` must translate every call faithfully."""
    server.reset()
    started, cpu = time.perf_counter(), time.process_time()
    rows = run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(rows) == n_calls and all(isinstance(r, TranslationRecord) and r.faithful for r in rows)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), **server.stats()}


def run_bare_client(calls: list[ToolCallRecord], server: MockServerProcess, settings: LLMSettings,
                    concurrency: int) -> dict:
    """The control: the same translations on plain threads, outside Prefect and the row store."""
    config = TranslateConfig()

    def translate_all() -> list[TranslationRecord]:
        with ThreadPoolExecutor(concurrency) as pool:  # each row in a copy of this context: it sees the gate
            return list(pool.map(lambda call, context: context.run(translate_tool_call, call, settings, config),
                                 calls, [copy_context() for _ in calls]))

    with call_limits(settings, concurrency):
        translate_tool_call(calls[0], settings, config)  # warm-up: litellm loads parts of itself on first use
        return measure(server, translate_all, len(calls))


def run_ours(calls: list[ToolCallRecord], server: MockServerProcess, settings: LLMSettings, concurrency: int,
             rows_per_task: int, results: Path) -> dict[str, dict]:
    config = TranslateConfig()

    def translate_stage(phase: str) -> list[TranslationRecord]:
        if phase == "cached_items":  # the per-item store alone, as after a crash mid-stage
            for stage_result in (p for p in results.iterdir() if p.is_file()):
                stage_result.unlink()
        return map_stage("translate", translate_item, [(c,) for c in calls], settings, config,
                         cache_dir=results, workers=concurrency, chunk_size=rows_per_task)

    @flow(name="llm-throughput-bench", task_runner=ThreadPoolTaskRunner(max_workers=concurrency))
    def bench_flow() -> dict[str, dict]:
        with call_limits(settings, concurrency):  # once per run, as the distill flow does
            return {phase: measure(server, lambda: translate_stage(phase), len(calls))  # noqa: B023 (called at once)
                    for phase in ("first", "cached_stage", "cached_items")}

    return bench_flow()


def run_distilabel(calls: list[ToolCallRecord], server: MockServerProcess, concurrency: int, workdir: Path) -> dict | None:
    if not DISTILABEL_PYTHON.exists():
        print(f"distilabel skipped: no {DISTILABEL_PYTHON} (`make bench` creates it)", flush=True)
        return None
    prompt, config = load_prompt("translator"), TranslateConfig()
    requests = workdir / "requests.jsonl"
    with requests.open("w") as handle:
        for call in calls:
            messages = [{"role": "system", "content": prompt.render("system")},
                        {"role": "user", "content": translation_request(call, prompt)}]
            handle.write(json.dumps({"messages": messages, "max_tokens": config.max_tokens}) + "\n")
    server.reset()
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([str(DISTILABEL_PYTHON), str(ROOT / "benchmarks" / "distilabel_side.py"), str(requests),
                           server.url, str(concurrency)], capture_output=True, text=True, cwd=workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"distilabel side failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    side = json.loads(proc.stdout.strip().splitlines()[-1])
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the whole distilabel process, start-up included
    cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {"process_s": round(time.perf_counter() - started, 3), "cpu_s": round(cpu_s, 3), **side, **server.stats()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 problems, concurrency 8: under a minute")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--calls-per-problem", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the mock server waits per request")
    parser.add_argument("--latency-jitter", type=float, default=0.0,
                        help="spread each request's wait evenly over latency * (1 ± this); the mean, and so the ideal, "
                             "stay the same (default 0: the fixed latency the issue's targets are stated for)")
    parser.add_argument("--provider", choices=("openai", "hosted_vllm"), default="openai",
                        help="litellm provider for the mock endpoint")
    parser.add_argument("--rows-per-task", type=int, default=DistillParams().rows_per_task,
                        help="rows per Prefect task run (default: the distill flow's)")
    parser.add_argument("--no-distilabel", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.concurrency = 40, 8

    calls = tool_calls(args.problems, args.calls_per_problem)
    ideal_s = len(calls) * args.latency / args.concurrency
    server = MockServerProcess(args.latency, args.latency_jitter)
    settings = LLMSettings(model=f"{args.provider}/scripted", api_base=server.url)
    try:
        with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp:
            bare = run_bare_client(calls, server, settings, args.concurrency)
            ours = run_ours(calls, server, settings, args.concurrency, args.rows_per_task, Path(tmp) / "results")
            theirs = None if args.no_distilabel else run_distilabel(calls, server, args.concurrency, Path(tmp))
    finally:
        server.stop()

    first = ours["first"]
    figures = {
        "bench": "llm_throughput", "provider": args.provider, "calls": len(calls), "concurrency": args.concurrency,
        "latency_s": args.latency, "latency_jitter": args.latency_jitter, "ideal_s": round(ideal_s, 2), "load_avg_1m": round(os.getloadavg()[0], 1),
        "server_cpu_ms_per_call": round(1000 * first["server_cpu_s"] / len(calls), 1),
        "bare_client_s": bare["wall_s"], "bare_client_vs_ideal": round(ideal_s / bare["wall_s"], 3),
        "bare_client_cpu_ms_per_call": round(1000 * bare["cpu_s"] / len(calls), 1),
        "bare_client_mean_in_flight": bare["mean_in_flight"],
        "ours_calls": first["requests"], "ours_peak_in_flight": first["peak_in_flight"],
        "ours_mean_in_flight": first["mean_in_flight"], "ours_busy_s": first["busy_s"], "ours_stage_s": first["wall_s"],
        "ours_vs_ideal": round(ideal_s / first["wall_s"], 3),
        "ours_vs_bare_client": round(bare["wall_s"] / first["wall_s"], 3),
        "ours_cpu_ms_per_call": round(1000 * first["cpu_s"] / len(calls), 1),
        "cached_stage_calls": ours["cached_stage"]["requests"], "cached_stage_s": ours["cached_stage"]["wall_s"],
        "cached_stage_vs_first": round(ours["cached_stage"]["wall_s"] / first["wall_s"], 4),
        "cached_items_calls": ours["cached_items"]["requests"], "cached_items_s": ours["cached_items"]["wall_s"],
        "cached_items_vs_first": round(ours["cached_items"]["wall_s"] / first["wall_s"], 4),
    }
    if theirs is not None:
        figures |= {
            "distilabel_calls": theirs["requests"], "distilabel_peak_in_flight": theirs["peak_in_flight"],
            "distilabel_mean_in_flight": theirs["mean_in_flight"],
            "distilabel_busy_s": theirs["busy_s"], "distilabel_run_s": theirs["run_s"],
            "distilabel_vs_ideal": round(ideal_s / theirs["run_s"], 3),
            "distilabel_cpu_ms_per_call": round(1000 * theirs["cpu_s"] / len(calls), 1),
            "throughput_ratio_vs_distilabel": round(theirs["run_s"] / first["wall_s"], 3),
            # what a client that reached the ideal would score: no client within the concurrency can beat it
            "throughput_ratio_ceiling": round(theirs["run_s"] / ideal_s, 3),
            "busy_throughput_ratio_vs_distilabel": round(theirs["busy_s"] / first["busy_s"], 3),
        }
    print(json.dumps({"bare_client": bare, **ours}), flush=True)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
