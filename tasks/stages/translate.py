"""Translator agent: back-translate one tool call into a by-hand derivation, and check it.

The model sees what the tool was asked (the function's docstring and arguments, or the code) but
not its output, derives the result by hand and boxes it. The boxed result is then compared with the
tool's real output, so an explanation that reaches a different value never enters the dataset
(the paper's released judge accepted every explanation). Order of checks:

1. exact match after whitespace normalisation,
2. the project's grader (math-verify with its sympy fallback) on the raw output,
3. the output parsed by SymPy and printed as LaTeX, graded again (tool outputs are SymPy syntax),
4. only when the output is not a SymPy expression at all: an LLM judge that must answer
   exactly \\boxed{True} or \\boxed{False} after reading the derivation.

A mismatch is retried (up to `max_attempts`) with feedback that the previous result was wrong,
sampling at a non-zero temperature so the retry can differ (in guided mode: a fresh sample). Attempt
N asks for seed N, so a re-run draws the same samples where the provider honours seeds.

`show_tool_output=True` ("guided" mode) shows the model the real output and asks it to explain by
hand how that result comes about. That is weaker evidence (the box can be copied), so a guided
derivation must also pass `find_equalities`: every numeric equality it writes is proved
true, and it must write at least one. Small teachers need it: the embedded 135M model reached 0 of
9 tool results blind (it writes "12 * 7 = 90"), so the demo runs guided; real teachers run blind.
"""

from __future__ import annotations

import re
from typing import Any

import sympy
from pydantic import BaseModel

from eval.grader import answers_match, clean_sentence_answer, extract_boxed
from tasks.stages.arithmetic_check import find_equalities
from tasks.llm import LLMCallError, LLMReply, LLMSettings, Usage, complete
from tasks.stages.config import TranslateConfig
from tasks.prompt_store import PromptTemplate, load_prompt
from tasks.records import CheckMethod, ToolCallRecord, TranslationRecord, fields_of
from tool_sandbox.sympy_toolkit import tool_description

class Check(BaseModel):
    faithful: bool
    method: CheckMethod
    reason: str | None = None


_RESULT_IS = re.compile(r"\b(?:result|output|answer|prints)\s*(?:is|:|=)\s*:?\s*(.+?)(?:\n|$)", re.IGNORECASE)


def _normalise(text: str) -> str:
    return "".join(text.split()).strip("$.")


def _output_candidates(tool_output: str) -> list[str]:
    """The whole output; its last line (code that prints intermediate values, then the result); and
    a printed list/tuple/set without its brackets (`[-7, 7]` is what a derivation writes as `-7, 7`)."""
    stripped = tool_output.strip()
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    candidates = [stripped, lines[-1]] if lines else [stripped]
    candidates += [c[1:-1].strip() for c in candidates if len(c) > 2 and c[0] + c[-1] in ("[]", "()", "{}")]
    return list(dict.fromkeys(candidates))


def _as_latex(expression: str) -> str | None:
    try:
        return sympy.latex(sympy.sympify(expression, evaluate=False))
    except (sympy.SympifyError, SyntaxError, TypeError, ValueError, AttributeError, RecursionError):
        return None


def derived_result(explanation: str) -> str | None:
    """The result a derivation reached: its last `\\boxed{}`, else its last "the result is X" sentence.

    The prompt asks for a box, but a derivation that ends "The printed result is 1024." has stated its
    result just as plainly; small teachers often forget the box. The value is still checked like any other.
    """
    boxed = extract_boxed(explanation)
    if boxed is not None:
        return boxed
    statements = _RESULT_IS.findall(explanation)
    return clean_sentence_answer(statements[-1]) if statements else None


def check_derivation(derived: str, tool_output: str) -> Check | None:
    """Compare a derived answer with the tool output. None means "not checkable without a judge"."""
    candidates = _output_candidates(tool_output)
    if any(_normalise(derived) == _normalise(c) for c in candidates):
        return Check(faithful=True, method="exact")
    if any(answers_match(derived, c) for c in candidates):
        return Check(faithful=True, method="math_verify")
    latex_forms = [latex for latex in map(_as_latex, candidates) if latex is not None]
    if any(answers_match(derived, latex) for latex in latex_forms):
        return Check(faithful=True, method="sympy")
    if latex_forms:
        return Check(faithful=False, method="sympy", reason=f"derived {derived!r} but the tool returned {candidates[-1]!r}")
    return None


def judge_derivation(explanation: str, tool_output: str, settings: LLMSettings, prompt: PromptTemplate) -> tuple[Check, LLMReply]:
    reply = complete(
        [{"role": "system", "content": prompt.render("system")},
         {"role": "user", "content": prompt.render("user", tool_output=tool_output, explanation=explanation)}],
        settings,
        max_tokens=64,
        temperature=0.0,
    )
    verdict = (extract_boxed(reply.content) or "").strip().lower()
    if verdict not in {"true", "false"}:
        check = Check(faithful=False, method="judge", reason=f"judge gave no \\boxed{{True/False}} verdict: {reply.content[:120]!r}")
    else:
        check = Check(faithful=verdict == "true", method="judge", reason=None if verdict == "true" else "judge: results differ")
    return check, reply


def translation_request(call: ToolCallRecord, prompt: PromptTemplate, guided: bool = False) -> str:
    suffix = "_guided" if guided else ""
    if call.tool_protocol == "code":
        return prompt.render(f"user_code{suffix}", code=call.code, output=call.output.strip())
    return prompt.render(f"user_function{suffix}", tool_name=call.tool_name, description=tool_description(call.tool_name),
                         arguments=call.arguments_json, output=call.output.strip())


def translation_messages(call: ToolCallRecord, prompt: PromptTemplate, guided: bool = False) -> list[dict[str, Any]]:
    """The first attempt's conversation: system prompt, few-shot examples, the call to derive."""
    return [{"role": "system", "content": prompt.render("system")},
            *prompt.parts.get("fewshot_guided" if guided else "fewshot", []),
            {"role": "user", "content": translation_request(call, prompt, guided)}]


def check_guided_derivation(explanation: str) -> Check | None:
    """A guided derivation saw the output, so matching it proves little: its own arithmetic must hold."""
    equalities = find_equalities(explanation)
    errors = [e for e in equalities if not e.holds]
    if errors:
        return Check(faithful=False, method="arithmetic", reason=f"false arithmetic: {errors[0].written}")
    if not equalities:
        return Check(faithful=False, method="arithmetic", reason="the derivation shows no calculation")
    return None


def translate_tool_call(call: ToolCallRecord, settings: LLMSettings, config: TranslateConfig) -> TranslationRecord:
    """Back-translate one successful tool call. LLM failures give an unfaithful row with the reason."""
    prompt = load_prompt("translator", config.prompt_version)
    judge_prompt = load_prompt("judge", config.judge_prompt_version)
    guided = config.show_tool_output
    messages = translation_messages(call, prompt, guided)
    usage = Usage()
    explanation, derived = "", None
    check = Check(faithful=False, method="none", reason="not attempted")
    attempts, llm_error = 0, None
    try:
        for attempt in range(config.max_attempts):
            attempts = attempt + 1
            reply = complete(messages, settings, max_tokens=config.max_tokens,
                             temperature=None if attempt == 0 else config.retry_temperature, seed=attempt)
            usage.add(reply)
            explanation, derived = reply.content.strip(), derived_result(reply.content)
            if derived is None:
                check = Check(faithful=False, method="none", reason="the explanation states no result (no \\boxed{})")
            else:
                checked = (guided and check_guided_derivation(explanation)) or check_derivation(derived, call.output)
                if checked is None and config.use_judge:
                    checked, judge_reply = judge_derivation(explanation, call.output, settings, judge_prompt)
                    usage.add(judge_reply)
                check = checked or Check(faithful=False, method="not_checkable", reason="tool output is not math and the judge is off")
            if check.faithful:
                break
            if not guided:  # a guided retry is a fresh sample: weak models copy their own wrong lines back
                messages += [{"role": "assistant", "content": reply.content},
                             {"role": "user", "content": prompt.render("retry_feedback", previous=derived or "no boxed result")}]
    except LLMCallError as exc:
        llm_error = str(exc)
        check = Check(faithful=False, method=check.method, reason=f"LLM call failed: {exc}")
    return TranslationRecord(
        **fields_of(call, "call_index", "tool_name"),
        tool_output=call.output,
        explanation=explanation,
        derived_answer=derived,
        faithful=check.faithful,
        check_method=check.method,
        attempts=attempts,
        reason=check.reason,
        model=settings.model,
        prompt_version=f"{prompt.id}+{judge_prompt.id}",
        llm_error=llm_error,
        **usage.model_dump(),
    )
