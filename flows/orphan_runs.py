"""Flow runs that a killed `tool-distill` left "Running" are marked Crashed by the next one.

A kill -9, or a forced stop (a second signal, or a run still going 5 s after the first), ends the
process before Prefect records how its flow run ended, so the Prefect UI would show it running
forever. The CLI's Prefect database is the project's own (`.state/prefect`, the temporary API
server), so only tool-distill processes of this project write to it. Each holds an flock on a file of
its own in `<PREFECT_HOME>/live/` while it runs; the kernel drops the lock when the process ends,
however it ends. A process that finds no lock held but its own knows that the CLI's runs still
Pending, Running or Cancelling in that database have nothing behind them, and marks them Crashed.
Where another tool-distill process is alive nothing is marked: its runs cannot be told from the dead
ones. Only the CLI's own runs are candidates (tagged `CLI_TAG`, no deployment): `make server` keeps its
database in the same folder, and its workers' deployment runs are alive without any lock here. A
Prefect server of the user's (PREFECT_API_URL set) is never touched.
"""

from __future__ import annotations

import fcntl
import uuid
from pathlib import Path
from typing import IO

LIVE_DIR = "live"
CLI_TAG = "tool-distill-cli"  # on every flow run the CLI starts (a filter in the UI, too)
CRASHED_MESSAGE = "the tool-distill process running it was killed (kill -9 or a forced stop) before it could say how it ended"


def hold_live_lock(prefect_home: Path) -> IO[bytes]:
    """This process's lock file in `<prefect_home>/live/`, locked until the returned file is closed or the
    process ends (keep a reference to it)."""
    live = prefect_home / LIVE_DIR
    live.mkdir(parents=True, exist_ok=True)
    handle = (live / f"{uuid.uuid4().hex}.lock").open("wb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def others_alive(prefect_home: Path, own: IO[bytes]) -> bool:
    """Whether another process holds its lock; the files of ended processes are removed on the way."""
    alive = False
    for path in (prefect_home / LIVE_DIR).glob("*.lock"):
        if path.name == Path(own.name).name:
            continue
        try:
            with path.open("rb") as other:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # nobody holds it: its process has ended
        except BlockingIOError:
            alive = True
        except FileNotFoundError:
            continue  # another starting process removed it first
    return alive


def mark_orphaned_runs_crashed(prefect_home: Path, own: IO[bytes]) -> int:
    """Mark Crashed the unfinished flow runs of the project's database when no other tool-distill process is
    alive; how many were marked. Never raises: a run must not fail over another run's leftovers."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Crashed

    if PREFECT_API_URL.value() or others_alive(prefect_home, own):
        return 0
    unfinished = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING,
                                                                   StateType.CANCELLING])),
        tags=FlowRunFilterTags(all_=[CLI_TAG]), deployment_id=FlowRunFilterDeploymentId(is_null_=True))
    marked = 0
    try:
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(flow_run_filter=unfinished):
                client.set_flow_run_state(run.id, Crashed(message=CRASHED_MESSAGE), force=True)
                marked += 1
    except Exception:  # noqa: BLE001 - the API being slow or odd must not stop the new run
        return marked
    return marked
