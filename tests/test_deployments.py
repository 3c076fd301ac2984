"""The deployment path for real: `prefect server`, work pools, `prefect deploy`, process workers,
`prefect deployment run`, artifacts through the API, the pipeline's hand-off to gpu-pool, the UI.

One server (tests/prefect_stack.py: its own PREFECT_HOME, a free loopback port, its scheduler off so the
nightly cron can never start a run mid-test) and one worker per pool serve the whole module (start-up is
the expensive part). Every process started here, and every flow-run process a worker started, is stopped
at the end even when a test fails.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.deploy import WORK_POOLS
from prefect_stack import PREFECT, ROOT, PrefectStack
from tasks.parquet_io import read_records, stage_path
from tasks.records import ProblemRecord, TraceRecord

SCRIPTED = {"model": "scripted/arithmetic"}
RUN_TIMEOUT_S = 420  # a flow run on 2 shared cores: process start + imports + the run itself

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStack]:
    stack = PrefectStack.serve(tmp_path_factory.mktemp("prefect-stack"), PREFECT_WORKER_QUERY_SECONDS="2")
    try:
        deploy = stack.run([sys.executable, "-m", "deployments.deploy"], timeout=600)
        assert deploy.returncode == 0, f"deploy failed:\n{deploy.stdout[-4000:]}\n{deploy.stderr[-4000:]}"
        for pool in WORK_POOLS:
            stack.start(pool, [*PREFECT, "worker", "start", "--pool", pool, "--name", f"test-{pool}"])
        yield stack
    finally:
        stack.stop()


def _deployment(stack: PrefectStack, full_name: str) -> dict[str, Any]:
    return stack.api("GET", f"/deployments/name/{full_name}")


def _run_and_watch(stack: PrefectStack, deployment: str, params: dict[str, Any]) -> dict[str, Any]:
    """`prefect deployment run NAME --param params=... --watch` (as in the README), then the run from the API."""
    done = stack.run([*PREFECT, "deployment", "run", deployment, "--param", f"params={json.dumps(params)}",
                      "--watch", "--watch-interval", "2", "--watch-timeout", str(RUN_TIMEOUT_S)], timeout=RUN_TIMEOUT_S)
    run_ids = [line.split("UUID:")[1].strip() for line in done.stdout.splitlines() if "UUID:" in line]
    assert run_ids, f"prefect deployment run {deployment} created no run ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = stack.api("GET", f"/flow_runs/{run_ids[0]}")
    workers = "\n".join(f"--- {pool}\n{stack.log_tail(pool)}" for pool in WORK_POOLS)
    assert run["state"]["type"] == "COMPLETED" and done.returncode == 0, \
        f"{deployment}: {run['state']}\n{done.stdout[-3000:]}\n{workers}"
    return run


def _artifacts(stack: PrefectStack, flow_run_id: str) -> dict[str, dict[str, Any]]:
    rows = stack.api("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {row["key"]: row for row in rows}


def test_deploy_puts_each_deployment_on_its_pool_with_an_offline_pull_step(stack: PrefectStack) -> None:
    pools = {p["name"]: p["type"] for p in stack.api("POST", "/work_pools/filter", {})}
    assert pools["cpu-pool"] == pools["gpu-pool"] == "process"

    nightly = _deployment(stack, "distill/nightly")
    assert nightly["work_pool_name"] == "cpu-pool"
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["parameters"]["params"]["llm"]["model"] == "local/smollm2-135m"
    assert nightly["pull_steps"] == [{"deployments.steps.set_project_root": {}}]

    assert _deployment(stack, "train-eval/gpu")["work_pool_name"] == "gpu-pool"
    pipeline = _deployment(stack, "pipeline/end-to-end")
    assert pipeline["work_pool_name"] == "cpu-pool"
    assert pipeline["parameters"]["params"]["train_eval_deployment"] == "train-eval/gpu"


@pytest.fixture(scope="module")
def distill_run(stack: PrefectStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One `distill/nightly` run on 2 bundled problems with the scripted model, shared by the tests below."""
    out = tmp_path_factory.mktemp("distill-run") / "distill"
    run = _run_and_watch(stack, "distill/nightly", {"problems": "bundled", "limit": 2, "llm": SCRIPTED, "output_dir": str(out)})
    return run, out


def test_distill_deployment_run_on_a_process_worker_writes_parquet_and_artifacts(
        stack: PrefectStack, distill_run: tuple[dict[str, Any], Path]) -> None:
    run, out = distill_run
    assert run["name"] == "distill-bundled-scripted_arithmetic"
    assert run["work_pool_name"] == "cpu-pool"
    problems = read_records(stage_path(out, "problems"), ProblemRecord)
    traces = read_records(stage_path(out, "traces"), TraceRecord)
    assert [p.id for p in problems] == ["demo-01", "demo-02"]
    assert all(t.answer_correct and t.model == "scripted/arithmetic" for t in traces) and len(traces) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["tool_calls"] == 2

    artifacts = _artifacts(stack, run["id"])
    assert artifacts["distill-summary"]["type"] == "table"
    data = artifacts["distill-summary"]["data"]
    table = json.loads(data) if isinstance(data, str) else data
    assert table[0]["problems"] == 2 and table[0]["kept"] == summary["kept"]
    kinds = {"distill-funnel": "table", "distill-cost": "table", "distill-funnel-chart": "markdown",
             "distill-samples": "markdown", "distill-quality": "table"}
    assert {key: artifacts[key]["type"] for key in kinds if key in artifacts} == kinds


def test_pipeline_hands_train_eval_to_the_gpu_pool_and_waits_for_it(stack: PrefectStack, tmp_path: Path) -> None:
    params = {
        "distill": {"problems": "bundled", "limit": 2, "llm": SCRIPTED, "output_dir": str(tmp_path / "distill")},
        "train_eval": {"output_dir": str(tmp_path / "train_eval"), "recipe": "embedded", "max_steps": 1,
                       "benchmarks": ["gsm8k"], "eval_limit": 1, "max_new_tokens": 8, "batch_size": 1},
        "train_eval_deployment": "train-eval/gpu",
        "train_eval_timeout_s": RUN_TIMEOUT_S,
    }
    pipeline = _run_and_watch(stack, "pipeline/end-to-end", params)
    assert pipeline["name"] == "pipeline-bundled-scripted_arithmetic"

    children = stack.api("POST", "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"operator": "and_", "any_": [pipeline["id"]]}}})
    by_flow = {stack.api("GET", f"/flows/{c['flow_id']}")["name"]: c for c in children}
    assert set(by_flow) == {"distill", "train-eval"}
    handed_off = by_flow["train-eval"]
    assert handed_off["deployment_id"] == _deployment(stack, "train-eval/gpu")["id"]
    assert handed_off["work_pool_name"] == "gpu-pool"
    assert handed_off["state"]["type"] == "COMPLETED"
    assert handed_off["parameters"]["params"]["sft_path"] == str((tmp_path / "distill" / "sft.parquet").resolve())
    assert (tmp_path / "train_eval" / "eval" / "summary.json").is_file()  # base vs tuned, written on the GPU pool's side
    assert "pipeline-summary" in _artifacts(stack, pipeline["id"])


def test_ui_serves_the_page_of_a_run_a_worker_finished(stack: PrefectStack, distill_run: tuple[dict[str, Any], Path]) -> None:
    """The UI's own page for the worker's run is served; what it renders is checked in Chromium by test_ui_browser.py."""
    run, _ = distill_run
    assert stack.api("GET", f"/flow_runs/{run['id']}")["state"]["name"] == "Completed"
    settings = httpx.get(f"{stack.base_url}/ui-settings", timeout=30).json()
    assert settings["api_url"] == stack.api_url  # the JS app would otherwise fetch from another server
    base = settings[f"{settings['default_ui']}_base_url"].rstrip("/")
    url = f"{stack.base_url}{base}/runs/flow-run/{run['id']}?tab=Artifacts"
    page = httpx.get(url, headers={"Accept": "text/html"}, follow_redirects=True, timeout=30)
    assert page.status_code == 200 and "<title>Prefect" in page.text


def test_gpu_job_templates_for_docker_and_kubernetes_pools_are_accepted(stack: PrefectStack) -> None:
    for kind, path in (("docker", "docker-gpu-job-template.json"), ("kubernetes", "kubernetes-gpu-job-template.json")):
        template = json.loads((ROOT / "deployments" / path).read_text())
        pool = stack.api("POST", "/work_pools/", {"name": f"gpu-{kind}", "type": kind, "base_job_template": template})
        assert pool["base_job_template"] == template
    docker = json.loads((ROOT / "deployments" / "docker-gpu-job-template.json").read_text())
    gpus = docker["variables"]["properties"]["container_create_kwargs"]["default"]["device_requests"]
    assert gpus == [{"count": -1, "capabilities": [["gpu"]]}]  # == docker run --gpus all
    k8s = (ROOT / "deployments" / "kubernetes-gpu-job-template.json").read_text()
    assert '"nvidia.com/gpu": "{{ gpu_count }}"' in k8s
