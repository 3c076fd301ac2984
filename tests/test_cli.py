"""`tool-distill` as a user runs it: in a fresh checkout, and with input it cannot use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from command_lines import TOOL_DISTILL, env_without_prefect


def _tool_distill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*TOOL_DISTILL, *args], cwd=cwd, env=env_without_prefect(), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_cli_runs_in_a_directory_without_state(tmp_path: Path) -> None:
    """What `make demo` does on a fresh clone: before the fix Prefect only warned that it could not create
    `.state/prefect`, and the run died 120 s later waiting for its ephemeral API server."""
    proc = _tool_distill("distill", "--limit", "1", "--model", "scripted/arith", "--output-dir", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / ".state" / "prefect").is_dir()
    assert (tmp_path / "out" / "sft.parquet").is_file()


@pytest.mark.slow
def test_bad_problem_rows_end_the_cli_with_exit_2_and_the_fix_in_one_line(tmp_path: Path) -> None:
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"problem": "What is 2 + 2?", "answer": "4"}) + "\n"
                        + json.dumps({"problem": "What is 3 + 3?", "solution": "It is six."}) + "\n")
    proc = _tool_distill("distill", "--problems", str(problems), "--model", "scripted/arith", "--output-dir", "out",
                         cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    # one line of ours, after Prefect's own log of the failed flow run (Prefect logs its server stopping last)
    ours = [line for line in proc.stderr.splitlines() if line.startswith("tool-distill distill: ")]
    assert len(ours) == 1
    assert f"{problems} line 2" in ours[0] and 'missing field: "answer"' in ours[0] and "--skip-bad-rows" in ours[0]
