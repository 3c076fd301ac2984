"""`tool-distill` as a user runs it: in a fresh checkout, with input it cannot use, and killed mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from command_lines import TOOL_DISTILL, env_without_prefect

from tasks.parquet_io import write_records
from tasks.records import SFTRecord

# What "before Prefect starts" means: parsing, the parameter model and the input files, not the
# seconds-long imports of litellm and Prefect or a temporary API server. Asked of the modules the
# refusing process loaded, not of a wall clock that a busy CI machine stretches.
LATE_MODULES = ("prefect", "litellm")
# `tool-distill` run as the console script does, writing what it imported to the path in argv[1]
_MAIN_NOTING_MODULES = ("import sys\nfrom flows.cli import main\nnoted = sys.argv.pop(1)\ncode = main()\n"
                        "open(noted, 'w').write('\\n'.join(sorted(sys.modules)))\nsys.exit(code)")


def _tool_distill(*args: str, cwd: Path, env: dict[str, str] | None = None,
                  timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*TOOL_DISTILL, *args], cwd=cwd, env=env or env_without_prefect(), capture_output=True,
                          text=True, timeout=timeout_s)


def _inputs(tmp_path: Path) -> Path:
    """A folder of the mistaken inputs a new user hands the CLI."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a_file").write_text("not a folder")
    (inputs / "empty_folder").mkdir()
    (inputs / "zero.jsonl").symlink_to("/dev/zero")
    (inputs / "bad.jsonl").write_text(json.dumps({"problem": "What is 2 + 2?", "answer": "4"}) + "\n"
                                      + json.dumps({"problem": "What is 3 + 3?", "solution": "It is six."}) + "\n")
    (inputs / "broken.jsonl").write_text('{"problem": "unterminated\n')
    (inputs / "broken.yaml").write_text("learning_rate: [2e-4\n")
    (inputs / "typo.yaml").write_text("model_name_or_path: embedded\nlearning_rat: 2.0e-4\n")
    (inputs / "list.yaml").write_text("- learning_rate: 2.0e-4\n")
    (inputs / "open.jsonl").write_text(json.dumps({"problem": "What is 2 + 2?", "answer": ""}) + "\n")
    (inputs / "unreadable.jsonl").symlink_to("/proc/self/mem")  # opens, then reading it is an I/O error
    (inputs / "loop.jsonl").symlink_to(inputs / "loop.jsonl")
    (inputs / "csv_as.jsonl").write_text("problem,answer\nWhat is 2+3?,5\n")  # no row is JSON: skipping cannot help
    (inputs / "wrong_type.yaml").write_text("model_name_or_path: embedded\nlora_r: eight\n")
    (inputs / "twice.yaml").write_text("model_name_or_path: embedded\nlora_r: 8\nlora_r: 16\n")
    (inputs / "no_model.yaml").write_text("lora_r: 8\n")
    (inputs / "zero_batch.yaml").write_text("model_name_or_path: embedded\nper_device_train_batch_size: 0\n")
    (inputs / "broken_model").mkdir()
    (inputs / "broken_model" / "config.json").write_text("{bad")
    import datasets  # a save_to_disk folder, as `hf:` reads one offline

    datasets.Dataset.from_list([{"question": "What is 2 + 2?", "answer": "#### 4"}]).save_to_disk(str(inputs / "saved"))
    chat = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "\\boxed{4}"}]
    datasets.Dataset.from_list([{"messages": chat}]).to_parquet(str(inputs / "chat.parquet"))  # not our SFT schema
    write_records([], SFTRecord, inputs / "empty_sft.parquet")  # what a distill that kept nothing writes
    write_records([SFTRecord(id="a", messages=chat, source="t", teacher_model="m", prompt_versions_json="{}",
                             reference_answer="4")], SFTRecord, inputs / "sft.parquet")
    return inputs


BAD_INVOCATIONS = [
    (["distill", "--limit", "-1"], "--limit: Input should be greater than or equal to 1"),
    (["distill", "--limit", "0"], "--limit: Input should be greater than or equal to 1"),
    (["distill", "--max-concurrency", "many"], "--max-concurrency"),
    (["distill", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["distill", "--output-dir", "{inputs}/a_file"], "is a file, not a folder"),
    (["distill", "--problems", "{inputs}/zero.jsonl"], "not a regular file"),
    (["distill", "--problems", ""], "--problems: String should have at least 1 character"),
    (["distill", "--output-dir", ""], "--output-dir: String should have at least 1 character"),
    (["distill", "--model", ""], "--model: String should have at least 1 character"),
    (["distill", "--problems", "{inputs}/empty_folder"], "no problem files in this folder"),
    (["distill", "--problems", "{inputs}/missing.jsonl"], "problems file not found"),
    (["distill", "--problems", "{inputs}/bad.jsonl"], 'line 2: missing field: "answer"'),
    (["distill", "--problems", "{inputs}/broken.jsonl"], "line 1: malformed JSON"),
    (["distill", "--max-budget-usd", "-1"], "--max-budget-usd: Input should be greater than 0"),
    (["distill", "--max-tokens-total", "0"], "--max-tokens-total: Input should be greater than or equal to 1"),
    (["distill", "--price", "cheap"], "--price: expected IN,OUT or IN,OUT,BATCH_IN,BATCH_OUT"),
    (["distill", "--price", "0.15,-1"], "--price: prices must be >= 0"),
    (["distill", "--batch", "--model", "local/smollm2-135m"], "--batch: litellm has no batch API for local/smollm2-135m"),
    (["estimate", "--pilot", "0"], "--pilot: Input should be greater than or equal to 1"),
    (["distill", "--solve.prompt-version", "v99"], "--solve.prompt-version: no solver prompt 'v99'; available: latest, v1"),
    (["distill", "--translate.judge-prompt-version", "2"], "no judge prompt '2'"),
    (["distill", "--api-base", "localhost:8000"], "--api-base: 'localhost:8000' is not an http(s) URL"),
    (["distill", "--llm.temperature", "-0.5"], "--llm.temperature: Input should be greater than or equal to 0"),
    (["distill", "--llm.max-tokens", "0"], "--llm.max-tokens: Input should be greater than or equal to 1"),
    (["distill", "--solve.tool-timeout-s", "0"], "--solve.tool-timeout-s: Input should be greater than 0"),
    (["distill", "--problems", "{inputs}/open.jsonl"], "1 of 1 problems have no reference answer"),
    (["distill", "--samples-per-problem", "2", "--keep-per-problem", "3"], "raise --samples-per-problem"),
    (["distill", "--majority-min", "1.5"], "--majority-min: Input should be less than or equal to 1"),
    (["distill", "--problems", "hf:{inputs}/missing"], "not found: no save_to_disk folder there"),
    (["distill", "--problems", "hf:{inputs}/saved:test"], 'no split "test"'),
    (["distill", "--problems", "hf:{inputs}/saved", "--problem-field", "prompt"], 'no column "prompt"'),
    (["train-eval", "--sft", "{inputs}/missing.parquet"], "no such file; run `tool-distill distill` first"),
    (["train-eval", "--sft", "{inputs}/bad.jsonl", "--benchmarks", "math501"], "unknown math501"),
    (["train-eval", "--sft", "{inputs}/bad.jsonl", "--benchmarks", ""], "--benchmarks: name one or more of math500"),
    (["train-eval", "--sft", "{inputs}/bad.jsonl", "--benchmarks", "gsm8k,math500,gsm8k"], "gsm8k named twice"),
    (["train-eval", "--sft", "{inputs}/bad.jsonl"], "not a Parquet file"),
    (["train-eval", "--sft", "{inputs}/chat.parquet"], "missing columns: answer_source"),
    (["train-eval", "--sft", "{inputs}/empty_sft.parquet"], "no training examples"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "qwen-typo"], "recipe 'qwen-typo': no file"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/broken.yaml"], "not a readable YAML file"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/typo.yaml"],
     "unknown key 'learning_rat': not a field of TrainExtras, TRL's SFTConfig or ModelConfig; did you mean learning_rate"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/list.yaml"], "expected a mapping of recipe fields"),
    (["paper", "--student", "embedded", "--recipe", "{inputs}/typo.yaml"], "unknown key 'learning_rat'"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--base-model", "{inputs}/empty_folder"], "a folder without config.json"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--base-model", "{inputs}/a_file"], "a file; pass a model folder"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--base-model", "no-such-org/no-such-model"], "no-such-model: not a folder here"),
    (["paper", "--student", "{inputs}/empty_folder"], "--student"),
    (["paper", "--student", "embedded", "--recipe", "embedded", "--math-train", "{inputs}/missing.jsonl"],
     "leave --math-train out to read MATH train from the Hub"),
    (["paper", "--student", "embedded", "--recipe", "embedded", "--math-train", "{inputs}/broken.jsonl"], "line 1: malformed JSON"),
    (["paper", "--student", "embedded", "--recipe", "embedded"],  # offline, and MATH train not in the Hub cache
     "--math-train hub: EleutherAI/hendrycks_math is not in the Hugging Face cache and the Hub is off"),
    ([], "name a command (distill, estimate, demo, train-eval, paper)"),
    (["paper", "--output-dir", "{inputs}/a_file"], "is a file, not a folder"),
    # free-form flags that used to pass the checks and fail late, or not at all
    (["distill", "--llm.concurrency-limit", "a/b"], "--llm.concurrency-limit: expected the prefix of a Prefect limit name"),
    (["estimate", "--llm.concurrency-limit", "my llm"], "--llm.concurrency-limit: expected the prefix of a Prefect limit"),
    (["distill", "--push-to-hub", "bad name!"], "--push-to-hub: expected a Hugging Face repo id"),
    (["estimate", "--push-to-hub", "someone--else/traces"], "--push-to-hub: expected a Hugging Face repo id"),
    (["distill", "--push-to-hub", ""], "--push-to-hub: expected a Hugging Face repo id"),
    (["distill", "--push-to-hub", "someone/traces"], "--push-to-hub someone/traces: no Hugging Face token found"),
    (["demo", "--push-to-hub", "someone/traces"], "--push-to-hub someone/traces: no Hugging Face token found"),
    (["distill", "--license", ""], "--license: expected an SPDX-style licence id such as apache-2.0"),
    (["estimate", "--license", "MIT License"], "--license: expected an SPDX-style licence id"),
    (["distill", "--cache-dir", "/proc/tool-distill-cache"], "--cache-dir /proc/tool-distill-cache: cannot create it"),
    (["estimate", "--cache-dir", "{inputs}/a_file"], "--cache-dir {inputs}/a_file is a file, not a folder"),
    (["demo", "--cache-dir", "{inputs}/a_file/cache"], "--cache-dir {inputs}/a_file/cache: cannot create it"),
    (["distill", "--cache-dir", ""], "--cache-dir: String should have at least 1 character"),
    (["distill", "--problem-field", ""], "--problem-field: String should have at least 1 character"),
    (["distill", "--answer-field", ""], "--answer-field: String should have at least 1 character"),
    (["distill", "--quiet", "--verbose"], "--quiet and --verbose contradict each other"),
    (["paper", "--quiet", "--verbose"], "--quiet and --verbose contradict each other"),
    (["train-eval", "--quiet", "--verbose"], "--quiet and --verbose contradict each other"),
    (["train-eval", "--max-steps", "0"], "--max-steps: use a positive number of steps, or -1"),
    (["train-eval", "--base-model", ""], "--base-model: String should have at least 1 character"),
    # from a blind probe of the CLI: flags, files and values that used to start a run (or fail in it)
    (["distill", "--max-concurrency", "1000000000"], "--max-concurrency: Input should be less than or equal to 1024"),
    (["distill", "--spend.batch-poll-s", "100", "--spend.batch-poll-max-s", "10"],
     "--spend.batch-poll-s 100 is longer than --spend.batch-poll-max-s 10"),
    (["distill", "--problem-field", "problem", "--answer-field", "problem"],
     "--problem-field and --answer-field both name 'problem'"),
    (["distill", "--pilot", "10", "--limit", "2"], "--pilot 10 is more problems than --limit 2"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--eval-source", "hub"],
     "--eval-source hub: math500: HuggingFaceH4/MATH-500 is not in the Hugging Face cache and the Hub is off"),
    (["demo", "--train-eval.benchmarks", "mmlu"], "--train-eval.benchmarks: unknown mmlu"),
    (["distill", "--problems", "{inputs}/unreadable.jsonl"], "unreadable.jsonl: cannot be read"),
    (["distill", "--problems", "{inputs}/loop.jsonl"], "a symlink that leads nowhere"),
    (["distill", "--problems", "{inputs}/csv_as.jsonl", "--skip-bad-rows"], "csv_as.jsonl line 1: malformed JSON"),
    (["distill", "--problems", "{inputs}/csv_as.jsonl"], "csv_as.jsonl line 1: malformed JSON"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/wrong_type.yaml"],
     "lora_r: 'eight' is not a whole number"),
    # from a second blind probe
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/twice.yaml"], "lora_r set twice"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/no_model.yaml"],
     "it names no model_name_or_path; add one, or pass --base-model"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "{inputs}/zero_batch.yaml"],
     "per_device_train_batch_size: 0 must be above 0"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--base-model", "{inputs}/broken_model"],
     "its config.json is not readable JSON"),
    (["train-eval", "--sft", "{inputs}/sft.parquet", "--recipe", "x" * 5000], "File name too long"),
    (["train-eval", "--max-new-tokens", "1000000000000"], "--max-new-tokens: Input should be less than or equal to"),
    (["estimate", "--problems", "{inputs}/missing.jsonl\nsecond line"], "missing.jsonl\\nsecond line: problems file not found"),
]

# Settings from the environment that a run reads late: refused with the flags.
BAD_ENVIRONMENTS = [
    ({"TOOL_DISTILL_TASK_RUNNER": "bogus"}, "Set TOOL_DISTILL_TASK_RUNNER to threads, dask or ray"),
    ({"TOOL_DISTILL_TASK_RUNNER_WORKERS": "abc"}, "TOOL_DISTILL_TASK_RUNNER_WORKERS to a positive integer"),
    ({"TOOL_DISTILL_PROGRESS": "bogus"}, "TOOL_DISTILL_PROGRESS='bogus': expected one of auto, plain, off"),
    ({"TOOL_DISTILL_STATE_DIR": "/proc/tool-distill-state"}, "TOOL_DISTILL_STATE_DIR /proc/tool-distill-state: cannot create it"),
    ({"PREFECT_API_URL": "not-a-url"}, "PREFECT_API_URL='not-a-url': not an http(s) URL"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INVOCATIONS,
                         ids=[" ".join(a)[:80] or "(no command)" for a, _ in BAD_INVOCATIONS])
def test_bad_input_ends_in_one_line_exit_2_before_prefect_and_writes_nothing(tmp_path: Path, args, expected) -> None:
    _assert_refused(tmp_path, args, expected)


@pytest.mark.parametrize(("environment", "expected"), BAD_ENVIRONMENTS, ids=[next(iter(e)) for e, _ in BAD_ENVIRONMENTS])
def test_a_bad_setting_in_the_environment_is_refused_like_a_bad_flag(tmp_path: Path, environment, expected) -> None:
    _assert_refused(tmp_path, ["distill", "--limit", "1"], expected, environment)


def _assert_refused(tmp_path: Path, args: list[str], expected: str, environment: dict[str, str] | None = None) -> None:
    """One line on stderr naming the problem, exit 2, no file written, and neither Prefect nor litellm imported."""
    inputs = _inputs(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    offline = {k: v for k, v in env_without_prefect().items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    offline |= {"HF_HUB_OFFLINE": "1",  # a Hub id is then looked up in the cache alone, an empty one, with no token
                "HF_HOME": str(tmp_path.parent / f"{tmp_path.name}-empty-hf-home")} | (environment or {})
    modules_file = tmp_path.parent / f"{tmp_path.name}-modules.txt"  # outside tmp_path, which must stay as it was
    proc = subprocess.run([sys.executable, "-c", _MAIN_NOTING_MODULES, str(modules_file),
                           *(a.format(inputs=inputs) for a in args)],
                          cwd=tmp_path, env=offline, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tool-distill"), proc.stderr
    assert expected.format(inputs=inputs) in lines[0] and "Traceback" not in proc.stderr and "at at" not in lines[0]
    if "empty_folder" in " ".join(args) or "csv_as" in " ".join(args):
        assert "--skip-bad-rows" not in lines[0]  # skipping rows cannot help a folder without files, nor a file of none
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no .state/, no output dir
    loaded = set(modules_file.read_text().splitlines())
    assert not loaded & set(LATE_MODULES), f"imported {sorted(loaded & set(LATE_MODULES))} before refusing"


VALID_ODD_LOOKING = [
    ["distill", "--llm.concurrency-limit", "abc"],  # the Prefect limits abc-<model> and abc-<model>-rpm
    ["distill", "--llm.concurrency-limit", ""],  # no limit looked up
    ["distill", "--push-to-hub", "traces"],  # a repo under the token's own account
    ["distill", "--push-to-hub", "your-name/tool-distill_v2.1"],
    ["distill", "--license", "cc-by-nc-sa-4.0"],
    ["distill", "--license", "openrail++"],
    ["train-eval", "--max-steps", "-1"],  # train by the recipe's num_train_epochs
]


@pytest.mark.parametrize("args", VALID_ODD_LOOKING, ids=[" ".join(a) for a in VALID_ODD_LOOKING])
def test_flag_values_that_look_odd_but_are_valid_parse(args) -> None:
    from pydantic_settings import CliApp

    from flows.cli import ToolDistill

    CliApp.run(ToolDistill, cli_args=args)


def test_help_lists_every_command_with_an_example(tmp_path: Path) -> None:
    proc = _tool_distill("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("demo", "distill", "estimate", "train-eval", "paper"):
        assert f"tool-distill {command}" in proc.stdout


@pytest.mark.slow
def test_a_model_that_cannot_answer_is_refused_before_the_run(tmp_path: Path) -> None:
    env = {k: v for k, v in env_without_prefect().items() if k != "OPENAI_API_KEY"}
    cases = [
        (["--model", "no-provider-model"], "unknown model 'no-provider-model'"),
        (["--model", "openai/gpt-4o-mini"], "no API key; set OPENAI_API_KEY"),
        (["--model", "hosted_vllm/m", "--api-base", "http://127.0.0.1:9/v1"], "cannot reach the endpoint at http://127.0.0.1:9/v1"),
        # a local server may check no key, but the OpenAI client will not start without one
        (["--model", "openai/m", "--api-base", "http://127.0.0.1:9/v1"], "no API key; set OPENAI_API_KEY in the environment (any value"),
        (["--model", f"local/{tmp_path}"], "not a model directory (no config.json)"),  # a folder that holds no model
    ]
    # through the OpenAI SDK a refused connection surfaces as a 500 "Connection error." (a key is set: it is checked first)
    env_with_key = {**env, "OPENAI_API_KEY": "sk-fake-cli-0000"}
    cases_with_key = [(["--model", "openai/m", "--api-base", "http://127.0.0.1:9/v1"], "cannot reach the endpoint at http://127.0.0.1:9/v1")]
    for flags, expected, case_env in [(*case, env) for case in cases] + [(*case, env_with_key) for case in cases_with_key]:
        proc = _tool_distill("distill", "--limit", "1", "--output-dir", "out", *flags, cwd=tmp_path, env=case_env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        ours = proc.stderr.strip().splitlines()
        assert len(ours) == 1 and expected in ours[0] and "--skip-preflight" in ours[0], proc.stderr
        assert not (tmp_path / "out").exists() and not (tmp_path / ".state").exists()  # nothing written, Prefect's home neither
    # the paper's teacher too, before the hours of distillation and training
    problems = tmp_path / "math.jsonl"
    problems.write_text(json.dumps({"problem": "What is 2 + 2?", "answer": "4"}) + "\n")
    proc = _tool_distill("paper", "--teacher", "openai/gpt-4o-mini", "--student", "embedded", "--recipe", "embedded",
                         "--math-train", str(problems), "--output-dir", "out", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "model openai/gpt-4o-mini: no API key" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_endpoint_that_rejects_the_key_or_lacks_the_model_is_named_before_the_run(tmp_path: Path) -> None:
    from mock_llm_server import FaultRule, MockLLMServer

    key = "sk-fake-cli-0000"
    env = {**env_without_prefect(), "OPENAI_API_KEY": key}
    with MockLLMServer(faults=[FaultRule("bad_key", times=1000)]) as server:
        cases = [(["--model", "openai/scripted", "--api-base", server.url], "rejected the API key (401); check OPENAI_API_KEY"),
                 (["--model", "hosted_vllm/scripted", "--api-base", f"{server.url}/nope"], "was not found (404)")]
        for flags, expected in cases:
            proc = _tool_distill("distill", "--limit", "1", "--output-dir", "out", *flags, cwd=tmp_path, env=env)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            ours = proc.stderr.strip().splitlines()
            assert len(ours) == 1 and expected in ours[0] and key not in proc.stderr, proc.stderr
            assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_output_dir_that_cannot_be_created_is_one_line_and_leaves_no_log(tmp_path: Path) -> None:
    """/proc takes no folder, even from root, whom access() lets write there: one line, and no early log left."""
    temp = tmp_path / "temp"  # the run's own temp dir: other runs' early logs come and go in the shared one
    temp.mkdir()
    proc = _tool_distill("distill", "--limit", "1", "--model", "scripted/arith", "--output-dir", "/proc/tool-distill-out",
                         cwd=tmp_path, env={**env_without_prefect(), "TMPDIR": str(temp)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    ours = proc.stderr.strip().splitlines()
    assert len(ours) == 1 and "--output-dir /proc/tool-distill-out" in ours[0] and "Traceback" not in proc.stderr
    assert not list(temp.glob("tool-distill-*.log"))


@pytest.mark.slow
def test_a_run_whose_llm_calls_all_fail_fails_with_the_error_classes_and_resumes(tmp_path: Path) -> None:
    from mock_llm_server import FaultRule, MockLLMServer

    env = {**env_without_prefect(), "OPENAI_API_KEY": "sk-fake-cli-0000"}
    run = ["distill", "--limit", "3", "--output-dir", "out", "--model", "openai/scripted", "--skip-preflight",
           "--llm.num-retries", "0", "--tool-protocol", "code"]
    with MockLLMServer(faults=[FaultRule("bad_key", times=1000)]) as server:  # a revoked key: every call is a 401
        proc = _tool_distill(*run, "--api-base", server.url, cwd=tmp_path, env=env)
        verbose = _tool_distill(*run, "--api-base", server.url, "--verbose", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and verbose.returncode == 1, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("tool-distill distill: failed: solve: 3 of 3 rows failed in their LLM calls (AuthenticationError x3)")
    assert "Traceback" not in proc.stderr and "Traceback" in verbose.stderr  # --verbose: the traceback too
    assert (tmp_path / "out" / "traces.parquet").is_file()  # what ran is kept, for the resumed run
    with MockLLMServer() as server:  # the key fixed: the same command goes on, quietly
        proc = _tool_distill(*run, "--api-base", server.url, "--quiet", cwd=tmp_path, env=env)
        requests = server.stats().requests
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert requests > 0 and (tmp_path / "out" / "sft.parquet").is_file()
    assert "rows (" not in proc.stderr  # --quiet: no progress lines


@pytest.mark.slow
def test_cli_runs_in_a_directory_without_state_and_prints_only_its_own_lines(tmp_path: Path) -> None:
    """What `make demo` does on a fresh clone, as far as the output goes: library warnings land in the log."""
    proc = _tool_distill("distill", "--limit", "1", "--model", "scripted/arith", "--output-dir", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / ".state" / "prefect").is_dir()
    assert (tmp_path / "out" / "sft.parquet").is_file()
    assert "Warning" not in proc.stdout and "WARNING" not in proc.stdout + proc.stderr
    assert "== distill ==" in proc.stdout and "solve: 1/1 rows" in proc.stderr  # the summary, and progress lines
    assert "yield: 1 kept per problem" in proc.stdout
    assert (tmp_path / "out" / "tool-distill.log").stat().st_size > 0


@pytest.mark.slow
def test_kill_9_of_the_cli_leaves_no_process_of_the_run(tmp_path: Path) -> None:
    """The temporary Prefect server and the sandbox die with the CLI, though it had no chance to stop them, and
    the next start removes the sandbox scratch dirs the killed run could not."""
    from mock_llm_server import MockLLMServer

    env = {**env_without_prefect(), "OPENAI_API_KEY": "sk-fake-cli-0000"}
    scratch_before = _sandbox_scratch_dirs()
    def hang_after_the_first_tool_calls(agent: str, stats) -> None:
        if stats.requests > 4:  # both problems' plan and first act are answered, so their code ran in the sandbox
            time.sleep(60)

    with MockLLMServer(latency_s=0.05, on_request=hang_after_the_first_tool_calls) as server:
        cli = subprocess.Popen([*TOOL_DISTILL, "distill", "--limit", "2", "--output-dir", "out", "--model",
                                "openai/scripted", "--api-base", server.url, "--skip-preflight",
                                "--tool-protocol", "code"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 240
        while server.stats().requests < 5 and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.5)
        assert server.stats().requests >= 5, "the run never got past its first tool calls"
        descendants = _descendants(cli.pid)
        assert any("uvicorn" in cmd for cmd in descendants.values()), descendants  # the temporary Prefect server
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert [cmd for pid, cmd in descendants.items() if _alive(pid)] == []
    left_by_the_killed_run = _sandbox_scratch_dirs() - scratch_before
    assert left_by_the_killed_run, "the killed run made no scratch dir: nothing to clean, the check below proves nothing"

    proc = _tool_distill("distill", "--limit", "1", "--model", "scripted/arith", "--output-dir", "next", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert left_by_the_killed_run & _sandbox_scratch_dirs() == set()
    # The killed run's flow run is not left "Running" in the project's Prefect database: the next start marked it.
    with contextlib.closing(sqlite3.connect(tmp_path / ".state" / "prefect" / "prefect.db")) as db:
        states = sorted((state, tags) for state, tags in db.execute("SELECT state_type, tags FROM flow_run"))
    assert states == [("COMPLETED", '["tool-distill-cli"]'), ("CRASHED", '["tool-distill-cli"]')], states


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "line"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "stopped by SIGTERM")],
                         ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_the_run_with_one_line_and_its_exit_code(tmp_path: Path, sig, code, line) -> None:
    """Ctrl-C, or a SIGTERM from a supervisor (systemd, Kubernetes, `timeout`), while LLM calls are in flight:
    the CLI says it stopped and that the same command resumes, and exits 130 / 143, never 0 or in silence."""
    from mock_llm_server import MockLLMServer

    env = {**env_without_prefect(), "OPENAI_API_KEY": "sk-fake-cli-0000"}

    def hold_after_the_first_calls(agent: str, stats) -> None:
        if stats.requests > 2:
            time.sleep(60)

    with MockLLMServer(latency_s=0.05, on_request=hold_after_the_first_calls) as server:
        cli = subprocess.Popen([*TOOL_DISTILL, "distill", "--limit", "2", "--output-dir", "out", "--model",
                                "openai/scripted", "--api-base", server.url, "--skip-preflight"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 240
        while server.stats().requests < 3 and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.5)
        assert server.stats().requests >= 3, "the run never got to its LLM calls"
        cli.send_signal(sig)
        signalled = time.monotonic()
        stdout, stderr = cli.communicate(timeout=120)
        took_s = time.monotonic() - signalled
    assert cli.returncode == code, stdout[-2000:] + stderr[-2000:]
    assert took_s < 30, f"{took_s:.0f} s from the signal to the exit: it waited for the calls in flight (held 60 s)"
    assert stderr.strip().splitlines()[-1] == f"tool-distill distill: {line}; finished rows are kept, the same command resumes"
    assert "Traceback" not in stderr


def _sandbox_scratch_dirs() -> set[str]:
    from tool_sandbox.zygote import SCRATCH_PREFIX

    return {str(p) for p in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*")}


def _descendants(root: int) -> dict[int, str]:
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = commands.get(child, "")
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_demo_shows_progress_for_every_stage_and_no_library_warnings(tmp_path: Path) -> None:
    """`make demo`'s command on one problem (the embedded model, QLoRA training, eval): the terminal shows our
    progress lines and summary only; transformers' and math-verify's warnings go to the log file."""
    proc = _tool_distill("demo", "--limit", "1", "--output-dir", "out", "--train-eval.max-steps", "2",
                         "--train-eval.eval-limit", "1", "--train-eval.max-new-tokens", "8",
                         "--train-eval.benchmarks", "gsm8k", cwd=tmp_path, timeout_s=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    terminal = proc.stdout + proc.stderr
    assert "Warning" not in terminal and "WARNING" not in terminal, terminal  # ("N library warnings in <log>" is ours)
    for stage in ("solve: 1/1 rows", "translate: 1/1 rows", "rephrase: 1/1 rows", "train: 2/2 steps",
                  "eval base/gsm8k: 1/1 problems", "eval tuned/gsm8k: 1/1 problems"):
        assert stage in proc.stderr, proc.stderr
    assert "== distill ==" in proc.stdout and "== train + eval (no tools) ==" in proc.stdout
    assert "trained QLoRA (4-bit NF4 base) 2 steps" in proc.stdout
