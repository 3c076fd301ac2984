"""`python -m eval`: evaluate a model, and optionally the same model + a LoRA adapter, on benchmarks.

    python -m eval --model models/smollm2-135m --adapter out/adapter --benchmarks math500,gsm8k \
        --limit 50 --max-new-tokens 256 --output-dir out/eval

--model is a Hugging Face model directory or a litellm model string; the pipeline's "embedded"
model is evaluated through `tool-distill train-eval` (or by its directory).

With --adapter, the base model is evaluated as "base" and base + adapter as "tuned" in the same
run (pass --no-base to skip the base). --limit N takes the first N problems of each benchmark in
file order; add --subset-seed S for a seeded random N instead.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from eval.benchmarks import BENCHMARK_NAMES, DEFAULT_PROMPT
from training.offline_env import set_offline_defaults


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a Hugging Face model directory, or a litellm model string (required "
                        "unless --regrade)")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory: also evaluate base + adapter")
    parser.add_argument("--load-in-4bit", action="store_true",
                        help="load the base as 4-bit NF4, as QLoRA trained it (base and tuned alike)")
    parser.add_argument("--label", default="base", help="label of the model without adapter")
    parser.add_argument("--adapter-label", default="tuned", help="label of the model with the adapter")
    parser.add_argument("--no-base", action="store_true", help="with --adapter: evaluate only base + adapter")
    parser.add_argument("--backend", choices=["auto", "transformers", "vllm", "litellm"], default="auto")
    parser.add_argument("--benchmarks", default="math500,gsm8k",
                        help=f"comma-separated, from: {','.join(BENCHMARK_NAMES)}, or 'all'")
    parser.add_argument("--limit", type=int, help="first N problems of each benchmark")
    parser.add_argument("--subset-seed", type=int, help="with --limit: a seeded random N instead of the first N")
    parser.add_argument("--source", choices=["offline", "hub"], default="offline")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1, help="samples per problem (pass@k, maj@k; needs --temperature)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (transformers)")
    parser.add_argument("--cpu-threads", type=int,
                        help="torch CPU threads; 1 avoids thread thrashing on a shared machine")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel requests (litellm)")
    parser.add_argument("--prompt", help=f"user prompt template with {{problem}}; default: {DEFAULT_PROMPT!r}")
    parser.add_argument("--system-prompt")
    parser.add_argument("--output-dir", type=Path, default=Path("out/eval"))
    parser.add_argument("--regrade", action="store_true",
                        help="grade the completions saved in --output-dir again with the current grader; "
                             "no generation (other options are ignored)")
    return parser


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.regrade and not args.model:
        parser.error("--model is required: a Hugging Face model directory or a litellm model string")
    if args.model == "embedded" and not args.regrade:
        from eval.generation import EMBEDDED_HINT

        parser.error(EMBEDDED_HINT)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from eval.generation import ModelUnderTest
    from eval.harness import EvalConfig, evaluate_models, regrade

    if args.regrade:
        report = regrade(args.output_dir)
        print(report.report_path.read_text())
        return 0

    benchmarks = list(BENCHMARK_NAMES) if args.benchmarks == "all" else [
        b.strip() for b in args.benchmarks.split(",") if b.strip()]
    models = []
    if not (args.adapter and args.no_base):
        models.append(ModelUnderTest(model=args.model, label=args.label, backend=args.backend,
                                     load_in_4bit=args.load_in_4bit))
    if args.adapter:
        models.append(ModelUnderTest(model=args.model, adapter=args.adapter, label=args.adapter_label,
                                     backend=args.backend, load_in_4bit=args.load_in_4bit))
    config = EvalConfig(
        limit=args.limit, subset_seed=args.subset_seed, source=args.source,
        max_new_tokens=args.max_new_tokens, n=args.n, temperature=args.temperature, top_p=args.top_p,
        seed=args.seed, batch_size=args.batch_size, concurrency=args.concurrency, cpu_threads=args.cpu_threads,
        prompt_template=args.prompt, system_prompt=args.system_prompt, progress=True,
    )
    report = evaluate_models(models, benchmarks, config, args.output_dir)
    print(report.report_path.read_text())
    print(f"per-problem rows: {args.output_dir / 'per_problem'}; summary: {report.summary_path}; "
          f"chart: {report.chart_path}")
    return 0
