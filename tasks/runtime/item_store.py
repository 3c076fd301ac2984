"""Per-item results of a mapped stage, kept the moment each item is done, so a killed run loses no finished item.

A stage runs its items in chunked Prefect tasks (tasks/runtime/stage_map.py); Prefect caches a
task's result only when the whole task finishes, so each item's result is also written here on its
own. An item's key is a hash of what determines its result: the stage module's source and every
argument (rows, model settings, stage config with its prompt version). Re-running the same command
finds the finished items by key and sends only the rest, whichever chunks they fall in.

The store is a `diskcache.Cache` (SQLite in WAL mode plus files for large values): each write is a
transaction, so a kill -9 leaves either no entry or a whole one, and threads and processes on one
machine share it safely. Prefect's own result store writes a file in place (a kill mid-write leaves
a torn one) and keeps a metadata record per result, so it was not used here. Entries are pickles,
like Prefect's own results: the store is as trusted as the output directory it lives in. No secret
is ever part of an argument (`LLMSettings` has no key field), so none reaches a key or an entry.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
from pydantic_core import to_jsonable_python

# What a stale entry raises when it is read back: a pickle of a class that has since moved or changed.
_UNREADABLE = (EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError, TypeError)
_MISSING = object()  # tells an absent key from a stored None


def item_key(*parts: Any) -> str:
    """A stable hex digest of `parts` (pydantic models, lists, dicts, scalars), equal across processes."""
    text = json.dumps(to_jsonable_python(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ItemStore:
    """The finished items of one stage, by key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache = diskcache.Cache(str(self.root), eviction_policy="none", size_limit=2**62)

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, result) for a finished item; (False, None) when absent or unreadable (then it is redone)."""
        try:
            result = self._cache.get(key, default=_MISSING)
        except _UNREADABLE:
            return False, None
        return (False, None) if result is _MISSING else (True, result)

    def put(self, key: str, result: Any) -> None:
        self._cache.set(key, result)

    def results(self) -> Iterator[Any]:
        """Every readable result in the store (for inspection and tests), in no particular order."""
        for key in list(self._cache.iterkeys()):
            found, result = self.get(key)
            if found:
                yield result

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> ItemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
