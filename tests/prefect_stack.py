"""A real `prefect server start` and the processes tests start beside it, stopped however a test ends.

The server runs under its own PREFECT_HOME in the test's temp dir, on a free loopback port, with its
scheduler service off so a deployment's cron can never start a run mid-test. `stop` stops workers first,
with SIGINT (as a user's Ctrl-C), then the server, then whatever flow-run processes they left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrefectStack:
    """A running server, the processes started beside it and the helpers the tests drive them with."""

    api_url: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @classmethod
    def serve(cls, base: Path, **extra_env: str) -> PrefectStack:
        """Start a server under `base` and wait until it is healthy (stopping it if it never is)."""
        port = free_port()
        env = {**os.environ, "PREFECT_HOME": str(base / "home"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false",
               "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", **extra_env}
        (base / "logs").mkdir(parents=True, exist_ok=True)
        stack = cls(api_url=env["PREFECT_API_URL"], env=env, logs=base / "logs")
        try:
            stack.start("server", [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)])
            stack.wait_healthy()
        except BaseException:
            stack.stop()
            raise
        return stack

    @property
    def base_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as log:
            proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.processes[name] = proc
        return proc

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        """A command with this stack's environment, as a user's shell with PREFECT_API_URL set runs it."""
        return subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_healthy(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            server = self.processes["server"]
            assert server.poll() is None, f"prefect server exited with {server.returncode}:\n{self.log_tail('server')}"
            try:
                if httpx.get(f"{self.api_url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(f"prefect server not healthy after {timeout_s} s:\n{self.log_tail('server')}")

    def stop(self) -> None:
        """Workers (SIGINT) before the server, then anything they left behind (flow-run processes)."""
        for name in sorted(self.processes, key=lambda name: name == "server"):
            proc = self.processes[name]
            leftovers = _descendants(proc.pid)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            for child in leftovers:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
