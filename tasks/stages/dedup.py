"""Deduplication of input problems and of output traces, by a hash of their normalised text, and
near-identity of one problem's solutions.

Normalisation is decontamination's (`tasks.stages.decontam.normalize`): case, spacing, punctuation and
LaTeX spelling do not make two problems different, numbers and operators do. The first occurrence is
kept, in input order, and every dropped row names the row it duplicates.

Near-identity (`near_duplicates`) compares the solutions of one problem's samples: the Jaccard
similarity of their sets of normalised word 3-grams. It is computed exactly rather than estimated
with MinHash (datasketch): MinHash pays off when millions of documents are searched for similar
pairs through LSH buckets, but here each solution meets only the other few (k <= 64) solutions of its
own problem, where building one 128-permutation signature per text costs more than intersecting the
two sets, and the exact value has no estimation error near the threshold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

from pydantic import BaseModel

from tasks.stages.decontam import normalize
from tasks.records import NLTraceRecord, ProblemRecord

RowT = TypeVar("RowT")


class Duplicate(BaseModel):
    id: str
    duplicate_of: str
    kind: Literal["problem", "trace"]
    same_answer: bool  # False flags conflicting reference answers for one problem: worth a look


def text_key(text: str) -> str:
    """A short stable hash of the normalised text (the same across runs and machines)."""
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).hexdigest()


def _dedup(rows: Sequence[RowT], kind: Literal["problem", "trace"], row_id: Callable[[RowT], str],
           text: Callable[[RowT], str], answer: Callable[[RowT], str]) -> tuple[list[RowT], list[Duplicate]]:
    first: dict[str, RowT] = {}
    kept: list[RowT] = []
    duplicates: list[Duplicate] = []
    for row in rows:
        key = text_key(text(row))
        original = first.get(key)
        if original is None:
            first[key] = row
            kept.append(row)
        else:
            duplicates.append(Duplicate(id=row_id(row), duplicate_of=row_id(original), kind=kind,
                                        same_answer=normalize(answer(row)) == normalize(answer(original))))
    return kept, duplicates


def dedup_problems(problems: Sequence[ProblemRecord]) -> tuple[list[ProblemRecord], list[Duplicate]]:
    """Unique problems (first occurrence kept) and one `Duplicate` per dropped problem."""
    return _dedup(problems, "problem", lambda p: p.id, lambda p: p.problem, lambda p: p.answer)


def dedup_traces(traces: Sequence[NLTraceRecord]) -> tuple[list[NLTraceRecord], list[Duplicate]]:
    """Drop rephrased solutions whose text repeats an earlier one.

    Keyed on the solution alone: two different problems cannot share a worked solution unless the
    rephraser ignored its problem (or the problems are duplicates), and either way one copy is enough.
    """
    return _dedup(traces, "trace", lambda t: t.problem_id, lambda t: t.solution,
                  lambda t: t.final_answer or "")


def shingles(text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    """The normalised text's word `size`-grams (the whole text as one gram when it is shorter)."""
    words = normalize(text).split()
    return frozenset(tuple(words[i:i + size]) for i in range(max(1, len(words) - size + 1)))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(texts: Iterable[tuple[RowT, str]], threshold: float) -> list[tuple[RowT, RowT]]:
    """(dropped, kept) pairs among `(row, text)`: each text is kept unless its word 3-grams overlap an already
    kept text's by `threshold` (Jaccard) or more. Shorter texts are considered first, so the shorter one is kept."""
    kept: list[tuple[RowT, frozenset]] = []
    dropped: list[tuple[RowT, RowT]] = []
    for row, text in sorted(texts, key=lambda item: len(item[1])):  # stable: equal lengths keep their order
        grams = shingles(text)
        twin = next((other for other, other_grams in kept if jaccard(grams, other_grams) >= threshold), None)
        if twin is None:
            kept.append((row, grams))
        else:
            dropped.append((row, twin))
    return dropped
