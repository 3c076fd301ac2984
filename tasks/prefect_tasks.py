"""Prefect task wrappers: retries, caching and run names around the pure stage functions.

Caching: every LLM task is keyed on its inputs (the row, the model settings, the stage config
with its prompt version resolved) plus the wrapper's source, and its result is persisted, so a
re-run (or a run resumed after a crash) pays for nothing already done. The flow points result
storage at the run's output dir with `.with_options(result_storage=...)`.

Retries: LLM errors are retried inside litellm (see tasks/llm.py) and end as failed rows, so
these tasks retry only once, for faults outside the LLM call (a sandbox worker dying mid-call).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.logging import get_run_logger

from tasks.llm import LLMSettings
from tasks.records import NLTraceRecord, ProblemRecord, ToolCallRecord, TraceRecord, TranslationRecord
from tasks.rephrase import RephraseConfig, rephrase_trace
from tasks.solve import SolveConfig, SolveOutcome, solve_problem
from tasks.translate import TranslateConfig, translate_tool_call

LLM_TASK_OPTIONS = dict(
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    retries=1,
    retry_delay_seconds=2,
)


@task(name="solve", task_run_name="solve-{problem.id}", **LLM_TASK_OPTIONS)
def solve_task(problem: ProblemRecord, settings: LLMSettings, config: SolveConfig) -> SolveOutcome:
    outcome = solve_problem(problem, settings, config)
    trace = outcome.trace
    get_run_logger().info(
        "%s: %s, answer=%r (correct=%s), %d tool calls, %d turns",
        problem.id, trace.status, trace.final_answer, trace.answer_correct, trace.n_tool_calls, trace.n_turns,
    )
    return outcome


@task(name="translate", task_run_name="translate-{call.problem_id}-{call.call_index}", **LLM_TASK_OPTIONS)
def translate_task(call: ToolCallRecord, settings: LLMSettings, config: TranslateConfig) -> TranslationRecord:
    row = translate_tool_call(call, settings, config)
    get_run_logger().info("%s call %d: faithful=%s via %s after %d attempt(s)%s", call.problem_id, call.call_index,
                          row.faithful, row.check_method, row.attempts, f" ({row.reason})" if row.reason else "")
    return row


@task(name="rephrase", task_run_name="rephrase-{trace.problem_id}", **LLM_TASK_OPTIONS)
def rephrase_task(trace: TraceRecord, calls: list[ToolCallRecord], translations: list[TranslationRecord],
                  settings: LLMSettings, config: RephraseConfig) -> NLTraceRecord:
    row = rephrase_trace(trace, calls, translations, settings, config)
    get_run_logger().info("%s: rephrased, %d chars, answer=%r", trace.problem_id, len(row.solution), row.final_answer)
    return row
