"""The one LLM client of tool-distill: every model call goes through `complete`.

Callers need only these names. Behind them: litellm's Router (retries, one layer), per-model
call gates (`limits`), the HTTP transport that holds a gate's slot per request (`http`), the event
loop HTTP calls run on (`event_loop`), what a run spends and its budget (`spend`), batch APIs (`batch`),
and the in-process providers: the embedded SmolLM2 model
(`local_provider`, `embedded_model`, `local_batching`) and the scripted test double
(`scripted_provider`).

The records (`LLMSettings`, `Usage`, ...) import nothing heavy; the client's names load litellm on
first use. That is why they are looked up lazily here: the CLI validates a run's settings, and
fails on a bad one, before paying litellm's seconds-long import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tasks.llm.embedded_model import EMBEDDED_LITELLM_MODEL, embedded_model_dir
from tasks.llm.records import BATCH_PROVIDERS, FunctionCall, LLMCallError, LLMReply, LLMSettings, ModelPrice, SpendSettings
from tasks.llm.records import Usage

if TYPE_CHECKING:
    from tasks.llm.batch import batch_calls
    from tasks.llm.client import assistant_message, complete, parse_arguments, redact_secrets, supports_function_calling
    from tasks.llm.limits import call_limits
    from tasks.llm.probe import PreflightError, preflight
    from tasks.llm.spend import BudgetReached, LedgerSpec, SpendLedger, SpendTotals, StageSpend, active_ledger
    from tasks.llm.spend import ledger_totals, open_ledger, register_price, spend_control, spend_item, token_prices
    from tasks.llm.spend import using_ledger

_LAZY = {
    "assistant_message": "tasks.llm.client",
    "complete": "tasks.llm.client",
    "parse_arguments": "tasks.llm.client",
    "redact_secrets": "tasks.llm.client",
    "supports_function_calling": "tasks.llm.client",
    "call_limits": "tasks.llm.limits",
    "PreflightError": "tasks.llm.probe",
    "preflight": "tasks.llm.probe",
    "batch_calls": "tasks.llm.batch",
    **{name: "tasks.llm.spend" for name in (
        "BudgetReached", "LedgerSpec", "SpendLedger", "SpendTotals", "StageSpend", "active_ledger", "ledger_totals",
        "open_ledger", "register_price", "spend_control", "spend_item", "token_prices", "using_ledger")},
}

__all__ = [
    "BATCH_PROVIDERS",
    "BudgetReached",
    "EMBEDDED_LITELLM_MODEL",
    "FunctionCall",
    "LLMCallError",
    "LLMReply",
    "LLMSettings",
    "LedgerSpec",
    "ModelPrice",
    "PreflightError",
    "SpendLedger",
    "SpendSettings",
    "SpendTotals",
    "StageSpend",
    "Usage",
    "active_ledger",
    "assistant_message",
    "batch_calls",
    "call_limits",
    "complete",
    "embedded_model_dir",
    "ledger_totals",
    "open_ledger",
    "parse_arguments",
    "preflight",
    "redact_secrets",
    "register_price",
    "spend_control",
    "spend_item",
    "supports_function_calling",
    "token_prices",
    "using_ledger",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tasks.llm' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
