"""Deduplication of input problems and of output traces, by a hash of their normalised text.

Normalisation is decontamination's (`tasks.stages.decontam.normalize`): case, spacing, punctuation and
LaTeX spelling do not make two problems different, numbers and operators do. The first occurrence is
kept, in input order, and every dropped row names the row it duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
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
