"""A base model named by the user is checked before any work: a folder, the embedded model, or a Hub id
that is cached (or, online, known to the Hub). So is a Hub dataset the paper command reads."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from training.model_source import base_model_problem, hub_dataset_problem


@pytest.fixture
def offline_hub_cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face cache, and the Hub switched off, as on a machine without network."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_folders_files_and_names_that_cannot_be_a_model(tmp_path: Path, offline_hub_cache: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert base_model_problem(str(model)) is None
    assert base_model_problem("embedded") is None
    assert "without config.json" in base_model_problem(str(tmp_path))
    assert "a file" in base_model_problem(str(model / "config.json"))
    assert "not a Hugging Face Hub id" in base_model_problem(str(tmp_path / "missing" / "model"))
    assert "not a Hugging Face Hub id" in base_model_problem("two/slashes/here")


def test_a_hub_id_offline_must_be_in_the_cache(offline_hub_cache: Path) -> None:
    assert "HF_HUB_OFFLINE" in base_model_problem("someorg/somemodel")
    repo = offline_hub_cache / "models--someorg--somemodel"  # the layout snapshot_download leaves
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / "config.json").write_text("{}")
    assert base_model_problem("someorg/somemodel") is None


def test_a_hub_dataset_offline_must_be_in_the_hub_or_the_datasets_cache(tmp_path: Path, offline_hub_cache: Path,
                                                                         monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    problem = hub_dataset_problem("someorg/someset", "pass a local file")
    assert problem is not None and "HF_HUB_OFFLINE" in problem and problem.endswith("pass a local file")
    repo = offline_hub_cache / "datasets--someorg--someset"  # the layout `hf download --repo-type dataset` leaves
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    assert hub_dataset_problem("someorg/someset", "pass a local file") is None
    (tmp_path / "home" / "datasets" / "someorg___prepared").mkdir(parents=True)  # ... and in its own cache
    assert hub_dataset_problem("someorg/prepared", "pass a local file") is None


def test_a_hub_that_cannot_be_reached_is_named_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    problem = hub_dataset_problem("someorg/someset", "pass a local file")
    assert problem is not None and "cannot be reached" in problem and problem.endswith("pass a local file")
    problem = base_model_problem("someorg/somemodel")
    assert problem is not None and "cannot be reached" in problem
