"""Environment defaults for running offline: set before Prefect, litellm or tokenizers are imported.

The one place for them: every entry point calls `set_offline_defaults` (the CLI through
`apply_offline_defaults`, `python -m eval`, `python -m training`, `tasks`, the benchmarks, the tests).
It lives in training/, the lowest package all of those may import (the import-linter layers), and
imports nothing. Each value is only a default: a variable the user has set wins.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_DEFAULTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else litellm fetches its cost map from the internet on import
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a loaded 2-core machine misses the 20 s default
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_defaults(**extra: str) -> None:
    """Set the offline defaults (and `extra`) where unset."""
    for name, value in {**OFFLINE_DEFAULTS, **extra}.items():
        os.environ.setdefault(name, value)


def apply_offline_defaults(prefect_home: Path, **extra: str) -> None:
    """Set the offline defaults (and `extra`) where unset, and create PREFECT_HOME with its parents.

    Prefect creates its home without parents and, when that fails, only warns; the ephemeral API
    server then cannot open its database and the run dies 120 s later with "Timed out while
    attempting to connect to ephemeral Prefect API server". A fresh clone has no `.state/`, so
    `make demo` hit exactly that.
    """
    set_offline_defaults(PREFECT_HOME=str(prefect_home.resolve()), **extra)
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
