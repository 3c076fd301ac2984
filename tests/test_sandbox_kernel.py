"""The kernel layers under the Python guard, tested without it: Landlock rules and the network namespace.

These hold even for code that gets around the audit hook, so they are checked in a bare child process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tool_sandbox.pool import network_isolation_prefix

PROJECT_DIR = Path(__file__).resolve().parent.parent


def run_python(code: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-I", "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(PROJECT_DIR)}, cwd="/")


def test_landlock_confines_files_exec_and_tcp(tmp_path: Path) -> None:
    done = run_python(f"""
        import sys, os, socket
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        from tool_sandbox.landlock import restrict_filesystem
        abi = restrict_filesystem(read_only=[sys.base_prefix, sys.prefix], read_write=[{str(tmp_path)!r}])
        if abi is None:
            print("no-landlock"); raise SystemExit
        def outcome(action):
            try:
                action()
                return "allowed"
            except OSError as exc:
                return type(exc).__name__
        print("read /etc/passwd:", outcome(lambda: open("/etc/passwd").read()))
        print("read project:", outcome(lambda: open({str(PROJECT_DIR / "pyproject.toml")!r}).read()))
        print("write scratch:", outcome(lambda: open({str(tmp_path / "ok.txt")!r}, "w").write("x")))
        print("write /tmp:", outcome(lambda: open("/tmp/landlock_escape.txt", "w").write("x")))
        print("exec /bin/true:", outcome(lambda: os.execv("/bin/true", ["true"])))
        if abi >= 4:
            print("tcp connect:", outcome(lambda: socket.create_connection(("127.0.0.1", 9), timeout=1)))
    """)
    if "no-landlock" in done.stdout:
        pytest.skip("this kernel has no Landlock; the audit hook is the only file guard here")
    lines = done.stdout.splitlines()
    assert "read /etc/passwd: PermissionError" in lines, done.stderr
    assert "read project: PermissionError" in lines
    assert "write scratch: allowed" in lines
    assert "write /tmp: PermissionError" in lines
    assert "exec /bin/true: PermissionError" in lines
    assert all(line == "tcp connect: PermissionError" for line in lines if line.startswith("tcp"))


def test_network_namespace_cannot_reach_even_localhost() -> None:
    prefix = network_isolation_prefix()
    if not prefix:
        pytest.skip("unshare cannot create a network namespace here; the audit hook blocks sockets instead")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        reachable = run_python(f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            print("connected")
        """)
        isolated = run_python(f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("connected")
            except OSError as exc:
                print("refused:", exc)
        """, prefix)
    assert "connected" in reachable.stdout
    assert isolated.stdout.startswith("refused:"), isolated.stdout + isolated.stderr
