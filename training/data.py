"""Read an SFT chat dataset and turn each conversation into a conversational prompt/completion pair.

Why prompt/completion: the loss must fall on the assistant's tokens only. TRL's
`assistant_only_loss` needs a chat template with `{% generation %}` markers, which the embedded
SmolLM2 ChatML template (and many others) lack. TRL's `completion_only_loss` works with any chat
template: it renders the prompt with the generation prompt, renders prompt + completion, and masks
everything before the completion. So the final assistant turn is the completion (including the
template's end-of-turn token, so the model learns to stop) and everything before it is the prompt.
Earlier assistant turns of a multi-turn chat are context, not targets.

Accepted inputs: `sft.parquet` from the distill flow (`tasks.records.SFTRecord`), or any
HF-style chat dataset as .parquet / .jsonl / .json / a `save_to_disk` folder, with a `messages`
column ({role, content}), a ShareGPT `conversations` column ({from, value}), or ready `prompt` and
`completion` columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from datasets import Dataset, load_from_disk

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def load_chat_dataset(path: Path) -> Dataset:
    """The dataset at `path` as rows of {"prompt": [messages], "completion": [assistant message]}."""
    path = Path(path)
    table = _read_table(path)
    columns = set(table.column_names)
    if {"prompt", "completion"} <= columns:
        return Dataset.from_list(table.select(["prompt", "completion"]).to_pylist())
    if "messages" in columns:
        column, convert = "messages", _plain_messages
    elif "conversations" in columns:
        column, convert = "conversations", _sharegpt_messages
    else:
        raise ValueError(
            f"{path}: no chat column found (columns: {sorted(columns)}). Expected `messages` "
            "(list of {role, content}), ShareGPT `conversations`, or `prompt` + `completion`."
        )
    rows = [
        split_prompt_completion(convert(messages, path, index), path, index)
        for index, messages in enumerate(table.column(column).to_pylist())
    ]
    if not rows:
        raise ValueError(f"{path}: the dataset has no rows; run the distill flow (or filter less strictly) first")
    return Dataset.from_list(rows)


def split_prompt_completion(messages: list[dict[str, str]], path: Path, index: int) -> dict[str, Any]:
    """Everything before the final assistant turn is the prompt; that turn is the completion."""
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        roles = [m["role"] for m in messages]
        raise ValueError(
            f"{path} row {index}: a training conversation needs at least one prompt message and must end "
            f"with an assistant message (the target); roles found: {roles}. Fix or drop that row."
        )
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _read_table(path: Path) -> pa.Table:
    """Read without the `datasets` cache: inputs are small and must not leave copies under ~/.cache."""
    if path.is_dir():
        return load_from_disk(str(path)).data.table
    if not path.exists():
        raise FileNotFoundError(f"{path}: training data not found; run the distill flow first (it writes sft.parquet)")
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix in (".jsonl", ".json"):
        return pa_json.read_json(path)
    raise ValueError(
        f"{path}: unsupported file type {path.suffix!r}; use .parquet, .jsonl/.json or a save_to_disk folder"
    )


def _plain_messages(messages: list[dict[str, Any]], path: Path, index: int) -> list[dict[str, str]]:
    try:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} row {index}: each message needs `role` and `content` ({error!r})") from error


def _sharegpt_messages(messages: list[dict[str, Any]], path: Path, index: int) -> list[dict[str, str]]:
    if messages and "role" in messages[0]:
        return _plain_messages(messages, path, index)
    out = []
    for message in messages:
        speaker = message.get("from")
        if speaker not in _SHAREGPT_ROLES:
            raise ValueError(
                f"{path} row {index}: unknown ShareGPT speaker {speaker!r}; expected one of {sorted(_SHAREGPT_ROLES)}"
            )
        out.append({"role": _SHAREGPT_ROLES[speaker], "content": str(message.get("value", ""))})
    return out
