"""`make deploy`: create the work pools, then register every deployment in deployments/prefect.yaml.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m deployments.deploy

Pools are process pools here (a worker runs each flow run as a subprocess of itself); docs/
deployments.md shows the Docker and Kubernetes variants. A pool that exists is left as it is (its
base job template may have been edited in the UI); deployments are updated in place.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import get_current_settings
from prefect.workers.process import ProcessWorker

from deployments.steps import project_root

PREFECT_FILE = Path(__file__).resolve().with_name("prefect.yaml")
WORK_POOLS = {
    "cpu-pool": "CPU work: the distill and pipeline flows (LLM calls, sandboxed SymPy).",
    "gpu-pool": "GPU work: QLoRA training and benchmark evaluation (train-eval).",
}


def ensure_work_pools(pools: dict[str, str] = WORK_POOLS) -> list[str]:
    """Create the missing process pools; returns the names created."""
    created = []
    with get_client(sync_client=True) as client:
        for name, description in pools.items():
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type="process", description=description,
                    base_job_template=ProcessWorker.get_default_base_job_template()))
                created.append(name)
            except ObjectAlreadyExists:
                pass
    return created


def deploy_all(prefect_file: Path = PREFECT_FILE) -> None:
    """`prefect deploy --all` from the project root, where the entrypoints' relative paths start."""
    subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
                   cwd=project_root(), check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefect-file", type=Path, default=PREFECT_FILE)
    args = parser.parse_args(argv)
    if not get_current_settings().api.url:
        parser.error("PREFECT_API_URL is not set: start a server (make server) and export "
                     "PREFECT_API_URL=http://127.0.0.1:4200/api, or use `make deploy`")
    created = ensure_work_pools()
    print(f"work pools: created {created or 'none'}, existing kept: {sorted(set(WORK_POOLS) - set(created))}")
    deploy_all(args.prefect_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
