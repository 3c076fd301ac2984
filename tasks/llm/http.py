"""The HTTP clients litellm sends our calls through: a request holds its gate's slot only while the endpoint has it.

A gate (tasks/llm/limits.py) caps the calls an endpoint has in flight. Held around the whole
litellm call, a slot would also cover litellm's work before the request goes out (building it,
its logging set-up), after the reply is back (parsing, cost, logging) and every backoff sleep
between retries. Taken in the HTTP transport instead, from the moment a request is sent until its
reply has been read (or the attempt failed), a slot is what the endpoint counts as in flight, and
the next request goes out while litellm is still parsing the last reply. Each attempt takes a slot
(and an RPM turn) of its own, as the endpoint sees it. What it is worth: docs/llm.md.

Only public APIs: litellm's `AsyncHTTPHandler` builds its own client as it would for any call
(its aiohttp transport, proxy mounts, SSL settings, headers, cookie policy), and `gated` puts it
behind an httpx client whose transport (httpx's public transport interface) holds the slot and
hands the request on. litellm takes the result where it takes a client of ours:
- `hosted_vllm/` (litellm's own HTTP handler) as `client=` an `AsyncHTTPHandler` whose clients,
  the fresh one it opens to re-send a request after a reset included, are gated;
- `openai/` (the OpenAI SDK) as `litellm.aclient_session`, unless the user has set one of their
  own (then those calls are gated around the call).
Other providers are gated around the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx
import litellm

from tasks.llm.limits import CallGate

T = TypeVar("T")

_request_gate: ContextVar[CallGate | None] = ContextVar("llm_request_gate", default=None)
# When the call's first request got its slot (perf_counter), for `gated_requests`' caller: the time a call holds the
# endpoint, without its wait for a slot, is what the estimate's wall time at a concurrency is made of.
_first_slot_at: ContextVar[list[float] | None] = ContextVar("llm_first_slot_at", default=None)
_BACKSTOP_TIMEOUT_S = 600.0  # litellm and the OpenAI SDK pass each request's own timeout; this is for none


class _SlotHeldUntilRead(httpx.AsyncByteStream):
    """A response body whose slot goes back when httpx closes it (after reading it, or on any error)."""

    def __init__(self, body: httpx.AsyncByteStream, slot: contextlib.AsyncExitStack) -> None:
        self._body, self._slot = body, slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._body.aclose()
        finally:
            await self._slot.aclose()  # idempotent: a second close releases nothing


class GatedTransport(httpx.AsyncBaseTransport):
    """Sends through `inner`, each request holding a slot of the gate its call set (`gated_requests`), if any."""

    def __init__(self, inner: httpx.AsyncClient) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        gate = _request_gate.get()
        if gate is None:  # a call outside any `call_limits`: not throttled, as elsewhere
            return await self._inner.send(request, stream=True)
        slot = contextlib.AsyncExitStack()
        await slot.enter_async_context(gate.async_slot())
        _note_slot_taken()
        try:
            response = await self._inner.send(request, stream=True)
        except BaseException:  # refused, reset, timed out or cancelled: the slot is free again
            await slot.aclose()
            raise
        response.stream = _SlotHeldUntilRead(response.stream, slot)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def gated(inner: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client that builds requests as `inner` would and sends them through it, gated.

    It reads no proxy settings of its own (`trust_env=False`): `inner` routes each request, so a
    proxied URL cannot go around the gate.
    """
    return httpx.AsyncClient(transport=GatedTransport(inner), headers=inner.headers, cookies=inner.cookies.jar,
                             timeout=inner.timeout, follow_redirects=False, trust_env=False)


class _GatedHTTPHandler(litellm.AsyncHTTPHandler):
    """litellm's handler, on gated clients: also the fresh one it opens to re-send a request after a reset."""

    def create_client(self, *args: Any, **kwargs: Any) -> httpx.AsyncClient:
        return gated(super().create_client(*args, **kwargs))


class _LoopClients:
    """The gated clients of one event loop (aiohttp sessions belong to the loop that opened them)."""

    def __init__(self) -> None:
        self.handler = _GatedHTTPHandler(timeout=_BACKSTOP_TIMEOUT_S)
        self.openai_session = gated(litellm.AsyncHTTPHandler(timeout=_BACKSTOP_TIMEOUT_S).client)


_clients: dict[tuple[int, int], _LoopClients] = {}  # by (process, loop): a forked child opens its own


def _loop_clients() -> _LoopClients:
    key = (os.getpid(), id(asyncio.get_running_loop()))
    if key not in _clients:
        _clients[key] = _LoopClients()
    return _clients[key]


def _client_kwargs(provider: str) -> dict[str, Any] | None:
    """The acompletion kwargs that send `provider`'s requests through a gated client, or None when they cannot.

    Must run on the event loop that will make the call. For `openai`, installs the gated session
    as `litellm.aclient_session` unless the user set one of their own.
    """
    if provider == "hosted_vllm":
        return {"client": _loop_clients().handler}
    if provider == "openai":
        session = _loop_clients().openai_session
        current = litellm.aclient_session
        if current is None or any(current is c.openai_session for c in _clients.values()):
            litellm.aclient_session = session
            return {}
    return None


def _note_slot_taken() -> None:
    first = _first_slot_at.get()
    if first is not None and not first:
        first.append(time.perf_counter())


async def gated_requests(gate: CallGate | None, provider: str | None, call: Callable[..., Awaitable[T]],
                         first_slot_at: list[float] | None = None) -> T:
    """`await call(**client_kwargs)`, each of its HTTP requests holding a slot of `gate` while the endpoint has it.

    Where `provider`'s requests cannot be gated one by one (None: a model litellm cannot place), the
    whole call holds one slot. `first_slot_at`, if given, gets the time its first request got a slot.
    """
    if gate is None:
        return await call()
    kwargs = None if provider is None else _client_kwargs(provider)
    if kwargs is None:
        async with gate.async_slot():
            if first_slot_at is not None:
                first_slot_at.append(time.perf_counter())
            return await call()
    tokens = _request_gate.set(gate), _first_slot_at.set(first_slot_at)
    try:
        return await call(**kwargs)
    finally:
        _request_gate.reset(tokens[0])
        _first_slot_at.reset(tokens[1])
