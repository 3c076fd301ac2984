"""The hostile/broken snippet corpus (tests/sandbox_attacks/*.py), each run as a model would send it.

Every snippet must end with the expected status and message, leak nothing it must not, and leave nothing
behind: the next ordinary call is correct in the same session and in a fresh one, another session's
variables are intact, no process of the session survives its close, no file appears outside the
session's scratch, and the parent's (and the zygote's) nice value, CPU affinity, rlimits and open
descriptors are unchanged. That holds for snippets that patch SymPy, `sys.modules`, hooks or signals too:
what belongs to the interpreter is put back after the call (tool_sandbox/interpreter_state.py).
"""

from __future__ import annotations

import glob
import os
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tool_sandbox import Sandbox, SandboxLimits
from tool_sandbox.isolation import FULL

CORPUS_DIR = Path(__file__).parent / "sandbox_attacks"
PROJECT_DIR = Path(__file__).resolve().parent.parent
CANARY = "sk-SANDBOX_CANARY-do-not-leak"
VICTIM_SECRET = "VICTIM-SECRET-42"
UNIX_SOCKET = f"/tmp/tool_sandbox_test-{os.getpid()}.sock"  # per process: test runs side by side keep theirs
ESCAPE_GLOBS = ("/tmp/tool_sandbox_escape*", "/tmp/tool_sandbox_pwned*", "/usr/lib/tool_sandbox_escape*",
                str(PROJECT_DIR / "escape*"))
FOLLOW_UP = "from sympy import *\nx = symbols('x')\nsolve(x**2 - 9, x)"
RLIMITS = [getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")]


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    expect: str
    says: str | None
    never: str | None
    then: str | None  # an ordinary call the attack would make wrong, other than FOLLOW_UP ...
    gives: str | None  # ... and its right result


def load_corpus() -> list[Attack]:
    attacks = []
    for path in sorted(CORPUS_DIR.glob("*.py")):
        text = path.read_text().replace("__PROJECT_DIR__", str(PROJECT_DIR)).replace("__UNIX_SOCKET__", UNIX_SOCKET)
        header = dict(line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("# ") and ": " in line
                      and line[2:].split(": ", 1)[0] in ("expect", "says", "never", "then", "gives"))
        attacks.append(Attack(path.stem, text, header["expect"], header.get("says"), header.get("never"),
                              header.get("then"), header.get("gives")))
    return attacks


CORPUS = load_corpus()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as env, socket.socket(socket.AF_UNIX) as server:
        env.setenv("OPENAI_API_KEY", CANARY)  # must not reach user code
        if os.path.exists(UNIX_SOCKET):
            os.unlink(UNIX_SOCKET)
        server.bind(UNIX_SOCKET)  # a local unix socket, as a docker socket would be on a host
        server.listen()
        with Sandbox(limits=SandboxLimits(timeout_s=1.5, memory_bytes=512 << 20)) as box:
            if box.confinement()["isolation"] != FULL:
                pytest.skip(f"the kernel layers are not all available here: {box.confinement()}")
            assert box.run(f"victim_secret = {VICTIM_SECRET!r}", "victim").ok
            yield box
        os.unlink(UNIX_SOCKET)


def process_state(pid: int) -> tuple[object, ...]:
    """What a session must not be able to change about another process: nice, affinity, rlimits."""
    return (os.getpriority(os.PRIO_PROCESS, pid), os.sched_getaffinity(pid),
            tuple(resource.prlimit(pid, r) for r in RLIMITS))


def zygote_descendants(zygote_pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie is dead, only not yet reaped
            parents[int(stat.split("/")[2])] = int(fields[1])
    found, frontier = set(), {zygote_pid}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_for_descendants(zygote_pid: int, expected: int, timeout_s: float = 10.0) -> set[int]:
    """Poll until the zygote has exactly its spares and the victim session under it."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = zygote_descendants(zygote_pid)
        if len(alive) == expected or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_corpus_is_large_and_covers_every_status() -> None:
    assert len(CORPUS) >= 60
    assert {status for a in CORPUS for status in a.expect.split("|")} == {"ok", "error", "timeout", "memory", "killed"}


def open_descriptors() -> set[tuple[str, str]]:
    """(fd, what it points to) for each descriptor this process holds open."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except FileNotFoundError:  # the listing's own descriptor, closed already
            pass
    return found


@pytest.mark.parametrize("attack", CORPUS, ids=lambda a: a.name)
def test_attack_is_contained_and_leaves_nothing_behind(sandbox: Sandbox, attack: Attack) -> None:
    zygote_pid = sandbox.worker_pids()[0]
    # the spares and the victim: a process each, plus a leader each where sessions need one (not as root)
    expected_processes = (sandbox.limits.spare_sessions + 1) * (2 if sandbox.confinement()["session_leader"] else 1)
    parent_before, zygote_before = process_state(0), process_state(zygote_pid)
    fds_before = open_descriptors()
    session, fresh = f"attack-{attack.name}", f"fresh-{attack.name}"

    try:
        _attack_is_contained(sandbox, attack, session, fresh)
    finally:  # a failed check must not leave its sessions to the next attack's process count
        sandbox.close_session(session)
        sandbox.close_session(fresh)
    leftover = wait_for_descendants(zygote_pid, expected_processes)
    assert len(leftover) == expected_processes, f"{attack.name} left processes: {sorted(leftover)}"
    for pattern in ESCAPE_GLOBS:
        assert not glob.glob(pattern), f"{attack.name} wrote {glob.glob(pattern)}"
    assert process_state(0) == parent_before, "the parent's nice, affinity or rlimits changed"
    assert process_state(zygote_pid) == zygote_before, "the zygote's nice, affinity or rlimits changed"
    # Other fds of this process (earlier tests' sockets, closed by the garbage collector) may go meanwhile: only
    # a descriptor that is new counts, a session's pipe or pidfd kept open.
    assert open_descriptors() - fds_before == set(), "the parent kept descriptors of the closed sessions"


def _attack_is_contained(sandbox: Sandbox, attack: Attack, session: str, fresh: str) -> None:
    """The attack's own status and message, nothing leaked, and the next ordinary calls answer correctly."""
    out = sandbox.run(attack.code, session)
    seen = out.text_for_model(max_chars=100_000)
    # "expect: timeout|ok" with "says: killed|threads running": either outcome, each with its own message
    outcomes = attack.expect.split("|")
    assert out.status in outcomes, seen
    if attack.says:
        assert attack.says.split("|")[outcomes.index(out.status)] in seen, seen
    if attack.never:
        assert attack.never not in seen
    assert CANARY not in seen and VICTIM_SECRET not in seen
    assert len(out.stdout) <= sandbox.limits.max_output_chars + 100
    assert out.isolation == FULL

    same = sandbox.run(FOLLOW_UP, session)
    assert (same.status, same.result) == ("ok", "[-3, 3]"), same.text_for_model()
    assert "late output" not in same.stdout
    if attack.then:
        then = sandbox.run(attack.then, session)
        assert (then.status, then.result) == ("ok", attack.gives), then.text_for_model()
    new = sandbox.run(FOLLOW_UP, fresh)
    assert (new.status, new.result, new.notice) == ("ok", "[-3, 3]", None), new.text_for_model()
    assert sandbox.run("victim_secret", "victim").result == repr(VICTIM_SECRET)

