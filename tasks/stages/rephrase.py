"""Rephrase agent: merge plan, reasoning and hand explanations into one tool-free solution.

The draft handed to the model is built from structured rows, not by text surgery on the raw
trace: each assistant turn keeps its prose with code fences removed, and each successful tool call
of that turn is replaced by its checked hand derivation. Failed calls (and the reflection they
caused) carry no explanation, so the final solution tells the straight path.

A solution the filter would drop for its own faults (no boxed answer, the wrong one, false
arithmetic, tool talk left, a loop: `filter.solution_drop_reason`) is asked for again, sampled
(attempt N asks for seed N), up to `max_attempts` times: the draft was paid for already, and a
second sample usually fixes what the first got wrong. Transport failures are not retried here:
litellm's Router has retried them (tasks/llm/client.py).
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel

from eval.grader import extract_final_answer
from tasks.stages.filter import solution_drop_reason
from tasks.llm import LLMCallError, LLMSettings, Usage, complete
from tasks.stages.config import RephraseConfig
from tasks.prompt_store import load_prompt
from tasks.records import NLTraceRecord, ToolCallRecord, TraceRecord, TranslationRecord, fields_of

_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def build_draft(trace: TraceRecord, calls: list[ToolCallRecord], translations: list[TranslationRecord]) -> str:
    """The solver's turns in order, with every successful tool call replaced by its explanation."""
    by_call = {t.call_index: t for t in translations}
    parts = [f"Plan: {trace.plan}"] if trace.plan else []
    assistant_turn = -1
    for message in json.loads(trace.messages_json):
        if message["role"] != "assistant":
            continue
        assistant_turn += 1
        if trace.plan and assistant_turn == 0:
            continue  # the plan is already at the top
        prose = _FENCE.sub("", message.get("content") or "").strip()
        if prose:
            parts.append(prose)
        for call in (c for c in calls if c.turn_index == assistant_turn and c.status == "ok"):
            translation = by_call.get(call.call_index)
            if translation and translation.faithful:
                parts.append(translation.explanation)
    return "\n\n".join(parts)


def end_at_final_answer(solution: str) -> str:
    """Cut whatever follows the line of the last `\\boxed{}`: the solution must end with its answer.

    Small teachers keep writing after the answer ("The answer is 1024." twenty times over, or remarks
    about "the original solution"); that tail would be trained on as if it were part of a solution.
    """
    last_box = max(solution.rfind("\\boxed"), solution.rfind("\\fbox"))
    if last_box < 0:
        return solution
    line_end = solution.find("\n", last_box)
    if line_end < 0:
        return solution
    closer = re.match(r"\s*(\$\$|\\\])", solution[line_end:])  # the box sat in a display block: close it
    return solution[: line_end + (closer.end() if closer else 0)].rstrip()


def rephrase_trace(trace: TraceRecord, calls: list[ToolCallRecord], translations: list[TranslationRecord],
                   settings: LLMSettings, config: RephraseConfig) -> NLTraceRecord:
    """Rephrase one trace, again while the solution fails the filter. A failed call yields an empty solution."""
    prompt = load_prompt("rephraser", config.prompt_version)
    messages = [{"role": "system", "content": prompt.render("system")},
                {"role": "user", "content": prompt.render("user", problem=trace.problem,
                                                          draft=build_draft(trace, calls, translations))}]
    solution, final_answer, usage, attempts, llm_error = "", None, Usage(), 0, None
    try:
        for attempt in range(config.max_attempts):
            attempts = attempt + 1
            reply = complete(messages, settings, max_tokens=config.max_tokens, seed=attempt,
                             temperature=None if attempt == 0 else config.retry_temperature)
            usage.add(reply)
            solution = end_at_final_answer(reply.content.strip())
            final_answer = extract_final_answer(solution) if solution else None
            if solution_drop_reason(solution, final_answer, trace.reference_answer, trace.problem) is None:
                break
    except LLMCallError as exc:
        llm_error = str(exc)
        if attempts == 1:  # a retry that failed leaves the last solution, and the reason it was dropped
            solution, final_answer = "", None
    return NLTraceRecord(
        **fields_of(trace, "problem", "reference_answer"),
        solution=solution,
        final_answer=final_answer,
        attempts=attempts,
        model=settings.model,
        prompt_version=prompt.id,
        llm_error=llm_error,
        **usage.model_dump(),
    )
