"""The upload of a run's output folder to a Hugging Face dataset repo.

Kept apart from the card writer, which imports the spend report and so litellm: the CLI asks for a
token before a run starts, and that question must not cost the seconds of an LLM client's import.
"""

from __future__ import annotations

from pathlib import Path

CARD_NAME = "README.md"  # the Hub shows a dataset repo's README.md as its card


def hub_token(repo: str) -> str:
    """The token an upload to `repo` uses (HF_TOKEN or a login); a RuntimeError that says how to give one if there
    is none. The CLI asks before the run starts: the upload is its last step, after every LLM call is paid for."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise RuntimeError(f"--push-to-hub {repo}: no Hugging Face token found; set HF_TOKEN or run "
                           "`huggingface-cli login`, or leave out --push-to-hub")
    return token


def push_to_hub(output_dir: Path, repo: str, *, private: bool = True) -> str:
    """Upload the card and the stage Parquet files to a Hub dataset repo; needs a token (`hub_token`)."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token(repo))
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(output_dir), repo_id=repo, repo_type="dataset",
                               allow_patterns=[CARD_NAME, "*.parquet"])
    return commit.commit_url
