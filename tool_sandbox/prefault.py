"""Warm spare sessions: the zygote's pages that a typical session writes, copied before it is handed over.

Every session is a fork of the zygote, so its first write to each of the zygote's pages is a
copy-on-write fault, and its first SymPy calls write a couple of thousand of them (the refcounts of the
functions and code objects they run, the allocator's pools). At start the zygote runs a few typical
calls in a throwaway fork (`learn_hot_pages`) and notes which of its pages that fork wrote. A spare
session (one forked ahead of need) then copies exactly those, one madvise(MADV_POPULATE_WRITE) per run
of pages (`populate`), while it waits to be handed over: cheaper per page than a fault each, and off the
caller's path (figures: docs/benchmarks.md). Nothing changes but when the copies are made: the pages keep
their content, and the list comes from the zygote's own probe, never from a session.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from array import array
from collections.abc import Callable

PAGE = mmap.PAGESIZE
MADV_POPULATE_WRITE = 23  # Linux 5.14+; older kernels answer EINVAL and spares stay cold
# A probe that wrote more than this is not typical; the rest would cost every spare more than it saves.
MAX_HOT_PAGES = 8192
_PRESENT, _EXCLUSIVE = 1 << 63, 1 << 56  # /proc/<pid>/pagemap entry bits (exclusive: mapped by this process only)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _private_writable_regions(proc: int) -> list[tuple[int, int]]:
    """(start, end) of this process's private writable mappings: heap, arenas, libraries' data, stack."""
    regions = []
    with open(os.open("self/maps", os.O_RDONLY, dir_fd=proc)) as maps:
        for line in maps:
            addresses, perms = line.split()[:2]
            if perms.startswith("rw") and perms.endswith("p"):
                start, end = (int(a, 16) for a in addresses.split("-"))
                regions.append((start, end))
    return regions


def _pages_written_since_fork(proc: int, regions: list[tuple[int, int]]) -> list[int]:
    """Page numbers in `regions` that this forked process now maps alone: the ones it copied (or first
    touched) since the fork. Every page it inherited is shared with the zygote until written."""
    pages: list[int] = []
    pagemap = os.open("self/pagemap", os.O_RDONLY, dir_fd=proc)
    try:
        for start, end in regions:
            entries = array("Q")
            entries.frombytes(os.pread(pagemap, (end - start) // PAGE * 8, start // PAGE * 8))
            first = start // PAGE
            pages.extend(first + i for i, entry in enumerate(entries) if entry & _PRESENT and entry & _EXCLUSIVE)
    finally:
        os.close(pagemap)
    return pages


def learn_hot_pages(proc: int, workload: Callable[[], object]) -> list[tuple[int, int]]:
    """Run `workload` in a throwaway fork and return the runs of pages it wrote, as (address, length).

    `proc` is a descriptor of /proc (the zygote no longer sees it by path). Empty when the probe fails
    or wrote more than MAX_HOT_PAGES.
    """
    regions = _private_writable_regions(proc)  # the zygote's, so that a probe's new arenas do not count
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            workload()
            pages = _pages_written_since_fork(proc, regions)
            if len(pages) <= MAX_HOT_PAGES:
                with os.fdopen(write_fd, "wb") as out:
                    out.write(array("Q", pages).tobytes())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reply:
        data = reply.read()
    os.waitpid(pid, 0)
    pages = array("Q")
    pages.frombytes(data[: len(data) // 8 * 8])
    runs: list[list[int]] = []
    for page in sorted(pages):
        if runs and page == runs[-1][1]:
            runs[-1][1] = page + 1
        else:
            runs.append([page, page + 1])
    return [(first * PAGE, (end - first) * PAGE) for first, end in runs]


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


SYS_PROCESS_MADVISE = 440  # the same number on x86_64 and aarch64
UIO_MAXIOV = 1024


def populate(runs: list[tuple[int, int]]) -> None:
    """Copy (or allocate) these pages of this process now, as its first writes to them would.

    One process_madvise call per 1,024 runs where the kernel takes any advice for the caller itself
    (Linux 6.13+), else one madvise per run. Errors are skipped: EINVAL before Linux 5.14 (the spare
    stays cold), ENOMEM for a run no longer mapped. Needs pidfd_open and process_madvise: before seccomp.
    """
    try:
        pidfd = os.pidfd_open(os.getpid())
    except OSError:
        pidfd = -1
    try:
        for first in range(0, len(runs), UIO_MAXIOV):
            chunk = runs[first:first + UIO_MAXIOV]
            vector = (_Iovec * len(chunk))(*chunk)
            wanted = sum(length for _, length in chunk)
            if pidfd >= 0 and _libc.syscall(SYS_PROCESS_MADVISE, pidfd, vector, len(chunk),
                                             MADV_POPULATE_WRITE, 0) == wanted:
                continue
            for address, length in chunk:  # refused, or stopped at a run that is gone: one at a time
                if _libc.madvise(address, length, MADV_POPULATE_WRITE) != 0 and ctypes.get_errno() == errno.EINVAL:
                    return
    finally:
        if pidfd >= 0:
            os.close(pidfd)
