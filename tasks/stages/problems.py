"""The pipeline's input stage: read problems from JSONL, Parquet or CSV into `ProblemRecord`s.

Bad input must never cost work that was already done, and must never leave a half-written
`problems.parquet`: this module only reads and validates, and returns records; the caller writes
them with `tasks.parquet_io.write_records` once everything checked out. Each bad row (malformed
JSON, missing field, non-UTF-8 bytes, duplicate id, gigantic problem) is reported with its file,
line and a fix. By default any bad row raises `ProblemInputError`; with `skip_bad_rows=True` bad
rows are skipped and listed in `ProblemLoadReport.skipped`.

Common public layouts are mapped as they are, so the shared copies need no rewriting:
`question` → problem (GSM8K, OlympiadBench); `final_answer` → answer (OlympiadBench, a list);
a GSM8K answer keeps only the number after `####`; a MATH-style row without an answer takes the
last `\\boxed{}` of its `solution`; `unique_id`/`idx` → id. Other layouts name their columns
(`FieldMap`: `--problem-field`, `--answer-field`). A row whose answer field is present but empty is
a problem without a reference answer: the solver's samples vote on its label (tasks/stages/sampling.py).

`hf:<dataset>[:<split>]` (or `hf:<dataset>:<config>:<split>`) reads a Hugging Face dataset through
`datasets`: a `save_to_disk` folder (with `load_from_disk`, since `load_dataset` refuses those) or
a dataset id or local data folder (with `load_dataset`). Only local copies are read (`datasets`' own
cache from an earlier online load, a copy `hf download --repo-type dataset` put in the Hub cache, or
a folder) unless HF_HUB_OFFLINE=0 is set: offline, `load_dataset` would otherwise retry DNS for
many seconds before saying it found nothing (docs/benchmarks.md, "Figures behind choices in the code"). Its rows then go through the same checks as a file's.
"""

from __future__ import annotations

import ast
import codecs
import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from eval.grader import extract_boxed
from tasks.records import ProblemRecord
from tasks.stages.config import HF_PREFIX, bundled_problems_path
from tasks.stages.decontam import DecontaminationReport, decontaminate_with_report
from tasks.stages.dedup import dedup_problems
from training.model_source import hub_cache_snapshot

SUPPORTED_SUFFIXES = (".jsonl", ".parquet", ".csv")
PROBLEM_KEYS = ("problem", "question")
ANSWER_KEYS = ("answer", "final_answer")
ID_KEYS = ("id", "unique_id", "idx")
SKIP_HINT = "or re-run with --skip-bad-rows to skip such rows"
NO_ANSWER_FIELD = "none"  # --answer-field none: read no answers; every problem is labelled by majority vote
DEFAULT_MAX_INPUT_BYTES = 1 << 30  # a problems file is text: past this it is a mistake (a device, a dump)


class BadRow(BaseModel):
    """One input row that could not become a problem. `line` is 1-based (a Parquet row's index + 1)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        unit = "line" if self.file.endswith((".jsonl", ".csv")) else "row"  # a Parquet file or a dataset has rows
        where = f"{self.file} {unit} {self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class ProblemLoadReport(BaseModel):
    problems: list[ProblemRecord]
    skipped: list[BadRow]
    files: list[str]
    rows_read: int

    def skipped_by_reason(self) -> dict[str, int]:
        """Tally of skipped rows by the kind of fault (the reason up to its first colon)."""
        tally: dict[str, int] = {}
        for bad in self.skipped:
            kind = bad.reason.split(":", 1)[0]
            tally[kind] = tally.get(kind, 0) + 1
        return tally


class ProblemInputError(ValueError):
    """Raised for bad input when rows may not be skipped; `bad_rows` holds every fault found."""

    def __init__(self, bad_rows: list[BadRow], *, skipping_helps: bool = True):
        self.bad_rows = bad_rows
        # --skip-bad-rows skips rows; a fault of a whole file or folder (line 0) it cannot help with, nor a file
        # whose every row is bad, nor a run that already skips
        message = f"{bad_rows[0]}; {SKIP_HINT}" if bad_rows[0].line and skipping_helps else str(bad_rows[0])
        if len(bad_rows) > 1:
            more = ", ".join(f"{b.file}:{b.line}" for b in bad_rows[1:6])
            message += f" ({len(bad_rows) - 1} more bad rows: {more}{', ...' if len(bad_rows) > 6 else ''})"
        super().__init__(message)


class FieldMap(BaseModel):
    """Which column holds the problem and which the answer; None: the common layouts (module docstring).

    `answer=NO_ANSWER_FIELD` ("none") reads no answer at all: every problem is labelled by its samples' vote."""

    problem: str | None = None
    answer: str | None = None

    def problem_keys(self) -> tuple[str, ...]:
        return (self.problem,) if self.problem else PROBLEM_KEYS


def load_problems(
    path: Path | str,
    *,
    skip_bad_rows: bool = False,
    max_problem_chars: int = 20_000,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    source: str | None = None,
    fields: FieldMap | None = None,
) -> ProblemLoadReport:
    """Read every problem in `path`: a .jsonl/.parquet/.csv file, a folder of them, or `hf:<dataset>[:<split>]`.

    `source` fills rows that have no `source` column; by default it is the file's stem (or
    `<folder>/<stem>` for a folder, the dataset id for `hf:`). Ids missing from the input become
    `<stem>-<line>`; ids of a folder's files are prefixed with the file's stem, since such splits
    often number per file. A row whose answer field is present but empty (or `fields.answer` is
    "none") becomes a problem without a reference answer (`answer_source="none"`).
    """
    fields = fields or FieldMap()
    if isinstance(path, str) and path.startswith(HF_PREFIX):
        inputs = [_read_hf(path, fields)]
        label = path
    else:
        path = Path(path)
        files = _input_files(path)
        from_folder = path.is_dir()
        inputs = [_read_file(file, max_input_bytes, source=f"{path.name}/{file.stem}" if from_folder else file.stem,
                             id_prefix=f"{file.stem}/" if from_folder else "") for file in files]
        label = str(path)
    problems: list[ProblemRecord] = []
    bad_rows: list[BadRow] = []
    first_line_of_id: dict[str, str] = {}
    rows_read = 0
    for found in inputs:
        bad_rows += found.bad
        if not found.rows and not found.bad:
            bad_rows.append(BadRow(file=found.where, line=0, reason="empty file: it holds no rows; "
                                   "give it one problem per line with keys problem, answer"))
        for line, row in found.rows:
            rows_read += 1
            try:
                record = _to_record(row, line=line, source=source or found.source, default_id=f"{found.stem}-{line}",
                                    id_prefix=found.id_prefix, max_problem_chars=max_problem_chars, fields=fields)
            except _RowFault as fault:
                bad_rows.append(BadRow(file=found.where, line=line, reason=str(fault)))
                continue
            if record.id in first_line_of_id:
                bad_rows.append(BadRow(
                    file=found.where, line=line,
                    reason=f"duplicate id: {record.id!r} was first seen at {first_line_of_id[record.id]}; "
                           "give each problem a unique id (or drop the id column to have ids assigned)"))
                continue
            first_line_of_id[record.id] = f"{found.name} line {line}"
            problems.append(record)
        rows_read += sum(1 for b in found.bad if b.line)
    bad_rows.sort(key=lambda b: (b.file, b.line))
    if bad_rows and not skip_bad_rows:
        raise ProblemInputError(bad_rows, skipping_helps=bool(problems))
    if not problems:
        raise ProblemInputError(bad_rows or [BadRow(file=label, line=0, reason="no problems found")], skipping_helps=False)
    return ProblemLoadReport(problems=problems, skipped=bad_rows, files=[found.where for found in inputs],
                             rows_read=rows_read)


class PreparedProblems(BaseModel):
    """The problems a run will solve, and what was removed on the way (for the summary and the card)."""

    problems: list[ProblemRecord]
    counts: dict[str, int]
    skipped_rows: int
    duplicates: int
    decontamination: DecontaminationReport | None


def prepare_problems(path: Path | str, *, skip_bad_rows: bool, max_problem_chars: int, max_input_bytes: int,
                     decontaminate: bool, limit: int | None, fields: FieldMap | None = None) -> PreparedProblems:
    """Load, drop duplicates, drop benchmark problems (before any LLM call is paid), keep the first `limit`."""
    report = load_problems(path, skip_bad_rows=skip_bad_rows, max_problem_chars=max_problem_chars,
                           max_input_bytes=max_input_bytes, fields=fields)
    unique, duplicates = dedup_problems(report.problems)
    counts = {"loaded": len(report.problems), "after_dedup": len(unique)}
    decontamination = None
    if decontaminate:
        unique, decontamination = decontaminate_with_report(unique)
        counts["after_decontamination"] = len(unique)
    problems = unique[:limit]
    counts["problems"] = len(problems)
    return PreparedProblems(problems=problems, counts=counts, skipped_rows=len(report.skipped),
                            duplicates=len(duplicates), decontamination=decontamination)


class _RowFault(ValueError):
    """A row-level fault; its message becomes a BadRow reason."""


def _input_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUPPORTED_SUFFIXES and p.is_file())
        if not files:
            raise ProblemInputError([BadRow(file=str(path), line=0, reason=(
                f"no problem files in this folder; expected files ending in {', '.join(SUPPORTED_SUFFIXES)}"))])
        return files
    if path.is_symlink() and not path.exists():
        raise ProblemInputError([BadRow(file=str(path), line=0, reason=(
            "a symlink that leads nowhere (a loop, or a target that is gone); pass the problems file itself"))])
    if not path.exists():
        raise FileNotFoundError(f"{path}: problems file not found; pass a .jsonl, .parquet or .csv file "
                                "(or omit it to use the bundled demo problems)")
    if not path.is_file():
        raise ProblemInputError([BadRow(file=str(path), line=0, reason=(
            "not a regular file (a device, a pipe or a socket, perhaps behind a symlink); pass a .jsonl, .parquet "
            "or .csv file, or a folder of them"))])
    if path.suffix not in SUPPORTED_SUFFIXES:
        raise ProblemInputError([BadRow(file=str(path), line=0, reason=(
            f"unsupported file type {path.suffix!r}; convert it to one of {', '.join(SUPPORTED_SUFFIXES)}"))])
    return [path]


def _hub_download_allowed() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("0", "false", "no", "off")


@contextmanager
def _local_copies_only() -> Iterator[None]:
    """Hugging Face's offline mode for the duration of a load, unless the user set HF_HUB_OFFLINE=0.

    Both libraries read the flag from a module constant set at import, so the constants are set, and
    restored after: other code of the process (the paper flow downloads MATH from the Hub) keeps its mode."""
    import datasets.config
    import huggingface_hub.constants

    if _hub_download_allowed():
        yield
        return
    saved = huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def parse_hf_spec(spec: str) -> tuple[str, str | None, str | None]:
    """`hf:<dataset>[:<split>]` or `hf:<dataset>:<config>:<split>` -> (dataset, config, split)."""
    parts = spec.removeprefix(HF_PREFIX).split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise ProblemInputError([BadRow(file=spec, line=0, reason=(
            "malformed Hugging Face source; write hf:<dataset>[:<split>] or hf:<dataset>:<config>:<split>, "
            "e.g. hf:openai/gsm8k:main:train or hf:data/math_train_saved"))])
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return parts[0], None, parts[1] if len(parts) == 2 else None


def _hf_fault(spec: str, reason: str) -> ProblemInputError:
    return ProblemInputError([BadRow(file=spec, line=0, reason=reason)])


def _load_hf(spec: str, dataset: str, config: str | None) -> Any:
    """The dataset (a Dataset or a DatasetDict), from local copies; a failure becomes one line with a fix."""
    import datasets

    folder = Path(dataset)
    with _local_copies_only():
        try:
            if folder.is_dir() and any((folder / name).exists() for name in ("state.json", "dataset_dict.json")):
                return datasets.load_from_disk(str(folder))
            return load_dataset_or_hub_copy(dataset, config)
        except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
            how = ("set HF_HUB_OFFLINE=0 to let it download" if not _hub_download_allowed()
                   else "check the id and your network")
            raise _hf_fault(spec, (
                f"dataset {dataset!r} not found: no save_to_disk folder there and no copy in the Hugging Face cache "
                f"({datasets.config.HF_DATASETS_CACHE}) ({type(exc).__name__}); fetch it once where there is network, "
                f"`datasets.load_dataset({dataset!r}).save_to_disk(DIR)`, and pass hf:DIR, or {how}")) from None
        except ValueError as exc:  # a missing or unknown config name, mostly
            message = " ".join(str(exc).split())[:300]
            raise _hf_fault(spec, f"{message}; pass hf:{dataset}:<config>:<split>") from None


def load_dataset_or_hub_copy(dataset: str, config: str | None, **options: Any) -> Any:
    """`datasets.load_dataset`, and failing that the copy of the repo in the Hugging Face Hub cache.

    Offline, `datasets` reads only its own cache (a load_dataset done online); a copy that
    `hf download --repo-type dataset` put in the Hub cache is a data folder it can read as one."""
    import datasets

    try:
        return datasets.load_dataset(dataset, config, **options)
    except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError):
        if (snapshot := hub_cache_snapshot(dataset)) is None:
            raise
        return datasets.load_dataset(str(snapshot), config, **options)


def _read_hf(spec: str, fields: FieldMap) -> _Input:
    dataset, config, split = parse_hf_spec(spec)
    loaded = _load_hf(spec, dataset, config)
    if hasattr(loaded, "keys"):  # a DatasetDict: pick the split
        splits = list(loaded.keys())
        chosen = split or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
        if chosen not in splits:
            wanted = f'no split "{split}"' if split else "several splits and none is train"
            raise _hf_fault(spec, f"{wanted}; its splits are {', '.join(splits)}; pass hf:{dataset}:<split>")
        loaded, split = loaded[chosen], chosen
    elif split is not None and str(loaded.split) != split:
        raise _hf_fault(spec, f'no split "{split}": the saved dataset is a single one (split {loaded.split}); '
                              f"pass hf:{dataset}")
    columns = list(loaded.column_names)
    _check_columns(spec, columns, fields)
    name = Path(dataset).name
    rows = [(index + 1, row) for index, row in enumerate(loaded.to_list())]
    source = name if Path(dataset).is_dir() else dataset  # a hub id names the dataset; a local path only its folder
    return _Input(where=spec, name=spec, stem=f"{name}-{split}" if split else name, source=source, rows=rows, bad=[])


def _check_columns(spec: str, columns: list[str], fields: FieldMap) -> None:
    """A dataset names its columns up front: a missing one is one error, not one bad row per row."""
    shown = ", ".join(columns)
    if not any(key in columns for key in fields.problem_keys()):
        wanted = f'no column "{fields.problem}"' if fields.problem else "no problem column (problem or question)"
        raise _hf_fault(spec, f"{wanted}; its columns are {shown}; pass --problem-field with one of them")
    if fields.answer == NO_ANSWER_FIELD:
        return
    if fields.answer and fields.answer not in columns:
        raise _hf_fault(spec, f'no column "{fields.answer}"; its columns are {shown}; pass --answer-field with one '
                              f"of them, or --answer-field {NO_ANSWER_FIELD} to label every problem by majority vote")
    if not fields.answer and not any(key in columns for key in (*ANSWER_KEYS, "solution")):
        raise _hf_fault(spec, f"no answer column (answer, final_answer, or a solution with a \\boxed{{}}); its "
                              f"columns are {shown}; pass --answer-field with one of them, or --answer-field "
                              f"{NO_ANSWER_FIELD} to label every problem by majority vote")


class _Input(BaseModel):
    """The rows of one input (a file, or an `hf:` dataset split) and how its problems are named."""

    where: str  # how bad rows name it: the file path, or the hf: spec
    name: str  # how duplicate ids name it
    stem: str  # default ids are <stem>-<line>
    source: str  # default `source` of its rows
    id_prefix: str = ""
    rows: list[tuple[int, dict[str, Any]]]
    bad: list[BadRow]


def _read_file(file: Path, max_bytes: int, *, source: str, id_prefix: str) -> _Input:
    rows, bad = _read_rows(file, max_bytes)
    return _Input(where=str(file), name=file.name, stem=file.stem, source=source, id_prefix=id_prefix, rows=rows, bad=bad)


def _read_rows(file: Path, max_bytes: int) -> tuple[list[tuple[int, dict[str, Any]]], list[BadRow]]:
    """Parse one file into (line, row dict) pairs and the rows that could not even be parsed."""
    try:
        with file.open("rb") as handle:  # read at most one byte past the limit: a file may grow, or lie about its size
            data = handle.read(max_bytes + 1)
    except OSError as exc:  # unreadable: permissions, an I/O error (`/proc/self/mem`), a file gone meanwhile
        return [], [BadRow(file=str(file), line=0, reason=f"cannot be read ({exc.strerror or exc}); pass a file "
                           "you can read")]
    if len(data) > max_bytes:
        return [], [BadRow(file=str(file), line=0, reason=(
            f"larger than the {max_bytes >> 20} MiB input limit; split it into several files in one folder, "
            "or raise --max-input-mb"))]
    if file.suffix == ".parquet":
        return _read_parquet(data, file)
    if file.suffix == ".csv":
        return _read_csv(file, data)
    return _read_jsonl(file, data)


def _not_utf8(error: UnicodeDecodeError) -> str:
    return (f"not UTF-8: byte 0x{error.object[error.start]:02x} at column {error.start + 1}; "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def _read_jsonl(file: Path, data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], list[BadRow]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    bad: list[BadRow] = []
    data = data.removeprefix(codecs.BOM_UTF8)  # editors on Windows start UTF-8 files with one
    for line_no, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad.append(BadRow(file=str(file), line=line_no, reason=_not_utf8(error)))
            continue
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            bad.append(BadRow(file=str(file), line=line_no, reason=(
                f"malformed JSON: {error.msg.removesuffix(' at')} (column {error.colno}); each line must be one JSON object "
                'like {"problem": "...", "answer": "..."}')))
            continue
        if not isinstance(row, dict):
            bad.append(BadRow(file=str(file), line=line_no, reason=(
                f"malformed JSON: a {type(row).__name__}, not an object; each line must be one JSON object "
                'like {"problem": "...", "answer": "..."}')))
            continue
        rows.append((line_no, row))
    return rows, bad


def _read_csv(file: Path, data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], list[BadRow]]:
    # surrogateescape keeps undecodable bytes visible per field, so one bad row does not sink the file.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict[str, Any]]] = []
    bad: list[BadRow] = []
    for row in reader:
        line_no = reader.line_num
        undecodable = [v for v in row.values() if isinstance(v, str) and _has_surrogates(v)]
        if undecodable:
            raw = undecodable[0].encode("utf-8", errors="surrogateescape")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad.append(BadRow(file=str(file), line=line_no, reason=_not_utf8(error)))
                continue
        # an empty cell is no value, except an answer's: that says the row has no reference answer
        rows.append((line_no, {k: v for k, v in row.items() if k is not None and (v != "" or k in ANSWER_KEYS)}))
    return rows, bad


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _read_parquet(data: bytes, file: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[BadRow]]:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as error:  # pyarrow raises several types for a damaged file
        return [], [BadRow(file=str(file), line=0, reason=(
            f"unreadable Parquet ({error}); re-export the file, or convert it to JSONL"))]
    return [(index + 1, row) for index, row in enumerate(table.to_pylist())], []


def _first_present(row: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if row.get(key) is not None:
            return key, row[key]
    return None, None


def _to_record(row: dict[str, Any], *, line: int, source: str, default_id: str, id_prefix: str,
               max_problem_chars: int, fields: FieldMap) -> ProblemRecord:
    problem_key, problem = _first_present(row, fields.problem_keys())
    if problem is None:
        expected = fields.problem or "problem"
        raise _RowFault(f'missing field: "{expected}" (expected keys: {expected}, answer; found: {", ".join(row) or "none"})')
    if not isinstance(problem, str) or not problem.strip():
        raise _RowFault(f'missing field: "{problem_key}" is empty or not text; give the problem statement as a string')
    if len(problem) > max_problem_chars:
        raise _RowFault(f"problem too long: {len(problem):,} characters, over the limit of {max_problem_chars:,}; "
                        "shorten it, or raise --max-problem-chars")
    answer = "" if fields.answer == NO_ANSWER_FIELD else _answer_of(row, fields.answer)
    if answer is None:
        expected = f'"{fields.answer}"' if fields.answer else '"answer"'
        raise _RowFault(f'missing field: {expected} (expected keys: problem, answer, or a solution ending in '
                        f'\\boxed{{...}}; found: {", ".join(row)}); an answer field that is present but empty '
                        "marks a problem to be labelled by majority vote")
    _, raw_id = _first_present(row, ID_KEYS)
    level = row.get("level")
    return ProblemRecord(
        id=f"{id_prefix}{raw_id}" if raw_id is not None else default_id,
        problem=problem,
        answer=answer,
        source=str(row.get("source") or source),
        level=None if level is None else str(level),
        answer_source="reference" if answer else "none",
    )


def _answer_of(row: dict[str, Any], field: str | None = None) -> str | None:
    """The reference answer as text, from whichever answer field the row's layout uses (or `field`).

    None: the row names no answer at all (a bad row). "": it has an answer field, but it is empty and no
    `solution` boxes one: a problem without a reference answer."""
    keys = (field,) if field else ANSWER_KEYS
    key, value = _first_present(row, keys)
    present = any(k in row for k in keys)
    if key is None or not str(value).strip():
        solution = row.get("solution")
        boxed = extract_boxed(solution) if isinstance(solution, str) and not field else None
        return boxed if boxed is not None else ("" if present else None)
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
    if isinstance(value, (list, tuple)):
        value = ", ".join(_strip_dollars(str(v)) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if "####" in text:  # GSM8K: a worked solution whose last line is "#### <number>"
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
    return text


def _strip_dollars(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        return text[1:-1].strip()
    return text
