"""Differential grading: eval.grader vs plain math-verify on the grading corpus, by answer-format class.

    python -m benchmarks.grading_bench [--quick] [--per-class N]

The corpus (tests/grading_corpus/cases.jsonl, built by tests/grading_corpus/build.py) holds
(completion, gold, expected) cases whose verdicts follow from their construction. Both graders see
every whole completion, in the same process:

- ours: `eval.grader.grade(completion, gold, problem=...)` (the problem only where a case states a
  precision);
- plain math-verify: `verify(parse(f"${gold}$"), parse(completion))` with default configurations.

Printed: agreement with the expected verdicts, false positives (wrong answers accepted) and false
negatives (right answers rejected) overall and per class, mean / p95 / max milliseconds per grade,
the same agreement on the hand-checked pairs of tests/grader_cases.jsonl, and every case where ours
disagrees. `--quick` takes a seeded sample of each class (< 1 minute). The last line printed is
one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

from eval.grader import _WARM_UP_LATEX, DEFAULT_TIME_LIMIT_S, answers_match, grade, warm_up

TESTS = Path(__file__).resolve().parent.parent / "tests"
CORPUS_PATH = TESTS / "grading_corpus" / "cases.jsonl"
HAND_CHECKED_PATH = TESTS / "grader_cases.jsonl"


def plain_math_verify(completion: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(completion)))
    except Exception:  # a crash counts as "not equal", as a harness would score it
        return False


def load_cases(per_class: int | None, seed: int = 0) -> list[dict]:
    cases = [json.loads(line) for line in CORPUS_PATH.read_text().splitlines()]
    if per_class is None:
        return cases
    by_class: dict[str, list[dict]] = defaultdict(list)
    for case in cases:
        by_class[case["class"]].append(case)
    rng = random.Random(seed)
    return [case for group in by_class.values() for case in rng.sample(group, min(per_class, len(group)))]


def run(grader, cases: list[dict]) -> tuple[list[bool], list[float]]:
    verdicts, seconds = [], []
    for case in cases:
        started = time.perf_counter()
        verdicts.append(grader(case))
        seconds.append(time.perf_counter() - started)
    return verdicts, seconds


def scores(verdicts: list[bool], cases: list[dict]) -> dict:
    fp = sum(v and not c["expected"] for v, c in zip(verdicts, cases, strict=True))
    fn = sum(c["expected"] and not v for v, c in zip(verdicts, cases, strict=True))
    return {"n": len(cases), "agreement": round(1 - (fp + fn) / len(cases), 4), "fp": fp, "fn": fn}


def timing(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"mean_ms": round(statistics.fmean(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
            "max_ms": round(ms[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a seeded sample of 20 cases per class")
    parser.add_argument("--per-class", type=int, default=None, help="sample this many cases per class")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its per-case timeout warnings
    cases = load_cases(20 if args.quick and args.per_class is None else args.per_class)

    # Imports and the LaTeX parser's first-use costs (ANTLR fills its tables lazily) outside the
    # timing, for both graders alike: the same constructs parsed and compared once.
    warm_up(wait=True)
    for latex, other in zip(_WARM_UP_LATEX, (*_WARM_UP_LATEX[1:], _WARM_UP_LATEX[0]), strict=True):
        plain_math_verify(f"${latex}$", other)
    ours, ours_s = run(lambda c: grade(c["completion"], c["gold"], problem=c.get("problem")).correct, cases)
    plain, plain_s = run(lambda c: plain_math_verify(c["completion"], c["gold"]), cases)

    classes = sorted({c["class"] for c in cases})
    table = {}
    for name in classes:
        index = [i for i, c in enumerate(cases) if c["class"] == name]
        subset = [cases[i] for i in index]
        table[name] = {"ours": scores([ours[i] for i in index], subset),
                       "math_verify": scores([plain[i] for i in index], subset)}
    hand = [json.loads(line) for line in HAND_CHECKED_PATH.read_text().splitlines()]
    hand_ours = sum(answers_match(c["prediction"], c["reference"]) is c["correct"] for c in hand) / len(hand)
    hand_plain = sum(plain_math_verify(f"${c['prediction']}$", c["reference"]) is c["correct"] for c in hand) / len(hand)

    figures = {
        "bench": "grading", "cases": len(cases), "quick": bool(args.quick),
        "ours": {**scores(ours, cases), **timing(ours_s)},
        "math_verify": {**scores(plain, cases), **timing(plain_s)},
        "speedup_mean": round(statistics.fmean(plain_s) / statistics.fmean(ours_s), 2),
        "time_limit_s": DEFAULT_TIME_LIMIT_S,
        "grades_over_limit": sum(s > DEFAULT_TIME_LIMIT_S for s in ours_s),
        "hand_checked": {"n": len(hand), "ours": round(hand_ours, 4), "math_verify": round(hand_plain, 4)},
        "by_class": table,
    }

    print(f"{len(cases)} cases, {len(classes)} classes")
    print(f"{'class':14s} {'n':>5s} | {'ours agree':>10s} {'FP':>4s} {'FN':>4s} | {'m-v agree':>10s} {'FP':>4s} {'FN':>4s}")
    for name, row in table.items():
        o, m = row["ours"], row["math_verify"]
        print(f"{name:14s} {o['n']:5d} | {o['agreement']:10.1%} {o['fp']:4d} {o['fn']:4d} | "
              f"{m['agreement']:10.1%} {m['fp']:4d} {m['fn']:4d}")
    o, m = figures["ours"], figures["math_verify"]
    print(f"{'all':14s} {o['n']:5d} | {o['agreement']:10.1%} {o['fp']:4d} {o['fn']:4d} | "
          f"{m['agreement']:10.1%} {m['fp']:4d} {m['fn']:4d}")
    print(f"ms per grade: ours mean {o['mean_ms']:.2f} p95 {o['p95_ms']:.2f} max {o['max_ms']:.0f}; "
          f"math-verify mean {m['mean_ms']:.2f} p95 {m['p95_ms']:.2f} max {m['max_ms']:.0f}; "
          f"{figures['speedup_mean']:.1f}x; grades over the {DEFAULT_TIME_LIMIT_S:.0f} s limit: "
          f"{figures['grades_over_limit']}")
    print(f"hand-checked pairs ({len(hand)}): ours {hand_ours:.1%}, math-verify {hand_plain:.1%}")
    for verdict, case in zip(ours, cases, strict=True):
        if verdict != case["expected"]:
            print(f"  disagrees: {case['id']} expected {case['expected']}: {case['completion'][-80:]!r} "
                  f"vs {case['gold']!r} ({case['why']})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
