"""The one LLM client of tool-distill: every model call goes through `complete`.

Callers need only these names. Behind them: litellm's Router (retries, one layer), per-model
call gates (`limits`), the HTTP transport that holds a gate's slot per request (`http`), the event
loop HTTP calls run on (`event_loop`), and the in-process providers: the embedded SmolLM2 model
(`local_provider`, `embedded_model`, `local_batching`) and the scripted test double
(`scripted_provider`).
"""

from tasks.llm.client import assistant_message, complete, parse_arguments, redact_secrets, supports_function_calling
from tasks.llm.embedded_model import EMBEDDED_LITELLM_MODEL, embedded_model_dir
from tasks.llm.limits import call_limits
from tasks.llm.records import FunctionCall, LLMCallError, LLMReply, LLMSettings, Usage

__all__ = [
    "EMBEDDED_LITELLM_MODEL",
    "FunctionCall",
    "LLMCallError",
    "LLMReply",
    "LLMSettings",
    "assistant_message",
    "call_limits",
    "complete",
    "embedded_model_dir",
    "parse_arguments",
    "redact_secrets",
    "supports_function_calling",
    "Usage",
]
