"""What a long stage shows where no terminal is attached: plain lines with counts, rate and ETA, each count once."""

from __future__ import annotations

import io

import pytest

from tasks.runtime import progress as progress_module
from tasks.runtime.progress import StageProgress


@pytest.fixture(autouse=True)
def plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress_module.MODE_ENV, "plain")


class _Failed:
    llm_error = "openai/x: AuthenticationError"


def test_rows_show_done_total_and_failures_and_the_last_line_is_not_repeated() -> None:
    out = io.StringIO()
    stage = StageProgress("solve", 3, 1, stream=out)
    stage.item_done("a", object())
    stage.item_done("a", object())  # a retried chunk's row counts once
    stage.item_done("b", _Failed())
    stage.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("solve: 2/3 rows (67%)")  # the first line at once, then every PLAIN_EVERY_S
    assert lines[-1].startswith("solve: 3/3 rows (100%)") and lines[-1].endswith("1 failed")
    assert len(lines) == 2


def test_training_steps_and_eval_problems_count_in_their_own_unit_without_failures() -> None:
    out = io.StringIO()
    train = StageProgress("train", 20, 1, stream=out, unit="steps")
    train.advance(0)
    train.advance(19)
    train.finish()
    lines = out.getvalue().splitlines()
    assert lines == [lines[0], lines[-1]] and lines[0].startswith("train: 1/20 steps (5%), 0.00/s")
    assert lines[-1].startswith("train: 20/20 steps (100%)") and "failed" not in lines[-1]


def test_quiet_mode_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress_module.MODE_ENV, "off")
    out = io.StringIO()
    stage = StageProgress("translate", 2, stream=out)
    stage.item_done("a", object())
    stage.finish()
    assert out.getvalue() == ""
