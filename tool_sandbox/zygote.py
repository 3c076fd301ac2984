"""The zygote: a warm process with SymPy imported that forks one confined process per session.

Started by `sandbox.Zygote` as `python -I -B -c <bootstrap> CONTROL_FD PARENT_PID CONFIG_JSON`. It never
runs user code. It keeps a few sessions ready (forked, confined, waiting for their first call), and for
each "spawn" request on its control socket (a SOCK_SEQPACKET socketpair with the parent) hands one to
the parent, over SCM_RIGHTS: the session's request pipe, reply pipe and a pidfd to kill it by; then it
forks a replacement while the parent is busy. A session is:

    parent ── zygote ── session process: PID 1 of the session's PID namespace, locked down, runs the
                        calls (session.py); whatever it forks lives and dies in there

As real root the zygote forks it straight into a new PID namespace (unshare + setns back), reaps it
and writes how it ended ("exited") on its reply pipe. Where that setns is refused (not real root), a
session leader sits in between: it enters the namespaces, forks the session process, reports its
layers ("started") and its end; killing the leader kills the session process (PR_SET_PDEATHSIG).
The end of a PID namespace's init kills everything in it; the zygote and every session die with
their parent, even on SIGKILL.
"""

from __future__ import annotations

import builtins
import collections
import fcntl
import gc
import importlib
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any

from tool_sandbox import isolation, prefault
from tool_sandbox.interpreter_state import InterpreterSnapshot
from tool_sandbox.protocol import read_frame, write_frame
from tool_sandbox.session import SessionProcess, serve

PRELOADED_MODULES = ("sympy", "math", "fractions", "itertools", "numpy", "tool_sandbox.sympy_toolkit")
SCRATCH_PREFIX = "tool_sandbox-"
CONTROL_MESSAGE_BYTES = 1 << 16
STALE_UNNAMED_SCRATCH_S = 3600.0
# Run once in the zygote so that SymPy's lazily imported modules (solvers, polys, integrals, printers,
# matrices) are loaded before any fork: otherwise every session would pay for them on its first call. The
# trigonometric and hyperbolic solvesets build that module's lazy tables of inverses here too, and every `Q.<predicate>`
# imports its handler module: made in a session, either would be made under whatever that call had patched.
WARM_UP = """
x, y, k = symbols('x y k')
solve(x**2 - 4, x); solve([x + y - 10, x - y - 2], [x, y]); solveset(x**2 - 5*x + 6 < 0, x, S.Reals)
solveset(sin(x) - 1, x, S.Reals); solveset(sinh(x) - 1, x, S.Complexes)
[getattr(Q, name) for name in dir(Q) if not name.startswith('_')]
factor(x**3 - 6*x**2 + 11*x - 6); expand((x + 2)**3); simplify((x**2 - 1)/(x - 1)); nsimplify('0.5')
Rational(3, 4) + Rational(1, 4) * binomial(10, 3); diff(x**3, x, 2); integrate(x*exp(-x), (x, 0, oo))
limit(sin(x)/x, x, 0); series(exp(x), x, 0, 4); summation(k, (k, 1, 100)); Matrix([[1, 2], [3, 4]]).inv()
Matrix([[2, 0], [0, 3]]).eigenvals(); factorint(360); isprime(97); mod_inverse(3, 11); gcd(84, 126)
str(sqrt(8)); repr(pi.evalf(30)); latex(x**2); sympify('x**2 + 1'); parse_expr('2*x')
"""
# What a typical session's first calls run (model-written SymPy: symbols, solve, factor, expand, exact
# arithmetic, printing), through a session's own call path, with numbers the warm-up did not use so that
# SymPy computes. A probe fork runs them once; spare sessions copy the pages it wrote (prefault.py).
PROBE_CALLS = (
    "from sympy import symbols, solve\nx = symbols('x')\nprint(solve(x**2 - 5*x + 6, x))",
    "from sympy import symbols, factor, expand\nx = symbols('x')\nprint(factor(x**3 - 2*x**2 - 5*x + 6))\n"
    "expand((x + 3)**4)",
    "from sympy import Rational\nprint(Rational(3, 7) + Rational(5, 11) * 4)",
    "x, y = symbols('x y')\nsolve([x + y - 7, x - y - 1], [x, y])",
    "simplify((x**2 - 9)/(x - 3))",
)


def base_namespace() -> dict[str, Any]:
    """What every session starts with: SymPy's public names (as in `isympy`) and the usual modules."""
    namespace: dict[str, Any] = {}
    exec("from sympy import *\nimport sympy, sympy as sp, math, fractions, itertools", namespace)
    if "numpy" in sys.modules:
        namespace["np"] = namespace["numpy"] = sys.modules["numpy"]
    namespace["__builtins__"] = builtins
    namespace["__name__"] = "__main__"
    return namespace


def hold_alive_lock(path: str) -> int:
    """Lock `path` (a dir) for as long as this process lives; the fd returned must stay open.

    A pid in the dir's name cannot tell a live zygote from a dead one: a run in a PID namespace of its
    own (the CLI's) has pids that mean other processes outside it, so a pid check removed live dirs.
    A lock is released by the kernel when its holder dies, in whatever namespace.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def clean_stale_scratch(directory: str | None = None) -> list[str]:
    """Remove `tool_sandbox-*` dirs that no live zygote holds (a run killed with -9 leaves them).

    A zygote's `-root-` dir is live while it holds its lock (`hold_alive_lock`). Other dirs (a
    session's host scratch where namespaces are missing) hold no lock: they go once untouched for an hour.
    """
    directory = directory or tempfile.gettempdir()
    removed = []
    try:
        names = [n for n in os.listdir(directory) if n.startswith(SCRATCH_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if "-root-" not in name and time.time() - os.stat(path).st_mtime < STALE_UNNAMED_SCRATCH_S:
                continue
        except OSError:
            continue  # locked: its zygote lives
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def close_all_fds_except(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep) + [os.sysconf("SC_OPEN_MAX")]:
        if fd > low:
            os.closerange(low, fd)
        low = max(low, fd + 1)


class Zygote:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.uid = os.getuid()  # before prepare_root, which may make us root of a user namespace of our own
        self.spares: collections.deque[list[int]] = collections.deque()
        for name in PRELOADED_MODULES:  # numpy is optional
            try:
                importlib.import_module(name)
            except ImportError:
                continue
        self.namespace = base_namespace()
        exec(WARM_UP, dict(self.namespace))  # its cache entries stay: every session inherits the same ones
        time.localtime()  # glibc reads /etc/localtime once; sessions have no /etc
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # A session process whose leader was killed is re-parented here (not to the host's PID 1, which in a
        # container may never reap it) and reaped like the leaders; its CPU time then shows in our cutime.
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
        clean_stale_scratch()
        # Only a mount point, used inside each session's private mount namespace; empty on the host.
        self.staging = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-root-")
        self.alive_lock_fd = hold_alive_lock(self.staging)
        os.chmod(self.staging, 0o755)
        seccomp, seccomp_why = isolation.seccomp_available()
        self.seccomp_program = isolation.build_seccomp_filter() if seccomp else None
        # Sessions share our empty network and IPC namespaces only where seccomp refuses sockets and IPC.
        self.own_net_ipc = self.seccomp_program is None
        namespaces, namespaces_why = isolation.probe_namespaces(self.staging)
        if namespaces and not self.own_net_ipc:
            namespaces_why += "; net, ipc and uts made once and shared by the sessions (seccomp refuses all ways in)"
        self.probe = isolation.Probe(namespaces, namespaces_why, seccomp, seccomp_why)
        self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY)
        # Last: from here on this process sees only the sessions' read-only root (and the host's /proc
        # through this descriptor alone).
        self.proc = (isolation.prepare_root(self.staging) if namespaces
                     else os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        # As real root a session needs no leader: the zygote forks it straight into a new PID namespace,
        # reaps it and reports how it ended. Elsewhere a leader process does that (one more fork).
        self.direct = namespaces and isolation.probe_direct_fork(self.own_pid_namespace)
        self.live: dict[int, int] = {}  # session pid -> our copy of its reply pipe, for the "exited" report
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_write)  # a session's death wakes the loop at once, to report it
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        os.environ.clear()  # read by the imports above only; sessions then start with an empty one for free
        self.interpreter = InterpreterSnapshot()  # what each session's calls are compared with (and put back to)
        gc.collect()
        gc.freeze()  # the collector then never touches the inherited objects, so forks share their pages
        # After everything else, so that the pages it names are where every later fork has them.
        self.hot_pages = (prefault.learn_hot_pages(self.proc, self._probe_session)
                          if config.get("prefault_spares", True) else [])
        self.cpus = len(os.sched_getaffinity(0))

    def _a_core_is_idle(self) -> bool:
        """Whether warming a spare now costs nobody anything: the load average is below our CPUs. On a busy
        machine warming only moves CPU around (a session that would not write those pages wastes it)."""
        try:
            with open(os.open("loadavg", os.O_RDONLY, dir_fd=self.proc)) as loadavg:
                return float(loadavg.read().split()[0]) < self.cpus
        except (OSError, ValueError, IndexError):
            return False

    def _probe_session(self) -> None:
        """In a throwaway fork: a session's first calls, from reading the request to writing the reply."""
        session = SessionProcess(self.namespace, int(self.config["max_output_chars"]), int(self.config["memory_bytes"]),
                                 self.interpreter)
        requests, sink = os.pipe()
        for code in PROBE_CALLS:
            write_frame(sink, {"id": "probe", "code": code, "timeout_s": 10.0, "cpu_seconds": 10.0})
            request = read_frame(requests)
            reply = session.run(request["code"], float(request["timeout_s"]), float(request["cpu_seconds"]))
            write_frame(sink, reply)
            read_frame(requests)

    def describe(self) -> dict[str, Any]:
        return {"isolation": self.probe.level, "namespaces": self.probe.namespaces,
                "namespaces_why": self.probe.namespaces_why, "seccomp": self.probe.seccomp,
                "seccomp_why": self.probe.seccomp_why, "uid": self.uid,
                "session_leader": not self.direct,
                "spare_hot_pages": sum(length for _, length in self.hot_pages) // prefault.PAGE}

    def serve(self, control: socket.socket) -> None:
        poller = select.poll()
        poller.register(control, select.POLLIN)
        poller.register(self.wake_read, select.POLLIN)
        want = int(self.config["spare_sessions"])
        try:
            while True:
                self._reap()
                events = dict(poller.poll(0 if len(self.spares) < want else 1000))
                if self.wake_read in events:
                    while True:
                        try:
                            os.read(self.wake_read, 4096)
                        except BlockingIOError:
                            break
                if control.fileno() not in events:
                    if not events and len(self.spares) < want:
                        self.spares.append(self.spawn(warm=bool(self.hot_pages) and self._a_core_is_idle()))
                    continue
                message, fds, _, _ = socket.recv_fds(control, CONTROL_MESSAGE_BYTES, 0)
                for fd in fds:
                    os.close(fd)
                if not message:
                    return  # the parent closed the sandbox (or died)
                handed = self.spares.popleft() if self.spares else self.spawn(warm=False)
                pid, fds = handed[0], handed[1:]
                try:
                    socket.send_fds(control, [json.dumps({"pid": pid}).encode()], fds)
                finally:
                    for fd in fds:
                        os.close(fd)
        finally:
            self._reap()  # the staging dir, our root in our namespace, is removed on the host by the parent

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            resp_write = self.live.pop(pid, None)
            if resp_write is not None:  # a direct session: tell the parent how it ended, unless its pipe is full
                try:
                    if select.select([], [resp_write], [], 0)[1]:
                        write_frame(resp_write, {"exited": status})  # < PIPE_BUF: never blocks when writable
                except OSError:
                    pass  # the parent closed the session first
                os.close(resp_write)

    def spawn(self, warm: bool) -> list[int]:
        """A new session: [its pid, request pipe, reply pipe, pidfd] (the parent's ends).

        `warm`: copy the hot pages before reporting (prefault.py): a spare made while a core is idle. Not a
        session a caller is waiting for (a trivial one would pay for pages it never writes)."""
        return self._spawn_direct(warm) if self.direct else self._spawn_with_leader(warm)

    def _spawn_direct(self, warm: bool) -> list[int]:
        req_read, req_write = os.pipe()
        resp_read, resp_write = os.pipe()
        pid = isolation.fork_into_new_pid_namespace(self.own_pid_namespace)
        if pid == 0:
            try:
                self._start_direct_session(req_read, resp_write, warm)
            finally:
                os._exit(1)
        os.close(req_read)
        self.live[pid] = resp_write
        return [pid, req_write, resp_read, os.pidfd_open(pid)]  # unreaped child: its pid is still its own

    def _start_direct_session(self, req_read: int, resp_write: int, warm: bool) -> None:
        try:
            proc_self = isolation.open_own_proc_dir(self.proc)
            self._leave_zygote_state(req_read, resp_write, proc_self)
            isolation.enter_namespaces(proc_self, int(self.config["scratch_bytes"]), new_pid_namespace=False,
                                       own_net_ipc=self.own_net_ipc)
            report = self._lock_down_session(isolation.SCRATCH_DIR, warm)
        except BaseException as exc:  # noqa: BLE001 - the parent must learn why the session did not start
            write_frame(resp_write, {"started": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        write_frame(resp_write, {"started": True, **report})
        serve(self._session, req_read, resp_write, int(self.config["max_reply_chars"]))

    def _leave_zygote_state(self, *keep: int) -> None:
        """First thing in a forked child: none of the zygote's descriptors, signal set-up or output."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):  # nothing a session writes to fd 1/2 reaches a log or terminal
            os.dup2(devnull, fd)
        close_all_fds_except({0, 1, 2, *keep})

    def _spawn_with_leader(self, warm: bool) -> list[int]:
        request = self.config
        req_read, req_write = os.pipe()
        resp_read, resp_write = os.pipe()
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                self._lead_session(zygote_pid, req_read, resp_write, request, warm)
            finally:
                os._exit(1)
        os.close(req_read)
        os.close(resp_write)
        pidfd = os.pidfd_open(pid)  # safe: the leader is our unreaped child, so the pid cannot be reused yet
        return [pid, req_write, resp_read, pidfd]

    # --- in the session leader --------------------------------------------------------------------------
    def _lead_session(self, zygote_pid: int, req_read: int, resp_write: int, request: dict[str, Any],
                      warm: bool) -> None:
        host_scratch = None
        try:
            if self.probe.namespaces:
                proc_self = isolation.open_own_proc_dir(self.proc)
                self._leave_zygote_state(req_read, resp_write, proc_self)
                isolation.enter_namespaces(proc_self, int(request["scratch_bytes"]), own_net_ipc=self.own_net_ipc)
                workdir = isolation.SCRATCH_DIR
            else:
                self._leave_zygote_state(req_read, resp_write)
                workdir = host_scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{zygote_pid}-")
                if isolation.running_as_root():
                    os.chown(host_scratch, isolation.OUTSIDE_UID, isolation.OUTSIDE_GID)
                    os.setgroups([])
                    os.setresgid(isolation.OUTSIDE_GID, isolation.OUTSIDE_GID, isolation.OUTSIDE_GID)
                    os.setresuid(isolation.OUTSIDE_UID, isolation.OUTSIDE_UID, isolation.OUTSIDE_UID)
            isolation.set_parent_death_signal()  # after the uid change, which clears it
            if os.getppid() != zygote_pid:
                return  # the zygote died in between: so do we
            sync_read, sync_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(sync_read)
                self._run_session(req_read, resp_write, sync_write, workdir, request, warm)
            os.close(req_read)
            os.close(sync_write)
            with os.fdopen(sync_read, "rb") as sync:
                report = sync.read()
            started: dict[str, Any] = json.loads(report) if report else {"error": "the session process died at start"}
            write_frame(resp_write, {"started": "error" not in started, "pid": pid, "leader_pid": os.getpid(),
                                     "scratch": host_scratch, **started})
            _, status = os.waitpid(pid, 0)
            write_frame(resp_write, {"exited": status})
        except BrokenPipeError:
            pass  # the parent closed the session first
        except BaseException as exc:  # noqa: BLE001 - the parent must learn why the session did not start
            try:
                write_frame(resp_write, {"started": False, "error": f"{type(exc).__name__}: {exc}"})
            except OSError:
                pass
        finally:
            if host_scratch:
                shutil.rmtree(host_scratch, ignore_errors=True)

    # --- in the session process -------------------------------------------------------------------------
    def _run_session(self, req_read: int, resp_write: int, sync_write: int, workdir: str,
                     request: dict[str, Any], warm: bool) -> None:
        """The session process under a leader: lock down, report to the leader, serve."""
        try:
            close_all_fds_except({0, 1, 2, req_read, resp_write, sync_write})
            report = self._lock_down_session(workdir, warm)
        except BaseException as exc:  # noqa: BLE001
            os.write(sync_write, json.dumps({"error": f"{type(exc).__name__}: {exc}"})[:4000].encode())
            os._exit(1)
        os.write(sync_write, json.dumps(report).encode())
        os.close(sync_write)
        serve(self._session, req_read, resp_write, int(request["max_reply_chars"]))
        os._exit(0)

    def _lock_down_session(self, workdir: str, warm: bool) -> dict[str, Any]:
        """In the session process, after its namespaces: die with our parent, its own process group, an
        empty environment, the scratch as cwd, then the limits and seccomp, and for a spare (`warm`) the
        copies of the hot pages; returns its layers."""
        config = self.config
        isolation.set_parent_death_signal()  # after the uid change, which clears it
        # Its own process group (PRIO_PGRP and kill(0) reach no other session) in a session of its own,
        # which also gives it a scheduler autogroup of its own: however many processes a session runs, it
        # gets one share of the CPU next to the others, not one per process.
        os.setsid()
        if os.environ:  # emptied in the zygote already (__init__)
            os.environ.clear()
        os.chdir(workdir)
        tempfile.tempdir = workdir
        # Our own copy already (the fork's): copying the dict would write to the refcount of each of its
        # ~1,000 values and so copy-on-write hundreds of the zygote's pages into every session.
        self._session = SessionProcess(self.namespace, int(config["max_output_chars"]), int(config["memory_bytes"]),
                                       self.interpreter)
        limits = isolation.ProcessLimits(int(config["memory_bytes"]), int(config["max_file_bytes"]),
                                         int(config["max_open_files"]), int(config["max_processes"]))
        if warm:
            prefault.populate(self.hot_pages)  # before seccomp, which refuses pidfd_open and process_madvise
        layers = isolation.lock_down(limits, self.seccomp_program)
        layers["namespaces"] = self.probe.namespaces
        return {"isolation": isolation.level(self.probe.namespaces, layers["seccomp"]), "layers": layers}


def main() -> None:
    control_fd, parent_pid, config = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    del sys.argv[1:]
    control = socket.socket(fileno=control_fd)
    try:
        isolation.set_parent_death_signal()
        if os.getppid() != parent_pid:
            return
        zygote = Zygote(config)
    except BaseException as exc:  # noqa: BLE001 - the parent must learn why start-up failed
        control.send(json.dumps({"ready": False, "error": "".join(traceback.format_exception(exc))}).encode())
        return
    control.send(json.dumps({"ready": True, "pid": os.getpid(), "staging": zygote.staging, **zygote.describe()}).encode())
    zygote.serve(control)
    os._exit(0)  # no interpreter teardown of SymPy's modules: the parent waits for this exit
