"""The worker process: import SymPy once, confine itself, then run calls that arrive over a pipe.

Started by `pool.WorkerHandle` as `python -I -B -c <bootstrap> REQ_FD RESP_FD CONFIG_JSON`, inside a
fresh network namespace when `unshare` allows it. One worker hosts many sessions (one namespace dict
and one scratch sub-directory each) and runs one call at a time.
"""

from __future__ import annotations

import _thread
import ast
import builtins
import hashlib
import importlib
import io
import json
import linecache
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tool_sandbox.landlock import restrict_filesystem
from tool_sandbox.policy import Guard, disable_process_functions, make_guarded_import
from tool_sandbox.protocol import FrameError, read_frame, write_frame
from tool_sandbox.records import TRUNCATION_MARKER, truncate

PRELOADED_MODULES = ("sympy", "math", "fractions", "itertools", "numpy", "tool_sandbox.sympy_toolkit")
SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
MAX_TRACEBACK_FRAMES = 5
THREAD_GRACE_S = 0.1
# Source that could rebind attributes of shared modules (`sympy.solve = ...`, setattr, exec of a string,
# chdir). Comparing every watched module dict after every call costs ~0.3 ms, more than a small SymPy call,
# so only sessions whose code ever matched this pay for it.
MAY_MUTATE_SHARED_STATE = re.compile(
    r"setattr|delattr|__dict__|vars\s*\(|globals\s*\(|exec|eval|compile|builtins|sys\s*\.\s*modules|importlib|"
    r"reload|chdir|\.\s*[A-Za-z_]\w*\s*(?:[-+*/%&|^@]|\*\*|//|>>|<<)?=(?!=)|\bdel\b[^\n]*\.")

# The worker's own handles on signal functions, taken before `disable_process_functions` stubs them out.
_setitimer = signal.setitimer
_set_signal = signal.signal


class CallTimeout(BaseException):
    """Raised into user code by SIGALRM. A BaseException so `except Exception:` in a snippet cannot swallow it."""


class CappedStream(io.TextIOBase):
    """stdout/stderr of one call: keeps the first `cap` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self._parts: list[str] = []
        self._room = cap
        self._dropped = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        kept = text[: max(self._room, 0)]
        if kept:  # past the cap a looping writer would otherwise grow the list by one "" per write
            self._parts.append(kept)
            self._room -= len(kept)
        self._dropped += len(text) - len(kept)
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self._parts)
        return f"{text}\n{TRUNCATION_MARKER.format(n=self._dropped)}" if self._dropped else text


@dataclass
class Session:
    namespace: dict[str, Any]
    directory: str
    cells: list[str] = field(default_factory=list)
    may_mutate_shared_state: bool = False


class Worker:
    """All state of one worker process: the sessions it hosts, its guard, and what each call must restore."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.scratch_root = config["scratch_dir"]
        self.max_output = int(config["max_output_chars"])
        self.sessions: dict[str, Session] = {}
        self.in_user_code = False
        self.cpu_limit = -1
        modules = _import_available(PRELOADED_MODULES)
        self.base_namespace = self._base_namespace()
        self.default_recursion_limit = sys.getrecursionlimit()
        self.confinement = self._confine(config)
        self.guard = Guard(config["read_roots"])
        self.guard.install()
        disable_process_functions()
        self.watched_modules = [*modules, os, sys, signal, builtins]
        self.module_snapshots = [dict(m.__dict__) for m in self.watched_modules]

    def _base_namespace(self) -> dict[str, Any]:
        """What every session starts with: SymPy's public names (as in `isympy`) and the usual modules."""
        namespace: dict[str, Any] = {}
        exec("from sympy import *\nimport sympy, sympy as sp, math, fractions, itertools", namespace)
        if "numpy" in sys.modules:
            namespace["np"] = namespace["numpy"] = sys.modules["numpy"]
        del namespace["__builtins__"]
        return namespace

    def _confine(self, config: dict[str, Any]) -> dict[str, Any]:
        """Kernel-enforced limits, set once before any user code runs; returns what could be applied."""
        _set_signal(signal.SIGALRM, self._on_alarm)
        _set_signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past RLIMIT_FSIZE fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (config["max_file_bytes"], config["max_file_bytes"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (config["max_open_files"], config["max_open_files"]))
        resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"], config["memory_bytes"]))
        if config.get("max_processes"):
            resource.setrlimit(resource.RLIMIT_NPROC, (config["max_processes"], config["max_processes"]))
        time.localtime()  # glibc reads /etc/localtime once; after Landlock it could not
        return {"landlock_abi": restrict_filesystem(read_only=config["read_roots"], read_write=[self.scratch_root])}

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self.in_user_code:
            raise CallTimeout()

    # --- sessions ---------------------------------------------------------------------------------------------
    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            directory = os.path.join(self.scratch_root, f"session-{digest}")
            os.makedirs(directory, exist_ok=True)
            namespace = dict(self.base_namespace)
            namespace["__name__"] = "__main__"
            namespace["__builtins__"] = {**builtins.__dict__, "__import__": make_guarded_import()}
            session = self.sessions[session_id] = Session(namespace, directory)
        return session

    def close_session(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            for cell in session.cells:
                linecache.cache.pop(cell, None)
            shutil.rmtree(session.directory, ignore_errors=True)

    # --- one call -----------------------------------------------------------------------------------------------
    def run(self, code: str, session_id: str, timeout_s: float, cpu_seconds: float) -> dict[str, Any]:
        session = self._session(session_id)
        cell = f"<cell {len(session.cells) + 1}>"
        session.cells.append(cell)
        linecache.cache[cell] = (len(code), None, code.splitlines(True), cell)
        session.may_mutate_shared_state |= bool(MAY_MUTATE_SHARED_STATE.search(code))
        os.chdir(session.directory)
        self.guard.scratch_dir = tempfile.tempdir = session.directory
        self._set_cpu_limit(cpu_seconds)
        out = CappedStream(self.max_output)
        saved_stdio = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        status, result, error = "ok", None, None
        try:
            _setitimer(signal.ITIMER_REAL, timeout_s)
            self.in_user_code = self.guard.armed = True
            value = run_cell(code, session.namespace, cell)
            if value is not None:
                result = truncate(repr(value), self.max_output)
        except CallTimeout:
            status, error = "timeout", (f"TimeoutError: the code ran longer than {timeout_s:g} s and was stopped; "
                                        "variables defined before that point are kept")
        except MemoryError as exc:
            status, error = "memory", format_error(exc, default_message=(
                f"the call ran out of memory (limit {self.config['memory_bytes'] >> 20} MiB); "
                "use smaller numbers or a symbolic method"))
        except SystemExit as exc:
            status, error = "error", (f"SystemExit: exit({exc.code!r}) only ends this call; the session goes on. "
                                      "Print the result instead of exiting.")
        except BaseException as exc:  # noqa: BLE001 - everything user code raises is reported, never propagated
            status, error = "error", format_error(exc)
        finally:
            self.in_user_code = self.guard.armed = False
            _setitimer(signal.ITIMER_REAL, 0)
            sys.stdout, sys.stderr = saved_stdio
        retire = self._restore_process_state(session)
        return {"status": status, "stdout": out.getvalue(), "result": result, "error": error, "retire": retire}

    def _set_cpu_limit(self, cpu_seconds: float) -> None:
        """RLIMIT_CPU counts the whole life of the process, so each call moves the soft limit to now + budget.

        The limit has one-second granularity, so the setrlimit call is skipped when it would not change it.
        """
        limit = int(time.process_time() + cpu_seconds) + 1
        if limit != self.cpu_limit:
            resource.setrlimit(resource.RLIMIT_CPU, (limit, resource.RLIM_INFINITY))
            self.cpu_limit = limit

    def _restore_process_state(self, session: Session) -> bool:
        """Undo what a call may have changed process-wide. Returns True if the worker must be replaced."""
        if sys.getrecursionlimit() != self.default_recursion_limit:
            sys.setrecursionlimit(self.default_recursion_limit)
        if session.may_mutate_shared_state:
            for module, snapshot in zip(self.watched_modules, self.module_snapshots):
                current = module.__dict__
                if current != snapshot:
                    for name, value in snapshot.items():
                        if current.get(name, snapshot) is not value:
                            current[name] = value
                    snapshot.update(current)  # new names (e.g. a submodule imported by the call) are legitimate
        deadline = time.monotonic() + THREAD_GRACE_S
        while _thread._count() and time.monotonic() < deadline:
            time.sleep(0.005)
        return _thread._count() > 0  # threads that outlive a call could write into, or crash, later calls

    def serve(self, req_fd: int, resp_fd: int) -> None:
        while True:
            try:
                request = read_frame(req_fd)
            except (FrameError, OSError):
                return  # the parent went away, or a call closed the pipe: the parent will start a new worker
            if request.get("op") == "close":
                self.close_session(request["session"])
                reply: dict[str, Any] = {"status": "ok"}
            else:
                reply = self.run(request["code"], request["session"], float(request["timeout_s"]),
                                 float(request["cpu_seconds"]))
            reply["id"] = request["id"]
            write_frame(resp_fd, reply)


def run_cell(code: str, namespace: dict[str, Any], cell: str) -> Any:
    """Execute `code` like a notebook cell: returns the value of a final bare expression, else None."""
    tree = ast.parse(code, filename=cell)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, cell, "exec"), namespace)
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), cell, "eval"), namespace)


def format_error(exc: BaseException, default_message: str = "") -> str:
    """'ErrorType: message' first, then the user's frames: everything before the first cell frame is plumbing."""
    lines = traceback.format_exception_only(type(exc), exc)
    if isinstance(exc, SyntaxError):  # its location lines come before the summary; put the summary first
        return "\n".join([lines[-1].strip(), "".join(lines[:-1]).rstrip()]).rstrip()
    summary = "".join(lines).strip()
    if default_message and not str(exc):
        summary = f"{type(exc).__name__}: {default_message}"
    frames = traceback.extract_tb(exc.__traceback__)
    first_user = next((i for i, f in enumerate(frames) if f.filename.startswith("<cell ")), len(frames))
    frames = [f for f in frames[first_user:] if not f.filename.startswith(SANDBOX_DIR)][-MAX_TRACEBACK_FRAMES:]
    if not frames:
        return summary
    shown = "".join(traceback.StackSummary.from_list(frames).format()).rstrip()
    return f"{summary}\nTraceback (most recent call last):\n{shown}"


def _import_available(names: tuple[str, ...]) -> list[ModuleType]:
    """Import what is installed (numpy is optional), so calls never pay import time."""
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def main() -> None:
    req_fd, resp_fd, config = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    del sys.argv[1:]  # user code need not learn the pipe descriptors or the configuration
    try:
        worker = Worker(config)
    except BaseException as exc:  # noqa: BLE001 - the parent must learn why start-up failed
        write_frame(resp_fd, {"ready": False, "error": "".join(traceback.format_exception(exc))})
        return
    write_frame(resp_fd, {"ready": True, "pid": os.getpid(), **worker.confinement})
    worker.serve(req_fd, resp_fd)
