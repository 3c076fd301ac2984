"""The throughput benchmark's workload through distilabel 1.5.3; run by `llm_throughput_bench.py`.

It runs in a virtualenv of its own (distilabel pins `openai<2` and more, which the project's
environment does not take), so it imports only distilabel and the standard library. `make bench`
creates that venv (`.venv-distilabel`, from benchmarks/requirements-distilabel.txt); alone:

    .venv-distilabel/bin/python benchmarks/distilabel_side.py REQUESTS.jsonl BASE_URL CONCURRENCY

REQUESTS.jsonl holds one {"messages": [...], "max_tokens": N} per line: the very requests our
pipeline sends. distilabel's `ChatGeneration` sends each batch of `input_batch_size` rows
concurrently (its OpenAI client is async), so the batch size is its concurrency. Prints one JSON
line: rows generated and seconds spent in `Pipeline.run`.
"""

from __future__ import annotations

import json
import sys
import time


def main(requests_path: str, base_url: str, concurrency: int) -> None:
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import ChatGeneration

    with open(requests_path) as handle:
        rows = [json.loads(line) for line in handle]
    max_tokens = rows[0]["max_tokens"]
    with Pipeline(name="llm-throughput-bench") as pipeline:
        load = LoadDataFromDicts(data=[{"messages": r["messages"]} for r in rows], batch_size=max(concurrency, 50))
        llm = OpenAILLM(model="scripted", base_url=base_url, api_key="sk-bench-distilabel", max_retries=0, timeout=120,
                        generation_kwargs={"max_new_tokens": max_tokens, "temperature": 0.0})
        generate = ChatGeneration(llm=llm, input_batch_size=concurrency)
        load >> generate
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    seconds = time.perf_counter() - started
    generated = distiset["default"]["train"]["generation"]
    print(json.dumps({"rows": len(generated), "answered": sum(bool(g) for g in generated), "run_s": round(seconds, 3)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
