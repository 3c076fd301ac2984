"""What crosses the sandbox boundary: the limits a caller sets and the result a call returns."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

from tool_sandbox.protocol import truncate

ExecStatus = Literal["ok", "error", "timeout", "memory", "killed"]


def _require_isolation_default() -> bool:
    return os.environ.get("TOOL_SANDBOX_REQUIRE_ISOLATION", "1").strip().lower() not in ("0", "false", "no", "off")


class SandboxLimits(BaseModel):
    """Per-call and per-session limits. Defaults suit small SymPy snippets written by a model."""

    timeout_s: float = Field(10.0, gt=0, description="Wall-clock limit of one call; past it the call is stopped.")
    memory_bytes: int = Field(1 << 30, gt=0, description="RLIMIT_AS of each session process (address space).")
    cpu_seconds: float | None = Field(
        None, gt=0, description="CPU time one call may use (RLIMIT_CPU); None means the call's wall timeout.")
    max_processes: int = Field(
        16, gt=0, description="RLIMIT_NPROC (processes and threads) of a session, counted in its own user namespace.")
    max_output_chars: int = Field(20_000, gt=0, description="stdout and the result repr are cut to this length.")
    max_file_bytes: int = Field(16 << 20, ge=0, description="RLIMIT_FSIZE: largest file a call may write in scratch.")
    max_open_files: int = Field(256, gt=16, description="RLIMIT_NOFILE of a session process.")
    scratch_bytes: int = Field(64 << 20, gt=0, description="Size of a session's private tmpfs scratch (its cwd, /tmp).")
    max_reply_bytes: int = Field(
        1 << 20, gt=1024, description="Largest reply the parent reads from a session; a larger one is an error.")
    max_live_sessions: int = Field(
        256, gt=0, description="Idle sessions beyond this are closed, least recently used first.")
    spare_sessions: int = Field(
        2, ge=0, description="Sessions the zygote keeps forked and confined ahead of need, so a start is a hand-over.")
    prefault_spares: bool = Field(
        True, description="Spare sessions made while a core is idle copy the zygote's pages that a typical "
                          "session's first calls write before they are handed over (faster first calls; wasted "
                          "CPU for a session that would not have written them).")
    startup_timeout_s: float = Field(120.0, gt=0, description="How long the zygote may take to import SymPy.")
    require_isolation: bool = Field(
        default_factory=_require_isolation_default,
        description="Refuse to run unless the kernel layers (namespaces + seccomp) work here "
                    "(env TOOL_SANDBOX_REQUIRE_ISOLATION=0 turns it off, e.g. for a demo on a kernel "
                    "without user namespaces).")


class ExecResult(BaseModel):
    """The outcome of one `Sandbox.run` call, notebook-style."""

    stdout: str = ""
    result: str | None = Field(None, description="repr of the value of the last expression, if it is not None.")
    error: str | None = Field(None, description='"ErrorType: message" then a short traceback of the user code.')
    duration_s: float = 0.0
    status: ExecStatus = "ok"
    notice: str | None = Field(
        None, description="Something the model must know besides the output, e.g. that session state was reset.")
    isolation: str | None = Field(
        None, description='The isolation level the call ran under, e.g. "namespaces+seccomp" (see isolation.py).')

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def text_for_model(self, max_chars: int = 4000) -> str:
        """The observation the LLM sees: notice, printed output, last value, then the error; cut with a marker."""
        parts = [f"[{self.notice}]"] if self.notice else []
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.result is not None:
            parts.append(self.result)
        if self.error:
            parts.append(self.error)
        if not parts:
            parts.append("(no output: the code ran but printed nothing and its last line has no value)")
        return truncate("\n".join(parts), max_chars)
