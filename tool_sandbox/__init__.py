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

from tool_sandbox.records import ExecResult, ExecStatus, SandboxLimits
from tool_sandbox.sandbox import Sandbox, SandboxError, get_default_sandbox

__all__ = ["ExecResult", "ExecStatus", "Sandbox", "SandboxError", "SandboxLimits", "get_default_sandbox"]
