"""A deterministic rule-based "model" for tests: `scripted/arithmetic`.

It plays every agent of the pipeline on arithmetic problems ("What is 12 * 7?") through the real
litellm call path, so flows, caching, deployments and fault handling can be tested in seconds and
reproducibly, in any process (a Prefect worker included), without loading a neural model:

- solver, plan turn:   a one-line plan;
- solver, act turn:    a ```python block printing the problem's expression (code protocol), or a
                       call of the toolkit's `evaluate_expression` tool (functions protocol, when tools are offered);
- solver, after output: "The answer is \\boxed{<output>}";
- solver, multi-step:  for a problem that says "one term per step" ("What is 11 * 3 + 7 * 2? Compute
                       one term per step."), one tool call per `+`-separated term, then the boxed
                       total: a problem with a known number of tool calls, for load tests;
- solver, samples:     the request's seed is the sample index (none: sample 0). Sample s writes
                       code variant s % 4 (`print(e)`; `value = e` then `print(value)`; SymPy's
                       `sympify("e")`; `print((e))`), so a problem's samples are distinct traces,
                       samples 0 and 4 are duplicates, and sample 3, though its code differs, is
                       rephrased in the very words of sample 0 (a near-identical solution). A problem that says "wrong on samples 0, 2" is answered wrong on
                       those samples: the code prints e + s + 1 (each wrong sample a different
                       wrong value, really computed in the sandbox);
- translator:          "<expr> = <value>. \\boxed{<value>}" computed with SymPy, worded after the
                       code variant it derives;
- rephraser:           a tool-free sentence ending in the draft's last boxed value, worded after the
                       variant its draft's derivations come from (so distinct traces stay distinct);
- judge:               "\\boxed{True}".

It is a test double for the LLM only: the sandbox, grader and everything else run for real.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

import litellm
import sympy
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import ChatCompletionMessageToolCall, Function, ModelResponse

from tasks.llm.records import SCRIPTED_PROVIDER

PROVIDER = SCRIPTED_PROVIDER
_EXPRESSION = re.compile(r"[-+*/^()\d. ]*\d[-+*/^()\d. ]*")
_OUTPUT = re.compile(r"```output\s*\n(.*?)\n?```", re.DOTALL)
_CODE_PRINT = re.compile(r"print\((.*)\)")
STEPWISE_MARKER = "one term per step"
WRONG_SAMPLES_MARKER = "wrong on samples"  # "What is 12 * 7? (The solver goes wrong on samples 0, 2.)"
_WRONG_SAMPLES = re.compile(WRONG_SAMPLES_MARKER + r"\s+(\d+(?:\s*,\s*\d+)*)", re.IGNORECASE)


@dataclass(frozen=True)
class _Variant:
    """One way the scripted solver computes a value, and how the translator and rephraser word it.

    `code_marker` is what the translator finds in the code to tell the variant, `draft_marker` what the
    rephraser finds in the draft (the translator's derivation)."""

    code_marker: str
    draft_marker: str
    prose: str
    code: str
    derivation: str
    rephrasing: str


_VARIANTS = (
    _Variant("", "", "I evaluate the expression.", "print({e})", "We compute {e} step by step: {e} = {v}.",
             "Multiplying and adding the numbers by hand gives {a}."),
    _Variant("value = ", "Let the value be", "I name the value first, then show it.", "value = {e}\nprint(value)",
             "Let the value be {e}. Working it out, {e} = {v}.", "Naming the value first and working it out by hand gives {a}."),
    _Variant("sympify(", "exactly as written", "I let SymPy read the expression exactly.", 'from sympy import sympify\nprint(sympify("{e}"))',
             "Reading {e} exactly as written: {e} = {v}.", "Reading the expression exactly and computing by hand gives {a}."),
    _Variant("", "", "I evaluate the expression.", "print(({e}))", "We compute {e} step by step: {e} = {v}.",
             "Multiplying and adding the numbers by hand gives {a}."),
)


def wrong_samples(problem: str) -> set[int]:
    """The samples on which the scripted solver answers `problem` wrong (its "wrong on samples ..." marker)."""
    found = _WRONG_SAMPLES.search(problem)
    return {int(n) for n in re.findall(r"\d+", found.group(1))} if found else set()


def _variant_in(text: str, *, draft: bool = False) -> _Variant:
    return next((v for v in _VARIANTS[1:] if (v.draft_marker if draft else v.code_marker)
                 and (v.draft_marker if draft else v.code_marker) in text), _VARIANTS[0])


def _problem_expression(text: str) -> str:
    candidates = [c.strip() for c in _EXPRESSION.findall(text) if any(op in c for op in "+-*/^")]
    expression = max(candidates, key=len) if candidates else (_EXPRESSION.findall(text) or ["0"])[-1].strip()
    return expression.replace("^", "**")


def _value(expression: str) -> str:
    try:
        return str(sympy.sympify(expression))
    except (sympy.SympifyError, SyntaxError, TypeError):
        return "0"


def _last_boxed(text: str) -> str | None:
    found = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return found[-1] if found else None


def scripted_reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   seed: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(content, tool_calls) for a conversation, by which agent's prompt it carries; `seed` is the solver's sample."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "") or ""
    last = messages[-1]
    last_text = last.get("content") or ""
    first_user = next((m["content"] for m in messages if m["role"] == "user"), "") or ""
    if "never write code" in system:  # translator
        code = _CODE_PRINT.search(last_text)
        printed = code.group(1).strip() if code else ""
        expression = printed if _EXPRESSION.fullmatch(printed) else _problem_expression(last_text)
        derivation = _variant_in(last_text).derivation.format(e=expression, v=_value(expression))
        return f"{derivation} \\boxed{{{_value(expression)}}}", []
    if "hand derivation" in system:  # judge
        return "\\boxed{True}", []
    if "rewrite math solutions" in system:  # rephraser
        draft = last_text.split("DRAFT SOLUTION", 1)[-1].rsplit("Rewrite the draft", 1)[0]
        answer = _last_boxed(draft) or "0"
        return f"{_variant_in(draft, draft=True).rephrasing.format(a=answer)} The answer is \\boxed{{{answer}}}.", []
    # solver
    if "high-level plan" in last_text:
        return "1. Evaluate the expression exactly.", []
    if STEPWISE_MARKER in _problem_message(messages).lower():
        return _stepwise_solver_turn(messages, tools)
    if last["role"] == "tool":
        return f"The answer is \\boxed{{{last_text.strip()}}}.", []
    output = _OUTPUT.search(last_text)
    if output:
        return f"The answer is \\boxed{{{output.group(1).strip()}}}.", []
    problem = last_text if "Problem:" in last_text else first_user
    expression = _problem_expression(problem.split("Problem:")[-1])
    sample = seed or 0
    if sample in wrong_samples(problem):
        expression = f"{expression} + {sample + 1}"
    if tools:
        call = {"id": "call_0", "name": "evaluate_expression", "arguments": json.dumps({"expression": expression})}
        return "I evaluate the expression exactly.", [call]
    variant = _VARIANTS[sample % len(_VARIANTS)]
    return f"{variant.prose}\n```python\n{variant.code.format(e=expression)}\n```\n", []


def _problem_message(messages: list[dict[str, Any]]) -> str:
    return next((m.get("content") or "" for m in reversed(messages) if m["role"] == "user" and "Problem:" in (m.get("content") or "")), "")


def _stepwise_solver_turn(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> tuple[str, list[dict[str, Any]]]:
    """The next step of a "one term per step" problem: a tool call for the first term not computed yet, or the total."""
    problem_at = max(i for i, m in enumerate(messages) if m["role"] == "user" and "Problem:" in (m.get("content") or ""))
    later = messages[problem_at + 1:]
    done = sum(m["role"] == "tool" or (m["role"] == "user" and bool(_OUTPUT.search(m.get("content") or ""))) for m in later)
    expression = _problem_expression(messages[problem_at]["content"].split("Problem:")[-1])
    terms = [t.strip() for t in expression.split("+")]
    if done >= len(terms):
        return f"Adding the {len(terms)} terms, the answer is \\boxed{{{_value(expression)}}}.", []
    term = terms[done]
    if tools:
        call = {"id": f"call_{done}", "name": "evaluate_expression", "arguments": json.dumps({"expression": term})}
        return f"Term {done + 1} of {len(terms)}.", [call]
    return f"Term {done + 1} of {len(terms)}.\n```python\nprint({term})\n```\n", []


class ScriptedLLM(CustomLLM):
    """Counts the calls it serves (`calls_served`), so tests can prove that cached runs make none."""

    calls_served = 0

    def completion(self, model: str, messages: list, optional_params: dict, model_response: ModelResponse,
                   *args: Any, **kwargs: Any) -> ModelResponse:
        with _lock:
            ScriptedLLM.calls_served += 1
        content, calls = scripted_reply(messages, optional_params.get("tools"), optional_params.get("seed"))
        message = model_response.choices[0].message  # type: ignore[union-attr]
        message.content = content
        if calls:
            message.tool_calls = [ChatCompletionMessageToolCall(id=c["id"], type="function",
                                                                 function=Function(name=c["name"], arguments=c["arguments"]))
                                  for c in calls]
        model_response.choices[0].finish_reason = "tool_calls" if calls else "stop"
        model_response.model = model
        words = sum(len(str(m.get("content") or "").split()) for m in messages)
        model_response.usage = litellm.Usage(prompt_tokens=words, completion_tokens=len(content.split()),  # type: ignore[attr-defined]
                                             total_tokens=words + len(content.split()))
        return model_response


_lock = threading.Lock()


def register_scripted_provider() -> None:
    with _lock:
        if not any(entry.get("provider") == PROVIDER for entry in litellm.custom_provider_map):
            litellm.custom_provider_map = [*litellm.custom_provider_map, {"provider": PROVIDER, "custom_handler": ScriptedLLM()}]
