"""The per-item work of each distill stage: the pure stage function plus one debug line per item.

`tasks/stage_map.py` runs these in chunked Prefect tasks (retries, per-item and per-stage caching,
concurrency) and logs progress per chunk; these per-item lines (level DEBUG, as they cost ~1.3 ms
each, more than a tenth of an LLM call's CPU) land in the chunk's task run with
`PREFECT_LOGGING_LEVEL=DEBUG`. Every outcome is also a row of the stage's Parquet file. LLM errors are retried
inside litellm (tasks/llm.py) and end as failed rows, so an item raises only for faults outside
the LLM call (a sandbox worker dying mid-call), which the chunk's one Prefect retry covers.
"""

from __future__ import annotations

from prefect.logging import get_run_logger

from tasks.llm import LLMSettings
from tasks.records import NLTraceRecord, ProblemRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.rephrase import RephraseConfig, rephrase_trace
from tasks.solve import SolveConfig, SolveOutcome, solve_problem
from tasks.translate import TranslateConfig, translate_tool_call


def solve_item(problem: ProblemRecord, settings: LLMSettings, config: SolveConfig) -> SolveOutcome:
    outcome = solve_problem(problem, settings, config)
    trace = outcome.trace
    get_run_logger().debug(
        "%s: %s, answer=%r (correct=%s), %d tool calls, %d turns",
        problem.id, trace.status, trace.final_answer, trace.answer_correct, trace.n_tool_calls, trace.n_turns,
    )
    return outcome


def translate_item(call: ToolCallRecord, settings: LLMSettings, config: TranslateConfig) -> TranslationRecord:
    row = translate_tool_call(call, settings, config)
    get_run_logger().debug("%s call %d: faithful=%s via %s after %d attempt(s)%s", call.problem_id, call.call_index,
                          row.faithful, row.check_method, row.attempts, f" ({row.reason})" if row.reason else "")
    return row


def rephrase_item(trace: TraceRecord, calls: list[ToolCallRecord], translations: list[TranslationRecord],
                  settings: LLMSettings, config: RephraseConfig) -> NLTraceRecord:
    row = rephrase_trace(trace, calls, translations, settings, config)
    get_run_logger().debug("%s: rephrased, %d chars, answer=%r", trace.problem_id, len(row.solution), row.final_answer)
    return row
