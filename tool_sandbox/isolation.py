"""The kernel layers that confine a session process, through raw libc calls (Python 3.11 has no os.unshare).

`prepare_root` runs once in the zygote: it moves the zygote into the sessions' future root (only the
Python installation and its libraries, read-only) and into empty network, IPC and UTS namespaces of its
own. Then, in every session (see zygote.py): `enter_namespaces` in the session's first fork (user, PID
and mount namespaces, plus network and IPC ones where seccomp is missing; a size-limited tmpfs scratch;
an unprivileged uid), and `lock_down` in the session process itself, just before it serves calls
(rlimits, no_new_privs, no capabilities, seccomp). `probe` says which layers this kernel allows, for
`doctor`, `Sandbox.confinement()` and the `isolation` level recorded on every call.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import resource
import signal
import sys
from dataclasses import dataclass, field

# Level strings recorded on every ExecResult (rlimits, no_new_privs and an empty environment are in all).
FULL = "namespaces+seccomp"
NAMESPACES_ONLY = "namespaces"
SECCOMP_ONLY = "seccomp"
RLIMITS_ONLY = "rlimits"


def level(namespaces: bool, seccomp: bool) -> str:
    if namespaces:
        return FULL if seccomp else NAMESPACES_ONLY
    return SECCOMP_ONLY if seccomp else RLIMITS_ONLY

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP = 0x10000000, 0x20000000, 0x40000000, 0x02000000
NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
# statvfs f_flag bits that a mount in a user namespace inherits locked: a read-only remount must repeat them.
_LOCKED_STATVFS_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
                         os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}
_SYSCALL_NUMBERS = {"x86_64": {"pivot_root": 155, "capset": 126}, "aarch64": {"pivot_root": 41, "capset": 91}}
# The unprivileged identity sessions run as when the sandbox runs as root ("nobody" on Debian).
OUTSIDE_UID = OUTSIDE_GID = 65534
# What user code sees as its own uid/gid inside the user namespace.
INSIDE_UID = INSIDE_GID = 1000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class IsolationError(OSError):
    """A kernel layer could not be applied; the message names the step and the errno."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise IsolationError(code, f"{what}: {os.strerror(code)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({nstype:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {source} on {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYSCALL_NUMBERS[platform.machine()]["pivot_root"]
    _check(_libc.syscall(ctypes.c_long(number), new_root.encode(), put_old.encode()), "pivot_root")


def drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (capset, header version 3)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    number = _SYSCALL_NUMBERS[platform.machine()]["capset"]
    _check(_libc.syscall(ctypes.c_long(number), header, data), "capset")


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Die with the parent even when it is SIGKILLed (PR_SET_PDEATHSIG; cleared by credential changes)."""
    prctl(PR_SET_PDEATHSIG, sig)


# --- filesystem view ------------------------------------------------------------------------------------
def read_only_roots() -> list[str]:
    """What a session may read: the Python installation and its site-packages, nothing of the project or home.

    /usr covers the system libraries (libc, libffi, libseccomp); the Python installation may sit
    elsewhere (pyenv under /root, a venv under the project), so exactly its library dirs are added.
    """
    roots = {"/usr", os.path.join(sys.base_prefix, "lib"), os.path.join(sys.base_exec_prefix, "lib")}
    roots.update(p for p in sys.path if p and os.path.isdir(p) and ("site-packages" in p or "dist-packages" in p))
    for legacy in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):  # real dirs on a system without merged /usr
        if os.path.isdir(legacy) and not os.path.islink(legacy):
            roots.add(legacy)
    resolved = sorted({os.path.realpath(r) for r in roots if os.path.isdir(r)})
    # A root inside another is already visible through it.
    return [r for r in resolved if not any(r != o and r.startswith(o + os.sep) for o in resolved)]


def _scratch_dir() -> str:
    """/tmp, where code expects a scratch; another path when the Python installation itself lives under /tmp
    (a checkout or venv there), which a tmpfs over /tmp would hide from the session."""
    return "/scratch" if any(r == "/tmp" or r.startswith("/tmp/") for r in read_only_roots()) else "/tmp"


# Where a session's tmpfs scratch is mounted inside its root (also its cwd, HOME and TMPDIR).
SCRATCH_DIR = _scratch_dir()


DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


def _bind_read_only(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    # In a user namespace the original mount's flags are locked: the remount must repeat them (harmless elsewhere).
    f_flag = os.statvfs(source).f_flag
    locked = sum(ms for st, ms in _LOCKED_STATVFS_FLAGS.items() if f_flag & st)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | locked)


_REAL_ROOT = os.geteuid() == 0  # decided before the zygote may become "root" of a user namespace of its own


def running_as_root() -> bool:
    return _REAL_ROOT


@functools.cache
def can_drop_to_nobody() -> bool:
    """Root whose user namespace maps uid/gid 65534 (real root, or a rootless container's mapped range);
    root of a namespace that maps only itself (`unshare -Ur`) stays that uid, as an ordinary user does."""
    if not running_as_root():
        return False
    try:
        with open("/proc/self/uid_map") as uid_map, open("/proc/self/gid_map") as gid_map:
            return all(any(int(start) <= wanted < int(start) + int(count)
                           for start, _, count in (line.split() for line in f))
                       for f, wanted in ((uid_map, OUTSIDE_UID), (gid_map, OUTSIDE_GID)))
    except (OSError, ValueError):
        return False


# Created once by the zygote and shared by its sessions when seccomp is on (see `prepare_root`).
SHARED_NAMESPACE_FLAGS = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS


def prepare_root(staging: str) -> int:
    """Once, in the zygote: move it into the sessions' future root, in namespaces of its own.

    That root is a small read-only tmpfs built at `staging`, with the read-only roots bind-mounted at
    their own paths and a few device nodes; the zygote pivots into it and detaches the host's mounts.
    Each session then copies this mount namespace (a dozen mounts) and mounts its scratch: no
    pivot_root, no unmounting of the host's tree per session. The zygote also enters a network
    namespace with only a down loopback, and new IPC and UTS namespaces, which its sessions inherit
    (`enter_namespaces` says when they get their own). As an ordinary user the zygote first enters a
    user namespace of its own, where it is root over its namespaces only.

    Returns a descriptor of the host's /proc: the only way back to it, for the id maps of each session
    (`open_own_proc_dir`), which closes it at once. It never reaches user code.
    """
    can_drop_to_nobody()  # decided while /proc shows the zygote's own user namespace
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if running_as_root():
        unshare(CLONE_NEWNS | SHARED_NAMESPACE_FLAGS)
    else:
        uid, gid = os.geteuid(), os.getegid()
        proc_self = open_own_proc_dir(proc)
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNS | SHARED_NAMESPACE_FLAGS)
            _write_id_maps(proc_self, 0, uid, gid)
        finally:
            os.close(proc_self)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here propagates back to the host
    mount("tool_sandbox_root", staging, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    for legacy in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):  # merged-/usr symlinks, recreated as they are
        if os.path.islink(legacy):
            os.symlink(os.readlink(legacy), staging + legacy)
    for root in read_only_roots():
        os.makedirs(staging + root, exist_ok=True)
        _bind_read_only(root, staging + root)
    os.makedirs(staging + "/dev", exist_ok=True)
    for device in DEVICES:
        if os.path.exists(device):
            open(staging + device, "w").close()
            mount(device, staging + device, None, MS_BIND)
    os.makedirs(staging + SCRATCH_DIR)
    mount(None, staging, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    # The host's root is parked on the scratch's mount point and detached: from here on the zygote sees
    # only what a session sees.
    pivot_root(staging, staging + SCRATCH_DIR)
    os.chdir("/")
    _check(_libc.umount2(SCRATCH_DIR.encode(), MNT_DETACH), "umount2 old root")
    return proc


def open_own_proc_dir(proc: int) -> int:
    """This process's /proc/<pid> dir through `proc` (the host's /proc, from `prepare_root`). "self" there
    is resolved in the PID namespace that /proc belongs to, where a session's process has a pid too."""
    return os.open("self", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)


def _write_id_maps(proc_dir_fd: int, inside: int, outside_uid: int, outside_gid: int) -> None:
    for name, text in (("setgroups", "deny"), ("uid_map", f"{inside} {outside_uid} 1"),
                       ("gid_map", f"{inside} {outside_gid} 1")):
        fd = os.open(name, os.O_WRONLY, dir_fd=proc_dir_fd)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def enter_namespaces(proc_self: int, scratch_bytes: int, new_pid_namespace: bool = True,
                     own_net_ipc: bool = True) -> None:
    """In a session's leader (single-threaded, inside the zygote's root from `prepare_root`): fresh
    namespaces, a private tmpfs scratch at /tmp, an unprivileged uid; its next child is PID 1.

    `proc_self` is the caller's own /proc dir (`open_own_proc_dir`), used for the id maps and closed
    here. `own_net_ipc=False` keeps the zygote's empty network and IPC namespaces: only for sessions
    under seccomp, which refuses every socket and every SysV/POSIX IPC call, so no session can leave
    anything there for another (UTS is shared always: without CAP_SYS_ADMIN over it, nobody inside can
    change the host name). As root it drops to uid/gid 65534 before creating the user namespace; as an
    ordinary user it stays that user. Inside, user code is uid 1000, and RLIMIT_NPROC counts per (this)
    user namespace.
    """
    drop_to_nobody = can_drop_to_nobody()  # reads /proc, gone after the pivot (cached from the zygote)
    try:
        unshare(CLONE_NEWNS | (CLONE_NEWNET | CLONE_NEWIPC if own_net_ipc else 0)
                | (CLONE_NEWPID if new_pid_namespace else 0))
        # 0 when not root: the zygote's own user namespace maps it to the user running the sandbox.
        owner = OUTSIDE_UID if drop_to_nobody else 0
        mount("tool_sandbox_scratch", SCRATCH_DIR, "tmpfs", MS_NOSUID | MS_NODEV,
              f"size={scratch_bytes},nr_inodes=16384,mode=0700,uid={owner},gid={owner}")
        if owner == OUTSIDE_UID:
            os.setgroups([])
            os.setresgid(OUTSIDE_GID, OUTSIDE_GID, OUTSIDE_GID)
            os.setresuid(OUTSIDE_UID, OUTSIDE_UID, OUTSIDE_UID)
            prctl(PR_SET_DUMPABLE, 1)  # a uid change made /proc/self root-owned; the id maps must be writable
        outside_uid, outside_gid = os.geteuid(), os.getegid()
        unshare(CLONE_NEWUSER)
        _write_id_maps(proc_self, INSIDE_UID, outside_uid, outside_gid)
    finally:
        os.close(proc_self)


def fork_into_new_pid_namespace(own_pid_namespace_fd: int) -> int:
    """os.fork(), the child being PID 1 of a fresh PID namespace; the caller's later children are not.

    Needs CAP_SYS_ADMIN over the caller's own PID namespace (real root): `setns` back to it is what
    lets the next call create another namespace. Saves a session its leader process (one fork).
    """
    unshare(CLONE_NEWPID)
    try:
        return os.fork()
    finally:
        if os.getpid() != 1:  # in the parent (the child is PID 1 of the new namespace)
            setns(own_pid_namespace_fd, CLONE_NEWPID)


def probe_direct_fork(own_pid_namespace_fd: int) -> bool:
    """Whether `fork_into_new_pid_namespace` works here, twice in a row, tried in a throwaway child."""
    pid = os.fork()
    if pid == 0:
        try:
            for _ in range(2):
                child = fork_into_new_pid_namespace(own_pid_namespace_fd)
                if child == 0:
                    os._exit(0 if os.getpid() == 1 else 1)
                if os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) != 0:
                    os._exit(1)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


# --- the session process's own limits --------------------------------------------------------------------
@dataclass
class ProcessLimits:
    memory_bytes: int
    max_file_bytes: int
    max_open_files: int
    max_processes: int


def set_rlimits(limits: ProcessLimits) -> None:
    for which, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, limits.max_file_bytes),
                         (resource.RLIMIT_NOFILE, limits.max_open_files), (resource.RLIMIT_AS, limits.memory_bytes),
                         (resource.RLIMIT_NPROC, limits.max_processes)):
        resource.setrlimit(which, (value, value))


# --- seccomp --------------------------------------------------------------------------------------------
# What a Python process running SymPy calls; everything else fails with EPERM. Absent from purpose:
# socket/socketpair (no network, not even AF_UNIX), execve, ptrace, process_vm_*, mount/umount,
# pivot_root/chroot, setns/unshare, bpf, keyctl/add_key, perf_event_open, io_uring, userfaultfd,
# setuid and friends, capset, personality, mknod, kexec/modules/reboot/swap.
_ALLOWED_SYSCALLS = """
read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 close close_range lseek
open openat openat2 creat stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2
readlink readlinkat getdents getdents64 getcwd chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename
renameat renameat2 link linkat symlink symlinkat chmod fchmod fchmodat truncate ftruncate fallocate fsync
fdatasync utimensat utime utimes futimesat umask flock fadvise64 getxattr lgetxattr fgetxattr listxattr
llistxattr flistxattr sendfile copy_file_range splice tee
dup dup2 dup3 fcntl pipe pipe2 ioctl poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl
epoll_wait epoll_pwait epoll_pwait2 eventfd eventfd2 timerfd_create timerfd_settime timerfd_gettime
signalfd signalfd4
mmap munmap mprotect mremap madvise brk msync mincore membarrier memfd_create get_mempolicy
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait rt_sigsuspend rt_sigqueueinfo
sigaltstack pause alarm setitimer getitimer timer_create timer_settime timer_gettime timer_getoverrun
timer_delete nanosleep clock_nanosleep clock_gettime clock_getres gettimeofday time times
getpid getppid gettid getuid geteuid getgid getegid getgroups getresuid getresgid getpgrp getpgid getsid
setsid setpgid getrlimit setrlimit getrusage sysinfo uname capget ioprio_get getcpu
sched_yield sched_getaffinity sched_getparam sched_getscheduler sched_get_priority_max
sched_get_priority_min getpriority
futex futex_waitv set_robust_list get_robust_list set_tid_address rseq arch_prctl restart_syscall
wait4 waitid kill tkill tgkill exit exit_group fork vfork getrandom
""".split()
# prctl options user code may use (names of threads, reading its own state); PR_SET_PDEATHSIG is not one:
# resetting it would let a session outlive the process that is killed to end it.
_ALLOWED_PRCTL = (2, 3, 15, 16, 21, 23, 39, 40, 0x53564D41)  # GET_PDEATHSIG, GET_DUMPABLE, SET/GET_NAME,
#                                           GET_SECCOMP, CAPBSET_READ, GET_NO_NEW_PRIVS, GET_TID_ADDRESS, SET_VMA
PRIO_PROCESS = 0


def seccomp_available() -> tuple[bool, str]:
    try:
        import pyseccomp  # noqa: F401 - loads the system libseccomp
    except (ImportError, OSError) as exc:
        return False, f"pyseccomp/libseccomp cannot be loaded ({exc}); install libseccomp2 and pyseccomp"
    return True, "pyseccomp over the system libseccomp"


def build_seccomp_filter() -> bytes:
    """The filter as a BPF program, compiled once in the zygote by libseccomp; each session loads the bytes
    (`load_seccomp_program`), far cheaper than libseccomp's own load, which recompiles it every time."""
    import tempfile

    import pyseccomp as sc

    flt = sc.SyscallFilter(defaction=sc.ERRNO(errno.EPERM))
    for name in _ALLOWED_SYSCALLS:
        try:
            flt.add_rule(sc.ALLOW, name)
        except (ValueError, RuntimeError, OSError):
            continue  # not a syscall on this architecture (e.g. open on aarch64)
    # Only the calling process itself ("0"): another pid could be a process of another session or the parent.
    flt.add_rule(sc.ALLOW, "prlimit64", sc.Arg(0, sc.EQ, 0))
    flt.add_rule(sc.ALLOW, "sched_setaffinity", sc.Arg(0, sc.EQ, 0))
    flt.add_rule(sc.ALLOW, "setpriority", sc.Arg(0, sc.EQ, PRIO_PROCESS), sc.Arg(1, sc.EQ, 0))
    for option in _ALLOWED_PRCTL:
        flt.add_rule(sc.ALLOW, "prctl", sc.Arg(0, sc.EQ, option))
    # Threads and fork, never new namespaces. clone3 takes its flags in memory a filter cannot read, so it
    # answers ENOSYS, on which glibc falls back to clone.
    flt.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, NAMESPACE_FLAGS, 0))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def load_seccomp_program(program: bytes) -> None:
    """Install a BPF program (8 bytes per instruction) as this process's seccomp filter; needs no_new_privs."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "seccomp filter")


def lock_down(limits: ProcessLimits, seccomp_program: bytes | None) -> dict[str, bool]:
    """Last step before user code: rlimits, no capabilities, no_new_privs, seccomp."""
    set_rlimits(limits)
    applied = {"rlimits": True}
    try:
        drop_capabilities()
        applied["no_capabilities"] = True
    except IsolationError:
        applied["no_capabilities"] = False
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    applied["no_new_privs"] = True
    if seccomp_program is not None:
        load_seccomp_program(seccomp_program)
    applied["seccomp"] = seccomp_program is not None
    return applied


# --- what this machine allows -----------------------------------------------------------------------------
@dataclass
class Probe:
    """Which layers work here, each with the reason when it does not."""

    namespaces: bool
    namespaces_why: str
    seccomp: bool
    seccomp_why: str
    details: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return level(self.namespaces, self.seccomp)


def probe_namespaces(staging: str) -> tuple[bool, str]:
    """Fork a throwaway child that prepares the root and enters every namespace, as the zygote and a session would."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the first failure, never return into the caller's code
        try:
            os.close(read_fd)
            proc = prepare_root(staging)
            enter_namespaces(open_own_proc_dir(proc), 1 << 20)
            message = b"ok"
        except BaseException as exc:  # noqa: BLE001
            message = str(exc).encode()[:500]
        os.write(write_fd, message)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        message = reader.read().decode(errors="replace")
    os.waitpid(pid, 0)
    if message == "ok":
        who = ("root, sessions drop to uid 65534" if can_drop_to_nobody()
               else f"uid {os.geteuid()}, sessions stay that uid outside")
        return True, f"user+pid+mount+net+ipc+uts namespaces, private read-only root, tmpfs scratch ({who})"
    hint = ("; in Docker run with --security-opt seccomp=unconfined --security-opt apparmor=unconfined "
            "(or a profile that allows unshare, mount and pivot_root), and check sysctl "
            "kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0")
    return False, message + hint
