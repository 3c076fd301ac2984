"""A fast, confined executor for model-written SymPy code.

    with Sandbox() as box:                       # or get_default_sandbox(), shared per process
        out = box.run("x = symbols('x')\\nsolve(x**2 - 4, x)", session_id="problem-17")
        out.status, out.result                   # ('ok', '[-2, 2]')
        box.close_session("problem-17")

Calls of one session share variables like a notebook; sessions are isolated. Workers are warm
processes with SymPy imported (pool.py), confined in layers (worker.py): an empty network namespace
(`unshare`), Landlock rules (read Python's libraries, write only scratch, exec nothing, no TCP, no
signals out), rlimits (address space, CPU, file size, open files, processes), a throwaway scratch
cwd and an empty environment; under those, an audit hook (policy.py) turns forbidden actions into
clear `SandboxRestriction` errors. Each kernel layer is used where this machine allows it and
reported by `Sandbox.confinement()`. The SymPy toolkit for function calling is `sympy_toolkit`.
"""

from tool_sandbox.pool import Sandbox, SandboxError, get_default_sandbox
from tool_sandbox.records import ExecResult, ExecStatus, SandboxLimits

__all__ = ["ExecResult", "ExecStatus", "Sandbox", "SandboxError", "SandboxLimits", "get_default_sandbox"]
