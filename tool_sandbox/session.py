"""The session process: runs the calls of one session (one trace), notebook-style, then dies with it.

Forked from the zygote (zygote.py) with SymPy already imported, confined by the kernel before it reads
its first request (isolation.py), it keeps one namespace dict for all the calls of its session. Nothing
here is a security boundary: user code can reach every object of this process, and that is fine, since
the process holds nothing but its own session and the parent trusts none of its replies.
"""

from __future__ import annotations

import _thread
import ast
import builtins
import io
import linecache
import os
import resource
import signal
import sys
import time
import traceback
from types import CodeType
from typing import Any

from tool_sandbox.interpreter_state import InterpreterGuard, InterpreterSnapshot, hide_sandbox_modules
from tool_sandbox.protocol import TRUNCATION_MARKER, FrameError, read_frame, truncate, write_frame

SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
MAX_TRACEBACK_FRAMES = 5
THREAD_GRACE_S = 0.1


class CallTimeout(BaseException):
    """Raised into user code by SIGALRM/SIGXCPU. A BaseException so `except Exception:` cannot swallow it."""

    def __init__(self, cpu: bool) -> None:
        super().__init__("cpu" if cpu else "wall")
        self.cpu = cpu


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


class SessionProcess:
    """The state of one session: its namespace, its cells (for tracebacks), the limits of each call."""

    def __init__(self, namespace: dict[str, Any], max_output_chars: int, memory_bytes: int,
                 interpreter: InterpreterSnapshot) -> None:
        self.namespace = namespace
        self.max_output = max_output_chars
        self.memory_bytes = memory_bytes
        self.cells = 0
        self.pid = os.getpid()
        self.in_user_code = False
        self.cpu_limit = -1
        self.default_recursion_limit = sys.getrecursionlimit()
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGXCPU, self._on_alarm)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past RLIMIT_FSIZE fails with EFBIG, no kill
        self.guard = InterpreterGuard(interpreter)  # after the handlers above: they are the ones to keep
        hide_sandbox_modules(interpreter)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self.in_user_code:
            raise CallTimeout(cpu=signum == signal.SIGXCPU)

    def run(self, code: str, timeout_s: float, cpu_seconds: float) -> dict[str, Any]:
        self.cells += 1
        cell = f"<cell {self.cells}>"
        linecache.cache[cell] = (len(code), None, code.splitlines(True), cell)
        self._set_cpu_limit(cpu_seconds)
        out = CappedStream(self.max_output)
        saved_stdio = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        status, result, error, value = "ok", None, None, None
        try:
            body, last = compile_cell(code, cell)
            self.namespace["__builtins__"] = builtins.__dict__  # a call's own `__builtins__ = {...}` ends with it
            self.guard.before(body, last)
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            self.in_user_code = True
            exec(body, self.namespace)
            value = None if last is None else eval(last, self.namespace)
            if value is not None:  # an exact str: a subclass's __len__ would run in the reply, after the guard
                result = truncate(str.__str__(repr(value)), self.max_output)
        except CallTimeout as exc:
            limit = f"its CPU-time limit ({cpu_seconds:g} s)" if exc.cpu else f"{timeout_s:g} s"
            status, error = "timeout", (f"TimeoutError: the code ran longer than {limit} and was stopped; "
                                        "variables defined before that point are kept")
        except MemoryError as exc:
            status, error = "memory", format_error(exc, default_message=(
                f"the call ran out of memory (limit {self.memory_bytes >> 20} MiB); "
                "use smaller numbers or a symbolic method"))
        except SystemExit as exc:
            status, error = "error", (f"SystemExit: exit({exc.code!r}) only ends this call; the session goes on. "
                                      "Print the result instead of exiting.")
        except BaseException as exc:  # noqa: BLE001 - everything user code raises is reported, never propagated
            status, error = "error", format_error(exc)
        finally:
            self.in_user_code = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            value = None  # released before the guard looks: a `__del__` of the result's patches where it is seen
            restored = self.guard.after()  # before our own sys.stdout swap below, which is not the call's
            self.guard.kept += [stream for stream in (sys.stdout, sys.stderr) if stream is not out]  # its __del__
            sys.stdout, sys.stderr = saved_stdio
        if os.getpid() != self.pid:
            os._exit(0)  # a process the call forked returned from it: only the session process replies
        if sys.getrecursionlimit() != self.default_recursion_limit:
            sys.setrecursionlimit(self.default_recursion_limit)
        return {"status": status, "stdout": out.getvalue(), "result": result, "error": error,
                "retire": self._left_something_running(), "restored": restored}

    def _set_cpu_limit(self, cpu_seconds: float) -> None:
        """RLIMIT_CPU counts the whole life of the process, so each call moves the soft limit to now + budget.

        It has one-second granularity, so the setrlimit call is skipped when it would not change it.
        """
        limit = int(time.process_time() + cpu_seconds) + 1
        if limit != self.cpu_limit:
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (limit, resource.RLIM_INFINITY))
            except (ValueError, OSError):
                pass  # a call lowered the hard limit: the wall-clock kill still applies
            self.cpu_limit = limit

    @staticmethod
    def _left_something_running() -> bool:
        """Threads or child processes still alive after the call could write into, or crash, later calls.

        This process is PID 1 of the session's PID namespace, so every process left in it is a
        descendant it can wait for; zombies are reaped here.
        """
        deadline = time.monotonic() + THREAD_GRACE_S
        while True:
            children = _reap_children()
            if not (_thread._count() or children) or time.monotonic() >= deadline:
                return bool(_thread._count() or children)
            time.sleep(0.005)


def _reap_children() -> bool:
    """Reap exited children; True if some child is still running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def serve(session: SessionProcess, req_fd: int, resp_fd: int, max_reply_chars: int) -> None:
    """Answer run requests until the parent closes the pipe (or kills this process)."""
    while True:
        try:
            request = read_frame(req_fd)
        except (FrameError, OSError):
            os._exit(0)  # the parent closed the session
        reply = session.run(str(request["code"]), float(request["timeout_s"]), float(request["cpu_seconds"]))
        reply["id"] = request["id"]
        for key in ("stdout", "result", "error"):  # the parent refuses oversized replies: stay under its cap
            if isinstance(reply[key], str) and len(reply[key]) > max_reply_chars:
                reply[key] = truncate(reply[key], max_reply_chars)
        try:
            write_frame(resp_fd, reply)
        except (OSError, UnicodeEncodeError, ValueError):
            os._exit(3)  # a call closed or replaced the reply pipe: the parent sees the session end


def compile_cell(code: str, cell: str) -> tuple[CodeType, CodeType | None]:
    """A notebook cell's code: its statements, and apart its final bare expression (whose value is the result)."""
    tree = ast.parse(code, filename=cell)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    return compile(tree, cell, "exec"), None if last is None else compile(ast.Expression(last.value), cell, "eval")


def format_error(exc: BaseException, default_message: str = "") -> str:
    """'ErrorType: message' first, then the user's frames: everything before the first cell frame is plumbing."""
    for filename in [name for name in linecache.cache if not name.startswith("<cell ")]:
        del linecache.cache[filename]  # a call can plant lines for a library file; they are read again from it
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
