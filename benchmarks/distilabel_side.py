"""The throughput benchmarks' workloads through distilabel 1.5.3; run by `llm_throughput_bench.py`.

It runs in a virtualenv of its own (distilabel pins `openai<2` and more, which the project's
environment does not take), so it imports only distilabel and the standard library. `make bench`
creates that venv (`.venv-distilabel`, from benchmarks/requirements-distilabel.txt); alone:

    .venv-distilabel/bin/python benchmarks/distilabel_side.py JOB.json BASE_URL CONCURRENCY

JOB.json says what to send, built by the bench from our own prompts so that both sides send the
very same requests (the bench checks the mock server's digest of them):
- `{"kind": "chat", "conversations": [...], "max_tokens": N}`: one request per conversation,
  through distilabel's `ChatGeneration`;
- `{"kind": "solve", ...}`: solver episodes (plan, tool turns, answer), through `SolveWithTools`
  below, since distilabel has no tool loop of its own.
Each LLM step sends each batch of `input_batch_size` rows concurrently (its OpenAI client is
async), so the batch size is its concurrency. Prints one JSON line: rows, rows answered, and
seconds spent in `Pipeline.run`.
"""

# No `from __future__ import annotations`: distilabel finds a step's input parameter by its live type hint.
import contextlib
import io
import json
import re
import sys
import time
from typing import Any

from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, StepInput
from distilabel.steps.tasks import ChatGeneration, Task

CODE_BLOCK = re.compile(r"```python[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def run_code(code: str) -> str:
    """The tool: run the block in this process and return what it printed (no sandbox: cheaper than ours)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(code, {})  # noqa: S102 (the mock model's own arithmetic, in a throwaway benchmark process)
    except Exception as exc:  # the model sees the error, as with our sandbox
        return f"{type(exc).__name__}: {exc}"
    return printed.getvalue().rstrip("\n")


class SolveWithTools(Task):
    """A solver episode per row: plan, then turns that run each reply's code block, until a boxed answer.

    A distilabel step processes its input batch as a whole, so every turn sends the batch's unfinished
    episodes at once and waits for all of their replies before the next turn.
    """

    job: dict[str, Any]

    @property
    def inputs(self) -> list[str]:
        return ["index"]

    @property
    def outputs(self) -> list[str]:
        return ["answer", "turns"]

    def format_input(self, input: dict[str, Any]) -> list[dict[str, Any]]:
        return []  # unused: `process` builds each turn's conversation itself

    def format_output(self, output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        return {}  # unused, as above

    def _generate(self, conversations: list[list[dict[str, Any]]], max_tokens: int) -> list[str]:
        outputs = self.llm.generate_outputs(inputs=conversations, num_generations=1, max_new_tokens=max_tokens,
                                            temperature=0.0, stop=self.job["stop"])
        texts = [output["generations"][0] or "" for output in outputs]
        return [text.rstrip() + "\n```" if text.count("```") % 2 == 1 else text for text in texts]  # re-close a cut fence

    def process(self, inputs: StepInput) -> Any:  # type: ignore[override]
        job, prefix = self.job, self.job["prefix"]
        plan_turns = [[{"role": "user", "content": job["plan"][row["index"]]}] for row in inputs]
        plans = self._generate([prefix + turn for turn in plan_turns], job["plan_max_tokens"])
        episodes = [turn + [{"role": "assistant", "content": plan},
                            {"role": "user", "content": job["execute"][row["index"]].replace(job["plan_slot"], plan.strip())}]
                    for row, turn, plan in zip(inputs, plan_turns, plans)]
        answers: list[str | None] = [None] * len(inputs)
        turns = [1] * len(inputs)
        active = list(range(len(inputs)))
        for _ in range(job["max_turns"]):
            if not active:
                break
            replies = self._generate([prefix + episodes[i] for i in active], job["turn_max_tokens"])
            still_active = []
            for i, reply in zip(active, replies):
                episodes[i].append({"role": "assistant", "content": reply})
                turns[i] += 1
                code = CODE_BLOCK.findall(reply)
                boxed = BOXED.findall(reply)
                if code and code[-1].strip():
                    output = job["tool_output"].replace(job["output_slot"], run_code(code[-1].strip()))
                    episodes[i].append({"role": "user", "content": output})
                    still_active.append(i)
                elif boxed:
                    answers[i] = boxed[-1]
                else:
                    episodes[i].append({"role": "user", "content": job["followup"]})
                    still_active.append(i)
            active = still_active
        for row, answer, n in zip(inputs, answers, turns):
            row["answer"], row["turns"] = answer, n
        yield inputs


def openai_llm(base_url: str, generation_kwargs: dict[str, Any]) -> OpenAILLM:
    return OpenAILLM(model="scripted", base_url=base_url, api_key="sk-bench-distilabel", max_retries=0, timeout=120,
                     generation_kwargs=generation_kwargs)


def main(job_path: str, base_url: str, concurrency: int) -> None:
    with open(job_path) as handle:
        job = json.load(handle)
    with Pipeline(name=f"{job['kind']}-throughput-bench") as pipeline:
        if job["kind"] == "chat":
            data = [{"messages": messages} for messages in job["conversations"]]
            step = ChatGeneration(llm=openai_llm(base_url, {"max_new_tokens": job["max_tokens"], "temperature": 0.0}),
                                  input_batch_size=concurrency)
            column = "generation"
        else:  # SolveWithTools passes its sampling settings per turn
            data = [{"index": i} for i in range(len(job["plan"]))]
            step = SolveWithTools(llm=openai_llm(base_url, {}), job=job, input_batch_size=concurrency)
            column = "answer"
        LoadDataFromDicts(data=data, batch_size=max(concurrency, 50)) >> step
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    seconds = time.perf_counter() - started
    results = distiset["default"]["train"][column]
    print(json.dumps({"rows": len(results), "answered": sum(bool(r) for r in results), "run_s": round(seconds, 3)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
