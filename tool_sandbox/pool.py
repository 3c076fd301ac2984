"""The parent side: a warm pool of worker processes, sessions pinned to workers, timeouts that kill.

A session's variables live in one worker's memory, so every call of a session goes to the same
worker; new sessions go to the least busy worker. When a worker dies (timeout past the soft limit,
crash, segfault, os._exit, OOM) or is retired (it left threads running), it is killed and a fresh
one is started at once; every session that lived in it is told, on its next call, that its state
was reset.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Any

from tool_sandbox.protocol import FrameError, FrameTimeout, read_frame, write_frame
from tool_sandbox.records import ExecResult, SandboxLimits

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(PACKAGE_PARENT, "tool_sandbox")
BOOTSTRAP = (f"import sys; sys.path.insert(0, {PACKAGE_PARENT!r}); "
             "from tool_sandbox.worker import main; main()")
# Past the soft timeout (SIGALRM inside the worker) the parent waits this much longer before killing.
HARD_KILL_GRACE_S = 1.0
EXIT_WAIT_S = 1.0
RESET_NOTE = ("the sandbox process was restarted, so this session's variables, imports and files from "
              "earlier calls are gone: define them again")


class WorkerGone(FrameError):
    """The request could not even be sent: the worker died between calls, so the call never started."""


class SandboxError(RuntimeError):
    """The sandbox itself could not work (a worker failed to start); not an error of the user's code."""


@cache
def network_isolation_prefix() -> tuple[str, ...]:
    """The `unshare` command that puts a worker in an empty network namespace, or () where that fails here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    candidates = [(unshare, "-n")] if os.geteuid() == 0 else []
    candidates.append((unshare, "-U", "-n", "-r"))  # unprivileged user namespace, for non-root users
    for prefix in candidates:
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return ()


def worker_environment(scratch_dir: str) -> dict[str, str]:
    """A minimal environment: nothing of the parent's (API keys, tokens) reaches user code."""
    return {"PATH": "/usr/bin:/bin", "HOME": scratch_dir, "TMPDIR": scratch_dir, "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def read_roots() -> list[str]:
    """What user code may read besides its scratch dir: the Python installation and libraries, nothing else."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, PACKAGE_DIR, "/usr/lib",
             "/usr/lib64", "/lib", "/lib64", "/usr/share/zoneinfo"}
    roots.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    return sorted(os.path.realpath(r) for r in roots if os.path.isdir(r))


class WorkerHandle:
    """One worker process and its two pipes. Not thread-safe: its `Slot` serialises access."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.scratch_dir = tempfile.mkdtemp(prefix="tool_sandbox-")
        self.ready = False
        self.confinement: dict[str, Any] = {}
        config = {"scratch_dir": self.scratch_dir, "memory_bytes": limits.memory_bytes,
                  "max_output_chars": limits.max_output_chars, "max_file_bytes": limits.max_file_bytes,
                  "max_open_files": limits.max_open_files, "read_roots": read_roots(),
                  "max_processes": limits.max_processes if os.geteuid() != 0 else None}
        req_read, self.req_write = os.pipe()
        self.resp_read, resp_write = os.pipe()
        # C-level writes to fd 2 (fatal errors, warnings from extensions) land here, for exit_description.
        self.log_path = os.path.join(self.scratch_dir, "worker.log")
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                [*network_isolation_prefix(), sys.executable, "-I", "-B", "-c", BOOTSTRAP,
                 str(req_read), str(resp_write), json.dumps(config)],
                pass_fds=(req_read, resp_write), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log, cwd=self.scratch_dir, env=worker_environment(self.scratch_dir),
                start_new_session=True)
        except OSError:
            self._close_fds()
            raise
        finally:
            log.close()
            os.close(req_read)
            os.close(resp_write)

    def wait_ready(self, timeout_s: float) -> None:
        if self.ready:
            return
        try:
            hello = read_frame(self.resp_read, time.monotonic() + timeout_s)
        except FrameError as exc:
            self.kill()
            raise SandboxError(f"a sandbox worker did not start within {timeout_s:g} s ({exc}); "
                               "raise SandboxLimits.startup_timeout_s on a loaded machine") from exc
        if not hello.get("ready"):
            self.kill()
            raise SandboxError(f"a sandbox worker failed to start:\n{hello.get('error')}")
        self.ready = True
        self.confinement = {key: value for key, value in hello.items() if key not in ("ready", "pid")}

    def has_exited(self) -> bool:
        return self.process.poll() is not None

    def request(self, message: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Send one request and return the reply that carries the same random id.

        Raises FrameTimeout past `deadline`, FrameError if the worker died or replied with anything else
        (a snippet that writes to the reply pipe itself cannot forge a reply without the id).
        """
        message["id"] = secrets.token_hex(8)
        try:
            write_frame(self.req_write, message)
        except OSError as exc:
            raise WorkerGone(f"worker pipe closed: {exc}") from exc
        reply = read_frame(self.resp_read, deadline)
        if reply.get("id") != message["id"]:
            raise FrameError("reply did not match the request")
        return reply

    def exit_description(self) -> str:
        """Why the process ended (after its pipe broke), in words for the model; kills it if it lives on."""
        try:
            code = self.process.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return "it wrote something that is not a reply onto the sandbox's own pipe"
        if code < 0:
            name = signal.Signals(-code).name
            if -code == signal.SIGXCPU:
                return "it used up its CPU-time limit (SIGXCPU) and was killed"
            return f"it was ended by {name}" + (" (a crash)" if -code in _CRASH_SIGNALS else "")
        last_words = self._log_tail()
        return f"the process exited with status {code}" + (f" after printing: {last_words}" if last_words else "")

    def _log_tail(self, max_chars: int = 300) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, os.fstat(log.fileno()).st_size - max_chars))
                return log.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def kill(self) -> None:
        if self.process.returncode is None:  # once reaped, the pid could belong to someone else
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self._close_fds()
        shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def _close_fds(self) -> None:
        for fd in (self.req_write, self.resp_read):
            try:
                os.close(fd)
            except OSError:
                pass


_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}


@dataclass
class Slot:
    """A place in the pool. Its worker may be replaced; `generation` counts replacements."""

    lock: threading.Lock
    worker: WorkerHandle
    generation: int = 0
    queued: int = 0
    sessions: int = 0


@dataclass
class SessionPin:
    slot: int
    generation: int


class Sandbox:
    """Run model-written Python in warm, confined worker processes. Thread-safe; also a context manager."""

    def __init__(self, pool_size: int | None = None, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        size = pool_size or len(os.sched_getaffinity(0))
        self.network_isolation = "netns" if network_isolation_prefix() else "audit-hook"
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, SessionPin] = OrderedDict()
        self._closed = False
        self._slots: list[Slot] = []
        # Workers die with their pipes: close them if the Sandbox is dropped without close().
        self._finalizer = weakref.finalize(self, _stop_workers, self._slots)
        for _ in range(size):
            self._slots.append(Slot(threading.Lock(), WorkerHandle(self.limits)))

    @property
    def pool_size(self) -> int:
        return len(self._slots)

    def run(self, code: str, session_id: str, timeout: float | None = None) -> ExecResult:
        """Run `code` in session `session_id` (created on first use); never raises for anything the code does."""
        timeout_s = timeout or self.limits.timeout_s
        message = {"op": "run", "session": session_id, "code": code, "timeout_s": timeout_s,
                   "cpu_seconds": self.limits.cpu_seconds or timeout_s}
        index = self._pin(session_id)
        slot = self._slots[index]
        try:
            with slot.lock:
                if slot.worker.has_exited():  # died while idle (e.g. a thread left by a call crashed it)
                    self._replace(index, None)
                slot.worker.wait_ready(self.limits.startup_timeout_s)
                started = time.perf_counter()
                try:
                    try:
                        reply = slot.worker.request(message, time.monotonic() + timeout_s + HARD_KILL_GRACE_S)
                    except WorkerGone:  # it died after its last reply; the call never ran, so run it on a new one
                        self._replace(index, None)
                        slot.worker.wait_ready(self.limits.startup_timeout_s)
                        started = time.perf_counter()
                        reply = slot.worker.request(message, time.monotonic() + timeout_s + HARD_KILL_GRACE_S)
                except FrameTimeout:
                    self._replace(index, session_id)
                    return ExecResult(status="timeout", duration_s=time.perf_counter() - started,
                                      error=f"TimeoutError: the code ran longer than {timeout_s:g} s and did not "
                                            f"stop, so its process was killed; {RESET_NOTE}")
                except FrameError:
                    why = slot.worker.exit_description()
                    self._replace(index, session_id)
                    return ExecResult(status="timeout" if "SIGXCPU" in why else "killed",
                                      duration_s=time.perf_counter() - started,
                                      error=f"WorkerDied: the sandbox process stopped while running this code: "
                                            f"{why}; {RESET_NOTE}")
                duration_s = time.perf_counter() - started
                notice = self._reset_notice(session_id, slot)
                if reply.get("retire"):
                    self._replace(index, session_id)
                    notice = ("this call left threads running, so its sandbox process was replaced: "
                              "variables from this and earlier calls are gone")
        finally:
            with self._lock:
                slot.queued -= 1
        return ExecResult(stdout=reply.get("stdout") or "", result=reply.get("result"), error=reply.get("error"),
                          status=reply.get("status", "error"), duration_s=duration_s, notice=notice)

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (they change when a worker is replaced): for monitoring."""
        return [slot.worker.process.pid for slot in self._slots]

    def confinement(self) -> dict[str, Any]:
        """Which isolation layers are in force (waits for a worker to start): for logs, tests and benchmarks."""
        slot = self._slots[0]
        with slot.lock:
            slot.worker.wait_ready(self.limits.startup_timeout_s)
            return {"network": self.network_isolation, "pool_size": self.pool_size, **slot.worker.confinement}

    def close_session(self, session_id: str) -> None:
        """Free a session's variables and scratch files. Unknown ids are ignored."""
        with self._lock:
            pin = self._sessions.pop(session_id, None)
            if pin is None:
                return
            slot = self._slots[pin.slot]
            slot.sessions -= 1
            if pin.generation != slot.generation:
                return  # its worker was replaced: nothing is left to free
        self._close_in_worker(slot, session_id)

    def close(self) -> None:
        """Stop every worker and delete their scratch dirs. Later `run` calls raise SandboxError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------------------------
    def _pin(self, session_id: str) -> int:
        """The slot that holds this session, choosing the least busy one for a new session; counts the call as queued."""
        evicted: list[tuple[Slot, str]] = []
        with self._lock:
            if self._closed:
                raise SandboxError("this Sandbox is closed; create a new one or use get_default_sandbox()")
            pin = self._sessions.get(session_id)
            if pin is None:
                index = min(range(len(self._slots)), key=lambda i: (self._slots[i].queued, self._slots[i].sessions))
                pin = self._sessions[session_id] = SessionPin(index, self._slots[index].generation)
                self._slots[index].sessions += 1
                evicted = self._evict_idle_sessions(index)
            self._sessions.move_to_end(session_id)
            self._slots[pin.slot].queued += 1
        for slot, old_session in evicted:
            self._close_in_worker(slot, old_session)
        return pin.slot

    def _reset_notice(self, session_id: str, slot: Slot) -> str | None:
        """Tell a session, once, that the worker holding its state was replaced since its last call."""
        with self._lock:
            pin = self._sessions.get(session_id)
            if pin is None or pin.generation == slot.generation:
                return None
            pin.generation = slot.generation
            return f"note: {RESET_NOTE}"

    def _evict_idle_sessions(self, index: int) -> list[tuple[Slot, str]]:
        """Forget the least recently used sessions of a slot above the per-worker cap (caller holds the lock)."""
        slot = self._slots[index]
        evicted = []
        for session_id, pin in list(self._sessions.items()):
            if slot.sessions <= self.limits.max_sessions_per_worker:
                break
            if pin.slot == index:
                del self._sessions[session_id]
                slot.sessions -= 1
                evicted.append((slot, session_id))
        return evicted

    def _close_in_worker(self, slot: Slot, session_id: str) -> None:
        with slot.lock:
            if not slot.worker.ready:
                return
            try:
                slot.worker.request({"op": "close", "session": session_id}, time.monotonic() + 10)
            except FrameError:
                self._replace(self._slots.index(slot), None)

    def _replace(self, index: int, survivor: str | None) -> None:
        """Kill the slot's worker and start a fresh one (the caller holds the slot lock).

        `survivor` is the session whose own call reported the reset, so it is not told a second time.
        """
        slot = self._slots[index]
        slot.worker.kill()
        slot.worker = WorkerHandle(self.limits)
        with self._lock:
            slot.generation += 1
            pin = self._sessions.get(survivor) if survivor is not None else None
            if pin is not None:
                pin.generation = slot.generation


def _stop_workers(slots: list[Slot]) -> None:
    for slot in slots:
        with slot.lock:
            slot.worker.kill()


_default: Sandbox | None = None
_default_lock = threading.Lock()


def get_default_sandbox() -> Sandbox:
    """The process-wide Sandbox (default limits, one worker per CPU), created on first use, closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Sandbox()
            atexit.register(_default.close)
        return _default
