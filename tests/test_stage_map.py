"""Chunked stages: results in input order, every item run once, a crash mid-stage or a retried chunk
recomputes nothing finished, and the per-item store survives a torn write."""

from __future__ import annotations

import importlib
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness

from tasks.runtime.item_store import ItemStore, item_key
from tasks.runtime.stage_map import map_stage, stage_source_hash

RUNS: Counter[str] = Counter()
FAIL_ONCE: set[str] = set()
_lock = threading.Lock()


def square(name: str, offset: int) -> int:
    """An item function that counts its runs and fails once for the names in FAIL_ONCE."""
    with _lock:
        RUNS[name] += 1
        if name in FAIL_ONCE:
            FAIL_ONCE.discard(name)
            raise RuntimeError(f"{name}: transient fault outside the LLM call")
    return int(name.removeprefix("n")) ** 2 + offset


@pytest.fixture(scope="module")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def fresh_counts():
    RUNS.clear()
    FAIL_ONCE.clear()


@flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
def squares(names: list[str], offset: int, cache_dir: Path, chunk_size: int = 3) -> list[int]:
    return map_stage("square", square, [(n,) for n in names], offset, cache_dir=cache_dir, workers=2,
                     chunk_size=chunk_size)


NAMES = [f"n{i}" for i in range(10)]


def test_results_come_back_in_input_order_each_item_run_once(prefect_api, tmp_path: Path) -> None:
    assert squares(NAMES, 1, tmp_path) == [i * i + 1 for i in range(10)]
    assert RUNS == Counter(NAMES)
    assert len(list(ItemStore(tmp_path / "items" / "square").results())) == 10


def test_a_finished_stage_and_a_stage_cut_short_rerun_no_item(prefect_api, tmp_path: Path) -> None:
    squares(NAMES, 2, tmp_path)
    squares(NAMES, 2, tmp_path)  # the stage result
    for stage_result in (p for p in tmp_path.iterdir() if p.is_file()):
        stage_result.unlink()  # as if killed before the stage finished: only the item store is left
    assert squares(NAMES + ["n10"], 2, tmp_path, chunk_size=4)[-1] == 102  # other chunks, same items
    assert RUNS == Counter(NAMES + ["n10"])
    squares(NAMES, 3, tmp_path)  # another shared argument is another item
    assert RUNS["n0"] == 2


def test_a_retried_chunk_reruns_only_the_item_that_failed(prefect_api, tmp_path: Path) -> None:
    FAIL_ONCE.add("n4")  # in the second chunk (n3, n4, n5)
    assert squares(NAMES, 0, tmp_path) == [i * i for i in range(10)]
    assert RUNS["n4"] == 2
    assert RUNS - Counter({"n4": 1}) == Counter(NAMES)


def test_bad_sizes_are_refused(prefect_api, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        squares(NAMES, 0, tmp_path, chunk_size=0)


class _Stale:
    """A result type that later disappears, as a record class does when a module is renamed."""


def test_item_store_keys_are_stable_and_a_stale_entry_is_recomputed_not_fatal(tmp_path: Path, monkeypatch) -> None:
    key = item_key("source", {"b": 1, "a": [1, 2]}, 3)
    assert key == item_key("source", {"a": [1, 2], "b": 1}, 3) != item_key("source", {"a": [1, 2], "b": 1}, 4)
    with ItemStore(tmp_path) as store:
        assert store.get(key) == (False, None)
        store.put(key, {"answer": 42})
        store.put("stale", _Stale())
        store.put("none", None)
    with ItemStore(tmp_path) as store:  # another process's view: what was put is there
        assert store.get(key) == (True, {"answer": 42})
        assert store.get("none") == (True, None)  # a stored None is a result, not a miss
        monkeypatch.delattr(sys.modules[_Stale.__module__], "_Stale")  # the class is gone: its pickle cannot load
        assert store.get("stale") == (False, None)
        assert sorted(map(repr, store.results())) == ["None", "{'answer': 42}"]


def test_the_stage_key_covers_the_modules_of_its_package_that_it_imports(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "stagepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text("LIMIT = 1\n")
    (package / "other.py").write_text("X = 1\n")
    (package / "stage.py").write_text("from stagepkg.rules import LIMIT\n\n\ndef run(x):\n    return x < LIMIT\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        stage = importlib.import_module("stagepkg.stage")
        importlib.import_module("stagepkg.other")
        before = stage_source_hash(stage.run)
        (package / "other.py").write_text("X = 100\n")
        assert stage_source_hash(stage.run) == before  # a module the stage does not import
        (package / "rules.py").write_text("LIMIT = 100\n")
        assert stage_source_hash(stage.run) != before  # the rules it decides by
    finally:
        for name in [n for n in sys.modules if n == "stagepkg" or n.startswith("stagepkg.")]:
            del sys.modules[name]
