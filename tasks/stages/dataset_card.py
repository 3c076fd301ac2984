"""The dataset card: a README.md beside the run's Parquet files, in Hugging Face dataset-card format.

The YAML header makes the output folder a dataset as it is: `configs` points the default config at
`sft.parquet` (and one config at each other stage file), so `datasets.load_dataset(<dir>)` and a Hub
upload load the training set and not a mix of stage files. The header and the body say what the data
is: licence, source datasets, teacher model, prompt versions, counts per stage, drop reasons and the
decontamination report. Row counts of the files are read from the files themselves, so the card
cannot disagree with the Parquet it describes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, Field

from tasks.stages.decontam import DecontaminationReport, hits_by_benchmark
from tasks.stages.hub_upload import CARD_NAME
from tasks.stages.quality import QualitySummary
from tasks.stages.spend_report import SpendSummary, spend_markdown
from tasks.stages.summary import YieldReport, shown_ratio
from tasks.records import STAGE_RECORDS

TRAIN_STAGE = "sft"
MAX_LISTED_HITS = 50  # the card lists this many contaminated problems; the count covers all of them


class DatasetCardInfo(BaseModel):
    """What a distill run knows about its dataset; the flow fills it in."""

    pretty_name: str
    license: str = Field(description="SPDX-style id for the Hub ('mit', 'apache-2.0', 'other'): the terms of the "
                                     "source problems and of the teacher model's outputs both apply.")
    source_datasets: list[str]
    teacher_model: str
    prompt_versions: dict[str, str]
    stage_counts: dict[str, int] = Field(description="Rows after each step, in pipeline order.")
    drop_reasons: dict[str, int] = Field(default_factory=dict)
    decontamination: DecontaminationReport | None = None
    duplicates_removed: dict[str, int] = Field(default_factory=dict)  # {"problem": n, "trace": m}
    quality: QualitySummary | None = None
    cost_usd: float | None = None
    spend: SpendSummary | None = None
    yield_report: YieldReport | None = None
    paper: str = "https://arxiv.org/abs/2506.19171"


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "n>1M"


def _stage_files(output_dir: Path) -> dict[str, int]:
    """Rows of each stage file present, in pipeline order (read from Parquet footers only)."""
    return {stage: pq.read_metadata(output_dir / f"{stage}.parquet").num_rows
            for stage in STAGE_RECORDS if (output_dir / f"{stage}.parquet").exists()}


def _header(card: DatasetCardInfo, files: dict[str, int]) -> dict[str, Any]:
    configs = [{"config_name": "default", "data_files": [{"split": "train", "path": f"{TRAIN_STAGE}.parquet"}]}]
    configs += [{"config_name": stage, "data_files": [{"split": "train", "path": f"{stage}.parquet"}]}
                for stage in files if stage != TRAIN_STAGE]
    decontam = card.decontamination
    return {
        "pretty_name": card.pretty_name,
        "license": card.license,
        "language": ["en"],
        "task_categories": ["text-generation", "question-answering"],
        "tags": ["math", "reasoning", "distillation", "tool-distill", "synthetic"],
        "size_categories": [_size_category(files[TRAIN_STAGE])],
        "source_datasets": card.source_datasets,
        "configs": configs,
        "tool_distill": {
            "teacher_model": card.teacher_model,
            "prompt_versions": card.prompt_versions,
            "stage_counts": card.stage_counts,
            "file_rows": files,
            "drop_reasons": card.drop_reasons,
            "duplicates_removed": card.duplicates_removed,
            "decontamination": None if decontam is None else {
                "benchmarks": decontam.benchmarks, "ngram_size": decontam.ngram_size,
                "min_coverage": decontam.min_coverage, "removed": len(decontam.hits),
                "removed_by_benchmark": hits_by_benchmark(decontam.hits)},
            "cost_usd": card.cost_usd,
            **({"spend": card.spend.model_dump(mode="json")} if card.spend is not None else {}),
            **({} if card.yield_report is None else {
                "answer_labels": card.yield_report.labels,
                "yield": card.yield_report.model_dump(exclude={"by_sample", "labels"})}),
        },
    }


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def _body(card: DatasetCardInfo, files: dict[str, int]) -> str:
    parts = [
        f"# {card.pretty_name}",
        f"Tool-free math solutions distilled from tool-using traces, after [Distilling Tool Knowledge into "
        f"Language Models via Back-Translated Traces]({card.paper}): a Solver agent solved each problem "
        f"with SymPy calls in a sandbox, a Translator re-derived each call in natural language (checked "
        f"against the tool's real output), and a Rephraser merged them into one solution without tools. "
        f"Only solutions whose final answer matches the reference, whose tool calls were all translated "
        f"faithfully, and that mention no tool or code are kept.",
        "## Use\n\n```python\nfrom datasets import load_dataset\n\n"
        "train = load_dataset(\"<this folder or repo>\", split=\"train\")  # sft.parquet: chat messages\n"
        "filter_report = load_dataset(\"<this folder or repo>\", \"filter_report\", split=\"train\")\n```",
        f"- **Licence**: `{card.license}` (the terms of the source problems and of the teacher model's outputs apply)\n"
        f"- **Source datasets**: {', '.join(card.source_datasets) or 'none'}\n"
        f"- **Teacher model**: `{card.teacher_model}`\n"
        f"- **Prompt versions**: {', '.join(f'{k} `{v}`' for k, v in card.prompt_versions.items()) or 'none'}"
        + (f"\n- **Generation cost**: ${card.cost_usd:.4f}" if card.cost_usd is not None else ""),
        "## Counts per stage\n\n" + _table(list(card.stage_counts.items()), ("stage", "rows")),
        "## Files\n\n" + _table([(f"`{stage}.parquet`", rows) for stage, rows in files.items()], ("file", "rows")),
        "## Drop reasons\n\n" + (_table(list(card.drop_reasons.items()), ("reason", "rows"))
                                 if card.drop_reasons else "No row was dropped by the filter."),
    ]
    if card.yield_report is not None:
        parts += [_labels_section(card.yield_report), _yield_section(card.yield_report)]
    if card.duplicates_removed:
        parts.append("## Deduplication\n\n" + _table(list(card.duplicates_removed.items()), ("kind", "removed")))
    parts.append(_decontamination_section(card.decontamination))
    if card.spend is not None:
        parts.append("## Generation cost\n\n" + spend_markdown(card.spend).rstrip())
    if card.quality is not None:
        parts.append("## Quality\n\n" + _table(
            [(k, v) for k, v in card.quality.model_dump().items() if k != "drop_reasons"], ("metric", "value")))
    return "\n\n".join(parts) + "\n"


def _labels_section(report: YieldReport) -> str:
    labels = report.labels
    return ("## Answer labels\n\nWhere each problem's answer came from: its source's reference answer, or, for a "
            "problem without one, the answer most of its solver samples agreed on (`answer_source` in "
            "`problems.parquet` and `sft.parquet`; `answer_agreement` is the share of samples that agreed). "
            "Problems whose samples did not agree were dropped (`no_consensus`).\n\n"
            + _table([("reference", labels["reference"]), ("majority vote", labels["majority"]),
                      ("no consensus (dropped)", labels["no_consensus"])], ("label", "problems")))


def _yield_section(report: YieldReport) -> str:
    text = (f"## Yield\n\n{report.kept} traces kept from {report.problems} problems "
            f"({report.problems_with_kept} problems with at least one; {shown_ratio(report.kept_per_problem)} per problem), "
            f"{report.samples_per_problem} solver samples per problem at most, stopping at "
            f"{report.keep_per_problem} distinct correct ones: {report.llm_calls} LLM calls "
            f"({shown_ratio(report.kept_per_1000_calls)} kept per 1,000 calls), ${report.cost_usd:.4f} "
            f"({shown_ratio(report.kept_per_usd)} kept per dollar).\n\n")
    return text + _table([(s.sample_index, s.drawn, s.correct, s.distinct_new, s.kept, s.problems_first_kept,
                           s.llm_calls) for s in report.by_sample],
                         ("sample index", "drawn", "correct", "distinct, translated", "kept", "problems first kept",
                          "LLM calls"))


def _decontamination_section(report: DecontaminationReport | None) -> str:
    if report is None:
        return "## Decontamination\n\nNot run: this dataset was not checked against evaluation benchmarks."
    text = (f"## Decontamination\n\nInput problems were checked against {', '.join(report.benchmarks)} "
            f"({report.ngram_size}-gram overlap on normalised text, coverage >= {report.min_coverage} of a "
            f"benchmark problem with the same numbers, or an exact normalised match) and "
            f"{len(report.hits)} were removed before solving.")
    if report.hits:
        listed = report.hits[:MAX_LISTED_HITS]
        text += "\n\n" + _table([(h.problem_id, h.benchmark, h.benchmark_id, h.method, h.coverage,
                                  h.matched_span[:120]) for h in listed],
                                ("problem", "benchmark", "benchmark id", "method", "coverage", "matched span"))
        if len(report.hits) > len(listed):
            text += f"\n\n({len(report.hits) - len(listed)} more not listed.)"
    return text


def write_dataset_card(output_dir: Path, card: DatasetCardInfo) -> Path:
    """Write `<output_dir>/README.md` for the stage files there; `sft.parquet` must exist."""
    output_dir = Path(output_dir)
    if not (output_dir / f"{TRAIN_STAGE}.parquet").exists():
        raise FileNotFoundError(f"{output_dir / (TRAIN_STAGE + '.parquet')}: the dataset card describes the SFT "
                                "file; run the filter stage that writes it first")
    files = _stage_files(output_dir)
    header = yaml.safe_dump(_header(card, files), sort_keys=False, allow_unicode=True)
    text = f"---\n{header}---\n\n{_body(card, files)}"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{CARD_NAME}.", suffix=".tmp", dir=output_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path = output_dir / CARD_NAME
    os.replace(tmp_name, path)
    return path
