"""End-to-end evaluation: generation backends, grading, per-problem Parquet, summary, report, artifacts.

The replay LLM test runs in milliseconds and pins the grading of known answers; the embedded-model
tests are `slow` and kept short (few problems, a handful of new tokens, batched).
"""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval.benchmarks import BENCHMARK_NAMES, load_benchmark
from eval.generation import GenerationParams, ModelUnderTest, TransformersBackend
from eval.harness import EvalConfig, EvalRecord, evaluate_models
from tasks.llm.embedded_model import embedded_model_dir
from tasks.records import arrow_schema

FAST = dict(max_new_tokens=6, cpu_threads=1)


def test_litellm_backend_grades_scripted_answers(replay_llm, tmp_path):
    # GSM8K's first two answers are 18 and 3: one right (in a different form), one wrong, one unanswered.
    replay_llm.replies = ["She earns 9 * 2 = 18 dollars.\n\\boxed{18.00}", "It takes \\boxed{4} bolts.",
                          "I am not sure."]
    report = evaluate_models([ModelUnderTest(model="replay/scripted", label="api")], ["gsm8k"],
                             EvalConfig(limit=3, concurrency=1), tmp_path)
    rows = pq.read_table(tmp_path / "per_problem" / "api" / "gsm8k.parquet").to_pylist()
    assert [(r["extracted_answer"], r["correct"]) for r in rows] == [("18.00", True), ("4", False), (None, False)]
    assert replay_llm.requests[0][-1]["content"].endswith(
        "put your final answer within \\boxed{}. The final answer is a number only, without units.")  # GSM8K variant
    (summary,) = report.summaries
    assert summary.accuracy == pytest.approx(1 / 3) and summary.no_answer_rate == pytest.approx(1 / 3)
    saved = json.loads(report.summary_path.read_text())
    assert saved["config"]["limit"] == 3 and saved["summaries"][0]["benchmark"] == "gsm8k"
    assert report.report_path.exists() and report.chart_path.exists()


def test_config_rejects_many_greedy_samples_and_duplicate_labels(tmp_path):
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(n=4, temperature=0.0)
    with pytest.raises(ValueError, match="unique"):
        evaluate_models([ModelUnderTest(model="x"), ModelUnderTest(model="y")], ["gsm8k"], EvalConfig(), tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="adapter_config.json"):
        evaluate_models([ModelUnderTest(model=str(tmp_path), adapter=tmp_path, label="tuned")], ["gsm8k"],
                        EvalConfig(), tmp_path)


def test_eval_takes_paths_and_refuses_embedded_with_the_way_to_a_path(tmp_path, capsys):
    from eval.cli import main

    with pytest.raises(ValueError, match="tool-distill"):
        evaluate_models([ModelUnderTest(model="embedded")], ["gsm8k"], EvalConfig(limit=1), tmp_path)
    with pytest.raises(SystemExit):
        main(["--model", "embedded", "--benchmarks", "gsm8k", "--output-dir", str(tmp_path)])
    assert "tool-distill" in capsys.readouterr().err


def test_api_models_are_answered_by_the_completion_function_the_caller_hands_in(replay_llm, tmp_path):
    """eval knows no pipeline: a `local/` model needs the caller's client, which here is litellm + the replay."""
    import litellm

    with pytest.raises(ValueError, match="local/"):
        evaluate_models([ModelUnderTest(model="local/smollm2-135m")], ["gsm8k"], EvalConfig(limit=1), tmp_path)
    seen = []

    def completion(model: str, **request):
        seen.append(model)
        return litellm.completion(model="replay/scripted", **request)

    replay_llm.replies = ["\\boxed{18}"]
    report = evaluate_models([ModelUnderTest(model="local/smollm2-135m", label="api")], ["gsm8k"],
                             EvalConfig(limit=1, concurrency=1), tmp_path, completion=completion)
    assert seen == ["local/smollm2-135m"] and report.summaries[0].accuracy == 1.0


@pytest.mark.slow
def test_embedded_model_on_a_five_problem_slice_of_every_benchmark(tmp_path):
    config = EvalConfig(limit=5, batch_size=10, **FAST)
    model = str(embedded_model_dir())
    report = evaluate_models([ModelUnderTest(model=model)], list(BENCHMARK_NAMES), config, tmp_path)
    assert [s.benchmark for s in report.summaries] == list(BENCHMARK_NAMES)
    for name in BENCHMARK_NAMES:
        table = pq.read_table(tmp_path / "per_problem" / "base" / f"{name}.parquet")
        assert table.schema.remove_metadata().equals(arrow_schema(EvalRecord).remove_metadata())
        rows = table.to_pylist()
        assert [r["problem_id"] for r in rows] == [item.id for item in load_benchmark(name, 5)]
        assert all(0 < r["completion_tokens"] <= 6 and r["completion"] for r in rows)
        assert all(r["prompt_tokens"] > 20 and r["model"] == model and r["adapter"] is None for r in rows)
    assert "| math500 | base | 5 |" in report.report_path.read_text()


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory):
    """A LoRA adapter with random (non-zero) weights, so base and tuned really differ."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir())
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    path = tmp_path_factory.mktemp("adapter")
    get_peft_model(base, config).save_pretrained(path)
    return path


@pytest.mark.slow
def test_base_and_adapter_are_evaluated_in_one_cli_call(random_adapter, tmp_path):
    from eval.cli import main

    assert main(["--model", str(embedded_model_dir()), "--adapter", str(random_adapter), "--benchmarks", "gsm8k",
                 "--limit", "2", "--max-new-tokens", "6", "--cpu-threads", "1", "--output-dir", str(tmp_path)]) == 0
    base = pq.read_table(tmp_path / "per_problem" / "base" / "gsm8k.parquet").to_pylist()
    tuned = pq.read_table(tmp_path / "per_problem" / "tuned" / "gsm8k.parquet").to_pylist()
    assert [r["prompt"] for r in base] == [r["prompt"] for r in tuned]
    assert all(r["adapter"] == str(random_adapter) for r in tuned)
    assert [r["completion"] for r in base] != [r["completion"] for r in tuned]
    report = (tmp_path / "report.md").read_text()
    assert "Change against `base`" in report and "tuned − base" in report


@pytest.mark.slow
def test_merged_adapter_matches_the_peft_model(random_adapter):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_dir = embedded_model_dir()
    merged = TransformersBackend(model_dir, random_adapter, device="cpu")
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), str(random_adapter))
    ids = merged.tokenizer("What is 12 * 7?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert torch.allclose(merged.model(ids).logits, peft_model.eval()(ids).logits, atol=1e-4)


@pytest.mark.slow
def test_left_padded_batches_give_the_one_by_one_greedy_output_and_seeded_sampling_repeats():
    backend = TransformersBackend(embedded_model_dir(), device="cpu")
    conversations = [[{"role": "user", "content": text}] for text in
                     ("What is 2 + 3?", "A train travels 60 km in 1.5 hours. What is its average speed in km/h?")]
    greedy = GenerationParams(batch_size=2, **FAST)
    batched = backend.generate(conversations, greedy)
    alone = [backend.generate([c], greedy)[0] for c in conversations]
    assert [b[0].text for b in batched] == [a[0].text for a in alone]
    assert batched[0][0].batch_size == 2 and alone[0][0].batch_size == 1

    sampling = GenerationParams(n=3, temperature=1.0, top_p=0.95, seed=3, batch_size=2, **FAST)
    first, again = backend.generate(conversations, sampling), backend.generate(conversations, sampling)
    assert [len(samples) for samples in first] == [3, 3]
    assert [[c.text for c in s] for s in first] == [[c.text for c in s] for s in again]
    assert len({c.text for c in first[1]}) > 1  # samples differ from each other


def test_regrade_rescores_saved_completions_without_generating(replay_llm, tmp_path):
    replay_llm.replies = ["\\boxed{18}", "\\boxed{4}"]
    evaluate_models([ModelUnderTest(model="replay/scripted", label="api")], ["gsm8k"],
                    EvalConfig(limit=2, concurrency=1), tmp_path)
    path = tmp_path / "per_problem" / "api" / "gsm8k.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[1]["completion"] = "\\boxed{3}"  # as if an older grader had missed this answer
    rows[1]["correct"] = False
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(EvalRecord)), path)

    from eval.cli import main

    assert main(["--regrade", "--output-dir", str(tmp_path)]) == 0
    assert [r["correct"] for r in pq.read_table(path).to_pylist()] == [True, True]
    assert json.loads((tmp_path / "summary.json").read_text())["summaries"][0]["accuracy"] == 1.0
    assert len(replay_llm.requests) == 2  # nothing generated again
