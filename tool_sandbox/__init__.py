"""A fast, kernel-confined executor for model-written SymPy code.

    with Sandbox() as box:                       # or get_default_sandbox(), shared per process
        out = box.run("x = symbols('x')\\nsolve(x**2 - 4, x)", session_id="problem-17")
        out.status, out.result, out.isolation    # ('ok', '[-2, 2]', 'namespaces+seccomp')
        box.close_session("problem-17")

Calls of one session share variables like a notebook. Each session is its own process, forked from a
warm zygote with SymPy imported and killed when the session ends, so nothing outlives it. The kernel
confines it: user, PID, mount, network, IPC and UTS namespaces behind an unprivileged uid, a root that
holds only the Python installation (read-only) and a 64 MiB tmpfs scratch, a seccomp filter (no
sockets, exec, ptrace, mount, namespaces, ...), rlimits and an empty environment. `python -m
tool_sandbox doctor` says which layers this machine gives; docs/sandbox.md explains the design.
The SymPy toolkit for function calling is `sympy_toolkit`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tool_sandbox.records import ExecResult, ExecStatus, SandboxLimits
    from tool_sandbox.sandbox import Sandbox, SandboxError, get_default_sandbox

# Loaded on first use: the zygote imports this package too, and every module it holds makes each
# session's fork and exit dearer (page tables are copied and torn down per process). The parent's side
# (pydantic, subprocess, threads) stays out of it.
_EXPORTS = {"ExecResult": "records", "ExecStatus": "records", "SandboxLimits": "records",
            "Sandbox": "sandbox", "SandboxError": "sandbox", "get_default_sandbox": "sandbox"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tool_sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tool_sandbox.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
