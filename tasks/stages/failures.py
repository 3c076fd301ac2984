"""A stage whose LLM calls mostly failed is a failed stage, not an empty success.

Every LLM stage turns a call that failed for good into a failed row (`llm_error` set) and goes on,
so one bad problem never stops a run. But when most rows fail, the cause is the run, not the rows:
a wrong model name, a missing key, an endpoint that is down. Then the flow must end Failed, with
the error classes counted, instead of writing an empty dataset and exiting 0. The rows that did
succeed are already cached, so the re-run after the fix pays only for the failed ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

# `LLMCallError` texts read "<model>: <ExceptionType>: <detail>"; a model name may hold ':' itself.
_EXCEPTION_TYPE = re.compile(r": ([A-Z][A-Za-z]*(?:Error|Exception|Timeout))\b")


class _MayFail(Protocol):
    @property
    def llm_error(self) -> str | None: ...


class TooManyLLMFailures(RuntimeError):
    """More than the allowed share of a stage's rows failed for LLM or provider reasons."""

    def __init__(self, stage: str, failed: int, total: int, classes: Counter[str], example: str) -> None:
        self.stage, self.failed, self.total, self.classes = stage, failed, total, classes
        tally = ", ".join(f"{name} x{count}" for name, count in classes.most_common())
        super().__init__(f"{stage}: {failed} of {total} rows failed in their LLM calls ({tally}); first: {example[:300]}. "
                         "Finished rows are kept: fix the model, key or endpoint and run the same command again.")


def error_class(message: str) -> str:
    """The exception type an `llm_error` names ("AuthenticationError"), or a short label for the others."""
    found = _EXCEPTION_TYPE.search(message)
    if found:
        return found.group(1)
    return "empty_reply" if "empty reply" in message else "other"


def check_llm_failures(stage: str, rows: Sequence[_MayFail], max_failed_fraction: float) -> None:
    """Raise `TooManyLLMFailures` when more than `max_failed_fraction` of `rows` failed in their LLM calls."""
    errors = [row.llm_error for row in rows if row.llm_error]
    if rows and len(errors) > max_failed_fraction * len(rows):
        raise TooManyLLMFailures(stage, len(errors), len(rows), Counter(map(error_class, errors)), errors[0])
