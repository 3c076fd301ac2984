"""`RowSeededSampling`: greedy decoding over Gumbel-perturbed logits is sampling, one generator per row."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.llm.client import _provider_accepts_seed
from tasks.llm.local_provider import RowSeededSampling, row_seed

LOGITS = torch.tensor([2.0, 1.0, 0.0, -1.0])


def draws(temperature: float, seed: int, n: int) -> list[int]:
    processor = RowSeededSampling(temperature, [seed])
    return [int(processor(None, LOGITS.unsqueeze(0)).argmax()) for _ in range(n)]


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_the_argmax_follows_the_softmax_at_the_temperature(temperature: float) -> None:
    n = 20_000
    counts = torch.bincount(torch.tensor(draws(temperature, seed=7, n=n)), minlength=4).double()
    expected = torch.softmax(LOGITS / temperature, dim=0).double() * n
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 16.3  # p = 0.001 for 3 degrees of freedom


def test_each_row_draws_from_its_own_generator() -> None:
    batch = RowSeededSampling(1.0, [1, 2, 1])
    rows = torch.stack([LOGITS] * 3)
    picks = [batch(None, rows).argmax(dim=1).tolist() for _ in range(50)]
    first, second, third = zip(*picks)
    assert first == third  # the same seed draws the same noise, whatever row it sits in
    assert first != second
    assert tuple(draws(1.0, seed=1, n=50)) == first  # and the same as alone


def test_row_seeds_differ_by_prompt_and_by_seed() -> None:
    assert row_seed([1, 2, 3], 0) == row_seed([1, 2, 3], 0)
    assert len({row_seed([1, 2, 3], 0), row_seed([1, 2, 3], 1), row_seed([1, 2, 4], 0)}) == 3
    assert 0 <= row_seed([5], 9) < 2**64


def test_masked_tokens_are_never_drawn() -> None:
    logits = torch.tensor([[0.0, -math.inf, 0.0]])
    processor = RowSeededSampling(1.0, [3])
    assert all(int(processor(None, logits).argmax()) != 1 for _ in range(200))


def test_seed_is_sent_only_to_providers_that_take_it() -> None:
    assert _provider_accepts_seed("openai/gpt-4o-mini")
    assert _provider_accepts_seed("hosted_vllm/my-model")
    assert not _provider_accepts_seed("anthropic/claude-3-5-sonnet-20240620")
    assert not _provider_accepts_seed("no-such-provider/model")
