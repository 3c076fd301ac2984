"""Landlock (Linux >= 5.13): kernel-enforced file, TCP and signal confinement of a worker, via raw syscalls.

Once applied it cannot be lifted by the process, so unlike the audit hook user code cannot reach
around it: files outside the given roots cannot be opened at all, nothing can be executed (no
EXECUTE right anywhere), TCP bind/connect is denied (ABI >= 4) and signals cannot be sent outside
the worker (ABI >= 6). Called once in the worker, before any user code runs; ctypes is fine here.
"""

from __future__ import annotations

import ctypes
import os

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same numbers on every architecture
_CREATE_RULESET_VERSION = 1
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_BITS_BY_ABI = {1: 13, 2: 14, 3: 15, 4: 15}  # ABI 5 and later: 16 (adds IOCTL_DEV)
_NET_BIND_CONNECT_TCP = 0b11
_SCOPE_ABSTRACT_UNIX_AND_SIGNAL = 0b11


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def restrict_filesystem(read_only: list[str], read_write: list[str]) -> int | None:
    """Allow reading under `read_only`, everything but exec under `read_write`, nothing elsewhere.

    Returns the Landlock ABI version applied, or None where the kernel has no Landlock (the caller's
    other layers still apply). Raises OSError if Landlock exists but a step fails, rather than
    silently running less confined than reported.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if abi < 1:
        return None
    all_fs = (1 << _FS_BITS_BY_ABI.get(abi, 16)) - 1
    attr = _RulesetAttr(handled_access_fs=all_fs,
                        handled_access_net=_NET_BIND_CONNECT_TCP if abi >= 4 else 0,
                        scoped=_SCOPE_ABSTRACT_UNIX_AND_SIGNAL if abi >= 6 else 0)
    attr_size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset_fd = _check(libc, libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(attr_size),
                                           ctypes.c_uint32(0)), "create a ruleset")
    try:
        for paths, rights in ((read_only, _READ_FILE | _READ_DIR), (read_write, all_fs & ~_EXECUTE)):
            for path in paths:
                if os.path.isdir(path):
                    _add_path_rule(libc, ruleset_fd, path, rights)
        _check(libc, libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
        _check(libc, libc.syscall(_SYS_RESTRICT_SELF, ruleset_fd, ctypes.c_uint32(0)), "restrict the process")
    finally:
        os.close(ruleset_fd)
    return int(abi)


def _add_path_rule(libc: ctypes.CDLL, ruleset_fd: int, path: str, rights: int) -> None:
    path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=path_fd)
        _check(libc, libc.syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(rule),
                                  ctypes.c_uint32(0)), f"allow {path}")
    finally:
        os.close(path_fd)


def _check(libc: ctypes.CDLL, result: int, step: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock: could not {step}: {os.strerror(errno)}")
    return result
