"""What user code inside a worker may not do, enforced in Python with a message the model can act on.

This layer (a PEP 578 audit hook, a guarded `__import__`, refusing stubs on a few module functions)
is a guard rail that turns forbidden actions into a clear `SandboxRestriction` error. It is not the
security boundary on its own: a determined snippet can reach around Python-level checks. The hard
limits are the kernel's and sit under it (see `worker.confine_process`): a network namespace,
Landlock filesystem rules, rlimits, and a parent that kills the process on timeout.
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Callable
from typing import Any

PROCESS_HINT = "do the computation in Python/SymPy inside this call instead"


class SandboxRestriction(PermissionError):
    """User code tried something this sandbox forbids; the message says what and what to do instead."""


SandboxRestriction.__module__ = "builtins"  # tracebacks then say "SandboxRestriction: ...", not the module path


def _refuse(what: str, hint: str) -> SandboxRestriction:
    return SandboxRestriction(f"{what} is not allowed in this sandbox; {hint}")


# Top-level modules user code may not import, and why (shown to the model).
BLOCKED_IMPORTS: dict[str, str] = {
    "ctypes": "raw memory and C calls could crash or escape the sandbox",
    "_ctypes": "raw memory and C calls could crash or escape the sandbox",
    "subprocess": "no programs or shells can be started",
    "_posixsubprocess": "no programs or shells can be started",
    "multiprocessing": "no extra processes can be started",
    "_multiprocessing": "no extra processes can be started",
    "pty": "no programs or shells can be started",
    "socket": "there is no network",
    "_socket": "there is no network",
    "ssl": "there is no network",
    "_ssl": "there is no network",
    "_signal": "signal handling belongs to the sandbox",
    "faulthandler": "process-level crash handlers belong to the sandbox",
    "posix": "use the os module",
    "tool_sandbox": "the sandbox's own internals are off limits (tool_sandbox.sympy_toolkit is allowed)",
}
ALLOWED_INTERNAL = "tool_sandbox.sympy_toolkit"

_PROCESS_EVENTS = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
                   "subprocess.Popen", "os.startfile")
_SIGNAL_EVENTS = ("os.kill", "os.killpg", "signal.pthread_kill")
_NETWORK_EVENTS = ("urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
                   "imaplib.open", "poplib.connect", "nntplib.connect", "telnetlib.Telnet.open")
# Events whose path arguments are all written to (or removed): they must lie inside the session's scratch dir.
_WRITE_PATH_EVENTS = ("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.chmod", "os.chown", "os.chflags",
                      "os.lchflags", "os.link", "os.symlink", "os.truncate", "os.utime", "os.mkfifo", "os.mknod",
                      "os.setxattr", "os.removexattr", "shutil.rmtree", "shutil.move", "shutil.copymode",
                      "shutil.copystat", "shutil.chown")
_READ_PATH_EVENTS = ("os.listdir", "os.scandir", "os.chdir", "glob.glob")
_REFUSED_EVENT_FAMILIES = {
    "ctypes": ("ctypes (raw memory and C calls)", "use SymPy/Python arithmetic instead"),
    "socket": ("network access", "there is no network here; everything needed must come from the problem"),
    "winreg": ("registry access", "there is no registry here"),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Guard:
    """The audit-hook policy of one worker. `armed` only while user code runs, so the worker's own work is free."""

    def __init__(self, read_roots: list[str]) -> None:
        self.read_roots = tuple(os.path.realpath(root) for root in read_roots)
        self.scratch_dir = "/nonexistent"
        self.armed = False
        self._checking = False
        self._checks: dict[str, Callable[[tuple[Any, ...]], None]] = {"open": self._check_open, "import": self._check_import}
        for event in _PROCESS_EVENTS:
            self._checks[event] = self._refuse_process
        for event in _SIGNAL_EVENTS:
            self._checks[event] = self._refuse_signal
        for event in _NETWORK_EVENTS:
            self._checks[event] = self._refuse_network
        for event in _WRITE_PATH_EVENTS:
            self._checks[event] = self._check_write_paths
        for event in _READ_PATH_EVENTS:
            self._checks[event] = self._check_read_paths
        for event in ("resource.setrlimit", "resource.prlimit"):
            self._checks[event] = self._refuse_limits
        for event in ("sys.addaudithook", "gc.get_objects", "gc.get_referrers", "gc.get_referents"):
            self._checks[event] = self._refuse_introspection

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or self._checking:
            return
        check = self._checks.get(event)
        if check is not None:
            self._checking = True
            try:
                check(args)
            finally:
                self._checking = False
            return
        family = _REFUSED_EVENT_FAMILIES.get(event.partition(".")[0])
        if family is not None:
            raise _refuse(*family)

    # --- refusals -------------------------------------------------------------------------------------------
    def _refuse_process(self, args: tuple[Any, ...]) -> None:
        raise _refuse("running programs or new processes (os.system, subprocess, fork, exec)", PROCESS_HINT)

    def _refuse_signal(self, args: tuple[Any, ...]) -> None:
        raise _refuse("sending signals to processes", "the sandbox owns process control")

    def _refuse_network(self, args: tuple[Any, ...]) -> None:
        raise _refuse("network access", "there is no network here; everything needed must come from the problem")

    def _refuse_limits(self, args: tuple[Any, ...]) -> None:
        raise _refuse("changing resource limits", "the limits are set by the sandbox")

    def _refuse_introspection(self, args: tuple[Any, ...]) -> None:
        raise _refuse("process-wide introspection (audit hooks, gc object walks)", PROCESS_HINT)

    def _check_import(self, args: tuple[Any, ...]) -> None:
        check_import_name(str(args[0]))

    # --- filesystem -----------------------------------------------------------------------------------------
    def _check_open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = args
        if isinstance(path, int):  # an already-open descriptor: nothing new is reached
            return
        writes = bool(flags & _WRITE_FLAGS) or (isinstance(mode, str) and any(c in mode for c in "wax+"))
        (self._require_writable if writes else self._require_readable)(path)

    def _check_write_paths(self, args: tuple[Any, ...]) -> None:
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)):
                self._require_writable(arg)

    def _check_read_paths(self, args: tuple[Any, ...]) -> None:
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)):
                self._require_readable(arg)

    def _require_writable(self, path: Any) -> None:
        if not _is_under(_resolve(path), (self.scratch_dir,)):
            raise _refuse(f"writing or changing {os.fsdecode(path)!r}",
                          "files may only be written in the current (scratch) directory, e.g. open('out.txt', 'w')")

    def _require_readable(self, path: Any) -> None:
        if not _is_under(_resolve(path), (self.scratch_dir, *self.read_roots)):
            raise _refuse(f"reading {os.fsdecode(path)!r}",
                          "only files in the current (scratch) directory and Python's own libraries can be read")


def check_import_name(name: str) -> None:
    """Raise `SandboxRestriction` if user code may not import module `name`."""
    if name == ALLOWED_INTERNAL or name.startswith(ALLOWED_INTERNAL + "."):
        return
    top = name.partition(".")[0]
    if top in BLOCKED_IMPORTS:
        raise _refuse(f"importing {name!r}", BLOCKED_IMPORTS[top])


def make_guarded_import() -> Callable[..., Any]:
    """An `__import__` for user namespaces that refuses blocked modules even when they are already loaded.

    The audit hook's "import" event only fires when a module is loaded for the first time, and numpy
    and SymPy load `ctypes` and `subprocess` themselves, so the name is checked here as well.
    """
    real_import = builtins.__import__

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0:
            check_import_name(name)
        return real_import(name, globals, locals, fromlist, level)

    return guarded_import


def disable_process_functions() -> None:
    """Replace module functions that would let user code change process-wide state the worker relies on.

    The worker keeps its own references (taken before this runs) to the signal functions it needs.
    """
    import signal

    import _posixsubprocess

    def refuse_signals(*args: Any, **kwargs: Any) -> None:
        raise _refuse("changing signal handlers or timers", "the sandbox owns signals and timeouts")

    for name in ("signal", "alarm", "setitimer", "pthread_sigmask", "siginterrupt", "set_wakeup_fd"):
        setattr(signal, name, refuse_signals)

    def refuse_processes(*args: Any, **kwargs: Any) -> None:
        raise _refuse("running programs or new processes", PROCESS_HINT)

    _posixsubprocess.fork_exec = refuse_processes  # type: ignore[attr-defined]


def _resolve(path: Any) -> str:
    return os.path.realpath(os.fsdecode(path))


def _is_under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)
