"""The kernel layers on their own and the sandbox's process lifecycle: seccomp without the namespaces,
the namespaces without seccomp, `doctor`, dying with the parent on SIGKILL, and cleaning up after dead runs.

Tests that need a kernel feature skip, with the reason, where this machine lacks it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tool_sandbox import Sandbox, SandboxError, SandboxLimits
from tool_sandbox.isolation import FULL, SCRATCH_DIR, read_only_roots, seccomp_available
from tool_sandbox.zygote import SCRATCH_PREFIX

PROJECT_DIR = Path(__file__).resolve().parent.parent
HAS_SECCOMP, SECCOMP_WHY = seccomp_available()


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={"PYTHONPATH": str(PROJECT_DIR)}, cwd="/")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rpartition(")")[2].split()[1])
        except OSError:
            break
        found.add(pid)
    return found


@pytest.fixture(scope="module")
def confinement() -> dict[str, object]:
    with Sandbox(require_isolation=False) as box:
        return box.confinement()


@pytest.mark.skipif(not HAS_SECCOMP, reason=SECCOMP_WHY)
def test_seccomp_filter_alone_refuses_sockets_exec_and_namespaces_but_allows_threads_and_fork() -> None:
    done = run_python(f"""
        import sys, os, socket, threading, ctypes
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        from tool_sandbox import isolation
        program = isolation.build_seccomp_filter()
        isolation.prctl(isolation.PR_SET_NO_NEW_PRIVS, 1)
        isolation.load_seccomp_program(program)
        def outcome(action):
            try:
                action()
                return "allowed"
            except OSError as exc:
                return exc.strerror
        libc = ctypes.CDLL(None, use_errno=True)
        print("socket:", outcome(lambda: socket.socket(socket.AF_UNIX)))
        print("exec:", outcome(lambda: os.execv("/bin/true", ["true"])))
        print("unshare:", libc.unshare(0x10000000))
        print("thread:", outcome(lambda: threading.Thread(target=print).start()))
        pid = os.fork()
        if pid == 0:
            os._exit(5)
        print("fork:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    lines = done.stdout.splitlines()
    assert "socket: Operation not permitted" in lines, done.stderr
    assert "exec: Operation not permitted" in lines
    assert "unshare: -1" in lines
    assert "thread: allowed" in lines and "fork: 5" in lines


def test_namespaces_give_a_root_with_only_python_and_scratch(confinement: dict[str, object]) -> None:
    if not confinement["namespaces"]:
        pytest.skip(f"no namespaces here: {confinement['namespaces_why']}")
    with Sandbox(limits=SandboxLimits(scratch_bytes=8 << 20), require_isolation=False) as box:
        out = box.run(f"import os, sys\nprint(sorted(os.listdir('/')))\nprint(os.path.exists({str(PROJECT_DIR)!r} + "
                      "'/pyproject.toml'), os.path.exists('/etc'), os.path.exists('/proc/self'))\n"
                      "s = os.statvfs(os.getcwd())\nprint(os.getcwd(), s.f_blocks * s.f_frsize >> 20)", "view")
        lines = out.stdout.splitlines()
        # The system dirs, the scratch and /dev, plus the top dir of wherever this Python installation lives
        # (a venv under a checkout at /work, /check, /home...): nothing else of the host.
        python_tops = {Path(root).parts[1] for root in read_only_roots()}
        assert set(eval(lines[0])) <= {"bin", "dev", "lib", "lib32", "lib64", "sbin", "usr", "tmp",
                                       SCRATCH_DIR.strip("/")} | python_tops, lines[0]
        assert lines[1] == "False False False"  # no project files, no /etc, no /proc
        assert lines[2] == f"{SCRATCH_DIR} 8"  # cwd is the tmpfs scratch of the size asked for


@pytest.mark.parametrize("own_net_ipc", [True, False], ids=["own-namespace", "the-zygotes-shared-one"])
def test_network_namespace_alone_cannot_reach_even_the_hosts_localhost(confinement: dict[str, object],
                                                                        tmp_path: Path, own_net_ipc: bool) -> None:
    """A session's own network namespace, and the empty one the zygote makes once and shares with the
    sessions under seccomp: only a down loopback in either, even before seccomp refuses sockets."""
    if not confinement["namespaces"]:
        pytest.skip(f"no namespaces here: {confinement['namespaces_why']}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        staging = tmp_path / "root"
        staging.mkdir(mode=0o755)
        os.chmod(tmp_path, 0o755)
        done = run_python(f"""
            import sys, socket
            sys.path.insert(0, {str(PROJECT_DIR)!r})
            from tool_sandbox import isolation
            proc = isolation.prepare_root({str(staging)!r})
            isolation.enter_namespaces(isolation.open_own_proc_dir(proc), 1 << 20,  # no seccomp: sockets can be made
                                       own_net_ipc={own_net_ipc})
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("connected")
            except OSError as exc:
                print("refused:", exc.strerror, socket.if_nameindex())
        """)
    assert done.stdout.startswith("refused: Network is unreachable [(1, 'lo')]"), done.stdout + done.stderr


def test_doctor_names_every_layer_and_its_state(confinement: dict[str, object]) -> None:
    done = subprocess.run([sys.executable, "-m", "tool_sandbox", "doctor"], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_DIR)
    assert f"isolation level: {confinement['isolation']}" in done.stdout, done.stderr
    for layer in ("namespaces:", "seccomp:", "rlimits", "require_isolation:", "network (socket):", "identity:"):
        assert layer in done.stdout
    assert done.returncode == (0 if confinement["isolation"] == FULL else 1)


def test_required_isolation_is_granted_here_or_refused_with_the_reason(confinement: dict[str, object]) -> None:
    with Sandbox(require_isolation=True) as box:
        if confinement["isolation"] == FULL:
            assert box.run("1 + 1", "required").result == "2"
        else:
            with pytest.raises(SandboxError, match="doctor"):
                box.run("1 + 1", "required")


def test_every_sandbox_process_dies_with_its_parent_even_on_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-I", "-c", textwrap.dedent(f"""
        import json, sys, time
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        from tool_sandbox import Sandbox
        box = Sandbox(require_isolation=False)
        box.run("import os, time\\nif os.fork() == 0:\\n    time.sleep(600)", "s")  # retired: killed already
        box.run("import threading, time\\nx = 1", "t")
        print(json.dumps(box.worker_pids()), flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(PROJECT_DIR)})
    pids = json.loads(parent.stdout.readline())
    assert len(pids) >= 2 and all(pid_alive(pid) for pid in pids)  # the zygote and a live session
    pids += [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _ancestors(pid) & {pids[0]}]
    assert len(pids) > 3  # the spare sessions too
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if pid_alive(pid)]


def test_stale_scratch_of_a_dead_run_is_removed_at_the_next_start_and_a_live_one_kept() -> None:
    stale = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-root-")  # its pid lives, its zygote does not
    Path(stale, "left.txt").write_text("from a run killed with -9")
    # A live zygote in a PID namespace of its own: its pid names no process here, but it holds its lock.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, tempfile, time
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        from tool_sandbox.zygote import SCRATCH_PREFIX, hold_alive_lock
        live = tempfile.mkdtemp(prefix=SCRATCH_PREFIX + "999999-root-")
        hold_alive_lock(live)
        print(live, flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    live = holder.stdout.readline().strip()
    try:
        with Sandbox(require_isolation=False) as box:
            box.confinement()
        assert not os.path.exists(stale)
        assert os.path.isdir(live)
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(live, ignore_errors=True)


def test_closing_the_sandbox_leaves_no_process_and_no_staging_dir() -> None:
    box = Sandbox(require_isolation=False)
    box.run("x = 1", "a")
    pids = box.worker_pids()
    box.close()
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not [name for name in os.listdir(tempfile.gettempdir()) if name.startswith(f"{SCRATCH_PREFIX}{pids[0]}-")]
    with pytest.raises(SandboxError, match="closed"):
        box.run("1", "a")


@pytest.mark.parametrize("identity", [["--map-user=1000", "--map-group=1000"], ["--map-root-user"]],
                         ids=["unprivileged-user", "root-of-its-own-user-namespace"])
def test_the_same_layers_hold_without_real_root(identity: list[str]) -> None:
    """As the non-root user of the Docker image, or as root of a user namespace that maps only itself
    (`unshare -Ur`), sessions get every layer and stay that uid outside."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-U", *identity, "true"], capture_output=True).returncode:
        pytest.skip("this machine cannot create a user namespace with `unshare -U` (or util-linux is too old)")
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        from tool_sandbox import Sandbox, SandboxLimits
        with Sandbox(limits=SandboxLimits(timeout_s=5)) as box:
            runs = {{name: box.run(code, name) for name, code in {{
                "solve": "x = symbols('x')\\nsolve(x**2 - 4, x)",
                "socket": "import socket\\nsocket.socket()",
                "project": "open({str(PROJECT_DIR / 'pyproject.toml')!r}).read()",
                "nproc": "import resource\\nresource.getrlimit(resource.RLIMIT_NPROC)",
                "who": "import os\\n(os.getuid(), os.getpid())"}}.items()}}
            print(json.dumps({{name: [out.status, out.result, (out.error or '').splitlines()[:1], out.isolation]
                              for name, out in runs.items()}}))
    """)
    done = subprocess.run([unshare, "-U", *identity, sys.executable, "-I", "-c", script], capture_output=True,
                          text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(done.stdout.splitlines()[-1])
    assert runs["solve"][:2] == ["ok", "[-2, 2]"] and runs["solve"][3] == FULL
    assert runs["socket"][2] == ["PermissionError: [Errno 1] Operation not permitted"]
    assert runs["project"][2][0].startswith("FileNotFoundError")
    # set, though the kernel exempts this test's processes from it: its user namespaces map them to the
    # host's uid 0 (a deployment's non-root user is not exempt; the corpus's fork bomb checks it as root)
    assert runs["nproc"][1] == "(16, 16)"
    assert runs["who"][1] == "(1000, 1)"


def test_a_spare_copies_ahead_exactly_the_pages_the_probe_wrote() -> None:
    """prefault.py: the hot pages are those a probe fork wrote (not the ones it only read), and a fork that
    populates them writes to them afterwards without a fault each."""
    done = run_python(f"""
        import ctypes, mmap, os, resource, sys
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        from tool_sandbox import prefault
        proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
        page, pages = prefault.PAGE, 64
        buffer = mmap.mmap(-1, pages * page, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for i in range(pages):
            buffer[i * page] = 1  # present before the forks, as the zygote's pages are
        first = ctypes.addressof(ctypes.c_char.from_buffer(buffer)) // page
        written = range(0, pages, 2)
        def probe():
            for i in range(pages):
                if i in written:
                    buffer[i * page] = 2
                else:
                    buffer[i * page]  # read only
        runs = prefault.learn_hot_pages(proc, probe)
        hot = {{address // page + k for address, length in runs for k in range(length // page)}}
        print("written", all(first + i in hot for i in written), "read", any(first + i in hot for i in range(1, pages, 2)))
        for warm in (False, True):
            pid = os.fork()
            if pid == 0:
                if warm:
                    prefault.populate(runs)
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                for i in written:
                    buffer[i * page] = 3
                os._exit(min(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, 255))
            print("warm" if warm else "cold", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["written"] == "True read False", done.stdout + done.stderr
    assert int(lines["cold"]) >= 32 and int(lines["warm"]) < 16, done.stdout
