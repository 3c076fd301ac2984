"""The in-process `local/` provider on the embedded model: concurrent calls are batched and lose nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.llm.embedded_model import resolve_local_model
from tasks.llm import LLMSettings, complete
from tasks.llm.local_provider import LocalRequest, load_local_model

EMBEDDED = LLMSettings(model="local/smollm2-135m")
QUESTIONS = [f"What is {a} * {b}? Answer briefly." for a, b in [(12, 7), (3, 9), (15, 15), (101, 3), (8, 8), (6, 7)]]


def ask(question: str, max_tokens: int = 40):
    return complete([{"role": "user", "content": question}], EMBEDDED, max_tokens=max_tokens, stop=["\n\n"])


@pytest.mark.slow
def test_concurrent_calls_share_batches_and_reply_as_they_would_alone() -> None:
    alone = [ask(q) for q in QUESTIONS]
    batcher = load_local_model(resolve_local_model("smollm2-135m")).batcher
    batches_before = len(batcher.batch_sizes)
    with ThreadPoolExecutor(max_workers=len(QUESTIONS)) as pool:
        together = list(pool.map(ask, QUESTIONS))
    assert max(batcher.batch_sizes[batches_before:]) > 1
    # Greedy and padded on the left: the same text and token counts as one at a time.
    assert [(r.content, r.completion_tokens, r.finish_reason) for r in together] == \
        [(r.content, r.completion_tokens, r.finish_reason) for r in alone]
    assert all(r.content and r.prompt_tokens > 10 for r in together)


@pytest.mark.slow
def test_each_request_keeps_its_own_token_budget_inside_a_batch() -> None:
    budgets = [3, 40, 3, 40]
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(ask, QUESTIONS[:4], budgets))
    for reply, budget in zip(replies, budgets):
        assert reply.completion_tokens <= budget
    assert [r.finish_reason for r in replies[::2]] == ["length", "length"]
    assert all(len(r.content) > len(short.content) for r, short in zip(replies[1::2], replies[::2]))


@pytest.mark.slow
def test_a_row_padded_after_its_stop_string_counts_as_it_would_alone() -> None:
    """SmolLM2 pads with its end-of-sequence token: padding after a stop string is not an EOS to count."""
    model = load_local_model(resolve_local_model("smollm2-135m"))
    assert model.pad_id in model.eos_ids  # the ambiguous case this guards
    text_ids = model.tokenizer.encode("12 * 7 = 84\n\n", add_special_tokens=False)
    request = LocalRequest(prompt_ids=[1, 2, 3], max_new_tokens=40)
    padded = model._reply(text_ids + [model.pad_id] * 3, request, ["\n\n"], batch_size=2)
    alone = model._reply(text_ids, request, ["\n\n"], batch_size=1)
    assert (padded.text, padded.completion_tokens, padded.finish_reason) == ("12 * 7 = 84", len(text_ids), "stop")
    assert (alone.text, alone.completion_tokens, alone.finish_reason) == ("12 * 7 = 84", len(text_ids), "stop")
    ended = model._reply(text_ids[:-1] + [model.pad_id, model.pad_id], request, ["\n\n"], batch_size=2)
    assert (ended.completion_tokens, ended.finish_reason) == (len(text_ids), "stop")  # a real EOS is counted


@pytest.mark.slow
def test_a_sampled_reply_depends_on_its_request_and_seed_not_on_its_batch() -> None:
    """The demo's retries sample: which rows share a batch must not change what they draw."""
    def sample(question: str, seed: int = 1) -> str:
        return complete([{"role": "user", "content": question}], EMBEDDED, max_tokens=24, temperature=0.9,
                        seed=seed).content

    alone = [sample(q) for q in QUESTIONS[:4]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(sample, QUESTIONS[:4]))
    assert together == alone
    assert [sample(q, seed=2) for q in QUESTIONS[:4]] != alone
