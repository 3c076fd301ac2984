"""Small SymPy snippets (solve, factor, exact arithmetic) through five executors, in one run on one machine.

    python -m benchmarks.sandbox_bench [--quick] [--snippets N]

(a) `tool_sandbox.Sandbox` with all its isolation on (one process per session forked from the zygote,
    namespaces, seccomp, rlimits); calls grouped in traces of 10 per session, session closed after, so
    every 10th call also pays a session start;
(b) a fresh `python -c` subprocess per call;
(c) a `pebble.ProcessPool` created per call, as the ToRA / Qwen2.5-Math executors are used when each
    tool turn is its own batch (the parent has SymPy imported, as their drivers do for grading, so the
    forked pool worker starts with it loaded);
(d) one warm single-worker `pebble.ProcessPool`;
(e) plain in-process `exec`, no isolation at all: the physical limit.

Latency: one call in flight (p50/p95, calls/s; for (a) and (e) also CPU ms per call, parent plus
zygote and sessions, which other jobs on a shared machine do not inflate). Throughput: 8 calls in flight from
threads, as the solve task maps over problems. Each phase has its own N snippets (SymPy caches, so
re-running the same ones would favour whoever saw them first). The executors take turns trace by
trace (rotating who goes first), so on a shared, noisy machine they all see the same load and the
ratios stay meaningful; `machine_parallel_speedup` says how much parallelism the machine gave at
the time. (b) and (c) cost ~0.1-1 s a call, so they run one snippet in some traces (the JSON gives
the counts); the others run every snippet.

Sessions on their own: session start (the first, trivial call of a new session, minus nothing: what a
caller waits for) with the zygote's spare sessions ready (default) and with none (`spare_sessions=0`:
a fork from the zygote, the namespaces and the lock-down, all while the caller waits); and the
sessions/s the machine sustains when each session makes 3 calls (8 sessions in flight from threads).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from io import StringIO

import sympy  # noqa: F401 - imported on purpose: (c) forks this process, as a ToRA driver that grades with SymPy
from pebble import ProcessPool

from tool_sandbox import Sandbox, SandboxLimits

TRACE_LENGTH = 10
THREADS = 8
CALLS_PER_SHORT_SESSION = 3
SPARE_REFILL_PAUSE_S = 0.03  # between measured starts, so the zygote can fork the next spare meanwhile
CALL_TIMEOUT_S = 10.0
# Fresh processes importing SymPy 8 at a time on a loaded 2-core machine can take well over 10 s: the
# baselines get a generous limit, which only guards against hangs.
BASELINE_TIMEOUT_S = 120.0


def make_snippets(n: int, seed: int = 0) -> list[str]:
    """n self-contained snippets cycling through solve, factor and Rational arithmetic, with varied numbers."""
    rng = random.Random(seed)
    snippets = []
    for i in range(n):
        r1, r2, r3 = (rng.randint(-30, 30) for _ in range(3))
        if i % 3 == 0:
            snippets.append(f"from sympy import symbols, solve\nx = symbols('x')\n"
                            f"print(solve(x**2 - ({r1 + r2})*x + ({r1 * r2}), x))")
        elif i % 3 == 1:
            snippets.append(f"from sympy import symbols, factor\nx = symbols('x')\n"
                            f"print(factor((x - ({r1}))*(x - ({r2}))*(x - ({r3}))))")
        else:
            a, b, c, d = (rng.randint(1, 999) for _ in range(4))
            snippets.append(f"from sympy import Rational\nprint(Rational({a}, {b}) + Rational({c}, {d}) * {r1})")
    return snippets


def exec_snippet(code: str) -> str:
    """Run a snippet in this process, capturing what it prints (thread-safe: no global stdout swap)."""
    out = StringIO()
    exec(code, {"__name__": "__main__", "print": partial(print, file=out)})
    return out.getvalue()


def exec_in_fresh_interpreter(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=BASELINE_TIMEOUT_S,
                          check=True)
    return done.stdout


def exec_in_pool_per_call(code: str) -> str:
    with ProcessPool(max_workers=1) as pool:
        return pool.schedule(exec_snippet, args=(code,), timeout=BASELINE_TIMEOUT_S).result()


@dataclass
class Executor:
    """One way of running a snippet. `sample`: how many traces run one snippet through it (None: all, fully)."""

    name: str
    run: Callable[[str, str], object]  # (code, session id) -> anything
    end_trace: Callable[[str], None] = lambda session: None
    sample: int | None = None
    cpu_seconds: Callable[[], float] | None = None  # CPU used so far by every process doing this executor's work
    latencies: list[float] = field(default_factory=list)
    serial_s: float = 0.0
    serial_cpu_s: float = 0.0
    parallel_calls: int = 0
    parallel_s: float = 0.0

    def calls_in(self, index: int, trace: list[str]) -> list[str]:
        if self.sample is None:
            return trace
        return trace[:1] if index < self.sample else []

    def run_trace(self, session: str, codes: list[str]) -> None:
        for code in codes:
            self.run(code, session)
        if codes:
            self.end_trace(session)

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        cpu = {"cpu_ms_per_call": round(self.serial_cpu_s / len(ordered) * 1000, 3)} if self.cpu_seconds else {}
        return {"calls": len(ordered), "latency_calls_per_s": round(len(ordered) / self.serial_s, 2), **cpu,
                "p50_ms": round(statistics.median(ordered) * 1000, 3),
                "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 3),
                "throughput_calls": self.parallel_calls,
                "throughput_calls_per_s": round(self.parallel_calls / self.parallel_s, 2)}


def measure_interleaved(executors: list[Executor], latency_traces: list[list[str]],
                        throughput_traces: list[list[str]]) -> None:
    """Latency trace by trace, then throughput round by round (THREADS traces in flight), rotating the order.

    The two phases use different snippets: SymPy caches results, and a re-run of the same snippets
    would favour whichever executor happened to see them before in the same process.
    """
    for index, trace in enumerate(latency_traces):
        for executor in _rotated(executors, index):
            cpu_before = executor.cpu_seconds() if executor.cpu_seconds else 0.0
            started = time.perf_counter()
            for code in executor.calls_in(index, trace):
                t0 = time.perf_counter()
                executor.run(code, f"lat-{index}")
                executor.latencies.append(time.perf_counter() - t0)
            executor.end_trace(f"lat-{index}")
            executor.serial_s += time.perf_counter() - started
            if executor.cpu_seconds:
                executor.serial_cpu_s += executor.cpu_seconds() - cpu_before
    with ThreadPoolExecutor(THREADS) as threads:
        for first in range(0, len(throughput_traces), THREADS):
            batch = list(range(first, min(first + THREADS, len(throughput_traces))))
            for executor in _rotated(executors, first // THREADS):
                work = [(f"thr-{i}", executor.calls_in(i, throughput_traces[i])) for i in batch]
                if not any(codes for _, codes in work):
                    continue  # a slow baseline past its sample
                started = time.perf_counter()
                list(threads.map(lambda item: executor.run_trace(*item), work))
                executor.parallel_s += time.perf_counter() - started
                executor.parallel_calls += sum(len(codes) for _, codes in work)


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def machine_parallel_speedup(tasks: int = 8, n: int = 2_000_000) -> float:
    """Pure-Python CPU work on one process vs one per CPU, interleaved twice: the parallelism the machine
    actually gives right now. On a shared box it can be ~1, and then no pool can beat one worker."""
    elapsed = {1: 0.0, os.cpu_count() or 1: 0.0}
    for _ in range(2):
        for workers in elapsed:
            started = time.perf_counter()
            with ProcessPool(max_workers=workers) as pool:
                list(pool.map(_spin, [n] * tasks).result())
            elapsed[workers] += time.perf_counter() - started
    one, many = elapsed.values()
    return round(one / many, 2)


def process_cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of another process (and of its reaped children), from /proc (10 ms ticks: fine summed)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0  # it ended between listing and reading; its time is in its parent's children's time
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


class SandboxCPU:
    """CPU of this process, the zygote with every session it reaped, and the live sessions.

    A closed session's time moves into the zygote's children's time only once the zygote has reaped
    it, so `close` notes its pids and `seconds` first waits (milliseconds) until they are gone.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.closing: set[int] = set()

    def close(self, session: str) -> None:
        before = set(self.sandbox.worker_pids())
        self.sandbox.close_session(session)
        self.closing |= before - set(self.sandbox.worker_pids())

    def seconds(self) -> float:
        deadline = time.monotonic() + 2.0
        while self.closing and time.monotonic() < deadline:
            self.closing = {pid for pid in self.closing if os.path.exists(f"/proc/{pid}")}
            time.sleep(0.001)
        zygote, *live = self.sandbox.worker_pids()
        return time.process_time() + process_cpu_seconds(zygote, children=True) + sum(map(process_cpu_seconds, live))


def measure_session_starts(sandbox: Sandbox, n: int, label: str) -> dict[str, float]:
    """p50/p95 of a new session's first call (`None`: no work), with a pause so spares can be refilled."""
    latencies = []
    for i in range(n):
        time.sleep(SPARE_REFILL_PAUSE_S)
        started = time.perf_counter()
        out = sandbox.run("None", f"{label}-{i}")
        latencies.append(time.perf_counter() - started)
        assert out.ok, out.text_for_model()
        sandbox.close_session(f"{label}-{i}")
    ordered = sorted(latencies)
    return {"starts": n, "p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[min(n - 1, int(0.95 * n))] * 1000, 3)}


def measure_short_sessions(sandbox: Sandbox, cpu: SandboxCPU, snippets: list[str],
                           failures: list[str]) -> dict[str, float]:
    """Sessions of 3 calls each, THREADS at a time: the sessions/s this machine sustains, start and close included."""
    groups = [snippets[i:i + CALLS_PER_SHORT_SESSION] for i in range(0, len(snippets), CALLS_PER_SHORT_SESSION)]

    def one_session(item: tuple[int, list[str]]) -> None:
        index, codes = item
        for code in codes:
            out = sandbox.run(code, f"short-{index}", timeout=CALL_TIMEOUT_S)
            if not out.ok:
                failures.append(out.text_for_model())
        cpu.close(f"short-{index}")

    cpu_before, started = cpu.seconds(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as threads:
        list(threads.map(one_session, enumerate(groups)))
    elapsed = time.perf_counter() - started
    return {"sessions": len(groups), "sessions_per_s": round(len(groups) / elapsed, 2),
            "cpu_ms_per_session": round((cpu.seconds() - cpu_before) / len(groups) * 1000, 2)}


def _traces(snippets: list[str]) -> list[list[str]]:
    return [snippets[i:i + TRACE_LENGTH] for i in range(0, len(snippets), TRACE_LENGTH)]


def _rotated(items: list[Executor], k: int) -> list[Executor]:
    k %= len(items)
    return items[k:] + items[:k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 snippets, few slow-baseline calls (< 1 min)")
    parser.add_argument("--snippets", type=int, help="snippets for (a), (d), (e) (default 1000, quick 200)")
    args = parser.parse_args()
    n = args.snippets or (200 if args.quick else 1000)
    n_fresh, n_pool_per_call = (3, 6) if args.quick else (24, 48)
    latency_traces, throughput_traces = _traces(make_snippets(n, seed=0)), _traces(make_snippets(n, seed=1))
    warm_up = make_snippets(64, seed=2)
    n_starts, n_short = (40, 90) if args.quick else (200, 600)
    failures: list[str] = []

    with Sandbox() as sandbox, ProcessPool(max_workers=1) as warm_pool:
        def sandbox_run(code: str, session: str) -> None:
            result = sandbox.run(code, session, timeout=CALL_TIMEOUT_S)
            if result.status != "ok":
                failures.append(result.text_for_model())

        def warm_pool_run(code: str, session: str) -> str:
            return warm_pool.schedule(exec_snippet, args=(code,), timeout=CALL_TIMEOUT_S).result()

        cpu = SandboxCPU(sandbox)
        executors = [
            Executor("a_sandbox", sandbox_run, cpu.close, cpu_seconds=cpu.seconds),
            Executor("b_fresh_subprocess", lambda code, session: exec_in_fresh_interpreter(code), sample=n_fresh),
            Executor("c_pool_per_call", lambda code, session: exec_in_pool_per_call(code), sample=n_pool_per_call),
            Executor("d_warm_pebble", warm_pool_run),
            Executor("e_in_process", lambda code, session: exec_snippet(code), cpu_seconds=time.process_time),
        ]
        for i in range(4):  # start the zygote and the warm pool outside the timing
            sandbox_run(warm_up[i % len(warm_up)], f"warm-{i}")
            sandbox.close_session(f"warm-{i}")
        warm_pool_run(warm_up[0], "warm")
        exec_snippet(warm_up[0])
        confinement = sandbox.confinement()
        print(f"2 x {n} snippets in traces of {TRACE_LENGTH}, executors interleaved ...", file=sys.stderr, flush=True)
        measure_interleaved(executors, latency_traces, throughput_traces)
        print("session starts and short sessions ...", file=sys.stderr, flush=True)
        starts_with_spares = measure_session_starts(sandbox, n_starts, "start")
        short_sessions = measure_short_sessions(sandbox, cpu, make_snippets(n_short, seed=3), failures)
    with Sandbox(limits=SandboxLimits(spare_sessions=0)) as cold:
        cold.run("None", "warm")
        starts_cold = measure_session_starts(cold, n_starts, "cold")

    speedup = machine_parallel_speedup()
    results = {executor.name: executor.figures() for executor in executors}
    a, b, c, d, e = results.values()
    ratios = {
        "a_vs_e_latency_per_worker": round(a["latency_calls_per_s"] / e["latency_calls_per_s"], 3),
        "a_vs_d_throughput": round(a["throughput_calls_per_s"] / d["throughput_calls_per_s"], 3),
        "a_vs_b_latency": round(a["latency_calls_per_s"] / b["latency_calls_per_s"], 1),
        "a_vs_b_throughput": round(a["throughput_calls_per_s"] / b["throughput_calls_per_s"], 1),
        "a_vs_c_latency": round(a["latency_calls_per_s"] / c["latency_calls_per_s"], 1),
        "a_vs_c_throughput": round(a["throughput_calls_per_s"] / c["throughput_calls_per_s"], 1),
        "a_p50_overhead_vs_e_ms": round(a["p50_ms"] - e["p50_ms"], 3),
        # CPU per call (parent + zygote + sessions) is what the machine's other load does not inflate
        "a_vs_e_cpu_per_call": round(e["cpu_ms_per_call"] / a["cpu_ms_per_call"], 3),
        "a_cpu_overhead_ms_per_call": round(a["cpu_ms_per_call"] - e["cpu_ms_per_call"], 3),
    }
    sessions = {"start_with_spares": starts_with_spares, "start_cold": starts_cold, "three_call_sessions": short_sessions}
    targets = {"a_ge_half_e_per_worker": ratios["a_vs_e_latency_per_worker"] >= 0.5,
               "a_ge_1.5x_d_throughput": ratios["a_vs_d_throughput"] >= 1.5,
               "a_ge_100x_b": ratios["a_vs_b_latency"] >= 100,
               "a_p50_under_5ms": a["p50_ms"] < 5.0,
               "session_start_p50_under_10ms": starts_with_spares["p50_ms"] < 10.0,
               "cold_session_start_p50_under_10ms": starts_cold["p50_ms"] < 10.0}
    load = round(os.getloadavg()[0], 2)

    print(f"{'executor':<20} {'calls':>6} {'calls/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'8-thread calls/s':>17}")
    for name, fig in results.items():
        print(f"{name:<20} {fig['calls']:>6} {fig['latency_calls_per_s']:>9} {fig['p50_ms']:>9} {fig['p95_ms']:>9} "
              f"{fig['throughput_calls_per_s']:>17}")
    print("sessions:", sessions)
    print("ratios:", ratios)
    print("targets:", targets, f"(isolation {confinement['isolation']}, {os.cpu_count()} CPUs, load {load}, "
          f"plain multiprocessing speed-up on this machine now: {speedup}x)")
    print(json.dumps({"bench": "sandbox", "quick": args.quick, "snippets": n, "isolation": confinement["isolation"],
                      "cpus": os.cpu_count(), "load_avg_1m": load,
                      "machine_parallel_speedup": speedup, "sandbox_failures": len(failures),
                      "confinement": confinement, **results, "sessions": sessions, "ratios": ratios,
                      "targets_met": targets,
                      "ratio_vs_spawn": ratios["a_vs_b_latency"]}))


if __name__ == "__main__":
    main()
