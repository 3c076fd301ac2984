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
- translator:          "<expr> = <value>. \\boxed{<value>}" computed with SymPy;
- rephraser:           a tool-free sentence ending in the draft's last boxed value;
- judge:               "\\boxed{True}".

It is a test double for the LLM only: the sandbox, grader and everything else run for real.
"""

from __future__ import annotations

import json
import re
import threading
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


def scripted_reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> tuple[str, list[dict[str, Any]]]:
    """(content, tool_calls) for a conversation, by which agent's prompt it carries."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "") or ""
    last = messages[-1]
    last_text = last.get("content") or ""
    first_user = next((m["content"] for m in messages if m["role"] == "user"), "") or ""
    if "never write code" in system:  # translator
        code = _CODE_PRINT.search(last_text)
        expression = code.group(1) if code else _problem_expression(last_text)
        return f"We compute {expression} step by step: {expression} = {_value(expression)}. \\boxed{{{_value(expression)}}}", []
    if "hand derivation" in system:  # judge
        return "\\boxed{True}", []
    if "rewrite math solutions" in system:  # rephraser
        draft = last_text.split("DRAFT SOLUTION", 1)[-1].rsplit("Rewrite the draft", 1)[0]
        answer = _last_boxed(draft) or "0"
        return f"Multiplying and adding the numbers by hand gives {answer}. The answer is \\boxed{{{answer}}}.", []
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
    if tools:
        call = {"id": "call_0", "name": "evaluate_expression", "arguments": json.dumps({"expression": expression})}
        return "I evaluate the expression exactly.", [call]
    return f"I evaluate the expression.\n```python\nprint({expression})\n```\n", []


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
        content, calls = scripted_reply(messages, optional_params.get("tools"))
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
