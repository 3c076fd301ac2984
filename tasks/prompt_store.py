"""Versioned prompt files: `tasks/prompts/<agent>/v<N>.yaml`.

A prompt's id (`solver/v1`) is stored on every row it produced, so a dataset can always say which
wording made it. Changing a prompt means adding `v2.yaml`, never editing `v1.yaml` in place: the id
is part of the task cache key, and an edited file under an old id would silently reuse stale rows.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

PROMPT_DIR = Path(__file__).parent / "prompts"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class PromptTemplate(BaseModel):
    agent: str
    version: str
    parts: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.agent}/{self.version}"

    def render(self, part: str, **values: str) -> str:
        """Fill `{name}` placeholders of one part. Other braces (`\\boxed{}`) are left alone."""
        if part not in self.parts:
            raise KeyError(f"prompt {self.id} has no part {part!r}; parts: {sorted(self.parts)}")
        text = self.parts[part]
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def available_versions(agent: str) -> list[str]:
    versions = sorted(p.stem for p in (PROMPT_DIR / agent).glob("v*.yaml"))
    return sorted(versions, key=lambda v: int(v[1:]))


@lru_cache(maxsize=None)
def load_prompt(agent: str, version: str = "latest") -> PromptTemplate:
    """Load `tasks/prompts/<agent>/<version>.yaml`; "latest" takes the highest version number."""
    versions = available_versions(agent)
    if not versions:
        raise FileNotFoundError(f"no prompt files for agent {agent!r} under {PROMPT_DIR}")
    chosen = versions[-1] if version == "latest" else version
    if chosen not in versions:
        raise FileNotFoundError(f"prompt {agent}/{chosen} not found; available: {', '.join(versions)}")
    parts = yaml.safe_load((PROMPT_DIR / agent / f"{chosen}.yaml").read_text(encoding="utf-8"))
    return PromptTemplate(agent=agent, version=chosen, parts=parts)
