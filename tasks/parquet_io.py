"""Atomic, schema-checked Parquet files for the pipeline's stages.

A stage file is either absent or complete: it is written to a temporary file in the same
directory, fsynced, then renamed over the target, so a crash never leaves a partial file visible.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from tasks.records import arrow_schema

RecordT = TypeVar("RecordT", bound=BaseModel)


def write_atomic(table: pa.Table, path: Path) -> Path:
    """Write `table` to `path` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp_name)
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_records(records: Iterable[BaseModel], record_type: type[BaseModel], path: Path) -> Path:
    """Validate and write records of one type with that type's Arrow schema."""
    schema = arrow_schema(record_type)
    rows = []
    for record in records:
        if not isinstance(record, record_type):
            raise TypeError(f"{path.name}: expected {record_type.__name__}, got {type(record).__name__}")
        rows.append(record.model_dump(mode="python"))
    table = pa.Table.from_pylist(rows, schema=schema)
    return write_atomic(table, path)


def read_table(path: Path) -> pa.Table:
    """Read a Parquet file through one open handle.

    `pq.read_table(path)` opens the path more than once (footer, then pages); if a writer renames a new
    version into place in between, it mixes two files ("Page was smaller than expected"). One handle
    pins one inode, so with `write_atomic` a reader always sees one whole version.
    """
    with open(path, "rb") as handle:
        return pq.read_table(handle)


def read_records(path: Path, record_type: type[RecordT]) -> list[RecordT]:
    """Read a stage file back into records, checking its schema first."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: stage file missing; run the stage that writes it first")
    table = read_table(path)
    _check_schema(path, table.schema, record_type)
    return [record_type.model_validate(row) for row in table.to_pylist()]


class StageFileError(ValueError):
    """A file that is not the stage file it should be; `problem` says how, without the fix."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}; {fix}")
        self.problem = problem


def count_records(path: Path, record_type: type[BaseModel]) -> int:
    """How many rows the stage file at `path` holds, from its footer alone, after checking it is a Parquet
    file of `record_type`'s schema: a cheap check of a user-given file before any work starts on it."""
    try:
        with open(path, "rb") as handle:
            metadata = pq.read_metadata(handle)
    except pa.ArrowInvalid as exc:
        raise StageFileError(path, f"not a Parquet file ({str(exc).split('.')[0]})",
                             "pass the file that the stage wrote") from None
    _check_schema(path, metadata.schema.to_arrow_schema(), record_type)
    return metadata.num_rows


def _check_schema(path: Path, found: pa.Schema, record_type: type[BaseModel]) -> None:
    expected = arrow_schema(record_type).remove_metadata()
    found = found.remove_metadata()
    if found.equals(expected):
        return
    missing = sorted(set(expected.names) - set(found.names))
    extra = sorted(set(found.names) - set(expected.names))
    differences = []
    if missing:
        differences.append(f"missing columns: {', '.join(missing)}")
    if extra:
        differences.append(f"unexpected columns: {', '.join(extra)}")
    raise StageFileError(path, f"not a file of {record_type.__name__} rows from this version of tool-distill "
                         f"({'; '.join(differences) or 'same columns, other types'})",
                         "delete it (or its output dir) and re-run the stage that writes it")


def stage_path(output_dir: Path, stage: str) -> Path:
    return Path(output_dir) / f"{stage}.parquet"


