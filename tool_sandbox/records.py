"""What crosses the sandbox boundary: the limits a caller sets and the result a call returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ExecStatus = Literal["ok", "error", "timeout", "memory", "killed"]

TRUNCATION_MARKER = "…[truncated {n} more characters]"


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to `max_chars`, saying how much was dropped so the reader knows it is partial."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + "\n" + TRUNCATION_MARKER.format(n=len(text) - max_chars)


class SandboxLimits(BaseModel):
    """Per-call and per-worker limits. Defaults suit small SymPy snippets written by a model."""

    timeout_s: float = Field(10.0, gt=0, description="Wall-clock limit of one call; past it the call is stopped.")
    memory_bytes: int = Field(1 << 30, gt=0, description="RLIMIT_AS of each worker process (address space).")
    cpu_seconds: float | None = Field(
        None, gt=0, description="CPU time one call may use (RLIMIT_CPU); None means the call's wall timeout.")
    max_processes: int = Field(
        64, gt=0, description="RLIMIT_NPROC of a worker; the kernel ignores it for root, where fork is refused anyway.")
    max_output_chars: int = Field(20_000, gt=0, description="stdout and the result repr are cut to this length.")
    max_file_bytes: int = Field(16 << 20, ge=0, description="RLIMIT_FSIZE: largest file a call may write in scratch.")
    max_open_files: int = Field(256, gt=16, description="RLIMIT_NOFILE of a worker.")
    max_sessions_per_worker: int = Field(
        256, gt=0, description="Idle sessions beyond this are closed, least recently used first.")
    startup_timeout_s: float = Field(120.0, gt=0, description="How long a fresh worker may take to import SymPy.")


class ExecResult(BaseModel):
    """The outcome of one `Sandbox.run` call, notebook-style."""

    stdout: str = ""
    result: str | None = Field(None, description="repr of the value of the last expression, if it is not None.")
    error: str | None = Field(None, description='"ErrorType: message" then a short traceback of the user code.')
    duration_s: float = 0.0
    status: ExecStatus = "ok"
    notice: str | None = Field(
        None, description="Something the model must know besides the output, e.g. that session state was reset.")

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
