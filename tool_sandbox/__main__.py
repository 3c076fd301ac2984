"""`python -m tool_sandbox doctor`: which isolation layers this machine gives a session, and why any is missing.

Exit status 0 when every kernel layer is active (level "namespaces+seccomp"), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from tool_sandbox.isolation import FULL
from tool_sandbox.records import SandboxLimits
from tool_sandbox.sandbox import Sandbox

# Each probe runs inside a real session and prints one short verdict.
SESSION_CHECKS = {
    "network (socket)": "import socket\ntry:\n    socket.socket()\n    print('ALLOWED')\n"
                        "except OSError as e:\n    print('refused:', e.strerror)",
    "programs (exec)": "import os\ntry:\n    os.execv('/bin/true', ['true'])\nexcept OSError as e:\n"
                       "    print('refused:', e.strerror)",
    "file system root": "import os\nprint(sorted(os.listdir('/')))",
    "project, home, /etc, /proc": ("import os\nprint({p: os.listdir(p) for p in (%r, os.path.expanduser('~'), "
                                   "'/etc', '/proc') if os.path.isdir(p)} or 'none visible')" % os.getcwd()),
    "identity": "import os\nprint(f'uid {os.getuid()} gid {os.getgid()} pid {os.getpid()}')",
    "scratch": "import os\ns = os.statvfs('.')\nprint(f'{os.getcwd()}: {s.f_blocks * s.f_frsize >> 20} MiB')",
    "environment": "import os\nprint(dict(os.environ) or 'empty')",
}


def doctor() -> int:
    print(f"tool_sandbox doctor: Python {platform.python_version()}, Linux {platform.release()}, "
          f"{platform.machine()}, running as uid {os.geteuid()}")
    with Sandbox(limits=SandboxLimits(), require_isolation=False) as box:
        info = box.confinement()
        print(f"isolation level: {info['isolation']}" + ("" if info["isolation"] == FULL else f" (strongest: {FULL})"))
        print(f"  [{'yes' if info['namespaces'] else 'NO '}] namespaces: {info['namespaces_why']}")
        print(f"  [{'yes' if info['seccomp'] else 'NO '}] seccomp: {info['seccomp_why']}")
        print("  [yes] rlimits (address space, CPU, file size, open files, processes), no_new_privs, empty environment")
        required = SandboxLimits().require_isolation
        print(f"  require_isolation: {'on' if required else 'off'} (TOOL_SANDBOX_REQUIRE_ISOLATION)"
              + ("; a Sandbox would refuse to run here" if required and info["isolation"] != FULL else ""))
        print("inside a session:")
        for name, code in SESSION_CHECKS.items():
            out = box.run(code, "doctor")
            print(f"  {name}: {(out.stdout.strip() or out.error or out.status).splitlines()[0]}")
    return 0 if info["isolation"] == FULL else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tool_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["doctor"])
    parser.parse_args()
    sys.exit(doctor())


if __name__ == "__main__":
    main()
