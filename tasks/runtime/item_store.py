"""Per-item results of a mapped stage, one small file per item, so a killed run loses no finished item.

A stage runs its items in chunked Prefect tasks (tasks/runtime/stage_map.py); Prefect caches a task's
result only when the whole task finishes, so each item's result is also written here the moment
it is done. An item's key is a hash of what determines its result: the item function's source and
every argument (rows, model settings, stage config with its prompt version). Re-running the same
command finds the finished items by key and sends only the rest, whichever chunks they fall in.

Writes are atomic (temporary file, then rename), so a kill -9 leaves either no entry or a whole
one. There is no fsync: a process crash cannot lose a renamed file, and an entry truncated by a
power cut fails to load and is simply recomputed. Entries are pickles, like Prefect's own results:
the store is as trusted as the output directory it lives in. No secret is ever part of an
argument (`LLMSettings` has no key field), so none reaches a key or an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python


def item_key(*parts: Any) -> str:
    """A stable hex digest of `parts` (pydantic models, lists, dicts, scalars), equal across processes."""
    text = json.dumps(to_jsonable_python(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ItemStore:
    """A folder of `<key>.pkl` results."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.pkl"

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, result) for a finished item; (False, None) when absent or unreadable (then it is redone)."""
        try:
            return True, pickle.loads(self._path(key).read_bytes())
        except (FileNotFoundError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
            return False, None

    def put(self, key: str, result: Any) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp_name, self._path(key))
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def results(self) -> Iterator[Any]:
        """Every readable result in the store (for inspection and tests), in no particular order."""
        for path in sorted(self.root.glob("*.pkl")):
            found, result = self.get(path.stem)
            if found:
                yield result
