"""A fast, confined executor for model-written SymPy code: `Sandbox.run(code, session_id) -> ExecResult`."""

from tool_sandbox.pool import Sandbox, SandboxError, get_default_sandbox
from tool_sandbox.records import ExecResult, ExecStatus, SandboxLimits

__all__ = ["ExecResult", "ExecStatus", "Sandbox", "SandboxError", "SandboxLimits", "get_default_sandbox"]
