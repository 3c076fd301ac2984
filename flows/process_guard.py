"""Nothing of a run outlives the `tool-distill` process, even after kill -9.

A run starts processes of its own (the temporary Prefect API server, the sandbox's zygote and its
session children, a local Dask cluster); a kill -9 of the CLI gives it no chance to stop them.
So the CLI does its work in a child that is PID 1 of a fresh PID namespace and holds
`PR_SET_PDEATHSIG(SIGKILL)`: when the CLI dies for any reason the kernel kills the child, and when
a namespace's PID 1 dies the kernel kills every process in it. No cleanup code has to run.

Root can create the namespace directly; other users get it inside a user namespace that maps
their own uid and gid to themselves (so files they write keep their owner). Where neither is
allowed the work runs in this process, unguarded, and `--verbose` says so.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from collections.abc import Callable

from flows.stop_signals import STOP_GRACE_S

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG = 1
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GUARD_ENV = "TOOL_DISTILL_PROCESS_GUARD"  # "off" runs in this process (debuggers, profilers)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return _libc().unshare(flags) == 0


def _enter_pid_namespace() -> bool:
    """Make this process's next child PID 1 of a new PID namespace; False where the kernel refuses."""
    if _unshare(_CLONE_NEWPID):
        return True
    uid, gid = os.getuid(), os.getgid()
    if not _unshare(_CLONE_NEWUSER | _CLONE_NEWPID):
        return False
    try:
        with open("/proc/self/setgroups", "w") as handle:
            handle.write("deny")
        with open("/proc/self/uid_map", "w") as handle:
            handle.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as handle:
            handle.write(f"{gid} {gid} 1")
    except OSError:
        return False
    return True


def run_guarded(work: Callable[[], int], *, verbose: bool = False,
                on_forced_stop: Callable[[int], None] | None = None) -> int:
    """`work()`'s exit code, with `work` run where every process it starts dies with this one.

    A stop signal (SIGINT, SIGTERM, SIGHUP) sent to this process is forwarded to the work; if the work
    has not ended `STOP_GRACE_S` later (Prefect waits for the threads of calls in flight), it is killed,
    `on_forced_stop(signal)` says so, and the exit code is 128 + that signal.
    Call it before any thread is started (a fork copies only the calling thread).
    """
    if os.environ.get(GUARD_ENV) == "off" or not sys.platform.startswith("linux") or not _enter_pid_namespace():
        if verbose:
            print("tool-distill: no PID namespace here; processes of a killed run may outlive it", file=sys.stderr)
        return work()
    sys.stdout.flush()
    sys.stderr.flush()
    # The child cannot see its parent's pid from inside the new namespace (getppid() is 0 there), so a
    # pipe tells it whether the parent is still alive: its write end closes when the parent dies.
    alive_read, alive_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(alive_write)
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        os.set_blocking(alive_read, False)
        try:
            os.read(alive_read, 1)
            os._exit(137)  # EOF: the CLI died between fork and prctl
        except BlockingIOError:
            pass  # still open: the parent lives, and from now on its death kills this process
        os.close(alive_read)
        # PID 1 ignores signals it has no handler for; give SIGTERM and SIGHUP the default's meaning.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
        code = 1
        try:
            code = work()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # os._exit below skips Python's own report: never end in silence
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(alive_read)
    first_signal: int | None = None
    forced = False  # the grace after the first stop signal ran out and the work was killed

    def forward(number: int, _frame: object) -> None:  # a signal sent to the CLI's pid alone must reach the work too
        nonlocal first_signal
        os.kill(child, number)
        if first_signal is None:
            first_signal = number
            signal.setitimer(signal.ITIMER_REAL, STOP_GRACE_S)  # no thread: none can start after unshare(NEWPID)

    def grace_over(_number: int, _frame: object) -> None:
        nonlocal forced
        forced = True
        os.kill(child, signal.SIGKILL)

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    signal.signal(signal.SIGALRM, grace_over)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if forced and first_signal is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        if on_forced_stop is not None:
            on_forced_stop(first_signal)
        return 128 + first_signal
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)
