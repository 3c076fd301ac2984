"""A tool-distill process is known to be alive by the flock it holds in <PREFECT_HOME>/live/, whatever ended the
others (the end-to-end check, a run killed with -9 marked Crashed by the next one, is in test_cli.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.orphan_runs import LIVE_DIR, hold_live_lock, others_alive

HOLDER = """
import sys, time
from pathlib import Path
from flows.orphan_runs import hold_live_lock
lock = hold_live_lock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_tells_a_live_process_from_a_killed_one_and_a_killed_ones_file_goes(tmp_path: Path) -> None:
    own = hold_live_lock(tmp_path)
    assert not others_alive(tmp_path, own)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert others_alive(tmp_path, own)
    finally:
        holder.send_signal(signal.SIGKILL)  # no chance to clean up: only the kernel drops its lock
        holder.wait()
    time.sleep(0.1)
    assert not others_alive(tmp_path, own)
    assert [p.name for p in (tmp_path / LIVE_DIR).iterdir()] == [Path(own.name).name]  # the dead one's file went
