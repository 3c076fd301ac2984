"""The parent side: one confined process per session, forked from a warm zygote, killed when the session ends.

A session's variables live in its own process, so sessions share nothing: no patch, thread, fd or
file of one can reach another. When a session's process dies (hard timeout, crash, os._exit) or is
retired (it left threads or processes running), the call that did it says so, and the session's next
call starts a fresh process. Nothing from a session process is trusted: replies are read with a size
cap and validated; anything malformed is that call's `error`, never an exception here.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tool_sandbox.isolation import FULL
from tool_sandbox.launcher import on_launcher_thread
from tool_sandbox.protocol import FrameError, FrameTimeout, FrameTooLarge, read_frame, write_frame
from tool_sandbox.records import ExecResult, ExecStatus, SandboxLimits

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP = (f"import sys; sys.path.insert(0, {PACKAGE_PARENT!r}); "
             "from tool_sandbox.zygote import main; main()")
# Past the soft timeout (SIGALRM inside the session) the parent waits this much longer before killing.
HARD_KILL_GRACE_S = 1.0
SESSION_START_TIMEOUT_S = 10.0
MAX_STALE_REPLIES = 8
ZYGOTE_EXIT_WAIT_S = 2.0
RESET_NOTE = ("the session's process was stopped, so its variables, imports and files from earlier calls "
              "are gone: define them again")
EVICTED_NOTE = ("note: this session was idle while many others ran, so its process was closed: its variables, "
                "imports and files from earlier calls are gone; define them again")
RESTORED_NOTE = ("this call changed {names}, which belong to the interpreter, not to the session; they were put back "
                 "after it (variables are kept)")
RETIRED_NOTE = ("this call left threads or processes running, so the session's process was stopped after it: "
                "variables from this and earlier calls are gone")
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}


class SandboxError(RuntimeError):
    """The sandbox itself could not work (the zygote failed to start, isolation is missing but required)."""


class SessionReply(BaseModel):
    """A session process's answer to one call: the only shape the parent accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str
    status: ExecStatus
    stdout: str
    result: str | None
    error: str | None
    retire: bool
    # What the session process put back after the call (interpreter_state.py); optional: none without it
    restored: Annotated[list[Annotated[str, StringConstraints(max_length=300)]], Field(max_length=16)] = []


class SessionExit(BaseModel):
    """Written by the session leader once the session process has ended: its wait status."""

    model_config = ConfigDict(extra="forbid", strict=True)
    exited: int


class SessionStarted(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    started: bool
    pid: int | None = None
    leader_pid: int | None = None
    scratch: str | None = None
    isolation: str | None = None
    layers: dict[str, bool] = {}
    error: str | None = None


def zygote_environment() -> dict[str, str]:
    """A minimal environment: nothing of the parent's (API keys, tokens) reaches the zygote or sessions."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


class Zygote:
    """The parent's handle on the zygote process: start it, ask it for sessions. Thread-safe.

    A zygote that died (or failed to start, which the call that saw it reported) is started afresh by
    the next call that needs it; after `close` none is started again.
    """

    def __init__(self, limits: SandboxLimits) -> None:
        # One lock for start, start-up message, spawn and restart: two threads that both saw the socket
        # readable would otherwise both recv, and the second would block for good on a message the first took.
        self._lock = threading.RLock()
        self.info: dict[str, Any] = {}
        self.config = {"scratch_bytes": limits.scratch_bytes, "max_output_chars": limits.max_output_chars,
                       "memory_bytes": limits.memory_bytes, "max_file_bytes": limits.max_file_bytes,
                       "max_open_files": limits.max_open_files, "max_processes": limits.max_processes,
                       "max_reply_chars": max(1024, limits.max_reply_bytes // 16),
                       "spare_sessions": limits.spare_sessions, "prefault_spares": limits.prefault_spares}
        self.closed = False
        self._start()

    def _start(self) -> None:
        self._control, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = tempfile.TemporaryFile()
        try:
            self.process = on_launcher_thread(lambda: subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", BOOTSTRAP, str(child.fileno()), str(os.getpid()),
                 json.dumps(self.config)],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                cwd="/", env=zygote_environment(), start_new_session=True))
        finally:
            child.close()
        self.running, self.ready = True, False

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        with self._lock:
            if self.closed:
                raise SandboxError("this Sandbox is closed; create a new one or use get_default_sandbox()")
            if self.ready:
                return self.info
            if not self.running:
                self._start()
            ready, _, _ = select.select([self._control], [], [], timeout_s)
            message = self._control.recv(1 << 16) if ready else b""
            hello = json.loads(message) if message else {"ready": False, "error": self._failure(timeout_s, bool(ready))}
            if not hello.get("ready"):
                self._stop()
                raise SandboxError(f"the sandbox's zygote failed to start:\n{hello.get('error')}")
            self.info, self.ready = hello, True
            return hello

    def _failure(self, timeout_s: float, closed: bool) -> str:
        if not closed:
            return (f"it did not start within {timeout_s:g} s; raise SandboxLimits.startup_timeout_s "
                    "on a loaded machine")
        self._log.seek(0)
        return f"it exited ({self.process.wait()}): " + self._log.read()[-2000:].decode(errors="replace")

    def spawn(self, timeout_s: float) -> tuple[int, int, int, int | None]:
        """A new session: (request pipe, reply pipe, pidfd to kill it, its pid). Restarts a dead zygote once."""
        with self._lock:
            for attempt in (1, 2):
                self.wait_ready(timeout_s)
                try:
                    self._control.send(b'{"op": "spawn"}')
                    message, fds, _, _ = socket.recv_fds(self._control, 1 << 16, 3)
                except OSError:
                    message, fds = b"", []
                if len(fds) == 3:
                    pid = json.loads(message).get("pid")
                    return fds[0], fds[1], fds[2], pid if isinstance(pid, int) else None
                for fd in fds:
                    os.close(fd)
                if attempt == 1:  # it died (or was killed): the next wait_ready starts another
                    self._stop()
            raise SandboxError("the sandbox's zygote could not start a session twice in a row")

    def close(self) -> None:
        """Stop the zygote for good: later calls raise SandboxError."""
        self.closed = True
        self._stop()

    def _stop(self) -> None:
        """Close the control socket (the zygote then removes its staging dir and exits), kill it if it lingers."""
        self.running, self.ready = False, False
        self._control.close()
        try:
            self.process.wait(timeout=ZYGOTE_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.info.get("staging"):
            shutil.rmtree(self.info["staging"], ignore_errors=True)
        self._log.close()


class SessionHandle:
    """One session's process and its pipes. Its `lock` serialises the calls of the session."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.lock = threading.Lock()
        self.started = False
        self.dead = False
        self.req_fd = self.resp_fd = self.pidfd = -1
        self.pid: int | None = None  # of the session process, for monitoring only (never signalled by pid)
        self.leader_pid: int | None = None
        self.isolation: str | None = None
        self.host_scratch: str | None = None

    def kill(self) -> None:
        """SIGKILL the session process (or its leader, whose death kills it through PR_SET_PDEATHSIG): as
        PID 1 of its namespace its end kills everything in it; the kernel finishes that, unwaited."""
        if self.dead:
            return
        self.dead = True
        if self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self.req_fd, self.resp_fd, self.pidfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self.host_scratch:
            shutil.rmtree(self.host_scratch, ignore_errors=True)


def describe_exit(status: int) -> tuple[ExecStatus, str]:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        name = signal.Signals(-code).name
        if -code == signal.SIGXCPU:
            return "timeout", "it used up its CPU-time limit (SIGXCPU) and was killed"
        return "killed", f"it was ended by {name}" + (" (a crash)" if -code in _CRASH_SIGNALS else "")
    return "killed", f"the process exited with status {code}"


class Sandbox:
    """Run model-written Python in one confined process per session. Thread-safe; also a context manager.

    `pool_size` is accepted for compatibility and ignored: sessions run in parallel, one process each.
    `require_isolation` (default: `limits.require_isolation`) makes the first call raise SandboxError
    when the kernel layers are not all available here; `python -m tool_sandbox doctor` says why.
    """

    def __init__(self, pool_size: int | None = None, limits: SandboxLimits | None = None,
                 require_isolation: bool | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.require_isolation = self.limits.require_isolation if require_isolation is None else require_isolation
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, SessionHandle] = OrderedDict()
        self._evicted: set[str] = set()
        self._closed = False
        self._zygote = Zygote(self.limits)
        self._checked = False
        # Sessions and the zygote die with their pipes anyway; this also kills them if close() is never called.
        self._finalizer = weakref.finalize(self, _stop, self._zygote, self._sessions)

    def run(self, code: str, session_id: str, timeout: float | None = None) -> ExecResult:
        """Run `code` in session `session_id` (created on first use); never raises for anything the code does."""
        timeout_s = timeout or self.limits.timeout_s
        for attempt in (1, 2):
            handle, notice = self._handle(session_id)
            with handle.lock:
                if handle.dead:
                    continue  # closed by another thread between lookup and lock: take the new one
                if not handle.started:
                    self._start(handle)
                result = self._call(handle, code, timeout_s, retry_if_gone=attempt == 1)
            if result is not None:
                if notice:
                    result.notice = notice if result.notice is None else f"{notice}; {result.notice}"
                return result
        raise SandboxError(f"session {session_id!r}: its process died twice before the call could be sent")

    def close_session(self, session_id: str) -> None:
        """End a session: its process and everything it started are killed, its scratch is gone."""
        with self._lock:
            handle = self._sessions.pop(session_id, None)
            self._evicted.discard(session_id)
        if handle is not None:
            with handle.lock:
                handle.kill()

    def confinement(self) -> dict[str, Any]:
        """Which isolation layers are in force and why any is missing (starts the zygote if needed)."""
        info = dict(self._zygote.wait_ready(self.limits.startup_timeout_s))
        info.pop("ready", None)
        info["required"] = self.require_isolation
        info["scratch_bytes"] = self.limits.scratch_bytes
        return info

    def worker_pids(self) -> list[int]:
        """The zygote's pid and those of live sessions (leaders and session processes): for monitoring."""
        with self._lock:
            handles = list(self._sessions.values())
        pids = [self._zygote.process.pid]
        for handle in handles:
            pids.extend(p for p in (handle.leader_pid, handle.pid) if p and not handle.dead)
        return pids

    def close(self) -> None:
        """Kill every session and the zygote. Later `run` calls raise SandboxError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------------------
    def _handle(self, session_id: str) -> tuple[SessionHandle, str | None]:
        evicted: list[SessionHandle] = []
        with self._lock:
            if self._closed:
                raise SandboxError("this Sandbox is closed; create a new one or use get_default_sandbox()")
            handle = self._sessions.get(session_id)
            notice = None
            if handle is None or handle.dead:
                handle = self._sessions[session_id] = SessionHandle(session_id)
                if session_id in self._evicted:
                    self._evicted.discard(session_id)
                    notice = EVICTED_NOTE
                for other_id, other in list(self._sessions.items()):
                    if len(self._sessions) <= self.limits.max_live_sessions:
                        break
                    if other is not handle and not other.lock.locked():
                        del self._sessions[other_id]
                        self._evicted.add(other_id)
                        evicted.append(other)
            self._sessions.move_to_end(session_id)
        for other in evicted:
            with other.lock:
                other.kill()
        return handle, notice

    def _check_isolation(self) -> None:
        if self._checked:
            return
        info = self._zygote.wait_ready(self.limits.startup_timeout_s)
        if self.require_isolation and info.get("isolation") != FULL:
            raise SandboxError(
                f"the sandbox requires kernel isolation ({FULL}) but this machine gives {info.get('isolation')!r}: "
                f"namespaces: {info.get('namespaces_why')}; seccomp: {info.get('seccomp_why')}. "
                "Run `python -m tool_sandbox doctor` for details, or set TOOL_SANDBOX_REQUIRE_ISOLATION=0 "
                "(demo only) to run without it.")
        self._checked = True

    def _start(self, handle: SessionHandle) -> None:
        """Take a session process from the zygote (the caller holds the handle's lock); a spare that died
        while it waited is replaced once."""
        self._check_isolation()
        for attempt in (1, 2):
            handle.req_fd, handle.resp_fd, handle.pidfd, pid = self._zygote.spawn(self.limits.startup_timeout_s)
            try:
                started = SessionStarted.model_validate(
                    read_frame(handle.resp_fd, time.monotonic() + SESSION_START_TIMEOUT_S, max_bytes=1 << 16))
                problem = None if started.started else f"it failed to start: {started.error}"
            except (FrameError, ValidationError) as exc:
                problem, started = f"it did not start ({exc})", None
            if problem is None and started is not None:
                # With a leader, the zygote's pid is the leader's and the leader names the session process.
                handle.started, handle.isolation, handle.host_scratch = True, started.isolation, started.scratch
                handle.pid, handle.leader_pid = (started.pid, pid) if started.leader_pid else (pid, None)
                return
            handle.kill()
            handle.dead = False
        raise SandboxError(f"session {handle.session_id!r}: its process {problem}")

    def _call(self, handle: SessionHandle, code: str, timeout_s: float, retry_if_gone: bool) -> ExecResult | None:
        """One request and its reply (the caller holds the session's lock). None: the process was already
        gone before the request could be sent, so the call never ran and may be retried on a new one."""
        request_id = secrets.token_hex(8)
        message = {"id": request_id, "code": code, "timeout_s": timeout_s,
                   "cpu_seconds": self.limits.cpu_seconds or timeout_s}
        started = time.perf_counter()
        try:
            write_frame(handle.req_fd, message)
        except OSError:
            self._end(handle)
            if retry_if_gone:
                return None
            return self._failed(handle, "killed", started, "the session process was gone before the call")
        try:
            frame = self._read_reply(handle, request_id, time.monotonic() + timeout_s + HARD_KILL_GRACE_S)
        except FrameTimeout:
            self._end(handle)
            return self._failed(handle, "timeout", started, f"TimeoutError: the code ran longer than {timeout_s:g} s "
                                f"and did not stop, so its process was killed; {RESET_NOTE}")
        except FrameTooLarge as exc:
            self._end(handle)
            return self._failed(handle, "error", started, f"SandboxReplyError: {exc}; {RESET_NOTE}")
        except FrameError as exc:
            self._end(handle)
            return self._failed(handle, "killed", started, f"WorkerDied: the sandbox process stopped while running "
                                f"this code ({exc}); {RESET_NOTE}")
        duration_s = time.perf_counter() - started
        if "exited" in frame:
            try:
                status, why = describe_exit(SessionExit.model_validate(frame).exited)
            except (ValidationError, ValueError):
                status, why = "error", "it sent a malformed exit report"
            self._end(handle)
            return self._failed(handle, status, started, f"WorkerDied: the sandbox process stopped while running "
                                f"this code: {why}; {RESET_NOTE}")
        try:
            reply = SessionReply.model_validate(frame)
        except ValidationError as exc:
            self._end(handle)
            why = str(exc).splitlines()[0]
            return self._failed(handle, "error", started, f"SandboxReplyError: the session process sent a reply that "
                                f"is not a valid result ({why}), so it was stopped; {RESET_NOTE}")
        notices = [RESTORED_NOTE.format(names=", ".join(reply.restored))] if reply.restored else []
        if reply.retire:
            self._end(handle)
            notices.append(RETIRED_NOTE)
        notice = "; ".join(notices) or None
        return ExecResult(stdout=reply.stdout, result=reply.result, error=reply.error, status=reply.status,
                          duration_s=duration_s, notice=notice, isolation=handle.isolation)

    def _read_reply(self, handle: SessionHandle, request_id: str, deadline: float) -> dict[str, Any]:
        """The next frame that is not a stale reply. A call can write frames of its own (forged ones); a
        well-formed reply to an earlier request is then left in the pipe and is skipped here."""
        for _ in range(MAX_STALE_REPLIES):
            frame = read_frame(handle.resp_fd, deadline, max_bytes=self.limits.max_reply_bytes)
            if not (isinstance(frame.get("id"), str) and frame["id"] != request_id and "status" in frame):
                return frame
        raise FrameError(f"more than {MAX_STALE_REPLIES} replies to earlier calls were waiting")

    def _failed(self, handle: SessionHandle, status: ExecStatus, started: float, error: str) -> ExecResult:
        return ExecResult(status=status, error=error, duration_s=time.perf_counter() - started,
                          isolation=handle.isolation)

    def _end(self, handle: SessionHandle) -> None:
        """Kill a session's process after a failed call; its next call starts a fresh one."""
        handle.kill()
        with self._lock:
            if self._sessions.get(handle.session_id) is handle:
                del self._sessions[handle.session_id]


def _stop(zygote: Zygote, sessions: OrderedDict[str, SessionHandle]) -> None:
    for handle in list(sessions.values()):
        with handle.lock:
            handle.kill()
    sessions.clear()
    zygote.close()


_default: Sandbox | None = None
_default_lock = threading.Lock()


def get_default_sandbox() -> Sandbox:
    """The process-wide Sandbox (default limits), created on first use, closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Sandbox()
            atexit.register(_default.close)
        return _default
