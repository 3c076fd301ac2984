"""LLM-layer throughput against a mock server with a fixed latency, vs ideal and vs distilabel.

    python -m benchmarks.llm_throughput_bench [--quick] [--workload translate|solve] [--problems 500]
                                              [--calls-per-problem K] [--concurrency 16] [--latency 0.2]
                                              [--latency-jitter 0] [--provider openai] [--no-distilabel]

Two workloads, each run by the distill flow's own stage code (`map_stage` and the stage's item
function: chunked Prefect tasks, prompts, litellm Router, in-process gate, per-item and per-stage
caching) inside a Prefect flow, against `tests/mock_llm_server.py` in its own process:
- `translate` (this script's default): N generated arithmetic problems x K tool calls each
  (`print(a * b + c)`), back-translated; every translation is faithful at the first attempt, so
  the stage makes exactly N*K independent calls;
- `solve` (`benchmarks/solve_throughput_bench.py`): N solver episodes that need 1 + p % K tool
  calls each ("Compute one term per step"): plan, one turn per tool call, each waiting on the
  sandbox's output of the one before, and the answer.
The ideal time is calls * latency / concurrency. `--latency-jitter J` spreads each request's wait
evenly over latency * (1 ± J) by a hash of its messages: the same for both clients, the mean
unchanged.

Phases, each counted by the server (requests, a digest of them, peak and mean in flight, first
request to last reply, its own CPU), after one warm-up row that loads litellm's lazy parts:
0. raw HTTP client, the floor (translate only): the same request bodies, prebuilt, sent from one
   asyncio loop over aiohttp with a semaphore of `concurrency`, no LLM library and no stage logic:
   the most any client gets from this server on this machine (the run fails unless the server's
   digest of its requests equals ours);
1. bare client, the control: the same rows through the stage's pure function on `concurrency`
   plain threads, no Prefect, no row store: what litellm and our stage logic reach on this machine;
2. ours, first run;
3. ours, re-run of the finished stage (one stage-level cache hit);
4. ours, re-run with only the per-item store (what a stage cut short by a crash resumes from);
5. distilabel 1.5.3, the very same requests (`benchmarks/distilabel_side.py`, its own venv, batches
   of `concurrency` rows, which its async client sends at once; the run fails unless the server's
   digest of its requests equals ours), skipped if that venv is missing.

`--provider` picks litellm's provider for the mock endpoint: `openai` (the OpenAI SDK underneath)
or `hosted_vllm` (litellm's own HTTP client, the provider for self-hosted OpenAI-compatible
servers). "busy" is the server's first-request-to-last-reply window: the LLM phase without either
side's start-up. Two ratios to distilabel: `throughput_ratio_vs_distilabel` sets our stage's time
against distilabel's whole `Pipeline.run` (its step processes' start-up and its dataset's write
included, our flow's start-up not), `busy_throughput_ratio_vs_distilabel` sets busy window against
busy window, the like-for-like one. Each has a ceiling, the ratio a client that reached the
ideal would score (`throughput_ratio_ceiling`, `busy_throughput_ratio_ceiling`), and on the
translate workload a floor-based one, what the raw HTTP client scores
(`raw_client_ratio_vs_distilabel`, `busy_raw_client_ratio_vs_distilabel`). Prints the figures
last as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.offline_env import apply_offline_defaults

ROOT = Path(__file__).resolve().parent.parent
apply_offline_defaults(ROOT / ".state" / "bench-prefect", OPENAI_API_KEY="sk-bench")

from prefect import flow  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from flows.distill import DistillParams  # noqa: E402
from tasks.llm import LLMSettings  # noqa: E402
from tasks.llm.limits import call_limits  # noqa: E402
from tasks.prompt_store import load_prompt  # noqa: E402
from tasks.records import ProblemRecord, ToolCallRecord, TranslationRecord  # noqa: E402
from tasks.llm.scripted_provider import STEPWISE_MARKER  # noqa: E402
from tasks.stages.solve import CODE_PROTOCOL_STOPS, SolveConfig, SolveOutcome, solve_problem  # noqa: E402
from tasks.runtime import StageFunction, map_stage, row_threads  # noqa: E402
from tasks.stages.translate import TranslateConfig, translate_tool_call, translation_messages  # noqa: E402

DISTILABEL_PYTHON = ROOT / ".venv-distilabel" / "bin" / "python"
PLAN_SLOT, OUTPUT_SLOT = "\x00PLAN\x00", "\x00OUTPUT\x00"  # placeholders distilabel_side.py fills per turn


class MockServerProcess:
    """tests/mock_llm_server.py in a process of its own, so serving requests takes no CPU from the client."""

    def __init__(self, latency_s: float, latency_jitter: float = 0.0, *server_args: str) -> None:
        self.process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "mock_llm_server.py"), "--latency", str(latency_s),
                                         "--latency-jitter", str(latency_jitter), "--idle-exit", "300", *server_args],
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


def stepwise_problems(problems: int, max_calls: int) -> list[ProblemRecord]:
    """Problem p needs 1 + p % max_calls tool calls, one per term: a mix of short and long episodes."""
    rows = []
    for p in range(problems):
        terms = [(11 + p, 3 + j) for j in range(1 + p % max_calls)]
        text = " + ".join(f"{a} * {b}" for a, b in terms)
        rows.append(ProblemRecord(id=f"p{p}", problem=f"What is {text}? Compute {STEPWISE_MARKER}.",
                                  answer=str(sum(a * b for a, b in terms)), source="bench"))
    return rows


@dataclass(frozen=True)
class Workload:
    """One stage's rows, run three ways (bare threads, our flow, distilabel) against the same server."""

    stage: str
    stage_fn: StageFunction             # the stage's pure function: (row, settings, config), as the flow maps it
    rows: list[Any]
    config: BaseModel
    calls: int                          # LLM calls it takes: the scripted model's replies fix the count
    done_right: Callable[[Any], bool]   # a row finished as the scripted model guarantees
    distilabel_job: dict[str, Any]      # what benchmarks/distilabel_side.py needs to send the very same requests


def translate_workload(problems: int, calls_per_problem: int) -> Workload:
    """N x K back-translations: one independent request per row, all faithful at the first attempt."""
    calls, prompt, config = tool_calls(problems, calls_per_problem), load_prompt("translator"), TranslateConfig()
    requests = [translation_messages(call, prompt) for call in calls]
    return Workload("translate", translate_tool_call, calls, config, len(calls),
                    lambda row: isinstance(row, TranslationRecord) and row.faithful,
                    {"kind": "chat", "conversations": requests, "max_tokens": config.max_tokens})


def solve_workload(problems: int, max_calls: int) -> Workload:
    """N solver episodes (plan, one tool call per term, answer): each turn waits for the last one's tool output."""
    rows, prompt, config = stepwise_problems(problems, max_calls), load_prompt("solver"), SolveConfig(tool_protocol="code")
    prefix = [{"role": "system", "content": prompt.render("system_code")}, *prompt.parts["fewshot_code"]]
    job = {"kind": "solve", "prefix": prefix, "stop": CODE_PROTOCOL_STOPS, "max_turns": config.max_turns,
           "plan_max_tokens": config.plan_max_tokens, "turn_max_tokens": config.turn_max_tokens,
           "plan": [prompt.render("plan", problem=r.problem) for r in rows],
           # the execute turn quotes the plan the model wrote: distilabel_side fills it in
           "execute": [prompt.render("execute", plan=PLAN_SLOT, problem=r.problem) for r in rows], "plan_slot": PLAN_SLOT,
           "tool_output": prompt.render("tool_output_code", output=OUTPUT_SLOT), "output_slot": OUTPUT_SLOT,
           "followup": prompt.render("followup")}
    calls = sum(2 + n for n in (1 + p % max_calls for p in range(problems)))  # plan + one per term + answer
    return Workload("solve", solve_problem, rows, config, calls,
                    lambda outcome: isinstance(outcome, SolveOutcome) and outcome.trace.answer_correct, job)


def measure(server: MockServerProcess, run: Callable[[], list[Any]], workload: Workload) -> dict:
    """Wall and CPU time of `run()`, with the server's counters for it; every row must come out right."""
    server.reset()
    started, cpu = time.perf_counter(), time.process_time()
    rows = run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(rows) == len(workload.rows) and all(map(workload.done_right, rows)), f"{workload.stage}: a row came out wrong"
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), **server.stats()}


def run_raw_http_client(workload: Workload, server: MockServerProcess, concurrency: int) -> dict | None:
    """The floor: the translate workload's request bodies from one asyncio loop over aiohttp, nothing else.

    The bodies are built before the clock starts and each reply is only decoded, so what is left is
    the server, the sockets and one loop's HTTP work: the most any client gets here, litellm or not.
    None for the solve workload, whose turns depend on the replies and on the sandbox.
    """
    import aiohttp  # litellm's own transport; imported here since only this control uses it directly

    job = workload.distilabel_job
    if job["kind"] != "chat":
        return None
    settings = LLMSettings()  # the sampling settings `complete` sends on the first attempt
    bodies = [json.dumps({"model": "scripted", "messages": messages, "temperature": settings.temperature,
                          "max_tokens": job["max_tokens"], "seed": 0}).encode() for messages in job["conversations"]]

    async def send_all() -> tuple[list[str], float]:
        gate = asyncio.Semaphore(concurrency)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async def send(body: bytes) -> str:
                async with gate, session.post(f"{server.url}/chat/completions", data=body) as response:
                    response.raise_for_status()
                    return (await response.json())["choices"][0]["message"]["content"]

            await send(bodies[0])  # warm-up: one connection open
            server.reset()
            started = time.perf_counter()
            replies = await asyncio.gather(*map(send, bodies))
            return replies, time.perf_counter() - started

    replies, wall = asyncio.run(send_all())
    assert len(replies) == len(bodies) and all(replies), "raw client: a reply came back empty"
    return {"wall_s": round(wall, 3), **server.stats()}


def run_bare_client(workload: Workload, server: MockServerProcess, settings: LLMSettings, concurrency: int) -> dict:
    """The control: the same rows on plain threads, outside Prefect and the row store."""
    def run_all() -> list[Any]:
        with ThreadPoolExecutor(row_threads(concurrency)) as pool:  # each row in a copy of this context: it sees the gate
            return list(pool.map(lambda row, context: context.run(workload.stage_fn, row, settings, workload.config),
                                 workload.rows, [copy_context() for _ in workload.rows]))

    with call_limits(settings, concurrency):
        workload.stage_fn(workload.rows[0], settings, workload.config)  # warm-up: litellm's lazy parts, the sandbox
        return measure(server, run_all, workload)


def run_ours(workload: Workload, server: MockServerProcess, settings: LLMSettings, concurrency: int,
             rows_per_task: int, results: Path, phases: tuple[str, ...] = ("first", "cached_stage", "cached_items"),
             around: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> dict[str, dict]:
    """Our stage in a flow, for each of `phases`, inside `around()` (benchmarks/spend_bench.py: a budget)."""
    def run_stage(phase: str) -> list[Any]:
        if phase == "cached_items":  # the per-item store alone, as after a crash mid-stage
            for stage_result in (p for p in results.iterdir() if p.is_file()):
                stage_result.unlink()
        return map_stage(workload.stage, workload.stage_fn, [(row,) for row in workload.rows], settings, workload.config,
                         cache_dir=results, workers=row_threads(concurrency), chunk_size=rows_per_task)

    @flow(name="llm-throughput-bench", task_runner=ThreadPoolTaskRunner(max_workers=concurrency))
    def bench_flow() -> dict[str, dict]:
        with call_limits(settings, concurrency), around():  # once per run, as the distill flow does
            return {phase: measure(server, lambda: run_stage(phase), workload)  # noqa: B023 (called at once)
                    for phase in phases}

    return bench_flow()


def run_distilabel(workload: Workload, server: MockServerProcess, concurrency: int, workdir: Path) -> dict | None:
    if not DISTILABEL_PYTHON.exists():
        print(f"distilabel skipped: no {DISTILABEL_PYTHON} (`make bench` creates it)", flush=True)
        return None
    job = workdir / "distilabel_job.json"
    job.write_text(json.dumps(workload.distilabel_job))
    server.reset()
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([str(DISTILABEL_PYTHON), str(ROOT / "benchmarks" / "distilabel_side.py"), str(job),
                           server.url, str(concurrency)], capture_output=True, text=True, cwd=workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"distilabel side failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    side = json.loads(proc.stdout.strip().splitlines()[-1])
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the whole distilabel process, start-up included
    cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {"process_s": round(time.perf_counter() - started, 3), "cpu_s": round(cpu_s, 3), **side, **server.stats()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=("translate", "solve"), default="translate",
                        help="translate: N x K independent back-translations; solve: N multi-turn solver episodes "
                             "of 1 to K tool calls each (benchmarks/solve_throughput_bench.py)")
    parser.add_argument("--quick", action="store_true", help="40 problems, concurrency 8: under a minute")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--calls-per-problem", type=int, default=None,
                        help="tool calls per problem (translate, default 3) or at most (solve: 1 + p %% K, default 5)")
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

    if args.workload == "translate":
        workload = translate_workload(args.problems, args.calls_per_problem or 3)
    else:
        workload = solve_workload(args.problems, args.calls_per_problem or 5)
    n_calls = workload.calls
    ideal_s = n_calls * args.latency / args.concurrency
    server = MockServerProcess(args.latency, args.latency_jitter)
    settings = LLMSettings(model=f"{args.provider}/scripted", api_base=server.url)
    try:
        with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp:
            raw = run_raw_http_client(workload, server, args.concurrency)
            bare = run_bare_client(workload, server, settings, args.concurrency)
            ours = run_ours(workload, server, settings, args.concurrency, args.rows_per_task, Path(tmp) / "results")
            theirs = None if args.no_distilabel else run_distilabel(workload, server, args.concurrency, Path(tmp))
    finally:
        server.stop()

    first = ours["first"]
    assert first["requests"] == n_calls and bare["requests"] == n_calls, "the workload's call count is off"
    # a floor measured on other requests than ours would say nothing about ours
    assert raw is None or raw["requests_digest"] == first["requests_digest"], "the raw client did not send our requests"
    figures = {
        "bench": "llm_throughput" if args.workload == "translate" else "solve_throughput", "workload": args.workload,
        "provider": args.provider, "rows": len(workload.rows), "calls": n_calls, "concurrency": args.concurrency,
        "latency_s": args.latency, "latency_jitter": args.latency_jitter, "ideal_s": round(ideal_s, 2), "load_avg_1m": round(os.getloadavg()[0], 1),
        "server_cpu_ms_per_call": round(1000 * first["server_cpu_s"] / n_calls, 1),
        **({} if raw is None else {
            "raw_client_s": raw["wall_s"], "raw_client_vs_ideal": round(ideal_s / raw["wall_s"], 3),
            "raw_client_mean_in_flight": raw["mean_in_flight"],
            "raw_client_same_requests": True}),
        "bare_client_s": bare["wall_s"], "bare_client_vs_ideal": round(ideal_s / bare["wall_s"], 3),
        "bare_client_cpu_ms_per_call": round(1000 * bare["cpu_s"] / n_calls, 1),
        "bare_client_mean_in_flight": bare["mean_in_flight"],
        "ours_calls": first["requests"], "ours_peak_in_flight": first["peak_in_flight"],
        "ours_mean_in_flight": first["mean_in_flight"], "ours_busy_s": first["busy_s"], "ours_stage_s": first["wall_s"],
        "ours_vs_ideal": round(ideal_s / first["wall_s"], 3),
        "ours_vs_bare_client": round(bare["wall_s"] / first["wall_s"], 3),
        "ours_cpu_ms_per_call": round(1000 * first["cpu_s"] / n_calls, 1),
        "cached_stage_calls": ours["cached_stage"]["requests"], "cached_stage_s": ours["cached_stage"]["wall_s"],
        "cached_stage_vs_first": round(ours["cached_stage"]["wall_s"] / first["wall_s"], 4),
        "cached_items_calls": ours["cached_items"]["requests"], "cached_items_s": ours["cached_items"]["wall_s"],
        "cached_items_vs_first": round(ours["cached_items"]["wall_s"] / first["wall_s"], 4),
    }
    if theirs is not None:
        assert theirs["requests_digest"] == first["requests_digest"], "distilabel did not send the very same requests"
        figures |= {
            "distilabel_calls": theirs["requests"], "distilabel_same_requests": True,
            "distilabel_peak_in_flight": theirs["peak_in_flight"], "distilabel_mean_in_flight": theirs["mean_in_flight"],
            "distilabel_busy_s": theirs["busy_s"], "distilabel_run_s": theirs["run_s"],
            "distilabel_vs_ideal": round(ideal_s / theirs["run_s"], 3),
            "distilabel_cpu_ms_per_call": round(1000 * theirs["cpu_s"] / n_calls, 1),
            "throughput_ratio_vs_distilabel": round(theirs["run_s"] / first["wall_s"], 3),
            # what a client that reached the ideal would score: no client within the concurrency can beat it
            "throughput_ratio_ceiling": round(theirs["run_s"] / ideal_s, 3),
            "busy_throughput_ratio_vs_distilabel": round(theirs["busy_s"] / first["busy_s"], 3),
            "busy_throughput_ratio_ceiling": round(theirs["busy_s"] / ideal_s, 3),
        }
        if raw is not None:
            figures |= {"raw_client_ratio_vs_distilabel": round(theirs["run_s"] / raw["wall_s"], 3),
                        "busy_raw_client_ratio_vs_distilabel": round(theirs["busy_s"] / raw["busy_s"], 3)}
    print(json.dumps({"raw_client": raw, "bare_client": bare, **ours}), flush=True)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
