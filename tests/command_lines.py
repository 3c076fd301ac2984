"""How tests start the project's commands in a process of their own, as a user would."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_CLI = Path(sys.executable).with_name("tool-distill")
# the installed console script, or the module where the package is not installed
TOOL_DISTILL: list[str] = [str(_CLI)] if _CLI.exists() else [sys.executable, "-m", "flows.cli"]


def env_without_prefect() -> dict[str, str]:
    """This environment minus every PREFECT_ setting: the command starts its own ephemeral API, as it does alone."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
