"""The evaluation benchmarks: one registry entry each, loaded offline from `eval/data/` or from the Hub.

Every benchmark becomes a list of `BenchmarkItem(id, problem, answer, benchmark)` whatever its file
looks like, so the harness, the decontamination check and the filter never see per-file field names.

Offline copies (`eval/data/<name>/test.jsonl`, sources and licences in `eval/data/SOURCES.md`) are
kept byte-identical to their sources; their known defects are fixed here, at load time.

Subsets: `limit=N` takes the first N items in file order (the same N problems on every machine);
`seed=s` instead takes a seeded random sample of N, kept in file order. Neither changes ids, so
results of different runs can be joined on `id`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

DATA_DIR = Path(__file__).resolve().parent / "data"

DEFAULT_PROMPT = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
# Per-benchmark variants: the default plus what the answer must look like, so a correct solution is not
# lost to "18 dollars" (GSM8K) or to a fraction where AIME only has integers.
NUMBER_ONLY_PROMPT = DEFAULT_PROMPT + " The final answer is a number only, without units."
AIME_PROMPT = DEFAULT_PROMPT + " The answer is an integer from 0 to 999."


class BenchmarkItem(BaseModel):
    id: str
    problem: str
    answer: str
    benchmark: str


def _gsm8k_answer(solution: str) -> str:
    """GSM8K solutions end with '#### <number>'; thousands commas are dropped ('1,600' -> '1600')."""
    _, sep, number = solution.rpartition("####")
    if not sep:
        raise ValueError(f"gsm8k answer has no '#### <number>' line: {solution[-80:]!r}")
    return number.strip().replace(",", "")


def _number_string(value: Any) -> str:
    """AMC 2023 stores answers as floats (27.0): write integers without the '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _olympiad_answer(final_answer: Any) -> str:
    """OlympiadBench's final_answer is a list of LaTeX strings like ['$69$,$84$']: one plain string."""
    parts = final_answer if isinstance(final_answer, list) else [final_answer]
    return ", ".join(str(p).replace("$", "").strip() for p in parts)


def _repair_escapes(text: str) -> str:
    """Undo LaTeX escapes that a JSON writer turned into control characters (aime25 rows 18, 19, 27).

    `\\f` in `\\frac` became a form feed and `\\t` in `\\triangle` a tab. Other tabs in these files
    are genuine, so only the tab directly followed by 'riangle' is repaired.
    """
    return text.replace("\x0c", "\\f").replace("\triangle", "\\triangle")


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives (offline file, Hub dataset) and how its rows map to a BenchmarkItem."""

    name: str
    offline_file: str
    hub_id: str
    hub_split: str
    problem_field: str
    answer_field: str
    id_field: str | None = None
    hub_config: str | None = None
    answer_from: Callable[[Any], str] = _number_string
    prompt_template: str = DEFAULT_PROMPT
    hub_fields: dict[str, str] = field(default_factory=dict)  # Hub column -> offline field, where they differ

    def item(self, row: dict[str, Any], index: int) -> BenchmarkItem:
        raw_id = row.get(self.id_field) if self.id_field else None
        return BenchmarkItem(
            id=f"{self.name}/{raw_id if raw_id is not None else index}",
            problem=_repair_escapes(str(row[self.problem_field])),
            answer=self.answer_from(row[self.answer_field]),
            benchmark=self.name,
        )


REGISTRY: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("math500", "math500/test.jsonl", "HuggingFaceH4/MATH-500", "test",
                      "problem", "answer", id_field="unique_id"),
        BenchmarkSpec("gsm8k", "gsm8k/test.jsonl", "openai/gsm8k", "test",
                      "question", "answer", hub_config="main", answer_from=_gsm8k_answer,
                      prompt_template=NUMBER_ONLY_PROMPT),
        BenchmarkSpec("aime24", "aime24/test.jsonl", "HuggingFaceH4/aime_2024", "train",
                      "problem", "answer", id_field="id", prompt_template=AIME_PROMPT),
        BenchmarkSpec("aime25", "aime25/test.jsonl", "math-ai/aime25", "test",
                      "problem", "answer", prompt_template=AIME_PROMPT),
        BenchmarkSpec("amc23", "amc23/test.jsonl", "math-ai/amc23", "test",
                      "problem", "answer", id_field="id", hub_fields={"question": "problem"}),
        BenchmarkSpec("olympiadbench", "olympiadbench/test.jsonl", "Hothan/OlympiadBench", "train",
                      "question", "final_answer", id_field="id", hub_config="OE_TO_maths_en_COMP",
                      answer_from=_olympiad_answer),
    )
}
BENCHMARK_NAMES: tuple[str, ...] = tuple(REGISTRY)


def _spec(name: str) -> BenchmarkSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARK_NAMES)}")
    return REGISTRY[name]


def _offline_rows(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    path = DATA_DIR / spec.offline_file
    if not path.exists():
        raise FileNotFoundError(f"{path}: offline copy of {spec.name} missing; restore eval/data/ from git")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = {spec.problem_field, spec.answer_field} - row.keys()
            if missing:
                raise ValueError(f"{path} line {line_no}: missing field(s) {sorted(missing)}")
            rows.append(row)
    return rows


def _hub_rows(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    """The same benchmark from the Hugging Face Hub (needs network; not used by tests)."""
    from datasets import load_dataset

    dataset = load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    rows = []
    for row in dataset:
        row = dict(row)
        for hub_column, offline_field in spec.hub_fields.items():
            if offline_field not in row and hub_column in row:
                row[offline_field] = row[hub_column]
        rows.append(row)
    return rows


def load_benchmark(
    name: str,
    limit: int | None = None,
    *,
    source: Literal["offline", "hub"] = "offline",
    seed: int | None = None,
) -> list[BenchmarkItem]:
    """Load a benchmark as BenchmarkItems: all of it, its first `limit` items, or a seeded sample."""
    spec = _spec(name)
    rows = _offline_rows(spec) if source == "offline" else _hub_rows(spec)
    items = [spec.item(row, index) for index, row in enumerate(rows)]
    if limit is None or limit >= len(items):
        return items
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if seed is None:
        return items[:limit]
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def prompt_for(item: BenchmarkItem, template: str | None = None) -> str:
    """The user message for one problem: the benchmark's prompt template unless one is given."""
    template = template or _spec(item.benchmark).prompt_template
    return template.format(problem=item.problem)

