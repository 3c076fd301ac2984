"""The HTTP clients litellm sends our calls through: a call holds its gate's slot only while the endpoint has it.

A gate (tasks/llm/limits.py) caps the calls an endpoint has in flight. Held around the whole
litellm call, a slot also covers litellm's work before the request goes out (building it, its
logging set-up) and after the reply is back (parsing, cost, logging), 8-12 ms of the ~215 ms a
200 ms call held it on 2 cores, and every backoff sleep between retries. Taken in the HTTP
transport instead, from the moment a request is sent until its reply has been read (or the
attempt failed), a slot is what the endpoint counts as in flight, and the next request goes out
while litellm is still parsing the last reply. Each attempt takes a slot (and an RPM turn) of its
own, as the endpoint sees it. (1,500 calls at 16 in flight, 200 ms, one event loop: 0.922-0.931
of the ideal gated around the call, 0.939-0.941 in the transport with `hosted_vllm/`; 0.875-0.898
and 0.898-0.908 with `openai/`.)

Which client carries the gate depends on how litellm builds the request:
- `hosted_vllm/` (litellm's own HTTP handler) takes an `AsyncHTTPHandler` as `client=`;
- `openai/` (the OpenAI SDK) sends through `litellm.aclient_session` when one is set, so this module
  sets one, unless the user has set their own (then those calls are gated around the call, as before).
Both wrap litellm's default aiohttp transport; under another transport (`litellm.disable_aiohttp_transport`,
`force_ipv4`) the calls are gated around the call, since httpx would route proxied URLs past ours.
Other providers are gated around the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx
import litellm
from litellm.llms.custom_httpx.aiohttp_transport import LiteLLMAiohttpTransport
from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, get_default_headers

from tasks.llm.limits import CallGate

T = TypeVar("T")

_request_gate: ContextVar[CallGate | None] = ContextVar("llm_request_gate", default=None)
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
    """`inner`, with each request holding a slot of the gate its call set (`gated_requests`), if any."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        gate = _request_gate.get()
        if gate is None:  # a call outside any `call_limits`: not throttled, as elsewhere
            return await self._inner.handle_async_request(request)
        slot = contextlib.AsyncExitStack()
        await slot.enter_async_context(gate.async_slot())
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:  # refused, reset, timed out or cancelled: the slot is free again
            await slot.aclose()
            raise
        response.stream = _SlotHeldUntilRead(response.stream, slot)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _gated_client() -> httpx.AsyncClient | None:
    """An httpx client on litellm's own transport, gated; None when litellm would not use aiohttp here."""
    inner = AsyncHTTPHandler._create_async_transport()
    if not isinstance(inner, LiteLLMAiohttpTransport):
        return None
    return httpx.AsyncClient(transport=GatedTransport(inner), timeout=_BACKSTOP_TIMEOUT_S, follow_redirects=True,
                             headers=get_default_headers())


class _GatedHTTPHandler(AsyncHTTPHandler):
    """litellm's handler, on gated clients: also the fresh one it opens to re-send a request after a reset."""

    def create_client(self, timeout: Any, event_hooks: Any, ssl_verify: Any = None,
                      shared_session: Any = None) -> httpx.AsyncClient:
        client = _gated_client()
        assert client is not None, "made only where _gated_client() gave one"
        return client


class _LoopClients:
    """The gated clients of one event loop (aiohttp sessions belong to the loop that opened them)."""

    def __init__(self) -> None:
        self.openai_session = _gated_client()
        self.handler = _GatedHTTPHandler(timeout=_BACKSTOP_TIMEOUT_S) if self.openai_session is not None else None


_clients: dict[tuple[int, int], _LoopClients] = {}  # by (process, loop): a forked child opens its own


def _loop_clients() -> _LoopClients:
    key = (os.getpid(), id(asyncio.get_running_loop()))
    if key not in _clients:
        _clients[key] = _LoopClients()
    return _clients[key]


def _client_kwargs(provider: str) -> dict[str, Any] | None:
    """The acompletion kwargs that send `provider`'s requests through a gated transport, or None when they cannot.

    Must run on the event loop that will make the call. For `openai`, installs the gated session
    as `litellm.aclient_session` unless the user set one of their own.
    """
    clients = _loop_clients()
    if provider == "hosted_vllm" and clients.handler is not None:
        return {"client": clients.handler}
    if provider == "openai" and clients.openai_session is not None:
        current = litellm.aclient_session
        ours = {id(c.openai_session) for c in _clients.values()}
        if current is None or id(current) in ours:
            litellm.aclient_session = clients.openai_session
            return {}
    return None


async def gated_requests(gate: CallGate | None, provider: str | None, call: Callable[..., Awaitable[T]]) -> T:
    """`await call(**client_kwargs)`, each of its HTTP requests holding a slot of `gate` while the endpoint has it.

    Where `provider`'s requests cannot be gated one by one (None: a model litellm cannot place), the
    whole call holds one slot. On the loop, a slot that frees goes to a waiting request in the same
    loop turn.
    """
    if gate is None:
        return await call()
    kwargs = None if provider is None else _client_kwargs(provider)
    if kwargs is None:
        async with gate.async_slot():
            return await call()
    token = _request_gate.set(gate)
    try:
        return await call(**kwargs)
    finally:
        _request_gate.reset(token)
