"""The CLI's own lines on the terminal; everything libraries print goes to a log file under the output dir.

A run imports transformers, Prefect, litellm, bitsandbytes and math-verify, which between them
print hundreds of warnings and log lines. A user needs the progress, the summary and, on failure,
one line saying what to fix. So, unless `--verbose`, the process's own stdout and stderr (file
descriptors 1 and 2, which every library, C extension and child process writes to) are pointed at
`<output_dir>/tool-distill.log`, and the CLI writes its lines to copies of the original
descriptors kept before the switch. Python warnings are logged there too, and counted at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

LOG_NAME = "tool-distill.log"


class Console:
    """`out` and `err` are the terminal's; after `send_libraries_to`, fds 1 and 2 are the log file's."""

    def __init__(self) -> None:
        self.out: TextIO = sys.stdout
        self.err: TextIO = sys.stderr
        self.log_path: Path | None = None

    def send_libraries_away(self) -> None:
        """Point fds 1 and 2 at a temporary log, so library output stays off the terminal before the output
        dir may be created (a run refused at its preflight leaves no files behind)."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        self.err = os.fdopen(os.dup(2), "w", buffering=1)
        log_fd, name = tempfile.mkstemp(prefix="tool-distill-", suffix=".log")
        self.log_path = Path(name)
        self._point_std_fds_at(log_fd)
        logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> fd 2 -> the log
        from tasks.runtime.progress import show_progress_on  # imports Prefect: only once the run starts

        show_progress_on(self.err)

    def keep_log_in(self, output_dir: Path) -> None:
        """Move the log into the output dir (created now) and go on writing it there."""
        if self.log_path is None:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        final = output_dir / LOG_NAME
        with self.log_path.open("rb") as early, final.open("ab") as kept:
            shutil.copyfileobj(early, kept)
        self.log_path.unlink()
        self.log_path = final
        self._point_std_fds_at(os.open(final, os.O_WRONLY | os.O_APPEND))

    def discard_log(self) -> None:
        if self.log_path is not None and self.log_path.parent == Path(tempfile.gettempdir()):
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    @staticmethod
    def _point_std_fds_at(fd: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def library_warnings(self) -> int:
        """Lines of the log that carry a warning (Python's warnings and libraries' WARNING log lines)."""
        if self.log_path is None or not self.log_path.exists():
            return 0
        with self.log_path.open(errors="replace") as handle:
            return sum(1 for line in handle if "Warning" in line or "WARNING" in line)
