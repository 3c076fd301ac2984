"""Solver agent: plan, then act turn by turn with SymPy tool calls, reflecting on failed calls.

Follows the paper's released protocol: the model first writes a plan without tools, then is told
to carry it out and, after each turn, to "Execute the next action", until it writes a `\\boxed{}`
answer or the turn budget runs out (the last turn asks it to wrap up).

Two tool protocols produce the same `ToolCallRecord`:
- `functions`: the SymPy toolkit offered through function calling (models that support it);
- `code`: ToRA-style ```python blocks answered by a ```output block (models that do not, such as
  the embedded one). Generation stops at "```output" so the model never invents tool results.
Every call runs in the sandbox, in one session per episode so variables persist across turns.

A problem may be solved several times (tasks/stages/sampling.py decides which and how often):
sample 0 is drawn with the model's own settings, exactly as a single-sample run draws it, and
sample j > 0 at a sampling temperature (the model's, or `SolveConfig.sample_temperature` when the
model's is 0) with seed j, so the samples differ from each other and a re-run draws the same ones
where the provider honours seeds. `solve_sample` is the stage's item function: the sample index is
one of its arguments, so each sample is its own cached row.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel

from eval.grader import answers_match, extract_boxed
from tasks.llm import LLMCallError, LLMReply, LLMSettings, Usage, assistant_message, complete, parse_arguments
from tasks.llm import supports_function_calling
from tasks.stages.config import SolveConfig
from tasks.prompt_store import PromptTemplate, load_prompt
from tasks.records import ProblemRecord, ToolCallRecord, TraceRecord
from tool_sandbox import ExecResult, Sandbox, get_default_sandbox
from tool_sandbox.sympy_toolkit import call_to_code, tool_schemas

ToolProtocol = Literal["functions", "code"]
CODE_TOOL_NAME = "python"
_CODE_BLOCK = re.compile(r"```python[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
# Stop when the model would invent a tool result, or right after it closes its code block (small
# models otherwise ramble on about what the code "will output").
CODE_PROTOCOL_STOPS = ["```output", "\n```\n"]


class SolveOutcome(BaseModel):
    trace: TraceRecord
    tool_calls: list[ToolCallRecord]

    @property
    def llm_error(self) -> str | None:
        return self.trace.llm_error


def resolve_protocol(config: SolveConfig, settings: LLMSettings) -> ToolProtocol:
    if config.tool_protocol != "auto":
        return config.tool_protocol
    return "functions" if supports_function_calling(settings) else "code"


def extract_code(text: str) -> str | None:
    """The last ```python block of a reply (it may be unclosed: generation stopped at ```output)."""
    blocks = _CODE_BLOCK.findall(text)
    code = blocks[-1].strip() if blocks else ""
    return code or None


class _Episode:
    """Mutable state of one solving episode; `solve_problem` drives it."""

    def __init__(self, problem: ProblemRecord, settings: LLMSettings, config: SolveConfig,
                 prompt: PromptTemplate, protocol: ToolProtocol, sandbox: Sandbox, sample_index: int) -> None:
        self.problem, self.settings, self.config = problem, settings, config
        self.prompt, self.protocol, self.sandbox = prompt, protocol, sandbox
        self.sample_index = sample_index
        self.temperature, self.seed = sampling_of(sample_index, settings, config)
        self.session_id = f"{problem.id}-{uuid.uuid4().hex[:8]}"
        system = prompt.render(f"system_{protocol}")
        self.prefix: list[dict[str, Any]] = [{"role": "system", "content": system}]
        if protocol == "code":
            self.prefix += prompt.parts["fewshot_code"]
        self.conversation: list[dict[str, Any]] = []
        self.calls: list[ToolCallRecord] = []
        self.usage = Usage()
        self.assistant_turns = 0

    def ask(self, user_text: str | None, *, max_tokens: int, tools: bool) -> LLMReply:
        if user_text is not None:
            self.conversation.append({"role": "user", "content": user_text})
        reply = complete(
            self.prefix + self.conversation,
            self.settings,
            tools=tool_schemas() if tools else None,
            stop=CODE_PROTOCOL_STOPS if self.protocol == "code" else None,
            max_tokens=max_tokens,
            temperature=self.temperature,
            seed=self.seed,
        )
        if self.protocol == "code" and reply.content.count("```") % 2 == 1:
            reply = reply.model_copy(update={"content": reply.content.rstrip() + "\n```"})  # re-close the cut fence
        self.usage.add(reply)
        self.conversation.append(assistant_message(reply))
        self.assistant_turns += 1
        return reply

    def execute(self, tool_name: str, arguments: dict[str, Any], code: str | None, setup_error: str | None) -> ExecResult | None:
        """Run one call in the sandbox and record it. Returns None when the call could not even be built."""
        result = None
        if setup_error is None and code is not None:
            result = self.sandbox.run(code, self.session_id, timeout=self.config.tool_timeout_s)
        self.calls.append(ToolCallRecord(
            problem_id=self.problem.id,
            sample_index=self.sample_index,
            call_index=len(self.calls),
            tool_protocol=self.protocol,
            tool_name=tool_name,
            arguments_json=json.dumps(arguments, ensure_ascii=False),
            code=code or "",
            output=result.text_for_model() if result and result.status == "ok" else "",
            error=setup_error or (None if result is None or result.status == "ok" else result.text_for_model()),
            status=result.status if result else "error",
            duration_s=result.duration_s if result else 0.0,
            turn_index=self.assistant_turns - 1,
            isolation=result.isolation if result else None,
            model=self.settings.model,
            prompt_version=self.prompt.id,
        ))
        return result

    def run_function_calls(self, reply: LLMReply) -> bool:
        """Execute every function call of a reply; True if any failed."""
        failed = False
        for call in reply.tool_calls:
            arguments: dict[str, Any] = {}
            code = setup_error = None
            try:
                arguments = parse_arguments(call)
                code = call_to_code(call.name, arguments)
            except (ValueError, json.JSONDecodeError) as exc:
                setup_error = f"{type(exc).__name__}: {exc}"
            result = self.execute(call.name, arguments, code, setup_error)
            text = setup_error or (result.text_for_model() if result else "")
            failed |= setup_error is not None or (result is not None and result.status != "ok")
            self.conversation.append({"role": "tool", "tool_call_id": call.id, "content": text})
        return failed

    def run_code_block(self, code: str) -> tuple[str, bool]:
        result = self.execute(CODE_TOOL_NAME, {"code": code}, code, None)
        assert result is not None
        return result.text_for_model(), result.status != "ok"


def sampling_of(sample_index: int, settings: LLMSettings, config: SolveConfig) -> tuple[float | None, int | None]:
    """(temperature, seed) of a sample: sample 0 keeps the model's settings (None, None); sample j samples with seed j."""
    if sample_index == 0:
        return None, None
    return (settings.temperature if settings.temperature > 0 else config.sample_temperature), sample_index


def solve_sample(problem: ProblemRecord, sample_index: int, settings: LLMSettings, config: SolveConfig) -> SolveOutcome:
    """The solve stage's item function: sample `sample_index` of `problem` (a cached row of its own)."""
    return solve_problem(problem, settings, config, sample_index=sample_index)


def solve_problem(problem: ProblemRecord, settings: LLMSettings, config: SolveConfig,
                  sandbox: Sandbox | None = None, *, sample_index: int = 0) -> SolveOutcome:
    """Run the Solver agent on one problem. LLM failures end the episode as status "error", never raise."""
    protocol = resolve_protocol(config, settings)
    prompt = load_prompt("solver", config.prompt_version)
    episode = _Episode(problem, settings, config, prompt, protocol, sandbox or get_default_sandbox(), sample_index)
    plan, final_answer, status, error, llm_error = "", None, "no_answer", None, None
    try:
        if config.plan_first:
            plan = episode.ask(prompt.render("plan", problem=problem.problem), max_tokens=config.plan_max_tokens,
                               tools=False).content.strip()
            next_user = prompt.render("execute", plan=plan, problem=problem.problem)
        else:
            next_user = prompt.render("execute_code" if protocol == "code" else "execute", plan="", problem=problem.problem)
        for turn in range(config.max_turns):
            if turn == config.max_turns - 1:
                next_user = (next_user + "\n\n" if next_user else "") + prompt.render("wrapup")
            reply = episode.ask(next_user, max_tokens=config.turn_max_tokens, tools=protocol == "functions")
            next_user = None
            if protocol == "functions" and reply.tool_calls:
                failed = episode.run_function_calls(reply)
                next_user = prompt.render("reflect") if failed else None
                continue
            code = extract_code(reply.content) if protocol == "code" else None
            if code is not None:
                output, failed = episode.run_code_block(code)
                next_user = prompt.render("tool_output_code", output=output)
                if failed:
                    next_user += "\n" + prompt.render("reflect")
                continue
            final_answer = extract_boxed(reply.content)
            if final_answer is not None:
                status = "answered"
                break
            next_user = prompt.render("followup")
    except LLMCallError as exc:
        status, error = "error", str(exc)
        llm_error = error
    finally:
        episode.sandbox.close_session(episode.session_id)
    trace = TraceRecord(
        problem_id=problem.id,
        sample_index=sample_index,
        problem=problem.problem,
        reference_answer=problem.answer,
        plan=plan,
        messages_json=json.dumps(episode.conversation, ensure_ascii=False),
        final_answer=final_answer,
        # a problem without a reference answer is graded later, against its samples' majority vote
        answer_correct=final_answer is not None and bool(problem.answer)
        and answers_match(final_answer, problem.answer, problem=problem.problem),
        n_tool_calls=len(episode.calls),
        n_turns=episode.assistant_turns,
        status=status,
        error=error,
        llm_error=llm_error,
        tool_protocol=protocol,
        model=settings.model,
        prompt_version=prompt.id,
        **episode.usage.model_dump(),
    )
    return SolveOutcome(trace=trace, tool_calls=episode.calls)
