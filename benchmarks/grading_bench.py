"""Grading throughput of eval.grader vs plain math-verify on the same predictions, and their accuracy.

    python -m benchmarks.grading_bench [--quick] [--pairs N]

Predictions are built from real references (the first MATH-500 and GSM8K answers), seeded, in
three kinds a model produces: the reference as written, an equivalent rewrite (`\\dfrac`, `.0`,
thousands commas, units, degrees, spacing), and a wrong answer (another problem's reference).
Both graders see the same (prediction, reference) strings, in the same process:

- plain math-verify: `verify(parse(gold), parse(pred))`;
- eval.grader.answers_match: cheap normalised checks first, math-verify only when they cannot decide.

Also reported: agreement of each grader with the intended verdict on these pairs, and with the
hand-checked verdicts of tests/grader_cases.jsonl. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from eval.benchmarks import load_benchmark
from eval.grader import answers_match

CASES_PATH = Path(__file__).resolve().parent.parent / "tests" / "grader_cases.jsonl"


def math_verify_alone(prediction: str, reference: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${reference}$"), parse(f"${prediction}$")))
    except Exception:  # a crash counts as "not equal", as a harness would score it
        return False


def equivalent_rewrite(reference: str, rng: random.Random) -> str:
    """A form of the reference a grader must accept: what models write instead of the key's form."""
    if re.fullmatch(r"-?\d+", reference):
        number = int(reference)
        return rng.choice([f"{number:,}", f"{number}.0", f"{number} units", f"\\text{{{number}}}",
                           f"{number}^\\circ", f"\\${number}"])
    rewrites = [reference.replace("\\frac", "\\dfrac"), f" {reference} ", reference.replace(" ", ""),
                f"\\text{{ }}{reference}"]
    return rng.choice(rewrites)


def build_pairs(n_pairs: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    """(prediction, reference, intended verdict): 40% verbatim, 30% rewritten, 30% wrong."""
    rng = random.Random(seed)
    references = [item.answer for name in ("math500", "gsm8k") for item in load_benchmark(name, n_pairs // 2)]
    pairs = []
    for index, reference in enumerate(references[:n_pairs]):
        kind = rng.random()
        if kind < 0.4:
            pairs.append((reference, reference, True))
        elif kind < 0.7:
            pairs.append((equivalent_rewrite(reference, rng), reference, True))
        else:
            other = references[(index + rng.randrange(1, len(references))) % len(references)]
            pairs.append((other, reference, other == reference))
    return pairs


def timed(grader, pairs: list[tuple[str, str, bool]]) -> tuple[float, list[bool]]:
    started = time.perf_counter()
    verdicts = [grader(prediction, reference) for prediction, reference, _ in pairs]
    return time.perf_counter() - started, verdicts


def agreement(verdicts: list[bool], expected: list[bool]) -> float:
    return sum(v == e for v, e in zip(verdicts, expected, strict=True)) / len(expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 pairs instead of 1,000")
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()
    pairs = build_pairs(200 if args.quick else args.pairs)
    expected = [verdict for _, _, verdict in pairs]
    math_verify_alone("\\frac{1}{2}", "0.5")  # imports and the LaTeX parser's start-up, outside the timing
    answers_match("\\frac{1}{2}", "0.5")
    rounds = [(timed(answers_match, pairs), timed(math_verify_alone, pairs)) for _ in range(2)]
    ours_s, ours = min((r[0] for r in rounds), key=lambda r: r[0])  # best of two, interleaved: the
    plain_s, plain = min((r[1] for r in rounds), key=lambda r: r[0])  # machine is shared
    cases = [json.loads(line) for line in CASES_PATH.read_text().splitlines()]
    case_pairs = [(c["prediction"], c["reference"], c["correct"]) for c in cases]
    case_expected = [c["correct"] for c in cases]
    _, ours_cases = timed(answers_match, case_pairs)
    _, plain_cases = timed(math_verify_alone, case_pairs)
    missed = [f"{p!r} vs {r!r} (want {e})" for (p, r, e), v in zip(case_pairs, plain_cases, strict=True) if v != e]

    print(f"{len(pairs)} pairs: eval.grader {ours_s:.2f} s ({len(pairs) / ours_s:.0f}/s), "
          f"plain math-verify {plain_s:.2f} s ({len(pairs) / plain_s:.0f}/s)")
    print(f"agreement with intended verdicts: eval.grader {agreement(ours, expected):.3f}, "
          f"math-verify {agreement(plain, expected):.3f}")
    print(f"hand-checked set ({len(cases)} cases): eval.grader {agreement(ours_cases, case_expected):.3f}, "
          f"math-verify alone {agreement(plain_cases, case_expected):.3f}; math-verify alone misses:")
    for line in missed:
        print("   ", line)
    print(json.dumps({
        "bench": "grading",
        "pairs": len(pairs),
        "grader_per_s": round(len(pairs) / ours_s, 1),
        "math_verify_per_s": round(len(pairs) / plain_s, 1),
        "ratio_vs_math_verify": round(plain_s / ours_s, 2),
        "grader_agreement_intended": round(agreement(ours, expected), 4),
        "math_verify_agreement_intended": round(agreement(plain, expected), 4),
        "hand_checked_cases": len(cases),
        "grader_agreement_hand_checked": round(agreement(ours_cases, case_expected), 4),
        "math_verify_agreement_hand_checked": round(agreement(plain_cases, case_expected), 4),
    }))


if __name__ == "__main__":
    main()
