"""The records an evaluation writes and reads: config, per-completion rows, summaries, the report's paths.

They live apart from the harness so that `eval/report.py` (which renders them) and
`eval/harness.py` (which produces them) both import this module and not each other. The
per-problem Parquet files are read and written here too, with an Arrow schema derived from
`EvalRecord`, so eval needs nothing of the pipeline's own Parquet helpers.
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from eval.generation import GenerationParams


class EvalConfig(GenerationParams):
    """Everything that decides what is measured, besides the models and the benchmark names."""

    limit: int | None = Field(None, ge=1, description="first N problems of each benchmark (all if None)")
    subset_seed: int | None = Field(None, description="with limit: a seeded random N instead of the first N")
    source: Literal["offline", "hub"] = "offline"
    prompt_template: str | None = Field(None, description="'{problem}' template; default: each benchmark's own")
    system_prompt: str | None = None
    progress: bool = Field(False, description="tqdm progress bars (the CLI turns them on)")


class EvalRecord(BaseModel):
    """One graded completion, with the lineage needed to reproduce it."""

    benchmark: str
    problem_id: str
    label: str
    model: str
    adapter: str | None
    backend: str
    prompt: str
    reference_answer: str
    sample_index: int
    completion: str
    extracted_answer: str | None
    correct: bool
    grade_method: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float
    batch_size: int
    seed: int
    temperature: float
    top_p: float
    max_new_tokens: int


class BenchmarkSummary(BaseModel):
    label: str
    model: str
    adapter: str | None
    benchmark: str
    n_problems: int
    samples_per_problem: int
    accuracy: float = Field(description="mean pass@1 over problems")
    ci_low: float
    ci_high: float
    pass_at: dict[int, float]
    maj_at: dict[int, float]
    mean_completion_tokens: float
    no_answer_rate: float
    truncated_rate: float = Field(description="share of completions that hit max_new_tokens")
    generation_s: float
    tokens_per_s: float
    per_problem_path: str


class EvalReport(BaseModel):
    output_dir: Path
    summaries: list[BenchmarkSummary]
    summary_path: Path
    report_path: Path
    chart_path: Path


_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_field(name: str, annotation: object) -> pa.Field:
    """`X` is a required column, `X | None` a nullable one; EvalRecord holds scalars only."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return pa.field(name, _ARROW_TYPES[inner], nullable=True)
    return pa.field(name, _ARROW_TYPES[annotation], nullable=False)


EVAL_RECORD_SCHEMA = pa.schema([_arrow_field(n, f.annotation) for n, f in EvalRecord.model_fields.items()],
                               metadata={"record": "EvalRecord"})


def write_eval_records(records: list[EvalRecord], path: Path) -> Path:
    """Write to a temporary file and rename it over `path`: a crash leaves the old file or none, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([r.model_dump(mode="python") for r in records], schema=EVAL_RECORD_SCHEMA)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_eval_records(path: Path) -> list[EvalRecord]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: per-problem file missing; evaluate that label and benchmark first")
    table = pq.read_table(path)
    if not table.schema.remove_metadata().equals(EVAL_RECORD_SCHEMA.remove_metadata()):
        raise ValueError(f"{path}: columns do not match EvalRecord (written by another version of tool-distill); "
                         f"re-run the evaluation into a fresh --output-dir.\nfound:    {table.schema}")
    return [EvalRecord.model_validate(row) for row in table.to_pylist()]
