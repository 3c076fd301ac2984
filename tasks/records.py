"""Row records of every Parquet stage, and the Arrow schemas derived from them.

Each stage file holds rows of exactly one record type:

    problems.parquet      ProblemRecord
    traces.parquet        TraceRecord        (one solver sample of a problem: the whole TIR trace)
    tool_calls.parquet    ToolCallRecord     (one row per tool call inside a trace)
    translations.parquet  TranslationRecord  (one back-translation per tool call)
    nl_traces.parquet     NLTraceRecord      (one rephrased natural-language solution per trace)
    filter_report.parquet FilterDecision     (kept or dropped, with the reason, per trace)
    sft.parquet           SFTRecord          (chat messages, loadable by `datasets`)

A problem may be solved several times (`--samples-per-problem`): a trace is identified by
(`problem_id`, `sample_index`), and every per-trace row carries both (`trace_key`). Sample 0 is
the one a single-sample run draws, so such a run's rows are those of earlier versions plus the
`sample_index` column.

The Arrow schema is derived from the pydantic model so there is one definition per record;
`arrow_schema(Model)` is what `parquet_io` writes with.
"""

from __future__ import annotations

import json
import types
import typing
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import pyarrow as pa
from pydantic import BaseModel, Field

SCHEMA_VERSION = "1"
RowT = TypeVar("RowT")


class Lineage(BaseModel):
    """Which model and which prompt produced a row (distilabel-style lineage, on every LLM row)."""

    model: str
    prompt_version: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_error: str | None = None  # the call that failed for good (after retries), if one did: the row is a failed row
    llm_calls: int = 0  # completions that answered (a failed call has no reply to count): the yield report's unit


# Where a problem's answer comes from: its input row ("reference"), a majority vote of the solver's
# samples ("majority", tasks/stages/sampling.py), or nowhere yet / no consensus ("none": an input row
# without an answer, before its samples were voted on or when they did not agree).
AnswerSource = Literal["reference", "majority", "none"]


class ProblemRecord(BaseModel):
    id: str
    problem: str
    answer: str  # "" when the input row had none: the samples' majority vote may label it
    source: str = ""
    level: str | None = None
    answer_source: AnswerSource = "reference"
    answer_agreement: float | None = None  # majority votes: the share of the samples that agree with the label


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class TraceRecord(Lineage):
    """One Solver-agent episode: plan, every turn, and the final boxed answer."""

    problem_id: str
    sample_index: int = 0
    problem: str
    reference_answer: str
    plan: str
    messages_json: str = Field(description="The whole conversation as a JSON list of {role, content}.")
    final_answer: str | None
    answer_correct: bool
    n_tool_calls: int
    n_turns: int
    status: Literal["answered", "no_answer", "error"]
    error: str | None = None
    tool_protocol: Literal["functions", "code"]


class ToolCallRecord(Lineage):
    """One executed tool call. `code` is what ran in the sandbox, for both protocols."""

    problem_id: str
    sample_index: int = 0
    call_index: int
    tool_protocol: Literal["functions", "code"]
    tool_name: str
    arguments_json: str
    code: str
    output: str
    error: str | None
    status: str
    duration_s: float
    turn_index: int = 0
    isolation: str | None = None  # the sandbox layers the call ran under ("namespaces+seccomp"); None: it never ran


# How a back-translation was checked against the tool's real output (see tasks/stages/translate.py).
CheckMethod = Literal["exact", "math_verify", "sympy", "judge", "arithmetic", "not_checkable", "none"]


class TranslationRecord(Lineage):
    """A natural-language re-derivation of one tool call, checked against the tool's real output."""

    problem_id: str
    sample_index: int = 0
    call_index: int
    tool_name: str
    tool_output: str
    explanation: str
    derived_answer: str | None
    faithful: bool
    check_method: CheckMethod
    attempts: int
    reason: str | None = None


class NLTraceRecord(Lineage):
    """The rephrased, tool-free solution of one trace."""

    problem_id: str
    sample_index: int = 0
    problem: str
    reference_answer: str
    solution: str
    final_answer: str | None
    attempts: int = 1


class FilterDecision(BaseModel):
    problem_id: str
    sample_index: int = 0
    kept: bool
    drop_reason: str | None
    answer_correct: bool
    all_calls_faithful: bool
    n_tool_calls: int
    n_faithful_calls: int
    leftover_tool_mentions: int
    arithmetic_errors: int = 0
    solution_chars: int


class SFTRecord(BaseModel):
    """A training example in chat form: `datasets.load_dataset("parquet", ...)` reads it as is."""

    id: str
    messages: list[ChatMessage]
    source: str
    teacher_model: str
    prompt_versions_json: str
    reference_answer: str
    answer_source: AnswerSource = "reference"  # "majority": the answer is the solver samples' vote, not a reference


def trace_key(row: TraceRecord | ToolCallRecord | TranslationRecord | NLTraceRecord | FilterDecision) -> tuple[str, int]:
    """What identifies a trace: the problem and which of its samples (every per-trace row carries both)."""
    return row.problem_id, row.sample_index


def fields_of(row: BaseModel, *names: str) -> dict[str, Any]:
    """The trace's key and the `names` fields of `row`: what a stage's output row carries over from its input."""
    return row.model_dump(include={"problem_id", "sample_index", *names})


def rows_by_trace(rows: Iterable[RowT]) -> dict[tuple[str, int], list[RowT]]:
    """Per-trace rows (tool calls, translations, ...) grouped by their trace, in their order; absent traces read []."""
    grouped: dict[tuple[str, int], list[RowT]] = defaultdict(list)
    for row in rows:
        grouped[trace_key(row)].append(row)  # type: ignore[arg-type]
    return grouped


STAGE_RECORDS: dict[str, type[BaseModel]] = {
    "problems": ProblemRecord,
    "traces": TraceRecord,
    "tool_calls": ToolCallRecord,
    "translations": TranslationRecord,
    "nl_traces": NLTraceRecord,
    "filter_report": FilterDecision,
    "sft": SFTRecord,
}


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """Map a field annotation to (arrow type, nullable)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation!r}")
        return _arrow_type(args[0])[0], True
    if origin is Literal:
        return pa.string(), False
    if origin is list:
        (item,) = typing.get_args(annotation)
        return pa.list_(_arrow_type(item)[0]), False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([_arrow_field(n, f.annotation) for n, f in annotation.model_fields.items()]), False
    simple = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    if annotation in simple:
        return simple[annotation], False
    raise TypeError(f"no Arrow type for {annotation!r}")


def _arrow_field(name: str, annotation: Any) -> pa.Field:
    arrow_type, nullable = _arrow_type(annotation)
    return pa.field(name, arrow_type, nullable=nullable)


def arrow_schema(record: type[BaseModel]) -> pa.Schema:
    """The Arrow schema of a record type, with the record name and schema version as metadata."""
    fields = [_arrow_field(name, f.annotation) for name, f in record.model_fields.items()]
    return pa.schema(fields, metadata={"record": record.__name__, "schema_version": SCHEMA_VERSION})


def messages_to_json(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, ensure_ascii=False)
