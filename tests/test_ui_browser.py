"""What a user sees in the Prefect UI after a distill run, checked in a real headless Chromium.

A real `prefect server start` (SQLite under the test's temp dir, a free loopback port) receives one
small distill run with the scripted model, started as a user would from a shell with
PREFECT_API_URL set. Chromium then opens the flow run page, the Artifacts page and each artifact's
page, waits until the UI (a JS app that fetches after it loads) shows what it should, and the test
asserts on the rendered text and images. Screenshots go to the test's temp dir, and also to
$TOOL_DISTILL_UI_SCREENSHOTS when set (how docs/ui/ was made).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from headless_chromium import INSTALL_HINT, Page, find_chromium, headless_chromium
from prefect_stack import PrefectStack

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420),
              pytest.mark.skipif(CHROMIUM is None, reason=f"no headless Chromium to render the Prefect UI: {INSTALL_HINT}")]

PROBLEMS = [
    {"id": "times", "problem": "What is 12 * 7?", "answer": "84"},
    {"id": "steps", "problem": "What is 11 * 3 + 7 * 2? Compute one term per step.", "answer": "47"},
    {"id": "power", "problem": "Compute 2^10.", "answer": "1024"},
    {"id": "wrong-reference", "problem": "What is 2 + 2?", "answer": "5"},  # the solver's right 4 is "wrong": dropped
]
RUN_SCRIPT = """
import json, sys
from flows.distill import DistillParams, distill
from tasks.llm import LLMSettings
params = DistillParams(problems=sys.argv[1], output_dir=sys.argv[2], llm=LLMSettings(model="scripted/arithmetic"))
state = distill(params, return_state=True)
print("RESULT", json.dumps({"state": state.type.value, "flow_run_id": str(state.state_details.flow_run_id)}))
"""
ARTIFACT_KEYS = ("distill-funnel", "distill-funnel-chart", "distill-cost", "distill-spend", "distill-yield",
                 "distill-samples", "distill-solve-progress")


@dataclass
class DistillRunInUI:
    ui_url: str  # the UI's own base, e.g. http://127.0.0.1:PORT/v2
    stack: PrefectStack
    flow_run: dict[str, Any]
    screenshots: list[Path]

    def artifact_id(self, key: str) -> str:
        rows = self.stack.api("POST", "/artifacts/filter", {"artifacts": {"key": {"any_": [key]},
                                                                    "flow_run_id": {"any_": [self.flow_run["id"]]}}})
        assert len(rows) == 1, f"{key}: {len(rows)} artifacts in run {self.flow_run['name']}"
        return rows[0]["id"]


@pytest.fixture(scope="module")
def run_in_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistillRunInUI]:
    base = tmp_path_factory.mktemp("ui-browser")
    stack = PrefectStack.serve(base, TOOL_DISTILL_PROGRESS="off")
    try:
        problems = base / "problems.jsonl"
        problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
        done = stack.run([sys.executable, "-c", RUN_SCRIPT, str(problems), str(base / "distill")], timeout=300)
        results = [line.removeprefix("RESULT ") for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert done.returncode == 0 and results, f"distill run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        result = json.loads(results[0])
        assert result["state"] == "COMPLETED", result
        settings = httpx.get(f"{stack.base_url}/ui-settings", timeout=30).json()
        ui_url = stack.base_url + settings[f"{settings['default_ui']}_base_url"].rstrip("/")
        yield DistillRunInUI(ui_url=ui_url, stack=stack,
                             flow_run=stack.api("GET", f"/flow_runs/{result['flow_run_id']}"), screenshots=[])
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser(run_in_ui: DistillRunInUI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Page, Path]]:
    shots = tmp_path_factory.mktemp("screenshots")
    assert CHROMIUM is not None
    with headless_chromium(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"), width=1400, height=1000) as page:
        yield page, shots
    keep = os.environ.get("TOOL_DISTILL_UI_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, Path(keep) / shot.name)


def _shoot(page: Page, shots: Path, name: str, height: int = 1000) -> Path:
    page.resize(1400, height)
    time.sleep(0.5)  # one layout after the resize
    path = page.screenshot(shots / f"{name}.png")
    page.resize(1400, 1000)
    assert path.stat().st_size > 20_000, f"{path}: {path.stat().st_size} bytes, a blank page?"
    return path


def test_flow_run_page_lists_the_runs_artifacts(run_in_ui: DistillRunInUI, browser: tuple[Page, Path]) -> None:
    page, shots = browser
    page.goto(f"{run_in_ui.ui_url}/runs/flow-run/{run_in_ui.flow_run['id']}?tab=Artifacts")
    # the cards of the run's artifacts, the funnel's with its description
    page.wait_for_text(run_in_ui.flow_run["name"], "Completed", *ARTIFACT_KEYS, "3 of 4 problems kept")
    _shoot(page, shots, "flow-run-artifacts", height=1500)


def test_artifacts_page_shows_one_card_per_kind(run_in_ui: DistillRunInUI, browser: tuple[Page, Path]) -> None:
    page, shots = browser
    page.goto(f"{run_in_ui.ui_url}/artifacts")
    page.wait_for_text(*ARTIFACT_KEYS, "distill-summary", "distill-quality")
    _shoot(page, shots, "artifacts")


def test_funnel_table_and_chart_render_with_the_drop_reason(run_in_ui: DistillRunInUI, browser: tuple[Page, Path]) -> None:
    page, shots = browser
    page.goto(f"{run_in_ui.ui_url}/artifacts/artifact/{run_in_ui.artifact_id('distill-funnel')}")
    text = page.wait_for_text("dropped before this step", "faithful", "solver_wrong_answer: 1")
    assert "% of problems" in text and "75.0" in text  # 3 of the 4 problems kept
    _shoot(page, shots, "funnel-table")

    page.goto(f"{run_in_ui.ui_url}/artifacts/artifact/{run_in_ui.artifact_id('distill-funnel-chart')}")
    page.wait_for_text("Distill funnel", "solved lost 1: solver_wrong_answer: 1", "sft.parquet")
    deadline = time.monotonic() + 30
    while not page.evaluate("[...document.images].some(i => i.src.startsWith('data:image/png') && i.complete "
                            "&& i.naturalWidth > 400)"):
        assert time.monotonic() < deadline, "the funnel chart image never loaded"
        time.sleep(0.5)
    _shoot(page, shots, "funnel-chart", height=1100)


def test_cost_table_renders_per_stage_and_per_kept_trace(run_in_ui: DistillRunInUI, browser: tuple[Page, Path]) -> None:
    page, shots = browser
    page.goto(f"{run_in_ui.ui_url}/artifacts/artifact/{run_in_ui.artifact_id('distill-cost')}")
    text = page.wait_for_text("prompt tokens", "completion tokens", "solve", "translate", "rephrase", "total",
                              "per kept trace (total / 3)")
    assert "cost usd" in text
    _shoot(page, shots, "cost-table")


def test_spend_and_yield_render_per_stage_and_per_sample(run_in_ui: DistillRunInUI, browser: tuple[Page, Path]) -> None:
    page, shots = browser
    page.goto(f"{run_in_ui.ui_url}/artifacts/artifact/{run_in_ui.artifact_id('distill-spend')}")
    page.wait_for_text("Spend", "completion tokens", "solve", "translate", "rephrase")
    _shoot(page, shots, "spend")
    page.goto(f"{run_in_ui.ui_url}/artifacts/artifact/{run_in_ui.artifact_id('distill-yield')}")
    text = page.wait_for_text("sample index", "problems first kept", "llm calls", "kept per problem")
    assert "all" in text
    _shoot(page, shots, "yield")


def test_sample_traces_show_tool_calls_derivations_and_solutions(run_in_ui: DistillRunInUI,
                                                                 browser: tuple[Page, Path]) -> None:
    page, shots = browser
    page.goto(f"{run_in_ui.ui_url}/artifacts/artifact/{run_in_ui.artifact_id('distill-samples')}")
    text = page.wait_for_text("Sample traces: 2 kept, 1 dropped (of 4 problems)", "Kept — times",
                              "Dropped (solver_wrong_answer) — wrong-reference", "What is 12 * 7?",
                              "print(12 * 7)", "translator derivation", "method: exact", "faithful",
                              "Final natural-language solution", "not rephrased")
    # the multi-step problem is the second kept one: both of its tool calls, each with its own derivation
    assert "Kept — steps" in text and "print(11 * 3)" in text and "print(7 * 2)" in text
    assert text.count("\\boxed{84}") >= 1 and "What is 2 + 2?" in text
    assert page.evaluate("document.querySelectorAll('table pre').length") >= 6  # code, output, derivation per call
    _shoot(page, shots, "sample-traces", height=2600)
