"""`tool-distill` command line: run the flows on Prefect's ephemeral API, no server needed.

    tool-distill demo                                   # whole pipeline, embedded model, offline
    tool-distill distill --problems data.jsonl --model openai/gpt-4o-mini --limit 100
    tool-distill train-eval --sft out/distill/sft.parquet --recipe qwen2.5-1.5b-instruct
    tool-distill pipeline --model hosted_vllm/Qwen/Qwen2.5-7B-Instruct --api-base http://host:8000/v1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Offline-friendly defaults; users can still override each from the environment.
for _name, _value in {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

from flows.distill import DistillParams, DistillSummary, distill  # noqa: E402
from tasks.llm import LLMSettings  # noqa: E402


def _add_distill_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", default="bundled", help='JSONL/Parquet/CSV file or folder, or "bundled"')
    parser.add_argument("--model", default=LLMSettings().model, help="any litellm model string (keys from env)")
    parser.add_argument("--api-base", default=None, help="endpoint for hosted_vllm/ or an OpenAI-compatible proxy")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N problems")
    parser.add_argument("--tool-protocol", choices=["auto", "functions", "code"], default="auto")
    parser.add_argument("--max-turns", type=int, default=15)
    parser.add_argument("--no-plan", action="store_true", help="skip the solver's planning turn (tiny models plan badly)")
    parser.add_argument("--max-problem-chars", type=int, default=20_000, help="longer problems are bad rows")
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--skip-bad-rows", action="store_true")


def _distill_params(args: argparse.Namespace, output_dir: Path) -> DistillParams:
    params = DistillParams(
        problems=args.problems,
        output_dir=str(output_dir),
        limit=args.limit,
        skip_bad_rows=args.skip_bad_rows,
        max_problem_chars=args.max_problem_chars,
        max_concurrency=args.max_concurrency,
        llm=LLMSettings(model=args.model, api_base=args.api_base),
    )
    params.solve.tool_protocol = args.tool_protocol
    params.solve.max_turns = args.max_turns
    params.solve.plan_first = not args.no_plan
    return params


def print_distill_summary(summary: DistillSummary) -> None:
    out = Path(summary.output_dir)
    print("\n== distill ==")
    rows = [
        ("problems", summary.problems, out / "problems.parquet"),
        ("solved correctly", summary.solved_correct, out / "traces.parquet"),
        ("tool calls", summary.tool_calls, out / "tool_calls.parquet"),
        ("faithful translations", f"{summary.faithful_translations}/{summary.translations}", out / "translations.parquet"),
        ("NL traces", summary.nl_traces, out / "nl_traces.parquet"),
        ("kept for SFT", summary.kept, out / "sft.parquet"),
    ]
    for label, value, path in rows:
        print(f"  {label:<24}{value!s:>8}   {path}")
    print(f"  drop reasons: {summary.drop_reasons or 'none'}")
    print(f"  tokens: {summary.prompt_tokens} in / {summary.completion_tokens} out, cost ${summary.cost_usd:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tool-distill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_distill = sub.add_parser("distill", help="problems → solve → translate → rephrase → filter → sft.parquet")
    _add_distill_args(p_distill)
    p_distill.add_argument("--output-dir", type=Path, default=Path("out/distill"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.command == "distill":
        summary = distill(_distill_params(args, args.output_dir))
        print_distill_summary(summary)
    print(f"\ndone in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
