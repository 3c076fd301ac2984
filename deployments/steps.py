"""The pull step of every deployment: run flows from this project's own checkout, offline.

A worker's flow-run process starts in an empty temporary directory; the deployment's entrypoints
(`flows/distill.py:distill`, ...) and relative paths such as `out/distill` are meant relative to
the project root. Prefect's stock `set_working_directory` step needs that root spelled out, which
would freeze one machine's path into `prefect.yaml`. This step finds it instead:

1. `$TOOL_DISTILL_HOME` when set (the Docker images set it to /opt/tool-distill);
2. otherwise the checkout this package is installed from (`pip install -e .`, as `make install` does).

No git clone and no network: the code a worker runs is the code installed next to it.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "TOOL_DISTILL_HOME"
_MARKER = Path("flows") / "distill.py"


def project_root() -> Path:
    root = Path(os.environ.get(ROOT_ENV) or Path(__file__).resolve().parent.parent)
    if not (root / _MARKER).is_file():
        raise FileNotFoundError(
            f"tool-distill project root {root} has no {_MARKER}: set {ROOT_ENV} to the directory that holds "
            f"flows/ and deployments/ (a checkout, or /opt/tool-distill in the Docker image)"
        )
    return root


def set_project_root() -> dict[str, str]:
    """Change into the project root; Prefect records the returned dict as the step's output."""
    root = project_root()
    os.chdir(root)
    return {"directory": str(root)}
