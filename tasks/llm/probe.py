"""One tiny call before a run: a model that cannot answer fails the run in seconds, with the fix, not hours later.

Without it, a wrong model name, a missing key or an endpoint that is down turns every row into a
failed row. The check goes through `complete`, the same door the run uses, with no retries and a
short timeout; the error is mapped to what the user must check (the model name, the key's
environment variable, the URL). In-process models (the embedded one, the scripted test double)
need no network: a `local/<path>` is only checked to hold a model (config.json).
"""

from __future__ import annotations

import litellm

from tasks.llm.client import _placement, complete
from tasks.llm.embedded_model import EMBEDDED_MODEL_NAME, resolve_local_model
from tasks.llm.records import IN_PROCESS_PROVIDERS, LOCAL_PROVIDER, LLMCallError, LLMSettings

PREFLIGHT_TIMEOUT_S = 30.0


class PreflightError(RuntimeError):
    """The model cannot be used as configured; the message is one line naming what to check."""


def _key_variable(settings: LLMSettings) -> str:
    placement = _placement(settings.model)
    provider = placement[1] if placement else settings.model.split("/", 1)[0]
    return f"{provider.upper()}_API_KEY"


def preflight(settings: LLMSettings) -> None:
    """Raise `PreflightError` unless `settings.model` answers a one-token request."""
    provider, _, name = settings.model.partition("/")
    if provider == LOCAL_PROVIDER and name != EMBEDDED_MODEL_NAME:  # the embedded one is unpacked on first use
        try:  # a path that holds no model fails here, not in every row of the run
            resolve_local_model(name)
        except ValueError as exc:
            raise PreflightError(str(exc).rstrip(".")) from None
    if settings.in_process or provider in IN_PROCESS_PROVIDERS:
        return
    if _placement(settings.model) is None:
        raise PreflightError(f"unknown model {settings.model!r}: litellm cannot tell its provider; write it as "
                             "<provider>/<model>, e.g. openai/gpt-4o-mini or hosted_vllm/Qwen/Qwen2.5-7B-Instruct")
    missing = litellm.validate_environment(model=settings.model).get("missing_keys") or []
    if missing and settings.api_base is None:
        raise PreflightError(f"model {settings.model}: no API key; set {' or '.join(missing)} in the environment")
    quick = settings.model_copy(update={"num_retries": 0, "timeout_s": min(settings.timeout_s, PREFLIGHT_TIMEOUT_S)})
    try:
        complete([{"role": "user", "content": "Reply with the word OK."}], quick, max_tokens=1, temperature=0.0)
    except LLMCallError as exc:
        raise PreflightError(_explain(settings, exc.__cause__, str(exc), missing)) from exc


def _explain(settings: LLMSettings, cause: BaseException | None, text: str, missing_keys: list[str]) -> str:
    where = f" at {settings.api_base}" if settings.api_base else ""
    if missing_keys and ("credentials" in text.lower() or "api_key" in text):
        # A server on --api-base may check no key, but the provider's client still refuses to start without one.
        return (f"model {settings.model}{where}: no API key; set {' or '.join(missing_keys)} in the environment "
                "(any value, if the server checks none)")
    if isinstance(cause, litellm.AuthenticationError):
        return f"model {settings.model}{where} rejected the API key (401); check {_key_variable(settings)}"
    if isinstance(cause, litellm.NotFoundError):
        return (f"model {settings.model}{where} was not found (404); check the model name"
                + (f" and that {settings.api_base} serves it" if settings.api_base else ""))
    unreachable = "Cannot connect to host" in text or "Connection refused" in text or "Connect call failed" in text
    if unreachable or isinstance(cause, (litellm.APIConnectionError, litellm.Timeout)) or _refused(cause):
        return (f"model {settings.model}: cannot reach the endpoint{where} (connection failed); "
                f"is the server up{' and the URL right (--api-base)' if settings.api_base else ''}?")
    if isinstance(cause, litellm.PermissionDeniedError):
        return f"model {settings.model}{where}: permission denied (403); check that {_key_variable(settings)} may use it"
    return f"model {settings.model}{where} failed a one-token test call: {text[:300]}"


def _refused(error: BaseException | None) -> bool:
    """Whether a connection error lies anywhere under `error`: litellm reports a refused connection through the
    OpenAI SDK as a 500 ("InternalServerError: Connection error."), with the socket's error a few causes down."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, (ConnectionError, TimeoutError)):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False
