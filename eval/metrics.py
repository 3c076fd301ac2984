"""Accuracy statistics: pass@k, maj@k and a 95% interval for the accuracy of a benchmark run.

pass@k uses the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models Trained
on Code"): with n samples of which c are correct, 1 - C(n-c, k) / C(n, k). maj@k takes the most
common extracted answer among the first k samples (answers grouped by their normalised form, ties
broken by first appearance) and scores whether that answer is correct.

The interval is Wilson's score interval when every problem scores 0 or 1 (greedy pass@1): unlike
the normal approximation it stays inside [0, 1] and is not empty at 0% or 100%, which matters for
small models and small subsets. With several samples per problem the per-problem scores are
fractions, so a percentile bootstrap over problems (fixed seed) is used instead.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

from eval.grader import normalize_answer

Z_95 = 1.959963984540054


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the most common (normalised) answer is a correct one; no answer never wins."""
    keys = [normalize_answer(a)[0] if a else None for a in answers]
    counts = Counter(key for key in keys if key)
    if not counts:
        return False
    top = max(counts.values())
    winner = next(key for key in keys if key and counts[key] == top)
    return correct[keys.index(winner)]


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds, no rounding noise
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def bootstrap_interval(scores: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    if not scores:
        return 0.0, 1.0
    rng = random.Random(seed)
    n = len(scores)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def accuracy_interval(scores: Sequence[float]) -> tuple[float, float]:
    """95% interval of the mean of per-problem scores (Wilson if all are 0/1, else bootstrap)."""
    if all(s in (0.0, 1.0) for s in scores):
        return wilson_interval(int(sum(scores)), len(scores))
    return bootstrap_interval(scores)
