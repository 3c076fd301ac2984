"""Human-readable outputs of an evaluation: a markdown report, a bar chart, and the rows of its summary table.

The report shows each (model label, benchmark) run with its 95% interval, and, when several labels
were evaluated, each label's change against the first one (normally base -> tuned): an interval
that overlaps the other label's says the subset is too small to tell them apart.
"""

from __future__ import annotations

import base64
from pathlib import Path

from eval.records import BenchmarkSummary, EvalConfig


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _ordered(summaries: list[BenchmarkSummary]) -> tuple[list[str], list[str]]:
    labels = list(dict.fromkeys(s.label for s in summaries))
    benchmarks = list(dict.fromkeys(s.benchmark for s in summaries))
    return labels, benchmarks


def markdown_report(summaries: list[BenchmarkSummary], config: EvalConfig, chart_name: str | None) -> str:
    labels, benchmarks = _ordered(summaries)
    subset = ("all problems" if config.limit is None else
              f"first {config.limit} problems" if config.subset_seed is None else
              f"{config.limit} problems sampled with seed {config.subset_seed}")
    sampling = ("greedy" if config.temperature == 0 else
                f"n={config.n}, temperature={config.temperature}, top_p={config.top_p}, seed={config.seed}")
    lines = [
        "# Evaluation report (no tools at inference)",
        "",
        f"- Subset: {subset} of each benchmark ({config.source} data)",
        f"- Decoding: {sampling}, max_new_tokens={config.max_new_tokens}",
        f"- Prompt: {config.prompt_template or 'each benchmark default'}"
        + (f"; system prompt: {config.system_prompt!r}" if config.system_prompt else ""),
        "- Accuracy is pass@1 in %, with a 95% interval (Wilson for greedy, bootstrap over problems "
        "for sampling). Graded by eval/grader.py.",
        "",
    ]
    extra_k = sorted({k for s in summaries for k in s.pass_at if k > 1})
    header = ["benchmark", "label", "problems", "accuracy % [95% CI]",
              *[f"pass@{k}" for k in extra_k], *[f"maj@{k}" for k in extra_k],
              "mean tokens", "no answer %", "truncated %", "tokens/s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s.benchmark, s.label, str(s.n_problems),
                 f"{_pct(s.accuracy)} [{_pct(s.ci_low)}, {_pct(s.ci_high)}]",
                 *[_pct(s.pass_at[k]) if k in s.pass_at else "" for k in extra_k],
                 *[_pct(s.maj_at[k]) if k in s.maj_at else "" for k in extra_k],
                 f"{s.mean_completion_tokens:.0f}", _pct(s.no_answer_rate), _pct(s.truncated_rate),
                 f"{s.tokens_per_s:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if len(labels) > 1:
        reference = labels[0]
        by_key = {(s.label, s.benchmark): s for s in summaries}
        lines += ["", f"## Change against `{reference}` (accuracy points)", "",
                  "| benchmark | " + " | ".join(labels) + " | " + " | ".join(f"{l} − {reference}" for l in labels[1:]) + " |",
                  "|" + "---|" * (1 + 2 * len(labels) - 1)]
        for name in benchmarks:
            row = [name, *[_pct(by_key[(l, name)].accuracy) if (l, name) in by_key else "" for l in labels]]
            for label in labels[1:]:
                if (label, name) in by_key and (reference, name) in by_key:
                    row.append(f"{100 * (by_key[(label, name)].accuracy - by_key[(reference, name)].accuracy):+.1f}")
                else:
                    row.append("")
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Models:", ""]
    for label in labels:
        s = next(x for x in summaries if x.label == label)
        lines.append(f"- `{label}`: {s.model}" + (f" + adapter {s.adapter}" if s.adapter else ""))
    if chart_name:
        lines += ["", f"![accuracy by benchmark]({chart_name})"]
    return "\n".join(lines) + "\n"


def write_markdown_report(summaries: list[BenchmarkSummary], config: EvalConfig, chart_path: Path,
                          path: Path) -> str:
    markdown = markdown_report(summaries, config, chart_path.name)
    path.write_text(markdown)
    return markdown


def write_chart(summaries: list[BenchmarkSummary], path: Path) -> Path:
    """Grouped bars: one group per benchmark, one bar per label, 95% intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    labels, benchmarks = _ordered(summaries)
    by_key = {(s.label, s.benchmark): s for s in summaries}
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(benchmarks) + 1), 3.6))
    for offset, label in enumerate(labels):
        xs, heights, errors = [], [], ([], [])
        for x, name in enumerate(benchmarks):
            s = by_key.get((label, name))
            if s is None:
                continue
            xs.append(x + (offset - (len(labels) - 1) / 2) * width)
            heights.append(100 * s.accuracy)
            errors[0].append(max(0.0, 100 * (s.accuracy - s.ci_low)))  # bootstrap bounds may sit
            errors[1].append(max(0.0, 100 * (s.ci_high - s.accuracy)))  # on either side of the mean
        bars = ax.bar(xs, heights, width, yerr=errors, capsize=3, label=label)
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_ylabel("accuracy % (pass@1, 95% CI)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False)
    ax.set_title("No-tool accuracy by benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def inline_chart(markdown: str, chart_path: Path) -> str:
    """The report with its chart inline (a data URI), for a viewer that cannot open files next to it."""
    if not chart_path.exists():
        return markdown
    image = base64.b64encode(chart_path.read_bytes()).decode()
    return markdown.replace(f"]({chart_path.name})", f"](data:image/png;base64,{image})")


def summary_rows(summaries: list[BenchmarkSummary]) -> list[dict[str, str | int | float]]:
    """One row per (model label, benchmark): accuracy and its 95% interval in percent, mean completion tokens."""
    return [{"benchmark": s.benchmark, "label": s.label, "problems": s.n_problems,
             "accuracy_pct": round(100 * s.accuracy, 2), "ci_low_pct": round(100 * s.ci_low, 2),
             "ci_high_pct": round(100 * s.ci_high, 2), "mean_tokens": round(s.mean_completion_tokens, 1)}
            for s in summaries]
