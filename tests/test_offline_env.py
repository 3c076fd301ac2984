"""The offline defaults the CLI and the benchmarks set before Prefect starts."""

from __future__ import annotations

import os
import re
from pathlib import Path

from training.offline_env import OFFLINE_DEFAULTS, apply_offline_defaults

ROOT = Path(__file__).resolve().parent.parent


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


def test_the_makefile_and_the_image_set_the_same_defaults_for_commands_that_run_none_of_our_python() -> None:
    makefile = dict(re.findall(r"^export (\w+) := (\S+)$", (ROOT / "Makefile").read_text(), re.M))
    image = dict(re.findall(r"^\s+(\w+)=(\S+?) *\\?$", (ROOT / "Dockerfile").read_text(), re.M))
    assert makefile == OFFLINE_DEFAULTS
    assert {name: image.get(name) for name in OFFLINE_DEFAULTS} == OFFLINE_DEFAULTS
