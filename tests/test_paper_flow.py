"""The paper command wires estimate -> distill -> QLoRA train -> six-benchmark eval -> report; toy scale on a CPU."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from command_lines import TOOL_DISTILL, env_without_prefect

from eval.benchmarks import BENCHMARK_NAMES
from training.config import load_recipe


def test_paper_recipe_keeps_the_released_schedule_and_says_what_qlora_changes():
    recipe = load_recipe("paper_qlora")
    args = recipe.training_args
    assert (args.num_train_epochs, args.max_length) == (3, 4096)  # as released
    assert recipe.model_args.load_in_4bit and args.learning_rate == 2e-4  # QLoRA's rate, not full FT's 2e-5
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 16


@pytest.mark.slow  # distill (scripted teacher) + 1 training step + 12 short generations of the embedded model
def test_paper_command_prices_first_then_distils_trains_evaluates_all_six_benchmarks_and_reports(tmp_path: Path):
    """`tool-distill paper` as a user runs it: the estimate table is on the terminal before the full distillation
    starts, and the report at the end."""
    problems = tmp_path / "math_train.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} * 7?", "answer": str(7 * i)}) + "\n"
                                for i in range(2, 8)))
    proc = subprocess.run([*TOOL_DISTILL, "paper", "--teacher", "scripted/arithmetic", "--student", "embedded",
                           "--math-train", str(problems), "--output-dir", "paper", "--recipe", "embedded",
                           "--pilot", "3", "--max-steps", "1", "--eval-limit", "1", "--max-new-tokens", "4",
                           "--batch-size", "2"], cwd=tmp_path, env=env_without_prefect(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    output = proc.stdout
    assert proc.returncode == 0, output[-3000:]
    # the price of all 6 problems from a 3-problem pilot, then the full run's solve stage (6 rows), then the report
    assert output.index("== estimate: 6 problems, from a pilot of 3") < output.index("solve: 6/6 rows")
    assert output.index("solve: 6/6 rows") < output.index("Base vs tuned")
    out = tmp_path / "paper"
    summary = json.loads((out / "distill" / "summary.json").read_text())
    assert summary["kept"] > 0
    report = (out / "paper_report.md").read_text()
    assert "scripted/arithmetic" in report and "Base vs tuned" in report and "accuracy.png" in report
    assert all(name in report for name in BENCHMARK_NAMES)
    estimate = json.loads((out / "distill" / "estimate.json").read_text())
    assert estimate["problems"] == 6 and estimate["model"] == "scripted/arithmetic"
    check = summary["spend"]["estimate"]  # the full run compared itself with the estimate it was shown
    assert check is not None and check["actual_kept"] == summary["kept"] and check["estimated_kept"] > 0


def test_a_math_train_download_that_fails_halfway_leaves_no_file(tmp_path: Path, monkeypatch):
    """The flow downloads MATH train only when its file is absent: a half-written one would be taken as whole."""
    import datasets

    from flows.paper import MATH_SUBJECTS, write_math_train

    def first_subject_only(name: str, subject: str, split: str):
        if subject != MATH_SUBJECTS[0]:
            raise ConnectionError(f"Couldn't reach '{name}' on the Hub")
        return [{"problem": "What is 2 + 2?", "solution": "\\boxed{4}", "level": "Level 1", "type": "Algebra"}]

    monkeypatch.setattr(datasets, "load_dataset", first_subject_only)
    target = tmp_path / "math_train.jsonl"
    with pytest.raises(ConnectionError):
        write_math_train(target)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(datasets, "load_dataset", lambda name, subject, split: first_subject_only(name, MATH_SUBJECTS[0], split))
    write_math_train(target)
    assert [p.name for p in tmp_path.iterdir()] == ["math_train.jsonl"]
    assert len(target.read_text().splitlines()) == len(MATH_SUBJECTS)
