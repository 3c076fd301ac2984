"""The shared event loop behind anyio's portal: results and errors come back to the calling thread, every
thread reaches the same loop, and executor jobs run inline on the loop thread only for coroutines that asked."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.llm.client import _builds_requests_without_io
from tasks.llm.event_loop import LOOP_THREAD_NAME, portal, run_blocking


async def _executor_job_thread() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: threading.current_thread().name)


async def _loop_thread() -> str:
    return threading.current_thread().name


async def _loop_id() -> int:
    return id(asyncio.get_running_loop())


def test_every_thread_reaches_the_same_long_lived_loop() -> None:
    with ThreadPoolExecutor(4) as pool:
        loops = set(pool.map(lambda _: run_blocking(_loop_id()), range(16)))
    assert loops == {run_blocking(_loop_id())}
    assert run_blocking(_loop_thread()) == LOOP_THREAD_NAME


def test_jobs_run_in_the_pool_unless_asked_to_run_inline() -> None:
    assert run_blocking(_executor_job_thread()).startswith(f"{LOOP_THREAD_NAME}-executor")
    assert run_blocking(_executor_job_thread(), inline_executor_jobs=True) == LOOP_THREAD_NAME


def test_inline_request_is_scoped_to_its_own_coroutine() -> None:
    """A coroutine running its jobs inline must not pull a concurrent one's jobs onto the loop thread."""

    async def both() -> tuple[str, str]:
        async def inline() -> str:
            from tasks.llm.event_loop import _run_jobs_inline
            _run_jobs_inline.set(True)
            return await _executor_job_thread()
        return tuple(await asyncio.gather(inline(), _executor_job_thread()))

    inline_thread, pooled_thread = run_blocking(both())
    assert inline_thread == LOOP_THREAD_NAME
    assert pooled_thread.startswith(f"{LOOP_THREAD_NAME}-executor")


@pytest.mark.parametrize("inline", [False, True])
def test_errors_reach_the_calling_thread(inline: bool) -> None:
    async def failing_job() -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        run_blocking(failing_job(), inline_executor_jobs=inline)


def test_the_loop_thread_cannot_wait_on_itself() -> None:
    async def nested() -> None:
        run_blocking(_loop_id())

    with pytest.raises(RuntimeError):
        portal().call(nested)


@pytest.mark.parametrize(("model", "inline"), [
    ("hosted_vllm/Qwen/Qwen2.5-7B-Instruct", True),
    ("openai/gpt-4o-mini", True),
    ("gpt-4o-mini", True),
    ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", False),  # may fetch credentials with blocking I/O
    ("azure/my-deployment", False),
    ("no-such-provider/model", False),
])
def test_only_providers_with_io_free_request_building_run_inline(model: str, inline: bool) -> None:
    assert _builds_requests_without_io(model) is inline
