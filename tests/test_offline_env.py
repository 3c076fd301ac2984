"""The CLI's offline defaults: a fresh clone (no `.state/`) must start its ephemeral Prefect API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_cli_runs_in_a_directory_without_state(tmp_path: Path) -> None:
    """What `make demo` does on a fresh clone: before the fix Prefect only warned that it could not create
    `.state/prefect`, and the run died 120 s later waiting for its ephemeral API server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    cli = Path(sys.executable).with_name("tool-distill")
    entry = [str(cli)] if cli.exists() else [sys.executable, "-m", "flows.cli"]
    proc = subprocess.run([*entry, "distill", "--limit", "1", "--model", "scripted/arith", "--output-dir", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / ".state" / "prefect").is_dir()
    assert (tmp_path / "out" / "sft.parquet").is_file()
