"""A stage file is either the previous whole file or the new whole file, whatever happens to its writer.

Resuming after a crash relies on it: a half-written Parquet file would be read as a finished stage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tasks.parquet_io as parquet_io
from tasks.parquet_io import write_atomic


def _table(version: int, rows: int = 2_000) -> pa.Table:
    return pa.table({"version": [version] * rows, "text": [f"row {i} of version {version} " * 8 for i in range(rows)]})


def _versions(path: Path) -> set[int]:
    return set(parquet_io.read_table(path).column("version").to_pylist())


def test_a_writer_failing_midway_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "translations.parquet"
    write_atomic(_table(1), target)

    def write_half_then_die(table: pa.Table, where: str) -> None:
        Path(where).write_bytes(b"PAR1" + b"\0" * 1000)  # a torn file, as a crash would leave it
        raise OSError("disk full")

    monkeypatch.setattr(parquet_io.pq, "write_table", write_half_then_die)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(_table(2), target)
    assert _versions(target) == {1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["translations.parquet"]


def test_a_reader_never_sees_a_partial_file_while_it_is_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "traces.parquet"
    write_atomic(_table(0), target)
    stop = threading.Event()

    def rewrite() -> None:
        version = 0
        while not stop.is_set():
            version += 1
            write_atomic(_table(version), target)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        reads = [_versions(target) for _ in range(40)]
    finally:
        stop.set()
        writer.join()
    assert all(len(v) == 1 for v in reads)  # each read is one whole version, never a mix or a torn file


def test_kill_9_in_the_middle_of_writes_leaves_a_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "nl_traces.parquet"
    child = textwrap.dedent(f"""
        import os
        import pyarrow as pa
        from pathlib import Path
        from tasks.parquet_io import write_atomic
        text = [os.urandom(100).hex() for _ in range(20000)]  # incompressible: each write takes a while
        version = 0
        while True:
            version += 1
            write_atomic(pa.table({{"version": [version] * len(text), "text": text}}), Path({str(target)!r}))
    """)
    for delay in (0.3, 0.45, 0.6):
        writer = subprocess.Popen([sys.executable, "-c", child])
        try:
            deadline = time.monotonic() + 60
            while not target.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(delay)
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
        assert len(_versions(target)) == 1
        assert [p.name for p in tmp_path.glob("*.parquet")] == [target.name]  # leftovers are hidden .tmp files
