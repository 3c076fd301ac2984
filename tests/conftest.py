"""Shared fixtures: offline environment, and a replay LLM that answers from a scripted queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from training.offline_env import set_offline_defaults

set_offline_defaults()  # before litellm and Prefect are imported; the tests' subprocesses inherit them

import litellm  # noqa: E402
import pytest  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import ModelResponse  # noqa: E402


class ReplayLLM(CustomLLM):
    """Answers `replay/...` calls with the queued replies, in order, and records every request and its parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[str] = []
        self.requests: list[list[dict[str, Any]]] = []
        self.params: list[dict[str, Any]] = []  # temperature, max_tokens, seed, ... of each request

    def completion(self, model: str, messages: list, optional_params: dict, model_response: ModelResponse,
                   *args: Any, **kwargs: Any) -> ModelResponse:
        self.requests.append([dict(m) for m in messages])
        self.params.append(dict(optional_params))
        if not self.replies:
            raise AssertionError(f"replay LLM: no reply queued for request {len(self.requests)}: {messages[-1]}")
        model_response.choices[0].message.content = self.replies.pop(0)  # type: ignore[union-attr]
        model_response.usage = litellm.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)  # type: ignore[attr-defined]
        return model_response


@pytest.fixture
def replay_llm() -> Iterator[ReplayLLM]:
    handler = ReplayLLM()
    saved = litellm.custom_provider_map
    litellm.custom_provider_map = [*saved, {"provider": "replay", "custom_handler": handler}]
    try:
        yield handler
    finally:
        litellm.custom_provider_map = saved


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    """A temporary Prefect API shared by a module's flow runs (its start-up is the slow part)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
