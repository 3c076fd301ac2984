"""The offline defaults the CLI and the benchmarks set before Prefect starts."""

from __future__ import annotations

import os
from pathlib import Path

from flows.offline_env import apply_offline_defaults


def test_prefect_home_is_created_with_its_parents_and_user_settings_win(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    home = tmp_path / "fresh-clone" / ".state" / "prefect"
    apply_offline_defaults(home, OPENAI_API_KEY_FOR_TEST="sk-test")
    assert home.is_dir()
    assert os.environ["PREFECT_HOME"] == str(home.resolve())
    assert os.environ["DO_NOT_TRACK"] == "0"  # set by the user: kept
    assert os.environ["OPENAI_API_KEY_FOR_TEST"] == "sk-test"
    monkeypatch.delenv("OPENAI_API_KEY_FOR_TEST")


def test_a_users_prefect_home_is_created_instead_of_the_default(tmp_path: Path, monkeypatch) -> None:
    chosen = tmp_path / "a" / "b" / "home"
    monkeypatch.setenv("PREFECT_HOME", str(chosen))
    apply_offline_defaults(tmp_path / "default")
    assert chosen.is_dir() and not (tmp_path / "default").exists()
