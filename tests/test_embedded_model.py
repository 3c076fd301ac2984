"""The embedded model's one-time conversion: many first uses at once convert it once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks.llm import embedded_model


def test_concurrent_first_uses_convert_the_model_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL_DISTILL_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(embedded_model, "_gguf_path", lambda: tmp_path / "model.gguf")
    conversions: list[str] = []

    def slow_conversion(gguf: Path, target: Path) -> None:  # stands in for the ~30 s GGUF conversion
        conversions.append(threading.current_thread().name)
        time.sleep(0.3)
        target.mkdir()
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(embedded_model, "_convert_gguf", slow_conversion)
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: embedded_model.embedded_model_dir(), range(8)))
    assert len(conversions) == 1
    assert set(dirs) == {tmp_path / "models" / embedded_model.EMBEDDED_MODEL_NAME}
    assert embedded_model.embedded_model_dir() == dirs[0] and len(conversions) == 1  # converted dir is reused


def test_a_failed_conversion_leaves_no_model_and_the_next_use_tries_again(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL_DISTILL_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(embedded_model, "_gguf_path", lambda: tmp_path / "model.gguf")
    attempts = []

    def failing_then_working(gguf: Path, target: Path) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("disk full")
        target.mkdir()
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(embedded_model, "_convert_gguf", failing_then_working)
    with pytest.raises(RuntimeError, match="disk full"):
        embedded_model.embedded_model_dir()
    assert not (tmp_path / "models" / embedded_model.EMBEDDED_MODEL_NAME).exists()
    assert (embedded_model.embedded_model_dir() / "config.json").exists() and len(attempts) == 2
