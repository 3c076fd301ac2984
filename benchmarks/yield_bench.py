"""Yield: kept traces and LLM calls per kept trace as the solver samples per problem grow (k = 1, 2, 4, 8).

    python -m benchmarks.yield_bench [--quick] [--problems 40] [--keep-per-problem 2] [--embedded]

Mock part: the distill flow (its own code: rounds of `map_stage`, adaptive stopping, the filter)
against `tests/mock_llm_server.py` in its own process, on N generated arithmetic problems whose
scripted solver is right or wrong by sample (the "wrong on samples ..." marker of
tasks/llm/scripted_provider.py): a quarter never wrong, a quarter wrong on each sample with
probability 1/2, a quarter with probability 0.8, a quarter always wrong; a problem's samples write
different code, so its correct samples are distinct traces. The runs for k = 1, 2, 4, 8 share one
output folder, as a user raising k does: each run reuses the samples drawn before (the server
counts the new requests of each run and any repeated one) and its yield report counts the whole
dataset, so its figures are those of a run from scratch at that k. The mock's tokens are word
counts; they are priced at gpt-4o-mini's list price (litellm's cost map), for scale only.

Embedded part (`--embedded`, ~15-30 min on 2 CPU cores): the 24 bundled demo problems on the
embedded SmolLM2-135M with `tool-distill demo`'s settings, k = 1 (what the demo does today) and
then k = 4 in the same folder.

Writes `<out>/yield.json` and `<out>/yield_curve.png` and prints the figures last as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from training.offline_env import apply_offline_defaults

ROOT = Path(__file__).resolve().parent.parent
apply_offline_defaults(ROOT / ".state" / "bench-prefect", OPENAI_API_KEY="sk-bench")

from benchmarks.llm_throughput_bench import MockServerProcess  # noqa: E402
from flows.distill import DistillParams, distill  # noqa: E402
from tasks.llm import LLMSettings  # noqa: E402
from tasks.llm.scripted_provider import WRONG_SAMPLES_MARKER  # noqa: E402
from tasks.stages.config import SamplingConfig  # noqa: E402
from tasks.stages.summary import DistillSummary  # noqa: E402

KS = (1, 2, 4, 8)
# the chance that a sample is wrong, for a quarter of the problems each: never, a coin flip, mostly, always
WRONG_RATES = (0.0, 0.5, 0.8, 1.0)
PRICED_AS = "gpt-4o-mini"


def scripted_problems(n: int, max_k: int) -> list[dict[str, str]]:
    """N problems "What is a * b + c?", each with the samples its scripted solver gets wrong (seeded: the same every run)."""
    rng = random.Random(2506_19171)
    rows = []
    for p in range(n):
        wrong_rate = WRONG_RATES[p % len(WRONG_RATES)]
        a, b, c = rng.randint(11, 99), rng.randint(3, 19), rng.randint(1, 50)
        wrong = [s for s in range(max_k) if rng.random() < wrong_rate]
        marker = f" (The solver goes {WRONG_SAMPLES_MARKER} {', '.join(map(str, wrong))}.)" if wrong else ""
        rows.append({"id": f"p{p:03d}", "problem": f"What is {a} * {b} + {c}?{marker}", "answer": str(a * b + c)})
    return rows


def curve_point(k: int, summary: DistillSummary, server: dict[str, Any] | None, wall_s: float) -> dict[str, Any]:
    report = summary.yield_report
    point = {"k": k, "kept": report.kept, "problems_with_kept": report.problems_with_kept,
             "kept_per_problem": report.kept_per_problem, "llm_calls": report.llm_calls,
             "calls_per_kept": report.calls_per_kept, "kept_per_1000_calls": report.kept_per_1000_calls,
             "cost_usd": report.cost_usd, "kept_per_usd": report.kept_per_usd, "drop_reasons": summary.drop_reasons,
             "added_by_sample": [{"sample_index": s.sample_index, "drawn": s.drawn, "kept": s.kept,
                                  "problems_first_kept": s.problems_first_kept} for s in report.by_sample],
             "wall_s": round(wall_s, 1)}
    if server is not None:
        point |= {"new_requests": server["requests"], "repeated_requests": server["repeated_requests"]}
    return point


def run_mock(n: int, keep: int, out: Path, latency_s: float) -> dict[str, Any]:
    import litellm

    # price the mock model like a real small teacher, so "per $" is a number (litellm's own cost path does the sum)
    litellm.register_model({"openai/scripted": {**litellm.model_cost[PRICED_AS], "litellm_provider": "openai"}})
    out.mkdir(parents=True, exist_ok=True)
    problems = out / "problems.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in scripted_problems(n, max(KS))))
    server = MockServerProcess(latency_s)
    curve = []
    try:
        llm = LLMSettings(model="openai/scripted", api_base=server.url)
        for k in KS:
            params = DistillParams(problems=str(problems), output_dir=str(out / "distill"), decontaminate=False, llm=llm,
                                   max_concurrency=8, sampling=SamplingConfig(samples_per_problem=k,
                                                                              keep_per_problem=min(keep, k)))
            params.solve.tool_protocol = "code"
            server.reset()
            started = time.perf_counter()
            summary = distill(params)
            curve.append(curve_point(k, summary, server.stats(), time.perf_counter() - started))
    finally:
        server.stop()
    return {"problems": n, "keep_per_problem": keep, "wrong_rates": WRONG_RATES, "priced_as": PRICED_AS,
            "latency_s": latency_s, "curve": curve}


def run_embedded(keep: int, out: Path) -> dict[str, Any]:
    from flows.cli import DemoCommand

    out.mkdir(parents=True, exist_ok=True)
    demo = DemoCommand().model_dump(include=set(DistillParams.model_fields))
    curve = []
    for k in (1, 4):
        params = DistillParams.model_validate({**demo, "output_dir": str(out / "distill"),
                                               "sampling": {"samples_per_problem": k, "keep_per_problem": min(keep, k)}})
        started = time.perf_counter()
        summary = distill(params)
        curve.append(curve_point(k, summary, None, time.perf_counter() - started))
    return {"problems": curve[0]["added_by_sample"][0]["drawn"], "keep_per_problem": keep,
            "model": params.llm.model, "curve": curve}


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mock = figures["mock"]
    ks = [p["k"] for p in mock["curve"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(ks, [p["kept"] for p in mock["curve"]], marker="o", color="#2e7d32", label="kept traces (mock)")
    left.plot(ks, [p["problems_with_kept"] for p in mock["curve"]], marker="s", color="#1565c0",
              label="problems with a kept trace (mock)")
    if figures.get("embedded"):
        emb = figures["embedded"]["curve"]
        left.plot([p["k"] for p in emb], [p["kept"] for p in emb], marker="^", color="#c62828",
                  label="kept traces (embedded, 24 demo problems)")
    left.set_ylim(0, 1.5 * max(p["kept"] for p in mock["curve"]))  # headroom for the legend
    left.set_xlabel("samples per problem k (adaptive stopping)")
    left.set_ylabel("count")
    left.set_title(f"{mock['problems']} problems, keep up to {mock['keep_per_problem']} each", fontsize=10)
    left.legend(fontsize=8, loc="upper left")
    right.plot(ks, [p["calls_per_kept"] for p in mock["curve"]], marker="o", color="#6a1b9a")
    right.set_xlabel("samples per problem k")
    right.set_ylabel("LLM calls per kept trace")
    right.set_title("cost of a kept trace (mock)", fontsize=10)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 problems, mock only: under a minute")
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--keep-per-problem", type=int, default=2, help="m: stop a problem at m distinct correct traces")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the mock server waits per request")
    parser.add_argument("--embedded", action="store_true", help="also the 24 demo problems on the embedded model, k=1 and 4")
    parser.add_argument("--keep-drawn", action="store_true",
                        help="keep the samples and rows an earlier run of the bench made under --out: the yield report "
                             "counts the whole dataset, so the figures are those of a run from scratch (wall times aside)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "yield")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.embedded = 8, False
    for part in () if args.keep_drawn else ("mock", "embedded"):  # its own folders only: --out may hold more
        shutil.rmtree(args.out / part, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"bench": "yield", "mock": run_mock(args.problems, args.keep_per_problem, args.out / "mock",
                                                                   args.latency)}
    figures["embedded"] = run_embedded(args.keep_per_problem, args.out / "embedded") if args.embedded else None
    for point in figures["mock"]["curve"]:
        assert point["repeated_requests"] == 0, f"k={point['k']}: a request was sent twice"
    png = args.out / "yield_curve.png"
    plot(figures, png)
    figures["png"] = str(png)
    (args.out / "yield.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
